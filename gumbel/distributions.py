"""Gumbel noise, Gumbel-Max, relaxed (Concrete) sampling and Concrete densities.

All functions are pure and safe under `jax.jit`, `jax.vmap` and `jax.grad`.
Noise is always drawn and transformed in float32 (float64 when the requested
dtype is float64) and only the result is cast to the caller's dtype, so that
float16 and bfloat16 inputs never produce inf or NaN.

Validation (`gumbel/_checks.py`, run once at each public function): every
function checks what it can see at trace time (shapes, dtypes, static
arguments), also under `jit`, and raises `ValueError` naming
the function and the argument: a key that is not a PRNG key (or a PRNG key
where logits belong: the key comes first, `gumbel_softmax(key, logits, tau)`,
unlike PyTorch's `F.gumbel_softmax(logits, tau)`), integer or boolean logits
(often class indices passed by mistake: cast them to float; Python numbers
are fine), scalar logits or zero categories where a category axis is needed,
an `axis` that is not one int or is out of range, a non-bool `hard`, and
temperature shapes outside the rule below. Temperature *values* are checked
when they are concrete (Python numbers, NumPy arrays, JAX arrays outside a
trace; any integer or float dtype, float16 and bfloat16 included): <= 0, NaN
or inf raise (`check_temperature`). Traced values (inside `jit`, `vmap`,
`grad`) cannot be inspected without a host round trip and are *not* checked:
a traced temperature <= 0 gives inf/NaN outputs, exactly as the formulas do.
Wrap the call in `jax.experimental.checkify` if you need run-time checks of
traced values.

Temperatures: one rule in every function with a category axis
(`gumbel_softmax`, `log_gumbel_softmax`, `concrete_log_prob`,
`exp_concrete_log_prob`). The logits (for densities, the points and logits
broadcast) have shape `[..., K]`; their batch shape is that without the
category axis. A temperature has up to two readings:
  (b) batch-shaped, as TensorFlow Probability reads it: its shape is a batch
      shape (`[B]` for logits `[B, K]`);
  (c) logits-shaped, as `logits / tau` broadcasts: only when, right-aligned
      against the logits, it has size 1 on the category axis (`[B, 1]` for
      `[B, K]`); that axis is dropped and the rest is its batch shape.
A reading fits when its batch shape and the logits' broadcast *one way*: the
result is the temperature's batch shape or the logits' (left-padded with
1s), i.e. the temperature is broadcast over the logits' batch (a scalar, per
row, per column) or the logits over the temperature's (logits `[K]` with tau
`[T]` give samples `[T, K]`). A temperature is never broadcast into a batch
shape that neither it nor the logits have (an outer product such as logits
`[4, 1, 3]` with tau `[4, 1]` read as (c), which would give `[4, 4, 3]`).
  - If one reading fits, it is used.
  - If both fit and put the same temperature on every entry, that is used.
  - If both fit and differ, the one whose result keeps the logits' shape is
    used: tau `[B, 1]` for logits `[B, K]` is (c), one temperature per row
    (read as (b) it would give `[B, B, K]`), and tau `[4, 1]` for logits
    `[4, 1, 3]` is (b), as in TFP.
  - Otherwise (neither or both keep it, or nothing fits) a `ValueError`
    shows each reading's result and how to ask for it unambiguously.
So every result is a shape one of the readings gives, and a temperature of
the full batch shape (or the full logits shape with size 1 on the category
axis) is always unambiguous. Noise is drawn at the result's shape. A
non-default `axis` counts from the end (a negative axis) after broadcasting.
The Bernoulli functions (`relaxed_bernoulli`, `binary_concrete_log_prob`)
have no category axis and so one reading: the temperature broadcasts against
the logits (and x) in both directions, as NumPy and TFP broadcast.

References:
  [GS] Jang, Gu, Poole. Categorical Reparameterization with Gumbel-Softmax.
    ICLR 2017, arXiv:1611.01144.
  [CON] Maddison, Mnih, Teh. The Concrete Distribution: A Continuous
    Relaxation of Discrete Random Variables. ICLR 2017, arXiv:1611.00712.
"""

