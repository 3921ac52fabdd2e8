"""NaN logits give NaN out: the value and the gradient of every registered estimator.

Parametrized over `gumbel.ESTIMATORS`, so an estimator added to the registry
is covered without editing this file.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimator_testing as et
from gumbel import diagnostics
from gumbel.estimators import ESTIMATORS


@pytest.mark.parametrize('name,kind', et.cases(ESTIMATORS))
def test_a_nan_logit_gives_a_nan_value_and_gradient(name, kind):
  """Example 0 has one NaN logit: its surrogate and its logits' gradient are NaN.

  Some estimators would map it to finite numbers (arm and arsm's coupled
  samples never pick the NaN class; reinmax, rebar and sf gave a finite
  value); the registry's `apply` makes both NaN.
  """
  problem = et.problem(kind)
  estimator = ESTIMATORS[name]
  logits = problem.logits.at[(0,) + (0,) * (problem.logits.ndim - 1)].set(jnp.nan)
  state = estimator.init(jax.random.key(0), problem.logits, kind=kind)

  def loss(logits):
    s, _, _ = estimator.apply(jax.random.key(1), logits, problem.f(problem.params), state,
                              kind=kind, **et.HPARAMS.get(name, {}))
    return jnp.sum(s), s

  grad = jax.jit(jax.grad(loss, has_aux=True), compiler_options=diagnostics.FAST_COMPILE)
  (grads, s), (clean_grads, clean) = grad(logits), grad(problem.logits)
  assert np.isnan(s[0]) and np.isnan(grads[0]).all(), (s, grads[0])
  # The NaN comes from the NaN logit, not from the problem.
  assert np.isfinite(clean).all() and np.isfinite(clean_grads).all()
