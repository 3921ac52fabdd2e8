"""Exact gradients by enumeration, estimator bias/variance, gradient variance.

Toy problems have a latent space small enough to enumerate (8 Bernoulli
units: 256 configurations; 3 categorical variables of 4 classes: 64), so the
exact gradient of E_q[f(b)] with respect to the logits *and* the parameters
of a learned nonlinear decoder is a finite sum. `bias_variance` compares any
registered estimator against it; `gradient_variance` measures the variance
of several estimators' gradients on the same batch and parameters, for
logging `grad_var/<name>` during training.

References:
  Mohamed, Rosca, Figurnov, Mnih. Monte Carlo Gradient Estimation in Machine
    Learning. JMLR 2020, arXiv:1906.10652 (section 8: bias/variance
    diagnostics against known gradients).
"""

import itertools
import math
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gumbel import estimators as estimators_lib
from gumbel import kinds

Array = jax.Array
PyTree = Any


# XLA compiler options for tiny problems: LLVM optimisation costs far more
# time (seconds per estimator on a CPU) than it saves (milliseconds).
FAST_COMPILE = {'xla_backend_optimization_level': 0,
                 'xla_llvm_disable_expensive_passes': True}


def _run_fast(fn, *args):
  """jit-compiles `fn` with little optimisation and calls it on `args`."""
  return jax.jit(fn).lower(*args).compile(FAST_COMPILE)(*args)


class ToyProblem(NamedTuple):
  """A model whose latent space can be enumerated.

  Attributes:
    kind: 'bernoulli' or 'categorical'.
    logits: `[batch, D]` or `[batch, D, K]` encoder logits (free parameters).
    params: the decoder's parameters.
    objective: `objective(params, z) -> [batch]`, for hard or relaxed z of
      the shape of `logits`: a learned nonlinear decoder
      sum_h (tanh(z W + c)_h - t_h)^2 plus a fixed nonlinear term.
    targets: `[batch, hidden]` the decoder targets t.
  """
  kind: str
  logits: Array
  params: dict
  objective: Callable[[dict, Array], Array]
  targets: Array

  def f(self, params: dict | None = None) -> Callable[[Array], Array]:
    """The per-example objective with the decoder parameters closed over."""
    params = self.params if params is None else params
    return lambda z: self.objective(params, z)


def _toy(key, kind, logits_shape, hidden) -> ToyProblem:
  k_logits, k_w, k_c, k_t, k_a = jax.random.split(key, 5)
  batch = logits_shape[0]
  features = math.prod(logits_shape[1:])
  logits = jax.random.normal(k_logits, logits_shape, jnp.float32)
  params = {
      'w': 3.0 * jax.random.normal(k_w, (features, hidden), jnp.float32) / math.sqrt(features),
      'c': 0.5 * jax.random.normal(k_c, (hidden,), jnp.float32),
  }
  targets = jax.random.uniform(k_t, (batch, hidden), jnp.float32, -1.0, 1.0)
  a = jax.random.normal(k_a, (features,), jnp.float32)

  def objective(params, z):
    x = z.reshape(z.shape[0], -1)  # [batch, features]
    h = jnp.tanh(x @ params['w'] + params['c'][None, :])  # [batch, hidden]
    return jnp.sum((h - targets)**2, axis=1) + jnp.sin(x @ a)

  return ToyProblem(kind=kind, logits=logits, params=params,
                    objective=objective, targets=targets)


def bernoulli_toy_problem(key: Array, num_units: int = 8, batch_size: int = 2,
                          hidden: int = 4) -> ToyProblem:
  """Returns the Bernoulli toy problem (2^num_units configurations).

  Args:
    key: a PRNG key for the logits, decoder and targets.
    num_units: D Bernoulli units.
    batch_size: the number of examples (each with its own logits/target).
    hidden: the decoder's width.

  Returns:
    A `ToyProblem` with logits `[batch_size, num_units]`.
  """
  return _toy(key, 'bernoulli', (batch_size, num_units), hidden)


def categorical_toy_problem(key: Array, num_vars: int = 3, num_classes: int = 4,
                            batch_size: int = 2, hidden: int = 4) -> ToyProblem:
  """Returns the categorical toy problem (num_classes^num_vars configurations).

  Args:
    key: a PRNG key for the logits, decoder and targets.
    num_vars: D categorical variables.
    num_classes: K classes each.
    batch_size: the number of examples.
    hidden: the decoder's width.

  Returns:
    A `ToyProblem` with logits `[batch_size, num_vars, num_classes]`.
  """
  return _toy(key, 'categorical', (batch_size, num_vars, num_classes), hidden)


def enumerate_configurations(kind: str, event_shape: Sequence[int]) -> Array:
  """All latent configurations of one example.

  Args:
    kind: 'bernoulli' (event shape [D]) or 'categorical' ([D, K]).
    event_shape: the shape of one example's sample.

  Returns:
    `[N, *event_shape]`: N = 2^D binary vectors or K^D stacks of one-hots.
  """
  return _kind_ops(kind).configurations(event_shape)


