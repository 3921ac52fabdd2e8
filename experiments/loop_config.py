"""The loop's config fields and groups: which configs may train as one program.

The members of one compiled group differ only in `MEMBER_FIELDS` (data, not
code); `check_run` checks `training.run`'s arguments and the fields the loop
reads, and `config_key` is a config without those fields, the same for every
member of a group.
"""

from typing import Mapping, Sequence

import ml_collections

# Fields in which the members of one compiled group may differ: data, not code.
MEMBER_FIELDS = ('seed', 'optimizer.learning_rate')
NONFINITE_POLICIES = ('raise', 'mark')
# config.step_loop: the chunk's steps in one lax.scan, or one compiled step per
# host iteration ('auto': host on CPU, where XLA runs convolutions inside a
# loop body 5-15x slower, jax-ml/jax#12868; scan elsewhere).
STEP_LOOPS = ('scan', 'host', 'auto')


def flatten_config(config: ml_collections.ConfigDict) -> dict:
  """`{'optimizer.learning_rate': 0.001, ...}`: every leaf of `config` by its dotted name."""
  out = {}

  def visit(prefix, value):
    if isinstance(value, Mapping):
      for k, v in value.items():
        visit(f'{prefix}{k}.', v)
    else:
      out[prefix[:-1]] = value

  visit('', config.to_dict())
  return out


def check_group(configs: Sequence[ml_collections.ConfigDict]):
  """Raises unless the configs differ only in `MEMBER_FIELDS`."""
  first = flatten_config(configs[0])
  for config in configs[1:]:
    other = flatten_config(config)
    for key in sorted(set(first) | set(other)):
      if key not in MEMBER_FIELDS and first.get(key) != other.get(key):
        raise ValueError(
            f'Members of one compiled group may differ only in {MEMBER_FIELDS}; '
            f'they differ in {key!r} ({first.get(key)!r} vs {other.get(key)!r}).')


def check_loop_config(config: ml_collections.ConfigDict):
  """Checks the fields the loop reads; errors name the field and the value."""
  for name in ('num_train_steps', 'log_every', 'checkpoint_every'):
    if config[name] < 1:
      raise ValueError(f'{name} must be >= 1, got {config[name]}.')
  if config.checkpoint_every % config.log_every:
    raise ValueError(
        f'checkpoint_every={config.checkpoint_every} must be a multiple of '
        f'log_every={config.log_every} (checkpoints are written between compiled chunks).')
  if config.get('step_loop', 'scan') not in STEP_LOOPS:
    raise ValueError(f'step_loop={config.step_loop!r}; allowed: {STEP_LOOPS}.')
  every = config.get('grad_var_every', 0)
  if every < 0 or every % config.log_every:
    raise ValueError(f'grad_var_every={every} must be 0 (off) or a positive multiple '
                     f'of log_every={config.log_every}.')


def check_run(configs: Sequence[ml_collections.ConfigDict], workdirs: Sequence[str],
              on_nonfinite: str):
  """Checks the arguments of `run`: one workdir per config, one group, the loop's fields."""
  if on_nonfinite not in NONFINITE_POLICIES:
    raise ValueError(f'on_nonfinite={on_nonfinite!r}; allowed: {NONFINITE_POLICIES}.')
  if len(configs) != len(workdirs) or not configs:
    raise ValueError(f'Need one workdir per config, got {len(configs)} configs and '
                     f'{len(workdirs)} workdirs.')
  check_group(configs)
  for config in configs:
    check_loop_config(config)


def config_key(config: ml_collections.ConfigDict) -> tuple:
  """`config` without `MEMBER_FIELDS`, hashable: the same for every member of a group.

  With the function that created a group's task and the shapes of its data,
  what determines the group's compiled programs (`programs.program_key`).
  """
  return tuple(sorted((k, repr(v)) for k, v in flatten_config(config).items()
                      if k not in MEMBER_FIELDS))
