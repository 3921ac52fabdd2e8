"""Tests for gumbel/estimators/relaxed.py: straight-through and relaxations against enumeration.

Statistical tests (fixed keys, 2e4 estimates, tolerances in
`estimator_testing`) compare against exact gradients by enumeration.
Run with
`JAX_NUMPY_RANK_PROMOTION=raise python -m pytest tests/estimators_relaxed_test.py`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimator_testing as et
from gumbel import diagnostics
from gumbel.estimators import ESTIMATORS
from gumbel.estimators import _common as common


@pytest.mark.parametrize('name,kind', et.cases(et.RELAXED, et.BIASED))
def test_biased_shows_bias(name, kind):
  """Statistical: some coordinate more than 8 standard errors off."""
  et.assert_biased(name, kind)


@pytest.mark.parametrize('kind', et.KINDS)
def test_gumbel_softmax_bias_shrinks_with_temperature(kind):
  """Statistical: the relaxation's bias at tau = 0.3 is below that at tau = 1."""
  problem = et.problem(kind)
  bias = [diagnostics.bias_variance(jax.random.key(5), problem, 'gumbel_softmax',
                                    num_estimates=5_000, temperature=t)['bias_rel']
          for t in (1.0, 0.3)]
  assert bias[1] < 0.7 * bias[0]


@pytest.mark.parametrize('kind', et.KINDS)
def test_gumbel_rao_has_st_gumbel_softmax_mean_and_less_variance(kind):
  """Statistical: Rao-Blackwellisation keeps the mean and cuts the variance."""
  problem = et.problem(kind)
  gr = diagnostics.bias_variance(jax.random.key(6), problem, 'gumbel_rao',
                                 num_estimates=et.NUM_ESTIMATES, num_conditional=20)
  st = diagnostics.bias_variance(jax.random.key(7), problem, 'st_gumbel_softmax',
                                 num_estimates=et.NUM_ESTIMATES)
  se = np.sqrt(gr['stderr']**2 + st['stderr']**2)
  assert np.all(np.abs(gr['mean'] - st['mean']) <= 5 * se + 1e-3)
  n = problem.logits.size  # The logits come first in the flat gradient.
  assert np.sum(gr['variance'][:n]) < 0.95 * np.sum(st['variance'][:n])


@pytest.mark.parametrize('kind', et.KINDS)
def test_straight_through_exact_for_linear_objectives(kind):
  """Straight-through is exact for f linear in b: every estimate, 1e-5."""
  problem = et.problem(kind)
  a = jax.random.normal(jax.random.key(9), problem.logits.shape[1:])
  linear = problem._replace(
      objective=lambda params, z: jnp.sum((z * a[None]).reshape(z.shape[0], -1), 1)
      + 0.0 * params['c'][0])
  exact = diagnostics.exact_gradient(linear)['logits']
  grads = diagnostics.estimator_gradients(
      jax.random.key(0), linear, 'st', num_estimates=16)['logits']
  np.testing.assert_allclose(grads, jnp.broadcast_to(exact, grads.shape), atol=1e-5)


@pytest.mark.parametrize('kind', et.KINDS)
def test_annealed_st_has_the_slope_inside_the_unit(kind):
  """Exact: [SLOPE]'s unit samples at the slope and goes straight through on it, so
  annealed_st(logits, slope=a) is st(a * logits): the same sample and value for a key,
  and the gradient with respect to the logits is a times st's at a * logits."""
  from gumbel.estimators import ESTIMATORS  # pylint: disable=g-import-not-at-top
  problem = et.problem(kind)
  f = problem.f()
  a = 3.0

  def value_and_grad(name, logits, **hparams):
    def surrogate(logits):
      return jnp.sum(ESTIMATORS[name].apply(jax.random.key(5), logits, f, (), kind=kind,
                                            **hparams)[0])
    return jax.value_and_grad(surrogate)(logits)

  value, grad = value_and_grad('annealed_st', problem.logits, slope=a)
  st_value, st_grad = value_and_grad('st', a * problem.logits)
  np.testing.assert_allclose(value, st_value, rtol=1e-6)
  np.testing.assert_allclose(grad, a * st_grad, rtol=1e-5, atol=1e-6)
  # The samples follow q(a * logits): their frequencies, by sampling through f.
  keys = jax.random.split(jax.random.key(6), 4000)
  ops_mean = jax.nn.sigmoid if kind == 'bernoulli' else jax.nn.softmax
  samples = jax.vmap(lambda k: ESTIMATORS['annealed_st'].apply(
      k, problem.logits, lambda z: z.reshape(z.shape[0], -1)[:, 0], (), kind=kind,
      slope=a)[0])(keys)  # [4000, batch]: the first unit's (or class's) sample.
  first = ops_mean(a * problem.logits)[:, 0] if kind == 'bernoulli' else (
      ops_mean(a * problem.logits, axis=-1)[:, 0, 0])
  np.testing.assert_allclose(samples.mean(0), first, atol=4 * 0.5 / np.sqrt(4000))