import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gumbel import _checks

Array = jax.Array
ArrayLike = Any  # jax.typing.ArrayLike, kept loose for Python floats.

# Public as `gumbel.check_temperature`: what callers use to check a temperature.
check_temperature = _checks.check_temperature


# ----------------------------------------------------------------------------
# Noise and exact sampling.
# ----------------------------------------------------------------------------


def gumbel_from_uniform(u: ArrayLike) -> Array:
  """Maps uniforms to standard Gumbel noise, g = -log(-log u).

  `u` is clipped into [tiny, 1 - eps] of its dtype first, so that the result
  is finite even when `u` is exactly 0 or 1.

  Args:
    u: uniforms in [0, 1], float32 or float64 for full precision.

  Returns:
    Gumbel noise of the same shape and dtype as `u`.

  References:
    [GS] section 2; [CON] definition 1.
  """
  u = jnp.asarray(u)
  finfo = jnp.finfo(u.dtype)
  # The bound in u's dtype: for bfloat16, 1.0 - finfo.eps is a NumPy float32.
  u = jnp.clip(u, finfo.tiny, jnp.asarray(1.0 - finfo.eps, u.dtype))
  return -jnp.log(-jnp.log(u))


def logistic_from_uniform(u: ArrayLike) -> Array:
  """Maps uniforms to standard logistic noise, log u - log(1 - u).

  The difference of two independent Gumbels is logistic; this is the noise of
  the Binary Concrete. `u` is clipped into [tiny, 1 - eps] first.

  Args:
    u: uniforms in [0, 1].

  Returns:
    Logistic noise of the same shape and dtype as `u`.

  References:
    [CON] section 3.3 (Binary Concrete).
  """
  u = jnp.asarray(u)
  finfo = jnp.finfo(u.dtype)
  # The bound in u's dtype: for bfloat16, 1.0 - finfo.eps is a NumPy float32.
  u = jnp.clip(u, finfo.tiny, jnp.asarray(1.0 - finfo.eps, u.dtype))
  return jnp.log(u) - jnp.log1p(-u)


def sample_uniform(key: Array, shape: Sequence[int], dtype=jnp.float32) -> Array:
  """Draws uniforms in [tiny, 1 - eps] of `dtype`, what the noise samplers transform.

  Args:
    key: a PRNG key.
    shape: the shape of the uniforms.
    dtype: a floating dtype (the samplers pass their compute dtype).

  Returns:
    An array of `shape` and `dtype` with i.i.d. uniform entries, never 0 or 1.
  """
  _checks.check_key(key, 'sample_uniform', 'key, shape, dtype')
  shape = tuple(shape)
  finfo = jnp.finfo(dtype)
  # Drawn flat and reshaped: the same bits, but XLA's CPU code for a short
  # trailing axis (e.g. K=10 categories) is about 3x slower.
  u = jax.random.uniform(
      key, (math.prod(shape),), dtype, minval=finfo.tiny, maxval=1.0 - finfo.eps)
  return u.reshape(shape)


def sample_gumbel(key: Array, shape: Sequence[int], dtype=jnp.float32) -> Array:
  """Draws standard Gumbel noise, g = -log(-log u).

  The uniforms are drawn in float32 (float64 for float64) from
  [tiny, 1 - eps], transformed, and only then cast to `dtype`, so the noise
  is finite and correctly distributed for float32, bfloat16 and float16.

  Args:
    key: a PRNG key.
    shape: the shape of the noise.
    dtype: a floating dtype of the result.

  Returns:
    An array of `shape` and `dtype` with i.i.d. Gumbel(0, 1) entries.

  References:
    [GS] section 2; [CON] definition 1.
  """
  _checks.check_key(key, 'sample_gumbel', 'key, shape, dtype')
  compute = _checks.compute_dtype(dtype)
  return gumbel_from_uniform(sample_uniform(key, shape, compute)).astype(dtype)


