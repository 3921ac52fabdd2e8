"""Temperature schedules as functions of the step, in optax's style.

A schedule maps a (possibly traced) integer step to a temperature:
`schedule(step) -> tau`. They are safe under `jax.jit` and `lax.scan`.

References:
  [GS] Jang, Gu, Poole. ICLR 2017, section 4 (temperature annealing).
"""

from typing import Callable

import jax
import jax.numpy as jnp

from gumbel import distributions

Schedule = Callable[[jax.typing.ArrayLike], jax.Array]


def constant_temperature(tau: float) -> Schedule:
  """Returns the schedule `step -> tau`.

  Args:
    tau: the temperature, > 0.

  Returns:
    A schedule.
  """
  distributions.check_temperature(tau, 'tau')

  def schedule(step):
    del step
    return jnp.asarray(tau, jnp.float32)

  return schedule


def exponential_temperature(
    tau0: float = 1.0,
    rate: float = 3e-5,
    tau_min: float = 0.5,
    interval: int = 1000,
) -> Schedule:
  """The paper's schedule, tau = max(tau_min, tau0 * exp(-rate * t)).

  t is the step rounded down to a multiple of `interval`, i.e. the
  temperature is recomputed every `interval` steps as in [GS].

  Args:
    tau0: the initial temperature, > 0.
    rate: the annealing rate r >= 0.
    tau_min: the floor, > 0.
    interval: recompute the temperature every `interval` steps (N in [GS]).

  Returns:
    A schedule.

  References:
    [GS] section 4 ("tau = max(0.5, exp(-r t)) every N steps"); the blog's
    categorical VAE (tau0 = 1, r = 3e-5, tau_min = 0.5, N = 1000).
  """
  distributions.check_temperature(tau0, 'tau0')
  distributions.check_temperature(tau_min, 'tau_min')
  if not rate >= 0:  # Also catches NaN.
    raise ValueError(f'rate must be >= 0, got {rate!r}.')
  if int(interval) != interval or interval < 1:
    raise ValueError(f'interval must be a positive integer, got {interval!r}.')

  def schedule(step):
    step = jnp.asarray(step)
    t = (step // interval) * interval
    tau = tau0 * jnp.exp(-rate * t.astype(jnp.float32))
    return jnp.maximum(jnp.float32(tau_min), tau)

  return schedule
