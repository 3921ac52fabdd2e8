"""Score-function (REINFORCE) estimators with baselines: sf, nvil, darn, muprop, vimco, rloo.

Each is the surrogate f(b) + score_term(signal, log q(b)) (zero in value,
gradient signal * grad log q(b), the "magic box") with an exact sample b and a learning signal centred by a baseline: a moving
average (sf), a learned input-dependent network (nvil), a first-order Taylor
expansion (darn, muprop) or leave-one-out over several samples (vimco,
rloo). The
signature and the registry are in `gumbel.estimators`.

References:
  [SF] Williams. Simple statistical gradient-following algorithms. 1992.
  [NVIL] Mnih, Gregor. Neural Variational Inference and Learning in Belief
    Networks. ICML 2014, arXiv:1402.0030.
  [DARN] Gregor, Danihelka, Mnih, Blundell, Wierstra. Deep AutoRegressive
    Networks. ICML 2014, arXiv:1310.8499.
  [MUPROP] Gu, Levine, Sutskever, Mnih. MuProp: Unbiased Backpropagation for
    Stochastic Neural Networks. ICLR 2016, arXiv:1511.05176.
  [VIMCO] Mnih, Rezende. Variational Inference for Monte Carlo Objectives.
    ICML 2016, arXiv:1602.06725.
  [GS] Jang, Gu, Poole. Categorical Reparameterization with Gumbel-Softmax.
    ICLR 2017, arXiv:1611.01144.
  [RLOO] Kool, van Hoof, Welling. Buy 4 REINFORCE Samples, Get a Baseline
    for Free! ICLR 2019 Deep RL Meets Structured Prediction workshop.
"""

import math

import jax
import jax.numpy as jnp
import optax

from gumbel.estimators import _common as common


def sf_init(key, logits, *, kind):
  del key, logits, kind
  return common.init_normalizer()


def sf(key, logits, f, state, *, kind, decay=0.9, normalize=True):
  """Score function (REINFORCE) with moving-average baseline.

  grad = (f(b) - c) / max(1, sqrt(v)) * grad log q(b) + grad_params f(b),
  with c and v running averages of f and of (f - c)^2 (variance
  normalisation, as [GS] uses for SF, DARN and MuProp).

  Args:
    key: a PRNG key.
    logits: `[batch, D]` or `[batch, D, K]` logits.
    f: the per-example objective, `[batch, ...] -> [batch]`.
    state: `{'mean', 'var'}` from `init`.
    kind: 'bernoulli' or 'categorical'.
    decay: the moving-average decay.
    normalize: divide the signal by max(1, running std).

  Returns:
    (surrogate [batch], {'signal'}, new state).

  References:
    [SF] Williams 1992; [NVIL] section 3.3 (centring and variance
    normalisation); [GS] section 4.
  """
  common.check_logits('sf', logits, kind)
  ops = common.KIND_OPS[kind]
  b = ops.sample(key, logits)
  fb = f(b)
  signal, new_state = common.normalize_signal(fb, state, decay=decay, normalize=normalize)
  surrogate = fb + common.score_term(signal, ops.log_prob(logits, b))
  return surrogate, {'signal': signal}, new_state


def nvil_init(key, logits, *, kind, hidden=32):
  del kind
  params = common.init_mlp(key, common.event_size(logits), hidden)
  return {'normalizer': common.init_normalizer(), 'params': params,
          'opt_state': optax.adam(1.0).init(params)}


