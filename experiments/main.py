r"""Launches an experiment or a sweep: parses flags, logs devices, hands over.

  python -m experiments.main --config=configs/vae.py --workdir=/tmp/vae
  python -m experiments.main --sweep --shard=0/4 \
      --config=configs/estimator_comparison.py:model=vae_cat,estimator=rebar,preset=small \
      --workdir=/tmp/sweep

With --sweep the config file's `get_hyper(h, arg)` declares the members; each
writes a run folder under --workdir. --shard=i/n runs the i-th of n slices of
the grid (e.g. a SLURM job array: --shard=$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)
into the same shared workdir.

Exit status: 0 when done; 143 after SIGTERM and 130 after SIGINT (128 + the
signal number, what a scheduler sees for a preempted job): the run (or the
sweep's current group) finished its current chunk of steps and saved a
checkpoint at that step, and the same command resumes it (a sweep does not
start its next group). Errors exit with 1; a config, flag or workdir that
cannot be used (a field out of range, an unknown --config.x, a workdir held
by another live process or holding a run of another config) is said in a
line or two, without a traceback (`experiments/config_checks.py`), before
any file is written.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from experiments import config_checks
from experiments import launcher
from experiments import preemption
from experiments import progress
from experiments import registry
from experiments import sweep

_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints and metrics.')
config_flags.DEFINE_config_file(
    'config', None, 'A configs/*.py file, optionally with :arguments.', lock_config=True)
_SWEEP = flags.DEFINE_bool(
    'sweep', False, "Run the config file's get_hyper sweep, one run folder per member.")
_SHARD = flags.DEFINE_string('shard', '0/1', 'With --sweep: run slice i of n of the grid.')
_WORKERS = flags.DEFINE_integer(
    'workers', 1, 'With --sweep: local worker processes sharing the grid as a work queue '
    '(0: one per CPU core on a CPU, launcher.num_workers).')
_MAX_GROUP_SIZE = flags.DEFINE_integer(
    'max_group_size', 0, 'With --sweep: members per compiled program at most (0: no limit; '
    '-1: one on a CPU, sweep.resolve_group_size).')
_FORCE_CONFIG = flags.DEFINE_bool(
    'force_config', False, 'Continue a finished or resumable workdir whose config.json differs '
    'from --config (but for num_train_steps and eval.*) with the config given.')
flags.mark_flags_as_required(['config', 'workdir'])


def _config_module(spec: str):
  """The module that --config loaded ('configs/x.py:arg'), and its argument.

  The module config_flags loaded to build the config (it keeps it in
  `sys.modules` as '<flag name>_config'), not a second load of the file.
  """
  path, _, arg = spec.partition(':')
  module = sys.modules.get('config_config')
  if module is None or os.path.realpath(module.__file__) != os.path.realpath(path):
    raise RuntimeError(f'The module of --config={spec} is not the one config_flags loaded; '
                       'ml_collections may have changed how it loads config files.')
  return module, arg or None


def parse_flags(argv):
  """absl's flag parsing, with an unknown --config.x said in one line (nearest keys)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    _exit_with(f'Flags parsing error: {e}')
  except (AttributeError, KeyError):  # ml_collections' error for a field the config lacks.
    message = config_checks.unknown_override(argv, _given_config(argv))
    if message is None:
      raise
    _exit_with(message)


def _given_config(argv):
  """The config that --config names in `argv` (before overrides), or None."""
  specs = [a.partition('=')[2] for a in argv if a.startswith('--config=')]
  specs += [b for a, b in zip(argv, argv[1:]) if a == '--config']
  if not specs:
    return None
  module, arg = _config_module(specs[-1])
  return module.get_config(arg)


def _exit_with(message: str, flag_help: bool = True):
  """Exits with status 1 after `message` (and where to find the flags), as absl does."""
  help_line = 'Pass --helpshort or --helpfull to see help on flags.\n' if flag_help else ''
  sys.stderr.write(f'FATAL {message}\n{help_line}')
  sys.exit(1)


def main(argv):
  try:
    _main(argv)
  except preemption.Preempted as e:  # Already logged with what was saved.
    sys.exit(e.exit_status)
  except config_checks.RunError as e:  # Says all there is to say: no traceback.
    _exit_with(str(e), flag_help=False)


def _main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  progress.quiet_orbax_logs()
  logging.info('JAX devices: %s', jax.devices())
  config = flags.FLAGS.config
  try:
    experiment = registry.get_experiment(config.experiment)
  except ValueError as e:
    raise app.UsageError(f'--config: {e}') from None
  if not _SWEEP.value:
    if _SHARD.value != '0/1' or _WORKERS.value != 1 or _MAX_GROUP_SIZE.value:
      raise app.UsageError('--shard, --workers and --max_group_size need --sweep.')
    config_checks.check_run_dirs([(config, _WORKDIR.value)], force_config=_FORCE_CONFIG.value)
    experiment.train_and_evaluate(config, _WORKDIR.value)
    return
  module, arg = _config_module(flags.FLAGS['config'].config_filename)
  if not hasattr(module, 'get_hyper'):
    raise app.UsageError(f'{flags.FLAGS["config"].config_filename} declares no get_hyper sweep.')
  config_checks.check_workdir(_WORKDIR.value)
  members = sweep.expand(config, module.get_hyper(sweep, arg), _WORKDIR.value)
  config_checks.check_run_dirs([(m.config, m.workdir) for m in members],
                               force_config=_FORCE_CONFIG.value)
  launcher.launch(members, workers=_WORKERS.value, shard_spec=_SHARD.value,
                  max_group_size=_MAX_GROUP_SIZE.value, log_dir=_WORKDIR.value)


if __name__ == '__main__':
  jax.config.config_with_absl()
  app.run(main, flags_parser=parse_flags)