def _grads_and_sample(name, key, logits, a, kind, **hparams):
  """(d surrogate / d logits, the forward sample) for f(z) = sum(z * a) per example.

  `a` has the shape of `logits`; f is linear, so df/dz = a and
  d surrogate / d a is the sample f saw.
  """
  def surrogate(logits, a):
    f = lambda z: jnp.sum((z * a).reshape(z.shape[0], -1), axis=1)
    return jnp.sum(ESTIMATORS[name].apply(key, logits, f, (), kind=kind, **hparams)[0])
  return jax.grad(surrogate, argnums=(0, 1))(logits, a)


def test_zgr_is_half_straight_through_plus_half_darn_for_every_sample():
  """Exact, per sample: the closed form of [ZGR] (its eq. 50 / ZGR = (ST + DARN) / 2).

  With g = df/dx: grad_i = (p_i (g_i - g_x) + [i = x] (g_x - p . g)) / 2 on
  categorical units and g (b (1 - p) + (1 - b) p) / 2 on Bernoulli units.
  ReinMax at temperature 1 has the same Jacobian (for one-hot x, diag(x) =
  x x^T), so it is ZGR with another draw of the sample.
  """
  logits = jax.random.normal(jax.random.key(30), (4, 3, 5)) * 2.0
  a = jax.random.normal(jax.random.key(31), (4, 3, 5))
  p = jax.nn.softmax(logits, axis=-1)
  for i in range(8):
    grad, x = _grads_and_sample('zgr', jax.random.key(i), logits, a, 'categorical')
    g_x = jnp.sum(a * x, -1, keepdims=True)
    g_p = jnp.sum(a * p, -1, keepdims=True)
    np.testing.assert_allclose(grad, 0.5 * (p * (a - g_x) + x * (g_x - g_p)), atol=1e-6)
  for i in range(8):  # ReinMax at tau = 1: 2 J((x + p) / 2) - J(p) / 2 is the same matrix.
    grad, x = _grads_and_sample('reinmax', jax.random.key(i), logits, a, 'categorical',
                                temperature=1.0)
    g_x = jnp.sum(a * x, -1, keepdims=True)
    g_p = jnp.sum(a * p, -1, keepdims=True)
    np.testing.assert_allclose(grad, 0.5 * (p * (a - g_x) + x * (g_x - g_p)), atol=1e-6)
  logits = jax.random.normal(jax.random.key(32), (4, 6)) * 2.0
  a = jax.random.normal(jax.random.key(33), (4, 6))
  p = jax.nn.sigmoid(logits)
  for i in range(8):
    grad, b = _grads_and_sample('zgr', jax.random.key(i), logits, a, 'bernoulli')
    np.testing.assert_array_equal(np.unique(b), np.array([0.0, 1.0]))
    np.testing.assert_allclose(grad, a * (b * (1 - p) + (1 - b) * p) / 2, atol=1e-6)


