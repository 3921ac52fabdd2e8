"""Tests for gumbel/kinds.py: the per-kind operations and the shared uniforms.

Against direct formulas and the library's densities (exact, or rtol 1e-6).
"""

import jax
import jax.numpy as jnp
import numpy as np

import gumbel
from gumbel import kinds


def test_uniform_draws_the_bits_of_jax_random_uniform():
  """Exact: drawn flat and reshaped (`gumbel.distributions`' sampler), the
  uniforms are those of `jax.random.uniform` at the shape, so every
  estimator's noise is what it was before they shared the sampler."""
  finfo = jnp.finfo(jnp.float32)
  for i, shape in enumerate([(2, 3), (4, 20, 10), (7, 1, 5)]):
    key = jax.random.key(i)
    expected = jax.random.uniform(key, shape, jnp.float32, finfo.tiny, 1.0 - finfo.eps)
    np.testing.assert_array_equal(kinds.uniform(key, shape), expected)
    np.testing.assert_array_equal(jax.jit(lambda k, s=shape: kinds.uniform(k, s))(key), expected)


def test_kind_ops_cover_the_kinds():
  assert tuple(kinds.KIND_OPS) == kinds.KINDS == ('bernoulli', 'categorical')
  for kind, ops in kinds.KIND_OPS.items():
    assert ops.name == kind
    assert repr(ops) == f'KIND_OPS[{kind!r}]'


def test_samples_log_probs_and_kl_against_direct_formulas():
  """Exact (rtol 1e-6): each kind's sample is H(logits + noise(u)) of the
  shared uniforms, and its log-probabilities and KL are the library's."""
  key = jax.random.key(4)
  for kind, shape in (('bernoulli', (3, 5)), ('categorical', (3, 5, 4))):
    ops = kinds.KIND_OPS[kind]
    logits = jax.random.normal(jax.random.key(5), shape)
    prior = jax.random.normal(jax.random.key(6), shape[1:])
    b = ops.sample(key, logits)
    u = kinds.uniform(key, shape)
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


def _conditional_reference(logits, b, v):
  """z~ of `BernoulliOps.conditional_perturb` in float64:
  u~ = 1 - theta (1 - v) (b = 1) or v (1 - theta) (b = 0), z~ = logits + logit(u~)."""
  logits, b, v = (np.asarray(a, np.float64) for a in (logits, b, v))
  log_theta = -np.logaddexp(0.0, -logits)
  log_1mtheta = -np.logaddexp(0.0, logits)
  log_small = np.where(b > 0.5, log_theta + np.log1p(-v), log_1mtheta + np.log(v))
  log_large = np.log(-np.expm1(log_small))
  return logits + np.where(b > 0.5, log_large - log_small, log_small - log_large)


def test_bernoulli_conditional_noise_is_accurate_and_finite_for_confident_units():
  """Against float64: a confident unit (logit above about 17) and the smallest
  uniform used to round 1 - theta (1 - v) to 0 (z~ = -inf, NaN
  gradients: REBAR's VAE (Bern.) run at lr 3e-3 diverged so). z~ must keep
  the sample's side (z~ > 0 iff b = 1) and match float64 to float32's
  resolution at the logit (4 eps max(1, |logit|), rtol 1e-5), and d z~ / d logit
  must be finite."""
  finfo = np.finfo(np.float32)
  logits = np.array([0.3, 5.0, 17.0, 20.0, 30.0, 87.0, 1e4], np.float32)
  vs = np.array([finfo.tiny, 1e-9, 5e-8, 0.3, 1 - 2.0**-24, 1 - finfo.eps], np.float32)
  ops = kinds.KIND_OPS['bernoulli']
  for sign in (1.0, -1.0):
    for b in (0.0, 1.0):
      l, v = (a.ravel() for a in np.meshgrid(sign * logits, vs))
      bb = np.full_like(l, b)
      z = np.asarray(ops.conditional_perturb(jnp.asarray(l), jnp.asarray(bb), jnp.asarray(v)))
      ref = _conditional_reference(l, bb, v)
      assert np.isfinite(z).all(), (sign, b, l[~np.isfinite(z)], v[~np.isfinite(z)])
      resolution = 4 * finfo.eps * np.maximum(1, np.abs(l))  # float32 at the logit.
      bad = np.abs(z - ref) > 1e-5 * np.abs(ref) + resolution
      assert not bad.any(), (sign, b, l[bad], v[bad], z[bad], ref[bad])
      clear = np.abs(ref) > resolution
      assert ((z[clear] > 0) == (b > 0.5)).all(), (sign, b)
      grad = jax.vmap(jax.grad(ops.conditional_perturb))(
          jnp.asarray(l), jnp.asarray(bb), jnp.asarray(v))
      assert np.isfinite(np.asarray(grad)).all(), (sign, b)
      # Through a relaxation at a small temperature too (REBAR's control variate).
      relaxed = jax.vmap(jax.grad(
          lambda a, b_, v_: ops.relaxation(ops.conditional_perturb(a, b_, v_), 0.1)))(
              jnp.asarray(l), jnp.asarray(bb), jnp.asarray(v))
      assert np.isfinite(np.asarray(relaxed)).all(), (sign, b)
