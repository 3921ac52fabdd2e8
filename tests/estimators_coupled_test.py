"""Tests for gumbel/estimators/coupled.py: arm, arsm and disarm against enumeration.

Statistical tests (fixed keys, 2e4 estimates, tolerances in
`estimator_testing`) compare against exact gradients by enumeration.
Run with
`JAX_NUMPY_RANK_PROMOTION=raise python -m pytest tests/estimators_coupled_test.py`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimator_testing as et
from gumbel import diagnostics
from gumbel.estimators import ESTIMATORS


@pytest.mark.parametrize('name,kind', et.cases(et.COUPLED, et.UNBIASED))
def test_unbiased_against_enumeration(name, kind):
  """Statistical: mean of 2e4 estimates within 5 stderr (+1e-3) of exact."""
  et.assert_unbiased(name, kind)


def test_disarm_rejects_categorical_and_suggests_arm():
  logits = jnp.zeros((2, 3, 4))
  with pytest.raises(ValueError, match=r"disarm.*'bernoulli'.*arm \(ARSM\)"):
    ESTIMATORS['disarm'].apply(jax.random.key(0), logits,
                               lambda z: z.sum((1, 2)), (), kind='categorical')


def test_arsm_rejects_bernoulli():
  with pytest.raises(ValueError, match="arsm.*'categorical'"):
    ESTIMATORS['arsm'].apply(jax.random.key(0), jnp.zeros((2, 3)),
                             lambda z: z.sum(1), (), kind='bernoulli')


def test_arsm_with_two_classes_has_the_mean_of_bernoulli_arm():
  """Statistical: ARSM on logits (l, 0) matches ARM on l (5 stderr + 1e-3).

  Class 0 of the two-class model is the Bernoulli unit's 1, so the gradient
  with respect to l is that with respect to the first categorical logit.
  """
  bern = et.problem('bernoulli')
  logits2 = jnp.stack([bern.logits, jnp.zeros_like(bern.logits)], -1)  # [batch, D, 2]
  cat = bern._replace(kind='categorical', logits=logits2,
                      objective=lambda params, z: bern.objective(params, z[..., 0]))
  # The comparison is between the two means; `exact` only skips enumeration.
  exact = {'logits': jnp.zeros_like(bern.logits), 'params': bern.params}
  arm = diagnostics.bias_variance(jax.random.key(16), bern, 'arm',
                                  num_estimates=et.NUM_ESTIMATES, exact=exact)
  arsm = diagnostics.bias_variance(
      jax.random.key(17), cat, 'arsm', num_estimates=et.NUM_ESTIMATES,
      exact={**exact, 'logits': jnp.zeros_like(logits2)})
  n = bern.logits.size

  def first_class(x):  # Flat [2n + params] -> [n + params]; logits come first.
    return jnp.concatenate([x[:2 * n].reshape(-1, 2)[:, 0], x[2 * n:]])

  se = np.sqrt(arm['stderr']**2 + first_class(arsm['stderr'])**2)
  err = np.abs(arm['mean'] - first_class(arsm['mean']))
  assert np.all(err <= 5 * se + 1e-3)


def test_arsm_value_only_and_gradient_cost():
  """Compiled FLOPs with an f dominated by a 1024 x 1024 matmul, for K = 4
  (P = 7 joint configurations). Value only: one evaluation of f (10%), not
  P. Gradient: P - 1 value-only pseudo evaluations plus one differentiated
  evaluation (10% of f), not P differentiated ones."""
  logits = jax.random.normal(jax.random.key(22), (8, 4, 4))
  params = et.matmul_params(16)
  p = 4 * 3 // 2 + 1
  f = lambda params, z: et.matmul_objective(params, z)
  one = et.flops(f, params, jnp.zeros(logits.shape))
  one_grad = et.flops(jax.grad(lambda params, z: jnp.sum(f(params, z))), params,
                      jnp.zeros(logits.shape))

  def value(logits, params):
    return ESTIMATORS['arsm'].apply(jax.random.key(1), logits, lambda z: f(params, z), (),
                                    kind='categorical')[0]

  ratio = et.flops(value, logits, params) / one
  assert 0.99 < ratio < 1.1, ratio
  grad = jax.grad(lambda logits, params: jnp.sum(value(logits, params)), argnums=(0, 1))
  cost = et.flops(grad, logits, params)
  assert cost < (p - 1) * one + one_grad + 0.1 * one, (cost / one, one_grad / one)


def test_arsm_nested_in_arsm_value_costs_one_inner_evaluation():
  """A two-layer categorical model: the outer layer's f draws the inner layer
  with arsm (a fixed key) on logits computed from the outer sample. The
  outer call's value needs the inner f once (10%), not P x P = 49 times."""
  logits = jax.random.normal(jax.random.key(23), (8, 4, 4))
  params = et.matmul_params(16)
  w = jax.random.normal(jax.random.key(24), (16, 16))
  arsm = ESTIMATORS['arsm']

  def value(logits, params):
    def outer_f(z1):
      inner_logits = (z1.reshape(8, 16) @ w).reshape(8, 4, 4)
      return arsm.apply(jax.random.key(2), inner_logits,
                        lambda z2: et.matmul_objective(params, z2), (), kind='categorical')[0]
    return arsm.apply(jax.random.key(1), logits, outer_f, (), kind='categorical')[0]

  one = et.flops(et.matmul_objective, params, jnp.zeros(logits.shape))
  ratio = et.flops(value, logits, params) / one
  assert 0.99 < ratio < 1.1, ratio
