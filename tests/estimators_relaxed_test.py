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