def _kind_ops(kind: str):
  if kind not in kinds.KIND_OPS:
    allowed = ' or '.join(repr(k) for k in kinds.KINDS)
    raise ValueError(f'kind must be {allowed}, got {kind!r}.')
  return kinds.KIND_OPS[kind]


def _log_q(logits, configs, kind):
  """log q(config) per example: [N, batch]."""
  lp = _kind_ops(kind).log_prob_terms(logits[None], configs[:, None])  # [N, batch, ...]
  return jnp.sum(lp.reshape(lp.shape[0], lp.shape[1], -1), axis=2)


def _all_f(problem, params, configs):
  """f at every configuration for every example: [N, batch]."""
  batch = problem.logits.shape[0]

  def one(config):
    z = jnp.broadcast_to(config[None], (batch,) + config.shape)
    return problem.objective(params, z)

  return jax.vmap(one)(configs)


def exact_objective(problem: ToyProblem, logits: Array, params: dict,
                    num_samples: int = 1) -> Array:
  """sum over the batch of E_q[objective] by enumeration.

  With num_samples = S > 1, the multi-sample objective of VIMCO,
  E[log (1/S) sum_s exp f(b_s)], enumerating all N^S tuples.

  Args:
    problem: the toy problem.
    logits: the logits at which to evaluate.
    params: the decoder parameters.
    num_samples: S.

  Returns:
    A scalar.
  """
  configs = enumerate_configurations(problem.kind, problem.logits.shape[1:])
  log_q = _log_q(logits, configs, problem.kind)  # [N, batch]
  fs = _all_f(problem, params, configs)  # [N, batch]
  if num_samples == 1:
    return jnp.sum(jnp.exp(log_q) * fs)
  n = configs.shape[0]
  index = np.asarray(list(itertools.product(range(n), repeat=num_samples)))  # [N^S, S]
  log_w = jnp.sum(log_q[index], axis=1)  # [N^S, batch]
  bound = jax.nn.logsumexp(fs[index], axis=1) - math.log(num_samples)  # [N^S, batch]
  return jnp.sum(jnp.exp(log_w) * bound)


def exact_gradient(problem: ToyProblem, num_samples: int = 1) -> dict:
  """The exact gradient of `exact_objective` at the problem's parameters.

  Args:
    problem: the toy problem.
    num_samples: S, the multi-sample objective for S > 1 (vimco).

  Returns:
    `{'logits': ..., 'params': ...}` gradients.
  """
  grad_fn = jax.grad(
      lambda p: exact_objective(problem, p['logits'], p['params'], num_samples))
  return _run_fast(grad_fn, {'logits': problem.logits, 'params': problem.params})


def estimator_gradients(key: Array, problem: ToyProblem, name: str, *,
                        num_estimates: int, state: Any = None,
                        init_hparams: Mapping[str, Any] | None = None,
                        **hparams) -> dict:
  """Draws `num_estimates` independent gradient estimates of one estimator.

  Every estimate uses the same parameters and state (the state update of the
  call is discarded).

  Args:
    key: a PRNG key.
    problem: the toy problem.
    name: a name in `ESTIMATORS`.
    num_estimates: the number of independent estimates.
    state: the estimator's state; default `init(...)`.
    init_hparams: keyword arguments of `init`.
    **hparams: keyword arguments of `apply`.

  Returns:
    `{'logits': [num_estimates, ...], 'params': {...: [num_estimates, ...]}}`.
  """
  estimator = estimators_lib.ESTIMATORS[name]
  init_key, key = jax.random.split(key)
  if state is None:
    state = estimator.init(init_key, problem.logits, kind=problem.kind,
                           **dict(init_hparams or {}))

  def one(key):
    def surrogate(p):
      s, _, _ = estimator.apply(key, p['logits'], problem.f(p['params']), state,
                                kind=problem.kind, **hparams)
      return jnp.sum(s)
    return jax.grad(surrogate)({'logits': problem.logits, 'params': problem.params})

  keys = jax.random.split(key, num_estimates)
  return _run_fast(jax.vmap(one), keys)


def train_estimator_state(key: Array, problem: ToyProblem, name: str, *,
                          num_steps: int,
                          init_hparams: Mapping[str, Any] | None = None,
                          **hparams) -> Any:
  """Runs `num_steps` estimator calls at fixed model parameters.

  Only the estimator's own state learns (baselines, REBAR/RELAX control
  variates through their variance objective), so a later `bias_variance`
  with the returned state shows what that learning buys.

  Args:
    key: a PRNG key.
    problem: the toy problem.
    name: a name in `ESTIMATORS`.
    num_steps: the number of updates.
    init_hparams: keyword arguments of `init`.
    **hparams: keyword arguments of `apply` (e.g. `cv_learning_rate`).

  Returns:
    The estimator's state after `num_steps` updates.
  """
  estimator = estimators_lib.ESTIMATORS[name]
  init_key, key = jax.random.split(key)
  state = estimator.init(init_key, problem.logits, kind=problem.kind,
                         **dict(init_hparams or {}))
  f = problem.f()

  def step(state, key):
    _, _, state = estimator.apply(key, problem.logits, f, state,
                                  kind=problem.kind, **hparams)
    return state, None

  run = lambda state, keys: jax.lax.scan(step, state, keys)[0]
  return _run_fast(run, state, jax.random.split(key, num_steps))


