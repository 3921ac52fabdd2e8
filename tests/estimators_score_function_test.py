"""Tests for gumbel/estimators/score_function.py: sf, nvil, darn, muprop and vimco against enumeration.

Statistical tests (fixed keys, 2e4 estimates, tolerances in
`estimator_testing`) compare against exact gradients by enumeration.
Run with
`JAX_NUMPY_RANK_PROMOTION=raise python -m pytest tests/estimators_score_function_test.py`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import estimator_testing as et
from gumbel import diagnostics
from gumbel import estimators


@pytest.mark.parametrize('name,kind', et.cases(et.SCORE_FUNCTION, et.UNBIASED))
def test_unbiased_against_enumeration(name, kind):
  """Statistical: mean of 2e4 estimates within 5 stderr (+1e-3) of exact."""
  et.assert_unbiased(name, kind)


@pytest.mark.parametrize('name,kind', et.cases(et.SCORE_FUNCTION, et.BIASED))
def test_biased_shows_bias(name, kind):
  """Statistical: some coordinate more than 8 standard errors off."""
  et.assert_biased(name, kind)


def _darn_bias(objective, kind='bernoulli', **hparams):
  """DARN on the toy problem with `objective(z)`: (mean - exact, stderr) over the logits."""
  problem = et.problem(kind)
  toy = problem._replace(objective=lambda params, z: objective(z) + 0.0 * params['c'][0])
  r = diagnostics.bias_variance(jax.random.key(15), toy, 'darn', num_estimates=et.NUM_ESTIMATES,
                                **hparams)
  n = problem.logits.size
  return (r['mean'] - r['exact'])[:n], r['stderr'][:n], r['exact'][:n]


def test_darn_exact_for_objectives_quadratic_in_each_unit_with_interactions():
  """Statistical: [MUPROP] eq. 6 (f' at the sample, per unit, x-bar = 1/2) is unbiased
  for f quadratic in each binary unit, interactions between units included, at the
  toy's (random) means: logits' gradient within 5 stderr (+1e-3) of exact. (A Taylor
  term at x-bar with every unit at 1/2 at once is biased here: the interactions.)"""
  k1, k2, k3 = jax.random.split(jax.random.key(13), 3)
  a = jax.random.normal(k1, (8, 8))
  b = jax.random.normal(k2, (8,))
  c = jax.random.normal(k3, (8,))

  def quadratic(z):  # [batch, 8] -> [batch]: z A z + b . z + c . z^2.
    return jnp.einsum('bi,ij,bj->b', z, a, z) + z @ b + (z**2) @ c

  err, stderr, exact = _darn_bias(quadratic)
  assert np.all(np.abs(err) <= 5 * stderr + 1e-3), np.max(np.abs(err) / stderr)
  assert np.max(np.abs(exact)) > 0.1  # Not a trivially zero gradient.


def test_darn_takes_the_derivative_at_the_sample():
  """Statistical: for f = c . z^3, eq. 6's expectation is grad mu (f'(0) + f'(1)) / 2 =
  1.5 c grad mu, 1.5 times the exact c grad mu (a derivative at x-bar = 1/2 would give
  0.75 times): the mean within 5 stderr of 1.5 x exact."""
  c = jax.random.normal(jax.random.key(16), (8,))
  err, stderr, exact = _darn_bias(lambda z: (z**3) @ c)
  mean = err + exact
  assert np.all(np.abs(mean - 1.5 * exact) <= 5 * stderr + 1e-3)
  assert np.max(np.abs(exact)) > 0.1


@pytest.mark.parametrize('center', ['half', 'uniform', 'mean'])
def test_darn_exact_for_objectives_linear_in_each_categorical_variable(center):
  """Statistical: for categorical variables eq. 7 is unbiased for f linear in each one-hot
  variable, whatever the fixed point x-bar (its term then has zero mean)."""
  w = jax.random.normal(jax.random.key(17), (3, 4))

  def linear(z):  # [batch, 3, 4] -> [batch], with a product of two variables' terms.
    t = jnp.sum(z * w[None], axis=-1)  # [batch, 3]
    return t[:, 0] * t[:, 1] + t[:, 2]

  err, stderr, _ = _darn_bias(linear, 'categorical', center=center)
  assert np.all(np.abs(err) <= 5 * stderr + 1e-3), (center, np.max(np.abs(err) / stderr))


def test_darn_center_is_checked():
  problem = et.problem('categorical')
  state = estimators.ESTIMATORS['darn'].init(jax.random.key(0), problem.logits,
                                             kind='categorical')
  with pytest.raises(ValueError, match=r"center must be one of \('half', 'uniform', 'mean'\), "
                     r"got 'median'"):
    estimators.ESTIMATORS['darn'].apply(jax.random.key(1), problem.logits, problem.f(), state,
                                        kind='categorical', center='median')


@pytest.mark.parametrize('kind', et.KINDS)
def test_muprop_normalization_scales_the_residual_signal_only(kind):
  """Exact: [MUPROP] section 2.2 divides the learning signal (the residual) by
  max(1, sqrt(v)); the correction term f'(mu) . grad mu stays unscaled. With the
  running mean c = 0: gradient(v) = (gradient(v = 0) - correction) / sqrt(v) +
  correction, the correction being the gradient as v -> infinity (the same for any key)."""
  problem = et.problem(kind)
  muprop = estimators.ESTIMATORS['muprop']

  def grad(key, var, **hparams):
    state = {'mean': jnp.float32(0.0), 'var': jnp.float32(var)}
    f = lambda logits: jnp.sum(muprop.apply(key, logits, problem.f(), state, kind=kind,
                                            **hparams)[0])
    return jax.grad(f)(problem.logits)

  key = jax.random.key(2)
  correction = grad(key, 1e16)
  np.testing.assert_allclose(correction, grad(jax.random.key(3), 1e16), rtol=1e-5, atol=1e-6)
  assert float(jnp.max(jnp.abs(correction))) > 1e-2
  unscaled = grad(key, 0.0)
  np.testing.assert_allclose(grad(key, 16.0), (unscaled - correction) / 4 + correction,
                             rtol=1e-4, atol=1e-5)
  # The earlier reading, as an option: everything divided by the scale.
  np.testing.assert_allclose(grad(key, 16.0, scale_correction=True), unscaled / 4,
                             rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('kind', et.KINDS)
def test_rloo_variance_falls_with_the_number_of_samples(kind):
  """Statistical: 8 samples give less than half the logits' gradient variance of 2
  (about 1/S for the averaged terms; the leave-one-out baseline also improves
  with S), and both stay unbiased within 5 stderr (+1e-3)."""
  problem = et.problem(kind)
  n = problem.logits.size
  variance = {}
  for s in (2, 8):
    r = diagnostics.bias_variance(jax.random.key(16 + s), problem, 'rloo',
                                  num_estimates=5_000, num_samples=s)
    assert np.all(np.abs(r['mean'] - r['exact']) <= 5 * r['stderr'] + 1e-3), s
    variance[s] = float(np.sum(r['variance'][:n]))
  assert variance[8] < 0.5 * variance[2], variance


@pytest.mark.parametrize('name', ['vimco', 'rloo'])
@pytest.mark.parametrize('kind', ['bernoulli', 'categorical'])
def test_from_samples_is_apply_without_the_sampling(name, kind):
  """`from_samples` on the samples `apply` draws gives apply's value and gradients."""
  from gumbel import kinds  # pylint: disable=g-import-not-at-top
  estimator = estimators.ESTIMATORS[name]
  shape = (4, 3) if kind == 'bernoulli' else (4, 3, 5)
  logits = jax.random.normal(jax.random.key(0), shape)
  w = jax.random.normal(jax.random.key(1), shape)
  f = lambda b, w: jnp.sum(jnp.tanh(w * b).reshape(b.shape[0], -1), -1) - 1.0
  key, num_samples = jax.random.key(2), 3

  def by_apply(logits, w):
    return estimator.apply(key, logits, lambda b: f(b, w), (), kind=kind,
                           num_samples=num_samples)[0].sum()

  def by_samples(logits, w):
    ops = kinds.KIND_OPS[kind]
    bs = jax.vmap(lambda k: ops.sample(k, logits))(jax.random.split(key, num_samples))
    fs = jax.vmap(lambda b: f(b, w))(bs)
    log_probs = jax.vmap(lambda b: ops.log_prob(logits, b))(bs)
    return estimator.from_samples(fs, log_probs)[0].sum()

  np.testing.assert_allclose(by_samples(logits, w), by_apply(logits, w), rtol=1e-6)
  for got, want in zip(jax.grad(by_samples, (0, 1))(logits, w),
                       jax.grad(by_apply, (0, 1))(logits, w)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(want).sum()) > 0


@pytest.mark.parametrize('name', ['vimco', 'rloo'])
def test_from_samples_checks_shapes_and_keeps_nan(name):
  from_samples = estimators.ESTIMATORS[name].from_samples
  with pytest.raises(ValueError, match=r'must both be \[S, batch\] with S >= 2'):
    from_samples(jnp.zeros((1, 4)), jnp.zeros((1, 4)))
  with pytest.raises(ValueError, match=r'got fs \(2, 4\) and log_probs \(2, 3\)'):
    from_samples(jnp.zeros((2, 4)), jnp.zeros((2, 3)))
  log_probs = jnp.zeros((2, 3)).at[1, 0].set(jnp.nan)
  s, _ = from_samples(jnp.ones((2, 3)), log_probs)
  assert np.isnan(s[0]) and np.all(np.isfinite(s[1:]))
  assert all(e.from_samples is None for n, e in estimators.ESTIMATORS.items()
             if n not in ('vimco', 'rloo'))
