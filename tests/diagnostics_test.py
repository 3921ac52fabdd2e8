"""Tests for gumbel.diagnostics (enumeration, training state, grad variance)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gumbel import diagnostics
from gumbel.estimators import ESTIMATORS


@pytest.mark.parametrize('kind,event_shape,count', [
    ('bernoulli', (8,), 256), ('categorical', (3, 4), 64)])
def test_enumerate_configurations(kind, event_shape, count):
  configs = diagnostics.enumerate_configurations(kind, event_shape)
  assert configs.shape == (count,) + event_shape
  assert len({tuple(c.ravel()) for c in np.asarray(configs)}) == count
  logits = jax.random.normal(jax.random.key(0), (2,) + event_shape)
  probs = jnp.exp(diagnostics._log_q(logits, configs, kind)).sum(0)
  np.testing.assert_allclose(probs, 1.0, rtol=1e-5)


def test_enumerate_rejects_unknown_kind():
  with pytest.raises(ValueError, match='kind'):
    diagnostics.enumerate_configurations('gaussian', (3,))


@pytest.mark.parametrize('kind', ['bernoulli', 'categorical'])
def test_exact_gradient_matches_finite_differences(kind):
  """Central differences of the enumerated objective (float32, atol 2e-2)."""
  problem = (diagnostics.bernoulli_toy_problem(jax.random.key(0)) if kind == 'bernoulli'
             else diagnostics.categorical_toy_problem(jax.random.key(1)))
  grad = diagnostics.exact_gradient(problem)['logits']
  h = 1e-2
  direction = jax.random.normal(jax.random.key(2), problem.logits.shape)
  obj = lambda l: diagnostics.exact_objective(problem, l, problem.params)
  fd = (obj(problem.logits + h * direction) - obj(problem.logits - h * direction)) / (2 * h)
  np.testing.assert_allclose(jnp.sum(grad * direction), fd, atol=2e-2, rtol=1e-2)


def test_multisample_objective_is_above_single_sample():
  """Jensen: E[log mean_s exp f(b_s)] >= E[f(b)], equality for S = 1."""
  problem = diagnostics.categorical_toy_problem(jax.random.key(1))
  one = diagnostics.exact_objective(problem, problem.logits, problem.params, 1)
  two = diagnostics.exact_objective(problem, problem.logits, problem.params, 2)
  assert two > one + 1e-3


@pytest.mark.parametrize('name,hparams', [
    ('rebar', {'cv_learning_rate': 1e-2}),
    ('nvil', {'normalize': False, 'baseline_learning_rate': 1e-2})])
def test_trained_state_reduces_logits_variance(name, hparams):
  """Statistical: 500 updates of the estimator's own state cut the variance
  of the logits' gradient (2e4 estimates each, >5% reduction)."""
  problem = diagnostics.categorical_toy_problem(jax.random.key(1))
  trained = diagnostics.train_estimator_state(
      jax.random.key(3), problem, name, num_steps=500, **hparams)
  eval_hparams = {k: v for k, v in hparams.items() if k == 'normalize'}
  before = diagnostics.bias_variance(jax.random.key(4), problem, name,
                                     num_estimates=20_000, **eval_hparams)
  after = diagnostics.bias_variance(jax.random.key(4), problem, name,
                                    num_estimates=20_000, state=trained, **eval_hparams)
  n = problem.logits.size
  assert np.sum(after['variance'][:n]) < 0.95 * np.sum(before['variance'][:n])
  assert after['max_z'] < 5  # Still unbiased.


def test_gradient_variance():
  """grad_var/<name>: 0 for straight-through on a linear f, matches numpy."""
  problem = diagnostics.bernoulli_toy_problem(jax.random.key(0))
  a = jnp.arange(8.0)

  def surrogate_fn(key, params, name):
    f = lambda z: jnp.sum(z * a[None], 1) * params['scale']
    s, _, _ = ESTIMATORS[name].apply(key, params['logits'], f,
                                     ESTIMATORS[name].init(key, params['logits'],
                                                           kind='bernoulli'),
                                     kind='bernoulli')
    return jnp.mean(s)

  params = {'logits': problem.logits, 'scale': jnp.float32(1.0)}
  key = jax.random.key(5)
  out = jax.jit(lambda k, p: diagnostics.gradient_variance(
      k, surrogate_fn, p, ('st', 'sf'), num_samples=64))(key, params)
  assert set(out) == {'grad_var/st', 'grad_var/sf'}
  grads = jax.jit(jax.vmap(jax.grad(lambda p, k: surrogate_fn(k, p, 'sf')),
                           in_axes=(None, 0)))(params, jax.random.split(key, 64))
  flat = np.concatenate([np.reshape(grads['logits'], (64, -1)),
                         np.reshape(grads['scale'], (64, 1))], axis=1)
  np.testing.assert_allclose(out['grad_var/sf'], np.mean(np.var(flat, 0, ddof=1)),
                             rtol=1e-4)
  # st's logits gradient is deterministic for linear f; only 'scale' varies.
  assert out['grad_var/st'] < 0.1 * out['grad_var/sf']
  with pytest.raises(ValueError, match='num_samples'):
    diagnostics.gradient_variance(key, surrogate_fn, params, ('st',), num_samples=1)
