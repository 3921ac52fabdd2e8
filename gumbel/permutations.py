"""Permutations: Sinkhorn normalization, Gumbel-Sinkhorn and exact matchings.

The Sinkhorn operator alternately normalizes the rows and the columns of
exp(log_alpha); its limit is a doubly stochastic matrix, and as the
temperature goes to 0, Sinkhorn(X / tau) tends to the permutation matrix of
the matching M(X) = argmax_P <P, X> (Mena et al. 2018, theorem 1). Adding
Gumbel noise to X gives the Gumbel-Sinkhorn distribution, a relaxation of
the Gumbel-Matching distribution over permutations.

Everything is computed in log space in float32 (float64 for float64 inputs)
and cast to the input's dtype, so that small temperatures and logits of
+-1e4 give no NaN or inf; float16 and bfloat16 inputs are accepted.

References:
  [MENA] Mena, Belanger, Linderman, Snoek. Learning Latent Permutations with
    Gumbel-Sinkhorn Networks. ICLR 2018, arXiv:1802.08665.
  [SINK] Sinkhorn. A relationship between arbitrary positive matrices and
    doubly stochastic matrices. Ann. Math. Statist. 35(2), 1964.
  [KUHN] Kuhn. The Hungarian method for the assignment problem. Naval
    Research Logistics Quarterly 2, 1955 (scipy's linear_sum_assignment
    implements a shortest augmenting path variant: Crouse, IEEE TAES 2016).
"""

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gumbel import _checks
from gumbel import distributions as _d

Array = jax.Array
ArrayLike = Any


def _as_square(log_alpha, fn) -> Array:
  """`log_alpha` as a floating array [..., n, n], after the checks."""
  log_alpha = _checks.as_logits(log_alpha, fn, 'log_alpha')
  shape = log_alpha.shape
  if log_alpha.ndim < 2 or shape[-1] != shape[-2] or shape[-1] == 0:
    raise ValueError(
        f'{fn}: log_alpha must be square matrices [..., n, n] with n >= 1 (rows '
        f'are the items, columns the positions), got shape {shape}.')
  return log_alpha


def _check_iterations(num_iters, tol, fn):
  if isinstance(num_iters, (bool, np.bool_)) or not isinstance(num_iters, (int, np.integer)) \
      or num_iters < 1:
    raise ValueError(f'{fn}: num_iters must be an int >= 1 (static under jit), got '
                     f'{num_iters!r}.')
  if isinstance(tol, (bool, np.bool_)) or not isinstance(tol, (int, float, np.floating)) \
      or not (math.isfinite(tol) and tol >= 0):
    raise ValueError(f'{fn}: tol must be a finite number >= 0 (the largest row-sum error '
                     f'at which the iterations stop; 0 runs all num_iters), got {tol!r}.')


def _row_residual(log_p):
  """max_i |sum_j P_ij - 1| per matrix; columns are exact after a column step."""
  return jnp.max(jnp.abs(jnp.sum(jnp.exp(log_p), axis=-1) - 1.0), axis=-1)


def _log_sinkhorn(x, num_iters, tol):
  """Log-space Sinkhorn on x [..., n, n] (compute dtype); returns (log P, residual)."""

  def normalize(x):
    x = x - jax.nn.logsumexp(x, axis=-1, keepdims=True)  # Rows.
    return x - jax.nn.logsumexp(x, axis=-2, keepdims=True)  # Columns.

  def step(carry, _):
    x, residual = carry
    # A converged matrix is left as it is (and so is its gradient path).
    done = residual <= tol  # [...]
    new = normalize(x)
    x = jnp.where(done[..., None, None], x, new)
    return (x, jnp.where(done, residual, _row_residual(x))), None

  x = normalize(x)
  (x, residual), _ = jax.lax.scan(step, (x, _row_residual(x)), None, length=num_iters - 1)
  return x, residual


def sinkhorn(
    log_alpha: ArrayLike,
    *,
    num_iters: int = 100,
    tol: float = 1e-4,
    return_residual: bool = False,
):
  """Normalizes exp(log_alpha) to a doubly stochastic matrix (Sinkhorn).

  Each iteration normalizes the rows, then the columns, in log space
  (logsumexp), as [MENA] eq. 1 defines S(X). The iterations of a matrix stop
  as soon as its row-sum error max_i |sum_j P_ij - 1| is <= `tol` (its
  column sums are then 1 to float rounding, since a column step comes last);
  further iterations leave it, and its gradient, unchanged. Under `jit` all
  `num_iters` steps are traced (a `scan`), so it is reverse-differentiable;
  a batch costs `num_iters` steps whatever converges first.

  If `tol` is not reached within `num_iters` (small temperatures converge
  slowly), no error is raised: the result is the matrix after `num_iters`
  iterations, whose columns sum to 1 and whose rows sum to 1 within the
  residual, which `return_residual=True` returns beside it so a caller can
  check it, e.g. `assert residual.max() <= tol`.

  Args:
    log_alpha: [..., n, n] floating: log of a positive matrix (items x
      positions), e.g. scores of a network divided by a temperature.
    num_iters: the most iterations, an int >= 1. Static under `jit`.
    tol: the row-sum error at which a matrix stops, >= 0 (0: always
      `num_iters` iterations). Static under `jit`.
    return_residual: if True, also return the row-sum error. Static.

  Returns:
    The doubly stochastic matrix P [..., n, n] in the dtype of `log_alpha`;
    with `return_residual=True`, `(P, residual)` where residual [...] is
    max_i |sum_j P_ij - 1| in float32, per matrix.

  References:
    [MENA] section 2 and eq. 1; [SINK].
  """
  fn = 'sinkhorn'
  log_alpha = _as_square(log_alpha, fn)
  _check_iterations(num_iters, tol, fn)
  _checks.check_static_bool(return_residual, fn, 'return_residual')
  dtype = log_alpha.dtype
  log_p, residual = _log_sinkhorn(
      log_alpha.astype(_checks.compute_dtype(dtype)), num_iters, tol)
  p = jnp.exp(log_p).astype(dtype)
  return (p, residual) if return_residual else p