def sample_logistic(key: Array, shape: Sequence[int], dtype=jnp.float32) -> Array:
  """Draws standard logistic noise, computed in float32 then cast.

  Args:
    key: a PRNG key.
    shape: the shape of the noise.
    dtype: a floating dtype of the result.

  Returns:
    An array of `shape` and `dtype` with i.i.d. Logistic(0, 1) entries.

  References:
    [CON] section 3.3.
  """
  _checks.check_key(key, 'sample_logistic', 'key, shape, dtype')
  compute = _checks.compute_dtype(dtype)
  return logistic_from_uniform(sample_uniform(key, shape, compute)).astype(dtype)


def gumbel_max(key: Array, logits: ArrayLike, axis: int = -1) -> Array:
  """Draws an exact one-hot sample of Categorical(softmax(logits)).

  Args:
    key: a PRNG key.
    logits: unnormalized log-probabilities, floating, at least rank 1, with
      at least one category.
    axis: the category axis.

  Returns:
    A one-hot array of the shape and dtype of `logits`; NaN along `axis`
    where a logit of that distribution is NaN.

  References:
    [GS] eq. 1 (the Gumbel-Max trick); [CON] section 2.2.
  """
  _checks.check_key(key, 'gumbel_max', 'key, logits')
  logits = _checks.as_logits(logits, 'gumbel_max', signature='key, logits')
  axis = _checks.check_categorical(logits, axis, 'gumbel_max')
  dtype = logits.dtype
  compute = _checks.compute_dtype(dtype)
  g = sample_gumbel(key, logits.shape, compute)
  index = jnp.argmax(logits.astype(compute) + g, axis=axis)
  sample = jax.nn.one_hot(index, logits.shape[axis], dtype=dtype, axis=axis)
  # argmax picks a NaN logit's class: a NaN distribution gives NaN, not a one-hot.
  return jnp.where(jnp.isnan(logits).any(axis=axis, keepdims=True), jnp.nan, sample)


def straight_through(hard: Array, soft: Array) -> Array:
  """Returns `hard` in the forward pass with the gradient of `soft`.

  Written as `hard + (soft - stop_gradient(soft))`: the bracket is exactly
  zero in the forward pass, so the value is exactly `hard`.

  Args:
    hard: the forward value (e.g. a one-hot sample).
    soft: the relaxed value whose gradient is used.

  Returns:
    An array equal to `hard` whose derivative is that of `soft`.

  References:
    Bengio, Leonard, Courville 2013 (arXiv:1308.3432); [GS] section 2.2.
  """
  return hard + (soft - jax.lax.stop_gradient(soft))


def _perturbed_logits(key, logits, temperature, axis, fn):
  """(logits + g) / tau in the compute dtype, after the checks.

  Returns:
    `(z, axis, dtype)`: z of the broadcast shape, the category axis counted
    from the end, and the dtype of `logits`.
  """
  signature = 'key, logits, temperature'
  _checks.check_key(key, fn, signature)
  logits = _checks.as_logits(logits, fn, signature=signature)
  # Negative: the category axis counts from the end, also after broadcasting.
  axis = _checks.check_categorical(logits, axis, fn) - logits.ndim
  dtype = logits.dtype
  compute = _checks.compute_dtype(dtype)
  tau, shape = _checks.categorical_temperature(
      temperature, logits.shape, axis, compute, fn, f'logits of shape {logits.shape}')
  g = sample_gumbel(key, shape, compute)
  # Broadcast explicitly: rank promotion may be disabled.
  logits = jnp.broadcast_to(logits.astype(compute), shape)
  return (logits + g) / tau, axis, dtype


