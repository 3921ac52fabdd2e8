"""Sweeps: declared beside their config, expanded, grouped, sharded and run.

A config file declares its sweep next to `get_config` as scenic's configs do:

  def get_hyper(h, arg=None):
    return h.product([h.sweep('config.seed', range(3)),
                      h.sweep('config.optimizer.learning_rate', [1e-3, 3e-4])])

where `h` is this module. `expand` turns the sweep into one config per member
(the config file stays the single source of every value); `group` collects
the members that differ only in `training.MEMBER_FIELDS` into one compiled
program each (what changes code or shapes, e.g. the model or estimator, is a
separate program); `shard` takes the i-th of n slices of a grid so that a
cluster's job array covers it in one shared workdir; `run` trains what is
not finished yet. Every member writes an ordinary run folder
`<workdir>/<member name>/`, so a killed sweep resumes where it stopped and
never retrains a finished member.

The sweep also owns how a grid is spread over a machine: `launch` (what the
launcher and both table scripts call) trains a shard in this process, or the
whole grid in `run_local`'s worker processes (one per CPU core by default on
a CPU, `num_workers`), which take the members from a file the parent writes
(not from re-parsed flags) and share them as a work queue; `max_group_size`
caps the members per compiled program (`resolve_group_size`: -1 is one per
program on a CPU).

  python -m experiments.sweep QUEUE_FILE   # one worker of run_local (internal)
"""

import itertools
import math
import os
import pickle
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Optional, Sequence

from absl import logging
import jax
import ml_collections

from experiments import preemption
from experiments import training

_PREFIX = 'config.'


# ----------------------------------------------------------------------------
# Declaring sweeps (scenic's hyper API).
# ----------------------------------------------------------------------------


def sweep(name: str, values: Iterable[Any]) -> list[dict]:
  """One axis: `[{name: v} for v in values]`; `name` starts with 'config.'."""
  if not name.startswith(_PREFIX):
    raise ValueError(f'Sweep keys start with {_PREFIX!r}, got {name!r}.')
  return [{name: v} for v in values]


def fixed(name: str, value: Any) -> list[dict]:
  """An axis with one value."""
  return sweep(name, [value])


def product(axes: Sequence[list[dict]]) -> list[dict]:
  """The cartesian product of axes (later axes vary fastest)."""
  out = []
  for combination in itertools.product(*axes):
    merged = {}
    for item in combination:
      merged.update(item)
    out.append(merged)
  return out


def zipit(axes: Sequence[list[dict]]) -> list[dict]:
  """Axes of equal length, zipped."""
  lengths = {len(a) for a in axes}
  if len(lengths) > 1:
    raise ValueError(f'zipit needs axes of equal length, got lengths {sorted(lengths)}.')
  return [{k: v for item in items for k, v in item.items()} for items in zip(*axes)]


# ----------------------------------------------------------------------------
# Members, groups and shards.
# ----------------------------------------------------------------------------


class Member(NamedTuple):
  """One run of a grid: its config and workdir, and the program that trains it."""
  config: ml_collections.ConfigDict
  workdir: str
  create_task: Callable[[ml_collections.ConfigDict], training.Task]


def member_name(overrides: Mapping[str, Any]) -> str:
  """A folder name from a member's swept values, e.g. 'seed=0,optimizer.learning_rate=0.001'."""
  if not overrides:
    return 'run'
  return ','.join(f'{k[len(_PREFIX):]}={v}' for k, v in overrides.items())


def expand(base: ml_collections.ConfigDict, hyper: Sequence[Mapping[str, Any]],
           workdir: str, create_task) -> list[Member]:
  """One `Member` per sweep point: `base` with the point's values set.

  Unknown keys raise (a locked `base` refuses new fields).
  """
  members = []
  for overrides in hyper:
    config = ml_collections.ConfigDict(base.to_dict())  # A deep copy.
    config.lock()
    try:
      config.update_from_flattened_dict(
          {k[len(_PREFIX):]: v for k, v in overrides.items()})
    except (KeyError, AttributeError) as e:
      raise ValueError(f'Sweep key not in the config: {e}') from None
    members.append(Member(config, os.path.join(workdir, member_name(overrides)), create_task))
  names = [m.workdir for m in members]
  if len(set(names)) != len(names):
    raise ValueError('The sweep has duplicate points.')
  return members


