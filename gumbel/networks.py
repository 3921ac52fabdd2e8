"""Small flax.linen networks; modules hold parameters and shapes only."""

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLP(nn.Module):
  """A Dense stack with an activation between layers (none after the last)."""
  features: Sequence[int]
  activation: str = 'relu'

  @nn.compact
  def __call__(self, x):
    act = getattr(jax.nn, self.activation)
    for i, f in enumerate(self.features):
      x = nn.Dense(f, name=f'dense_{i}')(x)
      if i < len(self.features) - 1:
        x = act(x)
    return x


class CategoricalVAE(nn.Module):
  """The categorical VAE of the Gumbel-Softmax blog post.

  Encoder 784-512-256-(N*K) gives the logits of N categorical variables of K
  classes; the decoder (N*K)-256-512-784 gives Bernoulli pixel logits.
  Optionally holds learned prior logits [N, K] and a learned temperature.

  Attributes:
    num_latents: N, the number of categorical variables.
    num_classes: K, the classes per variable.
    encoder_hidden: hidden widths of the encoder.
    decoder_hidden: hidden widths of the decoder.
    num_pixels: the data dimension.
    learned_prior: hold learned prior logits (else the prior is uniform).
    learned_temperature: hold a learned temperature parameter.
    tau_init: the initial learned temperature.
    tau_min: the learned temperature is tau_min + softplus(raw).
  """
  num_latents: int = 30
  num_classes: int = 10
  encoder_hidden: Sequence[int] = (512, 256)
  decoder_hidden: Sequence[int] = (256, 512)
  num_pixels: int = 784
  activation: str = 'relu'
  learned_prior: bool = False
  learned_temperature: bool = False
  tau_init: float = 1.0
  tau_min: float = 0.0

  def setup(self):
    self.encoder = MLP((*self.encoder_hidden, self.num_latents * self.num_classes),
                       self.activation)
    self.decoder = MLP((*self.decoder_hidden, self.num_pixels), self.activation)
    if self.learned_prior:
      self.prior_logits = self.param(
          'prior_logits', nn.initializers.zeros, (self.num_latents, self.num_classes))
    if self.learned_temperature:
      # softplus^-1(tau_init - tau_min), so the initial temperature is tau_init.
      raw = math.log(math.expm1(self.tau_init - self.tau_min))
      self.raw_temperature = self.param(
          'raw_temperature', nn.initializers.constant(raw), ())

  def encode(self, x):
    """x [B, D] -> logits [B, N, K]."""
    h = self.encoder(x)
    return h.reshape(*x.shape[:-1], self.num_latents, self.num_classes)

  def decode(self, z):
    """z [..., N, K] -> pixel logits [..., D]."""
    return self.decoder(z.reshape(*z.shape[:-2], self.num_latents * self.num_classes))

  def prior(self):
    """The prior logits [N, K] (zeros, i.e. uniform, unless learned)."""
    if self.learned_prior:
      return self.prior_logits
    return jnp.zeros((self.num_latents, self.num_classes))

  def temperature(self):
    """The learned temperature (only with learned_temperature=True)."""
    return self.tau_min + jax.nn.softplus(self.raw_temperature)

  def __call__(self, x):
    logits = self.encode(x)
    return logits, self.decode(jax.nn.softmax(logits, axis=-1))