def gumbel_softmax(
    key: Array,
    logits: ArrayLike,
    temperature: ArrayLike,
    *,
    hard: bool = False,
    axis: int = -1,
) -> Array:
  """Draws a Gumbel-Softmax (Concrete) sample, softmax((logits + g) / tau).

  Computed in float32 (or float64) inside; the result has the dtype of
  `logits`. Finite for float16 logits of +-1e4 at temperature 0.01.

  Args:
    key: a PRNG key (first, unlike PyTorch's `F.gumbel_softmax(logits, tau)`).
    logits: unnormalized log-probabilities log(pi): floating, at least rank
      1, at least one category.
    temperature: tau > 0; a Python float or an array of any float dtype:
      shaped like the batch (`logits` without `axis`, e.g. `[B]` for
      `[B, K]`) or like `logits` with size 1 on `axis` (`[B, 1]`), by the
      temperature rule (module docstring).
    hard: if True, return the straight-through sample: exactly one-hot in
      the forward pass (the argmax of the soft sample, which is a Gumbel-Max
      sample), with the gradient of the soft sample. Static under `jit`.
    axis: the category axis, one int. Static under `jit`.

  Returns:
    A sample on the simplex with the dtype of `logits` and its shape, or the
    broadcast shape when the temperature adds batch axes.

  References:
    [GS] eq. 2 and section 2.2 (straight-through); [CON] definition 2.
  """
  _checks.check_static_bool(hard, 'gumbel_softmax', 'hard')
  z, axis, dtype = _perturbed_logits(key, logits, temperature, axis, 'gumbel_softmax')
  y = jax.nn.softmax(z, axis=axis)
  if hard:
    y_hard = jax.nn.one_hot(jnp.argmax(y, axis=axis), y.shape[axis], dtype=y.dtype, axis=axis)
    y = straight_through(y_hard, y)
  return y.astype(dtype)


def log_gumbel_softmax(
    key: Array,
    logits: ArrayLike,
    temperature: ArrayLike,
    *,
    axis: int = -1,
) -> Array:
  """Draws the log of a Gumbel-Softmax sample, log_softmax((logits + g) / tau).

  An ExpConcrete sample: the same noise as `gumbel_softmax` with the same
  key, so `exp` of it is that sample, but computed in log space, so it stays
  finite where the Concrete sample underflows to 0 (low temperatures, float16).
  Its density is `exp_concrete_log_prob`.

  Args:
    key: a PRNG key.
    logits: unnormalized log-probabilities log(pi), as in `gumbel_softmax`.
    temperature: tau > 0, as in `gumbel_softmax`.
    axis: the category axis, one int. Static under `jit`.

  Returns:
    log y, with logsumexp over `axis` equal to 0; shape and dtype as
    `gumbel_softmax` gives them.

  References:
    [CON] appendix C.3 (ExpConcrete).
  """
  z, axis, dtype = _perturbed_logits(key, logits, temperature, axis, 'log_gumbel_softmax')
  return jax.nn.log_softmax(z, axis=axis).astype(dtype)


