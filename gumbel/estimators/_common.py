"""Shared pieces of the estimators: checks, surrogate algebra, baselines.

Private to `gumbel.estimators`: the names here may change without notice.
What differs between Bernoulli and categorical layers is the public module
`gumbel.kinds` (`KindOps`, `KIND_OPS`); its names are re-exported here, so
the estimators call `common.KIND_OPS[kind]`.

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

from gumbel.kinds import BernoulliOps  # pylint: disable=unused-import
from gumbel.kinds import CategoricalOps  # pylint: disable=unused-import
from gumbel.kinds import event_sum
from gumbel.kinds import KIND_OPS
from gumbel.kinds import KindOps  # pylint: disable=unused-import
from gumbel.kinds import KINDS
from gumbel.kinds import uniform  # pylint: disable=unused-import

Array = jax.Array
ObjectiveFn = Callable[[Array], Array]


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


def normalize_signal(signal, state, *, decay, normalize, extra_baseline=0.0, center=True):
  """Centres by the running mean, divides by max(1, running std).

  `center=False` keeps the signal uncentred (a signal with a baseline of its
  own, darn's Taylor term); the running moments are updated the same way.
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
  return (centered if center else signal) / scale, new_state


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
