r"""Reproduces [GS] Table 1: every estimator on the four models, by one command.

  python -m scripts.reproduce_table1 --preset=small --workdir=/tmp/table1
  python -m scripts.reproduce_table1 --preset=paper --workdir=DIR --shard=$I/$N   # job array
  python -m scripts.reproduce_table1 --preset=paper --workdir=DIR --collect_only  # table only
  python -m scripts.reproduce_table1 --preset=small --workdir=DIR --workers=2     # 2 local processes

On a CPU, without --shard, the grid is trained by one local worker process
per core (at most 8; --workers=N sets N, --workers=1 trains in this process, also
with XLA on one thread).

Runs the sweep of every cell (seeds x learning rates, one vmapped program
per cell, `configs/estimator_comparison.py`), picks each cell's learning rate (and,
in the paper preset's VAE cells with a scheduled temperature, the annealing)
by the mean validation metric over seeds (diverged members excluded), and
writes `table1.md` and `table1.csv` into --workdir: test metric mean and
spread (standard deviation over seeds) at that choice, beside the
paper's number. Members that have not finished are named under the table.
--shard=i/n trains the i-th of n interleaved slices of the whole grid into
the shared workdir (finished members are never trained again); any run,
or --collect_only, writes the table from what has finished so far.
The data can be overridden, e.g. --data_source=idx
--data_dir=/usr/share/datasets/fashion-mnist --data_name=fashion_mnist.
"""

import functools
import json
import math
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np
import scipy.stats

from configs import estimator_comparison as table_config
from experiments import estimator_comparison
from experiments import evaluation
from experiments import launcher
from experiments import metric_writer
from experiments import preemption
from experiments import programs
from experiments import progress
from experiments import run_files
from experiments import sweep
from experiments import training
import gumbel
from scripts import tables

ROWS = ('sbn_bern', 'sbn_cat', 'vae_bern', 'vae_cat')
ROW_NAMES = {'sbn_bern': 'SBN (Bern.)', 'sbn_cat': 'SBN (Cat.)',
             'vae_bern': 'VAE (Bern.)', 'vae_cat': 'VAE (Cat.)'}
PAPER_COLUMNS = ('sf', 'darn', 'muprop', 'st', 'annealed_st', 'gumbel_softmax',
                 'st_gumbel_softmax')
COLUMNS = PAPER_COLUMNS + ('rebar', 'relax', 'arm', 'disarm', 'vimco', 'gumbel_rao', 'reinmax',
                           'gapped_st', 'zgr', 'rloo')