def relaxed_bernoulli(
    key: Array,
    logits: ArrayLike,
    temperature: ArrayLike,
    *,
    hard: bool = False,
) -> Array:
  """Draws a Binary Concrete (relaxed Bernoulli) sample.

  x = sigmoid((logits + L) / tau) with L = log u - log(1 - u) logistic noise;
  this is the K=2 Gumbel-Softmax with logits (logits, 0).

  Args:
    key: a PRNG key.
    logits: log(p / (1 - p)) of each Bernoulli unit, floating, any shape.
    temperature: tau > 0; a float or an array broadcasting against `logits`
      in both directions.
    hard: if True, the forward value is the exact Bernoulli sample
      1[x > 1/2] with the gradient of x (straight-through). Static under
      `jit`.

  Returns:
    Samples in (0, 1) (or {0, 1} if hard) with the dtype of `logits`, of
    the broadcast shape of `logits` and `temperature`.

  References:
    [CON] section 3.3 and eq. 21 (Binary Concrete); [GS] section 2.2.
  """
  fn, signature = 'relaxed_bernoulli', 'key, logits, temperature'
  _checks.check_static_bool(hard, fn, 'hard')
  _checks.check_key(key, fn, signature)
  logits = _checks.as_logits(logits, fn, signature=signature)
  dtype = logits.dtype
  compute = _checks.compute_dtype(dtype)
  tau, shape = _checks.bernoulli_temperature(
      temperature, logits.shape, compute, fn, f'logits of shape {logits.shape}')
  noise = sample_logistic(key, shape, compute)
  # Broadcast explicitly: rank promotion may be disabled.
  logits = jnp.broadcast_to(logits.astype(compute), shape)
  x = jax.nn.sigmoid((logits + noise) / tau)
  if hard:
    x = straight_through((x > 0.5).astype(compute), x)
  return x.astype(dtype)


# ----------------------------------------------------------------------------
# Densities.
# ----------------------------------------------------------------------------


def _exp_concrete_log_prob(log_x, logits, temperature, axis, fn, points):
  """`exp_concrete_log_prob`; `points` names `log_x` in errors."""
  log_x = _checks.as_points(log_x, fn, points)
  logits = _checks.as_logits(logits, fn)
  # A negative axis counts from the end, so it stays valid after broadcasting.
  axis = _checks.check_categorical(log_x, axis, fn, points) - log_x.ndim
  dtype = _checks.float_result_type(log_x, logits)
  compute = _checks.compute_dtype(dtype)
  what = f'{points} of shape {log_x.shape} and logits of shape {logits.shape}'
  try:
    shape = np.broadcast_shapes(log_x.shape, logits.shape)
  except ValueError:
    raise ValueError(f'{fn}: {what} do not broadcast.') from None
  n = shape[axis]
  if n == 0:
    raise ValueError(f'{fn}: {what} broadcast to {shape}, which has no categories '
                     f'(size 0 on the category axis {axis}).')
  tau, shape = _checks.categorical_temperature(
      temperature, shape, axis, compute, fn, what, operands=f'{points} and logits',
      result='log-densities')
  # Broadcast explicitly: rank promotion may be disabled.
  log_x = jnp.broadcast_to(log_x.astype(compute), shape)
  z = jnp.broadcast_to(logits.astype(compute), shape) - tau * log_x
  log_norm = math.lgamma(n) + (n - 1) * jnp.log(jnp.squeeze(tau, axis))
  out = log_norm + jnp.sum(z, axis=axis) - n * jax.nn.logsumexp(z, axis=axis)
  return out.astype(dtype)


def exp_concrete_log_prob(
    log_x: ArrayLike,
    logits: ArrayLike,
    temperature: ArrayLike,
    axis: int = -1,
) -> Array:
  """Log-density of the ExpConcrete distribution (log of a Concrete sample).

  log p(y) = log((n-1)!) + (n-1) log(tau) + sum_k (logits_k - tau y_k)
             - n logsumexp_k(logits_k - tau y_k),
  for y = log x with logsumexp(y) = 0. Stable for very negative y, which is
  why relaxed VAEs should evaluate KL terms in log space.

  Args:
    log_x: points y = log(x), shape [..., n] (category axis `axis`).
    logits: unnormalized log(alpha), floating, broadcasting against `log_x`.
    temperature: tau > 0: a scalar, shaped like the batch or like the points
      with size 1 on `axis`, by the temperature rule (module docstring).
    axis: the category axis, one int.

  Returns:
    The log-density, of the broadcast batch shape of the points, `logits`
    and `temperature` (`axis` reduced).

  References:
    [CON] appendix C.3 (ExpConcrete), eq. 26.
  """
  return _exp_concrete_log_prob(log_x, logits, temperature, axis, 'exp_concrete_log_prob',
                                'log_x')


