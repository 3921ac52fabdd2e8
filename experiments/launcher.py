"""Trains a sweep's grid: in this process, as a shard, or in local worker processes.

`launch` (what the launcher and both table scripts call) trains a shard in
this process, or the whole grid in `run_local`'s worker processes (one per
CPU core by default on a CPU, `num_workers`), which take the members from a
queue file the parent writes (not from re-parsed flags) and share them as a
work queue (a claim file per group); `max_group_size` caps the members per
compiled program (`sweep.resolve_group_size`: -1 is one per program on a
CPU). `run` trains what is not finished yet, so a killed sweep resumes where
it stopped and never retrains a finished member.

The queue file is data, not code: JSON with each member's config, workdir
and experiment by its registered name (`registry.EXPERIMENTS`). A worker
refuses any other file (`read_queue`), so whoever can write the log folder
can choose which registered experiments run with which configs, but cannot
make a worker run code of their own.

  python -m experiments.launcher QUEUE_FILE   # one worker of run_local (internal)
"""

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any, Optional, Sequence

from absl import logging
import jax
import ml_collections

from experiments import preemption
from experiments import progress
from experiments import registry
from experiments import run_files
from experiments import sweep
from experiments import training

QUEUE_FORMAT = 'gumbel-sweep-queue/1'


_MAX_AUTO_WORKERS = 8  # Each worker holds its own copy of the data and compiled programs.


def num_workers(requested: int, shard_count: int = 1) -> int:
  """Local worker processes: `requested`, or with 0 one per CPU core (at most 8)
  when JAX runs on the CPU and the grid is not sharded; else 1 (one process
  drives an accelerator, several vmapped members fill it)."""
  if requested < 0:
    raise ValueError(f'--workers must be >= 0, got {requested}.')
  if requested:
    return requested
  if shard_count != 1 or jax.default_backend() != 'cpu':
    return 1
  return max(1, min(os.cpu_count() or 1, _MAX_AUTO_WORKERS))


# ----------------------------------------------------------------------------
# Running.
# ----------------------------------------------------------------------------


def run(members: Sequence[sweep.Member], *, devices: Optional[Sequence[Any]] = None,
        claim: bool = False, max_group_size: int = 0) -> dict[str, dict]:
  """Trains the members that are not finished, one compiled program per group.

  Args:
    members: the grid (or a shard of it).
    devices: the devices to shard each group's members over (default: all).
    claim: several local processes share the grid as a work queue: a group
      is trained by the process that first creates its claim file (see
      `clear_claims`); the others skip it.
    max_group_size: members per compiled program at most (0: no limit; -1:
      `resolve_group_size`).

  Returns:
    `{workdir: result}` of every member finished earlier or trained here.
  """
  groups = sweep.group(members, sweep.resolve_group_size(max_group_size))
  results = {}
  start = time.perf_counter()
  trained = 0
  for k, g in enumerate(groups):
    label = f'[{k + 1}/{len(groups)} {os.path.dirname(g[0].workdir)}] '
    todo = [m for m in g if not _finished(m)]
    for m in g:
      if m not in todo:
        logging.info('%s%s is finished (result.json); not training it again.', label, m.workdir)
        results[m.workdir] = run_files.read_result(m.workdir)
    if todo and (not claim or _claim(todo)):
      create_task = registry.get_experiment(todo[0].experiment).create_task
      outputs = training.run(create_task, [m.config for m in todo],
                             [m.workdir for m in todo], on_nonfinite='mark',
                             devices=devices, label=label)
      for m, out in zip(todo, outputs):
        results[m.workdir] = out['result']
      trained += 1
    remaining = sum(1 for g2 in groups[k + 1:] if any(not _finished(m) for m in g2))
    elapsed = time.perf_counter() - start
    eta = progress.eta_seconds(elapsed, trained, trained + remaining) if remaining else 0.0
    logging.info('Sweep: %d/%d groups done, %s elapsed, ETA %s.', k + 1, len(groups),
                 progress.format_duration(elapsed), progress.format_duration(eta))
  return results


