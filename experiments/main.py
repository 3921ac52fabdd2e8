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
start its next group). Errors exit with 1.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

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


def main(argv):
  try:
    _main(argv)
  except preemption.Preempted as e:  # Already logged with what was saved.
    sys.exit(e.exit_status)


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
    experiment.train_and_evaluate(config, _WORKDIR.value)
    return
  module, arg = _config_module(flags.FLAGS['config'].config_filename)
  if not hasattr(module, 'get_hyper'):
    raise app.UsageError(f'{flags.FLAGS["config"].config_filename} declares no get_hyper sweep.')
  members = sweep.expand(config, module.get_hyper(sweep, arg), _WORKDIR.value)
  launcher.launch(members, workers=_WORKERS.value, shard_spec=_SHARD.value,
                  max_group_size=_MAX_GROUP_SIZE.value, log_dir=_WORKDIR.value)


if __name__ == '__main__':
  jax.config.config_with_absl()
  app.run(main)
