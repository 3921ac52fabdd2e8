"""Tests for experiments/models.py: shapes and parameter counts."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import models


def test_mlp_shapes_and_count():
  mlp = models.MLP((5, 3))
  params = mlp.init(jax.random.key(0), jnp.zeros((2, 4)))
  chex.assert_shape(mlp.apply(params, jnp.zeros((2, 4))), (2, 3))
  assert sum(x.size for x in jax.tree.leaves(params)) == 4 * 5 + 5 + 5 * 3 + 3


def test_vae_encode_decode_shapes():
  model = models.CategoricalVAE(num_latents=4, num_classes=3, encoder_hidden=(8,),
                                  decoder_hidden=(8,), num_pixels=10)
  params = model.init(jax.random.key(0), jnp.zeros((1, 10)))
  logits = model.apply(params, jnp.zeros((2, 10)), method='encode')
  chex.assert_shape(logits, (2, 4, 3))
  chex.assert_shape(model.apply(params, logits, method='decode'), (2, 10))
  chex.assert_trees_all_close(model.apply(params, method='prior'), jnp.zeros((4, 3)))


@pytest.mark.parametrize('tau_init,tau_min', [(1.0, 0.0), (0.7, 0.1)])
def test_learned_temperature_starts_at_tau_init(tau_init, tau_min):
  model = models.CategoricalVAE(num_latents=2, num_classes=2, encoder_hidden=(4,),
                                  decoder_hidden=(4,), num_pixels=3, learned_temperature=True,
                                  tau_init=tau_init, tau_min=tau_min)
  params = model.init(jax.random.key(0), jnp.zeros((1, 3)))
  assert float(model.apply(params, method='temperature')) == pytest.approx(tau_init, rel=1e-6)


def test_learned_prior_is_a_parameter():
  model = models.CategoricalVAE(num_latents=2, num_classes=5, encoder_hidden=(4,),
                                  decoder_hidden=(4,), num_pixels=3, learned_prior=True)
  params = model.init(jax.random.key(0), jnp.zeros((1, 3)))
  chex.assert_shape(params['params']['prior_logits'], (2, 5))


def test_m2_shapes_and_parameter_count():
  """The paper widths: conv 32-64-128 encoders, K=10, z 50, hidden 256, decoder 64-32-16-1."""
  model = models.M2()
  x, y, z = jnp.zeros((2, 3, 784)), jnp.zeros((2, 3, 10)), jnp.zeros((2, 3, 50))
  params = jax.eval_shape(model.init, jax.random.key(0), x, y, z)
  assert sum(l.size for l in jax.tree.leaves(params)) == 1_316_719
  logits, mean, log_std, x_logits = jax.eval_shape(model.apply, params, x, y, z)
  chex.assert_shape([logits, mean, log_std, x_logits], [(2, 3, 10), (2, 3, 50), (2, 3, 50),
                                                        (2, 3, 784)])


def test_init_lecun_normal_matches_flax_shapes_and_fan_in_scale():
  """Statistical: each kernel's std within 5% of 1/sqrt(fan in) (>= 2,400 entries)."""
  model = models.M2(num_classes=10, z_dim=8, encoder_features=(8, 16, 16), hidden=32,
                      decoder_features=(16, 8, 4))
  args = (jnp.zeros((1, 784)), jnp.zeros((1, 10)), jnp.zeros((1, 8)))
  params = jax.jit(lambda k: models.init_lecun_normal(model, k, *args))(jax.random.key(0))
  flax_params = jax.eval_shape(model.init, jax.random.key(0), *args)
  chex.assert_trees_all_equal_shapes_and_dtypes(params, flax_params)
  for path, leaf in jax.tree_util.tree_leaves_with_path(params):
    leaf = np.asarray(leaf)
    if leaf.ndim == 1:
      assert not leaf.any(), path
    elif leaf.size >= 2400:
      assert np.std(leaf) == pytest.approx(1 / math.sqrt(math.prod(leaf.shape[:-1])), rel=0.05)
  other = models.init_lecun_normal(model, jax.random.key(1), *args)
  assert not np.allclose(params['params']['z_out']['kernel'], other['params']['z_out']['kernel'])
