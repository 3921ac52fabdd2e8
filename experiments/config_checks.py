"""Checks of a run's config, flags and workdir, before any file is written.

Every error names the field, the value and what is allowed, in a line or two
that `experiments/main.py` prints without a traceback (`RunError`):

* `check_config`: counts, sizes and rates that must be positive (batch
  sizes, step counts, `log_every`, ...), the temperature schedule, and the
  estimator's hyperparameters as its registry entry declares them;
* `check_workdir`: a `--workdir` that is a file;
* `check_saved_config`: a finished or resumable workdir whose `config.json`
  differs from the config given (in anything but `RESUMABLE_FIELDS`);
* `unknown_override`: a `--config.x=...` flag that names no field, with the
  nearest valid ones.
"""

import difflib
import json
import math
import os
from typing import Any, Callable, Mapping, Optional, Sequence

import ml_collections

from experiments import run_files


class RunError(Exception):
  """An error whose message says all a user needs: main.py prints it without a traceback."""


class ConfigError(RunError, ValueError):
  """A config field, flag or workdir that a run cannot use."""


# Fields a finished or resumable run may be given anew: the step count (more
# steps train on, fewer are finished) and the evaluation settings.
RESUMABLE_FIELDS = ('num_train_steps', 'eval.')


def _is_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    'int>=1': (lambda v: _is_int(v) and v >= 1, 'an integer >= 1'),
    'int>=0': (lambda v: _is_int(v) and v >= 0, 'an integer >= 0'),
    'int>=1 or -1': (lambda v: _is_int(v) and (v >= 1 or v == -1),
                     'an integer >= 1, or -1 for all'),
    '>0': (lambda v: _is_real(v) and v > 0, 'a finite number > 0'),
    '>=0': (lambda v: _is_real(v) and v >= 0, 'a finite number >= 0'),
    '(0,1]': (lambda v: _is_real(v) and 0 < v <= 1, 'a number in (0, 1]'),
    '[0,1)': (lambda v: _is_real(v) and 0 <= v < 1, 'a number in [0, 1)'),
}

# The fields of the configs in configs/ that have a range, by dotted name;
# checked where a config has them.
FIELDS: dict[str, str] = {
    'num_train_steps': 'int>=1',
    'batch_size': 'int>=1',
    'labelled_batch_size': 'int>=1',
    'log_every': 'int>=1',
    'checkpoint_every': 'int>=1',
    'max_checkpoints_to_keep': 'int>=1',
    'grad_var_every': 'int>=0',
    'grad_var_samples': 'int>=1',
    'eval.batch_size': 'int>=1',
    'eval.num_samples': 'int>=1',
    'eval.valid_num_samples': 'int>=1',
    'eval.sample_chunk': 'int>=1',
    'eval.num_examples': 'int>=1 or -1',
    'model.num_latents': 'int>=1',
    'model.num_classes': 'int>=1',
    'model.num_vars': 'int>=1',
    'model.z_dim': 'int>=1',
    'data.num_labelled_per_class': 'int>=1',
    'optimizer.learning_rate': '>0',
    'optimizer.momentum': '[0,1)',
    'optimizer.decay_rate': '(0,1]',
    'optimizer.decay_steps': 'int>=0',
    'temperature.tau0': '>0',
    'temperature.tau_min': '>=0',
    'temperature.rate': '>=0',
    'temperature.interval': 'int>=1',
}


def flatten(config: Mapping) -> dict:
  """`{'optimizer.learning_rate': 0.001, ...}`: every leaf of a config or dict by its dotted name."""
  from experiments import loop_config  # pylint: disable=g-import-not-at-top
  if not isinstance(config, ml_collections.ConfigDict):
    config = ml_collections.ConfigDict(config)
  return loop_config.flatten_config(config)


def check_config(config: ml_collections.ConfigDict):
  """Raises `ConfigError` for a field outside its range (`FIELDS`) or a bad estimator hparam.

  Args:
    config: an experiment config.

  Raises:
    ConfigError: naming the field, its value and what is allowed.
  """
  values = flatten(config)
  for name, rule in FIELDS.items():
    if name in values:
      ok, allowed = _RULES[rule]
      if not ok(values[name]):
        raise ConfigError(f'config.{name}={values[name]!r} is not allowed; allowed: {allowed}.')
  if values.get('temperature.schedule') == 'learned' and 'temperature.tau0' in values:
    if not values['temperature.tau0'] > values.get('temperature.tau_min', 0):
      raise ConfigError(
          f'config.temperature.tau0={values["temperature.tau0"]!r} must be > '
          f'config.temperature.tau_min={values.get("temperature.tau_min")!r} for a learned '
          'temperature (the lower bound it is learned above).')
  from experiments import input_pipeline, loop_config, optimizer as optimizer_lib  # pylint: disable=g-import-not-at-top
  choices = {'data.source': input_pipeline.SOURCES,
             'data.binarization': input_pipeline.BINARIZATIONS,
             'optimizer.name': optimizer_lib.OPTIMIZERS, 'step_loop': loop_config.STEP_LOOPS}
  for name, allowed in choices.items():
    if name in values and values[name] not in allowed:
      raise ConfigError(f'config.{name}={values[name]!r} is not allowed; allowed: '
                        f'{", ".join(allowed)}.')
  try:  # How the loop's fields fit together (checkpoints between chunks, ...).
    loop_config.check_loop_config(config)
  except ValueError as e:
    raise ConfigError(f'config.{e}') from None
  if 'data' in config:
    input_pipeline.check_data_dir(config.data)
  estimator = config.get('estimator')
  if estimator is not None and 'name' in estimator:
    _check_estimator(estimator)
  _check_experiment(config)


