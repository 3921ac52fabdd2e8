"""Shared pieces of the estimators: checks, the two layer types, surrogate algebra.

Private to `gumbel.estimators`: the names here may change without notice.
What differs between Bernoulli (`[batch, D]` logits) and categorical
(`[batch, D, K]`) layers is implemented once per kind, in `BernoulliOps` and
`CategoricalOps` (sampling, densities, relaxations, conditional noise, KL);
`KIND_OPS[kind]` picks one, and the estimators call its methods.

References:
  [REBAR] Tucker, Mnih, Maddison, Lawson, Sohl-Dickstein. REBAR. NeurIPS
    2017, arXiv:1703.07370.
  [RELAX] Grathwohl, Choi, Wu, Roeder, Duvenaud. Backpropagation through the
    Void. ICLR 2018, arXiv:1711.00123.
  [NVIL] Mnih, Gregor. Neural Variational Inference and Learning in Belief
    Networks. ICML 2014, arXiv:1402.0030.
"""

import itertools
import math
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gumbel import distributions

Array = jax.Array
ObjectiveFn = Callable[[Array], Array]


# ----------------------------------------------------------------------------
# The two layer types: one implementation each of what differs between them.
# ----------------------------------------------------------------------------


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
    log_large = jnp.log1p(-jnp.exp(log_small))
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
BOTH = KINDS
BERNOULLI_ONLY = ('bernoulli',)
CATEGORICAL_ONLY = ('categorical',)


# ----------------------------------------------------------------------------
# Checks and surrogate algebra.
# ----------------------------------------------------------------------------


def check_kind(name: str, kind: str, kinds: Sequence[str],
               alternatives: Callable[[str], Sequence[str]] | None = None):
  """Raises `ValueError` unless `kind` is one of `kinds`.

  Args:
    name: the estimator, for the message.
    kind: the requested kind.
    kinds: the kinds the estimator allows.
    alternatives: `kind -> names` of estimators to suggest for that kind (the
      registry passes them); None suggests none.
  """
  if kind not in KINDS:
    missing = ' (kind is required)' if kind is None else ''
    raise ValueError(f'Estimator {name!r}: kind must be one of {tuple(kinds)}, got '
                     f'{kind!r}{missing}.')
  if kind not in kinds:
    message = (f'Estimator {name!r} does not support kind={kind!r}; it allows '
               f'kind in {tuple(kinds)}.')
    names = list(alternatives(kind)) if alternatives is not None else []
    if names:
      listed = names[0] if len(names) == 1 else f'{", ".join(names[:-1])} or {names[-1]}'
      message += f' For {kind} layers use e.g. {listed}.'
    raise ValueError(message)


def check_logits(name: str, logits: Array, kind: str,
                 kinds: Sequence[str] = BOTH):
  """Raises `ValueError` unless `logits` has the rank of `kind`.

  Args:
    name: the estimator, for the message.
    logits: the logits.
    kind: 'bernoulli' (`[batch, D]`) or 'categorical' (`[batch, D, K]`).
    kinds: the kinds the estimator allows (for the suggestion).
  """
  ops = KIND_OPS[kind]
  if logits.ndim == ops.rank:
    return
  message = (f'Estimator {name!r}: kind={kind!r} needs logits of shape '
             f'{ops.logits_shape} (rank {ops.rank}; axis 0 is the batch), got shape '
             f'{logits.shape}.')
  (other,) = [KIND_OPS[k] for k in KINDS if k != kind]
  if logits.ndim == other.rank:
    if other.name in kinds:
      message += (f' That rank fits kind={other.name!r} ({other.logits_shape}): did '
                  f'you mean kind={other.name!r}?')
    else:
      message += (f' That rank fits kind={other.name!r} ({other.logits_shape}), which '
                  f'{name!r} does not support (it allows {tuple(kinds)}).')
  if logits.ndim == ops.rank - 1:
    message += ' For a single example, add the batch axis: logits[None].'
  elif logits.ndim > ops.rank:
    message += (f' Merge the event axes into {ops.logits_shape}, e.g. with '
                f'{ops.merge_example}.')
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


def nan_rows(logits: Array) -> Array:
  """`[batch]`: NaN for an example with a NaN logit, else 0, in the dtype of `logits`.

  Added (under `stop_gradient`) to a surrogate, it makes the value of such an
  example NaN, which some estimators would otherwise make finite (e.g. a
  coupled sample that never picks the NaN class), and leaves every other
  value bit-identical (x + 0 == x).
  """
  bad = jnp.any(jnp.isnan(logits.reshape(logits.shape[0], -1)), axis=1)  # [batch]
  return jnp.where(bad, jnp.nan, 0.0).astype(logits.dtype)


@jax.custom_jvp
def propagate_nan(logits: Array) -> Array:
  """`logits` itself; the derivative through an example with a NaN logit is NaN.

  Wrapped around the logits an estimator gets, it makes the gradient of such
  an example's logits NaN (some estimators would give finite numbers, e.g.
  zeros); every other gradient, of any order, is bit-identical: the tangent
  is `logits_dot * scale` with `scale` a constant 1 (NaN for those
  examples), so no term is added to any sum of derivatives.

  Args:
    logits: `[batch, ...]`.

  Returns:
    `logits`.
  """
  return logits


@propagate_nan.defjvp
def _propagate_nan_jvp(primals, tangents):
  (logits,), (logits_dot,) = primals, tangents
  scale = jax.lax.stop_gradient(nan_rows(logits) + 1)  # [batch]: 1, or NaN.
  return logits, logits_dot * scale.reshape(scale.shape + (1,) * (logits.ndim - 1))


def event_sum(x: Array) -> Array:
  """Sums over all axes but the batch axis 0: [batch, ...] -> [batch]."""
  return jnp.sum(x.reshape(x.shape[0], -1), axis=1)


def uniform(key: Array, shape: Sequence[int]) -> Array:
  """float32 uniforms in [tiny, 1 - eps], as `gumbel.sample_gumbel` draws them."""
  return distributions._uniform(key, tuple(shape), jnp.float32)  # pylint: disable=protected-access


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
