"""Gradient estimators for discrete latent variables, behind one signature.

Every estimator is an `Estimator` (init, apply, kinds, unbiased, and its
declared hyperparameters `hparams` / `init_hparams` with defaults and allowed
ranges, `objective`, `relaxed`) looked up by its config string in
`ESTIMATORS` (unknown names raise a `ValueError` that lists the valid ones).
`inspect.signature(ESTIMATORS[name].apply)` and `help` show its
hyperparameters; an unknown hyperparameter, a missing `kind`, a concrete value
out of range (a temperature <= 0 or non-finite, ...) or a state that did not
come from that estimator's `init` raise a `ValueError` naming the estimator
and what it allows. Traced values (under `jit`, `vmap`, `grad`) are not
range-checked.

  state = estimator.init(key, logits, *, kind, **init_hparams)
  surrogate, aux, new_state = estimator.apply(
      key, logits, f, state, *, kind, **hparams)

* `logits`: exactly `[batch, D]` Bernoulli logits (`kind='bernoulli'`) or
  `[batch, D, K]` categorical logits (`kind='categorical'`, the category axis
  last). Axis 0 is always the batch axis. Another rank raises a `ValueError`
  (at trace time) that names the estimator, the kind and both shapes, and
  suggests the other kind when the rank fits it.
* `f`: maps a sample of the shape of `logits` (hard `{0, 1}` / one-hot, or
  relaxed in `[0, 1]` / on the simplex) to a per-example objective `[batch]`;
  anything else (a scalar, `[batch, D]`, a tuple) raises a `ValueError` at
  trace time that names the estimator and the shapes. Some estimators call
  `f` under `jax.vmap` (vimco, arsm); it still sees `[batch, ...]` samples.
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
  direction (minimise or maximise) is the caller's. The gradient terms are
  zero in value without being computed (`jax.custom_jvp` terms in
  `_common`), so a value-only call (e.g. a lower layer's estimator inside an
  upper layer's `f`, evaluated on many pseudo-samples) costs about the
  evaluations of `f` its value needs: one (two for arm on Bernoulli units
  and disarm, `num_samples` for vimco).
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
rest of the objective. The multi-sample estimators (vimco, rloo) instead draw
S samples of the whole path, as their papers do: nested, each of S upper
samples would carry its own S lower ones (S^2 paths, and for vimco another,
nested bound). Their `from_samples(fs, log_probs)` takes the S paths' f and
summed log-probabilities that the model drew itself. rebar and relax take
[REBAR]'s multilayer form, `chain(key, logits_fns, f, states, *, kind)`: one
sample of the chain, each layer's control variate relaxing it from that
layer down (nesting them is unbiased too, but another control variate).

Estimators, the layer types they allow, and the module of their family:

| name | kinds | unbiased | module |
|---|---|---|---|
| sf | both | yes (direction; see variance normalisation) | score_function |
| nvil | both | yes (direction) | score_function |
| darn | both | no (per-unit Taylor signal; exact for f quadratic in each unit) | score_function |
| muprop | both | yes | score_function |
| vimco | both | yes (for the multi-sample objective) | score_function |
| rloo | both | yes (S samples, leave-one-out baseline) | score_function |
| st, annealed_st | both | no | relaxed |
| gumbel_softmax, st_gumbel_softmax | both | no | relaxed |
| gumbel_rao | both | no (same mean as st_gumbel_softmax) | relaxed |
| reinmax | both | no | relaxed |
| gapped_st | both (2-class categorical form) | no | relaxed |
| zgr | both (2-class categorical form) | no (exact for linear f) | relaxed |
| arm | both (ARSM for categorical) | yes | coupled |
| arsm | categorical | yes | coupled |
| disarm | bernoulli | yes | coupled |
| rebar, relax | both | yes | control_variates |

The shared helpers (sampling, densities, surrogate algebra) are in the
private module `_common`; the functions of each family are also exported
here (`estimators.rebar` is `control_variates.rebar`), but the registry's
`apply` is the entry point: it checks `kind` first.

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
  [GST] Fan, Chi, Rudnicky, Ramadge. Training Discrete Deep Generative Models
    via Gapped Straight-Through Estimator. ICML 2022, arXiv:2206.07235.
  [ZGR] Shekhovtsov. Cold Analysis of Rao-Blackwellized Straight-Through
    Gumbel-Softmax Gradient Estimator. ICML 2023.
  [RLOO] Kool, van Hoof, Welling. Buy 4 REINFORCE Samples, Get a Baseline
    for Free! ICLR 2019 workshop (Deep RL Meets Structured Prediction).
"""

