r"""Draws [GS] Figure 1: the Gumbel-Softmax distribution at several temperatures.

For a fixed categorical distribution pi over K=5 classes, the top row shows
the expectation E[y] of the Gumbel-Softmax sample y = softmax((log pi + g) / tau)
at tau = 0.1, 0.5, 1 and 10 (estimated as the mean of `--num_samples` samples
drawn with `gumbel.gumbel_softmax`), and the rows below show single samples.
The first column is the categorical distribution itself (one-hot samples from
`gumbel.gumbel_max`). Every column uses the same key, so a row shows the same
Gumbel noise g at every temperature: the argmax never changes, only how sharp
the sample is.

  python -m scripts.temperature_figure --out=docs [--seed=0] [--num_samples=100000]

Writes `temperature_figure.png`, `temperature_figure.pdf` and
`temperature_figure.json` (the numbers the figure shows) into `--out`.
Takes a few seconds on a CPU.

References:
  [GS] Jang, Gu, Poole. Categorical Reparameterization with Gumbel-Softmax.
    ICLR 2017, arXiv:1611.01144, Figure 1.
"""

import json
import os

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

import gumbel

matplotlib.use('Agg')
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

PROBS = (0.1, 0.25, 0.05, 0.4, 0.2)
TEMPERATURES = (0.1, 0.5, 1.0, 10.0)
BASENAME = 'temperature_figure'

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command-line flags (only when run as a script: tests import several scripts)."""
  flags.DEFINE_string('out', None, 'Folder for the PNG, PDF and JSON.', required=True)
  flags.DEFINE_integer('seed', 0, 'Seed of the one PRNG key used for every column.')
  flags.DEFINE_integer('num_samples', 100_000, 'Samples per temperature for the expectations.')
  flags.DEFINE_integer('num_shown', 3, 'Single samples shown per temperature.')
  flags.DEFINE_list('probs', [str(p) for p in PROBS], 'Class probabilities pi.')


def compute_figure_data(key, probs, temperatures, num_samples, num_shown):
  """Samples the categorical and its relaxations with the library's samplers.

  Args:
    key: a PRNG key, used unchanged for every column (same Gumbel noise).
    probs: the class probabilities pi, [K]; normalized here.
    temperatures: the temperatures tau of the relaxed columns.
    num_samples: samples per column for the expectation.
    num_shown: how many of those samples to return per column.

  Returns:
    A JSON-ready dict with `probs`, `temperatures`, and per column
    (`categorical`, then one per temperature) the estimated `expectation`,
    its `standard_error` and the first `num_shown` `samples`.
  """
  probs = np.asarray(probs, np.float64)
  if probs.ndim != 1 or np.any(probs < 0) or probs.sum() <= 0:
    raise ValueError(f'probs must be a non-negative vector, got {probs}.')
  probs = probs / probs.sum()
  logits = jnp.broadcast_to(jnp.log(jnp.asarray(probs, jnp.float32)),
                            (num_samples, len(probs)))  # [num_samples, K]
  columns = [('categorical', None, gumbel.gumbel_max(key, logits))]
  for tau in temperatures:
    columns.append((f'tau={tau:g}', float(tau), gumbel.gumbel_softmax(key, logits, tau)))
  data = {
      'probs': probs.tolist(),
      'temperatures': [float(t) for t in temperatures],
      'num_samples': int(num_samples),
      'gumbel_version': gumbel.__version__,
      'columns': [],
  }
  for name, tau, y in columns:
    y = np.asarray(y, np.float64)  # [num_samples, K]
    data['columns'].append({
        'name': name,
        'temperature': tau,
        'expectation': y.mean(axis=0).tolist(),
        'standard_error': (y.std(axis=0, ddof=1) / np.sqrt(num_samples)).tolist(),
        'samples': y[:num_shown].tolist(),
    })
  return data


def draw_figure(data, seed):
  """Returns a matplotlib figure of `data`: expectations on top, samples below."""
  columns = data['columns']
  num_shown = len(columns[0]['samples'])
  num_classes = len(data['probs'])
  classes = np.arange(num_classes)
  fig, axes = plt.subplots(
      1 + num_shown, len(columns), figsize=(2.1 * len(columns), 1.45 * (1 + num_shown) + 0.7),
      sharex=True, squeeze=False)
  for j, column in enumerate(columns):
    title = 'Categorical' if column['temperature'] is None else f"$\\tau = {column['temperature']:g}$"
    axes[0, j].set_title(title)
    rows = [('expectation', column['expectation'], 'tab:blue')]
    rows += [(f'sample {i + 1}', s, 'tab:orange') for i, s in enumerate(column['samples'])]
    for i, (label, values, color) in enumerate(rows):
      ax = axes[i, j]
      ax.bar(classes, values, color=color, width=0.8)
      ax.set_ylim(0, 1)
      ax.set_xticks(classes, [str(k + 1) for k in classes])
      ax.tick_params(labelsize=7)
      if j:
        ax.set_yticklabels([])
      else:
        ax.set_ylabel(label, fontsize=9)
  fig.suptitle('Gumbel-Softmax: expectation (top) and samples at four temperatures',
               fontsize=11)
  probs = ', '.join(f'{p:g}' for p in data['probs'])
  fig.text(
      0.5, 0.01,
      f"pi = ({probs}); expectations are means of {data['num_samples']:,} samples of "
      f'gumbel.gumbel_softmax (gumbel_max for the categorical), key = jax.random.key({seed}),\n'
      'the same key for every column, so each row shows the same Gumbel noise at every '
      f"temperature (gumbel {data['gumbel_version']})",
      ha='center', va='bottom', fontsize=7)
  fig.tight_layout(rect=(0, 0.06, 1, 1))
  return fig


def write_figure(out, *, seed=0, probs=PROBS, temperatures=TEMPERATURES,
                 num_samples=100_000, num_shown=3):
  """Writes the PNG, PDF and JSON into `out`; returns the data dict."""
  os.makedirs(out, exist_ok=True)
  data = compute_figure_data(jax.random.key(seed), probs, temperatures, num_samples, num_shown)
  data['seed'] = int(seed)
  fig = draw_figure(data, seed)
  for ext in ('png', 'pdf'):
    fig.savefig(os.path.join(out, f'{BASENAME}.{ext}'), dpi=150)
  plt.close(fig)
  with open(os.path.join(out, f'{BASENAME}.json'), 'w') as f:
    json.dump(data, f, indent=1)
  return data


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  write_figure(FLAGS.out, seed=FLAGS.seed, probs=[float(p) for p in FLAGS.probs],
               num_samples=FLAGS.num_samples, num_shown=FLAGS.num_shown)
  print(f'Wrote {os.path.join(FLAGS.out, BASENAME)}.{{png,pdf,json}}')


if __name__ == '__main__':
  define_flags()
  app.run(main)
