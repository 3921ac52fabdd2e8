"""Shared pieces of the estimators: checks, sampling, densities, surrogate algebra.

Private to `gumbel.estimators`: the names here may change without notice.
Every function takes `logits` of shape `[batch, D]` (`kind='bernoulli'`) or
`[batch, D, K]` (`kind='categorical'`) and works on all event axes at once.

References:
  [REBAR] Tucker, Mnih, Maddison, Lawson, Sohl-Dickstein. REBAR. NeurIPS
    2017, arXiv:1703.07370.
  [RELAX] Grathwohl, Choi, Wu, Roeder, Duvenaud. Backpropagation through the
    Void. ICLR 2018, arXiv:1711.00123.
  [NVIL] Mnih, Gregor. Neural Variational Inference and Learning in Belief
    Networks. ICML 2014, arXiv:1402.0030.
"""

import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gumbel import distributions

Array = jax.Array
ObjectiveFn = Callable[[Array], Array]
KINDS = ('bernoulli', 'categorical')
BOTH = KINDS
BERNOULLI_ONLY = ('bernoulli',)
CATEGORICAL_ONLY = ('categorical',)


# ----------------------------------------------------------------------------
# Checks, sampling, densities and surrogate algebra.
# ----------------------------------------------------------------------------


def check_kind(name: str, kind: str, kinds: Sequence[str]):
  if kind not in KINDS:
    missing = ' (kind is required)' if kind is None else ''
    raise ValueError(f'Estimator {name!r}: kind must be one of {tuple(kinds)}, got '
                     f'{kind!r}{missing}.')
  if kind not in kinds:
    if kind == 'categorical':
      alternatives = 'arm (ARSM), rebar, relax, muprop or vimco'
    else:
      alternatives = 'arm, disarm, rebar or relax'
    raise ValueError(
        f'Estimator {name!r} does not support kind={kind!r}; it allows '
        f'kind in {tuple(kinds)}. For {kind} layers use e.g. '
        f'{alternatives}.')


_SHAPES = {'bernoulli': '[batch, D]', 'categorical': '[batch, D, K]'}
_RANKS = {'bernoulli': 2, 'categorical': 3}


def check_logits(name: str, logits: Array, kind: str,
                 kinds: Sequence[str] = BOTH):
  """Raises `ValueError` unless `logits` has the rank of `kind`.

  Args:
    name: the estimator, for the message.
    logits: the logits.
    kind: 'bernoulli' (`[batch, D]`) or 'categorical' (`[batch, D, K]`).
    kinds: the kinds the estimator allows (for the suggestion).
  """
  rank = _RANKS[kind]
  if logits.ndim == rank:
    return
  message = (f'Estimator {name!r}: kind={kind!r} needs logits of shape '
             f'{_SHAPES[kind]} (rank {rank}; axis 0 is the batch), got shape '
             f'{logits.shape}.')
  (other,) = [k for k in KINDS if k != kind]
  if logits.ndim == _RANKS[other]:
    if other in kinds:
      message += (f' That rank fits kind={other!r} ({_SHAPES[other]}): did '
                  f'you mean kind={other!r}?')
    else:
      message += (f' That rank fits kind={other!r} ({_SHAPES[other]}), which '
                  f'{name!r} does not support (it allows {tuple(kinds)}).')
  if logits.ndim == rank - 1:
    message += ' For a single example, add the batch axis: logits[None].'
  elif logits.ndim > rank:
    message += (f' Merge the event axes into {_SHAPES[kind]}, e.g. with '
                f'logits.reshape({"(batch, -1)" if kind == "bernoulli" else "(batch, -1, K)"}).')
  raise ValueError(message)


