r"""Reproduces [GS] Table 2: semi-supervised M2, three ways to treat y, by one command.

  python -m scripts.reproduce_table2 --preset=small --workdir=/tmp/table2
  python -m scripts.reproduce_table2 --preset=paper --workdir=DIR --shard=$I/$N   # job array
  python -m scripts.reproduce_table2 --preset=paper --workdir=DIR --collect_only  # table only

Runs the sweep of every mode (alphas x seeds, `configs/ssl.py`: one vmapped
program per alpha), picks each mode's alpha by the mean validation accuracy
over seeds (diverged members excluded), and writes `table2.md` and
`table2.csv` into --workdir: the test ELBO (the exact sum over y, for every
mode alike) and test accuracy, mean and spread (standard deviation over
seeds) at that alpha, beside the paper's numbers, then every alpha's
validation and test numbers, what the preset cuts from the paper's set-up,
and the members that have not finished. --shard=i/n trains the i-th of n
interleaved slices of the grid into the shared workdir (finished members are
never trained again); any run, or --collect_only, writes the table from what
has finished so far. Progress lines (steps/s and ETA per program, groups
done and ETA of the sweep) go to the log.
"""

import math
import os
import sys
import time

from absl import app
from absl import flags
import numpy as np

from configs import ssl as table_config
from experiments import launcher
from experiments import loop_config
from experiments import preemption
from experiments import progress
from experiments import sweep
from scripts import tables

ROWS = table_config.MODES
ROW_NAMES = {'marginalize': 'Marginalization', 'gumbel': 'Gumbel',
             'st_gumbel': 'ST Gumbel-Softmax'}
# [GS] Table 2: test ELBO (nats) and accuracy (%).
PAPER = {'marginalize': (-106.8, 92.6), 'gumbel': (-109.6, 92.4), 'st_gumbel': (-110.7, 93.6)}
VALID_KEY, TEST_ELBO_KEY, TEST_ACCURACY_KEY = 'valid/accuracy', 'test/neg_elbo', 'test/accuracy'

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command-line flags (only when run as a script: tests import scripts)."""
  flags.DEFINE_enum('preset', 'small', table_config.PRESETS[:2], 'Preset of every mode.')
  flags.DEFINE_string('workdir', None, 'Shared folder of all runs and the table.')
  flags.DEFINE_string('shard', '0/1', 'Train slice i of n of the grid.')
  flags.DEFINE_list('modes', list(ROWS), f'Rows, from {ROWS}.')
  flags.DEFINE_bool('collect_only', False, 'Only write the table from finished runs.')
  flags.DEFINE_string('data_source', None, 'Override data.source.')
  flags.DEFINE_string('data_dir', None, 'Override data.dir.')
  flags.DEFINE_integer('max_group_size', -1, 'Members per compiled program (0: all seeds of '
                       'an alpha vmapped together); -1: 1 on CPU, 0 elsewhere '
                       '(sweep.resolve_group_size).')
  flags.DEFINE_integer('workers', 1, 'Local worker processes sharing the grid as a work '
                       'queue (launcher.num_workers; 0: one per CPU core on a CPU).')


def cell_members(preset, modes, workdir, overrides=None) -> dict:
  """`{mode: [sweep.Member]}`: each mode's sweep in `workdir/<mode>/`."""
  cells = {}
  for mode in modes:
    if mode not in ROWS:
      raise ValueError(f'Unknown mode {mode!r}; allowed: {ROWS}.')
    arg = f'mode={mode},preset={preset}'
    config = table_config.get_config(arg)
    config.lock()  # Unknown override keys fail.
    config.update_from_flattened_dict(overrides or {})
    cells[mode] = sweep.expand(config, table_config.get_hyper(sweep, arg),
                               os.path.join(workdir, mode))
  return cells


def summarize(members) -> dict:
  """Picks alpha on mean validation accuracy; test ELBO and accuracy over seeds there."""
  found = sweep.outcomes(members, VALID_KEY)
  by_alpha = {}
  for m, result in found.finished:
    by_alpha.setdefault(m.config.loss.alpha, []).append(result)
  out = {'missing': found.missing, 'diverged': found.diverged, 'alphas': {}}
  for alpha, results in sorted(by_alpha.items()):
    out['alphas'][alpha] = {
        'valid_accuracy': float(np.mean([r[VALID_KEY] for r in results])),
        'accuracy': float(np.mean([r[TEST_ACCURACY_KEY] for r in results])),
        'elbo': float(np.mean([-r[TEST_ELBO_KEY] for r in results])),
        'seeds': len(results)}
  if not by_alpha:
    return out
  alpha = max(by_alpha, key=lambda a: (out['alphas'][a]['valid_accuracy'], -a))
  results = by_alpha[alpha]
  elbo = np.asarray([-r[TEST_ELBO_KEY] for r in results])
  accuracy = 100 * np.asarray([r[TEST_ACCURACY_KEY] for r in results])
  std = lambda v: float(v.std(ddof=1)) if len(v) > 1 else float('nan')
  out.update({
      'alpha': alpha, 'seeds': len(results),
      'elbo': float(elbo.mean()), 'elbo_std': std(elbo),
      'accuracy': float(accuracy.mean()), 'accuracy_std': std(accuracy),
      'valid_accuracy': 100 * out['alphas'][alpha]['valid_accuracy'],
      'data': results[0].get('data', '?'), 'num_train': results[0].get('num_train'),
      'num_labelled': results[0].get('num_labelled'),
      'num_test': results[0].get('test/num_examples'),
      'num_valid': results[0].get('valid/num_examples'),
  })
  return out


def _mean_std(mean, std, digits, suffix=''):
  spread = '' if math.isnan(std) else f' ± {std:.{digits}f}'
  return f'{mean:.{digits}f}{spread}{suffix}'


