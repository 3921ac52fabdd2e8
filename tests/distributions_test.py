"""Tests for gumbel/distributions.py.

Statistical tests use fixed keys (so they are deterministic) and tolerances of
5 standard errors of the Monte Carlo estimate unless stated otherwise; the
false-failure probability of a fresh key would be below 1e-5 per check.
"""

import functools
import math
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_probability.substrates.jax as tfp

import gumbel
from gumbel import diagnostics

tfd = tfp.distributions
# tfp promotes ranks internally (e.g. a scalar temperature to shape [1]).
allow_rank_promotion = functools.partial(jax.numpy_rank_promotion, 'allow')

EULER_GAMMA = 0.5772156649015329
LOW_PRECISION = [jnp.float32, jnp.bfloat16, jnp.float16]
DTYPE_IDS = ['float32', 'bfloat16', 'float16']


# Jitted entry points: one compilation per shape rather than one per primitive
# keeps the suite fast, and tests the library through jax.jit. Validation
# tests call the eager `gumbel.*` functions (jit does not check traced values).
gumbel_softmax = jax.jit(gumbel.gumbel_softmax, static_argnames=('hard', 'axis'))
gumbel_max = jax.jit(gumbel.gumbel_max, static_argnames=('axis',))
relaxed_bernoulli = jax.jit(gumbel.relaxed_bernoulli, static_argnames=('hard',))
concrete_log_prob = jax.jit(gumbel.concrete_log_prob, static_argnames=('axis',))
exp_concrete_log_prob = jax.jit(gumbel.exp_concrete_log_prob, static_argnames=('axis',))
binary_concrete_log_prob = jax.jit(gumbel.binary_concrete_log_prob)
categorical_kl = jax.jit(gumbel.categorical_kl, static_argnames=('axis',))
bernoulli_kl = jax.jit(gumbel.bernoulli_kl)


def _key(seed=0, impl='rbg'):
  """A fixed key. 'rbg' keys compile about 4x faster than the default
  threefry on CPU, which dominates the suite's runtime; the library is
  agnostic to the implementation, and the noise-moment tests also run on
  threefry."""
  return jax.random.key(seed, impl=impl)


def _logits(seed, shape):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _grad_of_weighted_sum(sampler, w):
  """Returns logits -> d/dlogits sum(w * sampler(logits)) (in float32)."""
  return jax.jit(jax.grad(lambda logits: jnp.sum(w * sampler(logits).astype(jnp.float32))))


# ----------------------------------------------------------------------------
# Noise.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize('impl', ['threefry2x32', 'rbg'], ids=['threefry', 'rbg'])
@pytest.mark.parametrize('dtype', LOW_PRECISION, ids=DTYPE_IDS)
def test_sample_gumbel_moments(dtype, impl):
  """Statistical test: mean = Euler-Mascheroni, variance = pi^2/6, P(g<=0) = 1/e.

  1e6 samples. Standard errors: mean sqrt(pi^2/6/n) = 1.3e-3, variance
  sqrt(4.4 / n) * pi^2/6 = 3.5e-3 (excess kurtosis 12/5), CDF 4.8e-4; the
  tolerance is 5 of them plus the rounding of the low-precision dtype
  (relative 2^-8 of E|g| ~ 1 for bfloat16).
  """
  n = 1_000_000
  g = jax.jit(gumbel.sample_gumbel, static_argnums=(1, 2))(_key(1, impl), (n,), dtype)
  g = np.asarray(g.astype(jnp.float32), np.float64)
  rounding = 2.0 ** -(jnp.finfo(dtype).nmant)
  assert abs(g.mean() - EULER_GAMMA) < 5 * 1.3e-3 + rounding
  assert abs(g.var() - math.pi ** 2 / 6) < 5 * 3.5e-3 + 4 * rounding
  assert abs(np.mean(g <= 0) - math.exp(-1)) < 5 * 4.8e-4 + rounding


@pytest.mark.parametrize('impl', ['threefry2x32', 'rbg'], ids=['threefry', 'rbg'])
@pytest.mark.parametrize('dtype', LOW_PRECISION, ids=DTYPE_IDS)
def test_sample_logistic_moments(dtype, impl):
  """Statistical test: mean 0, variance pi^2/3, P(L<=1) = sigmoid(1); 1e6 samples.

  Standard errors: mean 1.8e-3, variance sqrt(3.2 / n) pi^2/3 = 5.9e-3
  (excess kurtosis 6/5), CDF 4.3e-4; tolerance 5 of them plus rounding.
  """
  n = 1_000_000
  x = jax.jit(gumbel.sample_logistic, static_argnums=(1, 2))(_key(2, impl), (n,), dtype)
  x = np.asarray(x.astype(jnp.float32), np.float64)
  rounding = 2.0 ** -(jnp.finfo(dtype).nmant)
  assert abs(x.mean()) < 5 * 1.8e-3 + rounding
  assert abs(x.var() - math.pi ** 2 / 3) < 5 * 5.9e-3 + 4 * rounding
  assert abs(np.mean(x <= 1) - 1 / (1 + math.exp(-1))) < 5 * 4.3e-4 + rounding


@pytest.mark.parametrize('sampler', [gumbel.sample_gumbel, gumbel.sample_logistic],
                         ids=['gumbel', 'logistic'])
@pytest.mark.parametrize('dtype', LOW_PRECISION, ids=DTYPE_IDS)
def test_noise_shape_dtype_finite(sampler, dtype):
  noise = sampler(_key(3), (1000, 7), dtype)
  chex.assert_shape(noise, (1000, 7))
  assert noise.dtype == dtype
  assert np.all(np.isfinite(np.asarray(noise, np.float32)))
  assert np.std(np.asarray(noise, np.float32)) > 1.0  # Not a constant.


@pytest.mark.parametrize('sampler', [gumbel.sample_gumbel, gumbel.sample_logistic],
                         ids=['gumbel', 'logistic'])
def test_noise_float64(sampler):
  with jax.enable_x64(True):
    noise = sampler(_key(4), (10_000,), jnp.float64)
    assert noise.dtype == jnp.float64
    assert np.all(np.isfinite(noise))


def test_sample_gumbel_rejects_integer_dtype():
  with pytest.raises(ValueError, match='int32'):
    gumbel.sample_gumbel(_key(), (3,), jnp.int32)


@pytest.mark.parametrize('dtype', LOW_PRECISION, ids=DTYPE_IDS)
def test_gumbel_from_uniform_at_bounds(dtype):
  u = jnp.asarray([0.0, 1.0, 0.5], dtype)
  g = gumbel.gumbel_from_uniform(u)
  assert g.dtype == dtype
  assert np.all(np.isfinite(np.asarray(g, np.float32)))
  # Ordered like u, and the median of Gumbel(0, 1) is -log(log 2).
  g = np.asarray(g, np.float32)
  assert g[0] < g[2] < g[1]
  np.testing.assert_allclose(g[2], -math.log(math.log(2)), rtol=1e-2)


@pytest.mark.parametrize('dtype', LOW_PRECISION, ids=DTYPE_IDS)
def test_logistic_from_uniform_at_bounds(dtype):
  u = jnp.asarray([0.0, 1.0, 0.5, 0.25], dtype)
  x = gumbel.logistic_from_uniform(u)
  assert x.dtype == dtype
  x = np.asarray(x, np.float32)
  assert np.all(np.isfinite(x))
  assert x[0] < x[2] < x[1]
  np.testing.assert_allclose(x[2:], [0.0, -math.log(3)], atol=1e-2)


def test_samplers_finite_when_uniform_returns_exact_bounds(monkeypatch):
  """Patches jax.random.uniform to return exactly 0 and 1 (what float16 or a
  bad RNG can produce); every sampler must still give finite values."""
  calls = []

  def exact_bounds(key, shape=(), dtype=jnp.float32, minval=0.0, maxval=1.0):
    del key, minval, maxval
    calls.append(shape)
    size = math.prod(shape)
    return (jnp.arange(size) % 2).astype(dtype).reshape(shape)  # 0, 1, 0, ...

  monkeypatch.setattr(jax.random, 'uniform', exact_bounds)
  key = _key()
  logits = jnp.asarray([[0.0, 1.0, -1.0], [2.0, 0.0, 0.0]])
  outputs = {
      'sample_gumbel': gumbel.sample_gumbel(key, (4, 3)),
      'sample_logistic': gumbel.sample_logistic(key, (4, 3)),
      'gumbel_max': gumbel.gumbel_max(key, logits),
      'gumbel_softmax': gumbel.gumbel_softmax(key, logits, 0.5),
      'gumbel_softmax_hard': gumbel.gumbel_softmax(key, logits, 0.5, hard=True),
      'relaxed_bernoulli': gumbel.relaxed_bernoulli(key, logits, 0.5),
  }
  assert len(calls) == len(outputs)  # The patch was really used.
  for name, out in outputs.items():
    assert np.all(np.isfinite(out)), name
  # Both extremes were hit: the noise is not constant.
  assert np.ptp(np.asarray(outputs['sample_gumbel'])) > 10


# ----------------------------------------------------------------------------
# Gumbel-Max.
# ----------------------------------------------------------------------------

_LOGITS5 = np.array([0.3, -1.2, 1.5, 0.0, -0.4], np.float32)


def _assert_frequencies(counts, probs, n):
  """Max abs error of the frequencies below 5 standard errors."""
  se = np.sqrt(probs * (1 - probs) / n)
  np.testing.assert_array_less(np.abs(counts / n - probs), 5 * se)


@pytest.mark.parametrize('axis', [-1, 0], ids=['axis_last', 'axis_first'])
def test_gumbel_max_frequencies(axis):
  """Statistical test: argmax frequencies of 4e5 samples = softmax(logits).

  Tolerance: 5 standard errors sqrt(p (1 - p) / n) per category.
  """
  n = 400_000
  logits = np.broadcast_to(_LOGITS5, (n, 5))
  if axis == 0:
    logits = logits.T  # [K, n]
  samples = gumbel_max(_key(5), logits, axis)
  chex.assert_shape(samples, logits.shape)
  assert samples.dtype == jnp.float32
  samples = np.asarray(samples)
  assert set(np.unique(samples)) == {0.0, 1.0}
  np.testing.assert_array_equal(samples.sum(axis=axis), 1.0)
  _assert_frequencies(samples.sum(axis=1 - axis % 2), np.asarray(jax.nn.softmax(_LOGITS5)), n)


@pytest.mark.parametrize('dtype', LOW_PRECISION, ids=DTYPE_IDS)
def test_gumbel_max_dtype_and_extreme_logits(dtype):
  logits = jnp.asarray([[1e4, -1e4, 0.0], [-1e4, 0.0, -1e4], [-1e4, -1e4, 1e4]], dtype)
  sample = gumbel_max(_key(), logits)
  assert sample.dtype == dtype
  np.testing.assert_array_equal(sample, np.eye(3))


