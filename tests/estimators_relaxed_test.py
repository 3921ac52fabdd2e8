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
