"""Gradient estimators for discrete latent variables, behind one signature.

Every estimator is an `Estimator(init, apply, kinds, unbiased)` looked up by
its config string in `ESTIMATORS` (unknown names raise a `ValueError` that
lists the valid ones):

  state = estimator.init(key, logits, *, kind, **init_hparams)
  surrogate, aux, new_state = estimator.apply(
      key, logits, f, state, *, kind, **hparams)

* `logits`: `[batch, D]` Bernoulli logits (`kind='bernoulli'`) or
  `[batch, D, K]` categorical logits (`kind='categorical'`; any event shape
  works, the category axis is last). Axis 0 is always the batch axis.
* `f`: maps a sample of the shape of `logits` (hard `{0, 1}` / one-hot, or
  relaxed in `[0, 1]` / on the simplex) to a per-example objective `[batch]`.
  `f` may close over parameters (a decoder, the encoder itself, another
  layer's estimator with a fixed key): their gradients flow through the
  surrogate. Examples must not interact inside `f`. Estimators that
  differentiate `f` (st, gumbel-softmax, muprop, rebar, ...) need it to be
  differentiable on relaxed inputs.
* `surrogate`: `[batch]`. Its *value* is an (unbiased, for the discrete
  estimators) estimate of the per-example objective `f(b)` (for `vimco` the
  multi-sample bound `log mean_s exp f(b_s)`, for `gumbel_softmax` the
  relaxed `f(y)`), and the gradient of `surrogate.sum()` with respect to
  `logits` and to everything `f` closes over is the estimator's gradient of
  `E[f(b)]`. A model adds `surrogate` to its loss in place of `f(b)`; the
  direction (minimise or maximise) is the caller's.
* `state`: the estimator's own explicit state (moving-average baselines, the
  NVIL baseline network, REBAR/RELAX control-variate parameters and their
  optax state); `()` for stateless estimators. `apply` returns the updated
  state: baselines are updated by moving averages, learned baselines by one
  Adam step on their squared error, and REBAR/RELAX control-variate
  parameters by one Adam step on the variance objective (see `rebar`). All of
  it is pure, so `apply` is safe under `jit`, `vmap` and `grad` (take the
  gradient of the surrogate with `has_aux=True` and carry `new_state` out).
* `aux`: a dict of diagnostics (e.g. the learning signal, the control
  variate's gradients and variance objective, the learned temperature).

Multi-layer models use one estimator per stochastic layer: the `f` of an upper
layer samples the lower layers (with their own estimators and a fixed key,
so that all evaluations of `f` in one call share that noise) and returns the
rest of the objective.

Estimators and the layer types they allow:

| name | kinds | unbiased |
|---|---|---|
| sf | both | yes (direction; see variance normalisation) |
| nvil | both | yes (direction) |
| darn | both | no (Taylor term as signal; exact for quadratic f) |
| muprop | both | yes |
| st, annealed_st | both | no |
| gumbel_softmax, st_gumbel_softmax | both | no |
| rebar, relax | both | yes |
| arm | both (ARSM for categorical) | yes |
| arsm | categorical | yes |
| disarm | bernoulli | yes |
| vimco | both | yes (for the multi-sample objective) |
| gumbel_rao | both | no (same mean as st_gumbel_softmax) |
| reinmax | both | no |

Variance normalisation (sf, nvil, darn, muprop) divides the score-function
learning signal by max(1, running std), a positive scalar independent of the
current sample: the gradient direction is unbiased, its scale is not. The
initial state has scale 1, so a freshly initialised estimator is unbiased.

References:
  [SF] Williams. Simple statistical gradient-following algorithms. 1992.
  [NVIL] Mnih, Gregor. Neural Variational Inference and Learning in Belief
    Networks. ICML 2014, arXiv:1402.0030.
  [DARN] Gregor, Danihelka, Mnih, Blundell, Wierstra. Deep AutoRegressive
    Networks. ICML 2014, arXiv:1310.8499.
  [MUPROP] Gu, Levine, Sutskever, Mnih. MuProp: Unbiased Backpropagation for
    Stochastic Neural Networks. ICLR 2016, arXiv:1511.05176.
  [ST] Bengio, Leonard, Courville. arXiv:1308.3432, 2013.
  [SLOPE] Chung, Ahn, Bengio. Hierarchical Multiscale Recurrent Neural
    Networks. ICLR 2017, arXiv:1609.01704 (slope annealing).
  [GS] Jang, Gu, Poole. ICLR 2017, arXiv:1611.01144.
  [CON] Maddison, Mnih, Teh. ICLR 2017, arXiv:1611.00712.
  [REBAR] Tucker, Mnih, Maddison, Lawson, Sohl-Dickstein. REBAR. NeurIPS
    2017, arXiv:1703.07370.
  [RELAX] Grathwohl, Choi, Wu, Roeder, Duvenaud. Backpropagation through the
    Void. ICLR 2018, arXiv:1711.00123.
  [ARM] Yin, Zhou. ARM: Augment-REINFORCE-Merge Gradient for Stochastic
    Binary Networks. ICLR 2019, arXiv:1807.11143.
  [ARSM] Yin, Yue, Zhou. ARSM: Augment-REINFORCE-Swap-Merge Estimator for
    Gradient Backpropagation Through Categorical Variables. ICML 2019,
    arXiv:1905.01413.
  [DISARM] Dong, Mnih, Tucker. DisARM: An Antithetic Gradient Estimator for
    Binary Latent Variables. NeurIPS 2020, arXiv:2006.10680.
  [VIMCO] Mnih, Rezende. Variational Inference for Monte Carlo Objectives.
    ICML 2016, arXiv:1602.06725.
  [GR] Paulus, Maddison, Krause. Rao-Blackwellizing the Straight-Through
    Gumbel-Softmax Gradient Estimator. ICLR 2021, arXiv:2010.04838.
  [REINMAX] Liu, Cheng, Wu, Zhu, Gao. Bridging Discrete and Backpropagation:
    Straight-Through and Beyond. NeurIPS 2023, arXiv:2304.08612.
"""

