"""Tests for gumbel/estimators/control_variates.py: rebar and relax against enumeration and finite differences.

Statistical tests (fixed keys, 2e4 estimates, tolerances in
`estimator_testing`) compare against exact gradients by enumeration.
Run with
`JAX_NUMPY_RANK_PROMOTION=raise python -m pytest tests/estimators_control_variates_test.py`.
"""

import functools

import jax
import numpy as np
import pytest

import estimator_testing as et
from gumbel import diagnostics
from gumbel.estimators import ESTIMATORS


@pytest.mark.parametrize('name,kind', et.cases(et.CONTROL_VARIATES, et.UNBIASED))
def test_unbiased_against_enumeration(name, kind):
  """Statistical: mean of 2e4 estimates within 5 stderr (+1e-3) of exact."""
  et.assert_unbiased(name, kind)


@pytest.mark.parametrize('name', ['rebar', 'relax'])
def test_control_variate_gradient_matches_finite_differences(name):
  """aux['cv_grads'] is d(variance objective)/d(eta, log tau) (rtol 2e-2)."""
  problem = et.problem('categorical')
  estimator = ESTIMATORS[name]
  state = et.perturbed_state(name, problem) if name == 'rebar' else estimator.init(
      jax.random.key(0), problem.logits, kind='categorical')
  key = jax.random.key(11)
  f = problem.f()

  @functools.partial(jax.jit, compiler_options=diagnostics.FAST_COMPILE)
  def objective(params):
    _, aux, _ = estimator.apply(key, problem.logits, f, {**state, 'params': params},
                                kind='categorical')
    return aux['variance_objective']

  _, aux, new_state = jax.jit(
      lambda s: estimator.apply(key, problem.logits, f, s, kind='categorical'),
      compiler_options=diagnostics.FAST_COMPILE)(state)
  for leaf in ('eta', 'log_temperature'):
    h = 1e-2
    plus = {**state['params'], leaf: state['params'][leaf] + h}
    minus = {**state['params'], leaf: state['params'][leaf] - h}
    fd = (objective(plus) - objective(minus)) / (2 * h)
    np.testing.assert_allclose(aux['cv_grads'][leaf], fd, rtol=2e-2, atol=1e-3)
    assert new_state['params'][leaf] != state['params'][leaf]
