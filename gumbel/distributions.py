"""Gumbel noise, Gumbel-Max, relaxed (Concrete) sampling and Concrete densities.

All functions are pure and safe under `jax.jit`, `jax.vmap` and `jax.grad`.
Noise is always drawn and transformed in float32 (float64 when the requested
dtype is float64) and only the result is cast to the caller's dtype, so that
float16 and bfloat16 inputs never produce inf or NaN.

Validation: arguments that are concrete (Python numbers, NumPy arrays, JAX
arrays outside a trace) are checked and bad values raise `ValueError` naming
the value. Traced values (inside `jit`, `vmap`, `grad`) cannot be inspected
without a host round trip and are *not* checked: a traced temperature <= 0
gives inf/NaN outputs, exactly as the formulas do. Wrap the call in
`jax.experimental.checkify` if you need run-time checks of traced values.

Temperatures: one rule in every function that takes one (`gumbel_softmax`,
`relaxed_bernoulli` and the three densities). With a category axis (logits
`[..., K]`; the batch shape is the logits' shape without it), a temperature
may be
  (a) a scalar;
  (b) shaped like the batch: `[B]` for logits `[B, K]`;
  (c) shaped like the logits with size 1 on the category axis: `[B, 1]` for
      `[B, K]`, exactly as `logits / tau` broadcasts.
As in TensorFlow Probability, (b) and (c) broadcast against the batch shape
in both directions: logits `[K]` with tau `[T]` or `[T, 1]` give samples
`[T, K]` and log-densities `[T]`. When the temperature, right-aligned
against the logits, has size 1 at the category axis, it is read as (c) (that
axis is dropped), otherwise as (b). The Bernoulli functions have no category
axis: their temperature broadcasts against the logits (and x) in both
directions. The result's batch shape is the broadcast of all batch shapes
(x, logits, temperature), and noise is drawn at that shape. Any other shape
raises a `ValueError` that shows the shapes and the accepted forms. A
non-default `axis` counts from the end (a negative axis) after broadcasting.

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

Array = jax.Array
ArrayLike = Any  # jax.typing.ArrayLike, kept loose for Python floats.


# ----------------------------------------------------------------------------
# Validation helpers.
# ----------------------------------------------------------------------------


def _is_concrete(x) -> bool:
  return not isinstance(x, jax.core.Tracer)


def check_temperature(temperature: ArrayLike, name: str = 'temperature'):
  """Raises `ValueError` if a concrete temperature has a non-positive entry.

  Traced temperatures are not checked (see the module docstring).

  Args:
    temperature: a Python number or array of temperatures.
    name: the argument name used in the error message.
  """
  if not _is_concrete(temperature):
    return
  t = np.asarray(temperature)
  if not np.issubdtype(t.dtype, np.number):
    raise ValueError(f'{name} must be a number or numeric array, got {temperature!r}.')
  bad = ~(t > 0)  # Also catches NaN.
  if np.any(bad):
    shown = t if t.size <= 8 else t[bad][:8]
    raise ValueError(
        f'{name} must be > 0 (and not NaN), got {shown!r}. Use a small positive '
        'value such as 0.01 for nearly discrete samples, or hard=True for '
        'exactly one-hot samples.')


def _check_logits(logits, axis: int, name: str = 'logits') -> int:
  """Checks rank and axis; returns the non-negative axis."""
  ndim = jnp.ndim(logits)
  if ndim == 0:
    raise ValueError(
        f'{name} must have at least one dimension (the category axis), got a '
        f'scalar {name} of shape (). For a single Bernoulli variable use '
        'relaxed_bernoulli, or pass logits of shape [K].')
  if not -ndim <= axis < ndim:
    raise ValueError(
        f'axis={axis} is out of range for {name} of shape {jnp.shape(logits)}: '
        f'allowed are {-ndim}..{ndim - 1}.')
  return axis % ndim


def _compute_dtype(dtype) -> jnp.dtype:
  """float32, or float64 when asked for float64 (needs jax_enable_x64)."""
  dtype = jnp.dtype(dtype)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f'dtype must be a floating dtype, got {dtype}.')
  return jnp.promote_types(dtype, jnp.float32)


def _float_result_type(*args) -> jnp.dtype:
  """The promoted dtype of `args`, or float32 if that is not floating."""
  dtype = jnp.result_type(*args)
  return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.dtype(jnp.float32)


_CATEGORICAL_FORMS = (
    'Accepted temperature shapes: (a) a scalar; (b) a batch shape, i.e. the '
    'logits shape without the category axis ([B] for logits [B, K]); (c) the '
    'logits shape with size 1 on the category axis ([B, 1] for [B, K], as '
    '`logits / tau` broadcasts). (b) and (c) broadcast against the batch '
    'shape in both directions: logits [K] with tau [T] or [T, 1] give [T, K] '
    'samples. A temperature whose size on the category axis (right-aligned) '
    'is 1 is read as (c).')
_BERNOULLI_FORMS = (
    'Accepted temperature shapes: a scalar, or any shape that broadcasts '
    'against the logits (both directions: logits [D] with tau [T, 1] give '
    '[T, D] samples).')


def _broadcasts(*shapes) -> bool:
  try:
    np.broadcast_shapes(*shapes)
    return True
  except ValueError:
    return False


def _broadcast_error(tau_shape, what, forms, hint=''):
  return ValueError(
      f'temperature of shape {tuple(tau_shape)} does not broadcast against '
      f'{what}. {forms}{hint}')


def _categorical_temperature(temperature, shape, axis, dtype, what):
  """Applies the temperature rule for a category axis (module docstring).

  Args:
    temperature: a scalar or array of temperatures.
    shape: the shape of the logits (for densities, of x and logits broadcast).
    axis: the category axis, negative (counted from the end).
    dtype: the compute dtype.
    what: the shapes in words, for errors ('logits of shape (2, 3)').

  Returns:
    `(tau, out_shape)`: the output shape, i.e. the broadcast batch shape with
    the category axis of size `shape[axis]` at `axis`, and the temperature
    with the rank of `out_shape` and size 1 on the category axis.
  """
  check_temperature(temperature)
  tau = jnp.asarray(temperature, dtype)
  shape = tuple(shape)
  batch_shape = shape[:len(shape) + axis] + shape[len(shape) + axis + 1:]
  form_c = tau.ndim >= -axis and tau.shape[axis] == 1
  tau_batch = jnp.squeeze(tau, axis) if form_c else tau
  try:
    out_batch = np.broadcast_shapes(tau_batch.shape, batch_shape)
  except ValueError:
    hint = ''
    if form_c and _broadcasts(tau.shape, batch_shape):
      # Meant as a batch shape (b): the same with the category axis added.
      position = tau.ndim + 1 + axis
      suggested = tau.shape[:position] + (1,) + tau.shape[position:]
      hint = (f' Its size at the category axis is 1, so it was read as (c); '
              f'as a batch shape (b) it would broadcast: for that, pass shape '
              f'{suggested}.')
    raise _broadcast_error(
        tau.shape, f'{what} (batch shape {batch_shape}, category axis {axis})',
        _CATEGORICAL_FORMS, hint) from None
  n = len(out_batch)
  # Left-pad to the batch rank (explicitly: rank promotion may be disabled).
  tau_batch = tau_batch.reshape((1,) * (n - tau_batch.ndim) + tau_batch.shape)
  position = n + 1 + axis
  out_shape = out_batch[:position] + (shape[axis],) + out_batch[position:]
  return jnp.expand_dims(tau_batch, position), out_shape


def _bernoulli_temperature(temperature, shape, dtype, what):
  """Broadcasts a temperature against `shape` in both directions.

  Args:
    temperature: a scalar or array of temperatures.
    shape: the shape of the logits (for densities, of x and logits broadcast).
    dtype: the compute dtype.
    what: the shapes in words, for errors.

  Returns:
    `(tau, out_shape)`: the broadcast shape, and the temperature left-padded
    to its rank.
  """
  check_temperature(temperature)
  tau = jnp.asarray(temperature, dtype)
  try:
    out_shape = np.broadcast_shapes(tau.shape, tuple(shape))
  except ValueError:
    raise _broadcast_error(tau.shape, what, _BERNOULLI_FORMS) from None
  tau = tau.reshape((1,) * (len(out_shape) - tau.ndim) + tau.shape)
  return tau, out_shape


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


def _uniform(key, shape, dtype):
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
  compute = _compute_dtype(dtype)
  return gumbel_from_uniform(_uniform(key, tuple(shape), compute)).astype(dtype)


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
  compute = _compute_dtype(dtype)
  return logistic_from_uniform(_uniform(key, tuple(shape), compute)).astype(dtype)


def gumbel_max(key: Array, logits: ArrayLike, axis: int = -1) -> Array:
  """Draws an exact one-hot sample of Categorical(softmax(logits)).

  Args:
    key: a PRNG key.
    logits: unnormalized log-probabilities, at least rank 1.
    axis: the category axis.

  Returns:
    A one-hot array of the shape and (floating) dtype of `logits`.

  References:
    [GS] eq. 1 (the Gumbel-Max trick); [CON] section 2.2.
  """
  logits = jnp.asarray(logits)
  axis = _check_logits(logits, axis)
  dtype = logits.dtype if jnp.issubdtype(logits.dtype, jnp.floating) else jnp.float32
  compute = _compute_dtype(dtype)
  g = sample_gumbel(key, logits.shape, compute)
  index = jnp.argmax(logits.astype(compute) + g, axis=axis)
  return jax.nn.one_hot(index, logits.shape[axis], dtype=dtype, axis=axis)


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
    key: a PRNG key.
    logits: unnormalized log-probabilities log(pi), at least rank 1.
    temperature: tau > 0; a Python float or an array: shaped like the batch
      (`logits` without `axis`, e.g. `[B]` for `[B, K]`) or like `logits`
      with size 1 on `axis` (`[B, 1]`), each broadcasting against the batch
      shape in both directions (module docstring).
    hard: if True, return the straight-through sample: exactly one-hot in
      the forward pass (the argmax of the soft sample, which is a Gumbel-Max
      sample), with the gradient of the soft sample.
    axis: the category axis.

  Returns:
    A sample on the simplex with the dtype of `logits` and its shape, or the
    broadcast shape when the temperature adds batch axes.

  References:
    [GS] eq. 2 and section 2.2 (straight-through); [CON] definition 2.
  """
  logits = jnp.asarray(logits)
  # Negative: the category axis counts from the end, also after broadcasting.
  axis = _check_logits(logits, axis) - logits.ndim
  dtype = logits.dtype
  compute = _compute_dtype(dtype)
  tau, shape = _categorical_temperature(
      temperature, logits.shape, axis, compute, f'logits of shape {logits.shape}')
  g = sample_gumbel(key, shape, compute)
  # Broadcast explicitly: rank promotion may be disabled.
  logits = jnp.broadcast_to(logits.astype(compute), shape)
  y = jax.nn.softmax((logits + g) / tau, axis=axis)
  if hard:
    y_hard = jax.nn.one_hot(
        jnp.argmax(y, axis=axis), shape[axis], dtype=compute, axis=axis)
    y = straight_through(y_hard, y)
  return y.astype(dtype)


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
    logits: log(p / (1 - p)) of each Bernoulli unit, any shape.
    temperature: tau > 0; a float or an array broadcasting against `logits`
      in both directions.
    hard: if True, the forward value is the exact Bernoulli sample
      1[x > 1/2] with the gradient of x (straight-through).

  Returns:
    Samples in (0, 1) (or {0, 1} if hard) with the dtype of `logits`, of
    the broadcast shape of `logits` and `temperature`.

  References:
    [CON] section 3.3 and eq. 21 (Binary Concrete); [GS] section 2.2.
  """
  logits = jnp.asarray(logits)
  dtype = logits.dtype
  compute = _compute_dtype(dtype)
  tau, shape = _bernoulli_temperature(
      temperature, logits.shape, compute, f'logits of shape {logits.shape}')
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


def _exp_concrete_log_prob(log_x, logits, temperature, axis, points):
  """`exp_concrete_log_prob`; `points` names `log_x` in errors."""
  log_x = jnp.asarray(log_x)
  logits = jnp.asarray(logits)
  # A negative axis counts from the end, so it stays valid after broadcasting.
  axis = _check_logits(log_x, axis, points) - log_x.ndim
  dtype = _float_result_type(log_x, logits)
  compute = _compute_dtype(dtype)
  shape = np.broadcast_shapes(log_x.shape, logits.shape)
  n = shape[axis]
  tau, shape = _categorical_temperature(
      temperature, shape, axis, compute,
      f'{points} of shape {log_x.shape} and logits of shape {logits.shape}')
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
    logits: unnormalized log(alpha), broadcasting against `log_x`.
    temperature: tau > 0: a scalar, shaped like the batch or like the points
      with size 1 on `axis`, broadcasting in both directions (module
      docstring).
    axis: the category axis.

  Returns:
    The log-density, of the broadcast batch shape of the points, `logits`
    and `temperature` (`axis` reduced).

  References:
    [CON] appendix C.3 (ExpConcrete), eq. 26.
  """
  return _exp_concrete_log_prob(log_x, logits, temperature, axis, 'log_x')


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
    logits: unnormalized log(alpha), broadcasting against `x`.
    temperature: tau > 0: a scalar, shaped like the batch or like the points
      with size 1 on `axis`, broadcasting in both directions (module
      docstring).
    axis: the category axis.

  Returns:
    The log-density, of the broadcast batch shape of the points, `logits`
    and `temperature` (`axis` reduced).

  References:
    [CON] eq. 11 (definition 2); [GS] eq. 3.
  """
  x = jnp.asarray(x)
  axis = _check_logits(x, axis, 'x')
  compute = _compute_dtype(x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32)
  log_x = jnp.log(jnp.maximum(x.astype(compute), jnp.finfo(compute).tiny))
  log_prob = _exp_concrete_log_prob(log_x, logits, temperature, axis, 'x')
  # The batch shape of x broadcasts (right-aligned) against that of log_prob.
  out = log_prob - jnp.broadcast_to(jnp.sum(log_x, axis=axis), log_prob.shape)
  return out.astype(_float_result_type(x, logits))


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
    logits: log(alpha), broadcasting against `x`.
    temperature: tau > 0, broadcasting against `x` and `logits` in both
      directions.

  Returns:
    The log-density, of the broadcast shape of `x`, `logits` and
    `temperature`.

  References:
    [CON] eq. 21 and appendix C.
  """
  x = jnp.asarray(x)
  logits = jnp.asarray(logits)
  dtype = _float_result_type(x, logits)
  compute = _compute_dtype(dtype)
  shape = np.broadcast_shapes(x.shape, logits.shape)
  tau, shape = _bernoulli_temperature(
      temperature, shape, compute,
      f'x of shape {x.shape} and logits of shape {logits.shape}')
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
  Computed in float32 inside; categories with q_k = 0 contribute exactly 0.

  Args:
    logits_q: logits of q, at least rank 1.
    logits_p: logits of p, broadcasting against `logits_q`.
    axis: the category axis.

  Returns:
    KL per distribution, of the broadcast batch shape (`axis` reduced), in
    the dtype of `logits_q`.

  References:
    [GS] section 4 / appendix (categorical VAE with uniform prior).
  """
  logits_q = jnp.asarray(logits_q)
  logits_p = jnp.asarray(logits_p)
  axis = _check_logits(logits_q, axis, 'logits_q')
  dtype = _float_result_type(logits_q)
  compute = _compute_dtype(dtype)
  # Explicitly, and before the softmax over `axis` (an axis of logits_q).
  logits_p = jnp.broadcast_to(logits_p, logits_q.shape)
  log_q = jax.nn.log_softmax(logits_q.astype(compute), axis=axis)
  log_p = jax.nn.log_softmax(logits_p.astype(compute), axis=axis)
  q = jnp.exp(log_q)
  kl = jnp.sum(jnp.where(q > 0, q * (log_q - log_p), 0.0), axis=axis)
  return kl.astype(dtype)


def bernoulli_kl(logits_q: ArrayLike, logits_p: ArrayLike) -> Array:
  """Analytic KL(q || p) between Bernoullis given by logits, elementwise.

  Args:
    logits_q: logits of q.
    logits_p: logits of p, broadcasting against `logits_q`.

  Returns:
    The elementwise KL, in the dtype of `logits_q`.
  """
  logits_q = jnp.asarray(logits_q)
  logits_p = jnp.asarray(logits_p)
  dtype = _float_result_type(logits_q)
  compute = _compute_dtype(dtype)
  # Broadcast explicitly: rank promotion may be disabled.
  shape = np.broadcast_shapes(logits_q.shape, logits_p.shape)
  lq = jnp.broadcast_to(logits_q.astype(compute), shape)
  lp = jnp.broadcast_to(logits_p.astype(compute), shape)
  q = jax.nn.sigmoid(lq)
  # log q - log p and log(1-q) - log(1-p) in softplus form (stable).
  kl = (q * (jax.nn.softplus(-lp) - jax.nn.softplus(-lq))
        + (1 - q) * (jax.nn.softplus(lp) - jax.nn.softplus(lq)))
  return kl.astype(dtype)