def test_gumbel_max_integer_logits_raise():
  """Integer logits are usually class indices passed by mistake: they raise
  (also under jit) and say how to cast; float logits of the same values work."""
  for call in (gumbel.gumbel_max, gumbel_max):
    with pytest.raises(ValueError, match=r'gumbel_max: logits must be a floating-point '
                       r'array, got an int32 .*logits\.astype\(jnp\.float32\)'):
      call(_key(), jnp.asarray([0, 100, 0]))
  sample = gumbel_max(_key(), jnp.asarray([0, 100, 0]).astype(jnp.float32))
  np.testing.assert_array_equal(sample, [0, 1, 0])


# ----------------------------------------------------------------------------
# Gumbel-Softmax.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize('hard', [False, True], ids=['soft', 'hard'])
@pytest.mark.parametrize('dtype', LOW_PRECISION, ids=DTYPE_IDS)
def test_gumbel_softmax_on_simplex(dtype, hard):
  logits = _logits(106, (4, 3, 5)).astype(dtype)
  y = gumbel_softmax(_key(7), logits, 0.7, hard=hard)
  chex.assert_shape(y, (4, 3, 5))
  assert y.dtype == dtype
  y = np.asarray(y, np.float32)
  assert np.all(y >= 0) and np.all(y <= 1)
  np.testing.assert_allclose(y.sum(-1), 1.0, atol=5 * 2.0 ** -jnp.finfo(dtype).nmant)
  if not hard:
    assert np.all(y.max(-1) < 1)  # A temperature of 0.7 is not one-hot.


@pytest.mark.parametrize('dtype', LOW_PRECISION, ids=DTYPE_IDS)
def test_hard_gumbel_softmax_is_one_hot_argmax_of_soft(dtype):
  logits = _logits(108, (64, 6)).astype(dtype)
  soft = gumbel_softmax(_key(9), logits, 2.0)
  hard = gumbel_softmax(_key(9), logits, 2.0, hard=True)
  assert hard.dtype == dtype
  expected = jax.nn.one_hot(jnp.argmax(soft.astype(jnp.float32), -1), 6)
  np.testing.assert_array_equal(np.asarray(hard, np.float32), expected)
  # The samples differ between rows: the key is used.
  assert len(np.unique(np.argmax(expected, -1))) > 1


def test_hard_gumbel_softmax_gradient_equals_soft_gradient():
  logits = _logits(110, (8, 5))
  w = _logits(111, (8, 5))
  tau = jnp.full((8,), 0.8)

  def grads(hard):
    def loss(logits, tau):
      return jnp.sum(w * gumbel_softmax(_key(12), logits, tau, hard=hard))
    return jax.jit(jax.grad(loss, argnums=(0, 1)))(logits, tau)

  soft_grads, hard_grads = grads(False), grads(True)
  for soft_grad, hard_grad in zip(soft_grads, hard_grads):
    np.testing.assert_allclose(hard_grad, soft_grad, rtol=1e-6, atol=1e-7)
    assert np.all(np.abs(soft_grad) > 0)  # Not a zero gradient.


def test_gumbel_softmax_approaches_one_hot_at_low_temperature():
  """Statistical test: mean max coordinate of 1e4 samples increases as tau -> 0,
  and exceeds 0.99 at tau = 0.01."""
  logits = jnp.broadcast_to(jnp.asarray(_LOGITS5), (10_000, 5))
  sample = gumbel_softmax
  taus = [5.0, 2.0, 1.0, 0.5, 0.1, 0.01]
  mean_max = [float(jnp.mean(jnp.max(sample(_key(13), logits, tau), -1))) for tau in taus]
  assert np.all(np.diff(mean_max) > 0), mean_max
  assert mean_max[0] < 0.6 and mean_max[-1] > 0.99, mean_max


@pytest.mark.parametrize('axis', [-1, 0], ids=['axis_last', 'axis_first'])
def test_hard_gumbel_softmax_frequencies(axis):
  """Statistical test: argmax frequencies of 4e5 hard samples = softmax(logits).

  Tolerance: 5 standard errors sqrt(p (1 - p) / n) per category.
  """
  n = 400_000
  logits = np.broadcast_to(_LOGITS5, (n, 5))
  if axis == 0:
    logits = logits.T  # [K, n]
  sample = functools.partial(gumbel_softmax, hard=True, axis=axis)
  y = np.asarray(sample(_key(14), logits, 0.5))
  np.testing.assert_array_equal(y.sum(axis=axis), 1.0)
  _assert_frequencies(y.sum(axis=1 - axis % 2), np.asarray(jax.nn.softmax(_LOGITS5)), n)


@pytest.mark.parametrize('tau', [0.3, 1.0, 3.0])
def test_gumbel_softmax_two_categories_cdf(tau):
  """Statistical test: for K = 2, y_1 = sigmoid((l_1 - l_0 + L) / tau) has the
  CDF P(y_1 <= x) = sigmoid(tau logit(x) - (l_1 - l_0)) [CON eq. 21].

  2e5 samples; the empirical CDF at 5 points within 5 standard errors.
  """
  n = 200_000
  l0, l1 = 0.5, -0.3
  logits = jnp.broadcast_to(jnp.asarray([l0, l1]), (n, 2))
  y1 = np.asarray(gumbel_softmax(_key(15), logits, tau)[:, 1])
  x = np.array([0.01, 0.2, 0.5, 0.8, 0.99])
  cdf = 1 / (1 + np.exp(-(tau * np.log(x / (1 - x)) - (l1 - l0))))
  _assert_frequencies((y1[:, None] <= x).sum(0), cdf, n)


def test_gumbel_softmax_per_example_temperature():
  logits = _logits(116, (3, 4, 5))  # [A, B, K]
  key = _key(17)
  tau = jnp.asarray([0.01, 0.5, 1.0, 100.0])  # [B]: broadcasts against [A, B].
  y = gumbel_softmax(key, logits, tau)
  chex.assert_shape(y, (3, 4, 5))
  # The noise does not depend on the temperature, so each column equals the
  # sample drawn with that column's scalar temperature.
  for b in range(4):
    np.testing.assert_allclose(
        y[:, b], gumbel_softmax(key, logits, float(tau[b]))[:, b], rtol=1e-5, atol=1e-7)
  assert np.all(y[:, 0].max(-1) > 0.9) and np.all(y[:, 3].max(-1) < 0.3)
  # A temperature per row of axis 0 ([A, 1, 1]: size 1 on the category axis,
  # as `logits / tau` broadcasts), and a per-example temperature along axis 0.
  tau_a = jnp.asarray([[[0.1]], [[1.0]], [[10.0]]])
  y = gumbel_softmax(key, logits, tau_a)
  np.testing.assert_allclose(y[2], gumbel_softmax(key, logits, 10.0)[2], rtol=1e-5)
  y = gumbel_softmax(key, jnp.moveaxis(logits, -1, 0), tau, axis=0)  # [K, A, B]
  chex.assert_shape(y, (5, 3, 4))
  np.testing.assert_allclose(y.sum(0), 1.0, rtol=1e-6)


@pytest.mark.parametrize(
    'tau_shape', [(3,), (5,), (1, 4, 3), (3, 1), (5, 1)],
    ids=['K_not_B', 'wrong_B', 'full_logits_shape', 'K_with_category_axis',
         'wrong_B_with_category_axis'])
def test_gumbel_softmax_temperature_not_broadcasting_raises(tau_shape):
  """Shapes that fit none of the forms (extra leading axes broadcast: see
  `test_gumbel_softmax_temperature_forms`)."""
  logits = jnp.zeros((1, 4, 3))  # Batch shape [1, 4].
  with pytest.raises(ValueError, match=r'temperature of shape'):
    gumbel_softmax(_key(), logits, jnp.ones(tau_shape))


