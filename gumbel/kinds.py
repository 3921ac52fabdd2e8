"""The two kinds of discrete layer: Bernoulli units and categorical variables.

What differs between Bernoulli (`[batch, D]` logits) and categorical
(`[batch, D, K]`) layers is implemented once per kind, in `BernoulliOps` and
`CategoricalOps` (sampling, densities, relaxations, conditional noise, KL);
`KIND_OPS[kind]` picks one, and the estimators (`gumbel.estimators`), the
diagnostics and the experiments call its methods.

References:
  [REBAR] Tucker, Mnih, Maddison, Lawson, Sohl-Dickstein. REBAR. NeurIPS
    2017, arXiv:1703.07370.
  [RELAX] Grathwohl, Choi, Wu, Roeder, Duvenaud. Backpropagation through the
    Void. ICLR 2018, arXiv:1711.00123.
"""

import itertools
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gumbel import distributions

Array = jax.Array


class KindOps:
  """The operations of one layer type; `KIND_OPS[kind]` picks one, once.

  Every method takes arrays of the layer's logits' shape (`[batch, D]` for
  Bernoulli units, `[batch, D, K]` for categorical variables, the category
  axis last) and works on all event axes at once; those that sum over the
  event axes return `[batch]`. The methods shared by both kinds are written
  here in terms of the per-kind ones.

  Attributes:
    name: 'bernoulli' or 'categorical', the `kind` string.
    rank: the rank of the logits, batch axis included.
    logits_shape: the logits' shape in words, for messages.
    merge_example: how to merge extra event axes, for messages.
  """
  name: str
  rank: int
  logits_shape: str
  merge_example: str

  def normalize_logits(self, logits: Array) -> Array:
    """Categorical logits as log-probabilities; Bernoulli logits unchanged."""
    raise NotImplementedError

  def log_prob_terms(self, logits: Array, b: Array) -> Array:
    """log q(b) per unit (Bernoulli) or per class (categorical), broadcasting."""
    raise NotImplementedError

  def log_prob(self, logits: Array, b: Array) -> Array:
    """log q(b), summed over the event axes: [batch]."""
    return event_sum(self.log_prob_terms(logits, b))

  def mean(self, logits: Array) -> Array:
    """E[b]: sigmoid(logits) or softmax(logits)."""
    raise NotImplementedError

  def noise(self, u: Array) -> Array:
    """Logistic (Bernoulli) or Gumbel (categorical) noise from uniforms `u`."""
    raise NotImplementedError

  def perturb(self, logits: Array, u: Array) -> Array:
    """z = logits + noise(u): logistic noise (Bernoulli) or Gumbel (categorical).

    `logits` should be normalised (`normalize_logits`). b = H(z) is an exact
    sample of q, and z is the reparameterised variable of [REBAR] eq. 3.
    """
    return logits + self.noise(u)

  def hard(self, z: Array) -> Array:
    """H(z): 1[z > 0] or one_hot(argmax z), without gradient."""
    raise NotImplementedError

  def relaxation(self, z: Array, temperature: Array) -> Array:
    """sigma_lambda(z): sigmoid(z / tau) or softmax(z / tau)."""
    raise NotImplementedError

  def conditional_perturb(self, logits: Array, b: Array, v: Array) -> Array:
    """Draws z~ ~ p(z | H(z) = b), reparameterised by uniforms `v`.

    Gradients flow to `logits` through the conditional sample, as REBAR and
    RELAX need. `logits` must be normalised (`normalize_logits`).

    Args:
      logits: normalised logits.
      b: the hard sample.
      v: uniforms of the shape of `logits`.

    Returns:
      z~ of the shape of `logits`.

    References:
      [REBAR] appendix (conditional Gumbel / logistic reparameterisation);
      [RELAX] appendix B.
    """
    raise NotImplementedError

  def sample(self, key: Array, logits: Array) -> Array:
    """An exact hard sample of q, H(perturb(normalised logits, u)) (no gradient).

    The estimators' draw: `perturb` with the same uniforms gives the z
    behind it.
    """
    logits = jax.lax.stop_gradient(self.normalize_logits(logits))
    return self.hard(self.perturb(logits, uniform(key, logits.shape)))

  def standard_sample(self, key: Array, logits: Array) -> Array:
    """An exact hard sample of q by the standard sampler (no gradient).

    `jax.random.bernoulli(key, sigmoid(logits))` or `gumbel.gumbel_max(key,
    logits)`: other draws than `sample` from the same key (the experiments'
    evaluations draw these).
    """
    raise NotImplementedError

  def relaxed_sample(self, key: Array, logits: Array, temperature,
                     hard: bool = False) -> Array:
    """A Binary Concrete / Concrete sample at `temperature` (`hard`: straight-through)."""
    raise NotImplementedError

  def kl_terms(self, logits_q: Array, logits_p: Array) -> Array:
    """KL(q || p) per variable (`gumbel.bernoulli_kl` / `categorical_kl`), `logits_p`
    broadcasting against `logits_q`."""
    raise NotImplementedError

  def kl(self, logits_q: Array, logits_p: Array) -> Array:
    """KL(q || p) summed over the event axes: [batch]."""
    return event_sum(self.kl_terms(logits_q, logits_p))

  def center(self, logits: Array) -> Array:
    """The centre of the sample space, 1/2 or 1/K, of the shape of `logits` (DARN's b0)."""
    raise NotImplementedError

  def as_categorical(self, logits: Array) -> Array:
    """Categorical logits [..., K] of the same distribution: (l, 0) per Bernoulli unit."""
    raise NotImplementedError

  def from_categorical(self, y: Array) -> Array:
    """The inverse of `as_categorical` for samples."""
    raise NotImplementedError

  def event_shape(self, num_vars: int, num_classes: int) -> tuple[int, ...]:
    """The shape of one example's sample (or logits): (D,) or (D, K)."""
    raise NotImplementedError

  def configurations(self, event_shape: Sequence[int]) -> Array:
    """All samples of one example, `[N, *event_shape]`: 2^D or K^D of them."""
    raise NotImplementedError

  def __repr__(self) -> str:
    return f'KIND_OPS[{self.name!r}]'