import inspect
from typing import Any, Callable, Iterator, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gumbel import _checks

from gumbel.estimators import _common as common
from gumbel.estimators import control_variates
from gumbel.estimators import coupled
from gumbel.estimators import relaxed
from gumbel.estimators import score_function
from gumbel.estimators.control_variates import rebar
from gumbel.estimators.control_variates import relax
from gumbel.estimators.coupled import arm
from gumbel.estimators.coupled import arsm
from gumbel.estimators.coupled import disarm
from gumbel.estimators.relaxed import annealed_st
from gumbel.estimators.relaxed import gapped_st
from gumbel.estimators.relaxed import gumbel_rao
from gumbel.estimators.relaxed import gumbel_softmax
from gumbel.estimators.relaxed import reinmax
from gumbel.estimators.relaxed import st
from gumbel.estimators.relaxed import st_gumbel_softmax
from gumbel.estimators.relaxed import zgr
from gumbel.estimators.score_function import darn
from gumbel.estimators.score_function import muprop
from gumbel.estimators.score_function import nvil
from gumbel.estimators.score_function import rloo
from gumbel.estimators.score_function import sf
from gumbel.estimators.score_function import vimco

Array = common.Array
ObjectiveFn = common.ObjectiveFn
KINDS = common.KINDS


class HParam(NamedTuple):
  """One hyperparameter of an estimator, declared once on its `Estimator`.

  Attributes:
    default: the value used when the caller does not pass it.
    allowed: what concrete values may be (`ALLOWED`): 'positive' (finite,
      > 0; temperatures are checked as `gumbel.check_temperature` checks
      them), 'fraction' (0 <= x < 1), 'bool', 'int>=1', 'int>=2', 'real'
      (finite), or 'one of: a, b, c' (one of those strings).
    doc: one line for `help` and error messages.
  """
  default: Any
  allowed: str
  doc: str


ALLOWED = ('positive', 'fraction', 'bool', 'int>=1', 'int>=2', 'real', 'one of: ...')
_ONE_OF = 'one of: '


def _one_of(values: Sequence[str]) -> str:
  """The `allowed` of a hyperparameter that takes one of `values` (strings)."""
  return _ONE_OF + ', '.join(values)


def _describe(hparams: Mapping[str, HParam]) -> str:
  if not hparams:
    return 'none'
  return ', '.join(f'{k}={v.default!r} ({v.allowed})' for k, v in hparams.items())


def _check_value(estimator: str, name: str, value, spec: HParam):
  """Raises `ValueError` for a concrete value outside `spec.allowed`; traced values pass."""
  if isinstance(value, jax.core.Tracer):
    return  # Traced (under jit/vmap/grad): not checked.
  where = f'Estimator {estimator!r}: {name}'
  if spec.allowed.startswith(_ONE_OF):
    choices = tuple(spec.allowed[len(_ONE_OF):].split(', '))
    if not isinstance(value, str) or value not in choices:
      raise ValueError(f'{where} must be one of {choices}, got {value!r}.')
    return
  if spec.allowed == 'bool':
    if not isinstance(value, (bool, np.bool_)):
      raise ValueError(f'{where} must be True or False, got {value!r}.')
    return
  if spec.allowed.startswith('int>='):
    low = int(spec.allowed[len('int>='):])
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
      raise ValueError(f'{where} must be an integer >= {low}, got {value!r}.')
    return
  if spec.allowed == 'positive' and 'temperature' in name:
    _checks.check_temperature(value, name=where)  # The temperature rule's advice.
  try:
    array = np.asarray(value, np.float64)  # Also float16 / bfloat16.
  except (TypeError, ValueError):
    raise ValueError(f'{where} must be a number, got {value!r}.') from None
  if spec.allowed == 'positive':
    if not np.all(np.isfinite(array) & (array > 0)):
      raise ValueError(f'{where} ({spec.doc}) must be finite and > 0, got {value!r}; '
                       f'the default is {spec.default!r}.')
    return
  if not np.all(np.isfinite(array)):
    raise ValueError(f'{where} must be finite, got {value!r}.')
  if spec.allowed == 'fraction' and not np.all((array >= 0) & (array < 1)):
    raise ValueError(f'{where} must be in [0, 1), got {value!r}.')