ORDERS = ('slow_first', 'cheap_first')  # Of the local workers' queue (--order).
# [GS] Table 1 (nats): SBN rows test NLL, VAE rows test -ELBO.
PAPER = {
    'sbn_bern': (72.0, 59.7, 58.9, 58.9, 58.7, 58.5, 59.3),
    'sbn_cat': (73.1, 67.9, 63.0, 61.8, 61.1, 59.0, 59.7),
    'vae_bern': (112.2, 110.9, 109.7, 116.0, 111.5, 105.0, 111.5),
    'vae_cat': (110.6, 128.8, 107.0, 110.9, 107.8, 101.5, 107.8),
}

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command-line flags (only when run as a script: tests import scripts)."""
  flags.DEFINE_enum('preset', 'small', table_config.PRESETS,
                    'Preset of every cell (tiny: for tests).')
  flags.DEFINE_string('workdir', None, 'Shared folder of all runs and the table.')
  flags.DEFINE_string('table_dir', None, 'Where table1.md and table1.csv go (default: --workdir).')
  flags.DEFINE_string('shard', '0/1', 'Train slice i of n of the grid.')
  flags.DEFINE_list('rows', list(ROWS), f'Rows, from {ROWS}.')
  flags.DEFINE_list('estimators', list(COLUMNS), 'Columns (estimator names).')
  flags.DEFINE_bool('collect_only', False, 'Only write the table from finished runs.')
  flags.DEFINE_string('data_source', None, 'Override data.source.')
  flags.DEFINE_string('data_dir', None, 'Override data.dir.')
  flags.DEFINE_string('data_name', None, 'Override data.name.')
  flags.DEFINE_string('binarization', None, 'Override data.binarization.')
  flags.DEFINE_bool('estimate', False, 'Print each cell\'s runs, member-steps and estimated '
                    'hours on this machine (from a short timing of each compiled program) and '
                    'the total, then exit without training.')
  flags.DEFINE_integer('estimate_steps', 20, 'Steps timed per program by --estimate.')
  flags.DEFINE_enum('order', 'slow_first', ORDERS,
                    'Queue order with local workers: slow_first (the slowest cells start first, '
                    'so that a whole grid finishes together) or cheap_first (the cheapest start '
                    'first, so that a session which stops part-way has finished the most cells).')
  flags.DEFINE_integer('workers', 0, 'Local worker processes sharing the grid as a work queue, '
                       'XLA on one thread each (1: this process, also on one thread); 0: one '
                       'per CPU core (at most 8) when JAX runs on the CPU and --shard is not '
                       'given, else 1.')


def supported(row: str, estimator: str) -> bool:
  _, latent = table_config.MODELS[row]
  return latent in gumbel.get_estimator(estimator).kinds


def cell_members(preset, rows, estimators, workdir, overrides=None) -> dict:
  """`{(row, estimator): [sweep.Member]}` for every supported cell."""
  cells = {}
  for row in rows:
    for name in estimators:
      if not supported(row, name):
        continue
      arg = f'model={row},estimator={name},preset={preset}'
      cells[(row, name)] = sweep.expand(
          cell_config(row, name, preset, overrides), table_config.get_hyper(sweep, arg),
          os.path.join(workdir, row, name))
  return cells


def cell_config(row: str, estimator: str, preset: str, overrides=None):
  """One cell's config before its sweep, with `overrides` (flattened keys) set."""
  config = table_config.get_config(f'model={row},estimator={estimator},preset={preset}')
  config.lock()  # Unknown override keys fail.
  try:
    config.update_from_flattened_dict(dict(overrides or {}))
  except (KeyError, AttributeError) as e:
    raise ValueError(f'Override not in the config of {row} {estimator}: {e}') from None
  return config


def metric_names(config) -> tuple[str, str]:
  """(validation metric, test metric) of a member config: lower is better.

  Both rows' number is the m-sample bound `nll` ([GS] section 4: SBN test NLL
  and the VAEs' "multi-sample bound for evaluation with m = 1000"); the
  validation split chooses on the same kind of bound (m =
  eval.valid_num_samples).
  """
  del config
  return 'valid/nll', 'test/nll'


# Other test metrics a cell reports beside its number (csv columns), when present.
EXTRA_TEST_METRICS = {'neg_elbo': 'test/neg_elbo', 'nll_bound': 'test/nll_bound',
                      'relaxed': 'test/relaxed_neg_elbo', 'relaxed_sbn': 'test/relaxed_nll_bound'}


# The swept fields that validation chooses (the seeds are averaged over).
CHOSEN_ON_VALIDATION = ('optimizer.learning_rate', 'temperature.interval', 'temperature.rate',
                        'estimator.slope.schedule')


def _setting(config) -> tuple:
  return tuple(functools.reduce(getattr, key.split('.'), config) for key in CHOSEN_ON_VALIDATION)


def run_seconds(workdir: str) -> float:
  """Seconds of one member's share of its program: training chunks (from the
  logged steps/s of each chunk) and its evaluation, over the members."""
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return float('nan')
  seconds, previous = 0.0, 0
  for record in metric_writer.read_metrics(workdir):  # Cut lines are dropped, with a warning.
    if record.get('steps_per_sec'):
      seconds += (record['step'] - previous) / record['steps_per_sec']
      previous = record['step']
  result = run_files.read_result(workdir)
  seconds += sum(v for k, v in result.items() if k.endswith('/eval_seconds'))
  members = (result.get('provenance') or {}).get('members_in_program', 1)
  return seconds / members


