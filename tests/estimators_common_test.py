"""Tests for gumbel/estimators/_common.py: the surrogate algebra.

`zero`, `score_term` and `coefficient_term` are zero in value without
computing their inputs, and have the derivatives (first, second and mixed)
of the stop-gradient formulas they replace: `x - stop_gradient(x)`,
`signal * (exp(l - stop_gradient(l)) - 1)` and
`sum(stop_gradient(c) * (x - stop_gradient(x)))`. Exact comparisons
(rtol 1e-5) on small smooth functions.
"""

import jax
import jax.numpy as jnp
import numpy as np

from gumbel.estimators import _common as common

sg = jax.lax.stop_gradient
THETA = jnp.asarray([0.3, -1.2, 0.8])
PHI = jnp.asarray([0.5, 2.0, -0.7])


def _x(theta):  # [batch=3] -> [3, 2], nonlinear in theta.
  return jnp.stack([jnp.sin(theta) * theta, jnp.exp(0.5 * theta)], axis=1)


def _log_prob(theta):  # [3]
  return jnp.tanh(theta) * theta - theta**2


def _signal(phi):  # [3], depends on phi only (as REBAR's signal).
  return jnp.cos(phi) + phi**2


def test_values_are_zero_without_computing_the_inputs():
  nan = jnp.full((3,), jnp.nan)
  np.testing.assert_array_equal(common.zero(nan), 0.0)
  np.testing.assert_array_equal(common.score_term(nan, nan), 0.0)
  np.testing.assert_array_equal(common.coefficient_term(nan[:, None], nan[:, None]), 0.0)
  np.testing.assert_array_equal(common.magic_box(nan), 1.0)
  # The old formulas propagate NaN: their value depends on the inputs.
  assert np.all(np.isnan(nan - sg(nan)))


def test_zero_has_the_derivatives_of_x_minus_stop_gradient_x():
  new = lambda t: jnp.sum(jnp.sin(3.0 * common.zero(_x(t))) + common.zero(_x(t))**2)
  old = lambda t: jnp.sum(jnp.sin(3.0 * (_x(t) - sg(_x(t)))) + (_x(t) - sg(_x(t)))**2)
  np.testing.assert_allclose(jax.grad(new)(THETA), jax.grad(old)(THETA), rtol=1e-5)
  np.testing.assert_allclose(jax.hessian(new)(THETA), jax.hessian(old)(THETA), rtol=1e-5,
                             atol=1e-6)
  assert np.abs(jax.grad(new)(THETA)).sum() > 0


def test_score_term_has_the_derivatives_of_the_magic_box():
  """First and second derivatives in the logits (stopped signal, as the
  score-function estimators use it), and the mixed derivative in the logits
  and the parameters that signal depends on (REBAR/RELAX's variance
  objective)."""
  def new(theta, phi):
    return jnp.sum(common.score_term(_signal(phi), _log_prob(theta)))

  def old(theta, phi):
    return jnp.sum(_signal(phi) * (jnp.exp(_log_prob(theta) - sg(_log_prob(theta))) - 1.0))

  def stopped(fn):
    return lambda theta: fn(theta, sg(PHI))

  np.testing.assert_allclose(jax.grad(new)(THETA, PHI), jax.grad(old)(THETA, PHI), rtol=1e-5)
  np.testing.assert_allclose(jax.hessian(stopped(new))(THETA), jax.hessian(stopped(old))(THETA),
                             rtol=1e-5, atol=1e-6)
  mixed_new = jax.jacobian(jax.grad(new), argnums=1)(THETA, PHI)
  mixed_old = jax.jacobian(jax.grad(old), argnums=1)(THETA, PHI)
  np.testing.assert_allclose(mixed_new, mixed_old, rtol=1e-5, atol=1e-6)
  assert np.abs(mixed_new).sum() > 0
  # The signal's own first derivative is dropped, as with a stopped signal.
  np.testing.assert_array_equal(jax.grad(new, argnums=1)(THETA, PHI), 0.0)


def test_coefficient_term_has_the_derivatives_of_the_stop_gradient_sum():
  coef = lambda phi: jnp.stack([_signal(phi), phi], axis=1)  # [3, 2]

  def new(theta, phi):
    return jnp.sum(jnp.cos(theta) * common.coefficient_term(coef(phi), _x(theta)))

  def old(theta, phi):
    term = common.event_sum(sg(coef(phi)) * (_x(theta) - sg(_x(theta))))
    return jnp.sum(jnp.cos(theta) * term)

  np.testing.assert_allclose(jax.grad(new)(THETA, PHI), jax.grad(old)(THETA, PHI), rtol=1e-5)
  np.testing.assert_allclose(jax.hessian(new)(THETA, PHI), jax.hessian(old)(THETA, PHI),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(jax.grad(new, argnums=1)(THETA, PHI), 0.0)  # coef: no gradient.
  np.testing.assert_array_equal(
      jax.jacobian(jax.grad(new), argnums=1)(THETA, PHI), 0.0)


def test_under_vmap_and_jit():
  """vimco applies score_term to [S, batch]; vmap and jit keep the rules."""
  thetas = jnp.stack([THETA, 2 * THETA])  # [S, 3]
  grad = jax.jit(jax.vmap(jax.grad(
      lambda t: jnp.sum(common.score_term(sg(_signal(PHI)), _log_prob(t))))))(thetas)
  expected = jax.vmap(jax.grad(lambda t: jnp.sum(_signal(PHI) * _log_prob(t))))(thetas)
  np.testing.assert_allclose(grad, expected, rtol=1e-5)
