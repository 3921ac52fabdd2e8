"""Tests for gumbel/estimators/__init__.py: the registry and the shared contract.

Every registered estimator: its registration, jitted gradient steps, and
(statistical, see `estimator_testing`) a two-layer model built from two
estimators. Run with
`JAX_NUMPY_RANK_PROMOTION=raise python -m pytest tests/estimators_registry_test.py`.
"""

import functools
import inspect
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimator_testing as et
import gumbel
from gumbel import diagnostics
from gumbel import estimators
from gumbel.estimators import ESTIMATORS


def test_registry_has_every_estimator():
  required = {'sf', 'nvil', 'darn', 'muprop', 'st', 'annealed_st',
              'gumbel_softmax', 'st_gumbel_softmax', 'rebar', 'relax', 'arm',
              'arsm', 'disarm', 'vimco', 'gumbel_rao', 'reinmax', 'gapped_st', 'zgr',
              'rloo'}
  assert required <= set(ESTIMATORS)
  for name, estimator in ESTIMATORS.items():
    assert estimator.name == name
    assert estimator.apply.__doc__ and 'References:' in estimator.apply.__doc__
  assert set(et.UNBIASED) | set(et.BIASED) == set(ESTIMATORS)
  assert all(ESTIMATORS[n].unbiased for n in et.UNBIASED)
  assert not any(ESTIMATORS[n].unbiased for n in et.BIASED)


FAMILIES = et.FAMILIES


def _functions(name):
  """The family functions behind `ESTIMATORS[name]`: (apply's, init's)."""
  estimator = ESTIMATORS[name]
  return (inspect.getclosurevars(estimator.apply).nonlocals['fn'],
          inspect.getclosurevars(estimator.init).nonlocals['init'])


def test_families_cover_the_registry():
  assert sorted(sum(FAMILIES.values(), ())) == sorted(ESTIMATORS)
  for name, estimator in ESTIMATORS.items():
    apply_fn, _ = _functions(name)
    assert apply_fn.__module__ == f'gumbel.estimators.{estimator.family}', name


@pytest.mark.parametrize('family', list(FAMILIES))
def test_each_family_lives_in_its_module(family):
  module = getattr(estimators, family)
  assert module.__name__ == f'gumbel.estimators.{family}'
  assert FAMILIES[family]
  for name in FAMILIES[family]:
    assert ESTIMATORS[name].apply.__doc__.startswith(getattr(module, name).__doc__)
    assert getattr(estimators, name) is getattr(module, name)  # Re-exported.
    assert _functions(name)[0] is getattr(module, name)


def _keyword_defaults(fn):
  """`{name: default}` of fn's keyword-only parameters but `kind`."""
  return {p.name: p.default for p in inspect.signature(fn).parameters.values()
          if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != 'kind'}


@pytest.mark.parametrize('name', list(ESTIMATORS))
def test_function_defaults_are_the_declared_defaults(name):
  """The family functions' Python defaults (apply's and init's) equal, value
  and type, what `Estimator.hparams` / `init_hparams` declare, so the two
  cannot drift apart."""
  estimator = ESTIMATORS[name]
  apply_fn, init_fn = _functions(name)
  for fn, declared in ((apply_fn, estimator.hparams), (init_fn, estimator.init_hparams)):
    defaults = _keyword_defaults(fn)
    assert sorted(defaults) == sorted(declared), (fn.__name__, defaults, declared)
    for k, spec in declared.items():
      assert (type(defaults[k]), defaults[k]) == (type(spec.default), spec.default), (
          fn.__name__, k, defaults[k], spec.default)


def test_unsupported_kind_suggests_the_unbiased_estimators_of_that_kind():
  """The alternatives come from the registry: every unbiased estimator that
  allows the kind, arm named as ARSM on categorical layers."""
  f = lambda z: jnp.sum(z.reshape(z.shape[0], -1), 1)
  for name, logits, kind in (('disarm', jnp.zeros((2, 3, 4)), 'categorical'),
                             ('arsm', jnp.zeros((2, 3)), 'bernoulli')):
    with pytest.raises(ValueError, match=f'For {kind} layers use e.g. ') as error:
      ESTIMATORS[name].apply(jax.random.key(0), logits, f, (), kind=kind)
    suggested = str(error.value).split('use e.g. ')[1].rstrip('.').replace(' or ', ', ')
    expected = [n for n in et.UNBIASED if kind in ESTIMATORS[n].kinds and n != 'arsm']
    assert [s.replace(' (ARSM)', '') for s in suggested.split(', ')] == expected