def summarize(members) -> dict:
  """Picks the learning rate (and annealing) on validation; test mean/std over seeds there."""
  valid_key, test_key = metric_names(members[0].config)
  found = sweep.outcomes(members, valid_key)
  by_setting, workdirs = {}, {}
  for m, result in found.finished:
    by_setting.setdefault(_setting(m.config), []).append(result)
    workdirs.setdefault(_setting(m.config), []).append(m.workdir)
  out = {'missing': found.missing, 'diverged': found.diverged, 'test_key': test_key,
         'runs': len(members)}
  if not by_setting:
    return out
  best = min(by_setting, key=lambda k: np.mean([r[valid_key] for r in by_setting[k]]))
  chosen = by_setting[best]
  tests = np.asarray([r[test_key] for r in chosen])
  out.update({
      'learning_rate': best[0], 'mean': float(tests.mean()), 'workdirs': workdirs[best],
      'std': float(tests.std(ddof=1)) if len(tests) > 1 else float('nan'),
      'seeds': len(tests), 'valid': float(np.mean([r[valid_key] for r in chosen])),
      'data': chosen[0].get('data', '?'),
      'm': members[0].config.eval.num_samples,
      'prior': members[0].config.model.prior if members[0].config.model.task == 'vae' else '',
      'commits': sorted({str((r.get('provenance') or {}).get('git_commit'))[:10]
                         for r in chosen}),
      'run_seconds': float(np.mean([run_seconds(w) for w in workdirs[best]])),
  })
  for name, key in EXTRA_TEST_METRICS.items():
    if all(key in r for r in chosen):
      out[name] = float(np.mean([r[key] for r in chosen]))
  # What else the cell swept (the annealing, in the paper preset's VAE cells).
  varying = [i for i in range(1, len(CHOSEN_ON_VALIDATION))
             if len({_setting(m.config)[i] for m in members}) > 1]
  out['chosen'] = ','.join(f'{CHOSEN_ON_VALIDATION[i]}={best[i]}' for i in varying)
  return out


def _spearman(a, b) -> float:
  """Spearman's rank correlation; tied values (the paper's 58.9, 58.9) share their mean rank."""
  return float(scipy.stats.spearmanr(a, b).statistic)


def _ordering(values: dict) -> str:
  return ' < '.join(sorted(values, key=values.get))


# The newest straight-through and leave-one-out estimators, and the peers they are set against.
NEWEST = ('gapped_st', 'zgr', 'rloo')
PEERS = ('st_gumbel_softmax', 'gumbel_rao', 'reinmax')


def _partial_runs(summary: dict) -> str:
  """' [k of n runs]' for a cell chosen among its finished runs only, else ''."""
  if not summary.get('missing'):
    return ''
  return f' [{summary["runs"] - len(summary["missing"])} of {summary["runs"]} runs]'


def _against_peers(summaries: dict, rows) -> list[str]:
  """Markdown lines: each finished NEWEST cell minus each finished PEERS cell of its row."""
  def mean(row, c):
    return summaries.get((row, c), {}).get('mean')

  lines = []
  for row in rows:
    for c in NEWEST:
      ours = mean(row, c)
      if ours is None:
        continue
      diffs = [f'{ours - mean(row, p):+.1f}' if mean(row, p) is not None else 'missing'
               for p in PEERS]
      lines.append(f'| {ROW_NAMES[row]} | {c} | {ours:.1f}{_partial_runs(summaries[(row, c)])} | '
                   + ' | '.join(diffs) + ' |')
  if not lines:
    return []
  return ['', 'The newest estimators against their peers: the cell, and it minus each peer\'s '
          'cell of the row (nats; negative: better than the peer).', '',
          '| model | estimator | ours | ' + ' | '.join(f'minus {p}' for p in PEERS) + ' |',
          '|---|---|---|' + '---|' * len(PEERS)] + lines


