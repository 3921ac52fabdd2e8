"""Runs examples/sort_gumbel_sinkhorn.py and examples/l0_sparse.py for a few steps.

Each example is loaded from its file (examples/ is a folder of scripts, not a
package) and its `main(argv)` run on a tiny configuration. Beyond "no NaN",
each checks that the few steps already learned something a broken relaxation
would not: sorting 4 numbers well above chance (1/24), and gates switching
the useless features off.
"""

import importlib.util
import math
import pathlib

import numpy as np

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / 'examples'


def _load(name):
  spec = importlib.util.spec_from_file_location(f'examples_{name}', EXAMPLES / f'{name}.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_sort_gumbel_sinkhorn_learns_to_sort(capsys):
  sort = _load('sort_gumbel_sinkhorn')
  metrics = sort.main(['--n=4', '--steps=300', '--test_size=500', '--log_every=100'])
  assert all(math.isfinite(v) for v in metrics.values()), metrics
  assert 0 <= metrics['positions_wrong'] <= 1 and -1 <= metrics['kendall_tau'] <= 1
  # Chance: 1/24 sorted exactly, Kendall's tau 0.
  assert metrics['sorted_exactly'] > 0.5 and metrics['kendall_tau'] > 0.7, metrics
  out = capsys.readouterr().out
  assert 'step 300: train/loss' in out and 'n = 4, 300 steps: sorted exactly' in out


def test_l0_sparse_switches_gates_off(capsys):
  l0 = _load('l0_sparse')
  metrics, params, w_true = l0.main(['--steps=400', '--log_every=200'])
  assert all(math.isfinite(v) for v in metrics.values()), metrics
  assert params['log_alpha'].shape == w_true.shape == (100,)
  # 90 of the 100 features are useless: most of their gates are exactly 0.
  assert metrics['test/fraction_gates_zero'] > 0.5, metrics
  assert metrics['test/true_features_kept'] == 10, metrics
  z = np.asarray(l0.test_gates(params['log_alpha']))
  assert np.all((z >= 0) & (z <= 1)) and np.sum(z == 0) == round(
      100 * metrics['test/fraction_gates_zero'])
  assert 'step 400: train/loss' in capsys.readouterr().out