def _flatten(tree, leading: int) -> Array:
  leaves = jax.tree_util.tree_leaves(tree)
  return jnp.concatenate(
      [x.reshape(x.shape[:leading] + (-1,)) for x in leaves], axis=leading)


def bias_variance(key: Array, problem: ToyProblem, name: str, *,
                  num_estimates: int = 10_000, state: Any = None,
                  init_hparams: Mapping[str, Any] | None = None,
                  exact: dict | None = None,
                  **hparams) -> dict:
  """Bias and variance of an estimator against the exact gradient.

  The target is the gradient of E[f(b)] (of the multi-sample objective with
  `hparams['num_samples']` samples for vimco, default 5, enumerated: keep
  it small). Per-parameter quantities are over all logits and decoder
  parameters.

  Args:
    key: a PRNG key.
    problem: the toy problem.
    name: a name in `ESTIMATORS`.
    num_estimates: the number of independent gradient estimates.
    state: the estimator's state; default `init(...)`.
    init_hparams: keyword arguments of `init`.
    exact: the exact gradient if already computed (`exact_gradient`).
    **hparams: keyword arguments of `apply`.

  Returns:
    A dict of arrays: 'mean', 'exact', 'stderr' and 'variance' (flat,
    per parameter), and the scalars 'bias_mean_abs' (mean |bias|),
    'bias_rel' (|bias| / |exact|), 'variance_mean' (mean per-parameter
    variance), 'variance_rel' (trace of the covariance / |exact|^2) and
    'max_z' (max |bias| / stderr).
  """
  if exact is None:
    estimator = estimators_lib.ESTIMATORS[name]
    s = 1
    if estimator.objective == 'multi_sample_bound':
      s = hparams.get('num_samples', estimator.hparams['num_samples'].default)
    exact = exact_gradient(problem, s)
  exact = _flatten(exact, 0)
  grads = _flatten(estimator_gradients(
      key, problem, name, num_estimates=num_estimates, state=state,
      init_hparams=init_hparams, **hparams), 1)  # [num_estimates, P]
  mean = jnp.mean(grads, axis=0)
  variance = jnp.var(grads, axis=0, ddof=1)
  stderr = jnp.sqrt(variance / num_estimates)
  bias = mean - exact
  norm2 = jnp.sum(exact**2)
  return {
      'mean': mean,
      'exact': exact,
      'stderr': stderr,
      'variance': variance,
      'bias_mean_abs': jnp.mean(jnp.abs(bias)),
      'bias_rel': jnp.sqrt(jnp.sum(bias**2) / norm2),
      'variance_mean': jnp.mean(variance),
      'variance_rel': jnp.sum(variance) / norm2,
      'max_z': jnp.max(jnp.abs(bias) / jnp.maximum(stderr, 1e-12)),
  }


def gradient_variance(
    key: Array,
    surrogate_fn: Callable[[Array, PyTree, str], Array],
    params: PyTree,
    names: Sequence[str],
    *,
    num_samples: int = 16,
) -> dict[str, Array]:
  """Variance of several estimators' gradients on the same batch and params.

  For each name, draws `num_samples` gradients of
  `surrogate_fn(key_i, params, name)` with independent keys and returns the
  per-parameter variance averaged over all parameters, under the metric key
  `grad_var/<name>`. Safe under `jax.jit` (names are static).

  Args:
    key: a PRNG key; every estimator gets the same keys.
    surrogate_fn: `(key, params, name) -> scalar` loss whose gradient is the
      named estimator's gradient (e.g. the training loss with the estimator
      `ESTIMATORS[name]` applied to the current batch and state).
    params: the parameters at which the gradients are taken.
    names: estimator names.
    num_samples: the number of gradients per estimator, >= 2.

  Returns:
    `{'grad_var/<name>': scalar}`.
  """
  if num_samples < 2:
    raise ValueError(f'num_samples must be >= 2, got {num_samples}.')
  keys = jax.random.split(key, num_samples)
  out = {}
  for name in names:
    grad_fn = jax.grad(lambda p, k, name=name: surrogate_fn(k, p, name))
    grads = jax.vmap(grad_fn, in_axes=(None, 0))(params, keys)
    flat = _flatten(grads, 1)  # [num_samples, P]
    out[f'grad_var/{name}'] = jnp.mean(jnp.var(flat, axis=0, ddof=1))
  return out
