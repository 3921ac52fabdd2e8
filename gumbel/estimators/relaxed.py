"""Straight-through and relaxation estimators: st, annealed_st, gumbel_softmax,
st_gumbel_softmax, gumbel_rao, reinmax, gapped_st, zgr.

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
  [GST] Fan, Chi, Rudnicky, Ramadge. Training Discrete Deep Generative Models
    via Gapped Straight-Through Estimator. ICML 2022, arXiv:2206.07235.
  [ZGR] Shekhovtsov. Cold Analysis of Rao-Blackwellized Straight-Through
    Gumbel-Softmax Gradient Estimator. ICML 2023 (code: shekhovt/ZGR).
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


def _sample_as_categorical(ops, key, logits):
  """The exact sample `ops.sample(key, logits)` as one-hot `[batch, D, K]`.

  The same uniforms, so the same draw; Bernoulli units come out as the
  2-class one-hot (b, 1 - b) of `ops.as_categorical`'s logits (l, 0).
  """
  logits_n = jax.lax.stop_gradient(ops.normalize_logits(logits))
  z = ops.perturb(logits_n, common.uniform(key, logits.shape))
  return common.KIND_OPS['categorical'].hard(ops.as_categorical(z))


def gapped_st(key, logits, f, state, *, kind, temperature=1.0, gap=1.0):
  """Gapped straight-through: ST Gumbel-Softmax with deterministic, gapped noise.

  Forward an exact sample D ~ softmax(theta) (theta the normalised logits);
  backward the Jacobian of softmax((theta + m) / tau), where the
  perturbation m = m_1 - m_2 (no gradient) is a function of D alone:
  m_1 = D (max_j theta_j - theta) lifts the sampled class to the top and
  m_2 = (1 - D) relu(theta - max_j theta + gap) pushes every other class at
  least `gap` below it. So the perturbed logits are max_j theta_j on the
  sampled class and min(theta_i, max_j theta_j - gap) elsewhere: argmax
  consistent with D (the property of ST Gumbel-Softmax's noise that [GST]
  keeps) and with no noise left given D, hence lower variance than ST
  Gumbel-Softmax. Biased. Bernoulli units are 2-class categoricals with
  logits (l, 0).

  Args:
    key: a PRNG key.
    logits: `[batch, D]` or `[batch, D, K]` logits.
    f: the per-example objective, differentiable.
    state: `()`.
    kind: 'bernoulli' or 'categorical'.
    temperature: tau > 0 of the backward softmax.
    gap: kappa > 0, the least margin between the sampled class's perturbed
      logit and the others'.

  Returns:
    (surrogate f(D) [batch], {}, state).

  References:
    [GST] the GST estimator (its gapped deterministic perturbation
    m_1 - m_2, built from the properties of ST Gumbel-Softmax's noise it
    keeps); gap 1 and temperature 1 are the defaults of
    google-deepmind/synjax's `gapped_straight_through`.
  """
  common.check_logits('gapped_st', logits, kind)
  ops = common.KIND_OPS[kind]
  theta = jax.nn.log_softmax(ops.as_categorical(logits), axis=-1)  # [batch, D, K]
  d = _sample_as_categorical(ops, key, logits)  # [batch, D, K]
  top = jnp.max(theta, axis=-1, keepdims=True)
  m1 = d * (top - theta)
  m2 = (1.0 - d) * jax.nn.relu(theta - top + gap)
  y_soft = jax.nn.softmax((theta + jax.lax.stop_gradient(m1 - m2)) / temperature, axis=-1)
  return f(ops.from_categorical(distributions.straight_through(d, y_soft))), {}, state


def zgr(key, logits, f, state, *, kind):
  """ZGR: Gumbel-Rao at zero temperature, in closed form: (ST + DARN) / 2.

  Forward an exact sample x ~ p = softmax(logits); backward the Jacobian
  dx/dlogits = (J(p) + (x - p) (x - p)^T) / 2 with J(p) = diag(p) - p p^T:
  half the straight-through Jacobian of p and half DARN's score-function
  term (x - p) d log p_x. For a gradient g = df/dx this is
  grad_logits_i = (p_i (g_i - g_x) + [i = x] (g_x - p . g)) / 2.
  Gumbel-Rao's conditional Jacobian E[d softmax((logits + G) / tau) | x]
  tends to it as tau -> 0 (no temperature, no extra noise). Exact for f
  linear in x (E[(x - p)(x - p)^T] = J(p)), biased otherwise. `reinmax` at
  temperature 1 has the same backward pass (2 J((x + p) / 2) - J(p) / 2 is
  this matrix, since diag(x) = x x^T for one-hot x). Bernoulli
  units are 2-class categoricals with logits (l, 0), which gives the
  paper's binary ZGR, dx/dl = (b (1 - p) + (1 - b) p) / 2.

  Args:
    key: a PRNG key.
    logits: `[batch, D]` or `[batch, D, K]` logits.
    f: the per-example objective, differentiable.
    state: `()`.
    kind: 'bernoulli' or 'categorical'.

  Returns:
    (surrogate f(x) [batch], {}, state).

  References:
    [ZGR] the zero-temperature limit of [GR] and its decomposition ZGR =
    (ST + DARN) / 2 (abstract and main result); its eq. 50, the backward
    pass, as the author's shekhovt/ZGR `zgr.py` cites it. [GR] eq. 7.
  """
  common.check_logits('zgr', logits, kind)
  ops = common.KIND_OPS[kind]
  log_p = jax.nn.log_softmax(ops.as_categorical(logits), axis=-1)  # [batch, D, K]
  p = jnp.exp(log_p)
  x = _sample_as_categorical(ops, key, logits)  # [batch, D, K]
  log_px = jnp.sum(x * log_p, axis=-1, keepdims=True)  # [batch, D, 1]
  # ST's p plus DARN's score term, each with weight 1/2.
  dx = 0.5 * (p + jax.lax.stop_gradient(x - p) * log_px)
  return f(ops.from_categorical(x + common.zero(dx))), {}, state
