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