def concrete_log_prob(
    x: ArrayLike,
    logits: ArrayLike,
    temperature: ArrayLike,
    axis: int = -1,
) -> Array:
  """Log-density of the Concrete (Gumbel-Softmax) distribution.

  p(x) = (n-1)! tau^(n-1) prod_k [alpha_k x_k^(-tau-1) /
         sum_i alpha_i x_i^(-tau)],
  with respect to the Lebesgue measure of the first n-1 coordinates of the
  simplex. Computed as the ExpConcrete density at log x minus sum_k log x_k.
  Entries of `x` below the smallest normal number of the compute dtype are
  clamped to it, so the result is finite on the boundary of the simplex
  (where the exact density is 0 or infinite).

  Args:
    x: points on the simplex, shape [..., n].
    logits: unnormalized log(alpha), floating, broadcasting against `x`.
    temperature: tau > 0: a scalar, shaped like the batch or like the points
      with size 1 on `axis`, by the temperature rule (module docstring).
    axis: the category axis, one int.

  Returns:
    The log-density, of the broadcast batch shape of the points, `logits`
    and `temperature` (`axis` reduced).

  References:
    [CON] eq. 11 (definition 2); [GS] eq. 3.
  """
  fn = 'concrete_log_prob'
  x = _checks.as_points(x, fn, 'x')
  axis = _checks.check_categorical(x, axis, fn, 'x')
  compute = _checks.compute_dtype(x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32)
  log_x = jnp.log(jnp.maximum(x.astype(compute), jnp.finfo(compute).tiny))
  log_prob = _exp_concrete_log_prob(log_x, logits, temperature, axis, fn, 'x')
  # The batch shape of x broadcasts (right-aligned) against that of log_prob.
  out = log_prob - jnp.broadcast_to(jnp.sum(log_x, axis=axis), log_prob.shape)
  return out.astype(_checks.float_result_type(x, jnp.asarray(logits)))


def binary_concrete_log_prob(
    x: ArrayLike,
    logits: ArrayLike,
    temperature: ArrayLike,
) -> Array:
  """Log-density of the Binary Concrete (relaxed Bernoulli) distribution.

  p(x) = tau alpha x^(-tau-1) (1-x)^(-tau-1) / (alpha x^(-tau) +
  (1-x)^(-tau))^2 with alpha = exp(logits), evaluated in log space as
  log tau + logits - (tau+1) log x + (tau-1) log(1-x)
  - 2 softplus(logits - tau logit(x)).
  `x` is clamped into [tiny, 1 - eps] so the result is finite at 0 and 1.

  Args:
    x: points in (0, 1).
    logits: log(alpha), floating, broadcasting against `x`.
    temperature: tau > 0, broadcasting against `x` and `logits` in both
      directions.

  Returns:
    The log-density, of the broadcast shape of `x`, `logits` and
    `temperature`.

  References:
    [CON] eq. 21 and appendix C.
  """
  fn = 'binary_concrete_log_prob'
  x = _checks.as_points(x, fn, 'x')
  logits = _checks.as_logits(logits, fn)
  dtype = _checks.float_result_type(x, logits)
  compute = _checks.compute_dtype(dtype)
  what = f'x of shape {x.shape} and logits of shape {logits.shape}'
  try:
    shape = np.broadcast_shapes(x.shape, logits.shape)
  except ValueError:
    raise ValueError(f'{fn}: {what} do not broadcast.') from None
  tau, shape = _checks.bernoulli_temperature(temperature, shape, compute, fn, what)
  finfo = jnp.finfo(compute)
  # Broadcast explicitly: rank promotion may be disabled.
  x = jnp.broadcast_to(jnp.clip(x.astype(compute), finfo.tiny, 1.0 - finfo.eps), shape)
  log_x, log_1mx = jnp.log(x), jnp.log1p(-x)
  logits = jnp.broadcast_to(logits.astype(compute), shape)
  out = (jnp.log(tau) + logits - (tau + 1) * log_x + (tau - 1) * log_1mx
         - 2 * jax.nn.softplus(logits - tau * (log_x - log_1mx)))
  return out.astype(dtype)


