"""Temperature schedules as functions of the step, in optax's style.

A schedule maps a (possibly traced) integer step to a temperature:
`schedule(step) -> tau`. They are safe under `jax.jit` and `lax.scan`.

References:
  [GS] Jang, Gu, Poole. ICLR 2017, section 4 (temperature annealing).
"""

import math
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


def geometric_temperature(
    tau_max: float = 2.0,
    tau_min: float = 0.5,
    decay: float = 0.999995,
) -> Schedule:
  """wav2vec 2.0's schedule, tau = max(tau_min, tau_max * decay^t), every step.

  Args:
    tau_max: the initial temperature, > 0.
    tau_min: the floor, in (0, tau_max].
    decay: the factor per step, in (0, 1].

  Returns:
    A schedule.

  References:
    Baevski, Zhou, Mohamed, Auli. wav2vec 2.0. NeurIPS 2020,
    arXiv:2006.11477, section 4.2 (tau from 2 to 0.5 by 0.999995 per update);
    fairseq `GumbelVectorQuantizer.set_num_updates`.
  """
  distributions.check_temperature(tau_max, 'tau_max')
  distributions.check_temperature(tau_min, 'tau_min')
  if not tau_min <= tau_max:
    raise ValueError(f'tau_min must be <= tau_max, got tau_min={tau_min!r} and '
                     f'tau_max={tau_max!r}.')
  if not 0 < decay <= 1:  # Also catches NaN.
    raise ValueError(f'decay must be in (0, 1], got {decay!r}.')

  # log(decay) in float64: float32 rounds 0.999995 by 5e-8, 1% of log(decay).
  log_decay = math.log(decay)

  def schedule(step):
    t = jnp.asarray(step).astype(jnp.float32)
    tau = tau_max * jnp.exp(t * jnp.float32(log_decay))
    return jnp.maximum(jnp.float32(tau_min), tau)

  return schedule
