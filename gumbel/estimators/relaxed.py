"""Straight-through and relaxation estimators: st, annealed_st, gumbel_softmax,
st_gumbel_softmax, gumbel_rao, reinmax.

All differentiate `f` on a relaxed or straight-through input, so `f` must be
differentiable on relaxed inputs; all are biased for E[f(b)]. The signature
and the registry are in `gumbel.estimators`.

References:
  [ST] Bengio, Leonard, Courville. Estimating or Propagating Gradients
    Through Stochastic Neurons for Conditional Computation.
    arXiv:1308.3432, 2013.
  [SLOPE] Chung, Ahn, Bengio. Hierarchical Multiscale Recurrent Neural
    Networks. ICLR 2017, arXiv:1609.01704 (slope annealing).
  [GS] Jang, Gu, Poole. ICLR 2017, arXiv:1611.01144.
  [CON] Maddison, Mnih, Teh. ICLR 2017, arXiv:1611.00712.
  [GR] Paulus, Maddison, Krause. Rao-Blackwellizing the Straight-Through
    Gumbel-Softmax Gradient Estimator. ICLR 2021, arXiv:2010.04838.
  [REINMAX] Liu, Cheng, Wu, Zhu, Gao. Bridging Discrete and Backpropagation:
    Straight-Through and Beyond. NeurIPS 2023, arXiv:2304.08612.
"""

import jax
import jax.numpy as jnp

from gumbel import distributions
from gumbel.estimators import _common as common


def st(key, logits, f, state, *, kind):
  """Straight-through: forward an exact sample, backward through E[b].

  b = straight_through(hard, sigmoid(logits)) (softmax for categorical), i.e.
  db/dp = 1. Exact for f linear in b, biased otherwise.

  Args:
    key: a PRNG key.
    logits: `[batch, D]` or `[batch, D, K]` logits.
    f: the per-example objective, differentiable.
    state: `()`.
    kind: 'bernoulli' or 'categorical'.

  Returns:
    (surrogate f(b) [batch], {}, state).

  References:
    [ST] section 4; [GS] section 3.1.
  """
  return annealed_st(key, logits, f, state, kind=kind, slope=1.0)


def annealed_st(key, logits, f, state, *, kind, slope=1.0):
  """Slope-annealed straight-through: the slope inside the unit.

  The unit of [SLOPE] section 3 is a sigmoid of slope a, sampled and
  differentiated straight through: b ~ q(a * logits), forward b, backward
  the gradient of the mean sigmoid(a * logits) (softmax(a * logits) for a
  categorical variable, as [GS] section 3.2 describes it: "uses a softmax
  instead of a hard sigmoid"). The training loop anneals `slope` upward from
  1 (slope = 1 is `st`). Since the slope is part of the unit, the model's
  distribution is q(a * logits): a caller's KL, log-probabilities and
  evaluation use `slope * logits` (the surrogate estimates E over
  q(slope * logits) of f, not over q(logits)).

  Args:
    key: a PRNG key.
    logits: `[batch, D]` or `[batch, D, K]` logits (before the slope).
    f: the per-example objective, differentiable.
    state: `()`.
    kind: 'bernoulli' or 'categorical'.
    slope: the slope a of the unit, > 0.

  Returns:
    (surrogate f(b) [batch], {}, state).

  References:
    [SLOPE] section 3 (the slope annealing trick; section 4.1's schedule
    a = min(5, 1 + 0.04 N_epoch)); [GS] section 3.2 and section 4.
  """
  common.check_logits('annealed_st', logits, kind)
  ops = common.KIND_OPS[kind]
  logits = slope * logits
  b = ops.sample(key, logits)
  return f(distributions.straight_through(b, ops.mean(logits))), {}, state


def gumbel_softmax(key, logits, f, state, *, kind, temperature=1.0):
  """Gumbel-Softmax / Concrete: f evaluated at the relaxed sample.

  Uses `distributions.gumbel_softmax` (categorical) or
  `distributions.relaxed_bernoulli`. The value is the *relaxed* objective
  f(y); the gradient is unbiased for it and biased for E[f(b)], the bias
  vanishing as temperature -> 0 (with growing variance).

  Args:
    key: a PRNG key.
    logits: `[batch, D]` or `[batch, D, K]` logits.
    f: the per-example objective, defined on relaxed samples.
    state: `()`.
    kind: 'bernoulli' or 'categorical'.
    temperature: tau > 0 (scalar or broadcasting against the batch shape).

  Returns:
    (surrogate f(y) [batch], {}, state).

  References:
    [GS] eq. 2; [CON] definition 2 and eq. 21.
  """
  common.check_logits('gumbel_softmax', logits, kind)
  y = common.KIND_OPS[kind].relaxed_sample(key, logits, temperature)
  return f(y), {}, state