def _resolve(estimator: str, declared: Mapping[str, HParam], given: Mapping[str, Any],
             what: str) -> dict:
  """The declared defaults updated with `given`; unknown names and bad values raise."""
  unknown = sorted(set(given) - set(declared))
  if unknown:
    raise ValueError(
        f'Estimator {estimator!r} got unknown {what} hyperparameter(s) {unknown}; '
        f'it takes: {_describe(declared)}.')
  values = {k: v.default for k, v in declared.items()}
  values.update(given)
  for k, v in given.items():
    _check_value(estimator, k, v, declared[k])
  return values


def _signature(leading: Sequence[str], declared: Mapping[str, HParam]) -> inspect.Signature:
  P = inspect.Parameter
  params = [P(n, P.POSITIONAL_OR_KEYWORD) for n in leading]
  params.append(P('kind', P.KEYWORD_ONLY))
  params += [P(k, P.KEYWORD_ONLY, default=v.default) for k, v in declared.items()]
  return inspect.Signature(params)


def _hparam_doc(title: str, declared: Mapping[str, HParam]) -> str:
  if not declared:
    return f'{title}: none.'
  lines = [f'{title}:']
  lines += [f'  {k}={v.default!r} ({v.allowed}): {v.doc}' for k, v in declared.items()]
  return '\n'.join(lines)

class Estimator(NamedTuple):
  """A gradient estimator: `init` makes its state, `apply` its surrogate.

  Everything an estimator takes and is is declared here, once; experiments,
  tables and tests derive from it (e.g. an experiment anneals the
  temperature of every estimator with `'temperature' in hparams`).

  Attributes:
    name: the registry name.
    init: `init(key, logits, *, kind, **init_hparams) -> state`.
    apply: `apply(key, logits, f, state, *, kind, **hparams) ->
      (surrogate [batch], aux dict, new_state)`.
    kinds: the layer types allowed, a subset of ('bernoulli', 'categorical').
    unbiased: whether E[gradient] is the exact gradient of E[f(b)] (of the
      multi-sample objective for vimco).
    hparams: `{name: HParam}`, the keyword arguments of `apply`.
    init_hparams: `{name: HParam}`, the keyword arguments of `init`.
    objective: what the surrogate's value estimates: 'expectation' (E[f(b)];
      f any per-example objective) or 'multi_sample_bound' (vimco:
      log mean_s exp f(b_s); f must be a log-weight).
    relaxed: True if `f` is evaluated only on relaxed samples, so the
      surrogate's value is the relaxed objective (gumbel_softmax), not f at a
      discrete sample.
    family: the module of its family in `gumbel.estimators`
      ('score_function', 'relaxed', 'coupled', 'control_variates').
    cost: `{kind: rough cost of one apply}` relative to one evaluation of f
      and its gradient (1 where not listed): for ordering work queues, not
      a measurement (`reproduce_table1 --estimate` measures).
    from_samples: for the multi-sample estimators (vimco, rloo),
      `from_samples(fs [S, batch], log_probs [S, batch]) -> (surrogate
      [batch], aux)`: the surrogate from S samples the caller drew, e.g. S
      paths through several stochastic layers with `log_probs` summed over
      the layers (what `apply` computes for one layer); None for the others.
    chain: for rebar and relax, `chain(key, logits_fns, f, states, *, kind,
      **hparams) -> (surrogate [batch], aux, new states)`: the estimator on a
      chain of L stochastic layers as [REBAR]'s reference code does
      (`control_variates.rebar_chain`): one discrete sample of the chain,
      each layer's control variate relaxing the chain from that layer down;
      `logits_fns[l]` maps layer l's sample to layer l+1's logits, `f` the
      list of samples to `[batch]`, `states` one `init` state a layer. None
      for the others.
  """
  name: str
  init: Callable[..., Any]
  apply: Callable[..., tuple[Array, dict, Any]]
  kinds: tuple[str, ...]
  unbiased: bool
  hparams: Mapping[str, HParam] = {}
  init_hparams: Mapping[str, HParam] = {}
  objective: str = 'expectation'
  relaxed: bool = False
  family: str = ''
  cost: Mapping[str, float] = {}
  from_samples: Optional[Callable[..., tuple[Array, dict]]] = None
  chain: Optional[Callable[..., tuple[Array, dict, list]]] = None

  @property
  def normalizes_signal(self) -> bool:
    """Whether the estimator divides its learning signal by a running scale
    ([NVIL] variance normalisation), so that the signal should be the whole
    per-example objective (see `normalize`)."""
    return 'normalize' in self.hparams

  def check_hparams(self, given: Mapping[str, Any], what: str = 'apply'):
    """Raises the `ValueError` that `apply` (or `init`) would raise for these hyperparameters.

    For checking a config before anything runs; the error names the
    estimator, the hyperparameter, its value and what is allowed.

    Args:
      given: `{name: value}` keyword arguments of `apply` ('apply') or of
        `init` ('init').
      what: 'apply' or 'init'.
    """
    if what not in ('apply', 'init'):
      raise ValueError(f"what={what!r}; allowed: 'apply', 'init'.")
    _resolve(self.name, self.hparams if what == 'apply' else self.init_hparams, given, what)