def nvil(key, logits, f, state, *, kind, decay=0.9, normalize=True,
         baseline_learning_rate=1e-3):
  """NVIL: score function with an input-dependent learned baseline.

  Learning signal (f(b) - c - B_psi(x)) / max(1, sqrt(v)). The input of the
  baseline network B_psi is stop_gradient(logits) (a function of the
  encoder's input x, so the baseline is input dependent without widening the
  shared signature). `apply` takes one Adam step on
  mean((f - c - B_psi(x))^2) for psi and returns it in the new state.

  Args:
    key: a PRNG key.
    logits: `[batch, D]` or `[batch, D, K]` logits.
    f: the per-example objective.
    state: from `init` (`hidden` sets the baseline's width).
    kind: 'bernoulli' or 'categorical'.
    decay: the moving-average decay of c and v.
    normalize: divide the signal by max(1, running std).
    baseline_learning_rate: Adam step size of the baseline network.

  Returns:
    (surrogate [batch], {'signal', 'baseline', 'baseline_loss'}, new state).

  References:
    [NVIL] section 3 (eq. 7-9, input-dependent baseline and variance
    normalisation).
  """
  common.check_logits('nvil', logits, kind)
  ops = common.KIND_OPS[kind]
  b = ops.sample(key, logits)
  fb = f(b)
  x = jax.lax.stop_gradient(ops.normalize_logits(logits))
  target = jax.lax.stop_gradient(fb) - state['normalizer']['mean']

  def baseline_loss(params):
    return jnp.mean((target - common.apply_mlp(params, x))**2)

  loss, grads = jax.value_and_grad(baseline_loss)(state['params'])
  baseline = common.apply_mlp(state['params'], x)
  signal, normalizer = common.normalize_signal(
      fb, state['normalizer'], decay=decay, normalize=normalize,
      extra_baseline=baseline)
  updates, opt_state = optax.adam(baseline_learning_rate).update(
      grads, state['opt_state'], state['params'])
  new_state = {'normalizer': normalizer,
               'params': optax.apply_updates(state['params'], updates),
               'opt_state': opt_state}
  surrogate = fb + common.score_term(signal, ops.log_prob(logits, b))
  return surrogate, {'signal': signal, 'baseline': baseline,
                     'baseline_loss': loss}, new_state


def _taylor_baseline(f, b, point):
  """f(point) + f'(point) . (b - point): [batch] (no gradient)."""
  point = jax.lax.stop_gradient(point)
  value, vjp = jax.vjp(f, point)
  (grad,) = vjp(jnp.ones_like(value))
  grad = jax.lax.stop_gradient(grad)
  return jax.lax.stop_gradient(value) + common.event_sum(grad * (b - point)), grad


DARN_CENTERS = ('half', 'uniform', 'mean')


def _darn_center(ops, logits, center):
  """The fixed point x-bar of [MUPROP] eq. 5, of the shape of `logits`."""
  if center == 'half':
    return jnp.full(logits.shape, 0.5, logits.dtype)
  if center == 'uniform':  # 1/2 for Bernoulli units, 1/K for categorical ones.
    return ops.center(logits)
  if center == 'mean':
    return jax.lax.stop_gradient(ops.mean(logits))
  raise ValueError(f"Estimator 'darn': center must be one of {DARN_CENTERS}, got {center!r}.")


def _per_variable(ops, x):
  """Sums the class axis of categorical `[batch, D, K]` terms; Bernoulli `[batch, D]` as is."""
  return jnp.sum(x, axis=-1) if ops.rank == 3 else x