def st_gumbel_softmax(key, logits, f, state, *, kind, temperature=1.0):
  """Straight-through Gumbel-Softmax: forward one-hot, backward the relaxation.

  Args:
    key: a PRNG key.
    logits: `[batch, D]` or `[batch, D, K]` logits.
    f: the per-example objective, differentiable.
    state: `()`.
    kind: 'bernoulli' or 'categorical'.
    temperature: tau > 0.

  Returns:
    (surrogate f(b) [batch], {}, state).

  References:
    [GS] section 2.2.
  """
  common.check_logits('st_gumbel_softmax', logits, kind)
  y = common.KIND_OPS[kind].relaxed_sample(key, logits, temperature, hard=True)
  return f(y), {}, state


def gumbel_rao(key, logits, f, state, *, kind, temperature=1.0,
               num_conditional=10):
  """Gumbel-Rao: ST Gumbel-Softmax Rao-Blackwellised over conditional noise.

  Forward an exact sample b = H(logits + g); backward the Jacobian of the
  relaxation averaged over `num_conditional` draws of g ~ p(g | b):
  f(straight_through(b, mean_k sigma_tau(logits + stop_gradient(g_k)))).
  Its mean equals that of `st_gumbel_softmax` (same bias), with lower
  variance.

  Args:
    key: a PRNG key.
    logits: `[batch, D]` or `[batch, D, K]` logits.
    f: the per-example objective, differentiable.
    state: `()`.
    kind: 'bernoulli' or 'categorical'.
    temperature: tau > 0.
    num_conditional: the number of conditional samples (MC in GR-MCk).

  Returns:
    (surrogate f(b) [batch], {}, state).

  References:
    [GR] section 3, eq. 7 and algorithm 1.
  """
  common.check_logits('gumbel_rao', logits, kind)
  ops = common.KIND_OPS[kind]
  key_b, key_c = jax.random.split(key)
  logits_n = ops.normalize_logits(logits)
  logits_sg = jax.lax.stop_gradient(logits_n)
  b = ops.hard(ops.perturb(logits_sg, common.uniform(key_b, logits.shape)))

  def soft(k):
    z = ops.conditional_perturb(logits_sg, b, common.uniform(k, logits.shape))
    noise = jax.lax.stop_gradient(z - logits_sg)
    return ops.relaxation(logits_n + noise, temperature)

  y_soft = jnp.mean(jax.vmap(soft)(jax.random.split(key_c, num_conditional)), axis=0)
  return f(distributions.straight_through(b, y_soft)), {}, state


def reinmax(key, logits, f, state, *, kind, temperature=1.0):
  """ReinMax: a second-order (Heun's method) straight-through estimator.

  Forward an exact sample D ~ softmax(logits); backward
  2 J(pi_1)^T g - J(pi_0)^T g / 2, with pi_0 = softmax(logits),
  pi_1 = (D + softmax(logits / tau)) / 2, J(p) = diag(p) - p p^T and
  g = df/dD. Bernoulli units are 2-class categoricals with logits (l, 0).

  Args:
    key: a PRNG key.
    logits: `[batch, D]` or `[batch, D, K]` logits.
    f: the per-example objective, differentiable.
    state: `()`.
    kind: 'bernoulli' or 'categorical'.
    temperature: tau > 0 in pi_1 (the paper tunes it in [1, 1.5]).

  Returns:
    (surrogate f(D) [batch], {}, state).

  References:
    [REINMAX] algorithm 2 (section 4).
  """
  common.check_logits('reinmax', logits, kind)
  ops = common.KIND_OPS[kind]
  logits2 = ops.as_categorical(logits)  # [batch, D, K] (K = 2 for Bernoulli units)
  d = distributions.gumbel_max(key, jax.lax.stop_gradient(logits2))
  pi0 = jax.nn.softmax(logits2, axis=-1)
  pi1 = jax.lax.stop_gradient(0.5 * (d + jax.nn.softmax(logits2 / temperature, axis=-1)))
  log_pi1 = jnp.log(jnp.maximum(pi1, jnp.finfo(pi1.dtype).tiny))
  pi1_grad = jax.nn.softmax(logits2 + jax.lax.stop_gradient(log_pi1 - logits2), axis=-1)
  y = d + 2.0 * common.zero(pi1_grad) - 0.5 * common.zero(pi0)
  return f(ops.from_categorical(y)), {}, state
