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
"""

import itertools
import math
import os
import time
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Optional, Sequence

from absl import logging
import ml_collections

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
    if result is None or result['step'] < m.config.num_train_steps:
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


def group(members: Sequence[Member]) -> list[list[Member]]:
  """Members that share everything but `MEMBER_FIELDS`, in first-seen order."""
  groups: dict[tuple, list[Member]] = {}
  for member in members:
    groups.setdefault(_group_key(member), []).append(member)
  return list(groups.values())


# ----------------------------------------------------------------------------
# Running.
# ----------------------------------------------------------------------------


def run(members: Sequence[Member], *, devices: Optional[Sequence[Any]] = None,
        claim: bool = False) -> dict[str, dict]:
  """Trains the members that are not finished, one compiled program per group.

  Args:
    members: the grid (or a shard of it).
    devices: the devices to shard each group's members over (default: all).
    claim: several local processes share the grid as a work queue: a group
      is trained by the process that first creates its claim file (see
      `clear_claims`); the others skip it.

  Returns:
    `{workdir: result}` of every member finished earlier or trained here.
  """
  groups = group(members)
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
    eta = elapsed / trained * remaining if trained else 0.0
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
