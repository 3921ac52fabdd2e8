"""Tests for gumbel/objectives.py against direct computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gumbel import objectives


def test_bernoulli_log_likelihood_matches_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(3, 7)).astype(np.float32) * 5
  targets = rng.random((3, 7)).astype(np.float32)
  p = 1 / (1 + np.exp(-logits.astype(np.float64)))
  expected = np.sum(targets * np.log(p) + (1 - targets) * np.log1p(-p), axis=-1)
  out = objectives.bernoulli_log_likelihood(logits=jnp.asarray(logits), targets=targets)
  np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_bernoulli_log_likelihood_extreme_logits_finite():
  logits = jnp.array([[1e4, -1e4, 0.0]])
  out = objectives.bernoulli_log_likelihood(logits=logits, targets=jnp.array([[1.0, 0.0, 1.0]]))
  np.testing.assert_allclose(out, [-np.log(2)], rtol=1e-6)
  grads = jax.grad(lambda l: objectives.bernoulli_log_likelihood(
      logits=l, targets=jnp.array([[0.0, 1.0, 1.0]])).sum())(logits)
  assert np.all(np.isfinite(grads))


def test_categorical_log_prob():
  logits = jnp.array([[1.0, 2.0, 3.0]])
  sample = jax.nn.one_hot(jnp.array([2]), 3)
  expected = 3.0 - np.log(np.exp(1) + np.exp(2) + np.exp(3))
  np.testing.assert_allclose(
      objectives.categorical_log_prob(sample=sample, logits=logits), [expected], rtol=1e-6)


def test_negative_elbo():
  np.testing.assert_allclose(
      objectives.negative_elbo(log_likelihood=jnp.array([-100.0]), kl=jnp.array([5.0])), [105.0])


def test_importance_weighted_bound():
  log_w = jnp.log(jnp.array([[1.0, 2.0], [3.0, 6.0]]))  # [S=2, B=2]
  np.testing.assert_allclose(
      objectives.importance_weighted_bound(log_w, axis=0), np.log([2.0, 4.0]), rtol=1e-6)


@pytest.mark.parametrize('num_samples', [1, 10, 1000])
def test_iw_bound_is_exact_when_q_is_posterior(num_samples):
  """With q = p(z|x), every weight is p(x): the bound is exact for any S."""
  log_px = -3.7
  log_w = jnp.full((num_samples, 4), log_px)
  np.testing.assert_allclose(objectives.importance_weighted_bound(log_w), log_px, rtol=1e-6)


def test_iw_bound_tightens_with_samples():
  """Statistical test: E[log mean w] increases with S (Burda et al. Thm 1).

  Weights are log-normal with E[w] = 1, so log p(x) = 0; 20k repeats give a
  standard error below 0.01, far below the gaps between S = 1, 5, 50.
  """
  key = jax.random.key(0)
  sigma = 1.5
  bounds = []
  for s in (1, 5, 50):
    log_w = sigma * jax.random.normal(jax.random.fold_in(key, s), (s, 20_000)) - sigma**2 / 2
    bounds.append(float(jnp.mean(objectives.importance_weighted_bound(log_w))))
  assert bounds[0] < bounds[1] < bounds[2] < 0.0
  np.testing.assert_allclose(bounds[0], -sigma**2 / 2, atol=0.05)


@pytest.mark.parametrize('chunk', [1, 4, 8, 100])
def test_chunked_bound_is_the_bound_of_the_same_draws(chunk):
  """Exact: the same per-sample keys as splitting the key num_samples ways."""
  key = jax.random.key(3)
  log_weight = lambda k: jax.random.normal(k, (5,)) * 3.0  # [B]
  log_w = jax.vmap(log_weight)(jax.random.split(key, 8))  # [S, B]
  expected = objectives.importance_weighted_bound(log_w, axis=0)
  out = jax.jit(lambda k: objectives.importance_weighted_bound_chunked(
      k, log_weight, num_samples=8, chunk=chunk))(key)
  assert out.shape == (5,)
  np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_chunked_bound_needs_a_multiple_of_the_chunk():
  with pytest.raises(ValueError, match='num_samples=10 must be a positive multiple of chunk=4'):
    objectives.importance_weighted_bound_chunked(
        jax.random.key(0), lambda k: jnp.zeros((2,)), num_samples=10, chunk=4)
