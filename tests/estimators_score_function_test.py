"""Tests for gumbel/estimators/score_function.py: sf, nvil, darn, muprop and vimco against enumeration.

Statistical tests (fixed keys, 2e4 estimates, tolerances in
`estimator_testing`) compare against exact gradients by enumeration.
Run with
`JAX_NUMPY_RANK_PROMOTION=raise python -m pytest tests/estimators_score_function_test.py`.
"""

import jax
import numpy as np
import pytest

import estimator_testing as et
from gumbel import diagnostics


@pytest.mark.parametrize('name,kind', et.cases(et.SCORE_FUNCTION, et.UNBIASED))
def test_unbiased_against_enumeration(name, kind):
  """Statistical: mean of 2e4 estimates within 5 stderr (+1e-3) of exact."""
  et.assert_unbiased(name, kind)


@pytest.mark.parametrize('name,kind', et.cases(et.SCORE_FUNCTION, et.BIASED))
def test_biased_shows_bias(name, kind):
  """Statistical: some coordinate more than 8 standard errors off."""
  et.assert_biased(name, kind)


def test_darn_exact_for_separable_quadratic_objectives():
  """Statistical: DARN is unbiased when f(1) - f(0) = f'(1/2) for each unit.

  That holds for f(z) = a . z + c . z^2 (a quadratic extension of a function
  of binary units without interactions): logits' gradient within 5 stderr
  (+1e-3) of exact, whereas on the nonlinear toy it is biased
  (`test_biased_shows_bias`).
  """
  problem = et.problem('bernoulli')
  a = jax.random.normal(jax.random.key(13), (8,))
  c = jax.random.normal(jax.random.key(14), (8,))
  quadratic = problem._replace(
      objective=lambda params, z: z @ a + (z**2) @ c + 0.0 * params['c'][0])
  r = diagnostics.bias_variance(jax.random.key(15), quadratic, 'darn',
                                num_estimates=et.NUM_ESTIMATES)
  n = problem.logits.size
  err = np.abs(r['mean'] - r['exact'])[:n]
  assert np.all(err <= 5 * r['stderr'][:n] + 1e-3), float(r['max_z'])


@pytest.mark.parametrize('kind', et.KINDS)
def test_rloo_variance_falls_with_the_number_of_samples(kind):
  """Statistical: 8 samples give less than half the logits' gradient variance of 2
  (about 1/S for the averaged terms; the leave-one-out baseline also improves
  with S), and both stay unbiased within 5 stderr (+1e-3)."""
  problem = et.problem(kind)
  n = problem.logits.size
  variance = {}
  for s in (2, 8):
    r = diagnostics.bias_variance(jax.random.key(16 + s), problem, 'rloo',
                                  num_estimates=5_000, num_samples=s)
    assert np.all(np.abs(r['mean'] - r['exact']) <= 5 * r['stderr'] + 1e-3), s
    variance[s] = float(np.sum(r['variance'][:n]))
  assert variance[8] < 0.5 * variance[2], variance