import math
from typing import Any, Callable, Iterator, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gumbel import distributions

Array = jax.Array
ObjectiveFn = Callable[[Array], Array]
KINDS = ('bernoulli', 'categorical')
BOTH = KINDS
BERNOULLI_ONLY = ('bernoulli',)
CATEGORICAL_ONLY = ('categorical',)


class Estimator(NamedTuple):
  """A gradient estimator: `init` makes its state, `apply` its surrogate.

  Attributes:
    name: the registry name.
    init: `init(key, logits, *, kind, **hparams) -> state`.
    apply: `apply(key, logits, f, state, *, kind, **hparams) ->
      (surrogate [batch], aux dict, new_state)`.
    kinds: the layer types allowed, a subset of ('bernoulli', 'categorical').
    unbiased: whether E[gradient] is the exact gradient of E[f(b)] (of the
      multi-sample objective for vimco).
  """
  name: str
  init: Callable[..., Any]
  apply: Callable[..., tuple[Array, dict, Any]]
  kinds: tuple[str, ...]
  unbiased: bool


# ----------------------------------------------------------------------------
# Shared pieces: sampling, densities and surrogate algebra.
# ----------------------------------------------------------------------------


def _check_kind(name: str, kind: str, kinds: Sequence[str]):
  if kind not in KINDS:
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
  if kind not in kinds:
    if kind == 'categorical':
      alternatives = 'arm (ARSM), rebar, relax, muprop or vimco'
    else:
      alternatives = 'arm, disarm, rebar or relax'
    raise ValueError(
        f'Estimator {name!r} does not support kind={kind!r}; it allows '
        f'kind in {tuple(kinds)}. For {kind} layers use e.g. '
        f'{alternatives}.')


def _check_logits(name: str, logits: Array, kind: str):
  min_ndim = 2 if kind == 'bernoulli' else 3
  if logits.ndim < min_ndim:
    shape = '[batch, D]' if kind == 'bernoulli' else '[batch, D, K]'
    raise ValueError(
        f'Estimator {name!r}: {kind} logits must have shape {shape} (axis 0 '
        f'is the batch), got shape {logits.shape}.')


def _zero(x: Array) -> Array:
  """Zero in the forward pass, the gradient of `x` in the backward pass."""
  return x - jax.lax.stop_gradient(x)


def _magic_box(x: Array) -> Array:
  """exp(x - stop_gradient(x)): one in value, d/dtheta = dx/dtheta."""
  return jnp.exp(_zero(x))


def _score_term(signal: Array, log_prob: Array) -> Array:
  """Zero in value; gradient stop_gradient(signal) * grad log_prob."""
  return jax.lax.stop_gradient(signal) * (_magic_box(log_prob) - 1.0)


def _event_sum(x: Array) -> Array:
  """Sums over all axes but the batch axis 0: [batch, ...] -> [batch]."""
  return jnp.sum(x.reshape(x.shape[0], -1), axis=1)


def _normalize_logits(logits: Array, kind: str) -> Array:
  """Categorical logits as log-probabilities; Bernoulli logits unchanged."""
  if kind == 'categorical':
    return jax.nn.log_softmax(logits, axis=-1)
  return logits


def _log_prob(logits: Array, b: Array, kind: str) -> Array:
  """log q(b), summed over the event axes: [batch]."""
  if kind == 'bernoulli':
    return _event_sum(b * logits - jax.nn.softplus(logits))
  return _event_sum(b * jax.nn.log_softmax(logits, axis=-1))