def test_arm_on_categorical_layers_is_arsm():
  """What the error messages call 'arm (ARSM)': the same surrogate and gradient."""
  p = et.problem('categorical')

  def grad(name):
    return jax.grad(lambda l: jnp.sum(ESTIMATORS[name].apply(
        jax.random.key(5), l, p.f(), (), kind='categorical')[0]))(p.logits)

  np.testing.assert_array_equal(grad('arm'), grad('arsm'))


def test_public_api_unchanged():
  assert gumbel.ESTIMATORS is estimators.ESTIMATORS
  assert gumbel.Estimator is estimators.Estimator
  assert gumbel.get_estimator is estimators.get_estimator
  assert isinstance(gumbel.get_estimator('rebar'), gumbel.Estimator)


def test_unknown_name_lists_valid_names():
  with pytest.raises(ValueError, match='valid names are: .*rebar.*sf'):
    ESTIMATORS['reinforce']
  with pytest.raises(KeyError):
    estimators.get_estimator('reinforce')
  assert 'reinforce' not in ESTIMATORS


def test_bad_kind_and_logits_shape():
  f = lambda z: z.sum(1)
  with pytest.raises(ValueError, match='kind must be one of'):
    ESTIMATORS['sf'].apply(jax.random.key(0), jnp.zeros((2, 3)), f, None,
                           kind='gaussian')
  with pytest.raises(ValueError, match=r'\[batch, D, K\]'):
    ESTIMATORS['st'].apply(jax.random.key(0), jnp.zeros((2, 3)), f, (),
                           kind='categorical')


_LOGITS_SHAPES = {'bernoulli': (2, 3), 'categorical': (2, 3, 4)}
_BAD_OBJECTIVES = {
    # name: (f, what the message says f returned)
    'scalar': (lambda z: jnp.sum(z), r'an array of shape \(\) \(a scalar'),
    'not_reduced': (lambda z: z.reshape(z.shape[0], -1),
                    r'an array of shape \(2, (3|12)\) \(f did not reduce'),
    'batch_reduced': (lambda z: jnp.sum(z, axis=0), r'an array of shape \((3,|3, 4)\)'),
    'tuple': (lambda z: (jnp.sum(z.reshape(z.shape[0], -1), 1), {}), r'a tuple, not an array'),
    'float': (lambda z: 1.0, r'a float, not an array'),
}


@pytest.mark.parametrize('name,kind', et.cases(ESTIMATORS))
def test_objective_of_wrong_shape_raises_at_trace_time(name, kind):
  """Under jit and grad, for every estimator, before anything runs."""
  logits = jnp.zeros(_LOGITS_SHAPES[kind])
  estimator = ESTIMATORS[name]
  state = estimator.init(jax.random.key(0), logits, kind=kind)
  for f, returned in _BAD_OBJECTIVES.values():
    def loss(logits, f=f):
      s, _, _ = estimator.apply(jax.random.key(1), logits, f, state, kind=kind,
                                **et.HPARAMS.get(name, {}))
      return jnp.sum(s)
    shape = re.escape(str(_LOGITS_SHAPES[kind]))
    with pytest.raises(ValueError, match=(
        rf"Estimator '{name}': f must map a sample of shape {shape} to the "
        rf'per-example objective of shape \(batch,\) = \(2,\), but returned '
        rf'{returned}.*Reduce over the event axes, not over the batch axis 0')):
      jax.jit(jax.grad(loss))(logits)


