"""Tests for gumbel.estimators against exact enumeration.

Most tests here are statistical: with a fixed key they draw 2e4 independent
gradient estimates on the enumerable toy models of `gumbel.diagnostics` and
compare their mean with the exact gradient of E[f(b)] over all logits and
decoder parameters. Unbiased: every coordinate within 5 standard errors
(+1e-3 absolute), a per-coordinate false-alarm rate below 1e-6. Biased: some
coordinate more than 8 standard errors away. Run with
`JAX_NUMPY_RANK_PROMOTION=raise python -m pytest tests/estimators_test.py`.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gumbel import diagnostics
from gumbel import estimators
from gumbel.estimators import ESTIMATORS

KINDS = ('bernoulli', 'categorical')
UNBIASED = ('sf', 'nvil', 'muprop', 'rebar', 'relax', 'arm', 'arsm', 'disarm',
            'vimco')
BIASED = ('darn', 'st', 'annealed_st', 'gumbel_softmax', 'st_gumbel_softmax',
          'gumbel_rao', 'reinmax')
HPARAMS = {'vimco': {'num_samples': 2}, 'annealed_st': {'slope': 2.0}}
NUM_ESTIMATES = 20_000


def _problem(kind):
  if kind == 'bernoulli':
    return diagnostics.bernoulli_toy_problem(jax.random.key(0))
  return diagnostics.categorical_toy_problem(jax.random.key(1))


def _cases(names):
  return [pytest.param(n, k, id=f'{n}-{k}') for n in names for k in KINDS
          if k in ESTIMATORS[n].kinds]


def _perturbed_state(name, problem):
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


def test_registry_has_every_estimator():
  required = {'sf', 'nvil', 'darn', 'muprop', 'st', 'annealed_st',
              'gumbel_softmax', 'st_gumbel_softmax', 'rebar', 'relax', 'arm',
              'arsm', 'disarm', 'vimco', 'gumbel_rao', 'reinmax'}
  assert required <= set(ESTIMATORS)
  for name, estimator in ESTIMATORS.items():
    assert estimator.name == name
    assert estimator.apply.__doc__ and 'References:' in estimator.apply.__doc__
  assert set(UNBIASED) | set(BIASED) == set(ESTIMATORS)
  assert all(ESTIMATORS[n].unbiased for n in UNBIASED)
  assert not any(ESTIMATORS[n].unbiased for n in BIASED)


def test_unknown_name_lists_valid_names():
  with pytest.raises(ValueError, match='valid names are: .*rebar.*sf'):
    ESTIMATORS['reinforce']
  with pytest.raises(KeyError):
    estimators.get_estimator('reinforce')
  assert 'reinforce' not in ESTIMATORS


def test_disarm_rejects_categorical_and_suggests_arm():
  logits = jnp.zeros((2, 3, 4))
  with pytest.raises(ValueError, match=r"disarm.*'bernoulli'.*arm \(ARSM\)"):
    ESTIMATORS['disarm'].apply(jax.random.key(0), logits,
                               lambda z: z.sum((1, 2)), (), kind='categorical')


def test_arsm_rejects_bernoulli():
  with pytest.raises(ValueError, match="arsm.*'categorical'"):
    ESTIMATORS['arsm'].apply(jax.random.key(0), jnp.zeros((2, 3)),
                             lambda z: z.sum(1), (), kind='bernoulli')


def test_arsm_with_two_classes_has_the_mean_of_bernoulli_arm():
  """Statistical: ARSM on logits (l, 0) matches ARM on l (5 stderr + 1e-3).

  Class 0 of the two-class model is the Bernoulli unit's 1, so the gradient
  with respect to l is that with respect to the first categorical logit.
  """
  bern = _problem('bernoulli')
  logits2 = jnp.stack([bern.logits, jnp.zeros_like(bern.logits)], -1)  # [batch, D, 2]
  cat = bern._replace(kind='categorical', logits=logits2,
                      objective=lambda params, z: bern.objective(params, z[..., 0]))
  # The comparison is between the two means; `exact` only skips enumeration.
  exact = {'logits': jnp.zeros_like(bern.logits), 'params': bern.params}
  arm = diagnostics.bias_variance(jax.random.key(16), bern, 'arm',
                                  num_estimates=NUM_ESTIMATES, exact=exact)
  arsm = diagnostics.bias_variance(
      jax.random.key(17), cat, 'arsm', num_estimates=NUM_ESTIMATES,
      exact={**exact, 'logits': jnp.zeros_like(logits2)})
  n = bern.logits.size

  def first_class(x):  # Flat [2n + params] -> [n + params]; logits come first.
    return jnp.concatenate([x[:2 * n].reshape(-1, 2)[:, 0], x[2 * n:]])

  se = np.sqrt(arm['stderr']**2 + first_class(arsm['stderr'])**2)
  err = np.abs(arm['mean'] - first_class(arsm['mean']))
  assert np.all(err <= 5 * se + 1e-3)


def test_bad_kind_and_logits_shape():
  f = lambda z: z.sum(1)
  with pytest.raises(ValueError, match='kind must be one of'):
    ESTIMATORS['sf'].apply(jax.random.key(0), jnp.zeros((2, 3)), f, None,
                           kind='gaussian')
  with pytest.raises(ValueError, match=r'\[batch, D, K\]'):
    ESTIMATORS['st'].apply(jax.random.key(0), jnp.zeros((2, 3)), f, (),
                           kind='categorical')


@pytest.mark.parametrize('name', list(ESTIMATORS))
def test_jit_shapes_and_finite(name):
  """Jitted gradient steps: [batch] surrogate, finite grads, one trace.

  On the categorical model where allowed (the statistical tests compile both
  kinds' gradients too).
  """
  kind = ESTIMATORS[name].kinds[-1]
  problem = _problem(kind)
  estimator = ESTIMATORS[name]
  state = estimator.init(jax.random.key(0), problem.logits, kind=kind)

  chex.clear_trace_counter()

  @functools.partial(jax.jit, compiler_options=diagnostics.FAST_COMPILE)
  @chex.assert_max_traces(n=1)
  def step(key, logits, params, state):
    def loss(logits, params):
      s, aux, new_state = estimator.apply(key, logits, problem.f(params), state,
                                          kind=kind, **HPARAMS.get(name, {}))
      return jnp.mean(s), (s, new_state)
    return jax.grad(loss, argnums=(0, 1), has_aux=True)(logits, params)

  for i in range(2):
    grads, (s, new_state) = step(jax.random.key(i), problem.logits,
                                 problem.params, state)
  chex.assert_shape(s, (problem.logits.shape[0],))
  chex.assert_trees_all_equal_structs(new_state, state)
  chex.assert_tree_all_finite((grads, s, new_state))


@pytest.mark.parametrize('name,kind', _cases(UNBIASED))
def test_unbiased_against_enumeration(name, kind):
  """Statistical: mean of 2e4 estimates within 5 stderr (+1e-3) of exact."""
  problem = _problem(kind)
  r = diagnostics.bias_variance(
      jax.random.key(3), problem, name, num_estimates=NUM_ESTIMATES,
      state=_perturbed_state(name, problem), **HPARAMS.get(name, {}))
  err = np.abs(r['mean'] - r['exact'])
  assert np.all(err <= 5 * r['stderr'] + 1e-3), (float(r['max_z']), float(r['bias_rel']))


@pytest.mark.parametrize('name,kind', _cases(BIASED))
def test_biased_shows_bias(name, kind):
  """Statistical: some coordinate more than 8 standard errors off."""
  r = diagnostics.bias_variance(
      jax.random.key(4), _problem(kind), name, num_estimates=NUM_ESTIMATES,
      **HPARAMS.get(name, {}))
  assert r['max_z'] > 8
  assert r['bias_rel'] > 0.02


@pytest.mark.parametrize('kind', KINDS)
def test_gumbel_softmax_bias_shrinks_with_temperature(kind):
  """Statistical: the relaxation's bias at tau = 0.3 is below that at tau = 1."""
  problem = _problem(kind)
  bias = [diagnostics.bias_variance(jax.random.key(5), problem, 'gumbel_softmax',
                                    num_estimates=5_000, temperature=t)['bias_rel']
          for t in (1.0, 0.3)]
  assert bias[1] < 0.7 * bias[0]


@pytest.mark.parametrize('kind', KINDS)
def test_gumbel_rao_has_st_gumbel_softmax_mean_and_less_variance(kind):
  """Statistical: Rao-Blackwellisation keeps the mean and cuts the variance."""
  problem = _problem(kind)
  gr = diagnostics.bias_variance(jax.random.key(6), problem, 'gumbel_rao',
                                 num_estimates=NUM_ESTIMATES, num_conditional=20)
  st = diagnostics.bias_variance(jax.random.key(7), problem, 'st_gumbel_softmax',
                                 num_estimates=NUM_ESTIMATES)
  se = np.sqrt(gr['stderr']**2 + st['stderr']**2)
  assert np.all(np.abs(gr['mean'] - st['mean']) <= 5 * se + 1e-3)
  n = problem.logits.size  # The logits come first in the flat gradient.
  assert np.sum(gr['variance'][:n]) < 0.95 * np.sum(st['variance'][:n])


@pytest.mark.parametrize('kind', KINDS)
def test_straight_through_exact_for_linear_objectives(kind):
  """Straight-through is exact for f linear in b: every estimate, 1e-5."""
  problem = _problem(kind)
  a = jax.random.normal(jax.random.key(9), problem.logits.shape[1:])
  linear = problem._replace(
      objective=lambda params, z: jnp.sum((z * a[None]).reshape(z.shape[0], -1), 1)
      + 0.0 * params['c'][0])
  exact = diagnostics.exact_gradient(linear)['logits']
  grads = diagnostics.estimator_gradients(
      jax.random.key(0), linear, 'st', num_estimates=16)['logits']
  np.testing.assert_allclose(grads, jnp.broadcast_to(exact, grads.shape), atol=1e-5)


@pytest.mark.parametrize('name', ['rebar', 'relax'])
def test_control_variate_gradient_matches_finite_differences(name):
  """aux['cv_grads'] is d(variance objective)/d(eta, log tau) (rtol 2e-2)."""
  problem = _problem('categorical')
  estimator = ESTIMATORS[name]
  state = _perturbed_state(name, problem) if name == 'rebar' else estimator.init(
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


def test_two_layer_composition_is_unbiased():
  """Statistical: disarm on layer 1 with rebar on layer 2 inside its f.

  A 3 -> 3 Bernoulli belief net (64 joint configurations): the gradient with
  respect to layer 1's logits, layer 2's weights and the decoder is within
  5 standard errors (+1e-3) of the exact one.
  """
  k1, k2, k3, k4 = jax.random.split(jax.random.key(12), 4)
  logits1 = jax.random.normal(k1, (2, 3))
  params = {'w2': jax.random.normal(k2, (3, 3)), 'c2': jnp.zeros(3),
            'v': jax.random.normal(k3, (6,))}
  decoder = lambda p, b1, b2: jnp.tanh(jnp.concatenate([b1, b2], 1) @ p['v'])**2

  def exact_objective(theta):
    configs = diagnostics.enumerate_configurations('bernoulli', (3,))  # [8, 3]
    l1, p = theta['logits1'], theta['params']
    log_q1 = diagnostics._log_q(l1, configs, 'bernoulli')  # [8, batch]

    def given_b1(b1):  # [3] -> [batch]
      b1 = jnp.broadcast_to(b1[None], (2, 3))
      l2 = b1 @ p['w2'] + p['c2'][None]
      log_q2 = diagnostics._log_q(l2, configs, 'bernoulli')  # [8, batch]
      fs = jax.vmap(lambda b2: decoder(p, b1, jnp.broadcast_to(b2[None], (2, 3))))(configs)
      return jnp.sum(jnp.exp(log_q2) * fs, 0)

    return jnp.sum(jnp.exp(log_q1) * jax.vmap(given_b1)(configs))

  theta = {'logits1': logits1, 'params': params}
  exact = diagnostics._flatten(jax.grad(exact_objective)(theta), 0)
  rebar_state = ESTIMATORS['rebar'].init(k4, jnp.zeros((2, 3)), kind='bernoulli')

  def one(key):
    k_outer, k_inner = jax.random.split(key)

    def surrogate(theta):
      p = theta['params']

      def f1(b1):
        l2 = b1 @ p['w2'] + p['c2'][None]
        s2, _, _ = ESTIMATORS['rebar'].apply(
            k_inner, l2, lambda b2: decoder(p, b1, b2), rebar_state, kind='bernoulli')
        return s2

      s1, _, _ = ESTIMATORS['disarm'].apply(k_outer, theta['logits1'], f1, (),
                                            kind='bernoulli')
      return jnp.sum(s1)

    return diagnostics._flatten(jax.grad(surrogate)(theta), 0)

  grads = diagnostics._run_fast(jax.vmap(one), jax.random.split(k4, NUM_ESTIMATES))
  mean = jnp.mean(grads, 0)
  stderr = jnp.std(grads, 0) / np.sqrt(NUM_ESTIMATES)
  assert np.all(np.abs(mean - exact) <= 5 * stderr + 1e-3)


def test_darn_exact_for_separable_quadratic_objectives():
  """Statistical: DARN is unbiased when f(1) - f(0) = f'(1/2) for each unit.

  That holds for f(z) = a . z + c . z^2 (a quadratic extension of a function
  of binary units without interactions): logits' gradient within 5 stderr
  (+1e-3) of exact, whereas on the nonlinear toy it is biased
  (`test_biased_shows_bias`).
  """
  problem = _problem('bernoulli')
  a = jax.random.normal(jax.random.key(13), (8,))
  c = jax.random.normal(jax.random.key(14), (8,))
  quadratic = problem._replace(
      objective=lambda params, z: z @ a + (z**2) @ c + 0.0 * params['c'][0])
  r = diagnostics.bias_variance(jax.random.key(15), quadratic, 'darn',
                                num_estimates=NUM_ESTIMATES)
  n = problem.logits.size
  err = np.abs(r['mean'] - r['exact'])[:n]
  assert np.all(err <= 5 * r['stderr'][:n] + 1e-3), float(r['max_z'])