# ----------------------------------------------------------------------------
# Divergences.
# ----------------------------------------------------------------------------


def categorical_kl(logits_q: ArrayLike, logits_p: ArrayLike, axis: int = -1) -> Array:
  """Analytic KL(q || p) between categoricals given by (unnormalized) logits.

  KL = sum_k q_k (log q_k - log p_k). For the uniform prior of the
  categorical VAE pass `logits_p=jnp.zeros(())` (any constant broadcasts).
  Computed in float32 inside; categories with q_k = 0 contribute exactly 0;
  a NaN logit gives NaN.

  Args:
    logits_q: logits of q, floating, at least rank 1, at least one category.
    logits_p: logits of p, floating, broadcasting against `logits_q`.
    axis: the category axis, one int.

  Returns:
    KL per distribution, of the broadcast batch shape (`axis` reduced), in
    the dtype of `logits_q`.

  References:
    [GS] section 4 / appendix (categorical VAE with uniform prior).
  """
  fn = 'categorical_kl'
  logits_q = _checks.as_logits(logits_q, fn, 'logits_q')
  logits_p = _checks.as_logits(logits_p, fn, 'logits_p')
  axis = _checks.check_categorical(logits_q, axis, fn, 'logits_q')
  dtype = logits_q.dtype
  compute = _checks.compute_dtype(dtype)
  # Explicitly, and before the softmax over `axis` (an axis of logits_q).
  try:
    logits_p = jnp.broadcast_to(logits_p, logits_q.shape)
  except ValueError:
    raise ValueError(f'{fn}: logits_p of shape {logits_p.shape} does not broadcast to '
                     f'logits_q of shape {logits_q.shape}.') from None
  log_q = jax.nn.log_softmax(logits_q.astype(compute), axis=axis)
  log_p = jax.nn.log_softmax(logits_p.astype(compute), axis=axis)
  q = jnp.exp(log_q)
  # q == 0, not q > 0: a NaN logit gives a NaN KL, not 0.
  kl = jnp.sum(jnp.where(q == 0, 0.0, q * (log_q - log_p)), axis=axis)
  return kl.astype(dtype)


def bernoulli_kl(logits_q: ArrayLike, logits_p: ArrayLike) -> Array:
  """Analytic KL(q || p) between Bernoullis given by logits, elementwise.

  Args:
    logits_q: logits of q, floating.
    logits_p: logits of p, floating, broadcasting against `logits_q`.

  Returns:
    The elementwise KL, in the dtype of `logits_q`.
  """
  fn = 'bernoulli_kl'
  logits_q = _checks.as_logits(logits_q, fn, 'logits_q')
  logits_p = _checks.as_logits(logits_p, fn, 'logits_p')
  dtype = logits_q.dtype
  compute = _checks.compute_dtype(dtype)
  # Broadcast explicitly: rank promotion may be disabled.
  try:
    shape = np.broadcast_shapes(logits_q.shape, logits_p.shape)
  except ValueError:
    raise ValueError(f'{fn}: logits_q of shape {logits_q.shape} and logits_p of shape '
                     f'{logits_p.shape} do not broadcast.') from None
  lq = jnp.broadcast_to(logits_q.astype(compute), shape)
  lp = jnp.broadcast_to(logits_p.astype(compute), shape)
  q = jax.nn.sigmoid(lq)
  # log q - log p and log(1-q) - log(1-p) in softplus form (stable).
  kl = (q * (jax.nn.softplus(-lp) - jax.nn.softplus(-lq))
        + (1 - q) * (jax.nn.softplus(lp) - jax.nn.softplus(lq)))
  return kl.astype(dtype)