class UnknownEstimatorError(KeyError, ValueError):
  """Raised for a name that is not in `ESTIMATORS`."""

  def __str__(self):
    return str(self.args[0])


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


def _check_state(name, init, key, logits, kind, states, where=None, advice=None):
  """Raises `ValueError` unless each of `states` has the structure `init` gives.

  `where(i)` names state i in the message (default: 'the state'), `advice` says
  what to pass (default: how to make it with `init`).
  """
  try:
    expected = jax.tree.structure(
        jax.eval_shape(lambda k, l: init(k, l, kind=kind), key, logits))
  except (TypeError, ValueError):
    return  # A key or logits that init cannot take fail later, with their own error.
  for i, state in enumerate(states):
    if jax.tree.structure(state) != expected:
      raise ValueError(
          f'Estimator {name!r}: {where(i) if where else "the state"} does not come from '
          f'ESTIMATORS[{name!r}].init (expected the structure {expected}, got '
          f'{jax.tree.structure(state)}). ' + (advice or (
              f'Make it with state = ESTIMATORS[{name!r}].init(key, logits, kind=...).')))


def _make(name, fn, init=common.stateless_init, kinds=common.BOTH, unbiased=True, *,
          hparams=None, init_hparams=None, objective='expectation', relaxed=False, cost=None,
          from_samples=None, chain=None):
  """An `Estimator` whose `init` and `apply` check their arguments first."""
  hparams = dict(hparams or {})
  init_hparams = dict(init_hparams or {})

  def checked_init(key, logits, *, kind=None, **given):
    common.check_kind(name, kind, kinds, _alternatives)
    logits = jnp.asarray(logits)
    common.check_logits(name, logits, kind, kinds)
    return init(key, logits, kind=kind, **_resolve(name, init_hparams, given, 'init'))

  def checked_apply(key, logits, f, state, *, kind=None, **given):
    # At trace time: the kind, the logits' rank, the hyperparameters, the state
    # and what f returns.
    common.check_kind(name, kind, kinds, _alternatives)
    logits = jnp.asarray(logits)
    common.check_logits(name, logits, kind, kinds)
    values = _resolve(name, hparams, given, 'apply')
    _check_state(name, init, key, logits, kind, [state])
    f = common.check_objective(name, f, logits.shape[0])
    # NaN logits give a NaN value and gradient, never finite numbers
    # (`propagate_nan`, `nan_rows`). For finite logits the gradient path is
    # bit-identical; the value's `+ 0` can change how XLA fuses (and rounds)
    # the ops after it, at float32's last bits (tests/pinned_test.py: 5 of 139 numbers,
    # <= 1.2e-7 relative, on the 2-core CPU; the gradient guard alone changes none).
    surrogate, aux, new_state = fn(key, common.propagate_nan(logits), f, state, kind=kind,
                                   **values)
    nan_rows = jax.lax.stop_gradient(common.nan_rows(logits))
    return surrogate + nan_rows.astype(surrogate.dtype), aux, new_state

  checked_chain = None
  if chain is not None:

    def checked_chain(key, logits_fns, f, states, *, kind=None, **given):
      common.check_kind(name, kind, kinds, _alternatives)
      values = _resolve(name, hparams, given, 'apply')
      logits_fns, states = list(logits_fns), list(states)
      if not logits_fns or len(states) != len(logits_fns):
        raise ValueError(f'Estimator {name!r}: chain needs one state a layer; got '
                         f'{len(logits_fns)} logits_fns and {len(states)} states.')
      # An init state's structure does not depend on the layer's shape: any logits do.
      example = jnp.zeros((1,) + (2,) * (common.KIND_OPS[kind].rank - 1))
      _check_state(name, init, key, example, kind, states, where=lambda i: f'states[{i}]',
                   advice='Pass a list, one init state a layer.')
      return chain(key, logits_fns, f, states, kind=kind, **values)

    checked_chain.__name__ = f'{name}_chain'
    checked_chain.__qualname__ = checked_chain.__name__
    checked_chain.__doc__ = chain.__doc__

  checked_apply.__name__ = f'{name}_apply'
  checked_apply.__qualname__ = checked_apply.__name__
  checked_apply.__signature__ = _signature(('key', 'logits', 'f', 'state'), hparams)
  checked_apply.__doc__ = f'{fn.__doc__}\n\n  {_hparam_doc("Hyperparameters", hparams)}'
  checked_init.__name__ = f'{name}_init'
  checked_init.__qualname__ = checked_init.__name__
  checked_init.__signature__ = _signature(('key', 'logits'), init_hparams)
  checked_init.__doc__ = (
      f"""The initial state of estimator {name!r} for layers shaped like `logits`.

  Args:
    key: a PRNG key (used by estimators with learned baselines or control
      variates; others ignore it).
    logits: example logits, `[batch, D]` (kind='bernoulli') or `[batch, D, K]`
      (kind='categorical'); only their shape and event size matter.
    kind: one of {kinds}.
    **init_hparams: see below; unknown names raise a `ValueError`.

  Returns:
    The state `apply` takes ({'() (stateless)' if init is common.stateless_init else 'a pytree'}).

  {_hparam_doc('Init hyperparameters', init_hparams)}
  """)
  return Estimator(name=name, init=checked_init, apply=checked_apply, kinds=kinds,
                   unbiased=unbiased, hparams=hparams, init_hparams=init_hparams,
                   objective=objective, relaxed=relaxed, cost=dict(cost or {}),
                   family=fn.__module__.rpartition('.')[2], from_samples=from_samples,
                   chain=checked_chain)