def test_zgr_is_the_zero_temperature_limit_of_gumbel_rao():
  """Statistical: Gumbel-Rao's conditional Jacobian E[d softmax((theta + G) / tau) | x]
  at tau = 0.02 (2e5 conditional Gumbels) is ZGR's (J(p) + (x - p)(x - p)^T) / 2 for
  every class x, within 0.03 (MC noise about 0.01, the tau bias smaller)."""
  ops = common.KIND_OPS['categorical']
  theta = jax.nn.log_softmax(jnp.array([0.3, -1.0, 0.8, 0.1]))
  p = jnp.exp(theta)
  tau = 0.02

  def conditional_jacobian(x, v):  # [K, K], averaged over the uniforms v [n, K].
    def relaxed(theta, v):
      z = ops.conditional_perturb(jax.lax.stop_gradient(theta), x, v)
      return jax.nn.softmax((theta + jax.lax.stop_gradient(z - theta)) / tau)
    return jnp.mean(jax.vmap(lambda v: jax.jacobian(relaxed)(theta, v))(v), axis=0)

  for k in range(4):
    x = jax.nn.one_hot(k, 4)
    v = common.uniform(jax.random.key(40 + k), (200_000, 4))
    zgr = 0.5 * (jnp.diag(p) - jnp.outer(p, p) + jnp.outer(x - p, x - p))
    np.testing.assert_allclose(jax.jit(conditional_jacobian)(x, v), zgr, atol=0.03)


@pytest.mark.parametrize('kind', et.KINDS)
def test_zgr_is_unbiased_for_linear_objectives(kind):
  """Statistical: E[(x - p)(x - p)^T] = J(p), so ZGR is exact in mean for f linear
  in x (unlike DARN alone): logits' gradient within 5 stderr (+1e-3) of exact,
  whereas on the nonlinear toy it is biased (`test_biased_shows_bias`)."""
  problem = et.problem(kind)
  a = jax.random.normal(jax.random.key(9), problem.logits.shape[1:])
  linear = problem._replace(
      objective=lambda params, z: jnp.sum((z * a[None]).reshape(z.shape[0], -1), 1)
      + 0.0 * params['c'][0])
  r = diagnostics.bias_variance(jax.random.key(10), linear, 'zgr',
                                num_estimates=et.NUM_ESTIMATES)
  n = problem.logits.size
  assert np.all(np.abs(r['mean'] - r['exact'])[:n] <= 5 * r['stderr'][:n] + 1e-3)


@pytest.mark.parametrize('temperature,gap', [(1.0, 1.0), (0.5, 2.0), (2.0, 0.3)])
def test_gapped_st_on_bernoulli_units_is_its_closed_form(temperature, gap):
  """Exact, per sample. With 2-class logits (l, 0) the gapped logits differ by
  Delta = max((2b - 1) l, gap) in favour of the sample b ([GST]: the sampled
  class on top, the other at least `gap` below), so db/dl = sigma'(Delta / tau) / tau."""
  logits = jax.random.normal(jax.random.key(34), (4, 6)) * 3.0
  a = jax.random.normal(jax.random.key(35), (4, 6))
  for i in range(4):
    grad, b = _grads_and_sample('gapped_st', jax.random.key(i), logits, a, 'bernoulli',
                                temperature=temperature, gap=gap)
    s = jax.nn.sigmoid(jnp.maximum((2 * b - 1) * logits, gap) / temperature)
    np.testing.assert_allclose(grad, a * s * (1 - s) / temperature, rtol=1e-5, atol=1e-7)


def test_gapped_st_gradient_is_a_function_of_the_sample_alone():
  """Its perturbation is deterministic given the sample ([GST]: no resampled
  noise): keys that draw the same sample give the same gradient, which
  st_gumbel_softmax's Gumbel noise does not."""
  logits = jnp.array([[[1.0, 0.2, -0.5]]])  # One categorical variable, 3 classes.
  a = jnp.array([[[0.7, -1.1, 0.4]]])
  for name, same in (('gapped_st', True), ('st_gumbel_softmax', False)):
    by_sample = {}
    for i in range(40):
      grad, x = _grads_and_sample(name, jax.random.key(i), logits, a, 'categorical')
      by_sample.setdefault(int(jnp.argmax(x)), []).append(np.asarray(grad))
    spread = max(np.ptp(np.stack(g), axis=0).max() for g in by_sample.values())
    assert len(by_sample) == 3
    assert (spread < 1e-6) == same, (name, spread)
