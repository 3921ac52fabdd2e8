"""Sparse gates: the hard concrete distribution and its expected L0 norm.

A hard concrete gate stretches a Binary Concrete sample s in (0, 1) to the
interval (l, r) with l < 0 < 1 < r and clips it to [0, 1]: z = min(1,
max(0, l + (r - l) s)). The mass of s outside [0, 1] after stretching
becomes point masses at exactly 0 and exactly 1, so gates switch units off
exactly, while z stays reparameterizable (gradients flow where 0 < z < 1).

Conventions as in `gumbel.distributions`: the key first; computed in
float32 (float64 for float64) and cast to the dtype of `log_alpha`; the
temperature broadcasts against `log_alpha` in both directions, as for
`relaxed_bernoulli`.

References:
  [L0] Louizos, Welling, Kingma. Learning Sparse Neural Networks through L_0
    Regularization. ICLR 2018, arXiv:1712.01312.
  [CON] Maddison, Mnih, Teh. The Concrete Distribution. ICLR 2017,
    arXiv:1611.00712.
"""

import math
from typing import Any

import jax
import jax.numpy as jnp

from gumbel import _checks
from gumbel import distributions as _d

Array = jax.Array
ArrayLike = Any


def _check_limits(limits, fn):
  """`(l, r)` as floats, unless they are not two finite numbers l < 0 < 1 < r."""
  allowed = ('allowed are two finite numbers (l, r) with l < 0 and r > 1, e.g. '
             'the default (-0.1, 1.1) of Louizos et al.')
  try:
    low, high = limits
    low, high = float(low), float(high)
  except (TypeError, ValueError):
    raise ValueError(f'{fn}: limits must be a pair (l, r), got {limits!r}; {allowed}.') from None
  if not (math.isfinite(low) and math.isfinite(high) and low < 0 and high > 1):
    raise ValueError(f'{fn}: limits={limits!r} are not allowed: {allowed} (l < 0 and '
                     f'r > 1 give the exact zeros and ones).')
  return low, high


def hard_concrete(
    key: Array,
    log_alpha: ArrayLike,
    temperature: ArrayLike,
    *,
    limits: tuple[float, float] = (-0.1, 1.1),
) -> Array:
  """Draws hard concrete gates in [0, 1], with exact zeros and ones.

  u ~ U(0, 1), s = sigmoid((log u - log(1 - u) + log_alpha) / tau),
  z = min(1, max(0, l + (r - l) s)). Then
  P(z = 0) = sigmoid(tau log(-l / r) - log_alpha) and
  P(z = 1) = sigmoid(log_alpha - tau log((1 - l) / (r - 1))).

  Args:
    key: a PRNG key.
    log_alpha: the gates' location parameters log(alpha), floating, any
      shape; large values open a gate, small ones close it.
    temperature: tau > 0 (beta in [L0], who use 2/3); a float or an array
      broadcasting against `log_alpha` in both directions.
    limits: the stretch interval (l, r), two Python numbers with l < 0 and
      r > 1 (l = gamma, r = zeta in [L0]).

  Returns:
    Gates in [0, 1] of the broadcast shape of `log_alpha` and `temperature`,
    in the dtype of `log_alpha`. Their gradient with respect to `log_alpha`
    is that of the stretched sample where 0 < z < 1 and 0 where z is
    clipped.

  References:
    [L0] section 4.2, eqs. 9-10 (hard concrete) and eq. 12; [CON] section
    3.3 (Binary Concrete).
  """
  fn = 'hard_concrete'
  signature = 'key, log_alpha, temperature'
  _checks.check_key(key, fn, signature)
  low, high = _check_limits(limits, fn)
  log_alpha = _checks.as_logits(log_alpha, fn, 'log_alpha', signature=signature)
  dtype = log_alpha.dtype
  compute = _checks.compute_dtype(dtype)
  tau, shape = _checks.bernoulli_temperature(
      temperature, log_alpha.shape, compute, fn, f'log_alpha of shape {log_alpha.shape}')
  noise = _d.sample_logistic(key, shape, compute)
  # Broadcast explicitly: rank promotion may be disabled.
  log_alpha = jnp.broadcast_to(log_alpha.astype(compute), shape)
  s = jax.nn.sigmoid((noise + log_alpha) / tau)
  z = jnp.clip(low + (high - low) * s, 0.0, 1.0)
  return z.astype(dtype)


def hard_concrete_l0(
    log_alpha: ArrayLike,
    temperature: ArrayLike,
    *,
    limits: tuple[float, float] = (-0.1, 1.1),
) -> Array:
  """The probability that each hard concrete gate is non-zero, in closed form.

  P(z != 0) = sigmoid(log_alpha - tau log(-l / r)): the expected L0 norm of
  one gate. It is returned per gate; the expected number of non-zero gates
  (the L0 penalty of [L0] eq. 12) is its sum, `hard_concrete_l0(...).sum()`.
  Differentiable in `log_alpha` (and `temperature`).

  Args:
    log_alpha: the gates' log(alpha), floating, any shape.
    temperature: tau > 0, broadcasting against `log_alpha`, as in
      `hard_concrete`.
    limits: the stretch interval (l, r) with l < 0 and r > 1, as in
      `hard_concrete`.

  Returns:
    P(z != 0) per gate, in [0, 1], of the broadcast shape of `log_alpha` and
    `temperature`, in the dtype of `log_alpha`.

  References:
    [L0] eq. 12.
  """
  fn = 'hard_concrete_l0'
  low, high = _check_limits(limits, fn)
  log_alpha = _checks.as_logits(log_alpha, fn, 'log_alpha')
  dtype = log_alpha.dtype
  compute = _checks.compute_dtype(dtype)
  tau, shape = _checks.bernoulli_temperature(
      temperature, log_alpha.shape, compute, fn, f'log_alpha of shape {log_alpha.shape}')
  log_alpha = jnp.broadcast_to(log_alpha.astype(compute), shape)
  return jax.nn.sigmoid(log_alpha - tau * math.log(-low / high)).astype(dtype)
