r"""Overlays the training curves of several runs: -ELBO, KL, temperature, gradient variance.

  python -m scripts.plot_runs workdirs/vae workdirs/vae_st --out=curves.png

Each DIR is a run folder (config.json and metrics.jsonl, as
experiments/metric_writer.py writes them) or a sweep folder, whose member runs
(subfolders with a metrics.jsonl) are all plotted. Panels, against the step:
-ELBO (`train/neg_elbo` as lines; `valid/neg_elbo` and `test/neg_elbo` as
points when logged), KL (`train/kl`), temperature (`train/tau`) and, when
logged, gradient variance (every `grad_var/<estimator>` key, log scale).
Panels without data are left out. Runs are labelled by the config fields that
differ between them (experiment, estimator, model.hard, learning rate, seed
first; other fields only if those do not tell the runs apart). A line of
metrics.jsonl that is not valid JSON (a run killed mid-write) is dropped with
a warning (`metric_writer.read_metrics`, the run files' own reader).
"""

import dataclasses
import json
import math
import os
import warnings

from absl import app
from absl import flags
import matplotlib

matplotlib.use('Agg')
from matplotlib import lines as mlines  # pylint: disable=g-import-not-at-top
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

from experiments import metric_writer  # pylint: disable=g-import-not-at-top
from experiments import run_files  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS

# Config fields that usually tell runs apart, in label order, with short names.
LABEL_FIELDS = (
    ('experiment', 'experiment'),
    ('estimator.name', 'estimator'),
    ('model.hard', 'hard'),
    ('optimizer.learning_rate', 'lr'),
    ('seed', 'seed'),
)
MAX_OTHER_FIELDS = 3
_MISSING = object()


@dataclasses.dataclass
class Run:
  """One run folder: its name, config and metric lines."""
  path: str
  name: str
  config: dict
  metrics: list


def find_runs(paths):
  """Expands run and sweep folders into run folders (those with a metrics.jsonl)."""
  runs = []
  for path in paths:
    if os.path.isfile(os.path.join(path, 'metrics.jsonl')):
      runs.append(path)
      continue
    members = []
    for root, dirs, files in os.walk(path):
      dirs.sort()
      if 'metrics.jsonl' in files:
        members.append(root)
        dirs[:] = []  # A run's own subfolders (checkpoints) hold no runs.
    if not members:
      raise ValueError(f'{path}: neither a run folder nor a sweep folder (no metrics.jsonl in it '
                       'or its subfolders).')
    runs.extend(members)
  return runs


def load_runs(paths):
  """Returns a `Run` for every run folder in `paths` (sweeps expanded)."""
  folders = find_runs(paths)
  if len(folders) > 1:
    common = os.path.commonpath([os.path.abspath(f) for f in folders])
    names = [os.path.relpath(os.path.abspath(f), common) for f in folders]
  else:
    names = [os.path.basename(os.path.normpath(os.path.abspath(f))) for f in folders]
  return [Run(f, n, _read_config(f), metric_writer.read_metrics(f))
          for f, n in zip(folders, names)]


def _read_config(workdir):
  """The run's config.json (`run_files.read_config`); an empty dict, with a warning, if none."""
  config = run_files.read_config(workdir)
  if config is None:
    warnings.warn(f'{os.path.join(workdir, run_files.CONFIG_FILE)}: missing; the run is '
                  'labelled by its folder name.')
    return {}
  return config


def flatten(config, prefix=''):
  """{'a': {'b': 1}} -> {'a.b': 1}."""
  flat = {}
  for key, value in config.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


def _format(value):
  if value is _MISSING:
    return 'n/a'
  if isinstance(value, float):
    return f'{value:g}'
  if isinstance(value, list):
    return '(' + ','.join(_format(v) for v in value) + ')'
  return str(value)


def make_labels(configs, names):
  """Labels runs by the config fields whose values differ between them.

  Args:
    configs: one (nested) config dict per run.
    names: one fallback name per run (e.g. its folder).

  Returns:
    One label per run, e.g. 'estimator=rebar, seed=1'. The fields of
    `LABEL_FIELDS` come first; other differing fields (at most
    `MAX_OTHER_FIELDS`, alphabetically) are used only if those leave two runs
    with the same label; the name is appended to labels that still collide,
    and is the whole label when no field differs (e.g. a single run).
  """
  flat = [flatten(c) for c in configs]

  def differs(key):
    return len({json.dumps(_format(f.get(key, _MISSING))) for f in flat}) > 1

  def build(fields):
    return [', '.join(f'{short}={_format(f.get(key, _MISSING))}' for key, short in fields)
            for f in flat]

  fields = [(key, short) for key, short in LABEL_FIELDS if differs(key)]
  labels = build(fields)
  if len(set(labels)) < len(labels):
    preferred = {key for key, _ in LABEL_FIELDS}
    others = sorted(k for k in set().union(*flat) if k not in preferred and differs(k))
    fields += [(k, k) for k in others[:MAX_OTHER_FIELDS]]
    labels = build(fields)
  if not fields:
    return list(names)
  return [f'{label} ({name})' if labels.count(label) > 1 else label
          for label, name in zip(labels, names)]


