"""Subsets: sampling without replacement (Gumbel-top-k), Plackett-Luce, relaxed top-k.

Perturbing logits with i.i.d. Gumbel noise and taking the k largest gives k
distinct categories in the order of an exact sample without replacement
from softmax(logits): the first is a categorical sample, the second one from
the renormalized rest, and so on (the Plackett-Luce distribution). A relaxed
k-hot vector replaces the hard top-k of the perturbed logits by a smooth
function of them.

Conventions as in `gumbel.distributions`: the key first, one category axis
(`axis`), noise drawn in float32 (float64 for float64 logits) and the result
cast to the logits' dtype, static `k`, `axis`, `hard` and `method` under
`jit`, and `ValueError`s that name the argument, its value and what is
allowed. The temperature of `relaxed_top_k` follows the temperature rule of
`gumbel.distributions`.

References:
  [KOOL] Kool, van Hoof, Welling. Stochastic Beams and Where to Find Them:
    The Gumbel-Top-k Trick for Sampling Sequences Without Replacement.
    ICML 2019, arXiv:1903.06059.
  [VIE] Vieira. Gumbel-max trick and weighted reservoir sampling. Blog post,
    2014 (the top-k of Gumbel-perturbed logits is a sample without
    replacement).
  [PL] Plackett. The Analysis of Permutations. Applied Statistics 24(2),
    1975; Luce. Individual Choice Behavior, 1959.
  [XE] Xie, Ermon. Reparameterizable Subset Sampling via Continuous
    Relaxations. IJCAI 2019, arXiv:1901.10517.
  [LML] Amos, Koltun, Kolter. The Limited Multi-Label Projection Layer.
    arXiv:1906.08707, 2019.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gumbel import _checks
from gumbel import distributions as _d

Array = jax.Array
ArrayLike = Any

_METHODS = ('threshold', 'xie_ermon')


def _check_k(k, n, axis, fn) -> int:
  """Raises unless `k` is a Python int in [1, n]."""
  if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
    hint = ''
    if isinstance(k, jax.core.Tracer):
      hint = " Under jit it must be static: jax.jit(..., static_argnames=('k',))."
    raise ValueError(f'{fn}: k must be an int (the subset size), got {k!r}.{hint}')
  if not 1 <= k <= n:
    raise ValueError(
        f'{fn}: k={k} is not allowed for {n} categories (axis {axis}): allowed '
        f'are 1 <= k <= {n}.')
  return int(k)


def _perturbed(key, logits, k, axis, fn, signature):
  """Checks the arguments; returns `(logits + g, axis, k, dtype)`, compute dtype."""
  _checks.check_key(key, fn, signature)
  logits = _checks.as_logits(logits, fn, signature=signature)
  axis = _checks.check_categorical(logits, axis, fn)
  k = _check_k(k, logits.shape[axis], axis, fn)
  dtype = logits.dtype
  compute = _checks.compute_dtype(dtype)
  g = _d.sample_gumbel(key, logits.shape, compute)
  return logits.astype(compute) + g, axis, k, dtype


def gumbel_top_k(key: Array, logits: ArrayLike, k: int, *, axis: int = -1) -> Array:
  """Draws k distinct categories without replacement, in the order drawn.

  The indices of the k largest of logits + g, g i.i.d. Gumbel(0, 1), in
  decreasing order: an exact ordered sample without replacement from
  softmax(logits), i.e. a draw from the Plackett-Luce distribution whose
  log-probability is `plackett_luce_log_prob`. Categories with logit -inf
  are never drawn while finite ones remain (if k exceeds the number of
  finite logits, the last indices are among the -inf ones).

  Args:
    key: a PRNG key.
    logits: unnormalized log-probabilities, floating, at least rank 1, at
      least one category.
    k: the number of categories to draw, a Python int, 1 <= k <= the number
      of categories. Static under `jit`.
    axis: the category axis, one int. Static under `jit`.

  Returns:
    int32 indices into `axis`, of the shape of `logits` with `axis` of size
    k: entry j along `axis` is the j-th category drawn.

  References:
    [KOOL] section 2 (the Gumbel-top-k trick); [VIE].
  """
  fn = 'gumbel_top_k'
  z, axis, k, _ = _perturbed(key, logits, k, axis, fn, 'key, logits, k')
  _, index = jax.lax.top_k(jnp.moveaxis(z, axis, -1), k)
  return jnp.moveaxis(index.astype(jnp.int32), -1, axis)


def plackett_luce_log_prob(logits: ArrayLike, indices: ArrayLike, *, axis: int = -1) -> Array:
  """Log-probability of an ordered sample without replacement (Plackett-Luce).

  log p(i_1, ..., i_k) = sum_j [logits_{i_j} - logsumexp_{m not in
  {i_1..i_{j-1}}} logits_m], the probability that `gumbel_top_k` returns
  exactly these indices in this order. Computed in float32 (float64 for
  float64 logits), so it is finite for logits of +-1e4.

  Args:
    logits: unnormalized log-probabilities [..., n] (category axis `axis`),
      floating.
    indices: distinct integer indices into the category axis, [..., k] with
      k <= n along `axis` (counted from the end, as in `logits`); their
      batch shape broadcasts against that of `logits` (e.g. logits [n] with
      indices [M, k] give [M] log-probabilities). Concrete indices are checked (range and distinctness);
      traced ones (under `jit`) cannot be: out-of-range or repeated indices
      then give a meaningless value.
    axis: the category axis of `logits` and `indices`, one int.

  Returns:
    The log-probability, of the broadcast batch shape (`axis` reduced), in
    the dtype of `logits`.

  References:
    [PL]; [KOOL] section 2 and eq. 4.
  """
  fn = 'plackett_luce_log_prob'
  logits = _checks.as_logits(logits, fn)
  axis = _checks.check_categorical(logits, axis, fn)
  n = logits.shape[axis]
  if _checks.is_key(indices) or not jnp.issubdtype(jnp.asarray(indices).dtype, jnp.integer):
    raise ValueError(f'{fn}: indices must be an integer array (category indices, e.g. '
                     f'from gumbel_top_k), got {_checks.describe(indices)}.')
  indices = jnp.asarray(indices)
  # Negative: the axis counts from the end, so the batch shapes broadcast.
  axis -= logits.ndim
  if indices.ndim < -axis:
    raise ValueError(f'{fn}: indices of shape {indices.shape} have no axis {axis} (the k '
                     f'draws, on the category axis of logits of shape {logits.shape}).')
  k = indices.shape[axis]
  if not 1 <= k <= n:
    raise ValueError(f'{fn}: indices of shape {indices.shape} hold k={k} draws on axis '
                     f'{axis}; allowed are 1 <= k <= {n} (the number of categories).')
  if _checks.is_concrete(indices):
    values = np.moveaxis(np.asarray(indices), axis, -1)
    if values.size and (values.min() < 0 or values.max() >= n):
      raise ValueError(f'{fn}: indices must lie in [0, {n}) (the categories of axis '
                       f'{axis}), got values from {values.min()} to {values.max()}.')
    ordered = np.sort(values, axis=-1)
    if np.any(ordered[..., 1:] == ordered[..., :-1]):
      raise ValueError(f'{fn}: indices must be distinct along axis {axis} (a sample '
                       'without replacement), got a repeated index.')
  dtype = logits.dtype
  compute = _checks.compute_dtype(dtype)
  logits = jnp.moveaxis(logits.astype(compute), axis, -1)  # [..., n]
  indices = jnp.moveaxis(indices, axis, -1)  # [..., k]
  try:
    batch = np.broadcast_shapes(logits.shape[:-1], indices.shape[:-1])
  except ValueError:
    raise ValueError(f'{fn}: the batch shapes of logits {logits.shape[:-1]} and indices '
                     f'{indices.shape[:-1]} (axis {axis} removed) do not broadcast.') from None
  logits = jnp.broadcast_to(logits, batch + (n,))
  indices = jnp.broadcast_to(indices, batch + (k,))
  chosen = jnp.take_along_axis(logits, indices, axis=-1)  # [..., k]
  onehot = jax.nn.one_hot(indices, n, dtype=jnp.int32)  # [..., k, n]
  # Drawn before step j: the exclusive cumulative sum over the draws.
  before = jnp.cumsum(onehot, axis=-2) - onehot  # [..., k, n]
  remaining = jnp.where(before > 0, -jnp.inf, logits[..., None, :])  # [..., k, n]
  log_norm = jax.nn.logsumexp(remaining, axis=-1)  # [..., k]
  return jnp.sum(chosen - log_norm, axis=-1).astype(dtype)


def _threshold_top_k(x, k):
  """sigmoid(x + c) with c such that the entries sum to k, on the last axis.

  c is found by bisection; its gradient is the implicit one,
  dc/dx_i = -s'_i / sum_m s'_m (s' the sigmoid's derivative), so that the
  gradient keeps the sum at k [LML].
  """
  x_stop = jax.lax.stop_gradient(x)
  top = jax.lax.top_k(x_stop, x.shape[-1])[0]  # [..., n], decreasing.
  # The zero-temperature threshold, between the k-th and (k+1)-th largest.
  if k < x.shape[-1]:
    centre = -(top[..., k - 1] + top[..., k]) / 2
  else:
    centre = -top[..., k - 1] + 1.0
  span = top[..., 0] - top[..., -1] + 40.0  # sigmoid(+-40) is 1 or 0 in float32.
  lo, hi = centre - span, centre + span

  def body(_, bounds):
    lo, hi = bounds
    mid = (lo + hi) / 2
    above = jnp.sum(jax.nn.sigmoid(x_stop + mid[..., None]), axis=-1) > k
    return jnp.where(above, lo, mid), jnp.where(above, mid, hi)

  lo, hi = jax.lax.fori_loop(0, 60, body, (lo, hi))
  c = (lo + hi) / 2  # [...]
  s = jax.nn.sigmoid(x_stop + c[..., None])
  slope = s * (1 - s)  # [..., n]
  weight = slope / jnp.maximum(jnp.sum(slope, axis=-1, keepdims=True), jnp.finfo(x.dtype).tiny)
  # Value c, gradient -sum_i weight_i dx_i.
  c = c - jnp.sum(weight * (x - x_stop), axis=-1)
  return jax.nn.sigmoid(x + c[..., None])


def _log1m_softmax(z):
  """log(1 - softmax(z)) on the last axis, accurate also where softmax(z) -> 1.

  log1p(-a) for every entry but the largest; for the largest, a can round to
  1, so log(1 - a) = logsumexp(the others) - logsumexp(all), exactly.
  """
  lse = jax.nn.logsumexp(z, axis=-1, keepdims=True)
  is_top = jax.nn.one_hot(jnp.argmax(z, axis=-1), z.shape[-1], dtype=bool)
  rest = jax.nn.logsumexp(jnp.where(is_top, -jnp.inf, z), axis=-1, keepdims=True)
  a = jnp.exp(z - lse)
  # The inner where keeps log1p's gradient finite at the top entry.
  return jnp.where(is_top, rest - lse, jnp.log1p(-jnp.where(is_top, 0.0, a)))


def _xie_ermon_top_k(keys, tau, k):
  """Xie & Ermon's algorithm: k softmaxes, each masking the mass taken before.

  In z = alpha / tau: z_{j+1} = z_j + log(1 - a_j) / tau, a_j = softmax(z_j).
  log(1 - a_j) is computed in log space (`_log1m_softmax`); their code
  clamps 1 - a_j at a tiny epsilon, which takes a key that leads the rest
  by more than -log(epsilon) tau again (e.g. for logits of +-1e4).
  """
  z = keys / tau
  khot = jnp.zeros_like(keys)
  for j in range(k):
    if j:
      z = z + log1m / tau
    log1m = _log1m_softmax(z)
    khot = khot + jax.nn.softmax(z, axis=-1)
  return khot


def relaxed_top_k(
    key: Array,
    logits: ArrayLike,
    k: int,
    temperature: ArrayLike,
    *,
    axis: int = -1,
    hard: bool = False,
    method: str = 'threshold',
) -> Array:
  """Draws a relaxed k-hot vector: a smooth top-k of Gumbel-perturbed logits.

  With r = logits + g (g i.i.d. Gumbel, the keys of `gumbel_top_k`), both
  methods sum to k and tend to the k-hot vector of the top-k of r (an exact
  sample of a k-subset without replacement) as the temperature goes to 0.

  - `method='threshold'` (default): y_i = sigmoid(r_i / tau + c), with the
    scalar c found by bisection so that sum_i y_i = k (to float32
    rounding), and its implicit gradient dc/dr_i = -s'_i / (tau sum_m s'_m).
    Every entry lies in [0, 1]. This is the maximum-entropy point of the
    capped simplex {y in [0, 1]^n, sum y = k} for the scores r / tau: the
    LML projection [LML] of the perturbed keys.
  - `method='xie_ermon'`: the relaxed top-k of [XE] (their Algorithm and
    code): alpha_1 = r, then for j = 1..k, alpha_{j+1} = alpha_j +
    log(1 - a_j) and a_{j+1} = softmax(alpha_{j+1} / tau), and y = sum_j
    a_j (log(1 - a_j) computed in log space, where their code clamps
    1 - a_j at a tiny epsilon). It sums to k, but its entries can exceed 1:
    for n = k = 2 at tau = 1 it gives (p + 1/2, 3/2 - p) with p =
    softmax(r)_0; and as the mask log(1 - a_j) of a chosen entry is only
    about its lead over the next key divided by tau, an entry can be taken
    twice when the keys are spread far wider than that (logits
    (1e4, -1e4, 0, 1e4, -1e4) with k = 3 at tau = 0.01 give (2, 0, 0, 1, 0)
    for one key), so it tends to the top-k only once tau is small against
    the ratio of those gaps. Use it to reproduce
    [XE]; use 'threshold' when y must be a fractional k-subset.

  Args:
    key: a PRNG key.
    logits: unnormalized log-probabilities, floating, at least rank 1.
    k: the subset size, a Python int, 1 <= k <= the number of categories.
      Static under `jit`.
    temperature: tau > 0, by the temperature rule of `gumbel.distributions`
      (a scalar, batch-shaped, or logits-shaped with size 1 on `axis`).
    axis: the category axis, one int. Static under `jit`.
    hard: if True, the forward value is exactly the k-hot vector of the
      top-k of r (the set `gumbel_top_k` draws with the same key), with the
      gradient of the relaxed vector (straight-through). Static under `jit`.
    method: 'threshold' or 'xie_ermon' (above). Static under `jit`.

  Returns:
    The relaxed (or, if hard, exact) k-hot vector, of the shape of `logits`
    (or the broadcast shape when the temperature adds batch axes) and its
    dtype; entries sum to k along `axis`.

  References:
    [XE] section 3.2 and Algorithm 1 (relaxed top-k); [LML] (the projection
    onto the capped simplex, by bisection, with the implicit gradient);
    [KOOL] (the keys r).
  """
  fn = 'relaxed_top_k'
  signature = 'key, logits, k, temperature'
  _checks.check_static_bool(hard, fn, 'hard')
  if method not in _METHODS:
    raise ValueError(f'{fn}: method must be one of {_METHODS}, got {method!r}.')
  _checks.check_key(key, fn, signature)
  logits = _checks.as_logits(logits, fn, signature=signature)
  axis = _checks.check_categorical(logits, axis, fn) - logits.ndim  # Negative.
  k = _check_k(k, logits.shape[axis], axis, fn)
  dtype = logits.dtype
  compute = _checks.compute_dtype(dtype)
  tau, shape = _checks.categorical_temperature(
      temperature, logits.shape, axis, compute, fn, f'logits of shape {logits.shape}')
  g = _d.sample_gumbel(key, shape, compute)
  # Broadcast explicitly: rank promotion may be disabled.
  keys = jnp.moveaxis(jnp.broadcast_to(logits.astype(compute), shape) + g, axis, -1)
  tau = jnp.moveaxis(jnp.broadcast_to(tau, shape[:len(shape) + axis] + (1,)
                                      + shape[len(shape) + axis + 1:]), axis, -1)
  if method == 'threshold':
    y = _threshold_top_k(keys / tau, k)
  else:
    y = _xie_ermon_top_k(keys, tau, k)
  if hard:
    _, index = jax.lax.top_k(jax.lax.stop_gradient(keys), k)
    y_hard = jnp.sum(jax.nn.one_hot(index, keys.shape[-1], dtype=compute), axis=-2)
    y = _d.straight_through(y_hard, y)
  return jnp.moveaxis(y, -1, axis).astype(dtype)