@pytest.mark.parametrize('name,kind', et.cases(ESTIMATORS))
def test_kind_that_does_not_match_the_logits_rank_raises(name, kind):
  """Ranks are strict: the other kind's rank, one less and one more."""
  (other,) = [k for k in et.KINDS if k != kind]
  estimator = ESTIMATORS[name]
  state = estimator.init(jax.random.key(0), jnp.zeros(_LOGITS_SHAPES[kind]), kind=kind)
  expected = r'\[batch, D\]' if kind == 'bernoulli' else r'\[batch, D, K\]'
  right = _LOGITS_SHAPES[kind]
  for shape in (_LOGITS_SHAPES[other], right[1:], right + (5,)):
    if other in estimator.kinds and shape == _LOGITS_SHAPES[other]:
      suggestion = rf"did you mean kind='{other}'\?"
    elif shape == _LOGITS_SHAPES[other]:
      suggestion = rf"fits kind='{other}'.*which '{name}' does not support"
    elif shape == right[1:]:
      suggestion = r'add the batch axis: logits\[None\]'
    else:
      suggestion = r'Merge the event axes'
    with pytest.raises(ValueError, match=(
        rf"Estimator '{name}': kind='{kind}' needs logits of shape {expected} "
        rf'.*got shape {re.escape(str(shape))}.*{suggestion}')):
      jax.jit(lambda logits: estimator.apply(
          jax.random.key(1), logits, lambda z: jnp.sum(z.reshape(z.shape[0], -1), 1),
          state, kind=kind, **et.HPARAMS.get(name, {}))[0])(jnp.zeros(shape))


# How many evaluations of f the surrogate's value needs: the average of the
# antithetic pair (arm on Bernoulli units, disarm), the num_samples=2
# samples of vimco's bound, rloo's mean over its default 4 samples, else f at
# the one sample.
_RLOO_SAMPLES = ESTIMATORS['rloo'].hparams['num_samples'].default
_VALUE_EVALUATIONS = {('arm', 'bernoulli'): 2, ('disarm', 'bernoulli'): 2,
                      ('vimco', 'bernoulli'): 2, ('vimco', 'categorical'): 2,
                      ('rloo', 'bernoulli'): _RLOO_SAMPLES,
                      ('rloo', 'categorical'): _RLOO_SAMPLES}


@pytest.mark.parametrize('name,kind', et.cases(ESTIMATORS))
def test_value_only_call_costs_what_the_value_needs(name, kind):
  """Compiled FLOPs of the surrogate alone (no gradient, aux and state
  discarded), with an f dominated by a 1024 x 1024 matmul: within 10% of
  f's cost times the evaluations the value needs. The gradient terms
  (pseudo-samples, control variates, Taylor baselines, score terms) are
  zero in value and must not be computed."""
  logits = jax.random.normal(jax.random.key(21), (8, 16) if kind == 'bernoulli' else (8, 4, 4))
  params = et.matmul_params(16)
  estimator = ESTIMATORS[name]
  state = estimator.init(jax.random.key(0), logits, kind=kind)

  def value(logits, params):
    s, _, _ = estimator.apply(jax.random.key(1), logits,
                              lambda z: et.matmul_objective(params, z), state,
                              kind=kind, **et.HPARAMS.get(name, {}))
    return s

  one = et.flops(et.matmul_objective, params, jnp.zeros(logits.shape))
  needed = _VALUE_EVALUATIONS.get((name, kind), 1)
  ratio = et.flops(value, logits, params) / one
  assert needed * 0.99 < ratio < needed + 0.1, ratio


def _gradient_step(name, kind, problem):
  """(key, logits, params, state) -> (grads of the mean surrogate, (surrogate, new state))."""
  estimator = ESTIMATORS[name]

  def step(key, logits, params, state):
    def loss(logits, params):
      s, _, new_state = estimator.apply(key, logits, problem.f(params), state, kind=kind,
                                        **et.HPARAMS.get(name, {}))
      return jnp.mean(s), (s, new_state)
    return jax.grad(loss, argnums=(0, 1), has_aux=True)(logits, params)
  return step


@pytest.mark.parametrize('name', list(ESTIMATORS))
def test_jit_shapes_and_finite(name):
  """Jitted gradient steps: [batch] surrogate, finite grads, one trace.

  On the categorical model where allowed (the statistical tests compile both
  kinds' gradients too).
  """
  kind = ESTIMATORS[name].kinds[-1]
  problem = et.problem(kind)
  state = ESTIMATORS[name].init(jax.random.key(0), problem.logits, kind=kind)
  chex.clear_trace_counter()
  step = functools.partial(jax.jit, compiler_options=diagnostics.FAST_COMPILE)(
      chex.assert_max_traces(_gradient_step(name, kind, problem), n=1))
  for i in range(2):
    grads, (s, new_state) = step(jax.random.key(i), problem.logits,
                                 problem.params, state)
  chex.assert_shape(s, (problem.logits.shape[0],))
  chex.assert_trees_all_equal_structs(new_state, state)
  chex.assert_tree_all_finite((grads, s, new_state))