def _mean(logits: Array, kind: str) -> Array:
  """E[b]: sigmoid(logits) or softmax(logits)."""
  if kind == 'bernoulli':
    return jax.nn.sigmoid(logits)
  return jax.nn.softmax(logits, axis=-1)


def _uniform(key: Array, shape: Sequence[int]) -> Array:
  finfo = jnp.finfo(jnp.float32)
  return jax.random.uniform(
      key, tuple(shape), jnp.float32, minval=finfo.tiny, maxval=1.0 - finfo.eps)


def _perturb(logits: Array, u: Array, kind: str) -> Array:
  """z = logits + noise: logistic noise (Bernoulli) or Gumbel (categorical).

  `logits` should be normalised (`_normalize_logits`). b = H(z) is an exact
  sample of q, and z is the reparameterised variable of [REBAR] eq. 3.
  """
  if kind == 'bernoulli':
    return logits + distributions.logistic_from_uniform(u)
  return logits + distributions.gumbel_from_uniform(u)


def _hard(z: Array, kind: str) -> Array:
  """H(z): 1[z > 0] or one_hot(argmax z)."""
  z = jax.lax.stop_gradient(z)
  if kind == 'bernoulli':
    return (z > 0).astype(z.dtype)
  return jax.nn.one_hot(jnp.argmax(z, axis=-1), z.shape[-1], dtype=z.dtype)


def _relax(z: Array, temperature: Array, kind: str) -> Array:
  """sigma_lambda(z): sigmoid(z / tau) or softmax(z / tau)."""
  if kind == 'bernoulli':
    return jax.nn.sigmoid(z / temperature)
  return jax.nn.softmax(z / temperature, axis=-1)


def _conditional_perturb(logits: Array, b: Array, v: Array, kind: str) -> Array:
  """Draws z~ ~ p(z | H(z) = b), reparameterised by uniforms `v`.

  Gradients flow to `logits` through the conditional sample, as REBAR and
  RELAX need. `logits` must be normalised (`_normalize_logits`).

  Bernoulli: with theta = sigmoid(logits), u ~ p(u | b) is
  u~ = 1 - theta (1 - v) if b = 1 and u~ = v (1 - theta) if b = 0, and
  z~ = logits + logit(u~). Categorical (k the chosen class, E_i = -log v_i):
  z~_k = -log E_k and z~_i = -log(E_i / p_i + E_k) for i != k.

  Args:
    logits: normalised logits.
    b: the hard sample.
    v: uniforms of the shape of `logits`.
    kind: 'bernoulli' or 'categorical'.

  Returns:
    z~ of the shape of `logits`.

  References:
    [REBAR] appendix (conditional Gumbel / logistic reparameterisation);
    [RELAX] appendix B.
  """
  if kind == 'bernoulli':
    log_v, log_1mv = jnp.log(v), jnp.log1p(-v)
    log_theta = jax.nn.log_sigmoid(logits)
    log_1mtheta = jax.nn.log_sigmoid(-logits)
    # b = 1: 1 - u~ = theta (1 - v); b = 0: u~ = (1 - theta) v.
    log_small = jnp.where(b > 0.5, log_theta + log_1mv, log_1mtheta + log_v)
    log_large = jnp.log1p(-jnp.exp(log_small))
    logit_u = jnp.where(b > 0.5, log_large - log_small, log_small - log_large)
    return logits + logit_u
  log_e = jnp.log(-jnp.log(v))  # log of Exponential(1) noise.
  log_e_k = jnp.sum(b * log_e, axis=-1, keepdims=True)
  z_top = -log_e_k
  z_rest = -jnp.logaddexp(log_e - logits, log_e_k)
  return jnp.where(b > 0.5, z_top, z_rest)


def _input_only(f: ObjectiveFn, y: Array) -> Array:
  """f(y) whose gradient flows only through `y`, not f's closed-over params.

  Value f(y); first derivative (grad_y f)(y) . dy. Used for control-variate
  terms so that they add no (zero-mean) noise to the decoder's gradient.
  """
  value, vjp = jax.vjp(f, y)
  (grad_y,) = vjp(jnp.ones_like(value))
  grad_y = jax.lax.stop_gradient(grad_y)
  return jax.lax.stop_gradient(value) + _event_sum(grad_y * _zero(y))


# ----------------------------------------------------------------------------
# Moving-average baseline and variance normalisation.
# ----------------------------------------------------------------------------


def _init_normalizer() -> dict:
  return {'mean': jnp.zeros((), jnp.float32), 'var': jnp.zeros((), jnp.float32)}


def _normalize_signal(signal, state, *, decay, normalize, extra_baseline=0.0):
  """Centres by the running mean, divides by max(1, running std).

  Uses the state from *before* this batch, so the baseline and scale do not
  depend on the current samples (unbiased direction).

  Returns:
    (normalised signal [batch], new normaliser state).
  """
  signal = jax.lax.stop_gradient(signal)
  centered = signal - state['mean'] - extra_baseline
  scale = jnp.maximum(1.0, jnp.sqrt(state['var'])) if normalize else 1.0
  new_state = {
      'mean': decay * state['mean'] + (1 - decay) * jnp.mean(signal),
      'var': decay * state['var'] + (1 - decay) * jnp.mean(centered**2),
  }
  return centered / scale, new_state