def write_table(cells: dict, rows, estimators, workdir: str, preset: str,
                wall_seconds: float | None = None) -> str:
  """Writes table1.md and table1.csv; returns the markdown."""
  summaries = {key: summarize(members) for key, members in cells.items()}
  columns = [c for c in COLUMNS if c in estimators]
  header = ['model'] + [f'{c} (paper, diff)' if c in PAPER_COLUMNS else c for c in columns]
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  csv_rows = []
  for row in rows:
    cellsx = [ROW_NAMES[row]]
    for c in columns:
      paper = PAPER[row][PAPER_COLUMNS.index(c)] if c in PAPER_COLUMNS else None
      s = summaries.get((row, c))
      if s is None:
        text = 'n/a'
      elif 'mean' not in s:
        text = 'missing' if s['missing'] else 'diverged'
      else:
        spread = '' if math.isnan(s['std']) else f' ± {s["std"]:.1f}'
        text = f'{s["mean"]:.1f}{spread}{_partial_runs(s)}'
      if paper is not None:
        text += (f' ({paper}, {s["mean"] - paper:+.1f})' if s is not None and 'mean' in s
                 else f' ({paper})')
      cellsx.append(text)
      if s is not None:
        csv_rows.append({
            'row': row, 'estimator': c, 'paper': paper, 'mean': s.get('mean'),
            'diff': (s['mean'] - paper) if paper is not None and 'mean' in s else None,
            'std': s.get('std'), 'seeds': s.get('seeds'), 'learning_rate': s.get('learning_rate'),
            'also_chosen': s.get('chosen', ''), 'valid': s.get('valid'),
            'metric': s['test_key'], 'm': s.get('m'),
            'neg_elbo_one_sample': s.get('neg_elbo'),
            'relaxed_final_tau': s.get('relaxed', s.get('relaxed_sbn')),
            'discrete_one_sample': s.get('neg_elbo', s.get('nll_bound')),
            'prior': s.get('prior'), 'data': s.get('data'),
            'run_seconds': s.get('run_seconds'), 'commits': ' '.join(s.get('commits', [])),
            'missing': len(s['missing']), 'diverged': len(s['diverged'])})
    lines.append('| ' + ' | '.join(cellsx) + ' |')
  priors = sorted({s['prior'] for s in summaries.values() if s.get('prior')})
  ms = sorted({s['m'] for s in summaries.values() if s.get('m')})
  md = [f'# [GS] Table 1, preset `{preset}`', '',
        f'Both rows\' number is the test m-sample bound (m = {", ".join(map(str, ms)) or "?"}) '
        'of the discrete model: SBN rows -log (1/m) sum_i p(x_lower | h_i); VAE rows -log (1/m) '
        'sum_i p(x, z_i) / q(z_i | x) ([GS] section 4.2), the one-sample -ELBO beside it in '
        f'table1.csv; VAE prior: {", ".join(priors) or "?"}. Each cell: mean (± standard '
        'deviation over seeds, where there are several) at the learning rate (and, where '
        'swept, the annealing) chosen on validation on the same kind of bound; table1.csv '
        'names them. (paper, diff): [GS] Table 1 and ours minus the paper\'s, measured on the '
        'Larochelle binarized MNIST, which is not available offline.', '']
  md += lines
  data = sorted({s.get('data') for s in summaries.values() if s.get('data')})
  commits = sorted({c for s in summaries.values() for c in s.get('commits', [])})
  md += ['', f'Data: {", ".join(data) or "?"}. Code: commit(s) {", ".join(commits) or "?"}.']
  if wall_seconds is not None:
    md.append(f'Wall time of this run: {progress.format_duration(wall_seconds)}.')
  # How our ordering of the paper's estimators compares with the paper's.
  md += ['', '| model | our ordering (paper columns, best first) | paper\'s ordering | '
         'Spearman rank correlation |', '|---|---|---|---|']
  for row in rows:
    ours = {c: summaries.get((row, c), {}).get('mean') for c in PAPER_COLUMNS}
    ours = {c: v for c, v in ours.items() if v is not None}
    if len(ours) < 3:
      continue
    paper = {c: PAPER[row][PAPER_COLUMNS.index(c)] for c in ours}
    md.append(f'| {ROW_NAMES[row]} | {_ordering(ours)} | {_ordering(paper)} | '
              f'{_spearman(list(ours.values()), list(paper.values())):+.2f} |')
  md += _against_peers(summaries, rows)
  gaps = [r for r in csv_rows if r['relaxed_final_tau'] is not None and r['mean'] is not None]
  if gaps:
    md += ['', 'Estimators trained on relaxed samples: the relaxed objective they train on, at '
           'the final temperature, beside the same one-sample objective of the discrete model '
           '(test, nats; [CON] Figure 4\'s integrality gap).', '',
           '| model | estimator | discrete, one sample | relaxed, one sample | gap |',
           '|---|---|---|---|---|']
    for r in gaps:
      md.append(f'| {ROW_NAMES[r["row"]]} | {r["estimator"]} | {r["discrete_one_sample"]:.1f} | '
                f'{r["relaxed_final_tau"]:.1f} | {r["discrete_one_sample"] - r["relaxed_final_tau"]:+.1f} |')
  return tables.write(workdir, 'table1', md, csv_rows, summaries, first_field='row')