class Outcomes(NamedTuple):
  """A grid's members sorted for a table."""
  finished: list  # (member, result.json contents) of the runs that count.
  missing: list[str]  # Workdirs of runs not trained and evaluated to num_train_steps.
  diverged: list[str]  # Workdirs of runs marked diverged or with a non-finite valid_key.


def outcomes(members: Sequence[Member], valid_key: str) -> Outcomes:
  """Sorts members into finished, missing and diverged by their `result.json`."""
  out = Outcomes([], [], [])
  for m in members:
    result = training.read_result(m.workdir)
    if not training.is_finished_result(m.config, result):
      out.missing.append(m.workdir)
    elif (result.get('diverged_step') is not None or
          not math.isfinite(result.get(valid_key, math.nan))):
      out.diverged.append(m.workdir)
    else:
      out.finished.append((m, result))
  return out


def parse_shard(spec: str) -> tuple[int, int]:
  """'i/n' -> (i, n) with 0 <= i < n."""
  try:
    i, n = (int(x) for x in spec.split('/'))
  except ValueError:
    raise ValueError(f'--shard must look like i/n (e.g. 0/4), got {spec!r}.') from None
  if not 0 <= i < n:
    raise ValueError(f'--shard={spec!r} needs 0 <= i < n.')
  return i, n


def shard(members: Sequence[Member], index: int, count: int) -> list[Member]:
  """The index-th of `count` slices of a grid (every member in exactly one).

  With at least `count` groups, whole groups are dealt out in turn, so each
  compiled program is built on one machine only; with fewer groups (one
  big sweep over many machines), members are dealt out in turn.

  Args:
    members: the whole grid, in the same order on every machine.
    index: i, in [0, count).
    count: n.

  Returns:
    The members of slice i.
  """
  groups = group(members)
  if len(groups) >= count:
    return [m for g in groups[index::count] for m in g]
  return list(members[index::count])


def _group_key(member: Member) -> tuple:
  flat = training.flatten_config(member.config)
  fields = tuple(sorted((k, repr(v)) for k, v in flat.items()
                        if k not in training.MEMBER_FIELDS))
  return (id(member.create_task), os.path.dirname(member.workdir), fields)


def group(members: Sequence[Member], max_group_size: int = 0) -> list[list[Member]]:
  """Members that share everything but `MEMBER_FIELDS`, in first-seen order.

  Args:
    members: the grid.
    max_group_size: at most this many members per group (consecutive slices
      of a larger one); 0: no limit.
  """
  if max_group_size < 0:
    raise ValueError(f'max_group_size must be >= 0 here, got {max_group_size} '
                     '(resolve_group_size turns -1 into a size).')
  groups: dict[tuple, list[Member]] = {}
  for member in members:
    groups.setdefault(_group_key(member), []).append(member)
  if not max_group_size:
    return list(groups.values())
  return [g[i:i + max_group_size] for g in groups.values()
          for i in range(0, len(g), max_group_size)]


def resolve_group_size(max_group_size: int) -> int:
  """-1: 1 on a CPU, 0 (no limit) on accelerators; other values as given.

  On XLA:CPU vmapping the members of a conv net turns their convolutions into
  grouped ones, about 2x slower than the members one after another (measured
  on M2, Table 2's small preset); and vmapping buys nothing on a CPU anyway
  (README, Speed: Sweeps).
  """
  if max_group_size < -1:
    raise ValueError(f'max_group_size must be -1 (auto), 0 (no limit) or > 0, '
                     f'got {max_group_size}.')
  if max_group_size == -1:
    return 1 if jax.default_backend() == 'cpu' else 0
  return max_group_size


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


