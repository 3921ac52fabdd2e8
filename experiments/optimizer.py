"""The optimizer of a run, its learning rate as data (what members may differ in)."""

import ml_collections
import optax

OPTIMIZERS = ('adam', 'sgd')


def create_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """The optimizer of `config.optimizer`, its learning rate as data.

  `name` is 'adam' or 'sgd' (with `momentum`, 0 for none); an optional
  staircase decay multiplies the learning rate by `decay_rate` every
  `decay_steps` steps. The learning rate itself lives in the optimizer state
  (`inject_hyperparams`), so members of a sweep that differ only in it share
  one compiled program.

  Args:
    config: the experiment config.

  Returns:
    An optax transformation.
  """
  o = config.optimizer
  if o.name not in OPTIMIZERS:
    raise ValueError(f'Unknown optimizer.name={o.name!r}; allowed: {OPTIMIZERS}.')
  if not o.learning_rate > 0:
    raise ValueError(f'optimizer.learning_rate must be > 0, got {o.learning_rate!r}.')
  parts = []
  if o.name == 'adam':
    parts.append(optax.scale_by_adam())
  elif o.get('momentum', 0.0):
    parts.append(optax.trace(decay=o.momentum))
  if o.get('decay_steps', 0):
    parts.append(optax.scale_by_schedule(optax.exponential_decay(
        1.0, o.decay_steps, o.decay_rate, staircase=True)))
  parts.append(optax.inject_hyperparams(optax.scale_by_learning_rate)(
      learning_rate=o.learning_rate))
  return optax.chain(*parts)