_CLAIM = '.claimed'


def _claim(todo: Sequence[sweep.Member]) -> bool:
  """Atomically claims a group for this process (False: another has it)."""
  path = os.path.join(todo[0].workdir, _CLAIM)
  os.makedirs(todo[0].workdir, exist_ok=True)
  try:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
  except FileExistsError:
    return False
  os.write(fd, str(os.getpid()).encode())
  os.close(fd)
  return True


def clear_claims(members: Sequence[sweep.Member]):
  """Removes the claim files of an earlier work queue (none may be running)."""
  for m in members:
    path = os.path.join(m.workdir, _CLAIM)
    if os.path.exists(path):
      os.remove(path)


def _finished(member: sweep.Member) -> bool:
  return run_files.is_finished(member.config, member.workdir)


# ----------------------------------------------------------------------------
# Spreading a grid over one machine's processes.
# ----------------------------------------------------------------------------


def launch(members: Sequence[sweep.Member], *, workers: int = 1, shard_spec: str = '0/1',
           max_group_size: int = 0, log_dir: Optional[str] = None, label: str = 'Sweep'):
  """Trains a grid: slice `shard_spec` of it here, or all of it in local workers.

  Args:
    members: the whole grid, in the same order on every machine; with
      several workers the queue is taken in this order.
    workers: local worker processes (`num_workers`: 0 is one per core on a
      CPU); with more than one, `shard_spec` must be '0/1'.
    shard_spec: 'i/n', the slice of the grid this process trains.
    max_group_size: members per compiled program at most (0: no limit, -1:
      `resolve_group_size`).
    log_dir: where the workers' logs go (required with several workers).
    label: the prefix of progress lines.
  """
  index, count = sweep.parse_shard(shard_spec)
  n = num_workers(workers, count)
  if n > 1:
    if count != 1:
      raise ValueError('Local workers run the shards of one machine; use them without --shard.')
    run_local(members, n, log_dir, max_group_size=max_group_size, label=label)
    return
  mine = sweep.shard(members, index, count)
  num_groups = len(sweep.group(members, sweep.resolve_group_size(max_group_size)))
  logging.info('%s: %d runs in %d programs; shard %d/%d trains %d of them.', label,
               len(members), num_groups, index, count, len(mine))
  run(mine, max_group_size=max_group_size)


_SINGLE_THREAD_XLA = '--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'


def single_thread_xla_env() -> dict:
  """This process's environment with XLA on one thread (what a local worker runs with)."""
  env = dict(os.environ)
  env['XLA_FLAGS'] = f'{env.get("XLA_FLAGS", "")} {_SINGLE_THREAD_XLA}'.strip()
  return env


def pin_xla_to_one_thread() -> bool:
  """Sets this process's XLA on the CPU to one thread, as a local worker runs.

  For a launcher that trains in its own process (`--workers=1`) or times
  what a worker runs (`--estimate`): its runs then use the XLA flags that
  `run_local`'s workers use (and that every committed result records), and
  two such launchers side by side do not oversubscribe the cores. Must come
  before JAX starts its backend; does nothing when JAX runs elsewhere.

  Returns:
    Whether the flags were set (False: JAX is not on the CPU).

  Raises:
    RuntimeError: JAX's backend has started already (the flags would not apply).
  """
  if jax.config.jax_platforms not in (None, '', 'cpu'):
    return False
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  if xla_bridge.backends_are_initialized():
    raise RuntimeError('pin_xla_to_one_thread must run before JAX starts its backend '
                       '(before the first jax.devices() or computation).')
  flags = os.environ.get('XLA_FLAGS', '')
  if _SINGLE_THREAD_XLA not in flags:
    os.environ['XLA_FLAGS'] = f'{flags} {_SINGLE_THREAD_XLA}'.strip()
  return True