def _series(metrics, key):
  """(steps, values) of a numeric metric; non-finite values are dropped."""
  points = [(m['step'], m[key]) for m in metrics
            if isinstance(m.get(key), (int, float)) and not isinstance(m.get(key), bool)
            and math.isfinite(m[key])]
  return [p[0] for p in points], [p[1] for p in points]


def _grad_var_keys(runs):
  return sorted({k for r in runs for m in r.metrics for k in m if k.startswith('grad_var/')})


def plot_runs(runs, out, title=''):
  """Draws the panels that have data into `out`; returns their names.

  Args:
    runs: `Run`s, as `load_runs` returns them.
    out: the image path (its extension picks the format).
    title: an optional figure title.

  Returns:
    The names of the panels drawn, a subset of
    ('neg_elbo', 'kl', 'tau', 'grad_var'), in that order.
  """
  labels = make_labels([r.config for r in runs], [r.name for r in runs])
  colors = [f'C{i % 10}' for i in range(len(runs))]
  grad_var_keys = _grad_var_keys(runs)

  def has(key):
    return any(_series(r.metrics, key)[0] for r in runs)

  elbo_keys = [k for k in ('train/neg_elbo', 'valid/neg_elbo', 'test/neg_elbo') if has(k)]
  panels = []
  if elbo_keys:
    panels.append('neg_elbo')
  if has('train/kl'):
    panels.append('kl')
  if has('train/tau'):
    panels.append('tau')
  if any(has(k) for k in grad_var_keys):
    panels.append('grad_var')
  if not panels:
    raise ValueError('No run logged train/neg_elbo, train/kl, train/tau or grad_var/*: '
                     'nothing to plot.')

  fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
  axes = dict(zip(panels, axes[0]))
  for run, color in zip(runs, colors):
    if 'neg_elbo' in axes:
      ax = axes['neg_elbo']
      ax.plot(*_series(run.metrics, 'train/neg_elbo'), color=color, lw=1.2)
      ax.plot(*_series(run.metrics, 'valid/neg_elbo'), color=color, ls=':', marker='o', ms=3)
      ax.plot(*_series(run.metrics, 'test/neg_elbo'), color=color, ls='none', marker='*', ms=10,
              markeredgecolor='k', markeredgewidth=0.5)
    if 'kl' in axes:
      axes['kl'].plot(*_series(run.metrics, 'train/kl'), color=color, lw=1.2)
    if 'tau' in axes:
      axes['tau'].plot(*_series(run.metrics, 'train/tau'), color=color, lw=1.2)
    if 'grad_var' in axes:
      for i, key in enumerate(grad_var_keys):
        steps, values = _series(run.metrics, key)
        points = [(s, v) for s, v in zip(steps, values) if v > 0]  # Log scale.
        if points:
          axes['grad_var'].plot(*zip(*points), color=color, lw=1.2, ls=_linestyle(i))

  titles = {'neg_elbo': '-ELBO (nats)', 'kl': 'KL (nats)', 'tau': r'temperature $\tau$',
            'grad_var': 'gradient variance'}
  for name, ax in axes.items():
    ax.set_title(titles[name])
    ax.set_xlabel('step')
    ax.grid(alpha=0.3)
  if 'grad_var' in axes:
    axes['grad_var'].set_yscale('log')
    if len(grad_var_keys) > 1:
      axes['grad_var'].legend(
          [mlines.Line2D([], [], color='gray', ls=_linestyle(i)) for i in range(len(grad_var_keys))],
          [k.split('/', 1)[1] for k in grad_var_keys], fontsize=7, title='estimator',
          title_fontsize=7)
  if 'neg_elbo' in axes and len(elbo_keys) > 1:
    kinds = {'train/neg_elbo': dict(ls='-'), 'valid/neg_elbo': dict(ls=':', marker='o', ms=3),
             'test/neg_elbo': dict(ls='none', marker='*', ms=10)}
    axes['neg_elbo'].legend(
        [mlines.Line2D([], [], color='gray', **kinds[k]) for k in elbo_keys],
        [k.split('/')[0] for k in elbo_keys], fontsize=7)

  handles = [mlines.Line2D([], [], color=c, lw=2) for c in colors]
  ncol = min(len(runs), 3)
  legend_rows = math.ceil(len(runs) / ncol)
  fig.legend(handles, labels, loc='lower center', ncol=ncol, fontsize=8, frameon=False)
  if title:
    fig.suptitle(title)
  bottom = min(0.5, (0.25 * legend_rows + 0.15) / fig.get_figheight())
  fig.tight_layout(rect=(0, bottom, 1, 1))
  fig.savefig(out, dpi=120)
  plt.close(fig)
  return panels


def define_flags():
  """Defines the command-line flags (only when run as a script: tests import several scripts)."""
  flags.DEFINE_string('out', None, 'Path of the PNG (or any matplotlib format) to write.',
                      required=True)
  flags.DEFINE_string('title', '', 'Optional figure title.')


def _linestyle(i):
  return ('-', '--', ':', '-.')[i % 4]


def main(argv):
  if len(argv) < 2:
    raise app.UsageError('Give one or more run or sweep folders.')
  runs = load_runs(argv[1:])
  panels = plot_runs(runs, FLAGS.out, FLAGS.title)
  print(f"Wrote {FLAGS.out}: {len(runs)} runs, panels {', '.join(panels)}.")


if __name__ == '__main__':
  define_flags()
  app.run(main)