# ----------------------------------------------------------------------------
# Small MLPs for learned baselines and the RELAX surrogate.
# ----------------------------------------------------------------------------


def _init_mlp(key: Array, in_dim: int, hidden: int) -> dict:
  w1 = jax.random.normal(key, (in_dim, hidden), jnp.float32) / math.sqrt(in_dim)
  return {
      'w1': w1,
      'b1': jnp.zeros((hidden,), jnp.float32),
      'w2': jnp.zeros((hidden, 1), jnp.float32),
      'b2': jnp.zeros((1,), jnp.float32),
  }


def _apply_mlp(params: dict, x: Array) -> Array:
  """[batch, ...] -> [batch]."""
  x = x.reshape(x.shape[0], -1)  # [batch, features]
  h = jnp.tanh(x @ params['w1'] + params['b1'][None, :])
  return (h @ params['w2'] + params['b2'][None, :])[:, 0]


def _event_size(logits: Array) -> int:
  return math.prod(logits.shape[1:])


def _stateless_init(key, logits, *, kind):
  del key, logits, kind
  return ()


# ----------------------------------------------------------------------------
# Score-function family.
# ----------------------------------------------------------------------------


def _sample(key: Array, logits: Array, kind: str) -> Array:
  """An exact hard sample of q (no gradient)."""
  logits = jax.lax.stop_gradient(_normalize_logits(logits, kind))
  return _hard(_perturb(logits, _uniform(key, logits.shape), kind), kind)


def _sf_init(key, logits, *, kind):
  del key, logits, kind
  return _init_normalizer()


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
  _check_logits('sf', logits, kind)
  b = _sample(key, logits, kind)
  fb = f(b)
  signal, new_state = _normalize_signal(fb, state, decay=decay, normalize=normalize)
  surrogate = fb + _score_term(signal, _log_prob(logits, b, kind))
  return surrogate, {'signal': signal}, new_state


