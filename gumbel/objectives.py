"""Objectives for discrete latent variable models: likelihoods, ELBO, IW bounds.

Losses are functions with keyword-only arguments (big_vision style); each
returns per-example values so callers choose how to reduce.
`importance_weighted_bound_chunked` draws the samples of the IWAE bound in
chunks, as the experiments evaluate it.

References:
  [GS] Jang, Gu, Poole. ICLR 2017, section 4.
  [IWAE] Burda, Grosse, Salakhutdinov. Importance Weighted Autoencoders.
    ICLR 2016, arXiv:1509.00519.
"""

import math
from typing import Callable

import jax
import jax.numpy as jnp


def bernoulli_log_likelihood(*, logits: jax.Array, targets: jax.Array,
                             event_ndims: int = 1) -> jax.Array:
  """log p(targets | logits) of independent Bernoullis, summed over events.

  Targets in [0, 1] are allowed (the cross-entropy with grey values).

  Args:
    logits: Bernoulli logits, e.g. [batch, 784].
    targets: values in [0, 1] of the same shape.
    event_ndims: how many trailing axes to sum over.

  Returns:
    The log-likelihood with the trailing `event_ndims` axes reduced.
  """
  logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
  # = t log sigmoid(l) + (1 - t) log sigmoid(-l), in one pass.
  ll = targets * logits - jax.nn.softplus(logits)
  return jnp.sum(ll, axis=tuple(range(-event_ndims, 0)))


def categorical_log_prob(*, sample: jax.Array, logits: jax.Array,
                         axis: int = -1) -> jax.Array:
  """log q(sample) for a one-hot `sample` under Categorical(softmax(logits)).

  Args:
    sample: one-hot (or relaxed) values, [..., K].
    logits: unnormalized log-probabilities, [..., K].
    axis: the category axis.

  Returns:
    sum_k sample_k log softmax(logits)_k, `axis` reduced.
  """
  logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
  return jnp.sum(sample * jax.nn.log_softmax(logits, axis=axis), axis=axis)


def negative_elbo(*, log_likelihood: jax.Array, kl: jax.Array) -> jax.Array:
  """-ELBO = -E_q[log p(x|z)] + KL(q(z|x) || p(z)), per example.

  Args:
    log_likelihood: a (Monte Carlo) estimate of E_q[log p(x|z)], [batch].
    kl: KL(q(z|x) || p(z)) summed over latent variables, [batch].

  Returns:
    The negative ELBO in nats, [batch].

  References:
    Kingma & Welling 2014, eq. 3; [GS] section 4.
  """
  return kl - log_likelihood


def importance_weighted_bound(log_weights: jax.Array, axis: int = 0) -> jax.Array:
  """The IWAE bound log (1/S) sum_s w_s, from log-weights along `axis`.

  log w_s = log p(x, z_s) - log q(z_s | x) with z_s ~ q. With S samples this
  is a lower bound of log p(x) that tightens as S grows; -bound is the
  importance-sampled NLL estimate reported in [GS] Table 1 (m = 1000).

  Args:
    log_weights: [..., S, ...] log importance weights.
    axis: the sample axis.

  Returns:
    The bound, `axis` reduced.

  References:
    [IWAE] eq. 7.
  """
  num_samples = log_weights.shape[axis]
  return jax.nn.logsumexp(log_weights, axis=axis) - math.log(num_samples)


def importance_weighted_bound_chunked(
    key: jax.Array,
    log_weight_fn: Callable[[jax.Array], jax.Array],
    *,
    num_samples: int,
    chunk: int,
) -> jax.Array:
  """The IWAE bound from `num_samples` draws of `log_weight_fn`, `chunk` at a time.

  Splits `key` into one key per sample and evaluates `log_weight_fn` on
  `chunk` keys at once (`jax.vmap`) and on the chunks one after another
  (`jax.lax.map`), so memory grows with `chunk`, not with `num_samples`.

  Args:
    key: a PRNG key, split into `num_samples` keys.
    log_weight_fn: `key -> log w [...]`, e.g. log p(x, z) - log q(z | x)
      with z ~ q drawn from the key, per example.
    num_samples: S, a multiple of `chunk`.
    chunk: the samples evaluated at once, 1 <= chunk (clipped to S).

  Returns:
    The bound log (1/S) sum_s w_s, of the shape of one log-weight.

  References:
    [IWAE] eq. 7.
  """
  chunk = min(chunk, num_samples)
  if chunk < 1 or num_samples % chunk:
    raise ValueError(f'importance_weighted_bound_chunked: num_samples={num_samples} must be a '
                     f'positive multiple of chunk={chunk}.')
  keys = jax.random.split(key, num_samples).reshape(num_samples // chunk, chunk)
  log_w = jax.lax.map(jax.vmap(log_weight_fn), keys)  # [S / chunk, chunk, ...]
  return importance_weighted_bound(log_w.reshape((num_samples,) + log_w.shape[2:]), axis=0)