def run_local(members: Sequence[sweep.Member], num_workers: int, log_dir: str, *,
              max_group_size: int = 0, label: str = 'Sweep'):
  """Trains the grid in `num_workers` local processes; logs progress with an ETA.

  The parent writes the members (configs as JSON, workdirs, experiments by
  name: `write_queue`) to a queue file in `log_dir`; each worker (`python -m
  experiments.launcher FILE`) takes the next group nobody has claimed, in the members' order, so
  a long group does not hold up a fixed shard. XLA runs on one thread in
  each, which on small models is as fast per process as two threads and
  lets compilations run side by side. SIGTERM/SIGINT are forwarded once to
  every worker, which saves and stops; the parent then exits with their
  status.

  Raises:
    RuntimeError: a worker failed (its log is named).
  """
  if not log_dir:
    raise ValueError('run_local needs a log_dir for the queue file and the worker logs.')
  os.makedirs(log_dir, exist_ok=True)
  clear_claims(members)
  queue = os.path.join(log_dir, f'queue-{os.getpid()}.json')
  write_queue(queue, members, max_group_size)
  env = single_thread_xla_env()
  procs, logs = [], []
  for i in range(num_workers):
    logs.append(os.path.join(log_dir, f'worker{i}.log'))
    with open(logs[-1], 'a') as log:
      procs.append(subprocess.Popen(
          [sys.executable, '-m', 'experiments.launcher', queue], stdout=log,
          stderr=subprocess.STDOUT, env=env,
          start_new_session=True))  # Signals reach them once, through forward().
  start = time.perf_counter()
  done_before = sum(_finished(m) for m in members)

  def forward(signum, frame):  # Preemption reaches the workers, which save and stop.
    del frame
    for p in procs:
      if p.poll() is None:
        p.send_signal(signum)

  previous = {s: signal.signal(s, forward) for s in preemption.SIGNALS}
  try:
    while any(p.poll() is None for p in procs):
      _wait_and_report(procs, members, start, done_before, logs, label)
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
    os.remove(queue)
  statuses = {p.returncode for p in procs}
  preempted = statuses & {128 + s for s in preemption.SIGNALS}
  if preempted:
    logging.warning('%s workers stopped at a signal; rerun the same command to resume.', label)
    sys.exit(max(preempted))
  failed = [log for p, log in zip(procs, logs) if p.returncode != 0]
  if failed:
    raise RuntimeError(f'Worker(s) failed; see {failed}. Rerun the same command to resume.')


def _wait_and_report(procs, members, start, done_before, logs, label):
  """Waits up to PROGRESS_SECONDS, then logs the runs finished and an ETA."""
  deadline = time.perf_counter() + progress.PROGRESS_SECONDS
  while time.perf_counter() < deadline and any(p.poll() is None for p in procs):
    time.sleep(0.5)
  done = sum(_finished(m) for m in members)
  elapsed = time.perf_counter() - start
  eta = progress.eta_seconds(elapsed, done - done_before, len(members) - done_before)
  logging.info('%s: %d/%d runs finished, %s elapsed, ETA %s (worker logs: %s).', label, done,
               len(members), progress.format_duration(elapsed), progress.format_duration(eta),
               ', '.join(logs))


# ----------------------------------------------------------------------------
# The queue file: configs as JSON, experiments by name.
# ----------------------------------------------------------------------------


def _encode(value: Any) -> Any:
  """A config value as JSON data; tuples tagged so that they come back as tuples."""
  if isinstance(value, tuple):
    return {'__tuple__': [_encode(v) for v in value]}
  if isinstance(value, list):
    return [_encode(v) for v in value]
  if isinstance(value, dict):
    return {k: _encode(v) for k, v in value.items()}
  return value


def _decode(value: Any) -> Any:
  if isinstance(value, list):
    return [_decode(v) for v in value]
  if isinstance(value, dict):
    if set(value) == {'__tuple__'}:
      return tuple(_decode(v) for v in value['__tuple__'])
    return {k: _decode(v) for k, v in value.items()}
  return value