def check_objective(name: str, f: ObjectiveFn, batch_size: int) -> ObjectiveFn:
  """Wraps `f` to raise `ValueError` at trace time unless it returns `[batch]`.

  Estimators may call `f` under `jax.vmap` (vimco, arsm), where it still
  sees `[batch, ...]` samples, so the check holds there too.

  Args:
    name: the estimator, for the message.
    f: the per-example objective.
    batch_size: the size of the logits' axis 0.

  Returns:
    `f`, checked.
  """

  def checked(z):
    out = f(z)
    if isinstance(out, (jax.Array, np.ndarray)) and out.shape == (batch_size,):
      return out
    if isinstance(out, (jax.Array, np.ndarray)):
      returned = f'an array of shape {out.shape}'
      if out.ndim == 0:
        hint = ' (a scalar: f reduced over the batch axis too)'
      elif out.shape[0] == batch_size:
        hint = ' (f did not reduce over all the event axes)'
      else:
        hint = ''
    else:
      returned = f'a {type(out).__name__}, not an array'
      hint = ' (return only the objective, not auxiliary values)' if isinstance(
          out, (tuple, list, dict)) else ''
    raise ValueError(
        f'Estimator {name!r}: f must map a sample of shape {jnp.shape(z)} to '
        f'the per-example objective of shape (batch,) = ({batch_size},), but '
        f'returned {returned}{hint}. Reduce over the event axes, not over the '
        'batch axis 0: e.g. jnp.sum(terms.reshape(z.shape[0], -1), axis=1).')

  return checked


# The surrogate algebra below is written with `jax.custom_jvp` so that each
# term's VALUE is a constant zero that does not depend on its inputs: the
# value of a surrogate then needs only what the value needs (e.g. f at the
# true sample), and XLA drops the gradient machinery (pseudo-samples,
# control variates, Taylor baselines) from value-only evaluations, such as
# an estimator nested inside another estimator's f. `x - stop_gradient(x)`
# has the same derivatives but computes x in the forward pass.


@jax.custom_jvp
def zero(x: Array) -> Array:
  """Zero in value (not computed from x); its derivative is that of x.

  Args:
    x: any array.

  Returns:
    `zeros_like(x)`, with tangent `x_dot` (so every derivative of `zero(x)`
    is that of `x`, as for `x - stop_gradient(x)`).
  """
  return jnp.zeros_like(x)


@zero.defjvp
def _zero_jvp(primals, tangents):
  (x,), (x_dot,) = primals, tangents
  return zero(x), x_dot


def magic_box(x: Array) -> Array:
  """exp(zero(x)): one in value, d/dtheta = dx/dtheta (DiCE's magic box)."""
  return jnp.exp(zero(x))


@jax.custom_jvp
def score_term(signal: Array, log_prob: Array) -> Array:
  """The score-function term: zero in value, derivative signal * d log_prob.

  The same derivatives as `signal * (magic_box(log_prob) - 1)` wherever
  signal's own derivative is zero at first order: signal enters the tangent
  as a primal, so the derivative of the tangent with respect to what signal
  depends on (REBAR/RELAX's control-variate parameters) is kept, while
  signal's tangent is dropped. Pass a stop-gradient signal for the plain
  score function. The value is zeros, computed from neither argument.

  Args:
    signal: the learning signal, of the shape of `log_prob`.
    log_prob: log q(b) of the sample.

  Returns:
    Zeros of the shape of `log_prob`; tangent
    `signal * magic_box(log_prob) * log_prob_dot` (the magic box keeps the
    higher derivatives with respect to log_prob as DiCE's).
  """
  return jnp.zeros(jnp.shape(log_prob), jnp.result_type(signal, log_prob))


@score_term.defjvp
def _score_term_jvp(primals, tangents):
  signal, log_prob = primals
  _, log_prob_dot = tangents
  return (score_term(signal, log_prob),
          signal * magic_box(log_prob) * log_prob_dot)


@jax.custom_jvp
def coefficient_term(coef: Array, x: Array) -> Array:
  """event_sum(stop_gradient(coef) * zero(x)), zero in value.

  Puts a gradient `coef` on `x` (e.g. an estimated gradient on the logits)
  without computing `coef` in a value-only evaluation.

  Args:
    coef: `[batch, ...]`, of the shape of `x`; not differentiated.
    x: `[batch, ...]`.

  Returns:
    Zeros `[batch]`; tangent `event_sum(stop_gradient(coef) * x_dot)`.
  """
  return jnp.zeros(jnp.shape(x)[:1], jnp.result_type(coef, x))


@coefficient_term.defjvp
def _coefficient_term_jvp(primals, tangents):
  coef, x = primals
  _, x_dot = tangents
  return (coefficient_term(coef, x),
          event_sum(jax.lax.stop_gradient(coef) * x_dot))


def event_sum(x: Array) -> Array:
  """Sums over all axes but the batch axis 0: [batch, ...] -> [batch]."""
  return jnp.sum(x.reshape(x.shape[0], -1), axis=1)