def darn(key, logits, f, state, *, kind, decay=0.9, normalize=True, center='half'):
  """DARN: MuProp's "1/2 estimator", a Taylor baseline around the sample, per unit.

  With x the sample and x-bar a fixed point, [MUPROP] section 4.2 takes as
  baseline the first-order Taylor expansion of f around x, evaluated at x-bar,
  h(x) = f(x) + f'(x) (x-bar - x), and applies it "by treating each unit as
  the sole unit of the model": unit (or categorical variable) i gets the
  learning signal s_i = f'(x)_i . (x_i - x-bar_i), with f' the derivative *at
  the sample*, and the gradient is sum_i s_i grad log q(x_i) + grad_params
  f(x) (eq. 5; eq. 6 for binary units, x-bar = 1/2: f'(x) grad mu / (2 q(x));
  eq. 7 for categorical ones). In a multi-layer model the upper layer's `f`
  holds the lower layer's surrogate (with a fixed key), so f'(x) of the upper
  layer is the lower layer's estimate backpropagated to x ("backpropagating
  the gradient estimator derived in the single-layer case").

  Its expectation is exact when, for every unit, (f'(x)|x_i=0 + f'(x)|x_i=1)
  / 2 = f(x)|x_i=1 - f(x)|x_i=0, i.e. for f quadratic in each binary unit
  (interactions between units included) at any mean; biased otherwise. For
  categorical variables it is exact for f linear in each variable.

  Variance normalisation ([GS] section 4: "necessary for SF, DARN, MuProp";
  [NVIL] section 3.3): each unit's signal is divided by max(1, sqrt(v)), v a
  running variance of the signals of all units (one scalar). The signal is
  not centred: the Taylor term is its baseline.

  Args:
    key: a PRNG key.
    logits: `[batch, D]` or `[batch, D, K]` logits.
    f: the per-example objective, differentiable on relaxed inputs.
    state: `{'mean', 'var'}` from `init` (running moments of the signal).
    kind: 'bernoulli' or 'categorical'.
    decay: the moving-average decay.
    normalize: divide the signals by max(1, running std).
    center: the fixed point x-bar: 'half' (1/2 for every unit and class:
      [MUPROP]'s "1/2 estimator", the default), 'uniform' (1/2 for Bernoulli
      units, 1/K for categorical ones) or 'mean' (E[x], stopped), the three
      that [MUPROP] section 5 tried for categorical units. For Bernoulli
      units 'half' and 'uniform' are the same.

  Returns:
    (surrogate [batch], {'signal' [batch, D]}, new state).

  References:
    [MUPROP] section 4.2, eq. 5-7 (the "1/2 estimator", which [GS] calls
    DARN); [DARN] section 3; [GS] sections 3.2 and 4.
  """
  common.check_logits('darn', logits, kind)
  ops = common.KIND_OPS[kind]
  b = ops.sample(key, logits)
  fb, vjp = jax.vjp(f, b)  # One evaluation of f: its value and f'(x) at the sample.
  (grad_b,) = vjp(jnp.ones_like(fb))
  grad_b = jax.lax.stop_gradient(grad_b)
  point = _darn_center(ops, logits, center)
  signal = jax.lax.stop_gradient(_per_variable(ops, grad_b * (b - point)))  # [batch, D]
  # Not centred: the Taylor term is its baseline.
  signal, new_state = common.normalize_signal(signal, state, decay=decay, normalize=normalize,
                                              center=False)
  log_probs = _per_variable(ops, ops.log_prob_terms(logits, b))  # [batch, D]
  surrogate = fb + common.event_sum(common.score_term(signal, log_probs))
  return surrogate, {'signal': signal}, new_state


def muprop(key, logits, f, state, *, kind, decay=0.9, normalize=True,
           scale_correction=False):
  """MuProp: Taylor baseline at the mean-field point plus its correction.

  With mu = E[b] (sigmoid / softmax of logits) and h(b) = f(mu) +
  f'(mu) (b - mu) (mu, f(mu), f'(mu) held fixed), the gradient is
  (f(b) - h(b)) grad log q(b) + f'(mu) . grad mu (+ grad_params f(b)),
  unbiased for any f. Variance normalisation ([MUPROP] section 2.2: it
  "divides the learning signal by max(1, sqrt(v))") centres the residual
  signal f(b) - h(b) by its running mean and divides it by max(1, running
  std); the correction term f'(mu) . grad mu, which is not a learning signal,
  is left as it is (`scale_correction=True` divides it by the same scale, an
  earlier reading that keeps the direction unbiased).

  Args:
    key: a PRNG key.
    logits: `[batch, D]` or `[batch, D, K]` logits.
    f: the per-example objective, differentiable on relaxed inputs.
    state: `{'mean', 'var'}` from `init`.
    kind: 'bernoulli' or 'categorical'.
    decay: the moving-average decay.
    normalize: divide the residual signal by max(1, running std).
    scale_correction: also divide the correction term by that scale.

  Returns:
    (surrogate [batch], {'signal'}, new state).

  References:
    [MUPROP] section 2.2 (variance normalisation), section 3 and
    Algorithm 1 (the estimator).
  """
  common.check_logits('muprop', logits, kind)
  ops = common.KIND_OPS[kind]
  b = ops.sample(key, logits)
  fb = f(b)
  mu = ops.mean(logits)
  baseline, grad_mu = _taylor_baseline(f, b, mu)
  signal, new_state = common.normalize_signal(
      fb - baseline, state, decay=decay, normalize=normalize)
  correction = common.coefficient_term(grad_mu, mu)
  if normalize and scale_correction:
    correction = correction / jnp.maximum(1.0, jnp.sqrt(state['var']))
  surrogate = fb + common.score_term(signal, ops.log_prob(logits, b)) + correction
  return surrogate, {'signal': signal}, new_state


