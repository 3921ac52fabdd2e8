"""Tests for gumbel/estimators/_common.py: the surrogate algebra and the kinds.

`zero`, `score_term` and `coefficient_term` are zero in value without
computing their inputs, and have the derivatives (first, second and mixed)
of the stop-gradient formulas they replace: `x - stop_gradient(x)`,
`signal * (exp(l - stop_gradient(l)) - 1)` and
`sum(stop_gradient(c) * (x - stop_gradient(x)))`. Exact comparisons
(rtol 1e-5) on small smooth functions. The per-kind operations
(`KIND_OPS`) and the shared uniforms against direct formulas.
"""

import jax
import jax.numpy as jnp
import numpy as np

import gumbel
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


def test_uniform_draws_the_bits_of_jax_random_uniform():
  """Exact: drawn flat and reshaped (`gumbel.distributions`' sampler), the
  uniforms are those of `jax.random.uniform` at the shape, so every
  estimator's noise is what it was before they shared the sampler."""
  finfo = jnp.finfo(jnp.float32)
  for i, shape in enumerate([(2, 3), (4, 20, 10), (7, 1, 5)]):
    key = jax.random.key(i)
    expected = jax.random.uniform(key, shape, jnp.float32, finfo.tiny, 1.0 - finfo.eps)
    np.testing.assert_array_equal(common.uniform(key, shape), expected)
    np.testing.assert_array_equal(jax.jit(lambda k, s=shape: common.uniform(k, s))(key), expected)


def test_kind_ops_cover_the_kinds():
  assert tuple(common.KIND_OPS) == common.KINDS == ('bernoulli', 'categorical')
  for kind, ops in common.KIND_OPS.items():
    assert ops.name == kind
    assert repr(ops) == f'KIND_OPS[{kind!r}]'


def test_samples_log_probs_and_kl_against_direct_formulas():
  """Exact (rtol 1e-6): each kind's sample is H(logits + noise(u)) of the
  shared uniforms, and its log-probabilities and KL are the library's."""
  key = jax.random.key(4)
  for kind, shape in (('bernoulli', (3, 5)), ('categorical', (3, 5, 4))):
    ops = common.KIND_OPS[kind]
    logits = jax.random.normal(jax.random.key(5), shape)
    prior = jax.random.normal(jax.random.key(6), shape[1:])
    b = ops.sample(key, logits)
    u = common.uniform(key, shape)
    if kind == 'bernoulli':
      np.testing.assert_array_equal(b, (u > jax.nn.sigmoid(-logits)).astype(jnp.float32))
      log_q = jnp.sum(b * jax.nn.log_sigmoid(logits) + (1 - b) * jax.nn.log_sigmoid(-logits), 1)
      kl = jnp.sum(gumbel.bernoulli_kl(logits, prior[None]), 1)
    else:
      np.testing.assert_array_equal(b, gumbel.gumbel_max(key, jax.nn.log_softmax(logits)))
      log_q = jnp.sum(b * jax.nn.log_softmax(logits), (1, 2))
      kl = jnp.sum(gumbel.categorical_kl(logits, prior[None]), 1)
    np.testing.assert_allclose(ops.log_prob(logits, b), log_q, rtol=1e-6)
    np.testing.assert_allclose(ops.kl(logits, prior), kl, rtol=1e-6)
    assert ops.standard_sample(key, logits).shape == shape
    configs = ops.configurations(shape[1:])
    assert configs.shape[1:] == shape[1:]
    np.testing.assert_allclose(
        jnp.sum(jnp.exp(jax.vmap(lambda c: ops.log_prob(logits, jnp.broadcast_to(c, shape)))(
            configs)), 0), 1.0, rtol=1e-5)