def normalize_logits(logits: Array, kind: str) -> Array:
  """Categorical logits as log-probabilities; Bernoulli logits unchanged."""
  if kind == 'categorical':
    return jax.nn.log_softmax(logits, axis=-1)
  return logits


def log_prob(logits: Array, b: Array, kind: str) -> Array:
  """log q(b), summed over the event axes: [batch]."""
  if kind == 'bernoulli':
    return event_sum(b * logits - jax.nn.softplus(logits))
  return event_sum(b * jax.nn.log_softmax(logits, axis=-1))


def mean(logits: Array, kind: str) -> Array:
  """E[b]: sigmoid(logits) or softmax(logits)."""
  if kind == 'bernoulli':
    return jax.nn.sigmoid(logits)
  return jax.nn.softmax(logits, axis=-1)


def uniform(key: Array, shape: Sequence[int]) -> Array:
  finfo = jnp.finfo(jnp.float32)
  return jax.random.uniform(
      key, tuple(shape), jnp.float32, minval=finfo.tiny, maxval=1.0 - finfo.eps)


def perturb(logits: Array, u: Array, kind: str) -> Array:
  """z = logits + noise: logistic noise (Bernoulli) or Gumbel (categorical).

  `logits` should be normalised (`_normalize_logits`). b = H(z) is an exact
  sample of q, and z is the reparameterised variable of [REBAR] eq. 3.
  """
  if kind == 'bernoulli':
    return logits + distributions.logistic_from_uniform(u)
  return logits + distributions.gumbel_from_uniform(u)


def hard(z: Array, kind: str) -> Array:
  """H(z): 1[z > 0] or one_hot(argmax z)."""
  z = jax.lax.stop_gradient(z)
  if kind == 'bernoulli':
    return (z > 0).astype(z.dtype)
  return jax.nn.one_hot(jnp.argmax(z, axis=-1), z.shape[-1], dtype=z.dtype)


def relaxation(z: Array, temperature: Array, kind: str) -> Array:
  """sigma_lambda(z): sigmoid(z / tau) or softmax(z / tau)."""
  if kind == 'bernoulli':
    return jax.nn.sigmoid(z / temperature)
  return jax.nn.softmax(z / temperature, axis=-1)


def conditional_perturb(logits: Array, b: Array, v: Array, kind: str) -> Array:
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


def input_only(f: ObjectiveFn, y: Array) -> Array:
  """f(y) whose gradient flows only through `y`, not f's closed-over params.

  Value f(y); first derivative (grad_y f)(y) . dy. Used for control-variate
  terms so that they add no (zero-mean) noise to the decoder's gradient.
  """
  value, vjp = jax.vjp(f, y)
  (grad_y,) = vjp(jnp.ones_like(value))
  grad_y = jax.lax.stop_gradient(grad_y)
  return jax.lax.stop_gradient(value) + coefficient_term(grad_y, y)


# ----------------------------------------------------------------------------
# Moving-average baseline and variance normalisation.
# ----------------------------------------------------------------------------


def init_normalizer() -> dict:
  return {'mean': jnp.zeros((), jnp.float32), 'var': jnp.zeros((), jnp.float32)}


def normalize_signal(signal, state, *, decay, normalize, extra_baseline=0.0):
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


def init_mlp(key: Array, in_dim: int, hidden: int) -> dict:
  w1 = jax.random.normal(key, (in_dim, hidden), jnp.float32) / math.sqrt(in_dim)
  return {
      'w1': w1,
      'b1': jnp.zeros((hidden,), jnp.float32),
      'w2': jnp.zeros((hidden, 1), jnp.float32),
      'b2': jnp.zeros((1,), jnp.float32),
  }


def apply_mlp(params: dict, x: Array) -> Array:
  """[batch, ...] -> [batch]."""
  x = x.reshape(x.shape[0], -1)  # [batch, features]
  h = jnp.tanh(x @ params['w1'] + params['b1'][None, :])
  return (h @ params['w2'] + params['b2'][None, :])[:, 0]


def event_size(logits: Array) -> int:
  return math.prod(logits.shape[1:])


def stateless_init(key, logits, *, kind):
  del key, logits, kind
  return ()


def sample(key: Array, logits: Array, kind: str) -> Array:
  """An exact hard sample of q (no gradient)."""
  logits = jax.lax.stop_gradient(normalize_logits(logits, kind))
  return hard(perturb(logits, uniform(key, logits.shape), kind), kind)
