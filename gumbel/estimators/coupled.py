"""Coupled (antithetic) estimators: arm, arsm, disarm.

They evaluate `f` on a few coupled exact samples of the same noise and need
no derivative of `f`; all are unbiased. The signature and the registry are in
`gumbel.estimators`.

References:
  [ARM] Yin, Zhou. ARM: Augment-REINFORCE-Merge Gradient for Stochastic
    Binary Networks. ICLR 2019, arXiv:1807.11143.
  [ARSM] Yin, Yue, Zhou. ARSM: Augment-REINFORCE-Swap-Merge Estimator for
    Gradient Backpropagation Through Categorical Variables. ICML 2019,
    arXiv:1905.01413.
  [DISARM] Dong, Mnih, Tucker. DisARM: An Antithetic Gradient Estimator for
    Binary Latent Variables. NeurIPS 2020, arXiv:2006.10680.
"""

import jax
import jax.numpy as jnp
import numpy as np

from gumbel.estimators import _common as common


def _swap_pairs(num_classes: int) -> tuple[np.ndarray, np.ndarray]:
  """The distinct swaps of ARSM as permutations, and each (m, j)'s swap.

  Returns:
    (perms [P, K], pair [K, K]) with P = K (K - 1) / 2 + 1: perms[0] is the
    identity (every m <-> m) and perms[p] swaps one pair m < j; pair[m, j]
    is the row of perms that swaps m and j (pair is symmetric).
  """
  k = num_classes
  perms = [np.arange(k)]
  pair = np.zeros((k, k), np.int32)
  for m in range(k):
    for j in range(m + 1, k):
      perm = np.arange(k)
      perm[m], perm[j] = j, m
      pair[m, j] = pair[j, m] = len(perms)
      perms.append(perm)
  return np.stack(perms), pair


def arsm(key, logits, f, state, *, kind):
  """ARSM: Augment-REINFORCE-Swap-Merge for categorical variables.

  Per variable with logits phi (K classes), draw pi ~ Dirichlet(1_K); the
  true action z = argmin_i (log pi_i - phi_i) is an exact sample of
  softmax(phi). With pi^{m<->j} = pi with entries m and j swapped, the pseudo
  actions z^{m<->j} = argmin_i (log pi^{m<->j}_i - phi_i), and
  f_Delta^{m<->j} = f(z^{m<->j}) - (1/K) sum_k f(z^{m<->k}):
    grad_{phi_j} = sum_m f_Delta^{m<->j} (1/K - pi_m).
  All D variables of a layer share the swap (m, j), with their own pi, so f
  is evaluated on K (K - 1) / 2 + 1 joint configurations (the true one and
  one per pair m < j). The value and the gradient for f's parameters are
  f(z); the pseudo-samples are evaluated without gradient and only for the
  logits' gradient, so a value-only call evaluates f once. For K = 2 it is
  ARM (in distribution) on the logit difference.

  Args:
    key: a PRNG key.
    logits: `[batch, D, K]` categorical logits.
    f: the per-example objective (need not be differentiable).
    state: `()`.
    kind: must be 'categorical'.

  Returns:
    (surrogate f(z) [batch], {}, state).

  References:
    [ARSM] section 2 (the ARSM gradient g_ARSM of a univariate categorical)
    and its multivariate extension (one swap pair shared by the D
    dimensions).
  """
  common.check_kind('arsm', kind, common.CATEGORICAL_ONLY)
  common.check_logits('arsm', logits, kind)
  k = logits.shape[-1]
  perms, pair = _swap_pairs(k)
  logits_sg = jax.lax.stop_gradient(logits)
  # Dirichlet(1_K) as normalised Exp(1) draws; argmin ignores normalisation.
  e = -jnp.log(common.uniform(key, logits.shape))  # [batch, ..., K]
  pi = e / jnp.sum(e, axis=-1, keepdims=True)
  log_e_swapped = jnp.log(e)[..., perms]  # [batch, ..., P, K]
  index = jnp.argmin(log_e_swapped - logits_sg[..., None, :], axis=-1)  # [batch, ..., P]
  z = jax.nn.one_hot(jnp.moveaxis(index, -1, 0), k, dtype=logits.dtype)  # [P, batch, ..., K]
  # f at the true sample carries the value and f's parameter gradient; the
  # pseudo-samples only feed the logits' gradient, so they are evaluated
  # apart, without gradient, and a value-only call never computes them.
  f_true = f(z[0])  # [batch]
  f_pseudo = jax.lax.stop_gradient(jax.vmap(f)(z[1:]))  # [P - 1, batch]
  fs = jnp.concatenate([jax.lax.stop_gradient(f_true)[None], f_pseudo])  # [P, batch]
  f_pair = fs[pair]  # [K (m), K (j), batch]
  f_delta = f_pair - jnp.mean(f_pair, axis=1, keepdims=True)
  grad = jnp.einsum('mjb,b...m->b...j', f_delta, 1.0 / k - pi)  # [batch, ..., K]
  surrogate = f_true + common.coefficient_term(grad, logits)
  return surrogate, {}, state