@pytest.mark.parametrize('hard', [False, True], ids=['soft', 'hard'])
@pytest.mark.parametrize('dtype', LOW_PRECISION, ids=DTYPE_IDS)
def test_gumbel_softmax_extreme_logits_finite(dtype, hard):
  logits = jnp.asarray([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype)
  w = jnp.asarray([[1.0, -2.0, 3.0]])
  tau = jnp.asarray(0.01)

  def loss(logits, tau):
    y = gumbel_softmax(_key(18), logits, tau, hard=hard)
    return jnp.sum(w * y.astype(jnp.float32)), y

  (_, y), (g_logits, g_tau) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(
      logits, tau)
  assert y.dtype == dtype and g_logits.dtype == dtype
  assert np.all(np.isfinite(np.asarray(y, np.float32)))
  assert np.all(np.isfinite(np.asarray(g_logits, np.float32))) and np.isfinite(g_tau)
  np.testing.assert_allclose(np.asarray(y[0], np.float32), [1, 0, 0], atol=1e-3)


@pytest.mark.parametrize('dtype', LOW_PRECISION, ids=DTYPE_IDS)
def test_log_gumbel_softmax_is_log_of_gumbel_softmax(dtype):
  """The same noise for the same key; finite in log space where the Concrete
  sample underflows to 0 (tau 0.01), with a finite ExpConcrete density."""
  logits = _logits(150, (64, 6)).astype(dtype)
  log_y = jax.jit(gumbel.log_gumbel_softmax)(_key(50), logits, 0.7)
  assert log_y.dtype == dtype
  log_y = np.asarray(log_y, np.float32)
  y = np.asarray(gumbel_softmax(_key(50), logits, 0.7), np.float32)
  rounding = 2.0 ** -jnp.finfo(dtype).nmant
  np.testing.assert_allclose(np.exp(log_y), y, rtol=4 * rounding, atol=1e-6)
  np.testing.assert_allclose(jax.nn.logsumexp(log_y, -1), 0.0, atol=8 * rounding)
  cold = jax.jit(gumbel.log_gumbel_softmax)(_key(51), 30.0 * logits, 0.01)
  cold = np.asarray(cold, np.float32)
  assert np.all(np.isfinite(cold)) and cold.min() < -1e3  # exp(-1e3) is 0 in float32.
  log_p = exp_concrete_log_prob(cold, 30.0 * np.asarray(logits, np.float32), 0.01)
  assert np.all(np.isfinite(log_p))


def test_gumbel_softmax_axis_first_matches_axis_last():
  """axis=0 relaxes over the first axis: with well separated logits the sample
  is nearly the transposed one-hot of the argmax, exactly so when hard."""
  logits = 30.0 * jax.nn.one_hot(jnp.asarray([2, 0, 1, 2]), 3)  # [B, K]
  expected = np.asarray(jax.nn.one_hot(jnp.asarray([2, 0, 1, 2]), 3))
  for hard in (False, True):
    y_last = gumbel_softmax(_key(19), logits, 1.0, hard=hard, axis=-1)
    y_first = gumbel_softmax(_key(19), logits.T, 1.0, hard=hard, axis=0)
    chex.assert_shape(y_first, (3, 4))
    np.testing.assert_allclose(y_first.T, expected, atol=1e-6)
    np.testing.assert_allclose(y_last, expected, atol=1e-6)


def test_gumbel_softmax_jit_vmap_grad():
  logits = _logits(120, (4, 6))
  keys = jax.random.split(_key(21), 16)
  sample = functools.partial(gumbel.gumbel_softmax, hard=False)
  eager = sample(keys[0], logits, 0.5)
  np.testing.assert_allclose(jax.jit(sample)(keys[0], logits, 0.5), eager, rtol=1e-5, atol=1e-7)

  batched = jax.jit(jax.vmap(sample, in_axes=(0, None, None)))(keys, logits, 0.5)
  chex.assert_shape(batched, (16, 4, 6))
  np.testing.assert_allclose(batched[0], eager, rtol=1e-5, atol=1e-7)
  assert not np.allclose(batched[0], batched[1])  # Different keys, different samples.

  # vmap over a per-example temperature (traced) and over logits.
  taus = jnp.linspace(0.1, 2.0, 4)
  per_row = jax.jit(jax.vmap(sample, in_axes=(None, 0, 0)))(keys[0], logits, taus)
  chex.assert_shape(per_row, (4, 6))
  np.testing.assert_allclose(per_row.sum(-1), 1.0, rtol=1e-6)

  grad = jax.jit(jax.grad(lambda l, t: jnp.sum(sample(keys[0], l, t)[:, 0]), argnums=(0, 1)))
  g_logits, g_tau = grad(logits, 0.5)
  assert np.all(np.isfinite(g_logits)) and np.isfinite(g_tau)
  assert np.abs(g_logits).sum() > 0
  # The sum over categories is constant: its gradient is zero.
  g_sum = jax.jit(jax.grad(lambda l: jnp.sum(sample(keys[0], l, 0.5))))(logits)
  np.testing.assert_allclose(g_sum, 0.0, atol=1e-5)


@pytest.mark.parametrize('hard', [False, True], ids=['soft', 'hard'])
def test_gumbel_softmax_traces_once(hard):
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def sample(key, logits, tau):
    return gumbel.gumbel_softmax(key, logits, tau, hard=hard)

  logits = jnp.zeros((4, 3))
  first = sample(_key(22), logits, jnp.asarray(0.5))
  second = sample(_key(23), logits + 1.0, jnp.asarray(0.3))
  assert not np.allclose(first, second)
  with pytest.raises(AssertionError):  # A new shape retraces, and chex notices.
    sample(_key(23), jnp.zeros((5, 3)), jnp.asarray(0.3))


def test_traced_temperature_is_not_checked():
  """Under jit a traced temperature cannot be checked (module docstring): a
  temperature of 0 does not raise, and gives non-finite values."""
  sample = jax.jit(gumbel.gumbel_softmax)
  y = sample(_key(24), jnp.asarray([0.0, 1.0, -1.0]), 0.0)  # No ValueError.
  assert not np.all(np.isfinite(y))
  x = jax.jit(gumbel.relaxed_bernoulli)(_key(24), jnp.zeros(3), -1.0)
  chex.assert_shape(x, (3,))


# ----------------------------------------------------------------------------
# Relaxed Bernoulli.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize('dtype', LOW_PRECISION, ids=DTYPE_IDS)
def test_relaxed_bernoulli_in_unit_interval(dtype):
  logits = jnp.linspace(-0.5, 0.5, 50_000).astype(dtype)
  x = relaxed_bernoulli(_key(25), logits, 1.0)
  chex.assert_shape(x, (50_000,))
  assert x.dtype == dtype
  x = np.asarray(x, np.float32)
  assert np.all(x >= 0) and np.all(x <= 1)
  if dtype == jnp.float32:  # At lower precision sigmoid rounds to 0 or 1.
    assert np.all(x > 0) and np.all(x < 1)
  assert 0.45 < x.mean() < 0.55


def test_relaxed_bernoulli_hard_mean():
  """Statistical test: the mean of 2e5 hard samples per unit = sigmoid(logits).

  Tolerance: 5 standard errors sqrt(p (1 - p) / n) per unit.
  """
  n = 200_000
  logits = jnp.asarray([-3.0, -0.5, 0.0, 1.0, 4.0])
  x = relaxed_bernoulli(
      _key(26), jnp.broadcast_to(logits, (n, 5)), 0.5, hard=True)
  x = np.asarray(x)
  assert set(np.unique(x)) == {0.0, 1.0}
  _assert_frequencies(x.sum(0), np.asarray(jax.nn.sigmoid(logits)), n)


@pytest.mark.parametrize('tau', [0.3, 1.0, 3.0])
def test_relaxed_bernoulli_cdf(tau):
  """Statistical test: P(x <= t) = sigmoid(tau logit(t) - logits) [CON eq. 21];
  2e5 samples, the empirical CDF at 5 points within 5 standard errors."""
  n = 200_000
  logit = 0.8
  x = np.asarray(relaxed_bernoulli(_key(27), jnp.full((n,), logit), tau))
  t = np.array([0.01, 0.2, 0.5, 0.8, 0.99])
  cdf = 1 / (1 + np.exp(-(tau * np.log(t / (1 - t)) - logit)))
  _assert_frequencies((x[:, None] <= t).sum(0), cdf, n)


def test_relaxed_bernoulli_hard_is_exact_with_soft_gradient():
  logits = _logits(128, (4096,))
  w = _logits(129, (4096,))
  soft = relaxed_bernoulli(_key(30), logits, 0.7)
  hard = relaxed_bernoulli(_key(30), logits, 0.7, hard=True)
  np.testing.assert_array_equal(hard, (soft > 0.5).astype(jnp.float32))
  assert 1000 < hard.sum() < 3096
  grad_soft = _grad_of_weighted_sum(lambda l: relaxed_bernoulli(_key(30), l, 0.7), w)
  grad_hard = _grad_of_weighted_sum(
      lambda l: relaxed_bernoulli(_key(30), l, 0.7, hard=True), w)
  np.testing.assert_allclose(grad_hard(logits), grad_soft(logits), rtol=1e-6)
  assert np.all(np.abs(grad_soft(logits)) > 0)


@pytest.mark.parametrize('hard', [False, True], ids=['soft', 'hard'])
@pytest.mark.parametrize('dtype', LOW_PRECISION, ids=DTYPE_IDS)
def test_relaxed_bernoulli_extreme_logits_finite(dtype, hard):
  logits = jnp.asarray([1e4, -1e4, 0.0], dtype)

  def loss(logits):
    x = relaxed_bernoulli(_key(31), logits, 0.01, hard=hard)
    return jnp.sum(x.astype(jnp.float32)), x

  (_, x), grad = jax.jit(jax.value_and_grad(loss, has_aux=True))(logits)
  assert x.dtype == dtype and grad.dtype == dtype
  np.testing.assert_array_equal(np.asarray(x[:2], np.float32), [1.0, 0.0])
  assert np.all(np.isfinite(np.asarray(x, np.float32)))
  assert np.all(np.isfinite(np.asarray(grad, np.float32)))


def test_relaxed_bernoulli_per_element_temperature():
  logits = jnp.zeros((2, 3))
  tau = jnp.asarray([0.01, 1.0, 100.0])
  x = relaxed_bernoulli(_key(32), logits, tau)
  chex.assert_shape(x, (2, 3))
  np.testing.assert_allclose(x[:, 1], relaxed_bernoulli(_key(32), logits, 1.0)[:, 1])
  np.testing.assert_allclose(x[:, 2], 0.5, atol=0.05)
  with pytest.raises(ValueError, match=r'temperature of shape \(2,\)'):
    relaxed_bernoulli(_key(32), logits, jnp.ones(2))


# ----------------------------------------------------------------------------
# Densities.
# ----------------------------------------------------------------------------

TEMPERATURES = [0.1, 0.5, 1.0, 2.0]
NUM_CATEGORIES = [2, 5, 10]


def _simplex_points(seed, batch, k):
  """Interior points of the simplex (Dirichlet(1)), float32 [batch, k]."""
  x = np.random.default_rng(seed).dirichlet(np.ones(k), size=batch)
  x = np.clip(x, 1e-4, None)
  return (x / x.sum(-1, keepdims=True)).astype(np.float32)


@functools.partial(jax.jit, static_argnums=0)
def _jitted_tfp_log_prob(dist_cls, tau, logits, x):
  return dist_cls(tau, logits=logits).log_prob(x)


def _tfp_log_prob(dist_cls, tau, logits, x):
  with allow_rank_promotion():
    return _jitted_tfp_log_prob(dist_cls, tau, logits, x)


@pytest.mark.parametrize('k', NUM_CATEGORIES, ids=lambda k: f'K{k}')
@pytest.mark.parametrize('tau', TEMPERATURES, ids=lambda t: f'tau{t}')
def test_concrete_log_prob_matches_tfp(tau, k):
  """Against tfp's RelaxedOneHotCategorical; rtol 1e-4 (float32)."""
  x, logits = _simplex_points(k, 16, k), _logits(k + 1, (16, k))
  expected = _tfp_log_prob(tfd.RelaxedOneHotCategorical, tau, logits, x)
  actual = concrete_log_prob(x, logits, tau)
  chex.assert_shape(actual, (16,))
  np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('k', NUM_CATEGORIES, ids=lambda k: f'K{k}')
@pytest.mark.parametrize('tau', TEMPERATURES, ids=lambda t: f'tau{t}')
def test_exp_concrete_log_prob_matches_tfp(tau, k):
  """Against tfp's ExpRelaxedOneHotCategorical; rtol 1e-4 (float32)."""
  log_x, logits = np.log(_simplex_points(k + 2, 16, k)), _logits(k + 3, (16, k))
  expected = _tfp_log_prob(tfd.ExpRelaxedOneHotCategorical, tau, logits, log_x)
  actual = exp_concrete_log_prob(log_x, logits, tau)
  chex.assert_shape(actual, (16,))
  np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('tau', TEMPERATURES, ids=lambda t: f'tau{t}')
def test_binary_concrete_log_prob_matches_tfp(tau):
  """Against tfp's RelaxedBernoulli; rtol 1e-4 (float32)."""
  x = np.random.default_rng(4).uniform(0.01, 0.99, size=(64,)).astype(np.float32)
  logits = _logits(5, (64,)) * 2
  expected = _tfp_log_prob(tfd.RelaxedBernoulli, tau, logits, x)
  actual = binary_concrete_log_prob(x, logits, tau)
  chex.assert_shape(actual, (64,))
  np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


def test_densities_with_batched_temperatures_match_tfp():
  """Per-example temperatures [B] (and lower-rank logits) against tfp; rtol 1e-4."""
  b, k = 4, 5
  tau = np.asarray(TEMPERATURES, np.float32)  # [B]
  x, logits = _simplex_points(6, b, k), _logits(7, (b, k))
  np.testing.assert_allclose(
      concrete_log_prob(x, logits, tau),
      _tfp_log_prob(tfd.RelaxedOneHotCategorical, tau, logits, x), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(
      exp_concrete_log_prob(np.log(x), logits, tau),
      _tfp_log_prob(tfd.ExpRelaxedOneHotCategorical, tau, logits, np.log(x)),
      rtol=1e-4, atol=1e-4)
  # Logits shared across the batch: [K] against x [B, K].
  shared = logits[0]
  actual = concrete_log_prob(x, shared, tau)
  chex.assert_shape(actual, (b,))
  np.testing.assert_allclose(
      actual, _tfp_log_prob(tfd.RelaxedOneHotCategorical, tau, shared, x), rtol=1e-4, atol=1e-4)
  # A single point x [K] against batched logits [B, K].
  actual = concrete_log_prob(x[0], logits, tau)
  chex.assert_shape(actual, (b,))
  np.testing.assert_allclose(
      actual, _tfp_log_prob(tfd.RelaxedOneHotCategorical, tau, logits, x[0]),
      rtol=1e-4, atol=1e-4)
  # Binary: x [B, 3], logits [3], temperature [B, 1].
  xb = np.random.default_rng(8).uniform(0.05, 0.95, size=(b, 3)).astype(np.float32)
  actual = binary_concrete_log_prob(xb, logits[0, :3], tau[:, None])
  chex.assert_shape(actual, (b, 3))
  np.testing.assert_allclose(
      actual, _tfp_log_prob(tfd.RelaxedBernoulli, tau[:, None], logits[0, :3], xb),
      rtol=1e-4, atol=1e-4)


def test_concrete_log_prob_axis_first():
  x, logits = _simplex_points(9, 6, 4), _logits(10, (6, 4))
  np.testing.assert_allclose(
      concrete_log_prob(x.T, logits.T, 0.5, axis=0),
      concrete_log_prob(x, logits, 0.5), rtol=1e-6)
  tau = np.linspace(0.2, 2.0, 6).astype(np.float32)
  np.testing.assert_allclose(
      exp_concrete_log_prob(np.log(x.T), logits.T, tau, axis=0),
      exp_concrete_log_prob(np.log(x), logits, tau), rtol=1e-6)


_LOGIT_GRID = np.linspace(-37.0, 37.0, 200_001)  # Float64, where sigmoid(z) < 1.


@pytest.mark.parametrize('logit', [-1.0, 0.0, 1.5])
@pytest.mark.parametrize('tau', [0.5, 1.0, 2.0], ids=lambda t: f'tau{t}')
def test_binary_concrete_density_integrates_to_one(tau, logit):
  """Trapezoid rule in logit space, x = sigmoid(z), dx = x (1 - x) dz, in
  float64 on 2e5 points of [-37, 37]; tolerance 1e-6 (the mass outside is
  below exp(-tau (37 - |logit| / tau)) < 3e-7)."""
  with jax.enable_x64(True):
    z = jnp.asarray(_LOGIT_GRID)
    log_p = binary_concrete_log_prob(jax.nn.sigmoid(z), logit, tau)
    assert log_p.dtype == jnp.float64
    integrand = np.exp(np.asarray(log_p) + np.asarray(jax.nn.log_sigmoid(z) + jax.nn.log_sigmoid(-z)))
  np.testing.assert_allclose(np.trapezoid(integrand, _LOGIT_GRID), 1.0, atol=1e-6)


@pytest.mark.parametrize('logits', [(0.0, 0.0), (1.0, -0.5)], ids=['uniform', 'skewed'])
@pytest.mark.parametrize('tau', [0.5, 1.0, 2.0], ids=lambda t: f'tau{t}')
def test_concrete_density_two_categories_integrates_to_one(tau, logits):
  """The K = 2 density at x = (t, 1 - t) integrates to 1 over t; trapezoid
  rule in logit space in float64 as above, tolerance 1e-6."""
  with jax.enable_x64(True):
    z = jnp.asarray(_LOGIT_GRID)
    x = jnp.stack([jax.nn.sigmoid(z), jax.nn.sigmoid(-z)], axis=-1)  # [n, 2]
    log_p = concrete_log_prob(x, jnp.asarray(logits), tau)
    assert log_p.dtype == jnp.float64
    integrand = np.exp(np.asarray(log_p) + np.asarray(jax.nn.log_sigmoid(z) + jax.nn.log_sigmoid(-z)))
  np.testing.assert_allclose(np.trapezoid(integrand, _LOGIT_GRID), 1.0, atol=1e-6)


@pytest.mark.parametrize('tau', TEMPERATURES, ids=lambda t: f'tau{t}')
def test_concrete_two_categories_equals_binary_concrete(tau):
  x1 = np.random.default_rng(11).uniform(0.01, 0.99, size=(32,)).astype(np.float32)
  x = np.stack([1 - x1, x1], axis=-1)
  logits = _logits(12, (32, 2))
  np.testing.assert_allclose(
      concrete_log_prob(x, logits, tau),
      binary_concrete_log_prob(x1, logits[:, 1] - logits[:, 0], tau),
      rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('tau', TEMPERATURES, ids=lambda t: f'tau{t}')
def test_densities_finite_at_boundary(tau):
  """Exact zeros and ones: the true density is 0 or infinite there; the
  library clamps, so values and gradients with respect to logits are finite."""
  x = jnp.asarray([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.3, 0.7, 0.0]])
  logits = jnp.asarray([0.5, -1.0, 2.0])
  value, grad = jax.jit(jax.value_and_grad(lambda l: jnp.sum(concrete_log_prob(x, l, tau))))(
      logits)
  assert np.isfinite(value) and np.all(np.isfinite(grad))
  xb = jnp.asarray([0.0, 1.0, 0.5])
  value, grad = jax.jit(jax.value_and_grad(
      lambda l: jnp.sum(binary_concrete_log_prob(xb, l, tau))))(logits)
  assert np.isfinite(value) and np.all(np.isfinite(grad))
  # Also for float16 inputs (computed in float32 and cast back).
  half = binary_concrete_log_prob(xb.astype(jnp.float16), jnp.float16(0.0), tau)
  assert half.dtype == jnp.float16
  assert np.all(np.isfinite(np.asarray(half, np.float32)))


def test_density_dtypes():
  assert gumbel.binary_concrete_log_prob(0.3, 0.0, 1.0).dtype == jnp.float32
  # Integer points (one-hot) are fine; integer logits raise (validation tests).
  assert gumbel.concrete_log_prob(jnp.asarray([1, 0]), jnp.zeros(2), 1.0).dtype == jnp.float32
  x16 = jnp.asarray([0.25, 0.75], jnp.float16)
  assert gumbel.concrete_log_prob(x16, x16, 1.0).dtype == jnp.float16
  np.testing.assert_allclose(
      np.asarray(gumbel.concrete_log_prob(x16, jnp.zeros(2, jnp.float16), 0.5), np.float32),
      gumbel.concrete_log_prob(x16.astype(jnp.float32), jnp.zeros(2), 0.5), rtol=1e-3)


# ----------------------------------------------------------------------------
# KL divergences.
# ----------------------------------------------------------------------------


def _numpy_categorical_kl(logits_q, logits_p):
  def log_softmax(l):
    l = np.asarray(l, np.float64)
    l = l - l.max(-1, keepdims=True)
    return l - np.log(np.exp(l).sum(-1, keepdims=True))
  log_q, log_p = log_softmax(logits_q), log_softmax(logits_p)
  return np.sum(np.exp(log_q) * (log_q - log_p), -1)


def test_categorical_kl_matches_numpy():
  logits_q, logits_p = 2 * _logits(13, (8, 3, 10)), 2 * _logits(14, (8, 3, 10))
  kl = categorical_kl(logits_q, logits_p)
  chex.assert_shape(kl, (8, 3))
  np.testing.assert_allclose(kl, _numpy_categorical_kl(logits_q, logits_p), rtol=1e-5, atol=1e-6)
  assert np.all(np.asarray(kl) > 0)
  # A prior shared across the batch, [K] against [B, N, K], and axis=0.
  np.testing.assert_allclose(
      categorical_kl(logits_q, logits_p[0, 0]),
      _numpy_categorical_kl(logits_q, logits_p[0, 0]), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(
      categorical_kl(logits_q.T, logits_p.T, axis=0),
      _numpy_categorical_kl(logits_q, logits_p).T, rtol=1e-5, atol=1e-6)


def test_categorical_kl_zero_when_equal():
  logits = 3 * _logits(15, (16, 7))
  np.testing.assert_allclose(categorical_kl(logits, logits), 0.0, atol=1e-6)
  # Logits are defined up to a constant.
  np.testing.assert_allclose(categorical_kl(logits, logits + 5.0), 0.0, atol=1e-5)


def test_categorical_kl_nonnegative():
  """Nonnegative up to float32 rounding (-1e-6; values near 0 come out as
  about -5e-13 when q = p to float32 precision)."""
  logits_q = 10 * _logits(16, (1000, 4))
  logits_p = 10 * _logits(17, (1000, 4))
  logits_p[:10] = logits_q[:10] + 1.0  # Also some q = p.
  kl = np.asarray(categorical_kl(logits_q, logits_p))
  assert np.all(kl >= -1e-6)
  assert np.mean(kl) > 1.0


def test_categorical_kl_uniform_prior():
  logits_q = _logits(18, (5, 10))
  log_q = np.asarray(jax.nn.log_softmax(logits_q))
  expected = np.sum(np.exp(log_q) * log_q, -1) + np.log(10)
  np.testing.assert_allclose(categorical_kl(logits_q, jnp.zeros(())), expected,
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(categorical_kl(logits_q, 0.0), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('dtype', LOW_PRECISION, ids=DTYPE_IDS)
def test_kl_extreme_logits_finite(dtype):
  logits_q = jnp.asarray([[1e4, -1e4], [-1e4, 1e4], [0.0, 0.0]], dtype)
  grad = jax.jit(jax.grad(
      lambda l: jnp.sum(categorical_kl(l, jnp.zeros(())).astype(jnp.float32))))(logits_q)
  assert grad.dtype == dtype
  assert np.all(np.isfinite(np.asarray(grad, np.float32)))
  per_row = categorical_kl(logits_q, jnp.zeros(()))
  assert per_row.dtype == dtype
  np.testing.assert_allclose(np.asarray(per_row, np.float32), [math.log(2), math.log(2), 0.0],
                             rtol=1e-2, atol=1e-3)
  bernoulli = bernoulli_kl(logits_q[:, 0], jnp.zeros((), dtype))
  assert bernoulli.dtype == dtype
  np.testing.assert_allclose(np.asarray(bernoulli, np.float32), [math.log(2), math.log(2), 0.0],
                             rtol=1e-2, atol=1e-3)
  # Against a prior at the other extreme: large but finite (2e4 nats).
  far = categorical_kl(jnp.asarray([1e4, -1e4], jnp.float32), jnp.asarray([-1e4, 1e4]))
  np.testing.assert_allclose(far, 2e4, rtol=1e-5)


def test_bernoulli_kl_equals_categorical_kl():
  logits_q, logits_p = 3 * _logits(19, (6, 5)), 3 * _logits(20, (6, 5))
  stack = lambda l: jnp.stack([l, jnp.zeros_like(l)], axis=-1)
  kl = bernoulli_kl(logits_q, logits_p)
  chex.assert_shape(kl, (6, 5))
  np.testing.assert_allclose(
      kl, categorical_kl(stack(logits_q), stack(logits_p)), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(kl, _numpy_categorical_kl(stack(logits_q), stack(logits_p)),
                             rtol=1e-5, atol=1e-6)
  # A prior shared across the batch, [5] against [6, 5].
  np.testing.assert_allclose(
      bernoulli_kl(logits_q, logits_p[0]),
      _numpy_categorical_kl(stack(logits_q), stack(jnp.broadcast_to(logits_p[0], (6, 5)))),
      rtol=1e-5, atol=1e-6)
  assert bernoulli_kl(0.3, 0.0).dtype == jnp.float32


# ----------------------------------------------------------------------------
# Temperature broadcasting (the rule in gumbel/distributions.py's docstring).
# ----------------------------------------------------------------------------

_TAU_VALUES = np.asarray([0.3, 0.7, 1.5, 4.0], np.float32)
# Many small shapes: compiling without LLVM optimisation halves the time.
_fast_jit = functools.partial(jax.jit, compiler_options=diagnostics.FAST_COMPILE)
_gumbel_softmax = _fast_jit(gumbel.gumbel_softmax, static_argnames=('hard', 'axis'))
_relaxed_bernoulli = _fast_jit(gumbel.relaxed_bernoulli, static_argnames=('hard',))
_concrete_log_prob = _fast_jit(gumbel.concrete_log_prob, static_argnames=('axis',))
_exp_concrete_log_prob = _fast_jit(gumbel.exp_concrete_log_prob, static_argnames=('axis',))
_binary_concrete_log_prob = _fast_jit(gumbel.binary_concrete_log_prob)

# name: (logits shape, temperature shape, axis, the same temperature written
# in form (c), i.e. as numpy broadcasting reads it). The sample shape is the
# numpy broadcast of the logits shape and the last column.
_CATEGORICAL_FORMS = {
    'scalar': ((4, 5), (), -1, ()),
    'batch': ((4, 5), (4,), -1, (4, 1)),
    'batch_with_category_axis': ((4, 5), (4, 1), -1, (4, 1)),
    'issue_example': ((8, 4), (8, 1), -1, (8, 1)),
    'row_with_batch_taus': ((5,), (4,), -1, (4, 1)),
    'batch_adds_leading_axis': ((3, 5), (4, 3), -1, (4, 3, 1)),
    'category_axis_adds_leading_axis': ((3, 5), (4, 3, 1), -1, (4, 3, 1)),
    'batch_adds_axes_to_2d_batch': ((1, 4, 3), (2, 3, 4), -1, (2, 3, 4, 1)),
    # Batch-shaped with a trailing 1 (read as TFP reads it, not as (c)).
    'batch_with_trailing_1': ((4, 1, 3), (4, 1), -1, (4, 1, 1)),
    'batch_with_trailing_1_per_row': ((3, 4, 5), (3, 1), -1, (3, 1, 1)),
    # Size-1 temperatures: both readings put it on every entry.
    'size_1': ((4, 5), (1,), -1, (1, 1)),
    'size_1_rank_2': ((2, 3, 5), (1, 1), -1, (1, 1, 1)),
    'axis0_batch': ((5, 4), (4,), 0, (1, 4)),
    'axis0_category_axis': ((5, 4), (1, 4), 0, (1, 4)),
    'axis0_adds_leading_axis': ((5, 3), (4, 3), 0, (4, 1, 3)),
}
_FORM_IDS = list(_CATEGORICAL_FORMS)
_HARD_FORMS = ('issue_example', 'batch_adds_leading_axis', 'batch_with_trailing_1',
               'axis0_adds_leading_axis')


def _taus(shape):
  return np.resize(_TAU_VALUES, shape).astype(np.float32)


def _sample_shape(logits_shape, numpy_tau_shape):
  return np.broadcast_shapes(logits_shape, numpy_tau_shape)


def _assert_per_temperature(out, tau, reference):
  """Each entry of `out` equals `reference(t)` (a scalar-temperature call)
  wherever the broadcast temperature `tau` is t."""
  tau = np.broadcast_to(tau, out.shape)
  for t in np.unique(tau):
    mask = tau == t
    np.testing.assert_allclose(np.asarray(out)[mask], np.asarray(reference(float(t)))[mask],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('form,hard', [
    pytest.param(f, h, id=f'{f}-{"hard" if h else "soft"}') for f in _FORM_IDS
    for h in (False, True) if not h or f in _HARD_FORMS])
def test_gumbel_softmax_temperature_forms(form, hard):
  """Jitted: the sample shape, and each entry equals the scalar-temperature
  sample of the same (broadcast) shape and key: the noise is drawn at the
  broadcast shape and each row gets its own temperature."""
  logits_shape, tau_shape, axis, numpy_tau_shape = _CATEGORICAL_FORMS[form]
  shape = _sample_shape(logits_shape, numpy_tau_shape)
  end_axis = axis - len(logits_shape) if axis >= 0 else axis  # After broadcasting.
  logits, tau = _logits(130, logits_shape), _taus(tau_shape)
  y = _gumbel_softmax(_key(31), logits, tau, hard=hard, axis=axis)
  chex.assert_shape(y, shape)
  np.testing.assert_allclose(np.asarray(y).sum(end_axis), 1.0, rtol=1e-5)
  logits_full = np.broadcast_to(logits, shape)
  _assert_per_temperature(
      y, tau.reshape(numpy_tau_shape),
      lambda t: _gumbel_softmax(_key(31), logits_full, t, hard=hard, axis=end_axis))


@pytest.mark.parametrize('form', _FORM_IDS)
def test_categorical_densities_temperature_forms(form):
  """Jitted: log-densities of the broadcast batch shape, equal to the
  per-row (scalar-temperature) densities; against tfp for axis -1."""
  logits_shape, tau_shape, axis, numpy_tau_shape = _CATEGORICAL_FORMS[form]
  shape = _sample_shape(logits_shape, numpy_tau_shape)
  end_axis = axis - len(logits_shape) if axis >= 0 else axis  # After broadcasting.
  k = logits_shape[axis]
  x = _simplex_points(131, math.prod(logits_shape) // k, k)  # [N, K]
  x = np.moveaxis(x.reshape(np.moveaxis(np.empty(logits_shape), axis, -1).shape), -1, axis)
  logits, tau = _logits(132, logits_shape), _taus(tau_shape)
  batch_tau = np.squeeze(tau.reshape(numpy_tau_shape), end_axis) if tau.ndim else tau
  batch_shape = shape[:len(shape) + end_axis] + shape[len(shape) + end_axis + 1:]
  x_full, logits_full = np.broadcast_to(x, shape), np.broadcast_to(logits, shape)
  for fn, points, points_full in [(_concrete_log_prob, x, x_full),
                                  (_exp_concrete_log_prob, np.log(x), np.log(x_full))]:
    log_p = fn(points, logits, tau, axis)
    chex.assert_shape(log_p, batch_shape)
    _assert_per_temperature(log_p, batch_tau,
                            lambda t: fn(points_full, logits_full, t, end_axis))
  if axis == -1:
    np.testing.assert_allclose(
        _concrete_log_prob(x, logits, tau),
        _tfp_log_prob(tfd.RelaxedOneHotCategorical, batch_tau, logits_full, x_full),
        rtol=1e-4, atol=1e-4)


# name: (logits shape, temperature shape); numpy broadcasting gives the rest.
_BERNOULLI_FORMS = {
    'scalar': ((4, 5), ()),
    'elementwise': ((4, 5), (4, 5)),
    'per_unit': ((4, 5), (5,)),
    'per_row': ((4, 5), (4, 1)),
    'row_with_column_taus': ((5,), (4, 1)),
    'adds_leading_axis': ((3, 5), (4, 1, 1)),
}


@pytest.mark.parametrize('form,hard', [
    pytest.param(f, h, id=f'{f}-{"hard" if h else "soft"}') for f in _BERNOULLI_FORMS
    for h in (False, True) if not h or f == 'adds_leading_axis'])
def test_relaxed_bernoulli_temperature_forms(form, hard):
  logits_shape, tau_shape = _BERNOULLI_FORMS[form]
  shape = np.broadcast_shapes(logits_shape, tau_shape)
  logits, tau = _logits(133, logits_shape), _taus(tau_shape)
  x = _relaxed_bernoulli(_key(34), logits, tau, hard=hard)
  chex.assert_shape(x, shape)
  logits_full = np.broadcast_to(logits, shape)
  _assert_per_temperature(x, tau, lambda t: _relaxed_bernoulli(_key(34), logits_full, t, hard=hard))


@pytest.mark.parametrize('form', list(_BERNOULLI_FORMS))
def test_binary_concrete_log_prob_temperature_forms(form):
  """Also with x of lower rank than the logits; against tfp."""
  logits_shape, tau_shape = _BERNOULLI_FORMS[form]
  shape = np.broadcast_shapes(logits_shape, tau_shape)
  x = np.random.default_rng(135).uniform(0.05, 0.95, size=logits_shape[-1:]).astype(np.float32)
  logits, tau = _logits(136, logits_shape), _taus(tau_shape)
  log_p = _binary_concrete_log_prob(x, logits, tau)
  chex.assert_shape(log_p, shape)
  x_full, logits_full = np.broadcast_to(x, shape), np.broadcast_to(logits, shape)
  _assert_per_temperature(log_p, tau, lambda t: _binary_concrete_log_prob(x_full, logits_full, t))
  np.testing.assert_allclose(
      log_p, _tfp_log_prob(tfd.RelaxedBernoulli, np.broadcast_to(tau, shape), logits_full, x_full),
      rtol=1e-4, atol=1e-4)


def test_issue_example_per_example_temperature():
  """_gumbel_softmax(key, logits[8, 4], tau[8, 1]) (issue 6) is tau[8]'s sample."""
  logits = _logits(137, (8, 4))
  tau = np.linspace(0.1, 3.0, 8).astype(np.float32)
  y = gumbel.gumbel_softmax(_key(38), logits, tau[:, None])
  chex.assert_shape(y, (8, 4))
  np.testing.assert_array_equal(y, gumbel.gumbel_softmax(_key(38), logits, tau))
  for b in (0, 7):
    np.testing.assert_allclose(y[b], gumbel.gumbel_softmax(_key(38), logits, float(tau[b]))[b],
                               rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(
      gumbel.concrete_log_prob(y, logits, tau[:, None]), gumbel.concrete_log_prob(y, logits, tau),
      rtol=1e-6)


def test_temperature_forms_under_vmap():
  """vmap over a leading temperature axis: each form inside the vmapped
  function, against the unbatched calls (samplers, unbatched key) and
  against the two-way broadcast call (densities)."""
  logits = _logits(139, (3, 5))
  x = _simplex_points(140, 3, 5)
  key = _key(41)
  for tau in (_taus((4, 3)), _taus((4, 3, 1))):  # Per row: (b) [3], (c) [3, 1].
    y = _fast_jit(jax.vmap(gumbel.gumbel_softmax, in_axes=(None, None, 0)))(key, logits, tau)
    chex.assert_shape(y, (4, 3, 5))
    for t in range(4):
      np.testing.assert_allclose(y[t], _gumbel_softmax(key, logits, tau[t]), rtol=1e-5, atol=1e-7)
    for fn, points in [(gumbel.concrete_log_prob, x), (gumbel.exp_concrete_log_prob, np.log(x))]:
      batched = _fast_jit(jax.vmap(fn, in_axes=(None, None, 0)))(points, logits, tau)
      chex.assert_shape(batched, (4, 3))
      np.testing.assert_allclose(batched, fn(points, logits, tau), rtol=1e-5, atol=1e-5)
  tau = _taus((4, 3, 1))
  xb = _fast_jit(jax.vmap(gumbel.relaxed_bernoulli, in_axes=(None, None, 0)))(key, logits, tau)
  chex.assert_shape(xb, (4, 3, 5))
  for t in range(4):
    np.testing.assert_allclose(xb[t], _relaxed_bernoulli(key, logits, tau[t]), rtol=1e-5, atol=1e-7)
  batched = _fast_jit(jax.vmap(gumbel.binary_concrete_log_prob, in_axes=(None, None, 0)))(
      x, logits, tau)
  np.testing.assert_allclose(batched, _binary_concrete_log_prob(x, logits, tau), rtol=1e-5, atol=1e-5)
  # vmap over the logits' rows with one temperature per row.
  per_row = _fast_jit(jax.vmap(gumbel.gumbel_softmax, in_axes=(None, 0, 0)))(
      key, logits, _taus((3, 1)))
  chex.assert_shape(per_row, (3, 5))


_BAD_SHAPES = {
    'gumbel_softmax': lambda t: gumbel.gumbel_softmax(_key(), jnp.zeros((3, 4, 5)), t),
    'concrete_log_prob': lambda t: gumbel.concrete_log_prob(
        jnp.full((3, 4, 5), 0.2), jnp.zeros(5), t),
    'exp_concrete_log_prob': lambda t: gumbel.exp_concrete_log_prob(
        jnp.full((3, 4, 5), -math.log(5)), jnp.zeros((4, 5)), t),
    'relaxed_bernoulli': lambda t: gumbel.relaxed_bernoulli(_key(), jnp.zeros((3, 4, 5)), t),
    'binary_concrete_log_prob': lambda t: gumbel.binary_concrete_log_prob(
        jnp.full((3, 4, 5), 0.5), jnp.zeros(5), t),
}
_SHAPES_IN_MESSAGE = {
    'gumbel_softmax': r'logits of shape \(3, 4, 5\) \(batch shape \(3, 4\), category axis -1\)',
    'concrete_log_prob': r'x of shape \(3, 4, 5\) and logits of shape \(5,\) \(batch shape',
    'exp_concrete_log_prob': r'log_x of shape \(3, 4, 5\) and logits of shape \(4, 5\)',
    'relaxed_bernoulli': r'logits of shape \(3, 4, 5\)',
    'binary_concrete_log_prob': r'x of shape \(3, 4, 5\) and logits of shape \(5,\)',
}


@pytest.mark.parametrize('jit', [False, True], ids=['eager', 'jit'])
@pytest.mark.parametrize('fn', list(_BAD_SHAPES))
def test_temperature_of_no_accepted_form_raises(fn, jit):
  """The error names the shapes and lists the accepted forms (also under jit:
  shapes are static)."""
  call = jax.jit(_BAD_SHAPES[fn]) if jit else _BAD_SHAPES[fn]
  with pytest.raises(ValueError, match=(
      r'temperature of shape \(2, 1\) does not broadcast against '
      + _SHAPES_IN_MESSAGE[fn] + r'.*Accepted temperature shapes: .*scalar')):
    call(jnp.ones((2, 1)))


def test_batch_shaped_temperature_with_trailing_1_is_tfps_reading():
  """[A, 1] for logits [A, B, K] fits only as a batch shape (as (c) it does
  not broadcast): one temperature per row of axis 0, as [A, 1, 1] writes it."""
  logits = _logits(141, (3, 4, 5))
  tau = jnp.asarray([[0.1], [1.0], [10.0]])
  y = gumbel.gumbel_softmax(_key(42), logits, tau)
  chex.assert_shape(y, (3, 4, 5))
  np.testing.assert_array_equal(y, gumbel.gumbel_softmax(_key(42), logits, tau[:, :, None]))


def _tfp_batch_shape(logits_shape, tau_shape):
  with allow_rank_promotion():
    return tuple(tfd.RelaxedOneHotCategorical(
        jnp.ones(tau_shape), logits=jnp.zeros(logits_shape)).batch_shape)


# name: (logits shape, temperature shape, axis, the reading used, the sample
# shape). Both readings fit; the one that keeps the logits' shape is used.
_KEEPING_READINGS = {
    'issue_batch_shaped': ((4, 1, 3), (4, 1), -1, 'batch', (4, 1, 3)),
    'per_row_category_axis_form': ((8, 4), (8, 1), -1, 'logits', (8, 4)),
    'single_row': ((1, 4), (1, 1), -1, 'logits', (1, 4)),
    'axis0_category_axis_form': ((5, 4), (1, 4), 0, 'logits', (5, 4)),
    'scalar_logits_batch_size_1': ((5,), (1,), -1, 'logits', (5,)),
}


@pytest.mark.parametrize('case', list(_KEEPING_READINGS))
def test_temperature_readings_that_differ_use_the_one_keeping_the_logits_shape(case):
  """Where the batch reading (TFP's) and the `logits / tau` reading both fit
  but differ, the one whose result has the logits' shape is used; where that
  is the batch reading, the shape is TFP's."""
  logits_shape, tau_shape, axis, reading, sample_shape = _KEEPING_READINGS[case]
  logits, tau = _logits(142, logits_shape), _taus(tau_shape)
  y = _gumbel_softmax(_key(43), logits, tau, axis=axis)
  chex.assert_shape(y, sample_shape)
  # The same sample as the temperature written in the unambiguous full form.
  end_axis = axis - len(logits_shape) if axis >= 0 else axis
  batch_shape = sample_shape[:len(sample_shape) + end_axis] + (
      sample_shape[len(sample_shape) + end_axis + 1:])
  per_entry = np.squeeze(tau, end_axis) if reading == 'logits' else tau
  full = np.broadcast_to(per_entry, batch_shape)
  np.testing.assert_array_equal(y, _gumbel_softmax(_key(43), logits, full, axis=axis))
  log_p = _concrete_log_prob(y, logits, tau, axis)
  chex.assert_shape(log_p, batch_shape)
  np.testing.assert_allclose(log_p, _concrete_log_prob(y, logits, full, axis), rtol=1e-6)
  if reading == 'batch':
    assert _tfp_batch_shape(logits_shape, tau_shape) == batch_shape


def test_temperature_readings_that_coincide():
  """A size-1 temperature puts the same value on every entry in both readings:
  the result is the scalar temperature's, whatever the rank."""
  logits = _logits(143, (2, 3, 5))
  expected = gumbel.gumbel_softmax(_key(44), logits, 0.7)
  for tau_shape in [(), (1,), (1, 1), (1, 1, 1)]:
    y = gumbel.gumbel_softmax(_key(44), logits, np.full(tau_shape, 0.7, np.float32))
    np.testing.assert_array_equal(y, expected, err_msg=str(tau_shape))


def test_issue_example_matches_tfp():
  """Logits [4, 1, 3] with temperature [4, 1]: samples [4, 1, 3] and
  log-densities [4, 1], as TFP gives them (not [4, 4, 3])."""
  logits, tau = _logits(144, (4, 1, 3)), _taus((4, 1))
  y = gumbel.gumbel_softmax(_key(45), logits, tau)
  chex.assert_shape(y, (4, 1, 3))
  np.testing.assert_allclose(
      gumbel.concrete_log_prob(y, logits, tau),
      _tfp_log_prob(tfd.RelaxedOneHotCategorical, tau, logits, y), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(
      gumbel.exp_concrete_log_prob(jnp.log(y), logits, tau),
      _tfp_log_prob(tfd.ExpRelaxedOneHotCategorical, tau, logits, jnp.log(y)),
      rtol=1e-4, atol=1e-4)


# name: (call(tau), temperature shape, the two results in the message, and
# the two spellings it suggests, each with the result it gives).
_gs = gumbel.gumbel_softmax
_AMBIGUOUS = {
    'neither_keeps': (
        lambda t, l=None: _gs(_key(), jnp.zeros((5,)) if l is None else l, t), (4, 1),
        'neither keeps', [(4, 1, 5), (4, 5)],
        [('the same temperature with the logits broadcast to (4, 1, 5)',
          lambda t: _gs(_key(), jnp.zeros((4, 1, 5)), t), (4, 1, 5)),
         ('jnp.squeeze(temperature, -1)', lambda t: _gs(_key(), jnp.zeros((5,)), t[:, 0]),
          (4, 5))]),
    'both_keep': (
        lambda t: _gs(_key(), jnp.zeros((2, 2, 3)), t), (2, 1), 'both keep',
        [(2, 2, 3), (2, 2, 3)],
        [('jnp.broadcast_to(temperature, (2, 2))',
          lambda t: _gs(_key(), jnp.zeros((2, 2, 3)), jnp.broadcast_to(t, (2, 2))), (2, 2, 3)),
         ('jnp.broadcast_to(jnp.squeeze(temperature, -1), (2, 2))',
          lambda t: _gs(_key(), jnp.zeros((2, 2, 3)), jnp.broadcast_to(t[:, 0], (2, 2))),
          (2, 2, 3))]),
    'axis0': (
        lambda t: _gs(_key(), jnp.zeros((5, 3)), t, axis=0), (4, 1, 3), 'neither keeps',
        [(4, 1, 5, 3), (4, 5, 3)],
        [('the same temperature with the logits broadcast to (4, 1, 5, 3)',
          lambda t: _gs(_key(), jnp.zeros((4, 1, 5, 3)), t, axis=-2), (4, 1, 5, 3)),
         ('jnp.squeeze(temperature, -2)',
          lambda t: _gs(_key(), jnp.zeros((5, 3)), t[:, 0], axis=0), (4, 5, 3))]),
    'density_samples_as_many_as_rows': (
        lambda t: gumbel.concrete_log_prob(jnp.full((4, 4, 3), 1 / 3), jnp.zeros((4, 3)), t),
        (4, 1), 'both keep', [(4, 4), (4, 4)],
        [('jnp.broadcast_to(temperature, (4, 4))', None, None),
         ('jnp.broadcast_to(jnp.squeeze(temperature, -1), (4, 4))',
          lambda t: gumbel.concrete_log_prob(jnp.full((4, 4, 3), 1 / 3), jnp.zeros((4, 3)),
                                             t[:, 0]), (4, 4))]),
}


@pytest.mark.parametrize('jit', [False, True], ids=['eager', 'jit'])
@pytest.mark.parametrize('case', list(_AMBIGUOUS))
def test_ambiguous_temperature_raises_showing_both_readings(case, jit):
  """Both readings fit, differ, and neither or both keep the logits' shape:
  the error shows both results and an unambiguous spelling of each (which
  gives that result); also under jit (shapes are static)."""
  call, tau_shape, keep, results, spellings = _AMBIGUOUS[case]
  tau = jnp.asarray(_taus(tau_shape))
  pattern = (rf'temperature of shape {re.escape(str(tau_shape))} is ambiguous .*{keep} .*'
             rf'as a batch shape .*of shape {re.escape(str(results[0]))}.*'
             rf'`logits / tau` .*of shape {re.escape(str(results[1]))}')
  with pytest.raises(ValueError, match=pattern) as error:
    (jax.jit(call) if jit else call)(tau)
  for spelling, spelled, shape in spellings:
    assert spelling in str(error.value)
    if spelled is not None:
      chex.assert_shape(spelled(tau), shape)


# name: (logits shape, temperature shape, what each fitting reading would
# give, the spelling of the first).
_OUTER = {
    'tfp_outer_product': ((4, 5), (3, 1), ['(3, 4)'], 'jnp.broadcast_to(temperature, (3, 4))'),
    'both_outer': ((3, 5), (4, 1, 1), ['(4, 1, 3)', '(4, 3)'],
                   'jnp.broadcast_to(temperature, (4, 1, 3))'),
    'size_1_batch_axis_of_logits': ((1, 4, 3), (3, 1), ['(3, 4)'],
                                    'jnp.broadcast_to(temperature, (3, 4))'),
}


@pytest.mark.parametrize('case', list(_OUTER))
def test_temperature_never_broadcast_into_an_outer_product(case):
  """A reading whose batch shape neither the temperature nor the logits have
  (TFP would give it, `logits / tau` would give it for the (c) reading) does
  not fit; the error names the shape and how to ask for it."""
  logits_shape, tau_shape, outer, spelling = _OUTER[case]
  with pytest.raises(ValueError, match=r'never broadcast into a batch shape') as error:
    gumbel.gumbel_softmax(_key(), jnp.zeros(logits_shape), jnp.ones(tau_shape))
  for shape in outer:
    assert f'batch shape {shape}' in str(error.value)
  assert spelling in str(error.value)
  tau = jnp.broadcast_to(jnp.ones(tau_shape), eval(spelling.split(', ', 1)[1][:-1]))
  y = gumbel.gumbel_softmax(_key(), jnp.zeros(logits_shape), tau)
  assert y.shape[:-1] == _tfp_batch_shape(logits_shape, tau_shape)


# ----------------------------------------------------------------------------
# Validation.
# ----------------------------------------------------------------------------

_X = np.full((2, 3), 1 / 3, np.float32)
_TEMPERATURE_USERS = {
    'gumbel_softmax': lambda t: gumbel.gumbel_softmax(_key(), jnp.zeros((2, 3)), t),
    'gumbel_softmax_hard': lambda t: gumbel.gumbel_softmax(_key(), jnp.zeros((2, 3)), t, hard=True),
    'log_gumbel_softmax': lambda t: gumbel.log_gumbel_softmax(_key(), jnp.zeros((2, 3)), t),
    'relaxed_bernoulli': lambda t: gumbel.relaxed_bernoulli(_key(), jnp.zeros((2,)), t),
    'concrete_log_prob': lambda t: gumbel.concrete_log_prob(_X, jnp.zeros(3), t),
    'exp_concrete_log_prob': lambda t: gumbel.exp_concrete_log_prob(np.log(_X), jnp.zeros(3), t),
    'binary_concrete_log_prob': lambda t: gumbel.binary_concrete_log_prob(
        jnp.full((2,), 0.5), 0.0, t),
    'check_temperature': gumbel.check_temperature,
}
_BAD_TEMPERATURES = {
    'zero': (0.0, r'got array\(0\.\)'),
    'int_zero': (0, r'got array\(0\)'),
    'negative': (-1.0, r'got array\(-1\.\)'),
    'array_with_zero': (np.asarray([1.0, 0.0]), r'got array\(\[1\., 0\.\]\)'),
    'jax_array_negative': (jnp.asarray([0.5, -2.0]), r'-2\.'),
    'nan': (float('nan'), r'got array\(nan\)'),
    'inf': (float('inf'), r'got array\(inf\)'),
    'bfloat16_zero': (jnp.asarray(0.0, jnp.bfloat16), r'got array\(0, dtype=.*bfloat16'),
    'float16_negative': (np.asarray([0.5, -1.0], np.float16), r'-1\.'),
}


@pytest.mark.parametrize('bad', list(_BAD_TEMPERATURES), ids=str)
@pytest.mark.parametrize('fn', list(_TEMPERATURE_USERS), ids=str)
def test_bad_temperature_raises(fn, bad):
  value, pattern = _BAD_TEMPERATURES[bad]
  with pytest.raises(ValueError, match=r'temperature must be > 0.*' + pattern):
    _TEMPERATURE_USERS[fn](value)


def test_good_temperature_passes():
  for name, fn in _TEMPERATURE_USERS.items():
    out = fn(np.asarray([0.5, 2.0]))
    assert out is None or np.all(np.isfinite(out)), name


_RANK0_USERS = {
    'gumbel_softmax': lambda l: gumbel.gumbel_softmax(_key(), l, 1.0),
    'gumbel_max': lambda l: gumbel.gumbel_max(_key(), l),
    'log_gumbel_softmax': lambda l: gumbel.log_gumbel_softmax(_key(), l, 1.0),
    'concrete_log_prob': lambda l: gumbel.concrete_log_prob(l, l, 1.0),
    'exp_concrete_log_prob': lambda l: gumbel.exp_concrete_log_prob(l, l, 1.0),
    'categorical_kl': lambda l: gumbel.categorical_kl(l, l),
}


@pytest.mark.parametrize('fn', list(_RANK0_USERS), ids=str)
def test_rank0_logits_raise(fn):
  with pytest.raises(ValueError, match=r'shape \(\)'):
    _RANK0_USERS[fn](jnp.asarray(0.5))


_AXIS_USERS = {
    'gumbel_softmax': lambda a: gumbel.gumbel_softmax(_key(), jnp.zeros((2, 3)), 1.0, axis=a),
    'gumbel_max': lambda a: gumbel.gumbel_max(_key(), jnp.zeros((2, 3)), axis=a),
    'log_gumbel_softmax': lambda a: gumbel.log_gumbel_softmax(
        _key(), jnp.zeros((2, 3)), 1.0, axis=a),
    'concrete_log_prob': lambda a: gumbel.concrete_log_prob(_X, _X, 1.0, axis=a),
    'exp_concrete_log_prob': lambda a: gumbel.exp_concrete_log_prob(_X, _X, 1.0, axis=a),
    'categorical_kl': lambda a: gumbel.categorical_kl(_X, _X, axis=a),
}


@pytest.mark.parametrize('axis', [2, -3], ids=['axis2', 'axis_minus3'])
@pytest.mark.parametrize('fn', list(_AXIS_USERS), ids=str)
def test_axis_out_of_range_raises(fn, axis):
  with pytest.raises(ValueError, match=rf'axis={axis} is out of range .* shape \(2, 3\)'):
    _AXIS_USERS[fn](axis)


@pytest.mark.parametrize('jit', [False, True], ids=['eager', 'jit'])
@pytest.mark.parametrize('dtype', [jnp.bfloat16, jnp.float16], ids=['bfloat16', 'float16'])
@pytest.mark.parametrize('fn', list(_TEMPERATURE_USERS), ids=str)
def test_low_precision_temperatures_accepted(fn, dtype, jit):
  """float16 and bfloat16 temperatures (scalar and per-row) work eagerly and
  under jit, and give what the float32 temperature gives (0.5 and 2 are exact)."""
  call = _TEMPERATURE_USERS[fn]
  if jit and fn != 'check_temperature':
    call = jax.jit(call)
  for value in (0.5, [0.5, 2.0]):
    out = call(jnp.asarray(value, dtype))
    if fn == 'check_temperature':
      assert out is None
    else:
      np.testing.assert_array_equal(out, call(jnp.asarray(value, jnp.float32)))


def test_check_temperature_accepts_every_real_dtype_and_skips_traced_values():
  for value in (1, 0.5, np.float16(0.5), jnp.asarray([1, 2], jnp.int8),
                jnp.asarray(0.5, jnp.bfloat16), np.asarray([0.5], np.float64), [0.5, 2.0]):
    gumbel.check_temperature(value)
  for value in (True, 'a', jnp.asarray(1 + 1j)):
    with pytest.raises(ValueError, match=r'my_tau must be a real number'):
      gumbel.check_temperature(value, 'my_tau')
  with pytest.raises(ValueError, match=r'^rebar: temperature must be > 0 and finite'):
    gumbel.check_temperature(-jnp.inf, 'rebar: temperature')
  jax.jit(gumbel.check_temperature)(jnp.asarray(-1.0))  # Traced: not checked.


_KEY_USERS = {
    'gumbel_softmax': (gumbel.gumbel_softmax, (0.5,)),
    'log_gumbel_softmax': (gumbel.log_gumbel_softmax, (0.5,)),
    'gumbel_max': (gumbel.gumbel_max, ()),
    'relaxed_bernoulli': (gumbel.relaxed_bernoulli, (0.5,)),
}
_KEYS = {'typed_key': lambda: jax.random.key(0), 'raw_key': lambda: jax.random.PRNGKey(0)}


@pytest.mark.parametrize('jit', [False, True], ids=['eager', 'jit'])
@pytest.mark.parametrize('key', list(_KEYS))
@pytest.mark.parametrize('fn', list(_KEY_USERS))
def test_arguments_in_pytorch_order_raise(fn, key, jit):
  """fn(logits, key, ...) (PyTorch's F.gumbel_softmax(logits, tau) order): the
  error says that the key comes first; the right order works."""
  function, rest = _KEY_USERS[fn]
  call = jax.jit(function) if jit else function
  logits, key = jnp.zeros((2, 3)), _KEYS[key]()
  with pytest.raises(ValueError, match=rf'^{fn}: key must be a PRNG key.*got a float32 array '
                     rf'of shape \(2, 3\)\. The key comes first: {fn}\(key, logits'):
    call(logits, key, *rest)
  chex.assert_shape(call(key, logits, *rest), (2, 3))


@pytest.mark.parametrize('key', list(_KEYS))
@pytest.mark.parametrize('fn', list(_KEY_USERS))
def test_key_in_the_logits_slot_raises(fn, key):
  """A key where the logits belong (with a valid key first) says the same."""
  function, rest = _KEY_USERS[fn]
  key = _KEYS[key]()
  with pytest.raises(ValueError, match=rf'^{fn}: logits must be a floating-point array.*'
                     rf'The key comes first: {fn}\(key, logits'):
    function(jax.random.key(1), key, *rest)


@pytest.mark.parametrize('fn', [gumbel.sample_gumbel, gumbel.sample_logistic],
                         ids=['sample_gumbel', 'sample_logistic'])
def test_noise_without_a_key_raises(fn):
  with pytest.raises(ValueError, match=rf'{fn.__name__}: key must be a PRNG key.*got tuple'):
    fn((3,), _key())
  with pytest.raises(ValueError, match=r'got int 0.*The key comes first'):
    fn(0, (3,))


_CATEGORY_AXIS_USERS = {
    'gumbel_softmax': lambda l, **kw: gumbel.gumbel_softmax(_key(), l, 1.0, **kw),
    'gumbel_softmax_hard': lambda l, **kw: gumbel.gumbel_softmax(_key(), l, 1.0, hard=True, **kw),
    'log_gumbel_softmax': lambda l, **kw: gumbel.log_gumbel_softmax(_key(), l, 1.0, **kw),
    'gumbel_max': lambda l, **kw: gumbel.gumbel_max(_key(), l, **kw),
    'concrete_log_prob': lambda l, **kw: gumbel.concrete_log_prob(l, l, 1.0, **kw),
    'exp_concrete_log_prob': lambda l, **kw: gumbel.exp_concrete_log_prob(l, l, 1.0, **kw),
    'categorical_kl': lambda l, **kw: gumbel.categorical_kl(l, l, **kw),
}
_POINTS_NAME = {'concrete_log_prob': 'x', 'exp_concrete_log_prob': 'log_x',
                'categorical_kl': 'logits_q'}


@pytest.mark.parametrize('shape', [(5, 0), (0,)], ids=['5x0', '0'])
@pytest.mark.parametrize('fn', list(_CATEGORY_AXIS_USERS))
def test_zero_categories_raise(fn, shape):
  name = _POINTS_NAME.get(fn, 'logits')
  with pytest.raises(ValueError, match=rf'^{fn.removesuffix("_hard")}: {name} of shape '
                     rf'{re.escape(str(shape))} has no categories'):
    _CATEGORY_AXIS_USERS[fn](jnp.zeros(shape))
  # An empty batch is fine.
  assert _CATEGORY_AXIS_USERS[fn](jnp.zeros((0, 3))).shape[0] == 0


def test_zero_categories_after_broadcasting_raise():
  for fn in (gumbel.concrete_log_prob, gumbel.exp_concrete_log_prob):
    with pytest.raises(ValueError, match=rf'{fn.__name__}: .*broadcast to \(5, 0\), which '
                       r'has no categories'):
      fn(jnp.zeros((5, 1)), jnp.zeros((5, 0)), 1.0)


@pytest.mark.parametrize('axis', [(0, 1), [1], 1.0, None, True, '1'], ids=str)
@pytest.mark.parametrize('fn', list(_CATEGORY_AXIS_USERS))
def test_axis_not_one_int_raises(fn, axis):
  hint = r'.*There is one category axis' if isinstance(axis, (tuple, list)) else ''
  with pytest.raises(ValueError, match=rf'^{fn.removesuffix("_hard")}: axis must be an int '
                     rf'\(the category axis\), got {re.escape(repr(axis))}\.{hint}'):
    _CATEGORY_AXIS_USERS[fn](jnp.zeros((2, 3)), axis=axis)
  # NumPy integers are ints.
  chex.assert_rank(_CATEGORY_AXIS_USERS[fn](jnp.zeros((2, 3)), axis=np.int64(0)), {1, 2})


def test_traced_axis_and_hard_raise_saying_they_are_static():
  sample = jax.jit(gumbel.gumbel_softmax)
  with pytest.raises(ValueError, match=r"gumbel_softmax: axis must be an int.*static_argnames"):
    sample(_key(), jnp.zeros((2, 3)), 0.5, axis=0)
  with pytest.raises(ValueError, match=r"gumbel_softmax: hard must be True or False.*"
                     r"static_argnames=\('hard',\)"):
    sample(_key(), jnp.zeros((2, 3)), 0.5, hard=True)
  with pytest.raises(ValueError, match=r"relaxed_bernoulli: hard must be True or False"):
    jax.jit(gumbel.relaxed_bernoulli)(_key(), jnp.zeros(3), 0.5, hard=False)


_INTEGER_LOGITS = {
    'gumbel_softmax': ('logits', lambda l: gumbel.gumbel_softmax(_key(), l, 1.0)),
    'log_gumbel_softmax': ('logits', lambda l: gumbel.log_gumbel_softmax(_key(), l, 1.0)),
    'gumbel_max': ('logits', lambda l: gumbel.gumbel_max(_key(), l)),
    'relaxed_bernoulli': ('logits', lambda l: gumbel.relaxed_bernoulli(_key(), l, 1.0)),
    'concrete_log_prob': ('logits', lambda l: gumbel.concrete_log_prob(_X, l, 1.0)),
    'exp_concrete_log_prob': ('logits', lambda l: gumbel.exp_concrete_log_prob(_X, l, 1.0)),
    'binary_concrete_log_prob': ('logits', lambda l: gumbel.binary_concrete_log_prob(
        0.5, l, 1.0)),
    'categorical_kl': ('logits_q', lambda l: gumbel.categorical_kl(l, jnp.zeros(3))),
    'categorical_kl ': ('logits_p', lambda l: gumbel.categorical_kl(jnp.zeros(3), l)),
    'bernoulli_kl': ('logits_q', lambda l: gumbel.bernoulli_kl(l, jnp.zeros(3))),
    'bernoulli_kl ': ('logits_p', lambda l: gumbel.bernoulli_kl(jnp.zeros(3), l)),
}


@pytest.mark.parametrize('dtype', [jnp.int32, jnp.bool_], ids=['int32', 'bool'])
@pytest.mark.parametrize('fn', list(_INTEGER_LOGITS), ids=str.strip)
def test_integer_logits_raise(fn, dtype):
  """Eagerly and under jit; the message names the function and the argument
  and says how to cast."""
  name, call = _INTEGER_LOGITS[fn]
  logits = jnp.asarray([0, 1, 0], dtype)
  pattern = (rf'^{fn.strip()}: {name} must be a floating-point array, got a[n]? '
             rf'{jnp.dtype(dtype)} array of shape \(3,\)\..*{name}\.astype\(jnp\.float32\)')
  for c in (call, jax.jit(call)):
    with pytest.raises(ValueError, match=pattern):
      c(logits)
  assert np.all(np.isfinite(call(logits.astype(jnp.float32))))


def test_python_numbers_are_float_logits():
  """A Python int is a number, not an integer array: 0 as a prior's logits."""
  np.testing.assert_allclose(gumbel.bernoulli_kl(0.0, 0), 0.0)
  np.testing.assert_allclose(gumbel.categorical_kl(jnp.zeros(3), 0), 0.0, atol=1e-7)
  assert gumbel.binary_concrete_log_prob(0.5, 0, 1).dtype == jnp.float32


# ----------------------------------------------------------------------------
# NaN logits and nnx streams.
# ----------------------------------------------------------------------------


def test_nan_logits_give_nan_kl_and_nan_samples():
  """A NaN logit gives a NaN KL and a NaN Gumbel-Max row, never 0 or a one-hot."""
  logits = jnp.asarray([[0.0, jnp.nan, 1.0], [0.0, 2.0, 1.0]])
  kl = gumbel.categorical_kl(logits, jnp.zeros(()))
  assert np.isnan(kl[0]) and np.isfinite(kl[1])
  assert np.isnan(gumbel.bernoulli_kl(logits, jnp.zeros(()))[0, 1])  # As bernoulli_kl did.
  grad = jax.grad(lambda l: gumbel.categorical_kl(l, jnp.zeros(())).sum())(logits)
  assert np.isnan(grad[0]).all() and np.isfinite(grad[1]).all()
  sample = gumbel.gumbel_max(jax.random.key(0), logits)
  assert np.isnan(sample[0]).all()
  np.testing.assert_array_equal(sample[1].sum(), 1.0)
  columns = gumbel.gumbel_max(jax.random.key(0), logits.T, axis=0)  # Category axis 0.
  assert np.isnan(columns[:, 0]).all() and np.isfinite(columns[:, 1]).all()


def test_an_nnx_rng_stream_where_a_key_belongs_says_to_call_it():
  from flax import nnx  # pylint: disable=g-import-not-at-top
  rngs = nnx.Rngs(0, gumbel=1)
  for fn in (lambda k: gumbel.gumbel_softmax(k, jnp.zeros((2, 3)), 1.0),
             lambda k: gumbel.gumbel_max(k, jnp.zeros((2, 3)))):
    with pytest.raises(ValueError, match=r'nnx.RngStream rngs.gumbel itself.*rngs\.gumbel\(\)'):
      fn(rngs.gumbel)
  fn(rngs.gumbel())  # Called: a key.
