r"""The two pictures of docs/table1_notes.md, from finished runs.

  python -m scripts.table1_figures --preset=cpu --workdir=results/table1 --out=docs

* `table1_cost.png`: per row, each estimator's test number (the m-sample
  bound of the table, at the setting validation chose) against the time one
  run of it took (`reproduce_table1.run_seconds`: its program's logged training chunks and
  evaluations over its members, so a run resumed in several sessions counts
  all of them), with [GS]'s number for the paper's columns: which estimator
  gives the most nats per CPU-second?
* `table1_curves.png`: per row, the training objective (VAE: -ELBO, SBN:
  the one-sample -log p(x_lower | h)) against the step of each estimator's
  chosen run.
"""

import os

from absl import app
from absl import flags
import matplotlib

matplotlib.use('Agg')
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
from matplotlib import ticker  # pylint: disable=g-import-not-at-top

from experiments import metric_writer  # pylint: disable=g-import-not-at-top
from scripts import reproduce_table1 as table  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS


def _train_curve(workdir: str, key: str):
  records = [r for r in metric_writer.read_metrics(workdir) if key in r]
  return [r['step'] for r in records], [r[key] for r in records]


def draw(cells: dict, rows, out: str) -> list[str]:
  """Writes the two PNGs into `out`; returns their paths."""
  summaries = {k: table.summarize(v) for k, v in cells.items()}
  colors = {c: plt.get_cmap('tab20')(i) for i, c in enumerate(table.COLUMNS)}
  rows = [r for r in rows if any(k[0] == r and 'mean' in s for k, s in summaries.items())]
  if not rows:
    raise ValueError('No finished cell to draw.')
  paths = []
  fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 3.6), squeeze=False)
  for ax, row in zip(axes[0], rows):
    for (r, name), s in summaries.items():
      if r != row or 'mean' not in s:
        continue
      x = s['run_seconds'] / 60
      ax.scatter([x], [s['mean']], color=colors[name], zorder=3)
      ax.annotate(name, (x, s['mean']), fontsize=7, xytext=(3, 2), textcoords='offset points')
      if name in table.PAPER_COLUMNS:
        paper = table.PAPER[row][table.PAPER_COLUMNS.index(name)]
        ax.scatter([x], [paper], color=colors[name], marker='x', zorder=3)
        ax.plot([x, x], [paper, s['mean']], color=colors[name], lw=0.6, ls=':')
    ax.set_xscale('log')
    ax.xaxis.set_major_formatter(ticker.FormatStrFormatter('%g'))
    ax.xaxis.set_minor_formatter(ticker.FormatStrFormatter('%g'))
    ax.set_xlabel('wall minutes per run (one core)')
    ax.set_title(table.ROW_NAMES[row], fontsize=10)
  axes[0][0].set_ylabel('test bound, nats (o ours, x [GS])')
  fig.tight_layout()
  paths.append(os.path.join(out, 'table1_cost.png'))
  fig.savefig(paths[-1], dpi=110)
  plt.close(fig)

  fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 3.6), squeeze=False)
  for ax, row in zip(axes[0], rows):
    key = 'train/nll_bound' if row.startswith('sbn') else 'train/neg_elbo'
    values_seen = []
    for (r, name), s in summaries.items():
      if r != row or 'mean' not in s:
        continue
      steps, values = _train_curve(s['workdirs'][0], key)
      values_seen += values
      ax.plot(steps, values, color=colors[name], lw=0.9, label=name)
    if values_seen:  # The interesting range: from the best value to the median.
      ordered = sorted(values_seen)
      ax.set_ylim(ordered[0] - 2, ordered[len(ordered) // 2] + 15)
    ax.set_xlabel('step')
    ax.set_title(table.ROW_NAMES[row], fontsize=10)
    ax.legend(fontsize=6, ncol=2)
  axes[0][0].set_ylabel('training objective (nats; SBN: one-sample)')
  fig.tight_layout()
  paths.append(os.path.join(out, 'table1_curves.png'))
  fig.savefig(paths[-1], dpi=110)
  plt.close(fig)
  return paths


def main(argv):
  del argv
  cells = table.cell_members(FLAGS.preset, table.ROWS, table.COLUMNS, FLAGS.workdir)
  os.makedirs(FLAGS.out, exist_ok=True)
  for path in draw(cells, table.ROWS, FLAGS.out):
    print(path)


if __name__ == '__main__':
  flags.DEFINE_enum('preset', 'cpu', ('paper', 'cpu', 'small', 'tiny'), 'The preset of the runs.')
  flags.DEFINE_string('workdir', 'results/table1', 'The table\'s shared folder.')
  flags.DEFINE_string('out', 'docs', 'Where the PNGs go.')
  app.run(main)
