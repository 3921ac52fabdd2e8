"""Tests for gumbel/permutations.py: Sinkhorn, Gumbel-Sinkhorn, matchings."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gumbel
from gumbel import distributions

sinkhorn = jax.jit(gumbel.sinkhorn, static_argnames=('num_iters', 'tol', 'return_residual'))
gumbel_sinkhorn = jax.jit(gumbel.gumbel_sinkhorn, static_argnames=('num_iters', 'tol', 'hard'))
matching = jax.jit(gumbel.matching)


def _key(seed=0):
  return jax.random.key(seed, impl='rbg')


def _normal(seed, shape, scale=1.0):
  return (scale * np.random.default_rng(seed).normal(size=shape)).astype(np.float32)


def _assert_permutation(p):
  p = np.asarray(p, np.float32)
  assert np.all((p == 0) | (p == 1))
  np.testing.assert_array_equal(p.sum(-1), 1)
  np.testing.assert_array_equal(p.sum(-2), 1)


@pytest.mark.parametrize('scale', [0.3, 1.0, 3.0])
def test_sinkhorn_marginals_within_tol(scale):
  log_alpha = _normal(0, (8, 6, 6), scale)
  p, residual = sinkhorn(log_alpha, num_iters=500, tol=1e-5, return_residual=True)
  assert residual.shape == (8,) and np.all(residual <= 1e-5), residual
  np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
  np.testing.assert_allclose(p.sum(-2), 1.0, atol=1e-5)


def test_sinkhorn_is_the_scaling_of_exp_log_alpha():
  """The limit is diag(a) exp(X) diag(b) [Sinkhorn 1964]: the ratios
  P_ij P_kl / (P_il P_kj) of the input are kept."""
  x = _normal(1, (5, 5))
  p = np.asarray(sinkhorn(x, num_iters=200, tol=0.0), np.float64)
  cross = lambda m: np.log(m[0, 0]) + np.log(m[1, 1]) - np.log(m[0, 1]) - np.log(m[1, 0])
  np.testing.assert_allclose(cross(p), cross(np.exp(x.astype(np.float64))), atol=1e-4)


def test_unreached_tol_is_reported_not_raised():
  """At a small temperature 5 iterations do not reach tol: no error, the
  columns sum to 1, the rows within the returned residual (> tol)."""
  x = _normal(2, (3, 10, 10)) / 0.05
  p, residual = sinkhorn(x, num_iters=5, tol=1e-6, return_residual=True)
  assert np.all(residual > 1e-6)
  np.testing.assert_allclose(p.sum(-2), 1.0, atol=1e-5)
  row_error = np.abs(np.asarray(p).sum(-1) - 1).max(-1)
  np.testing.assert_allclose(row_error, residual, rtol=1e-5, atol=1e-6)


def test_converged_matrices_stop_early():
  """A matrix that meets tol is not iterated further: with tol reached after
  the first step, more iterations change nothing."""
  x = _normal(3, (4, 4), 0.01)
  once = sinkhorn(x, num_iters=1, tol=1e-3)
  many = sinkhorn(x, num_iters=50, tol=1e-3)
  np.testing.assert_array_equal(once, many)


def test_matching_against_brute_force():
  x = _normal(4, (6, 5, 5))
  perms = np.array(list(itertools.permutations(range(5))))  # [120, 5]
  p = matching(x)
  _assert_permutation(p)
  for b in range(6):
    best = perms[np.argmax(x[b][np.arange(5), perms].sum(-1))]
    np.testing.assert_array_equal(np.argmax(p[b], -1), best)


def test_sinkhorn_tends_to_the_matching():
  """Mena et al. theorem 1: Sinkhorn(X / tau) -> M(X) as tau -> 0.

  The rate is exp(-gap / tau) for the gap between the best and second-best
  matching, so X has a planted permutation and a gap of at least 1."""
  x = _normal(5, (4, 4)) + 2 * np.eye(4, dtype=np.float32)[[2, 0, 3, 1]]
  perms = np.array(list(itertools.permutations(range(4))))
  best, second = np.sort(x[np.arange(4), perms].sum(-1))[::-1][:2]
  assert best - second > 1
  hard = matching(x)
  distances = [float(np.abs(sinkhorn(x / tau, num_iters=2000, tol=1e-6) - hard).max())
               for tau in (1.0, 0.3, 0.05)]
  assert distances[0] > distances[1] > distances[2] and distances[2] < 1e-2, distances


def test_gumbel_sinkhorn_hard_is_the_matching_with_the_relaxed_gradient():
  log_alpha = _normal(6, (3, 6, 6))
  tau = 0.5
  hard = gumbel_sinkhorn(_key(7), log_alpha, tau, hard=True)
  _assert_permutation(hard)
  noise = distributions.sample_gumbel(_key(7), log_alpha.shape)
  np.testing.assert_array_equal(hard, matching((log_alpha + noise) / tau))
  w = _normal(8, (3, 6, 6))
  grads = [jax.jit(jax.grad(lambda a, h=h: jnp.sum(w * gumbel.gumbel_sinkhorn(
      _key(7), a, tau, hard=h))))(log_alpha) for h in (True, False)]
  np.testing.assert_allclose(grads[0], grads[1], rtol=1e-5, atol=1e-7)
  assert np.abs(grads[0]).max() > 1e-3


def test_gumbel_sinkhorn_soft_is_doubly_stochastic_and_vmaps():
  log_alpha = _normal(9, (5, 5))
  keys = jax.random.split(_key(10), 16)
  p = jax.jit(jax.vmap(lambda key: gumbel.gumbel_sinkhorn(key, log_alpha, 1.0)))(keys)
  assert p.shape == (16, 5, 5)
  np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-4)
  np.testing.assert_allclose(p.sum(-2), 1.0, atol=1e-4)
  hard = jax.jit(jax.vmap(lambda key: gumbel.gumbel_sinkhorn(key, log_alpha, 1.0, hard=True)))(
      keys)
  for h in hard:
    _assert_permutation(h)


def test_gumbel_sinkhorn_temperature_per_matrix():
  log_alpha = _normal(11, (5, 5))
  p = gumbel_sinkhorn(_key(12), log_alpha, jnp.array([2.0, 0.5, 0.2]))
  assert p.shape == (3, 5, 5)


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize('hard', [False, True])
def test_extreme_values_and_low_precision(dtype, hard):
  log_alpha = jnp.asarray(np.where(np.eye(5) > 0, 1e4, -1e4), dtype)
  p = gumbel_sinkhorn(_key(13), log_alpha, 0.01, hard=hard)
  assert p.dtype == dtype
  np.testing.assert_allclose(np.asarray(p, np.float32), np.eye(5), atol=1e-3)
  grad = jax.jit(jax.grad(lambda a: jnp.sum(gumbel.gumbel_sinkhorn(
      _key(13), a, 0.01, hard=hard).astype(jnp.float32) * jnp.arange(25.0).reshape(5, 5))))(
          log_alpha)
  assert np.all(np.isfinite(np.asarray(grad, np.float32)))
  q = sinkhorn(_normal(14, (6, 6)).astype(dtype))
  assert q.dtype == dtype
  np.testing.assert_allclose(np.asarray(q, np.float32).sum(-2), 1.0, atol=2e-2)


@pytest.mark.parametrize('shape', [(3, 4), (4,), (2, 0, 0)])
def test_bad_shapes(shape):
  for call in (lambda: gumbel.sinkhorn(jnp.zeros(shape)),
               lambda: gumbel.matching(jnp.zeros(shape)),
               lambda: gumbel.gumbel_sinkhorn(_key(), jnp.zeros(shape), 1.0)):
    with pytest.raises(ValueError, match=r'log_alpha must be square matrices \[\.\.\., n, n\] '
                                         rf'with n >= 1 .*got shape \({shape[0]}'):
      call()


def test_bad_arguments():
  x = jnp.zeros((3, 3))
  with pytest.raises(ValueError, match=r'sinkhorn: num_iters must be an int >= 1 .*got 0'):
    gumbel.sinkhorn(x, num_iters=0)
  with pytest.raises(ValueError, match=r'sinkhorn: tol must be a finite number >= 0 .*got -1'):
    gumbel.sinkhorn(x, tol=-1.0)
  with pytest.raises(ValueError, match=r'gumbel_sinkhorn: temperature must be > 0 and finite'):
    gumbel.gumbel_sinkhorn(_key(), x, 0.0)
  with pytest.raises(ValueError, match=r'gumbel_sinkhorn: temperature of shape \(2,\) does not '
                                       r'broadcast against the batch shape \(3,\)'):
    gumbel.gumbel_sinkhorn(_key(), jnp.zeros((3, 4, 4)), jnp.ones(2))
  with pytest.raises(ValueError, match=r'gumbel_sinkhorn: key must be a PRNG key'):
    gumbel.gumbel_sinkhorn(x, 1.0, 1.0)
  with pytest.raises(ValueError, match=r'log_alpha must be a floating-point array'):
    gumbel.sinkhorn(jnp.zeros((3, 3), jnp.int32))