def run(members: Sequence[Member], *, devices: Optional[Sequence[Any]] = None,
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
  groups = group(members, resolve_group_size(max_group_size))
  results = {}
  start = time.perf_counter()
  trained = 0
  for k, g in enumerate(groups):
    label = f'[{k + 1}/{len(groups)} {os.path.dirname(g[0].workdir)}] '
    todo = [m for m in g if not _finished(m)]
    for m in g:
      if m not in todo:
        logging.info('%s%s is finished (result.json); not training it again.', label, m.workdir)
        results[m.workdir] = training.read_result(m.workdir)
    if todo and (not claim or _claim(todo)):
      outputs = training.run(todo[0].create_task, [m.config for m in todo],
                             [m.workdir for m in todo], on_nonfinite='mark',
                             devices=devices, label=label)
      for m, out in zip(todo, outputs):
        results[m.workdir] = out['result']
      trained += 1
    remaining = sum(1 for g2 in groups[k + 1:] if any(not _finished(m) for m in g2))
    elapsed = time.perf_counter() - start
    eta = training.eta_seconds(elapsed, trained, trained + remaining) if remaining else 0.0
    logging.info('Sweep: %d/%d groups done, %s elapsed, ETA %s.', k + 1, len(groups),
                 training.format_duration(elapsed), training.format_duration(eta))
  return results


_CLAIM = '.claimed'


def _claim(todo: Sequence[Member]) -> bool:
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


def clear_claims(members: Sequence[Member]):
  """Removes the claim files of an earlier work queue (none may be running)."""
  for m in members:
    path = os.path.join(m.workdir, _CLAIM)
    if os.path.exists(path):
      os.remove(path)


def _finished(member: Member) -> bool:
  return training.is_finished(member.config, member.workdir)


# ----------------------------------------------------------------------------
# Spreading a grid over one machine's processes.
# ----------------------------------------------------------------------------


def launch(members: Sequence[Member], *, workers: int = 1, shard_spec: str = '0/1',
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
  index, count = parse_shard(shard_spec)
  n = num_workers(workers, count)
  if n > 1:
    if count != 1:
      raise ValueError('Local workers run the shards of one machine; use them without --shard.')
    run_local(members, n, log_dir, max_group_size=max_group_size, label=label)
    return
  mine = shard(members, index, count)
  logging.info('%s: %d runs in %d programs; shard %d/%d trains %d of them.', label,
               len(members), len(group(members, resolve_group_size(max_group_size))), index,
               count, len(mine))
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


def run_local(members: Sequence[Member], num_workers: int, log_dir: str, *,
              max_group_size: int = 0, label: str = 'Sweep'):
  """Trains the grid in `num_workers` local processes; logs progress with an ETA.

  The parent writes the members (configs, workdirs and programs, pickled)
  to a queue file in `log_dir`; each worker (`python -m experiments.sweep
  FILE`) takes the next group nobody has claimed, in the members' order, so
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
  queue = os.path.join(log_dir, f'queue-{os.getpid()}.pkl')
  with open(queue, 'wb') as f:
    pickle.dump({'members': list(members), 'max_group_size': max_group_size}, f)
  env = single_thread_xla_env()
  procs, logs = [], []
  for i in range(num_workers):
    logs.append(os.path.join(log_dir, f'worker{i}.log'))
    with open(logs[-1], 'a') as log:
      procs.append(subprocess.Popen(
          [sys.executable, '-m', 'experiments.sweep', queue], stdout=log,
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
  deadline = time.perf_counter() + training.PROGRESS_SECONDS
  while time.perf_counter() < deadline and any(p.poll() is None for p in procs):
    time.sleep(0.5)
  done = sum(_finished(m) for m in members)
  elapsed = time.perf_counter() - start
  eta = training.eta_seconds(elapsed, done - done_before, len(members) - done_before)
  logging.info('%s: %d/%d runs finished, %s elapsed, ETA %s (worker logs: %s).', label, done,
               len(members), training.format_duration(elapsed), training.format_duration(eta),
               ', '.join(logs))


def _worker_main(queue: str):
  """One `run_local` worker: trains the unclaimed groups of the queue file."""
  training.quiet_orbax_logs()
  with open(queue, 'rb') as f:
    spec = pickle.load(f)
  try:
    run(spec['members'], claim=True, max_group_size=spec['max_group_size'])
  except preemption.Preempted as e:  # Logged with what was saved.
    sys.exit(e.exit_status)


if __name__ == '__main__':
  if len(sys.argv) != 2:
    sys.exit('usage: python -m experiments.sweep QUEUE_FILE (a worker of sweep.run_local)')
  logging.set_verbosity(logging.INFO)
  logging.use_absl_handler()
  from experiments import sweep as _sweep  # pylint: disable=g-import-not-at-top
  _sweep._worker_main(sys.argv[1])  # The module's own copy (the one the queue names).
