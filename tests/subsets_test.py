"""Tests for gumbel/subsets.py: Gumbel-top-k, Plackett-Luce, relaxed top-k.

Statistical tests use fixed keys (so they are deterministic); each states its
test and the false-failure probability it would have for a fresh key.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import gumbel
from gumbel import distributions

gumbel_top_k = jax.jit(gumbel.gumbel_top_k, static_argnames=('k', 'axis'))
plackett_luce_log_prob = jax.jit(gumbel.plackett_luce_log_prob, static_argnames=('axis',))
relaxed_top_k = jax.jit(gumbel.relaxed_top_k, static_argnames=('k', 'axis', 'hard', 'method'))
METHODS = ['threshold', 'xie_ermon']


def _key(seed=0):
  return jax.random.key(seed, impl='rbg')


def _logits(seed, shape):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _plackett_luce(p, order):
  """prod_j p_{i_j} / (1 - sum_{m < j} p_{i_m}), in float64."""
  prob, taken = 1.0, 0.0
  for i in order:
    prob *= p[i] / (1.0 - taken)
    taken += p[i]
  return prob


# ----------------------------------------------------------------------------
# plackett_luce_log_prob and gumbel_top_k against exact enumeration.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize('k', [1, 2, 3, 4])
def test_plackett_luce_enumeration(k):
  """Every ordered k-subset of 4 categories: the probabilities match the
  product formula and sum to 1."""
  logits = np.array([1.5, -0.3, 0.2, -2.0], np.float32)
  p = np.exp(logits.astype(np.float64))
  p /= p.sum()
  orders = np.array(list(itertools.permutations(range(4), k)), np.int32)  # [M, k]
  log_prob = np.asarray(plackett_luce_log_prob(logits, orders), np.float64)  # [M]
  expected = np.array([_plackett_luce(p, order) for order in orders])
  np.testing.assert_allclose(np.exp(log_prob), expected, rtol=2e-6)
  assert abs(np.exp(log_prob).sum() - 1.0) < 1e-5


def test_gumbel_top_k_frequencies_match_plackett_luce():
  """Statistical test: the 12 ordered 2-subsets of 4 categories, 200,000 draws.

  Pearson's chi-square statistic of the counts against the Plackett-Luce
  probabilities (11 degrees of freedom) must be below its 1 - 1e-5 quantile
  (42.6): a correct sampler fails with probability 1e-5 for a fresh key.
  A wrong order (e.g. indices sorted) or drawing with replacement gives a
  statistic in the thousands.
  """
  n_draws, k = 200_000, 2
  logits = np.array([1.0, 0.0, -0.5, 0.7], np.float32)
  draws = np.asarray(gumbel_top_k(_key(3), np.broadcast_to(logits, (n_draws, 4)), k))
  assert draws.shape == (n_draws, k) and draws.dtype == np.int32
  assert np.all(draws[:, 0] != draws[:, 1])
  orders = list(itertools.permutations(range(4), k))
  counts = np.array([np.sum((draws[:, 0] == a) & (draws[:, 1] == b)) for a, b in orders])
  expected = n_draws * np.exp(np.asarray(
      plackett_luce_log_prob(logits, np.array(orders, np.int32)), np.float64))
  statistic = np.sum((counts - expected) ** 2 / expected)
  assert statistic < stats.chi2.ppf(1 - 1e-5, len(orders) - 1), (statistic, counts, expected)


def test_gumbel_top_k_axis_and_batch():
  logits = _logits(0, (3, 6, 2))
  draws = gumbel_top_k(_key(1), logits, 4, axis=1)
  assert draws.shape == (3, 4, 2)
  # The same draw as on the last axis, with the same noise moved along.
  noise = distributions.sample_gumbel(_key(1), logits.shape)
  expected = np.argsort(-(logits + np.asarray(noise)), axis=1)[:, :4]
  np.testing.assert_array_equal(draws, expected)
  log_prob = plackett_luce_log_prob(logits, draws, axis=1)
  assert log_prob.shape == (3, 2) and np.all(np.isfinite(log_prob))


def test_gumbel_top_k_vmap_over_keys_and_never_draws_minus_inf():
  logits = jnp.array([0.0, -jnp.inf, 1.0, -jnp.inf, -1.0])
  draws = jax.vmap(lambda key: gumbel.gumbel_top_k(key, logits, 3))(
      jax.random.split(_key(2), 500))
  assert set(np.unique(draws)) == {0, 2, 4}


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16, jnp.float16])
def test_extreme_logits_are_finite(dtype):
  logits = jnp.array([1e4, -1e4, 0.0, 1e4, -1e4], dtype)
  draws = gumbel_top_k(_key(4), logits, 3)
  assert set(np.asarray(draws[:2])) == {0, 3}
  log_prob = plackett_luce_log_prob(logits, draws)
  assert log_prob.dtype == dtype and np.isfinite(float(log_prob))
  grad = jax.grad(lambda l: plackett_luce_log_prob(l, draws).astype(jnp.float32))(logits)
  assert np.all(np.isfinite(np.asarray(grad, np.float32)))
  for method in METHODS:
    y = relaxed_top_k(_key(5), logits, 3, 0.01, method=method)
    assert y.dtype == dtype and np.all(np.isfinite(np.asarray(y, np.float32)))
    grad = jax.grad(lambda l: jnp.sum(
        jnp.arange(5.0) * relaxed_top_k(_key(5), l, 3, 0.01, method=method)))(logits)
    assert np.all(np.isfinite(np.asarray(grad, np.float32))), method
    np.testing.assert_allclose(np.asarray(y, np.float32).sum(), 3.0, rtol=1e-2)
  # The threshold relaxation is exactly the top-3, each entry once (Xie &
  # Ermon's can take an entry twice here: see its docstring).
  y = relaxed_top_k(_key(5), logits, 3, 0.01)
  np.testing.assert_allclose(np.asarray(y, np.float32)[[0, 1, 3, 4]], [1, 0, 1, 0], atol=1e-3)


def test_plackett_luce_gradient_is_the_score():
  """d/dlogits of log p(i_1) for k = 1 is onehot(i_1) - softmax(logits)."""
  logits = _logits(6, (5,))
  grad = jax.jit(jax.grad(gumbel.plackett_luce_log_prob))(logits, jnp.array([3]))
  np.testing.assert_allclose(grad, np.eye(5)[3] - jax.nn.softmax(logits), atol=1e-6)


# ----------------------------------------------------------------------------
# relaxed_top_k.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('tau', [3.0, 1.0, 0.1])
def test_relaxed_top_k_sums_to_k(method, tau):
  logits = _logits(7, (64, 8))
  y = np.asarray(relaxed_top_k(_key(8), logits, 3, tau, method=method))
  np.testing.assert_allclose(y.sum(-1), 3.0, atol=1e-4)
  assert np.all(y >= 0)


@pytest.mark.parametrize('tau', [10.0, 1.0, 0.3, 0.1, 0.01])
@pytest.mark.parametrize('k', [1, 3, 7, 8])
def test_threshold_entries_in_unit_interval(tau, k):
  logits = 3 * _logits(9, (256, 8))
  y = np.asarray(relaxed_top_k(_key(10), logits, k, tau))
  assert np.all((y >= 0) & (y <= 1)), (y.min(), y.max())
  np.testing.assert_allclose(y.sum(-1), k, atol=1e-4 * k)


def test_xie_ermon_exceeds_one_as_documented():
  """n = k = 2 at tau = 1: Xie & Ermon's k-hot is (p + 1/2, 3/2 - p), p =
  softmax(logits + g)_0 with the same noise."""
  logits = np.array([1.0, -0.5], np.float32)
  y = relaxed_top_k(_key(11), logits, 2, 1.0, method='xie_ermon')
  p = jax.nn.softmax(logits + distributions.sample_gumbel(_key(11), (2,)))[0]
  np.testing.assert_allclose(y, [p + 0.5, 1.5 - p], atol=1e-6)


@pytest.mark.parametrize('method', METHODS)
def test_relaxed_top_k_tends_to_the_top_k(method):
  """The mean L1 distance to the k-hot of the top-k of the same keys falls
  with the temperature and is below 1e-3 per row at tau = 1e-4."""
  logits = _logits(12, (512, 6))
  hard = np.asarray(relaxed_top_k(_key(13), logits, 2, 1.0, hard=True, method=method))
  distances = [np.abs(np.asarray(relaxed_top_k(_key(13), logits, 2, tau, method=method))
                      - hard).sum(-1).mean() for tau in [1.0, 0.1, 0.01, 1e-4]]
  assert all(a > b for a, b in zip(distances, distances[1:])), distances
  assert distances[-1] < 1e-3, distances


def test_hard_is_the_gumbel_top_k_set_with_the_relaxed_gradient():
  logits = _logits(14, (32, 7))
  hard = relaxed_top_k(_key(15), logits, 3, 0.5, hard=True)
  draws = gumbel_top_k(_key(15), logits, 3)
  np.testing.assert_array_equal(hard, jnp.sum(jax.nn.one_hot(draws, 7), axis=-2))
  w = _logits(16, (32, 7))
  grads = [jax.jit(jax.grad(lambda l, hard=h: jnp.sum(w * gumbel.relaxed_top_k(
      _key(15), l, 3, 0.5, hard=hard))))(logits) for h in (True, False)]
  np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6)


@pytest.mark.parametrize('tau', [2.0, 0.5])
def test_threshold_gradient_matches_finite_differences(tau):
  """The implicit gradient of the threshold against central differences of
  the noise-fixed map (step 1e-2, float32)."""
  logits = _logits(17, (6,))
  w = _logits(18, (6,))
  f = jax.jit(lambda l: jnp.sum(w * gumbel.relaxed_top_k(_key(19), l, 2, tau)))
  grad = np.asarray(jax.grad(f)(logits))
  eps = 1e-2
  numeric = np.array([(f(logits + eps * e) - f(logits - eps * e)) / (2 * eps)
                      for e in np.eye(6, dtype=np.float32)])
  np.testing.assert_allclose(grad, numeric, atol=2e-3)
  # The sum stays k: its gradient is 0.
  total = jax.grad(lambda l: jnp.sum(gumbel.relaxed_top_k(_key(19), l, 2, tau)))(logits)
  np.testing.assert_allclose(total, 0.0, atol=1e-5)


def test_relaxed_top_k_axis_temperature_and_vmap():
  logits = _logits(20, (4, 5, 3))
  tau = jnp.array([0.5, 1.0, 2.0])  # One per column (batch shape [4, 3] read as (b)).
  y = relaxed_top_k(_key(21), logits, 2, tau[None, :], axis=1)
  assert y.shape == (4, 5, 3)
  np.testing.assert_allclose(y.sum(1), 2.0, atol=1e-4)
  ys = jax.jit(jax.vmap(lambda key: gumbel.relaxed_top_k(key, logits[0, :, 0], 2, 0.5)))(
      jax.random.split(_key(22), 8))
  assert ys.shape == (8, 5) and len({tuple(np.round(row, 5)) for row in np.asarray(ys)}) == 8


@pytest.mark.parametrize('dtype', [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize('method', METHODS)
def test_low_precision(dtype, method):
  logits = _logits(23, (16, 6)).astype(dtype)
  y = relaxed_top_k(_key(24), logits, 2, 0.1, method=method)
  assert y.dtype == dtype
  y = np.asarray(y, np.float32)
  assert np.all(np.isfinite(y))
  np.testing.assert_allclose(y.sum(-1), 2.0, atol=0.03)


# ----------------------------------------------------------------------------
# Bad arguments.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize('k, match', [
    (5, r'k=5 is not allowed for 4 categories .*1 <= k <= 4'),
    (0, r'k=0 is not allowed .*1 <= k <= 4'),
    (-1, r'k=-1 is not allowed'),
    (2.0, r'k must be an int .*got 2\.0'),
    (True, r'k must be an int'),
])
def test_bad_k(k, match):
  logits = jnp.zeros(4)
  with pytest.raises(ValueError, match=f'gumbel_top_k: {match}'):
    gumbel.gumbel_top_k(_key(), logits, k)
  with pytest.raises(ValueError, match=f'relaxed_top_k: {match}'):
    gumbel.relaxed_top_k(_key(), logits, k, 0.5)


@pytest.mark.parametrize('tau', [0.0, -1.0, float('nan')])
def test_bad_temperature(tau):
  with pytest.raises(ValueError, match=r'relaxed_top_k: temperature must be > 0 and finite'):
    gumbel.relaxed_top_k(_key(), jnp.zeros(4), 2, tau)


def test_bad_method_key_and_indices():
  with pytest.raises(ValueError, match=r"method must be one of \('threshold', 'xie_ermon'\), "
                                       r"got 'sort'"):
    gumbel.relaxed_top_k(_key(), jnp.zeros(4), 2, 0.5, method='sort')
  with pytest.raises(ValueError, match=r'gumbel_top_k: key must be a PRNG key'):
    gumbel.gumbel_top_k(jnp.zeros(4), 2, 1)
  with pytest.raises(ValueError, match=r'indices must be distinct'):
    gumbel.plackett_luce_log_prob(jnp.zeros(4), jnp.array([1, 1]))
  with pytest.raises(ValueError, match=r'indices must lie in \[0, 4\) .*from 0 to 4'):
    gumbel.plackett_luce_log_prob(jnp.zeros(4), jnp.array([0, 4]))
  with pytest.raises(ValueError, match=r'indices must be an integer array'):
    gumbel.plackett_luce_log_prob(jnp.zeros(4), jnp.array([0.0, 1.0]))
  with pytest.raises(ValueError, match=r'k=5 draws on axis -1; allowed are 1 <= k <= 4'):
    gumbel.plackett_luce_log_prob(jnp.zeros(4), jnp.arange(5))