def vimco(key, logits, f, state, *, kind, num_samples=5):
  """VIMCO: the multi-sample objective with leave-one-out baselines.

  Draws S = `num_samples` samples b_s per example and estimates the gradient
  of E[L] with L = log (1/S) sum_s exp f(b_s), so `f` must be a log-weight
  (e.g. log p(x, b) - log q(b | x)). The signal of sample s is
  L - log (1/S) (sum_{j != s} exp f_j + exp(mean_{j != s} f_j)).

  Args:
    key: a PRNG key.
    logits: `[batch, D]` or `[batch, D, K]` logits.
    f: the per-example log-weight, applied to each of the S samples.
    state: `()`.
    kind: 'bernoulli' or 'categorical'.
    num_samples: S >= 2.

  Returns:
    (surrogate L [batch], {'signal' [S, batch]}, state).

  References:
    [VIMCO] eq. 8-10 (geometric-mean leave-one-out baseline).
  """
  common.check_logits('vimco', logits, kind)
  if num_samples < 2:
    raise ValueError(f'vimco needs num_samples >= 2, got {num_samples}.')
  ops = common.KIND_OPS[kind]
  keys = jax.random.split(key, num_samples)
  bs = jax.vmap(lambda k: ops.sample(k, logits))(keys)  # [S, batch, ...]
  fs = jax.vmap(f)(bs)  # [S, batch]
  log_probs = jax.vmap(lambda b: ops.log_prob(logits, b))(bs)  # [S, batch]
  surrogate, aux = _vimco_surrogate(fs, log_probs)
  return surrogate, aux, state


def _from_samples(name, surrogate_fn, fs, log_probs):
  """`surrogate_fn` on checked `[S >= 2, batch]` arrays; NaN where a log_prob is NaN.

  (The score terms are zero in value without reading `log_probs`, so NaN
  logits would otherwise leave a finite surrogate.)
  """
  fs, log_probs = jnp.asarray(fs), jnp.asarray(log_probs)
  if fs.ndim != 2 or fs.shape != log_probs.shape or fs.shape[0] < 2:
    raise ValueError(f'{name}: fs and log_probs must both be [S, batch] with S >= 2 samples; '
                     f'got fs {fs.shape} and log_probs {log_probs.shape}.')
  surrogate, aux = surrogate_fn(fs, log_probs)
  nan = jax.lax.stop_gradient(jnp.any(jnp.isnan(log_probs), axis=0))
  return surrogate + jnp.where(nan, jnp.nan, 0.0).astype(surrogate.dtype), aux


def vimco_from_samples(fs, log_probs):
  """VIMCO's surrogate from S samples that the caller drew: `vimco` without the sampling.

  For a model whose sample is a path through several stochastic layers
  (h = (h1, h2, ...), drawn layer by layer), where [VIMCO] draws S such paths
  jointly and every layer's score term gets the path's leave-one-out signal:
  `log_probs[s]` is the log-probability of the whole path s (the sum over its
  layers, each differentiable in its own parameters) and `fs[s]` its
  log-weight. `vimco(key, logits, f, ...)` is this with one layer.

  Args:
    fs: `[S, batch]` log-weights of the S samples (differentiable in the
      parameters of f; the samples themselves are not differentiated).
    log_probs: `[S, batch]` log-probabilities of the S samples.

  Returns:
    (surrogate L = log (1/S) sum_s exp fs_s [batch], {'signal' [S, batch]}).

  References:
    [VIMCO] eq. 8-10 (geometric-mean leave-one-out baseline).
  """
  return _from_samples('vimco_from_samples', _vimco_surrogate, fs, log_probs)