def _log1mexp(x: Array) -> Array:
  """log(1 - exp(x)) for x < 0, accurate at both ends (Maechler 2012).

  log1p(-exp(x)) rounds exp(x) to 1 for x within about 3e-8 of 0 (in the
  conditional noise: a unit with logit above about 17 drawing the smallest
  float32 uniform, 2^-23 a draw): -inf there, and NaN gradients after it;
  log(-expm1(x)) is exact there. Each branch's input is
  clamped to its own range so that the branch not taken has a finite
  gradient too.
  """
  cut = -np.log(2.0)
  below_zero = -jnp.finfo(x.dtype).tiny  # x = 0 would give log(0).
  return jnp.where(x > cut, jnp.log(-jnp.expm1(jnp.minimum(x, below_zero))),
                   jnp.log1p(-jnp.exp(jnp.minimum(x, cut))))


class BernoulliOps(KindOps):
  """D independent Bernoulli units: logits `[batch, D]`, samples in {0, 1}."""
  name = 'bernoulli'
  rank = 2
  logits_shape = '[batch, D]'
  merge_example = 'logits.reshape((batch, -1))'

  def normalize_logits(self, logits):
    return logits

  def log_prob_terms(self, logits, b):
    return b * logits - jax.nn.softplus(logits)

  def mean(self, logits):
    return jax.nn.sigmoid(logits)

  def noise(self, u):
    return distributions.logistic_from_uniform(u)

  def hard(self, z):
    z = jax.lax.stop_gradient(z)
    return (z > 0).astype(z.dtype)

  def relaxation(self, z, temperature):
    return jax.nn.sigmoid(z / temperature)

  def conditional_perturb(self, logits, b, v):
    """With theta = sigmoid(logits), u ~ p(u | b) is u~ = 1 - theta (1 - v)
    if b = 1 and u~ = v (1 - theta) if b = 0, and z~ = logits + logit(u~)."""
    log_v, log_1mv = jnp.log(v), jnp.log1p(-v)
    log_theta = jax.nn.log_sigmoid(logits)
    log_1mtheta = jax.nn.log_sigmoid(-logits)
    # b = 1: 1 - u~ = theta (1 - v); b = 0: u~ = (1 - theta) v.
    log_small = jnp.where(b > 0.5, log_theta + log_1mv, log_1mtheta + log_v)
    log_large = _log1mexp(log_small)
    logit_u = jnp.where(b > 0.5, log_large - log_small, log_small - log_large)
    return logits + logit_u

  def standard_sample(self, key, logits):
    """`jax.random.bernoulli(key, sigmoid(logits))`."""
    p = jax.nn.sigmoid(jax.lax.stop_gradient(logits))
    return jax.random.bernoulli(key, p).astype(jnp.float32)

  def relaxed_sample(self, key, logits, temperature, hard=False):
    """`gumbel.relaxed_bernoulli` (Binary Concrete)."""
    return distributions.relaxed_bernoulli(key, logits, temperature, hard=hard)

  def kl_terms(self, logits_q, logits_p):
    return distributions.bernoulli_kl(logits_q, logits_p)

  def center(self, logits):
    return jnp.full(logits.shape, 1.0 / 2, logits.dtype)

  def as_categorical(self, logits):
    """(l, 0): softmax gives (sigmoid(l), sigmoid(-l))."""
    return jnp.stack([logits, jnp.zeros_like(logits)], axis=-1)

  def from_categorical(self, y):
    return y[..., 0]

  def event_shape(self, num_vars, num_classes):
    del num_classes
    return (num_vars,)

  def configurations(self, event_shape):
    (d,) = event_shape
    return jnp.asarray(list(itertools.product([0.0, 1.0], repeat=d)), jnp.float32)