def describe_preset(preset: str) -> list[str]:
  """What `preset` changes from the paper preset (read from the configs, not written out)."""
  if preset == 'paper':
    return []
  ours = loop_config.flatten_config(table_config.get_config(f'preset={preset}'))
  paper = loop_config.flatten_config(table_config.get_config('preset=paper'))
  changed = [f'`{k}` {ours[k]} (paper preset: {paper[k]})' for k in sorted(ours)
             if ours[k] != paper[k]]
  s, p = table_config.SWEEPS[preset], table_config.SWEEPS['paper']
  return [f'Preset `{preset}` cuts from the paper preset: ' + '; '.join(changed) + '; '
          f'alphas {list(s["alphas"])} of {list(p["alphas"])}; seeds {list(s["seeds"])} '
          f'(paper preset: {list(p["seeds"])}).']


def write_table(cells: dict, workdir: str, preset: str,
                wall_seconds: float | None = None) -> str:
  """Writes table2.md and table2.csv; returns the markdown."""
  summaries = {mode: summarize(members) for mode, members in cells.items()}
  lines = ['| | ELBO (ours) | ELBO (paper) | accuracy (ours) | accuracy (paper) | alpha | seeds |'
           ' valid accuracy |', '|---|---|---|---|---|---|---|---|']
  csv_rows = []
  for mode, s in summaries.items():
    paper_elbo, paper_accuracy = PAPER[mode]
    if 'alpha' in s:
      cells_text = [_mean_std(s['elbo'], s['elbo_std'], 1),
                    f'{paper_elbo}', _mean_std(s['accuracy'], s['accuracy_std'], 1, '%'),
                    f'{paper_accuracy}%', f'{s["alpha"]}', f'{s["seeds"]}',
                    f'{s["valid_accuracy"]:.1f}%']
    else:
      status = 'missing' if s['missing'] else 'diverged'
      cells_text = [status, f'{paper_elbo}', status, f'{paper_accuracy}%', '', '', '']
    lines.append(f'| {ROW_NAMES[mode]} | ' + ' | '.join(cells_text) + ' |')
    csv_rows.append({
        'mode': mode, 'paper_elbo': paper_elbo, 'paper_accuracy': paper_accuracy,
        'elbo': s.get('elbo'), 'elbo_std': s.get('elbo_std'), 'accuracy': s.get('accuracy'),
        'accuracy_std': s.get('accuracy_std'), 'alpha': s.get('alpha'), 'seeds': s.get('seeds'),
        'valid_accuracy': s.get('valid_accuracy'), 'data': s.get('data'),
        'missing': len(s['missing']), 'diverged': len(s['diverged'])})
  md = [f'# [GS] Table 2, preset `{preset}`', '',
        'Test ELBO (nats; the exact sum over y with one z per class and image, for every mode '
        'alike) and test accuracy (argmax q(y|x)): mean ± standard deviation over seeds at the '
        'alpha with the best mean validation accuracy. Paper: [GS] Table 2, full MNIST.', '']
  md += lines
  some = next((s for s in summaries.values() if 'data' in s), None)
  if some is not None:
    md += ['', f'Data: {some["data"]}, {some["num_train"]} training images of which '
               f'{some["num_labelled"]} labelled (10 per class, chosen by the seed), '
               f'{some["num_valid"]} validation, {some["num_test"]} test.']
  md += describe_preset(preset)
  if wall_seconds is not None:
    md.append(f'Wall time of this run: {progress.format_duration(wall_seconds)}.')
  md += ['', '| mode | alpha | seeds | valid accuracy | test accuracy | test ELBO |',
         '|---|---|---|---|---|---|']
  for mode, s in summaries.items():
    for alpha, a in s['alphas'].items():
      mark = ' (chosen)' if alpha == s.get('alpha') else ''
      md.append(f'| {ROW_NAMES[mode]} | {alpha}{mark} | {a["seeds"]} | '
                f'{100 * a["valid_accuracy"]:.1f}% | {100 * a["accuracy"]:.1f}% | '
                f'{a["elbo"]:.1f} |')
  return tables.write(workdir, 'table2', md, csv_rows, summaries, first_field='mode')


def main(argv):
  try:
    _main(argv)
  except preemption.Preempted as e:  # Logged with what was saved; rerun to resume.
    sys.exit(e.exit_status)


def _main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  progress.quiet_orbax_logs()
  if not FLAGS.workdir:
    raise app.UsageError('--workdir is required.')
  for mode in FLAGS.modes:
    if mode not in ROWS:
      raise app.UsageError(f'Unknown mode {mode!r}; allowed: {ROWS}.')
  overrides = {k: v for k, v in (('data.source', FLAGS.data_source),
                                 ('data.dir', FLAGS.data_dir)) if v is not None}
  start = time.perf_counter()
  cells = cell_members(FLAGS.preset, FLAGS.modes, FLAGS.workdir, overrides)
  members = [m for ms in cells.values() for m in ms]
  _, count = sweep.parse_shard(FLAGS.shard)
  if not FLAGS.collect_only:
    launcher.launch(members, workers=FLAGS.workers, shard_spec=FLAGS.shard,
                    max_group_size=FLAGS.max_group_size, log_dir=FLAGS.workdir,
                    label=f'Table 2 ({FLAGS.preset}, {len(cells)} modes)')
  wall = time.perf_counter() - start if not FLAGS.collect_only and count == 1 else None
  os.makedirs(FLAGS.workdir, exist_ok=True)
  print(write_table(cells, FLAGS.workdir, FLAGS.preset, wall))


if __name__ == '__main__':
  define_flags()
  app.run(main)