def _vimco_surrogate(fs, log_probs):
  num_samples = fs.shape[0]
  log_s = math.log(num_samples)
  bound = jax.nn.logsumexp(fs, axis=0) - log_s  # [batch]
  fs_sg = jax.lax.stop_gradient(fs)
  others = (jnp.sum(fs_sg, axis=0, keepdims=True) - fs_sg) / (num_samples - 1)
  eye = jnp.eye(num_samples, dtype=bool)[:, :, None]  # [S, S, 1]
  replaced = jnp.where(eye, others[:, None, :], fs_sg[None, :, :])  # [S, S, b]
  loo = jax.nn.logsumexp(replaced, axis=1) - log_s  # [S, batch]
  signal = jax.lax.stop_gradient(bound)[None, :] - loo  # [S, batch]
  surrogate = bound + jnp.sum(common.score_term(signal, log_probs), axis=0)
  return surrogate, {'signal': signal}


def rloo(key, logits, f, state, *, kind, num_samples=4):
  """REINFORCE with the leave-one-out baseline over S samples (RLOO, LOORF).

  Draws S = `num_samples` exact samples b_s per example and estimates the
  gradient of E[f(b)] (the single-sample objective, unlike vimco) by
  (1/S) sum_s [(f(b_s) - (1/(S-1)) sum_{j != s} f(b_j)) grad log q(b_s)
  + grad_params f(b_s)]. The baseline of sample s uses only the other
  samples, so it is independent of b_s: unbiased, with no state and
  nothing learned. The surrogate's value is mean_s f(b_s).

  Args:
    key: a PRNG key.
    logits: `[batch, D]` or `[batch, D, K]` logits.
    f: the per-example objective, applied to each of the S samples.
    state: `()`.
    kind: 'bernoulli' or 'categorical'.
    num_samples: S >= 2.

  Returns:
    (surrogate mean_s f(b_s) [batch], {'signal' [S, batch]}, state).

  References:
    [RLOO] the leave-one-out baseline estimator (the workshop paper's
    estimator with S = 4 samples, our default); [VIMCO] section 3 uses the
    same leave-one-out idea for its multi-sample bound.
  """
  common.check_logits('rloo', logits, kind)
  ops = common.KIND_OPS[kind]
  keys = jax.random.split(key, num_samples)
  bs = jax.vmap(lambda k: ops.sample(k, logits))(keys)  # [S, batch, ...]
  fs = jax.vmap(f)(bs)  # [S, batch]
  log_probs = jax.vmap(lambda b: ops.log_prob(logits, b))(bs)  # [S, batch]
  surrogate, aux = _rloo_surrogate(fs, log_probs)
  return surrogate, aux, state


def rloo_from_samples(fs, log_probs):
  """RLOO's surrogate from S samples that the caller drew: `rloo` without the sampling.

  As `vimco_from_samples`, for a sample that is a path through several
  stochastic layers drawn jointly: `log_probs[s]` is the log-probability of
  the whole path s, `fs[s]` its objective; each path's baseline is the mean f
  of the other S - 1 paths. `rloo(key, logits, f, ...)` is this with one layer.

  Args:
    fs: `[S, batch]` objectives of the S samples (differentiable in the
      parameters of f).
    log_probs: `[S, batch]` log-probabilities of the S samples.

  Returns:
    (surrogate mean_s fs_s [batch], {'signal' [S, batch]}).

  References:
    [RLOO].
  """
  return _from_samples('rloo_from_samples', _rloo_surrogate, fs, log_probs)


def _rloo_surrogate(fs, log_probs):
  num_samples = fs.shape[0]
  fs_sg = jax.lax.stop_gradient(fs)
  others = (jnp.sum(fs_sg, axis=0, keepdims=True) - fs_sg) / (num_samples - 1)  # [S, batch]
  signal = (fs_sg - others) / num_samples  # [S, batch]
  surrogate = jnp.mean(fs, axis=0) + jnp.sum(common.score_term(signal, log_probs), axis=0)
  return surrogate, {'signal': signal}
