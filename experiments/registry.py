"""The experiments by their registered names (a config's `experiment` field).

A name, not a module path or a pickled function, is what a config, a sweep's
queue file and the launcher pass around: `get_experiment` imports only the
modules listed here.
"""

import importlib
import types

# Each is `experiments/<name>.py` with `create_task(config)` and
# `train_and_evaluate(config, workdir)`.
EXPERIMENTS = ('estimator_comparison', 'ssl', 'vae')


def get_experiment(name: str) -> types.ModuleType:
  """The module of the experiment registered as `name`.

  Raises:
    ValueError: `name` is not one of `EXPERIMENTS`.
  """
  if name not in EXPERIMENTS:
    raise ValueError(f'Unknown experiment {name!r}; registered: {EXPERIMENTS}.')
  return importlib.import_module(f'experiments.{name}')