def arm(key, logits, f, state, *, kind):
  """ARM: Augment-REINFORCE-Merge; ARSM for categorical variables.

  Bernoulli: with u ~ U(0, 1)^D, b1 = 1[u > sigmoid(-logits)],
  b2 = 1[u < sigmoid(logits)] (both exact samples),
  grad_logits = (f(b1) - f(b2)) (u - 1/2). The value and the gradient for
  f's parameters are the average over b1 and b2.

  Categorical: `arsm`, the categorical generalisation of ARM, which reduces
  to ARM for K = 2 classes.

  Args:
    key: a PRNG key.
    logits: `[batch, D]` Bernoulli or `[batch, D, K]` categorical logits.
    f: the per-example objective (need not be differentiable).
    state: `()`.
    kind: 'bernoulli' or 'categorical' (ARSM).

  Returns:
    (surrogate [batch], {}, state).

  References:
    [ARM] theorem 1, eq. 5; [ARSM] proposition 3 (categorical).
  """
  common.check_kind('arm', kind, common.BOTH)
  common.check_logits('arm', logits, kind)
  if kind == 'categorical':
    return arsm(key, logits, f, state, kind=kind)
  u = common.uniform(key, logits.shape)
  logits_sg = jax.lax.stop_gradient(logits)
  b1 = (u > jax.nn.sigmoid(-logits_sg)).astype(u.dtype)
  b2 = (u < jax.nn.sigmoid(logits_sg)).astype(u.dtype)
  f1, f2 = f(b1), f(b2)
  coef = jax.lax.stop_gradient((f1 - f2)[:, None] * (u - 0.5).reshape(u.shape[0], -1))
  surrogate = 0.5 * (f1 + f2) + common.coefficient_term(coef.reshape(logits.shape), logits)
  return surrogate, {}, state


def disarm(key, logits, f, state, *, kind):
  """DisARM: ARM Rao-Blackwellised over the antithetic pair.

  b = 1[u < sigmoid(logits)], b~ = 1[1 - u < sigmoid(logits)],
  grad_logits = (f(b) - f(b~)) / 2 * (-1)^b~ 1[b != b~] sigmoid(|logits|).

  Args:
    key: a PRNG key.
    logits: `[batch, D]` Bernoulli logits.
    f: the per-example objective (need not be differentiable).
    state: `()`.
    kind: must be 'bernoulli': the categorical coupled estimators of
      Dong, Mnih, Tucker (Coupled gradient estimators for discrete latent
      variables, NeurIPS 2021, arXiv:2106.08056) are not implemented; for
      categorical layers use `arm` (ARSM).

  Returns:
    (surrogate [batch], {}, state).

  References:
    [DISARM] eq. 6 (section 3).
  """
  common.check_kind('disarm', kind, common.BERNOULLI_ONLY)
  common.check_logits('disarm', logits, kind)
  u = common.uniform(key, logits.shape)
  logits_sg = jax.lax.stop_gradient(logits)
  p = jax.nn.sigmoid(logits_sg)
  b = (u < p).astype(u.dtype)
  bt = (1.0 - u < p).astype(u.dtype)
  fb, fbt = f(b), f(bt)
  diff = 0.5 * (fb - fbt).reshape((-1,) + (1,) * (logits.ndim - 1))
  weight = (1.0 - 2.0 * bt) * (b != bt) * jax.nn.sigmoid(jnp.abs(logits_sg))
  coef = jax.lax.stop_gradient(diff * weight)
  surrogate = 0.5 * (fb + fbt) + common.coefficient_term(coef, logits)
  return surrogate, {}, state
