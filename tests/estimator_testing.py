"""Shared pieces of the estimator tests (not a test file itself).

The statistical tests draw 2e4 independent gradient estimates with a fixed
key on the enumerable toy models of `gumbel.diagnostics` and compare their
mean with the exact gradient of E[f(b)] over all logits and decoder
parameters. Unbiased: every coordinate within 5 standard errors (+1e-3
absolute), a per-coordinate false-alarm rate below 1e-6. Biased: some
coordinate more than 8 standard errors away.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gumbel import diagnostics
from gumbel.estimators import ESTIMATORS

KINDS = ('bernoulli', 'categorical')


def family(name):
  """The registered estimators of module gumbel/estimators/<name>.py, in registry order."""
  return tuple(n for n, e in ESTIMATORS.items() if e.family == name)


# The estimators of each module of gumbel/estimators/, as the registry declares them.
SCORE_FUNCTION = family('score_function')
RELAXED = family('relaxed')
COUPLED = family('coupled')
CONTROL_VARIATES = family('control_variates')
FAMILIES = {'score_function': SCORE_FUNCTION, 'relaxed': RELAXED, 'coupled': COUPLED,
            'control_variates': CONTROL_VARIATES}
# What each estimator declares it is; the statistical tests check it.
UNBIASED = tuple(n for n, e in ESTIMATORS.items() if e.unbiased)
BIASED = tuple(n for n, e in ESTIMATORS.items() if not e.unbiased)
HPARAMS = {'vimco': {'num_samples': 2}, 'annealed_st': {'slope': 2.0}}
NUM_ESTIMATES = 20_000


def problem(kind):
  """The Bernoulli or categorical toy problem, with a fixed key."""
  if kind == 'bernoulli':
    return diagnostics.bernoulli_toy_problem(jax.random.key(0))
  return diagnostics.categorical_toy_problem(jax.random.key(1))


def cases(names, among=None):
  """pytest params `name-kind` for every allowed kind of each name.

  Args:
    names: estimator names, in order.
    among: if given, only the names that are also in `among`.

  Returns:
    A list of `pytest.param(name, kind)`.
  """
  names = [n for n in names if among is None or n in among]
  return [pytest.param(n, k, id=f'{n}-{k}') for n in names for k in KINDS
          if k in ESTIMATORS[n].kinds]


def perturbed_state(name, problem):
  """A state whose learned parts are non-trivial (zero-initialised otherwise)."""
  state = ESTIMATORS[name].init(jax.random.key(7), problem.logits, kind=problem.kind)
  if name in ('nvil', 'relax'):
    params = dict(state['params'])
    net = params.get('net', params)
    w2 = jax.random.normal(jax.random.key(8), net['w2'].shape)
    net = {**net, 'w2': w2, 'b2': jnp.ones_like(net['b2'])}
    params = {**params, 'net': net} if 'net' in params else net
    state = {**state, 'params': params}
  if name in ('sf', 'darn', 'muprop'):
    state = {'mean': jnp.float32(1.5), 'var': jnp.float32(0.5)}  # scale 1.
  if name == 'rebar':
    state = {**state, 'params': {'log_temperature': jnp.log(jnp.float32(0.7)),
                                 'eta': jnp.float32(0.6)}}
  return state


def assert_unbiased(name, kind):
  """Statistical: mean of 2e4 estimates within 5 stderr (+1e-3) of exact."""
  p = problem(kind)
  r = diagnostics.bias_variance(
      jax.random.key(3), p, name, num_estimates=NUM_ESTIMATES,
      state=perturbed_state(name, p), **HPARAMS.get(name, {}))
  err = np.abs(r['mean'] - r['exact'])
  assert np.all(err <= 5 * r['stderr'] + 1e-3), (float(r['max_z']), float(r['bias_rel']))


def assert_biased(name, kind):
  """Statistical: some coordinate more than 8 standard errors off."""
  r = diagnostics.bias_variance(
      jax.random.key(4), problem(kind), name, num_estimates=NUM_ESTIMATES,
      **HPARAMS.get(name, {}))
  assert r['max_z'] > 8
  assert r['bias_rel'] > 0.02


def flops(fn, *args):
  """XLA's count of the floating-point operations of the compiled fn(*args)."""
  compiled = jax.jit(fn).lower(*args).compile(diagnostics.FAST_COMPILE)
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):  # Older JAX: one dict per computation.
    cost = cost[0]
  return float(cost['flops'])


def matmul_objective(params, z):
  """A per-example objective whose cost is a [batch, 1024] @ [1024, 1024]
  matmul: z [batch, ...] -> [batch]."""
  h = jnp.tanh(z.reshape(z.shape[0], -1) @ params['w1'])  # [batch, 1024]
  return jnp.sum(jnp.tanh(h @ params['w2']), axis=1)


def matmul_params(event_size, hidden=1024):
  k1, k2 = jax.random.split(jax.random.key(20))
  return {'w1': jax.random.normal(k1, (event_size, hidden)) / np.sqrt(event_size),
          'w2': jax.random.normal(k2, (hidden, hidden)) / np.sqrt(hidden)}