_DECAY = HParam(0.9, 'fraction', 'decay of the running mean and variance of the signal')
_NORMALIZE = HParam(True, 'bool', 'divide the learning signal by max(1, running std) [NVIL]')
_NORMALIZED = {'decay': _DECAY, 'normalize': _NORMALIZE}
_TEMPERATURE = HParam(1.0, 'positive', 'temperature tau of the relaxation')
_CV_INIT = {'temperature': HParam(0.5, 'positive', 'initial temperature of the relaxed '
                                  'control variate (learned)'),
            'eta': HParam(1.0, 'real', 'initial scale of the control variate (learned)')}
_CV_APPLY = {'cv_learning_rate': HParam(1e-3, 'positive', 'Adam step size of the control '
                                        'variate parameters')}
_HIDDEN = HParam(32, 'int>=1', 'width of the learned network')
_TWICE = {'bernoulli': 2, 'categorical': 2}  # f and its gradient at a Taylor point.

ESTIMATORS: Mapping[str, Estimator] = _Registry([
    _make('sf', score_function.sf, score_function.sf_init, hparams=_NORMALIZED),
    _make('nvil', score_function.nvil, score_function.nvil_init,
          hparams={**_NORMALIZED, 'baseline_learning_rate': HParam(
              1e-3, 'positive', 'Adam step size of the baseline network')},
          init_hparams={'hidden': _HIDDEN}),
    _make('darn', score_function.darn, score_function.sf_init, unbiased=False,
          hparams={**_NORMALIZED, 'center': HParam(
              'half', _one_of(score_function.DARN_CENTERS),
              'the fixed point x-bar: 1/2 ([MUPROP] eq. 6), 1/K (uniform) or E[x]')},
          cost=_TWICE),
    _make('muprop', score_function.muprop, score_function.sf_init,
          hparams={**_NORMALIZED, 'scale_correction': HParam(
              False, 'bool', 'also divide the correction term by the signal\'s scale')},
          cost=_TWICE),
    _make('st', relaxed.st, unbiased=False),
    _make('annealed_st', relaxed.annealed_st, unbiased=False,
          hparams={'slope': HParam(1.0, 'positive', 'slope a of the unit: b ~ q(a * logits), '
                                   'straight-through on its mean (annealed upward by the '
                                   'caller)')}),
    _make('gumbel_softmax', relaxed.gumbel_softmax, unbiased=False,
          hparams={'temperature': _TEMPERATURE}, relaxed=True),
    _make('st_gumbel_softmax', relaxed.st_gumbel_softmax, unbiased=False,
          hparams={'temperature': _TEMPERATURE}),
    _make('rebar', control_variates.rebar, control_variates.rebar_init,
          hparams=_CV_APPLY, init_hparams=_CV_INIT, cost={'bernoulli': 6, 'categorical': 6},
          chain=control_variates.rebar_chain),
    _make('relax', control_variates.relax, control_variates.relax_init,
          hparams=_CV_APPLY, init_hparams={**_CV_INIT, 'hidden': _HIDDEN},
          cost={'bernoulli': 6, 'categorical': 6}, chain=control_variates.relax_chain),
    # ARSM evaluates f on K (K - 1) / 2 + 1 swapped samples.
    _make('arm', coupled.arm, cost={'categorical': 8}),
    _make('arsm', coupled.arsm, kinds=common.CATEGORICAL_ONLY, cost={'categorical': 8}),
    _make('disarm', coupled.disarm, kinds=common.BERNOULLI_ONLY),
    _make('vimco', score_function.vimco,
          hparams={'num_samples': HParam(5, 'int>=2', 'samples S per example')},
          objective='multi_sample_bound', cost={'bernoulli': 3, 'categorical': 3},
          from_samples=score_function.vimco_from_samples),
    _make('gumbel_rao', relaxed.gumbel_rao, unbiased=False,
          hparams={'temperature': _TEMPERATURE,
                   'num_conditional': HParam(10, 'int>=1', 'conditional Gumbel draws '
                                             'averaged in the backward pass')},
          cost={'bernoulli': 4, 'categorical': 4}),
    _make('reinmax', relaxed.reinmax, unbiased=False,
          hparams={'temperature': HParam(1.0, 'positive', 'temperature of pi_1 (the paper '
                                         'tunes it in [1, 1.5])')}),
    _make('gapped_st', relaxed.gapped_st, unbiased=False,
          hparams={'temperature': HParam(1.0, 'positive', 'temperature tau of the backward '
                                         'softmax of the gapped logits'),
                   'gap': HParam(1.0, 'positive', 'least margin kappa between the sampled '
                                 "class's perturbed logit and the others'")}),
    _make('zgr', relaxed.zgr, unbiased=False),
    _make('rloo', score_function.rloo,
          hparams={'num_samples': HParam(4, 'int>=2', 'samples S per example (each baseline '
                                         'is the mean f of the other S - 1)')},
          cost={'bernoulli': 4, 'categorical': 4}, from_samples=score_function.rloo_from_samples),
])


# An estimator that is another registered one on some kind (for messages).
_SAME_AS = {('arm', 'categorical'): 'arsm'}


def _alternatives(kind: str) -> list[str]:
  """The unbiased estimators that allow `kind`, in registry order, for errors."""
  twins = {other for (_, k), other in _SAME_AS.items() if k == kind}
  return [e.name + (f' ({_SAME_AS[e.name, kind].upper()})' if (e.name, kind) in _SAME_AS else '')
          for e in ESTIMATORS.values()
          if e.unbiased and kind in e.kinds and e.name not in twins]


def get_estimator(name: str) -> Estimator:
  """Returns `ESTIMATORS[name]`; unknown names raise a `ValueError`.

  Args:
    name: a config string such as 'rebar'.

  Returns:
    The `Estimator`.
  """
  return ESTIMATORS[name]
