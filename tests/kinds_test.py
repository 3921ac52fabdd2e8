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