def _assignment(x: np.ndarray) -> np.ndarray:
  """Host callback: the column of each row in argmax_P <P, x>, per matrix."""
  try:
    from scipy.optimize import linear_sum_assignment  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError('gumbel.matching and gumbel_sinkhorn(hard=True) need scipy '
                      '(pip install scipy).') from e
  x = np.asarray(x, np.float64)
  flat = x.reshape((-1,) + x.shape[-2:])
  columns = np.empty(flat.shape[:-1], np.int32)
  for b, matrix in enumerate(flat):
    _, columns[b] = linear_sum_assignment(matrix, maximize=True)
  return columns.reshape(x.shape[:-1])


def matching(log_alpha: ArrayLike) -> Array:
  """The permutation matrix of the maximum-weight matching of `log_alpha`.

  M(X) = argmax_P sum_ij P_ij X_ij over permutation matrices: the limit of
  Sinkhorn(X / tau) as tau -> 0, and the hard forward value of
  `gumbel_sinkhorn(..., hard=True)`. Solved exactly on the host by
  `scipy.optimize.linear_sum_assignment` through `jax.pure_callback`, so it
  works under `jit` and `vmap` (a batch is solved matrix by matrix, O(n^3)
  each); it has no gradient (it is piecewise constant). Needs scipy.

  Args:
    log_alpha: [..., n, n] floating, finite.

  Returns:
    A permutation matrix [..., n, n] (exactly one 1 per row and column) in
    the dtype of `log_alpha`.

  References:
    [MENA] section 2 (the matching operator M); [KUHN].
  """
  log_alpha = _as_square(log_alpha, 'matching')
  x = jax.lax.stop_gradient(log_alpha.astype(_checks.compute_dtype(log_alpha.dtype)))
  columns = jax.pure_callback(
      _assignment, jax.ShapeDtypeStruct(x.shape[:-1], jnp.int32), x,
      vmap_method='broadcast_all')
  return jax.nn.one_hot(columns, x.shape[-1], dtype=log_alpha.dtype)


def gumbel_sinkhorn(
    key: Array,
    log_alpha: ArrayLike,
    temperature: ArrayLike,
    *,
    num_iters: int = 100,
    tol: float = 1e-4,
    hard: bool = False,
) -> Array:
  """Draws a Gumbel-Sinkhorn sample: Sinkhorn((log_alpha + g) / tau).

  g is i.i.d. Gumbel(0, 1) noise of the shape of `log_alpha`. As tau -> 0
  the sample tends to the permutation matrix M(log_alpha + g), a draw from
  the Gumbel-Matching distribution [MENA]. The Sinkhorn iterations stop at
  `tol` or after `num_iters`, as in `sinkhorn` (whose docstring says what
  is returned when `tol` is not reached; call `sinkhorn` on
  `(log_alpha + g) / tau` with `return_residual=True` to see the error).
  Small temperatures converge slowly: for one draw with n = 10 and
  standard normal log_alpha, the row-sum error after 20 / 100 / 300
  iterations was 4e-7 / 1e-7 / 1e-7 at tau = 1, 0.08 / 5e-7 / 2e-7 at
  tau = 0.3, and 0.23 / 0.035 / 0.004 at tau = 0.1.

  Args:
    key: a PRNG key.
    log_alpha: [..., n, n] floating: the items x positions scores.
    temperature: tau > 0: a scalar or an array that broadcasts against the
      batch shape `log_alpha.shape[:-2]` (one temperature per matrix).
    num_iters: the most Sinkhorn iterations, an int >= 1. Static.
    tol: the row-sum error at which the iterations stop, >= 0. Static.
    hard: if True, the forward value is the permutation matrix
      M((log_alpha + g) / tau) (an exact Gumbel-Matching sample, computed by
      `matching`, needs scipy), with the gradient of the relaxed sample
      (straight-through). Static under `jit`.

  Returns:
    A doubly stochastic matrix (a permutation matrix if hard) of shape
    [..., n, n] (the batch broadcast with the temperature's) in the dtype of
    `log_alpha`.

  References:
    [MENA] section 3 (eq. 3 and the Gumbel-Sinkhorn distribution) and
    theorem 1; [KUHN].
  """
  fn = 'gumbel_sinkhorn'
  signature = 'key, log_alpha, temperature'
  _checks.check_static_bool(hard, fn, 'hard')
  _checks.check_key(key, fn, signature)
  log_alpha = _as_square(log_alpha, fn)
  _check_iterations(num_iters, tol, fn)
  dtype = log_alpha.dtype
  compute = _checks.compute_dtype(dtype)
  n = log_alpha.shape[-1]
  tau, batch = _checks.bernoulli_temperature(
      temperature, log_alpha.shape[:-2], compute, fn,
      f'the batch shape {log_alpha.shape[:-2]} of log_alpha of shape {log_alpha.shape}')
  shape = tuple(batch) + (n, n)
  g = _d.sample_gumbel(key, shape, compute)
  # Broadcast explicitly: rank promotion may be disabled.
  x = (jnp.broadcast_to(log_alpha.astype(compute), shape) + g) / tau[..., None, None]
  log_p, _ = _log_sinkhorn(x, num_iters, tol)
  p = jnp.exp(log_p)
  if hard:
    p = _d.straight_through(matching(x), p)
  return p.astype(dtype)
