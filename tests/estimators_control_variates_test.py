"""Tests for gumbel/estimators/control_variates.py: rebar and relax against enumeration and finite differences.

Statistical tests (fixed keys, 2e4 estimates, tolerances in
`estimator_testing`) compare against exact gradients by enumeration.
Run with
`JAX_NUMPY_RANK_PROMOTION=raise python -m pytest tests/estimators_control_variates_test.py`.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimator_testing as et
import gumbel
from gumbel import diagnostics
from gumbel.estimators import ESTIMATORS


@pytest.mark.parametrize('name,kind', et.cases(et.CONTROL_VARIATES, et.UNBIASED))
def test_unbiased_against_enumeration(name, kind):
  """Statistical: mean of 2e4 estimates within 5 stderr (+1e-3) of exact."""
  et.assert_unbiased(name, kind)


@pytest.mark.parametrize('name', ['rebar', 'relax'])
def test_control_variate_gradient_matches_finite_differences(name):
  """aux['cv_grads'] is d(variance objective)/d(eta, log tau) (rtol 2e-2)."""
  problem = et.problem('categorical')
  estimator = ESTIMATORS[name]
  state = et.perturbed_state(name, problem) if name == 'rebar' else estimator.init(
      jax.random.key(0), problem.logits, kind='categorical')
  key = jax.random.key(11)
  f = problem.f()

  @functools.partial(jax.jit, compiler_options=diagnostics.FAST_COMPILE)
  def objective(params):
    _, aux, _ = estimator.apply(key, problem.logits, f, {**state, 'params': params},
                                kind='categorical')
    return aux['variance_objective']

  _, aux, new_state = jax.jit(
      lambda s: estimator.apply(key, problem.logits, f, s, kind='categorical'),
      compiler_options=diagnostics.FAST_COMPILE)(state)
  for leaf in ('eta', 'log_temperature'):
    h = 1e-2
    plus = {**state['params'], leaf: state['params'][leaf] + h}
    minus = {**state['params'], leaf: state['params'][leaf] - h}
    fd = (objective(plus) - objective(minus)) / (2 * h)
    np.testing.assert_allclose(aux['cv_grads'][leaf], fd, rtol=2e-2, atol=1e-3)
    assert new_state['params'][leaf] != state['params'][leaf]


# ----------------------------------------------------------------------------
# `Estimator.chain`: several stochastic layers ([REBAR]'s multilayer form).
# ----------------------------------------------------------------------------

_CHAIN_KINDS = {'bernoulli': (2, 3), 'categorical': (2, 2, 3)}  # logits [batch, ...].


def _chain_problem(kind):
  """Two layers: logits1 fixed, logits2 = h1 @ w (+ bias); f of both samples."""
  shape = _CHAIN_KINDS[kind]
  k1, k2, k3, k4 = jax.random.split(jax.random.key(30), 4)
  event = int(np.prod(shape[1:]))
  logits1 = jax.random.normal(k1, shape)
  params = {'w': jax.random.normal(k2, (event, event)), 'bias': jax.random.normal(k3, (1,) + shape[1:]),
            'target': jax.random.normal(k4, shape)}

  def logits2(p, h1):
    return (h1.reshape(h1.shape[0], -1) @ p['w']).reshape(h1.shape) + p['bias']

  def f(p, hs):  # Depends on both layers, nonlinearly.
    axes = tuple(range(1, hs[0].ndim))
    return (jnp.sum(jnp.sin(hs[0] * p['target']), axis=axes)
            + jnp.sum((hs[1] - 0.3)**2 * p['target'], axis=axes)) ** 2
  return logits1, params, logits2, f


def _configs(kind, shape):
  """Every discrete value of a layer shaped `shape[1:]`: [n, ...]."""
  if kind == 'bernoulli':
    d = shape[1]
    return jnp.array([[(i >> j) & 1 for j in range(d)] for i in range(2**d)], jnp.float32)
  num_vars, num_classes = shape[1:]
  index = jnp.array([[(i // num_classes**j) % num_classes for j in range(num_vars)]
                     for i in range(num_classes**num_vars)])
  return jax.nn.one_hot(index, num_classes)


def _chain_exact(kind, logits1, params, logits2, f):
  """d E[f(h1, h2)] / d(logits1, params), by enumerating both layers."""
  ops = gumbel.kinds.KIND_OPS[kind]
  configs = _configs(kind, logits1.shape)  # [n, ...]
  n, batch = configs.shape[0], logits1.shape[0]

  def expectation(l1, p):
    h1 = jnp.broadcast_to(configs[:, None], (n, batch) + configs.shape[1:])  # [n, B, ...]
    q1 = jnp.exp(jax.vmap(lambda h: ops.log_prob(l1, h))(h1))  # [n (h1), B]
    l2 = jax.vmap(lambda h: logits2(p, h))(h1)  # [n (h1), B, ...]
    q2 = jnp.exp(jax.vmap(lambda l: jax.vmap(lambda h: ops.log_prob(l, h))(h1))(l2))  # [h1, h2, B]
    fs = jax.vmap(lambda a: jax.vmap(lambda b: f(p, [a, b]))(h1))(h1)  # [h1, h2, B]
    return jnp.sum(q1[:, None] * q2 * fs)
  return jax.grad(expectation, argnums=(0, 1))(logits1, params)


@pytest.mark.parametrize('name,kind', [('rebar', 'bernoulli'), ('relax', 'categorical')])
def test_chain_of_one_layer_is_apply(name, kind):
  """One layer: `chain` is `apply` (value, gradient, aux and new state, exactly)."""
  problem = et.problem(kind)
  estimator = ESTIMATORS[name]
  state = et.perturbed_state(name, problem)
  f = problem.f()
  key = jax.random.key(12)

  def by_apply(logits):
    s, aux, new = estimator.apply(jax.random.split(key, 1)[0], logits, f, state, kind=kind)
    return jnp.sum(s), (aux, new)

  def by_chain(logits):
    s, aux, (new,) = estimator.chain(key, [lambda _: logits], lambda hs: f(hs[0]), [state],
                                     kind=kind)
    return jnp.sum(s), (aux, new)

  (va, (aux_a, new_a)), ga = jax.value_and_grad(by_apply, has_aux=True)(problem.logits)
  (vc, (aux_c, new_c)), gc = jax.value_and_grad(by_chain, has_aux=True)(problem.logits)
  assert float(va) == float(vc)
  np.testing.assert_array_equal(ga, gc)
  assert float(aux_a['variance_objective']) == float(aux_c['variance_objective'])
  for a, c in zip(jax.tree.leaves(new_a), jax.tree.leaves(new_c)):
    np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize('name', ['rebar', 'relax'])
@pytest.mark.parametrize('kind', ['bernoulli', 'categorical'])
def test_chain_of_two_layers_is_unbiased(name, kind):
  """Statistical: 2e4 chain gradients (layer 1's logits, layer 2's parameters and
  f's) within 5 stderr (+1e-3) of the exact gradient, both layers enumerated;
  f depends on both layers' samples. The layers below l must be relaxed from
  noise independent of layer l's: relaxing layer 2 from layer 1's u fails."""
  logits1, params, logits2, f = _chain_problem(kind)
  estimator = ESTIMATORS[name]
  states = [estimator.init(jax.random.key(5 + i), logits1, kind=kind) for i in range(2)]
  if name == 'rebar':  # Non-trivial eta and temperatures.
    states = [{**s, 'params': {'log_temperature': jnp.log(jnp.float32(t)),
                               'eta': jnp.float32(e)}} for s, t, e in zip(states, (0.7, 0.4), (0.6, 1.3))]

  def one(key):
    def surrogate(l1, p):
      s, _, _ = estimator.chain(key, [lambda _: l1, lambda h: logits2(p, h)],
                                lambda hs: f(p, hs), states, kind=kind)
      return jnp.sum(s)
    g1, gp = jax.grad(surrogate, argnums=(0, 1))(logits1, params)
    return jnp.concatenate([g1.reshape(-1)] + [v.reshape(-1) for v in jax.tree.leaves(gp)])

  n = et.NUM_ESTIMATES
  grads = diagnostics._run_fast(jax.vmap(one), jax.random.split(jax.random.key(13), n))  # pylint: disable=protected-access
  mean, stderr = jnp.mean(grads, 0), jnp.std(grads, 0) / np.sqrt(n)
  g1, gp = _chain_exact(kind, logits1, params, logits2, f)
  exact = jnp.concatenate([g1.reshape(-1)] + [v.reshape(-1) for v in jax.tree.leaves(gp)])
  z = jnp.abs(mean - exact) / jnp.maximum(stderr, 1e-12)
  assert np.all(np.abs(mean - exact) <= 5 * stderr + 1e-3), float(jnp.max(z))


@pytest.mark.parametrize('name', ['rebar', 'relax'])
def test_chain_control_variate_gradient_matches_finite_differences(name):
  """aux['cv_grads'] of a two-layer chain is d(summed variance objective)/d(each
  layer's eta, log tau), layer 2's temperature included (it shapes layer 1's
  control variate) (rtol 2e-2)."""
  kind = 'categorical'
  logits1, params, logits2, f = _chain_problem(kind)
  estimator = ESTIMATORS[name]
  states = [estimator.init(jax.random.key(5 + i), logits1, kind=kind) for i in range(2)]
  key = jax.random.key(14)
  fns = [lambda _: logits1, lambda h: logits2(params, h)]
  g = lambda hs: f(params, hs)

  @functools.partial(jax.jit, compiler_options=diagnostics.FAST_COMPILE)
  def objective(all_params):
    _, aux, _ = estimator.chain(key, fns, g, [{**s, 'params': p} for s, p in
                                             zip(states, all_params)], kind=kind)
    return aux['variance_objective']

  _, aux, new_states = jax.jit(lambda s: estimator.chain(key, fns, g, s, kind=kind),
                               compiler_options=diagnostics.FAST_COMPILE)(states)
  base = [s['params'] for s in states]
  for layer in (0, 1):
    for leaf in ('eta', 'log_temperature'):
      h = 1e-2
      plus, minus = [dict(p) for p in base], [dict(p) for p in base]
      plus[layer][leaf] = base[layer][leaf] + h
      minus[layer][leaf] = base[layer][leaf] - h
      fd = (objective(plus) - objective(minus)) / (2 * h)
      np.testing.assert_allclose(aux['cv_grads'][layer][leaf], fd, rtol=2e-2, atol=1e-3)
      assert new_states[layer]['params'][leaf] != base[layer][leaf]
  # Layer 2's temperature reaches the variance objective through layer 1's
  # control variate too: its gradient is not layer 2's own term alone.
  assert abs(float(aux['cv_grads'][1]['log_temperature'])) > 0


def test_chain_bad_input():
  """One state a layer, a known hyperparameter; NaN logits in layer 2 give a NaN value."""
  logits1, params, logits2, f = _chain_problem('bernoulli')
  estimator = ESTIMATORS['rebar']
  state = estimator.init(jax.random.key(5), logits1, kind='bernoulli')
  fns = [lambda _: logits1, lambda h: logits2(params, h)]
  g = lambda hs: f(params, hs)
  with pytest.raises(ValueError, match='one state a layer'):
    estimator.chain(jax.random.key(0), fns, g, [state], kind='bernoulli')
  with pytest.raises(ValueError, match=r"states\[0\] does not come from ESTIMATORS\['rebar'\]"):
    estimator.chain(jax.random.key(0), fns, g, {'layer1': state, 'layer2': state},
                    kind='bernoulli')
  relax_state = ESTIMATORS['relax'].init(jax.random.key(5), logits1, kind='bernoulli')
  with pytest.raises(ValueError, match=r"states\[1\] does not come from ESTIMATORS\['rebar'\]"):
    estimator.chain(jax.random.key(0), fns, g, [state, relax_state], kind='bernoulli')
  with pytest.raises(ValueError, match='unknown_hparam'):
    estimator.chain(jax.random.key(0), fns, g, [state, state], kind='bernoulli',
                    unknown_hparam=1)
  bad = {**params, 'bias': params['bias'].at[0].set(jnp.nan)}
  s, _, _ = estimator.chain(jax.random.key(0), [fns[0], lambda h: logits2(bad, h)],
                            g, [state, state], kind='bernoulli')
  assert np.all(np.isnan(np.asarray(s)))
  assert all(ESTIMATORS[n].chain is None for n in ESTIMATORS if n not in ('rebar', 'relax'))
