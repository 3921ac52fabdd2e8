"""Tests for gumbel/gates.py: hard concrete gates and their expected L0 norm.

Statistical tests use a fixed key and 400,000 draws per gate; tolerances are
5 standard errors of the Monte Carlo proportion, so a correct sampler fails
with probability below 1e-5 per check for a fresh key.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gumbel

hard_concrete = jax.jit(gumbel.hard_concrete, static_argnames=('limits',))
hard_concrete_l0 = jax.jit(gumbel.hard_concrete_l0, static_argnames=('limits',))
LOG_ALPHA = np.array([-3.0, -0.5, 0.0, 0.8, 2.5], np.float32)


def _key(seed=0):
  return jax.random.key(seed, impl='rbg')


def _sigmoid(x):
  return 1 / (1 + math.exp(-x))


@pytest.mark.parametrize('tau, limits', [(2 / 3, (-0.1, 1.1)), (0.3, (-0.5, 1.2)),
                                         (1.5, (-0.05, 1.5))])
def test_exact_zero_and_one_probabilities(tau, limits):
  """Statistical test: P(z = 0) and P(z = 1) by Monte Carlo against
  sigmoid(tau log(-l/r) - log_alpha) and sigmoid(log_alpha - tau log((1-l)/(r-1)))."""
  n = 400_000
  z = np.asarray(hard_concrete(_key(1), np.broadcast_to(LOG_ALPHA, (n, 5)), tau, limits=limits))
  assert z.min() == 0.0 and z.max() == 1.0
  low, high = limits
  for j, a in enumerate(LOG_ALPHA):
    p0 = _sigmoid(tau * math.log(-low / high) - a)
    p1 = _sigmoid(a - tau * math.log((1 - low) / (high - 1)))
    for observed, p in [((z[:, j] == 0).mean(), p0), ((z[:, j] == 1).mean(), p1)]:
      assert abs(observed - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-6, (a, observed, p)


@pytest.mark.parametrize('tau', [2 / 3, 0.2])
def test_expected_l0_against_monte_carlo(tau):
  """Statistical test: hard_concrete_l0 against the frequency of z != 0,
  per gate, and the sum (the expected number of open gates)."""
  n = 400_000
  z = np.asarray(hard_concrete(_key(2), np.broadcast_to(LOG_ALPHA, (n, 5)), tau))
  l0 = np.asarray(hard_concrete_l0(LOG_ALPHA, tau), np.float64)
  observed = (z != 0).mean(0)
  np.testing.assert_array_less(np.abs(observed - l0), 5 * np.sqrt(l0 * (1 - l0) / n) + 1e-6)
  total_se = np.sqrt(np.var((z != 0).sum(1)) / n)
  assert abs((z != 0).sum(1).mean() - l0.sum()) < 5 * total_se


def test_inner_values_are_the_stretched_binary_concrete():
  """Where 0 < z < 1, z = l + (r - l) s with s the Binary Concrete sample of
  the same key: the CDF of (z - l) / (r - l) matches P(s <= t) =
  sigmoid(logit(t) tau - log_alpha), here at t = 1/2 (the median of s is
  sigmoid(log_alpha / ...) = 1/2 at log_alpha = 0)."""
  n = 400_000
  z = np.asarray(hard_concrete(_key(3), jnp.full((n,), 0.7), 0.5))
  s = (z + 0.1) / 1.2  # z clipped: s <= 1/12 where z = 0, s >= 11/12 where z = 1.
  p = _sigmoid(-0.7)  # P(s <= 1/2) = sigmoid(0 * tau - 0.7).
  assert abs((s <= 0.5).mean() - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_gradients():
  """Zero where clipped, the stretched sigmoid's derivative inside."""
  log_alpha = jnp.array([-1e4, 0.3, 1e4])
  z, vjp = jax.vjp(lambda a: gumbel.hard_concrete(_key(4), a, 2 / 3), log_alpha)
  (grad,) = vjp(jnp.ones(3))
  assert z[0] == 0.0 and z[2] == 1.0 and grad[0] == 0.0 and grad[2] == 0.0
  s = (z[1] + 0.1) / 1.2
  np.testing.assert_allclose(grad[1], 1.2 * s * (1 - s) / (2 / 3), rtol=1e-5)
  l0_grad = jax.grad(lambda a: gumbel.hard_concrete_l0(a, 2 / 3).sum())(log_alpha)
  assert np.all(np.isfinite(l0_grad)) and l0_grad[1] > 0


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16, jnp.float16])
def test_extreme_logits_and_dtypes(dtype):
  log_alpha = jnp.array([-1e4, -3.0, 0.0, 3.0, 1e4], dtype)
  z = hard_concrete(_key(5), log_alpha, 0.01)
  assert z.dtype == dtype
  z = np.asarray(z, np.float32)
  assert np.all((z >= 0) & (z <= 1)) and z[0] == 0 and z[-1] == 1
  l0 = hard_concrete_l0(log_alpha, 0.01)
  assert l0.dtype == dtype
  np.testing.assert_allclose(np.asarray(l0, np.float32)[[0, -1]], [0.0, 1.0])


def test_jit_vmap_and_temperature_broadcast():
  keys = jax.random.split(_key(6), 4)
  z = jax.jit(jax.vmap(lambda key: gumbel.hard_concrete(key, LOG_ALPHA, 2 / 3)))(keys)
  assert z.shape == (4, 5) and len({tuple(row) for row in np.asarray(z)}) == 4
  z = hard_concrete(_key(7), LOG_ALPHA, jnp.array([[0.5], [1.0]]))
  assert z.shape == (2, 5)
  assert hard_concrete_l0(LOG_ALPHA, jnp.array([[0.5], [1.0]])).shape == (2, 5)


@pytest.mark.parametrize('limits', [(0.0, 1.1), (-0.1, 1.0), (0.2, 0.8), (-0.1,),
                                    ('a', 'b'), (float('nan'), 1.1), (-0.1, float('inf'))])
def test_bad_limits(limits):
  for call in (lambda: gumbel.hard_concrete(_key(), LOG_ALPHA, 0.5, limits=limits),
               lambda: gumbel.hard_concrete_l0(LOG_ALPHA, 0.5, limits=limits)):
    with pytest.raises(ValueError, match=r'limits.*allowed are two finite numbers \(l, r\) '
                                         r'with l < 0 and r > 1'):
      call()


@pytest.mark.parametrize('tau', [0.0, -0.5, float('inf')])
def test_bad_temperature(tau):
  with pytest.raises(ValueError, match=r'hard_concrete: temperature must be > 0 and finite'):
    gumbel.hard_concrete(_key(), LOG_ALPHA, tau)
  with pytest.raises(ValueError, match=r'hard_concrete_l0: temperature must be > 0 and finite'):
    gumbel.hard_concrete_l0(LOG_ALPHA, tau)


def test_bad_key_and_log_alpha():
  with pytest.raises(ValueError, match=r'hard_concrete: key must be a PRNG key'):
    gumbel.hard_concrete(LOG_ALPHA, 0.5, 0.5)
  with pytest.raises(ValueError, match=r'hard_concrete_l0: log_alpha must be a floating-point'):
    gumbel.hard_concrete_l0(jnp.arange(3), 0.5)
