"""The experiments' flax.linen networks; modules hold parameters and shapes only."""

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


class ConvTrunk(nn.Module):
  """Strided 5x5 convolutions with ReLU on 28x28 images, flattened: [..., 784] -> [..., F].

  Each layer halves the resolution (28 -> 14 -> 7 -> 4 with three layers).
  """
  features: Sequence[int] = (32, 64, 128)
  image_size: int = 28

  @nn.compact
  def __call__(self, x):
    batch_shape = x.shape[:-1]
    h = x.reshape(-1, self.image_size, self.image_size, 1)  # [N, 28, 28, 1]
    for i, f in enumerate(self.features):
      h = nn.relu(nn.Conv(f, (5, 5), strides=2, padding='SAME', name=f'conv_{i}')(h))
    return h.reshape(*batch_shape, -1)  # [..., H * W * C]


class ConvDecoder(nn.Module):
  """Transposed convolutions from a code to 28x28 Bernoulli logits: [..., C] -> [..., 784].

  Layer 1 maps the 1x1 code to 7x7 (a 7x7 VALID transposed convolution, i.e. a
  Dense layer to a 7x7 map), layers 2 and 3 (4x4, stride 2) double the
  resolution and layer 4 (3x3, stride 1) gives one logit per pixel; ReLU
  between layers.
  """
  features: Sequence[int] = (64, 32, 16)

  @nn.compact
  def __call__(self, code):
    batch_shape = code.shape[:-1]
    h = code.reshape(-1, 1, 1, code.shape[-1])  # [N, 1, 1, C]
    h = nn.relu(nn.ConvTranspose(self.features[0], (7, 7), padding='VALID', name='deconv_0')(h))
    for i, f in enumerate(self.features[1:], 1):  # [N, 7, 7, .] -> [N, 28, 28, .]
      h = nn.relu(nn.ConvTranspose(f, (4, 4), strides=(2, 2), padding='SAME',
                                   name=f'deconv_{i}')(h))
    h = nn.ConvTranspose(1, (3, 3), padding='SAME', name=f'deconv_{len(self.features)}')(h)
    return h.reshape(*batch_shape, -1)  # [..., 784]


def init_lecun_normal(module: nn.Module, key: jax.Array, *args, **kwargs):
  """Parameters of `module.init(key, *args, **kwargs)`'s shapes from one normal draw.

  Kernels (rank >= 2) are LeCun normal, std 1/sqrt(fan in) with fan in the
  product of all but the last axis (Dense [in, out]; Conv and ConvTranspose
  [h, w, in, out]), as flax's default `lecun_normal` but without its
  truncation; vectors (biases) are zeros, as flax's default. One random op
  instead of one per parameter: flax's per-parameter initializers compile a
  threefry program each, ~8 s for M2 on a 2-core CPU, paid by every compiled
  group of a sweep.

  Args:
    module: a linen module.
    key: a PRNG key.
    *args: example inputs, as for `module.init`.
    **kwargs: keyword inputs, as for `module.init`.

  Returns:
    A parameter pytree shaped as `module.init` would return it.
  """
  shapes = jax.eval_shape(module.init, jax.random.key(0), *args, **kwargs)
  leaves, treedef = jax.tree.flatten(shapes)
  kernels = [l for l in leaves if l.ndim >= 2]
  flat = jax.random.normal(key, (sum(l.size for l in kernels),))
  out, offset = [], 0
  for leaf in leaves:
    if leaf.ndim < 2:
      out.append(jnp.zeros(leaf.shape, leaf.dtype))
      continue
    fan_in = math.prod(leaf.shape[:-1])
    value = flat[offset:offset + leaf.size].reshape(leaf.shape) / math.sqrt(fan_in)
    out.append(value.astype(leaf.dtype))
    offset += leaf.size
  return jax.tree.unflatten(treedef, out)


class M2(nn.Module):
  """The semi-supervised M2 model (Kingma et al. 2014) with the nets of [GS] 4.3.

  q(y|x): a 3-layer conv net with ReLU and a linear output to K logits.
  q(z|x,y): its own 3-layer conv net on x (the trunk), then y enters:
    relu(W_h trunk(x) + W_y y + b) -> Dense -> (mean, log_std) of a Gaussian z.
    `encode_x` is the y-independent part, computed once per example;
    `encode_z` is the y-dependent part, repeated per class when summing over y.
  p(x|y,z): a 4-layer transposed-conv net on [y, z] to Bernoulli pixel logits.

  Attributes:
    num_classes: K.
    z_dim: dimension of the Gaussian latent z.
    encoder_features: channels of the three conv layers of each encoder.
    hidden: width of the y-dependent hidden layer of q(z|x,y).
    decoder_features: channels of the first three transposed-conv layers.

  References:
    Kingma, Rezende, Mohamed, Welling. Semi-supervised learning with deep
    generative models. NeurIPS 2014 (M2). [GS] section 4.3 and Table 2.
  """
  num_classes: int = 10
  z_dim: int = 50
  encoder_features: Sequence[int] = (32, 64, 128)
  hidden: int = 256
  decoder_features: Sequence[int] = (64, 32, 16)

  def setup(self):
    self.classifier_trunk = ConvTrunk(tuple(self.encoder_features))
    self.classifier_out = nn.Dense(self.num_classes)
    self.z_trunk = ConvTrunk(tuple(self.encoder_features))
    self.z_from_x = nn.Dense(self.hidden)
    self.z_from_y = nn.Dense(self.hidden, use_bias=False)
    self.z_out = nn.Dense(2 * self.z_dim)
    self.decoder = ConvDecoder(tuple(self.decoder_features))

  def classify(self, x):
    """x [..., 784] -> logits of q(y|x) [..., K]."""
    return self.classifier_out(self.classifier_trunk(x))

  def encode_x(self, x):
    """x [..., 784] -> the y-independent part of q(z|x,y) [..., hidden]."""
    return self.z_from_x(self.z_trunk(x))

  def encode_z(self, h, y):
    """h [..., hidden] (from encode_x), y [..., K] -> (mean, log_std) [..., z_dim] each."""
    out = self.z_out(nn.relu(h + self.z_from_y(y)))
    return out[..., :self.z_dim], out[..., self.z_dim:]

  def decode(self, y, z):
    """y [..., K], z [..., z_dim] -> Bernoulli pixel logits [..., 784]."""
    return self.decoder(jnp.concatenate([y, z], axis=-1))

  def __call__(self, x, y, z):
    mean, log_std = self.encode_z(self.encode_x(x), y)
    return self.classify(x), mean, log_std, self.decode(y, z)
