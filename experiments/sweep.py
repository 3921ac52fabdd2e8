"""Sweeps: declared beside their config, expanded into members, grouped, sharded.

A config file declares its sweep next to `get_config` as scenic's configs do:

  def get_hyper(h, arg=None):
    return h.product([h.sweep('config.seed', range(3)),
                      h.sweep('config.optimizer.learning_rate', [1e-3, 3e-4])])

where `h` is this module (`sweep` and `product` are what configs use).
`expand` turns the sweep into one `Member` per point (the config file stays
the single source of every value; the member's experiment is its config's
registered `experiment`); `group` collects the members that differ only in
`loop_config.MEMBER_FIELDS` into one compiled program each (what changes code
or shapes, e.g. the model or estimator, is a separate program); `shard` takes
the i-th of n slices of a grid so that a cluster's job array covers it in one
shared workdir; `outcomes` sorts a trained grid for a table. Every member
writes an ordinary run folder `<workdir>/<member name>/`. Training a grid is
`experiments/launcher.py`.
"""

import itertools
import math
import os
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import jax
import ml_collections

from experiments import loop_config
from experiments import run_files

_PREFIX = 'config.'


# ----------------------------------------------------------------------------
# Declaring sweeps (scenic's hyper API).
# ----------------------------------------------------------------------------


def sweep(name: str, values: Iterable[Any]) -> list[dict]:
  """One axis: `[{name: v} for v in values]`; `name` starts with 'config.'."""
  if not name.startswith(_PREFIX):
    raise ValueError(f'Sweep keys start with {_PREFIX!r}, got {name!r}.')
  return [{name: v} for v in values]


def product(axes: Sequence[list[dict]]) -> list[dict]:
  """The cartesian product of axes (later axes vary fastest)."""
  out = []
  for combination in itertools.product(*axes):
    merged = {}
    for item in combination:
      merged.update(item)
    out.append(merged)
  return out


# ----------------------------------------------------------------------------
# Members, groups and shards.
# ----------------------------------------------------------------------------


class Member(NamedTuple):
  """One run of a grid: its config and workdir (data only: no code)."""
  config: ml_collections.ConfigDict
  workdir: str

  @property
  def experiment(self) -> str:
    """The registered name of the member's experiment (`registry.EXPERIMENTS`)."""
    return self.config.experiment


def member_name(overrides: Mapping[str, Any]) -> str:
  """A folder name from a member's swept values, e.g. 'seed=0,optimizer.learning_rate=0.001'."""
  if not overrides:
    return 'run'
  return ','.join(f'{k[len(_PREFIX):]}={v}' for k, v in overrides.items())


def expand(base: ml_collections.ConfigDict, hyper: Sequence[Mapping[str, Any]],
           workdir: str) -> list[Member]:
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
    members.append(Member(config, os.path.join(workdir, member_name(overrides))))
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
    result = run_files.read_result(m.workdir)
    if not run_files.is_finished_result(m.config, result):
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
  return (os.path.dirname(member.workdir), loop_config.config_key(member.config))


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
  (docs/benchmarks.md, Sweeps).
  """
  if max_group_size < -1:
    raise ValueError(f'max_group_size must be -1 (auto), 0 (no limit) or > 0, '
                     f'got {max_group_size}.')
  if max_group_size == -1:
    return 1 if jax.default_backend() == 'cpu' else 0
  return max_group_size