def _nvil_init(key, logits, *, kind, hidden=32):
  del kind
  params = _init_mlp(key, _event_size(logits), hidden)
  return {'normalizer': _init_normalizer(), 'params': params,
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
  _check_logits('nvil', logits, kind)
  b = _sample(key, logits, kind)
  fb = f(b)
  x = jax.lax.stop_gradient(_normalize_logits(logits, kind))
  target = jax.lax.stop_gradient(fb) - state['normalizer']['mean']

  def baseline_loss(params):
    return jnp.mean((target - _apply_mlp(params, x))**2)

  loss, grads = jax.value_and_grad(baseline_loss)(state['params'])
  baseline = _apply_mlp(state['params'], x)
  signal, normalizer = _normalize_signal(
      fb, state['normalizer'], decay=decay, normalize=normalize,
      extra_baseline=baseline)
  updates, opt_state = optax.adam(baseline_learning_rate).update(
      grads, state['opt_state'], state['params'])
  new_state = {'normalizer': normalizer,
               'params': optax.apply_updates(state['params'], updates),
               'opt_state': opt_state}
  surrogate = fb + _score_term(signal, _log_prob(logits, b, kind))
  return surrogate, {'signal': signal, 'baseline': baseline,
                     'baseline_loss': loss}, new_state


def _taylor_baseline(f, b, point):
  """f(point) + f'(point) . (b - point): [batch] (no gradient)."""
  point = jax.lax.stop_gradient(point)
  value, vjp = jax.vjp(f, point)
  (grad,) = vjp(jnp.ones_like(value))
  grad = jax.lax.stop_gradient(grad)
  return jax.lax.stop_gradient(value) + _event_sum(grad * (b - point)), grad


def darn(key, logits, f, state, *, kind, decay=0.9, normalize=True):
  """DARN: the first-order Taylor term at a fixed point as learning signal.

  Signal f'(b0) . (b - b0) with b0 = 1/2 (Bernoulli) or the uniform point
  1/K (categorical; our extension, [DARN] is binary), then the running-mean
  centring and variance normalisation of `sf`. Its expectation is
  f'(b0) . grad E[b]: exact when f(1) - f(0) = f'(1/2), i.e. for f quadratic
  in each binary unit (linear for categorical), biased otherwise.

  Args:
    key: a PRNG key.
    logits: `[batch, D]` or `[batch, D, K]` logits.
    f: the per-example objective, differentiable on relaxed inputs.
    state: `{'mean', 'var'}` from `init`.
    kind: 'bernoulli' or 'categorical'.
    decay: the moving-average decay.
    normalize: divide the signal by max(1, running std).

  Returns:
    (surrogate [batch], {'signal'}, new state).

  References:
    [DARN] section 3 (gradient of binary stochastic units); [GS] section 3.2
    (b0 = 1/2, biased for non-quadratic f); [MUPROP] section 5.
  """
  _check_logits('darn', logits, kind)
  b = _sample(key, logits, kind)
  fb = f(b)
  k = 2 if kind == 'bernoulli' else logits.shape[-1]
  point = jnp.full(logits.shape, 1.0 / k, logits.dtype)
  _, grad_point = _taylor_baseline(f, b, point)
  taylor_term = _event_sum(grad_point * (b - point))
  signal, new_state = _normalize_signal(
      taylor_term, state, decay=decay, normalize=normalize)
  surrogate = fb + _score_term(signal, _log_prob(logits, b, kind))
  return surrogate, {'signal': signal}, new_state


def muprop(key, logits, f, state, *, kind, decay=0.9, normalize=True):
  """MuProp: Taylor baseline at the mean-field point plus its correction.

  With mu = E[b] (sigmoid / softmax of logits) and h(b) = f(mu) +
  f'(mu) (b - mu) (mu, f(mu), f'(mu) held fixed), the gradient is
  (f(b) - h(b)) grad log q(b) + f'(mu) . grad mu (+ grad_params f(b)),
  unbiased for any f. The residual signal is centred and normalised as in
  `sf`.

  Args:
    key: a PRNG key.
    logits: `[batch, D]` or `[batch, D, K]` logits.
    f: the per-example objective, differentiable on relaxed inputs.
    state: `{'mean', 'var'}` from `init`.
    kind: 'bernoulli' or 'categorical'.
    decay: the moving-average decay.
    normalize: divide the residual signal by max(1, running std).

  Returns:
    (surrogate [batch], {'signal'}, new state).

  References:
    [MUPROP] eq. 5-7 (section 3).
  """
  _check_logits('muprop', logits, kind)
  b = _sample(key, logits, kind)
  fb = f(b)
  mu = _mean(logits, kind)
  baseline, grad_mu = _taylor_baseline(f, b, mu)
  signal, new_state = _normalize_signal(
      fb - baseline, state, decay=decay, normalize=normalize)
  scale = jnp.maximum(1.0, jnp.sqrt(state['var'])) if normalize else 1.0
  correction = _zero(_event_sum(grad_mu * mu)) / scale
  surrogate = fb + _score_term(signal, _log_prob(logits, b, kind)) + correction
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
  _check_logits('vimco', logits, kind)
  if num_samples < 2:
    raise ValueError(f'vimco needs num_samples >= 2, got {num_samples}.')
  keys = jax.random.split(key, num_samples)
  bs = jax.vmap(lambda k: _sample(k, logits, kind))(keys)  # [S, batch, ...]
  fs = jax.vmap(f)(bs)  # [S, batch]
  log_s = math.log(num_samples)
  bound = jax.nn.logsumexp(fs, axis=0) - log_s  # [batch]
  fs_sg = jax.lax.stop_gradient(fs)
  others = (jnp.sum(fs_sg, axis=0, keepdims=True) - fs_sg) / (num_samples - 1)
  eye = jnp.eye(num_samples, dtype=bool)[:, :, None]  # [S, S, 1]
  replaced = jnp.where(eye, others[:, None, :], fs_sg[None, :, :])  # [S, S, b]
  loo = jax.nn.logsumexp(replaced, axis=1) - log_s  # [S, batch]
  signal = jax.lax.stop_gradient(bound)[None, :] - loo  # [S, batch]
  log_probs = jax.vmap(lambda b: _log_prob(logits, b, kind))(bs)  # [S, batch]
  surrogate = bound + jnp.sum(_score_term(signal, log_probs), axis=0)
  return surrogate, {'signal': signal}, state


# ----------------------------------------------------------------------------
# Straight-through and relaxations.
# ----------------------------------------------------------------------------


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
  """Slope-annealed straight-through.

  Forward: an exact sample of q(logits). Backward: the gradient of
  sigmoid(slope * logits) (softmax for categorical). The training loop
  anneals `slope` upward (e.g. 1 + 0.04 * epoch, [SLOPE]); slope = 1 is `st`.

  Args:
    key: a PRNG key.
    logits: `[batch, D]` or `[batch, D, K]` logits.
    f: the per-example objective, differentiable.
    state: `()`.
    kind: 'bernoulli' or 'categorical'.
    slope: the slope alpha of the backward sigmoid, > 0.

  Returns:
    (surrogate f(b) [batch], {}, state).

  References:
    [SLOPE] section 3.3 (slope annealing trick); [GS] section 4.
  """
  _check_logits('annealed_st', logits, kind)
  b = _sample(key, logits, kind)
  return f(distributions.straight_through(b, _mean(slope * logits, kind))), {}, state


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
  _check_logits('gumbel_softmax', logits, kind)
  if kind == 'bernoulli':
    y = distributions.relaxed_bernoulli(key, logits, temperature)
  else:
    y = distributions.gumbel_softmax(key, logits, temperature)
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
  _check_logits('st_gumbel_softmax', logits, kind)
  if kind == 'bernoulli':
    y = distributions.relaxed_bernoulli(key, logits, temperature, hard=True)
  else:
    y = distributions.gumbel_softmax(key, logits, temperature, hard=True)
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
  _check_logits('gumbel_rao', logits, kind)
  key_b, key_c = jax.random.split(key)
  logits_n = _normalize_logits(logits, kind)
  logits_sg = jax.lax.stop_gradient(logits_n)
  b = _hard(_perturb(logits_sg, _uniform(key_b, logits.shape), kind), kind)

  def soft(k):
    z = _conditional_perturb(logits_sg, b, _uniform(k, logits.shape), kind)
    noise = jax.lax.stop_gradient(z - logits_sg)
    return _relax(logits_n + noise, temperature, kind)

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
  _check_logits('reinmax', logits, kind)
  if kind == 'bernoulli':
    logits2 = jnp.stack([logits, jnp.zeros_like(logits)], axis=-1)
  else:
    logits2 = logits
  d = distributions.gumbel_max(key, jax.lax.stop_gradient(logits2))
  pi0 = jax.nn.softmax(logits2, axis=-1)
  pi1 = jax.lax.stop_gradient(0.5 * (d + jax.nn.softmax(logits2 / temperature, axis=-1)))
  log_pi1 = jnp.log(jnp.maximum(pi1, jnp.finfo(pi1.dtype).tiny))
  pi1_grad = jax.nn.softmax(logits2 + jax.lax.stop_gradient(log_pi1 - logits2), axis=-1)
  y = d + 2.0 * _zero(pi1_grad) - 0.5 * _zero(pi0)
  if kind == 'bernoulli':
    y = y[..., 0]
  return f(y), {}, state


# ----------------------------------------------------------------------------
# Antithetic estimators: ARM, ARSM and DisARM.
# ----------------------------------------------------------------------------


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
  f(z). For K = 2 it is ARM (in distribution) on the logit difference.

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
  _check_kind('arsm', kind, CATEGORICAL_ONLY)
  _check_logits('arsm', logits, kind)
  k = logits.shape[-1]
  perms, pair = _swap_pairs(k)
  logits_sg = jax.lax.stop_gradient(logits)
  # Dirichlet(1_K) as normalised Exp(1) draws; argmin ignores normalisation.
  e = -jnp.log(_uniform(key, logits.shape))  # [batch, ..., K]
  pi = e / jnp.sum(e, axis=-1, keepdims=True)
  log_e_swapped = jnp.log(e)[..., perms]  # [batch, ..., P, K]
  index = jnp.argmin(log_e_swapped - logits_sg[..., None, :], axis=-1)  # [batch, ..., P]
  z = jax.nn.one_hot(jnp.moveaxis(index, -1, 0), k, dtype=logits.dtype)  # [P, batch, ..., K]
  fs = jax.vmap(f)(z)  # [P, batch]
  f_pair = jax.lax.stop_gradient(fs)[pair]  # [K (m), K (j), batch]
  f_delta = f_pair - jnp.mean(f_pair, axis=1, keepdims=True)
  grad = jnp.einsum('mjb,b...m->b...j', f_delta, 1.0 / k - pi)  # [batch, ..., K]
  surrogate = fs[0] + _event_sum(jax.lax.stop_gradient(grad) * _zero(logits))
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
  _check_kind('arm', kind, BOTH)
  _check_logits('arm', logits, kind)
  if kind == 'categorical':
    return arsm(key, logits, f, state, kind=kind)
  u = _uniform(key, logits.shape)
  logits_sg = jax.lax.stop_gradient(logits)
  b1 = (u > jax.nn.sigmoid(-logits_sg)).astype(u.dtype)
  b2 = (u < jax.nn.sigmoid(logits_sg)).astype(u.dtype)
  f1, f2 = f(b1), f(b2)
  coef = jax.lax.stop_gradient((f1 - f2)[:, None] * (u - 0.5).reshape(u.shape[0], -1))
  surrogate = 0.5 * (f1 + f2) + _event_sum(coef.reshape(logits.shape) * _zero(logits))
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
  _check_kind('disarm', kind, BERNOULLI_ONLY)
  _check_logits('disarm', logits, kind)
  u = _uniform(key, logits.shape)
  logits_sg = jax.lax.stop_gradient(logits)
  p = jax.nn.sigmoid(logits_sg)
  b = (u < p).astype(u.dtype)
  bt = (1.0 - u < p).astype(u.dtype)
  fb, fbt = f(b), f(bt)
  diff = 0.5 * (fb - fbt).reshape((-1,) + (1,) * (logits.ndim - 1))
  weight = (1.0 - 2.0 * bt) * (b != bt) * jax.nn.sigmoid(jnp.abs(logits_sg))
  coef = jax.lax.stop_gradient(diff * weight)
  surrogate = 0.5 * (fb + fbt) + _event_sum(coef * _zero(logits))
  return surrogate, {}, state


# ----------------------------------------------------------------------------
# REBAR and RELAX.
# ----------------------------------------------------------------------------


def _rebar_init(key, logits, *, kind, temperature=0.5, eta=1.0):
  del key, kind, logits
  params = {'log_temperature': jnp.log(jnp.asarray(temperature, jnp.float32)),
            'eta': jnp.asarray(eta, jnp.float32)}
  return {'params': params, 'opt_state': optax.adam(1.0).init(params)}


def _relax_init(key, logits, *, kind, temperature=0.5, eta=1.0, hidden=32):
  state = _rebar_init(key, logits, kind=kind, temperature=temperature, eta=eta)
  params = dict(state['params'])
  params['net'] = _init_mlp(key, _event_size(logits), hidden)
  return {'params': params, 'opt_state': optax.adam(1.0).init(params)}


def _rebar_surrogate(logits, params, u, v, f, f_cv, kind):
  """The REBAR / RELAX surrogate for fixed noise (u, v): [batch]."""
  logits_n = _normalize_logits(logits, kind)
  z = _perturb(logits_n, u, kind)
  b = _hard(z, kind)
  zt = _conditional_perturb(logits_n, b, v, kind)
  temperature = jnp.exp(params['log_temperature'])

  def control_variate(zz):
    y = _relax(zz, temperature, kind)
    c = params['eta'] * f_cv(y)
    if 'net' in params:
      c = c + _apply_mlp(params['net'], y)
    return c

  fb = f(b)
  c_z, c_zt = control_variate(z), control_variate(zt)
  # The learning signal is constant in the logits but not in the control
  # variate's parameters, whose variance gradient flows through it.
  zt_fixed = _conditional_perturb(jax.lax.stop_gradient(logits_n), b, v, kind)
  signal = jax.lax.stop_gradient(fb) - control_variate(zt_fixed)
  log_q = _log_prob(logits, b, kind)
  score = signal * (_magic_box(log_q) - 1.0)
  return fb + score + _zero(c_z - c_zt)


def _rebar_apply(name, key, logits, f, state, *, kind, cv_learning_rate):
  _check_logits(name, logits, kind)
  key_u, key_v = jax.random.split(key)
  u = _uniform(key_u, logits.shape)
  v = _uniform(key_v, logits.shape)
  params = state['params']
  f_cv = lambda y: _input_only(f, y)
  surrogate = _rebar_surrogate(
      logits, jax.lax.stop_gradient(params), u, v, f, f_cv, kind)

  logits_sg = jax.lax.stop_gradient(logits)

  def variance_objective(params):
    grad = jax.grad(lambda l: jnp.sum(_rebar_surrogate(l, params, u, v, f, f, kind)))(logits_sg)
    return jnp.sum(grad**2) / logits.shape[0]

  var_obj, cv_grads = jax.value_and_grad(variance_objective)(params)
  updates, opt_state = optax.adam(cv_learning_rate).update(
      cv_grads, state['opt_state'], params)
  new_state = {'params': optax.apply_updates(params, updates), 'opt_state': opt_state}
  aux = {'variance_objective': var_obj, 'cv_grads': cv_grads,
         'temperature': jnp.exp(params['log_temperature']), 'eta': params['eta']}
  return surrogate, aux, new_state


def rebar(key, logits, f, state, *, kind, cv_learning_rate=1e-3):
  """REBAR: REINFORCE with a reparameterised relaxed control variate.

  With z = logits + noise, b = H(z), z~ ~ p(z | b) and sigma_lambda the
  Concrete relaxation:
    grad = [f(b) - eta f(sigma_lambda(z~))] grad log q(b)
           + eta grad f(sigma_lambda(z)) - eta grad f(sigma_lambda(z~))
           + grad_params f(b),
  unbiased for any eta and lambda. The control-variate terms differentiate f
  only through its input, so they add no noise to the gradient of f's own
  parameters.

  The control-variate parameters phi = (eta, log lambda) live in
  `state['params']` and are learned to minimise the estimator's variance:
  since E[g] does not depend on phi, d Var / d phi = d E[|g|^2] / d phi,
  where g is the estimator's gradient with respect to `logits` (the
  encoder's output; [REBAR] section 3.3). `apply` computes this gradient
  with the same noise, returns it as `aux['cv_grads']` together with the
  single-sample objective `aux['variance_objective']` = sum(g^2) / batch, and
  takes one Adam step (`cv_learning_rate`) on it in the returned state.

  Args:
    key: a PRNG key.
    logits: `[batch, D]` or `[batch, D, K]` logits.
    f: the per-example objective, twice differentiable on relaxed inputs.
    state: from `init(key, logits, kind=..., temperature=0.5, eta=1.0)`.
    kind: 'bernoulli' or 'categorical'.
    cv_learning_rate: Adam step size of the control-variate parameters.

  Returns:
    (surrogate [batch] with value f(b), aux, new state).

  References:
    [REBAR] eq. 6-8 and section 3.3 (variance-minimising eta and lambda);
    [RELAX] section 3.3 and appendix B (conditional noise).
  """
  return _rebar_apply('rebar', key, logits, f, state, kind=kind,
                      cv_learning_rate=cv_learning_rate)


def relax(key, logits, f, state, *, kind, cv_learning_rate=1e-3):
  """RELAX: REBAR with a learned free-form control variate.

  c_phi(z) = eta f(sigma_lambda(z)) + r_rho(sigma_lambda(z)) with r_rho a
  small MLP, and
    grad = [f(b) - c_phi(z~)] grad log q(b) + grad c_phi(z) - grad c_phi(z~)
           + grad_params f(b).
  phi = (eta, log lambda, rho) is learned by minimising the variance exactly
  as in `rebar` (`aux['cv_grads']`, one Adam step in the new state).

  Args:
    key: a PRNG key.
    logits: `[batch, D]` or `[batch, D, K]` logits.
    f: the per-example objective, twice differentiable on relaxed inputs.
    state: from `init(key, logits, kind=..., temperature=0.5, eta=1.0,
      hidden=32)`.
    kind: 'bernoulli' or 'categorical'.
    cv_learning_rate: Adam step size of phi.

  Returns:
    (surrogate [batch] with value f(b), aux, new state).

  References:
    [RELAX] eq. 6-8, algorithm 2 (discrete RELAX) and section 3.3.
  """
  return _rebar_apply('relax', key, logits, f, state, kind=kind,
                      cv_learning_rate=cv_learning_rate)


# ----------------------------------------------------------------------------
# Registry.
# ----------------------------------------------------------------------------


class UnknownEstimatorError(KeyError, ValueError):
  """Raised for a name that is not in `ESTIMATORS`."""

  def __str__(self):
    return str(self.args[0])


def _checked(name, fn, kinds):
  def apply(key, logits, f, state, *, kind, **hparams):
    _check_kind(name, kind, kinds)
    return fn(key, jnp.asarray(logits), f, state, kind=kind, **hparams)

  apply.__doc__ = fn.__doc__
  apply.__name__ = name
  return apply


class _Registry(Mapping):
  """A read-only name -> Estimator mapping whose misses list valid names."""

  def __init__(self, estimators: Sequence[Estimator]):
    self._estimators = {e.name: e for e in estimators}

  def __getitem__(self, name: str) -> Estimator:
    try:
      return self._estimators[name]
    except KeyError:
      raise UnknownEstimatorError(
          f'Unknown estimator {name!r}; valid names are: '
          f'{", ".join(sorted(self._estimators))}.') from None

  def __iter__(self) -> Iterator[str]:
    return iter(self._estimators)

  def __len__(self) -> int:
    return len(self._estimators)

  def __repr__(self) -> str:
    return f'ESTIMATORS({", ".join(self._estimators)})'


def _make(name, fn, init=_stateless_init, kinds=BOTH, unbiased=True):
  return Estimator(name=name, init=init, apply=_checked(name, fn, kinds),
                   kinds=kinds, unbiased=unbiased)


ESTIMATORS: Mapping[str, Estimator] = _Registry([
    _make('sf', sf, _sf_init),
    _make('nvil', nvil, _nvil_init),
    _make('darn', darn, _sf_init, unbiased=False),
    _make('muprop', muprop, _sf_init),
    _make('st', st, unbiased=False),
    _make('annealed_st', annealed_st, unbiased=False),
    _make('gumbel_softmax', gumbel_softmax, unbiased=False),
    _make('st_gumbel_softmax', st_gumbel_softmax, unbiased=False),
    _make('rebar', rebar, _rebar_init),
    _make('relax', relax, _relax_init),
    _make('arm', arm),
    _make('arsm', arsm, kinds=CATEGORICAL_ONLY),
    _make('disarm', disarm, kinds=BERNOULLI_ONLY),
    _make('vimco', vimco),
    _make('gumbel_rao', gumbel_rao, unbiased=False),
    _make('reinmax', reinmax, unbiased=False),
])


def get_estimator(name: str) -> Estimator:
  """Returns `ESTIMATORS[name]`; unknown names raise a `ValueError`.

  Args:
    name: a config string such as 'rebar'.

  Returns:
    The `Estimator`.
  """
  return ESTIMATORS[name]
