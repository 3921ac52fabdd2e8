"""The same categorical VAE written with distribution objects (the blog's 2017 update).

The blog's 2017 revision draws the latent code from a `RelaxedOneHotCategorical`
distribution object and scores the image with a `Bernoulli` one; here they are
`gumbel.distrax_adapter.RelaxedOneHotCategorical` and distrax's `Bernoulli`, with
the analytic KL of distrax's `Categorical`s. The model, data and training loop are
`categorical_vae.py`'s (this file's neighbour); only the loss differs.

  pip install "gumbel[distrax]"
  python examples/categorical_vae_distrax.py --steps=2000 --out=distrax_vae_samples.png
"""

import distrax
import jax
import jax.numpy as jnp

import categorical_vae  # The neighbouring script: VAE, N, K and the training loop.
from gumbel import distrax_adapter


def neg_elbo(params, key, x, tau, hard=False):
  """Mean -ELBO of the batch x, each term from a distribution object."""
  vae = categorical_vae.VAE()
  logits = vae.apply(params, x, method='encode')                               # [B, N, K]
  q_z = distrax.Independent(distrax_adapter.RelaxedOneHotCategorical(tau, logits=logits), 1)
  z = q_z.sample(seed=key)                                                     # [B, N, K]
  if hard:  # One-hot codes: evaluate the discrete model.
    z = jax.nn.one_hot(jnp.argmax(z, -1), categorical_vae.K)
  p_x = distrax.Independent(distrax.Bernoulli(logits=vae.apply(params, z, method='decode')), 1)
  q_cat = distrax.Independent(distrax.Categorical(logits=logits), 1)
  prior = distrax.Independent(distrax.Categorical(logits=jnp.zeros_like(logits)), 1)
  return jnp.mean(q_cat.kl_divergence(prior) - p_x.log_prob(x))


if __name__ == '__main__':
  categorical_vae.main(neg_elbo, default_out='distrax_vae_samples.png')