@pytest.mark.parametrize('name,kind', et.cases(list(ESTIMATORS)))
def test_extreme_logits_give_finite_estimates(name, kind):
  """Logits of +-1e4, +-30 and +-17 (units sure of their value, beyond where
  float32's sigmoid rounds to 1) beside moderate ones: the surrogate, its
  gradients and the new state are finite for every estimator, over several
  keys (the guide's "no NaN/inf for extreme logits")."""
  problem = et.problem(kind)
  extremes = jnp.asarray([1e4, -1e4, 30.0, -30.0, 17.0, -17.0, 0.5, -2.0])
  logits = jnp.resize(extremes, problem.logits.size).reshape(problem.logits.shape)
  state = ESTIMATORS[name].init(jax.random.key(0), logits, kind=kind)
  step = jax.jit(_gradient_step(name, kind, problem))
  for i in range(3):
    grads, (s, state) = step(jax.random.key(i), logits, problem.params, state)
    chex.assert_tree_all_finite((grads, s, state))


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

  grads = diagnostics._run_fast(jax.vmap(one), jax.random.split(k4, et.NUM_ESTIMATES))
  mean = jnp.mean(grads, 0)
  stderr = jnp.std(grads, 0) / np.sqrt(et.NUM_ESTIMATES)
  assert np.all(np.abs(mean - exact) <= 5 * stderr + 1e-3)


# ----------------------------------------------------------------------------
# Declared hyperparameters: shown, checked, validated.
# ----------------------------------------------------------------------------

_CAT = jnp.zeros((4, 3, 5))
_F_CAT = lambda z: jnp.sum(z.reshape(z.shape[0], -1), axis=1)


def _state(name, logits=_CAT, kind='categorical', **init_hparams):
  return ESTIMATORS[name].init(jax.random.key(0), logits, kind=kind, **init_hparams)


def test_signature_and_help_show_the_declared_hyperparameters():
  assert str(inspect.signature(ESTIMATORS['vimco'].apply)) == (
      '(key, logits, f, state, *, kind, num_samples=5)')
  assert str(inspect.signature(ESTIMATORS['relax'].init)) == (
      '(key, logits, *, kind, temperature=0.5, eta=1.0, hidden=32)')
  assert str(inspect.signature(ESTIMATORS['st'].apply)) == '(key, logits, f, state, *, kind)'
  for name, estimator in ESTIMATORS.items():
    assert estimator.init.__doc__ and name in estimator.init.__doc__
    for hparam in estimator.hparams:
      assert f'{hparam}=' in estimator.apply.__doc__, (name, hparam)
    for hparam in estimator.init_hparams:
      assert f'{hparam}=' in estimator.init.__doc__, (name, hparam)


def test_unknown_hyperparameter_names_the_estimator_and_what_it_takes():
  with pytest.raises(ValueError, match=r"'reinmax' got unknown apply hyperparameter\(s\) "
                     r"\['tau'\]; it takes: temperature=1.0 \(positive\)"):
    ESTIMATORS['reinmax'].apply(jax.random.key(0), _CAT, _F_CAT, (), kind='categorical',
                                tau=0.5)
  with pytest.raises(ValueError, match=r"'st' got unknown apply .*it takes: none"):
    ESTIMATORS['st'].apply(jax.random.key(0), _CAT, _F_CAT, (), kind='categorical',
                           temperature=0.5)
  with pytest.raises(ValueError, match=r"'rebar' got unknown init .*\['hidden'\].*eta=1.0"):
    _state('rebar', hidden=8)


def test_missing_kind_and_foreign_state_raise_value_errors():
  with pytest.raises(ValueError, match=r"Estimator 'rebar': kind must be one of .*kind is "
                     'required'):
    ESTIMATORS['rebar'].apply(jax.random.key(0), _CAT, _F_CAT, _state('rebar'))
  with pytest.raises(ValueError, match=r"Estimator 'rebar'.*kind is required"):
    ESTIMATORS['rebar'].init(jax.random.key(0), _CAT)
  for name, state in (('rebar', ()), ('sf', _state('rebar')), ('st', _state('sf')),
                      ('relax', _state('rebar'))):
    with pytest.raises(ValueError, match=rf"Estimator '{name}': the state does not come "
                       rf"from ESTIMATORS\['{name}'\].init"):
      ESTIMATORS[name].apply(jax.random.key(0), _CAT, _F_CAT, state, kind='categorical')