def _cost(member) -> float:
  """A member's relative cost: the estimator's declared cost, twice for the two-layer SBNs."""
  config = member.config
  cost = gumbel.get_estimator(config.estimator.name).cost.get(config.model.latent, 1)
  return cost * (2 if config.model.task == 'sbn' else 1)


def queue_order(members, order: str) -> list:
  """The members as a work queue; a stable sort, so a cell's members stay in grid order."""
  if order not in ORDERS:
    raise ValueError(f'Unknown queue order {order!r}; allowed: {ORDERS}.')
  sign = -1 if order == 'slow_first' else 1
  return sorted(members, key=lambda m: sign * _cost(m))


def main(argv):
  try:
    _main(argv)
  except preemption.Preempted as e:  # Logged with what was saved; rerun to resume.
    sys.exit(e.exit_status)


# The H200 sweep benchmark (docs/benchmarks/benchmark_sweep_{cpu,h200}.jsonl):
# aggregate model-steps/s of a Table 1 program on one H200 over one member on
# this CPU, for a group of one member (alone) and of 8 vmapped members.
_BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           'docs', 'benchmarks')


def h200_speedups() -> dict:
  """`{(task, group size 1 or 8): H200 aggregate model-steps/s over this CPU's}`."""
  def read(name):
    with open(os.path.join(_BENCHMARKS, name)) as f:
      return {(r['model'], r['setting']): r['aggregate_model_steps_per_sec']
              for r in map(json.loads, f)}
  cpu, gpu = read('benchmark_sweep_cpu.jsonl'), read('benchmark_sweep_h200.jsonl')
  out = {}
  for model, task in (('vae_cat', 'vae'), ('sbn_cat', 'sbn')):
    out[(task, 1)] = gpu[(model, 'alone')] / cpu[(model, 'alone')]
    out[(task, 8)] = gpu[(model, 'vmap8')] / cpu[(model, 'alone')]
  return out


def time_cell(config, dataset, steps: int) -> dict:
  """Seconds per training step and per run of one member (training, grad_var, evaluation).

  Compiles the cell's program, times `steps` steps after compilation and one
  batch of each evaluation split, and scales them to the config's budget.
  """
  task = estimator_comparison.create_task(config, dataset)
  group = training.prepare(task, [config])  # The loop's own start and program.
  timed = programs.chunk_timer(group, steps)
  compile_seconds = timed()[0]
  step_seconds = timed()[0] / steps
  state, keys = group.state, group.keys
  eval_seconds = 0.0
  for split, examples in task.eval_data.items():
    n = len(jax.tree.leaves(examples)[0])
    if not n:
      continue
    fn = evaluation.jit_over_members(task.eval_batch[split], False)
    batch = jax.tree.map(lambda x: x[:config.eval.batch_size], examples)
    evaluation.evaluate(fn, state['params'], state['extra'], batch, keys['eval'],
                        config.eval.batch_size)  # Compiles.
    start = time.perf_counter()
    evaluation.evaluate(fn, state['params'], state['extra'], batch, keys['eval'],
                        config.eval.batch_size)
    eval_seconds += (time.perf_counter() - start) * math.ceil(n / config.eval.batch_size)
  grad_var_steps = (config.num_train_steps // config.grad_var_every * config.grad_var_samples
                    if config.grad_var_every else 0)
  per_run = (config.num_train_steps + grad_var_steps) * step_seconds + eval_seconds
  return {'step_seconds': step_seconds, 'eval_seconds': eval_seconds,
          'compile_seconds': compile_seconds, 'run_seconds': per_run}