def write_queue(path: str, members: Sequence[sweep.Member], max_group_size: int):
  """Writes the members as a queue file for `run_local`'s workers.

  Raises:
    ValueError: a member's experiment is not registered, or its config holds
      a value that is not JSON data (it would not reach the workers as it is).
  """
  entries = []
  for m in members:
    registry.get_experiment(m.experiment)  # Raises for an unregistered name.
    config = m.config.to_dict()
    encoded = _encode(config)
    try:
      same = _decode(json.loads(json.dumps(encoded))) == config
    except (TypeError, ValueError):  # json.dumps: a value JSON has no form for.
      same = False
    if not same:
      raise ValueError(f'The config of {m.workdir} holds values that are not JSON data '
                       '(numbers, strings, booleans, None, lists, tuples, dicts).')
    entries.append({'experiment': m.experiment, 'workdir': m.workdir, 'config': encoded})
  with open(path, 'w') as f:
    json.dump({'format': QUEUE_FORMAT, 'max_group_size': max_group_size, 'members': entries},
              f)


def read_queue(path: str) -> tuple[list[sweep.Member], int]:
  """The members and `max_group_size` of a queue file that `write_queue` wrote.

  Raises:
    ValueError: the file is not such a queue (not JSON, another format, an
      experiment that is not registered, a malformed member), naming why.
  """
  with open(path, 'rb') as f:
    raw = f.read()
  try:
    spec = json.loads(raw.decode('utf-8'))
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ValueError(f'{path} is not a sweep queue: not JSON ({e}). Workers read only the '
                     f'JSON queue that run_local writes.') from None
  if not isinstance(spec, dict) or spec.get('format') != QUEUE_FORMAT:
    raise ValueError(f'{path} is not a sweep queue of format {QUEUE_FORMAT!r}.')
  if set(spec) != {'format', 'max_group_size', 'members'} or not isinstance(
      spec['max_group_size'], int) or not isinstance(spec['members'], list):
    raise ValueError(f'{path}: a queue holds exactly format, max_group_size (an int) and '
                     f'members (a list); got keys {sorted(spec)}.')
  members = []
  for i, entry in enumerate(spec['members']):
    if (not isinstance(entry, dict) or set(entry) != {'experiment', 'workdir', 'config'}
        or not isinstance(entry['workdir'], str) or not isinstance(entry['config'], dict)):
      raise ValueError(f'{path}: member {i} must be {{experiment, workdir, config (a dict)}}, '
                       f'got {entry!r:.200}.')
    registry.get_experiment(entry['experiment'])  # Raises for an unregistered name.
    config = ml_collections.ConfigDict(_decode(entry['config']))
    if config.get('experiment') != entry['experiment']:
      raise ValueError(f'{path}: member {i} names experiment {entry["experiment"]!r} but its '
                       f'config says {config.get("experiment")!r}.')
    config.lock()
    members.append(sweep.Member(config, entry['workdir']))
  return members, spec['max_group_size']


def _worker_main(queue: str):
  """One `run_local` worker: trains the unclaimed groups of the queue file."""
  progress.quiet_orbax_logs()
  members, max_group_size = read_queue(queue)
  try:
    run(members, claim=True, max_group_size=max_group_size)
  except preemption.Preempted as e:  # Logged with what was saved.
    sys.exit(e.exit_status)


if __name__ == '__main__':
  if len(sys.argv) != 2:
    sys.exit('usage: python -m experiments.launcher QUEUE_FILE (a worker of launcher.run_local)')
  logging.set_verbosity(logging.INFO)
  logging.use_absl_handler()
  from experiments import launcher as _launcher  # pylint: disable=g-import-not-at-top
  _launcher._worker_main(sys.argv[1])  # The module's own copy (the one `run` patches in tests).