@pytest.mark.parametrize('bad', [0.0, -1.0, float('inf'), float('nan'), np.asarray([0.5, 0.0])])
@pytest.mark.parametrize('name', ['gumbel_softmax', 'st_gumbel_softmax', 'gumbel_rao',
                                  'reinmax', 'gapped_st'])
def test_bad_temperatures_raise_before_any_nan(name, bad):
  with pytest.raises(ValueError, match=rf"Estimator '{name}': temperature must be"):
    ESTIMATORS[name].apply(jax.random.key(0), _CAT, _F_CAT, (), kind='categorical',
                           temperature=bad)


@pytest.mark.parametrize('name', ['rebar', 'relax'])
def test_bad_init_temperature_raises(name):
  for bad in (0.0, -0.5, float('inf')):
    with pytest.raises(ValueError, match=rf"Estimator '{name}': temperature must be"):
      _state(name, temperature=bad)


def test_other_ranges_are_checked():
  cases = [('vimco', {'num_samples': 1}, 'integer >= 2'),
           ('vimco', {'num_samples': 2.5}, 'integer >= 2'),
           ('gumbel_rao', {'num_conditional': 0}, 'integer >= 1'),
           ('rloo', {'num_samples': 1}, 'integer >= 2'),
           ('gapped_st', {'gap': 0.0}, r'gap \(.*\) must be finite and > 0'),
           ('sf', {'decay': 1.0}, r'in \[0, 1\)'),
           ('sf', {'normalize': 1}, 'True or False'),
           ('annealed_st', {'slope': -2.0}, 'must be'),
           ('rebar', {'cv_learning_rate': 0.0}, 'must be')]
  for name, hparams, message in cases:
    state = _state(name)
    with pytest.raises(ValueError, match=rf"Estimator '{name}'.*{message}"):
      ESTIMATORS[name].apply(jax.random.key(0), _CAT, _F_CAT, state, kind='categorical',
                             **hparams)


@pytest.mark.parametrize('dtype', [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize('name', ['gumbel_softmax', 'st_gumbel_softmax', 'gumbel_rao',
                                  'reinmax', 'gapped_st'])
def test_low_precision_temperatures_are_accepted_eager_and_under_jit(name, dtype):
  apply = functools.partial(ESTIMATORS[name].apply, jax.random.key(0), _CAT, _F_CAT, (),
                            kind='categorical')
  eager, _, _ = apply(temperature=jnp.asarray(0.5, dtype))
  jitted, _, _ = jax.jit(lambda t: apply(temperature=t))(jnp.asarray(0.5, dtype))
  assert np.isfinite(np.asarray(eager, np.float32)).all()
  np.testing.assert_allclose(np.asarray(eager, np.float32), np.asarray(jitted, np.float32),
                             rtol=1e-2)
  state = _state('rebar', temperature=jnp.asarray(0.5, dtype))  # init temperatures too.
  assert np.isfinite(float(state['params']['log_temperature']))


def test_traced_values_are_not_checked():
  """Under jit a temperature is traced: documented as unchecked (no error at trace time)."""
  out = jax.jit(lambda t: ESTIMATORS['reinmax'].apply(
      jax.random.key(0), _CAT, _F_CAT, (), kind='categorical', temperature=t)[0])(-1.0)
  assert out.shape == (4,)


def test_hyperparameter_errors_give_advice_that_fits_the_hyperparameter():
  """A step size gets its own range and default, not the temperature's advice."""
  state = _state('nvil')
  with pytest.raises(ValueError) as e:
    ESTIMATORS['nvil'].apply(jax.random.key(0), _CAT, _F_CAT, state, kind='categorical',
                             baseline_learning_rate=-1.0)
  message = str(e.value)
  assert "Estimator 'nvil': baseline_learning_rate" in message
  assert 'Adam step size' in message and 'the default is 0.001' in message
  assert 'hard=True' not in message and 'discrete' not in message
  with pytest.raises(ValueError, match='hard=True'):  # Temperatures keep the temperature rule.
    ESTIMATORS['gumbel_softmax'].apply(jax.random.key(0), _CAT, _F_CAT, (),
                                       kind='categorical', temperature=-1.0)
