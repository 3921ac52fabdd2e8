r"""Launches an experiment: parses flags, logs devices, calls train_and_evaluate.

  python -m experiments.main --config=configs/vae.py --workdir=/tmp/vae
"""

import importlib
import logging as std_logging

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints and metrics.')
config_flags.DEFINE_config_file(
    'config', None, 'A configs/*.py file, optionally with :variants.', lock_config=True)
flags.mark_flags_as_required(['config', 'workdir'])


def _quiet_orbax(record) -> bool:
  """Drops orbax's per-save INFO lines, which would drown the progress lines."""
  return record.levelno >= std_logging.WARNING or 'orbax' not in record.pathname


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  logging.get_absl_logger().addFilter(_quiet_orbax)
  logging.info('JAX devices: %s', jax.devices())
  config = flags.FLAGS.config
  experiment = importlib.import_module(f'experiments.{config.experiment}')
  experiment.train_and_evaluate(config, _WORKDIR.value)


if __name__ == '__main__':
  jax.config.config_with_absl()
  app.run(main)