def _check_experiment(config: ml_collections.ConfigDict):
  """The experiment's own `check_config` (model and schedule choices), as a `ConfigError`."""
  from experiments import registry  # pylint: disable=g-import-not-at-top
  name = config.get('experiment')
  if name not in registry.EXPERIMENTS:
    return  # The caller names the unknown experiment.
  check = getattr(registry.get_experiment(name), 'check_config', None)
  if check is None:
    return
  try:
    check(config)
  except ValueError as e:
    raise ConfigError(f'config: {e}') from None


def _check_estimator(estimator: ml_collections.ConfigDict):
  """The estimator's name and hyperparameters, as its registry entry declares them."""
  import gumbel  # pylint: disable=g-import-not-at-top
  try:
    declared = gumbel.get_estimator(estimator.name)
  except ValueError as e:
    raise ConfigError(f'config.estimator.name: {e}') from None
  for field, what in (('hparams', 'apply'), ('init_hparams', 'init')):
    given = dict(estimator.get(field) or {})
    try:
      declared.check_hparams(given, what)
    except ValueError as e:
      raise ConfigError(f'config.estimator.{field}: {e}') from None


def check_workdir(workdir: str):
  """Raises `ConfigError` when `workdir` exists and is not a folder."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ConfigError(f'--workdir={workdir} is a file, not a folder; allowed: a folder '
                      '(created if missing). Point --workdir elsewhere.')


def _resumable(workdir: str) -> bool:
  """Whether `workdir` holds a finished run or a checkpoint to resume from."""
  checkpoints = os.path.join(workdir, 'checkpoints')
  return (run_files.read_result(workdir) is not None
          or (os.path.isdir(checkpoints) and any(s.isdigit() for s in os.listdir(checkpoints))))


def config_differences(saved: Mapping, config: ml_collections.ConfigDict) -> list[str]:
  """`['model.num_classes (saved 10, given 3)', ...]`: fields that differ, `RESUMABLE_FIELDS` aside."""
  given = flatten(json.loads(config.to_json_best_effort()))  # As config.json spells it.
  saved = flatten(saved)
  out = []
  for key in sorted(set(given) | set(saved)):
    if key == RESUMABLE_FIELDS[0] or any(key.startswith(p) for p in RESUMABLE_FIELDS[1:]):
      continue
    if saved.get(key, '(none)') != given.get(key, '(none)'):
      out.append(f'{key} (saved {saved.get(key, "(none)")!r}, given {given.get(key, "(none)")!r})')
  return out


def check_saved_config(config: ml_collections.ConfigDict, workdir: str, *, force: bool = False):
  """Raises `ConfigError` when `workdir`'s run was made with another config.

  A workdir with a `result.json` or a checkpoint continues (or stands as)
  the run of its `config.json`: given another config (but for the step count
  and the evaluation settings), it would resume another model's checkpoint,
  or report another config's result as finished.

  Args:
    config: the config given.
    workdir: the run's folder.
    force: continue anyway, with the config given (`--force_config`).
  """
  if force or not os.path.isdir(workdir) or not _resumable(workdir):
    return
  saved = run_files.read_config(workdir)
  if saved is None:
    return
  differences = config_differences(saved, config)
  if differences:
    shown = '; '.join(differences[:6]) + (f'; and {len(differences) - 6} more'
                                          if len(differences) > 6 else '')
    raise ConfigError(
        f'--workdir={workdir} holds a run of another config (its config.json): {shown}. '
        'Use a new --workdir, or pass --force_config to continue this one with the config given.')


def check_run_dirs(runs: Sequence[tuple[ml_collections.ConfigDict, str]], *,
                   force_config: bool = False):
  """`check_config`, `check_workdir` and `check_saved_config` for each (config, workdir)."""
  for config, workdir in runs:
    check_config(config)
    check_workdir(workdir)
    check_saved_config(config, workdir, force=force_config)


def unknown_override(argv: Sequence[str], config: Optional[ml_collections.ConfigDict],
                     flag: str = 'config') -> Optional[str]:
  """The error for the first `--config.x=...` in `argv` that names no field, or None.

  Args:
    argv: the command line.
    config: the loaded config (None: not loaded, nothing to say).
    flag: the config flag's name.

  Returns:
    E.g. "--config.batchsize names no field of the config; did you mean
    batch_size? (nearest valid keys: ...)", or None when every override
    names a field.
  """
  if config is None:
    return None
  values = flatten(config)
  keys = set(values)
  for key in values:  # Intermediate dicts can be overridden as a whole.
    parts = key.split('.')
    keys.update('.'.join(parts[:i]) for i in range(1, len(parts)))
  prefix = f'--{flag}.'
  for arg in argv:
    if not arg.startswith(prefix):
      continue
    name = arg[len(prefix):].partition('=')[0]
    if name.startswith('no'):  # --config.nohard for a boolean field.
      if name in keys or name[2:] in keys:
        continue
    if name in keys:
      continue
    nearest = difflib.get_close_matches(name, sorted(keys), n=3, cutoff=0.5)
    if not nearest:  # Same last component elsewhere, else the top level.
      last = name.rpartition('.')[2]
      nearest = [k for k in sorted(keys) if k.rpartition('.')[2] == last][:3]
    hint = (f'nearest valid keys: {", ".join(nearest)}' if nearest else
            f'valid keys: {", ".join(sorted(k for k in keys if "." not in k))}')
    return f'{prefix}{name} names no field of the config; {hint}.'
  return None