class CategoricalOps(KindOps):
  """D categorical variables of K classes: logits `[batch, D, K]`, one-hot samples."""
  name = 'categorical'
  rank = 3
  logits_shape = '[batch, D, K]'
  merge_example = 'logits.reshape((batch, -1, K))'

  def normalize_logits(self, logits):
    return jax.nn.log_softmax(logits, axis=-1)

  def log_prob_terms(self, logits, b):
    return b * jax.nn.log_softmax(logits, axis=-1)

  def mean(self, logits):
    return jax.nn.softmax(logits, axis=-1)

  def noise(self, u):
    return distributions.gumbel_from_uniform(u)

  def hard(self, z):
    z = jax.lax.stop_gradient(z)
    return jax.nn.one_hot(jnp.argmax(z, axis=-1), z.shape[-1], dtype=z.dtype)

  def relaxation(self, z, temperature):
    return jax.nn.softmax(z / temperature, axis=-1)

  def conditional_perturb(self, logits, b, v):
    """With k the chosen class and E_i = -log v_i: z~_k = -log E_k and
    z~_i = -log(E_i / p_i + E_k) for i != k."""
    log_e = jnp.log(-jnp.log(v))  # log of Exponential(1) noise.
    log_e_k = jnp.sum(b * log_e, axis=-1, keepdims=True)
    z_top = -log_e_k
    z_rest = -jnp.logaddexp(log_e - logits, log_e_k)
    return jnp.where(b > 0.5, z_top, z_rest)

  def standard_sample(self, key, logits):
    """`gumbel.gumbel_max(key, logits)`."""
    return distributions.gumbel_max(key, jax.lax.stop_gradient(logits))

  def relaxed_sample(self, key, logits, temperature, hard=False):
    """`gumbel.gumbel_softmax` (Concrete)."""
    return distributions.gumbel_softmax(key, logits, temperature, hard=hard)

  def kl_terms(self, logits_q, logits_p):
    return distributions.categorical_kl(logits_q, logits_p)

  def center(self, logits):
    return jnp.full(logits.shape, 1.0 / logits.shape[-1], logits.dtype)

  def as_categorical(self, logits):
    return logits

  def from_categorical(self, y):
    return y

  def event_shape(self, num_vars, num_classes):
    return (num_vars, num_classes)

  def configurations(self, event_shape):
    d, k = event_shape
    index = np.asarray(list(itertools.product(range(k), repeat=d)))  # [N, D]
    return jax.nn.one_hot(index, k, dtype=jnp.float32)


KIND_OPS: Mapping[str, KindOps] = {'bernoulli': BernoulliOps(), 'categorical': CategoricalOps()}
KINDS = tuple(KIND_OPS)


def event_sum(x: Array) -> Array:
  """Sums over all axes but the batch axis 0: [batch, ...] -> [batch]."""
  return jnp.sum(x.reshape(x.shape[0], -1), axis=1)


def uniform(key: Array, shape: Sequence[int]) -> Array:
  """float32 uniforms in [tiny, 1 - eps], as `gumbel.sample_gumbel` draws them."""
  return distributions.sample_uniform(key, shape)