def estimate(cells: dict, steps: int, workers: int) -> str:
  """The --estimate table: per cell its runs, member-steps and hours here and on one H200."""
  speedups = h200_speedups()
  datasets = {}
  lines = ['| model | estimator | runs | member-steps | ms/step | eval s/run | hours/run | '
           'hours (cell) | paper preset: runs | hours |', '|---|---|---|---|---|---|---|---|---|---|']
  total = paper_total = h200 = paper_h200 = 0.0
  num_runs = num_paper_runs = 0
  for (row, name), members in cells.items():
    config = members[0].config
    data_key = config.data.to_json()
    if data_key not in datasets:
      datasets[data_key] = estimator_comparison.input_pipeline.load_dataset(config.data)
    t = time_cell(config, datasets[data_key], steps)
    paper_runs = len(sweep.expand(config, table_config.get_hyper(
        sweep, f'model={row},estimator={name},preset=paper'), '/nonexistent'))
    cell, paper_cell = len(members) * t['run_seconds'], paper_runs * t['run_seconds']
    total, paper_total = total + cell, paper_total + paper_cell
    num_runs, num_paper_runs = num_runs + len(members), num_paper_runs + paper_runs
    task = config.model.task
    group = len(sweep.group(members)[0])
    h200 += cell / speedups[(task, 1 if group < 8 else 8)]
    paper_h200 += paper_cell / speedups[(task, 8)]
    lines.append(f'| {ROW_NAMES[row]} | {name} | {len(members)} | '
                 f'{len(members) * config.num_train_steps:,} | {1000 * t["step_seconds"]:.2f} | '
                 f'{t["eval_seconds"]:.0f} | {t["run_seconds"] / 3600:.3f} | {cell / 3600:.2f} | '
                 f'{paper_runs} | {paper_cell / 3600:.1f} |')
    logging.info('estimate %s %s: %s (compiled in %.1f s)', row, name, t, t['compile_seconds'])
  lines += ['', f'Total: {num_runs} runs, {total / 3600:.1f} CPU-hours on this machine, '
            f'{total / 3600 / workers:.1f} h wall with {workers} worker(s); about '
            f'{h200 / 3600:.1f} h on one H200. The paper preset (same runs, three seeds x six '
            f'learning rates): {num_paper_runs} runs, {paper_total / 3600:.0f} CPU-hours here, '
            f'about {paper_h200 / 3600:.1f} h on one H200.',
            'H200 hours scale each cell by the H200 sweep benchmark (docs/benchmarks/'
            'benchmark_sweep_*.jsonl: VAE (Cat.) gumbel_softmax for the VAE cells, SBN (Cat.) '
            'rebar for the SBN cells; one member alone for groups under 8, 8 vmapped '
            'members otherwise), evaluation included.']
  return '\n'.join(lines)


def _main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  progress.quiet_orbax_logs()
  if FLAGS.estimate or (FLAGS.workers == 1 and not FLAGS.collect_only):
    # Time, or train in this process, as a --workers process does: XLA on one thread.
    launcher.pin_xla_to_one_thread()
  if not FLAGS.workdir:
    raise app.UsageError('--workdir is required.')
  for row in FLAGS.rows:
    if row not in ROWS:
      raise app.UsageError(f'Unknown row {row!r}; allowed: {ROWS}.')
  for name in FLAGS.estimators:
    gumbel.get_estimator(name)  # Unknown names list the valid ones.
  overrides = {k: v for k, v in (('data.source', FLAGS.data_source),
                                 ('data.dir', FLAGS.data_dir),
                                 ('data.name', FLAGS.data_name),
                                 ('data.binarization', FLAGS.binarization)) if v is not None}
  start = time.perf_counter()
  cells = cell_members(FLAGS.preset, FLAGS.rows, FLAGS.estimators, FLAGS.workdir, overrides)
  members = [m for ms in cells.values() for m in ms]
  index, count = sweep.parse_shard(FLAGS.shard)
  if FLAGS.estimate:
    print(estimate(cells, FLAGS.estimate_steps, launcher.num_workers(FLAGS.workers, count)))
    return
  if not FLAGS.collect_only:
    # With local workers the queue is ordered by cost (--order); shards keep the grid's order.
    queue = members if count != 1 else queue_order(members, FLAGS.order)
    launcher.launch(queue, workers=FLAGS.workers, shard_spec=FLAGS.shard,
                    log_dir=FLAGS.workdir, label=f'Table 1 ({FLAGS.preset}, {len(cells)} cells)')
  wall = time.perf_counter() - start if not FLAGS.collect_only and count == 1 else None
  os.makedirs(FLAGS.workdir, exist_ok=True)
  table_dir = FLAGS.table_dir or FLAGS.workdir
  os.makedirs(table_dir, exist_ok=True)
  print(write_table(cells, FLAGS.rows, FLAGS.estimators, table_dir, FLAGS.preset, wall))


if __name__ == '__main__':
  define_flags()
  app.run(main)
