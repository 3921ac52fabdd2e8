"""Pins what a tiny run of each experiment and a tiny sweep compute.

A refactoring of the loop, the sweep or the experiments must not change a
number a user sees: every metric of these runs (their `result.json` and the
last `metrics.jsonl` line) must match `tests/pinned_numbers.json`, written by
the code before the refactoring. On the machine that wrote the file the
numbers match to the last digit (`python -m tests.pinned_test --check`
compares exactly); the test allows 1e-6 relative for other CPUs' XLA code.

  python -m tests.pinned_test --write   # only when a change is meant to change numbers
"""

import json
import math
import os
import sys
import tempfile

import pytest

from configs import estimator_comparison as ec_config
from configs import ssl as ssl_config
from configs import vae as vae_config
from experiments import estimator_comparison
from experiments import launcher
from experiments import run_files
from experiments import ssl
from experiments import sweep
from experiments import training
from experiments import vae

PINNED = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'pinned_numbers.json')
# Fields that are not numbers of the run (timings, provenance).
_SKIP = ('seconds', 'steps_per_sec', 'provenance', 'eval_seconds')


def _numbers(workdir: str) -> dict:
  result = run_files.read_result(workdir)
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    lines = [json.loads(l) for l in f]
  train = [l for l in lines if any(k.startswith('train/') for k in l)][-1]
  out = {f'result:{k}': v for k, v in result.items()}
  out.update({f'train@{train["step"]}:{k}': v for k, v in train.items()})
  return {k: v for k, v in sorted(out.items())
          if isinstance(v, (int, float)) and not isinstance(v, bool)
          and not any(s in k for s in _SKIP)}


def _single(create_task, config, root, name):
  workdir = os.path.join(root, name)
  training.run(create_task, [config], [workdir])
  return _numbers(workdir)


def pinned_runs(root: str) -> dict:
  """The runs: `{run name: {metric: value}}`."""
  out = {}
  config = vae_config.get_config('tiny')
  config.data.source = 'embedded'
  out['vae_tiny'] = _single(vae.create_task, config, root, 'vae_tiny')
  for model, name, paths in (('vae_cat', 'gumbel_softmax', None), ('vae_bern', 'sf', None),
                             ('sbn_bern', 'rebar', 'nested'), ('sbn_bern', 'rebar', 'joint'),
                             ('sbn_cat', 'vimco', 'nested'), ('sbn_cat', 'vimco', 'joint')):
    config = ec_config.get_config(f'model={model},estimator={name},preset=tiny')
    run = f'{model}_{name}'
    if paths:  # 'sbn_bern_rebar', 'sbn_cat_vimco': pinned before the joint paths existed.
      config.estimator.paths = paths
      run += '_joint' if paths == 'joint' else ''
    out[run] = _single(estimator_comparison.create_task, config, root, run)
  config = ssl_config.get_config('mode=gumbel,preset=tiny')
  out['ssl_gumbel'] = _single(ssl.create_task, config, root, 'ssl_gumbel')
  # A tiny sweep: 2 seeds x 2 learning rates as one vmapped program.
  arg = 'model=vae_cat,estimator=st,preset=tiny'
  members = sweep.expand(ec_config.get_config(arg), ec_config.get_hyper(sweep, arg),
                         os.path.join(root, 'sweep'))
  launcher.run(members)
  for m in members:
    out[f'sweep/{os.path.basename(m.workdir)}'] = _numbers(m.workdir)
  return out


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  return pinned_runs(str(tmp_path_factory.mktemp('pinned')))


def _pinned():
  with open(PINNED) as f:
    return json.load(f)


@pytest.mark.parametrize('name', sorted(_pinned()) if os.path.exists(PINNED) else ['(missing)'])
def test_tiny_runs_give_the_pinned_numbers(runs, name):
  assert os.path.exists(PINNED), f'{PINNED} is missing: python -m tests.pinned_test --write'
  expected, got = _pinned()[name], runs[name]
  assert sorted(got) == sorted(expected), name
  for key, value in expected.items():
    assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-6), (name, key)


def main(argv):
  with tempfile.TemporaryDirectory() as root:
    got = pinned_runs(root)
  if '--write' in argv:
    with open(PINNED, 'w') as f:
      json.dump(got, f, indent=1, sort_keys=True)
    print(f'Wrote {PINNED}.')
    return 0
  expected = _pinned()
  diffs = [(n, k, expected[n].get(k), got[n].get(k)) for n in expected
           for k in sorted(set(expected[n]) | set(got.get(n, {})))
           if expected[n].get(k) != got.get(n, {}).get(k)]
  diffs += [(n, '*', None, 'new run') for n in got if n not in expected]
  for d in diffs:
    print('differs:', *d)
  print(f'{sum(len(v) for v in expected.values())} numbers, {len(diffs)} differ (exact).')
  return 1 if diffs else 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
