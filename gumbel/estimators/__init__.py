"""Gradient estimators for discrete latent variables, behind one signature.

Every estimator is an `Estimator(init, apply, kinds, unbiased)` looked up by
its config string in `ESTIMATORS` (unknown names raise a `ValueError` that
lists the valid ones):

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
rest of the objective.

Estimators, the layer types they allow, and the module of their family:

| name | kinds | unbiased | module |
|---|---|---|---|
| sf | both | yes (direction; see variance normalisation) | score_function |
| nvil | both | yes (direction) | score_function |
| darn | both | no (Taylor term as signal; exact for quadratic f) | score_function |
| muprop | both | yes | score_function |
| vimco | both | yes (for the multi-sample objective) | score_function |
| st, annealed_st | both | no | relaxed |
| gumbel_softmax, st_gumbel_softmax | both | no | relaxed |
| gumbel_rao | both | no (same mean as st_gumbel_softmax) | relaxed |
| reinmax | both | no | relaxed |
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
"""

from typing import Any, Callable, Iterator, Mapping, NamedTuple, Sequence

import jax.numpy as jnp

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
from gumbel.estimators.relaxed import gumbel_rao
from gumbel.estimators.relaxed import gumbel_softmax
from gumbel.estimators.relaxed import reinmax
from gumbel.estimators.relaxed import st
from gumbel.estimators.relaxed import st_gumbel_softmax
from gumbel.estimators.score_function import darn
from gumbel.estimators.score_function import muprop
from gumbel.estimators.score_function import nvil
from gumbel.estimators.score_function import sf
from gumbel.estimators.score_function import vimco

Array = common.Array
ObjectiveFn = common.ObjectiveFn
KINDS = common.KINDS


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
# Registry.
# ----------------------------------------------------------------------------


class UnknownEstimatorError(KeyError, ValueError):
  """Raised for a name that is not in `ESTIMATORS`."""

  def __str__(self):
    return str(self.args[0])


def _checked(name, fn, kinds):
  def apply(key, logits, f, state, *, kind, **hparams):
    # At trace time: the kind, the logits' rank, and what f returns.
    common.check_kind(name, kind, kinds)
    logits = jnp.asarray(logits)
    common.check_logits(name, logits, kind, kinds)
    f = common.check_objective(name, f, logits.shape[0])
    return fn(key, logits, f, state, kind=kind, **hparams)

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


def _make(name, fn, init=common.stateless_init, kinds=common.BOTH, unbiased=True):
  return Estimator(name=name, init=init, apply=_checked(name, fn, kinds),
                   kinds=kinds, unbiased=unbiased)


ESTIMATORS: Mapping[str, Estimator] = _Registry([
    _make('sf', score_function.sf, score_function.sf_init),
    _make('nvil', score_function.nvil, score_function.nvil_init),
    _make('darn', score_function.darn, score_function.sf_init, unbiased=False),
    _make('muprop', score_function.muprop, score_function.sf_init),
    _make('st', relaxed.st, unbiased=False),
    _make('annealed_st', relaxed.annealed_st, unbiased=False),
    _make('gumbel_softmax', relaxed.gumbel_softmax, unbiased=False),
    _make('st_gumbel_softmax', relaxed.st_gumbel_softmax, unbiased=False),
    _make('rebar', control_variates.rebar, control_variates.rebar_init),
    _make('relax', control_variates.relax, control_variates.relax_init),
    _make('arm', coupled.arm),
    _make('arsm', coupled.arsm, kinds=common.CATEGORICAL_ONLY),
    _make('disarm', coupled.disarm, kinds=common.BERNOULLI_ONLY),
    _make('vimco', score_function.vimco),
    _make('gumbel_rao', relaxed.gumbel_rao, unbiased=False),
    _make('reinmax', relaxed.reinmax, unbiased=False),
])


def get_estimator(name: str) -> Estimator:
  """Returns `ESTIMATORS[name]`; unknown names raise a `ValueError`.

  Args:
    name: a config string such as 'rebar'.

  Returns:
    The `Estimator`.
  """
  return ESTIMATORS[name]
