"""Tests for gumbel/networks.py: shapes and parameter counts."""

import chex
import jax
import jax.numpy as jnp
import pytest

from gumbel import networks


def test_mlp_shapes_and_count():
  mlp = networks.MLP((5, 3))
  params = mlp.init(jax.random.key(0), jnp.zeros((2, 4)))
  chex.assert_shape(mlp.apply(params, jnp.zeros((2, 4))), (2, 3))
  assert sum(x.size for x in jax.tree.leaves(params)) == 4 * 5 + 5 + 5 * 3 + 3


def test_vae_encode_decode_shapes():
  model = networks.CategoricalVAE(num_latents=4, num_classes=3, encoder_hidden=(8,),
                                  decoder_hidden=(8,), num_pixels=10)
  params = model.init(jax.random.key(0), jnp.zeros((1, 10)))
  logits = model.apply(params, jnp.zeros((2, 10)), method='encode')
  chex.assert_shape(logits, (2, 4, 3))
  chex.assert_shape(model.apply(params, logits, method='decode'), (2, 10))
  chex.assert_trees_all_close(model.apply(params, method='prior'), jnp.zeros((4, 3)))


@pytest.mark.parametrize('tau_init,tau_min', [(1.0, 0.0), (0.7, 0.1)])
def test_learned_temperature_starts_at_tau_init(tau_init, tau_min):
  model = networks.CategoricalVAE(num_latents=2, num_classes=2, encoder_hidden=(4,),
                                  decoder_hidden=(4,), num_pixels=3, learned_temperature=True,
                                  tau_init=tau_init, tau_min=tau_min)
  params = model.init(jax.random.key(0), jnp.zeros((1, 3)))
  assert float(model.apply(params, method='temperature')) == pytest.approx(tau_init, rel=1e-6)


def test_learned_prior_is_a_parameter():
  model = networks.CategoricalVAE(num_latents=2, num_classes=5, encoder_hidden=(4,),
                                  decoder_hidden=(4,), num_pixels=3, learned_prior=True)
  params = model.init(jax.random.key(0), jnp.zeros((1, 3)))
  chex.assert_shape(params['params']['prior_logits'], (2, 5))
