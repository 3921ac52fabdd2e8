"""Tests for gumbel/distrax_adapter.py (skipped without the distrax extra)."""

import functools
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

distrax = pytest.importorskip(
    'distrax', reason='the distrax extra is not installed: pip install "gumbel[distrax]"')

import tensorflow_probability.substrates.jax as tfp  # pylint: disable=g-import-not-at-top

import gumbel  # pylint: disable=g-import-not-at-top
from gumbel import distrax_adapter  # pylint: disable=g-import-not-at-top

tfd = tfp.distributions
# tfp and distrax promote ranks internally.
allow_rank_promotion = functools.partial(jax.numpy_rank_promotion, 'allow')

B, K = 4, 5
TAU = np.asarray([0.3, 0.7, 1.5, 4.0], np.float32)  # [B]


def _logits(seed, shape):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _key(seed=0):
  return jax.random.key(seed)


# Jitted: one compilation per test instead of one per primitive keeps these
# tests fast (distributions are pytrees, so they pass into jit).
@functools.partial(jax.jit, static_argnums=2)
def _sample_and_log_prob(dist, key, sample_shape):
  return dist.sample_and_log_prob(seed=key, sample_shape=sample_shape)


@functools.partial(jax.jit, static_argnums=0)
def _jitted_tfp_log_prob(tfp_cls, tau, params, value):
  return tfp_cls(tau, **params).log_prob(value)


def _tfp_log_prob(tfp_cls, tau, params, value):
  with allow_rank_promotion():
    return _jitted_tfp_log_prob(tfp_cls, tau, params, value)


_CATEGORICAL = {
    'relaxed': (distrax_adapter.RelaxedOneHotCategorical, tfd.RelaxedOneHotCategorical,
                gumbel.gumbel_softmax),
    'exp_relaxed': (distrax_adapter.ExpRelaxedOneHotCategorical,
                    tfd.ExpRelaxedOneHotCategorical, gumbel.log_gumbel_softmax),
}


@pytest.mark.parametrize('name', list(_CATEGORICAL))
def test_categorical_samples_are_gumbels(name):
  """The same key gives the sample of the gumbel function; sample_shape [S]
  is the function on logits broadcast to [S, B, K]."""
  cls, _, sampler = _CATEGORICAL[name]
  logits = _logits(0, (B, K))
  dist = cls(TAU, logits=logits)
  assert dist.batch_shape == (B,) and dist.event_shape == (K,)
  np.testing.assert_array_equal(dist.sample(seed=_key(1)), sampler(_key(1), logits, TAU))
  samples = dist.sample(seed=_key(2), sample_shape=(3,))
  chex.assert_shape(samples, (3, B, K))
  np.testing.assert_array_equal(
      samples, sampler(_key(2), np.broadcast_to(logits, (3, B, K)), TAU))


@pytest.mark.parametrize('name', list(_CATEGORICAL))
def test_categorical_log_prob_matches_tfp(name):
  """From logits and from probs, with a sample axis; rtol 1e-4 (float32)."""
  cls, tfp_cls, _ = _CATEGORICAL[name]
  logits = _logits(3, (B, K))
  for kwargs in ({'logits': logits}, {'probs': np.asarray(jax.nn.softmax(logits))}):
    dist = cls(TAU, **kwargs)
    values, log_p = _sample_and_log_prob(dist, _key(4), (2,))
    chex.assert_shape(log_p, (2, B))
    np.testing.assert_allclose(log_p, _tfp_log_prob(tfp_cls, TAU, kwargs, values),
                               rtol=1e-4, atol=1e-4)


def test_relaxed_bernoulli_matches_gumbel_and_tfp():
  logits = _logits(5, (B, 3))
  tau = TAU[:, None]  # [B, 1]: broadcasts against the logits [B, 3].
  dist = distrax_adapter.RelaxedBernoulli(tau, logits=logits)
  assert dist.batch_shape == (B, 3) and dist.event_shape == ()
  np.testing.assert_array_equal(dist.sample(seed=_key(6)),
                                gumbel.relaxed_bernoulli(_key(6), logits, tau))
  values, log_p = _sample_and_log_prob(dist, _key(7), (2,))
  chex.assert_shape(values, (2, B, 3))
  np.testing.assert_allclose(
      log_p, _tfp_log_prob(tfd.RelaxedBernoulli, tau, {'logits': logits}, values),
      rtol=1e-4, atol=1e-4)
  from_probs = distrax_adapter.RelaxedBernoulli(tau, probs=jax.nn.sigmoid(logits))
  np.testing.assert_allclose(from_probs.logits, logits, rtol=1e-5, atol=1e-5)


def test_through_jit_and_vmap():
  """Distributions are pytrees: passed into jit, built inside vmap, and
  vmapped over; the results equal the eager ones."""
  logits = _logits(8, (B, K))
  dist = distrax_adapter.RelaxedOneHotCategorical(TAU, logits=logits)
  y, log_p = _sample_and_log_prob(dist, _key(9), ())
  np.testing.assert_allclose(y, gumbel.gumbel_softmax(_key(9), logits, TAU), rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(log_p, gumbel.concrete_log_prob(y, logits, TAU), rtol=1e-5)

  @jax.jit
  def vmapped(dist, y):
    # vmap over the distribution's batch: each row is a distribution of batch ().
    per_row = jax.vmap(lambda d, v: d.log_prob(v))(dist, y)
    built = jax.vmap(lambda l, t: distrax_adapter.RelaxedOneHotCategorical(
        t, logits=l).log_prob(jnp.full((K,), 1 / K)))(dist.logits, dist.temperature)
    return per_row, built

  per_row, built = vmapped(dist, y)
  np.testing.assert_allclose(per_row, log_p, rtol=1e-5)
  np.testing.assert_allclose(built, gumbel.concrete_log_prob(jnp.full((K,), 1 / K), logits, TAU),
                             rtol=1e-5)


def test_gradients_flow_through_samples():
  """Reparameterized: d/dlogits of a sample's function equals the gradient
  through gumbel.gumbel_softmax."""
  logits, w = _logits(10, (B, K)), _logits(11, (B, K))
  loss = lambda l: jnp.sum(w * distrax_adapter.RelaxedOneHotCategorical(
      TAU, logits=l).sample(seed=_key(12)))
  expected = jax.grad(lambda l: jnp.sum(w * gumbel.gumbel_softmax(_key(12), l, TAU)))(logits)
  np.testing.assert_allclose(jax.jit(jax.grad(loss))(logits), expected, rtol=1e-5)


def test_independent():
  """distrax.Independent over the latent axis: event [N, K], log_prob summed
  over N; also under jit."""
  logits = _logits(13, (B, 3, K))  # [B, N, K]
  base = distrax_adapter.RelaxedOneHotCategorical(0.5, logits=logits)
  dist = distrax.Independent(base, reinterpreted_batch_ndims=1)
  assert dist.batch_shape == (B,) and dist.event_shape == (3, K)

  @jax.jit
  def sample_and_log_prob(d, key):
    return d.sample_and_log_prob(seed=key, sample_shape=(2,))

  with allow_rank_promotion():
    y, log_p = sample_and_log_prob(dist, _key(14))
  chex.assert_shape(y, (2, B, 3, K))
  chex.assert_shape(log_p, (2, B))
  np.testing.assert_allclose(log_p, base.log_prob(y).sum(-1), rtol=1e-5)


def test_temperature_rule_and_errors():
  """The temperature follows gumbel's rule and is stored batch-shaped;
  invalid parameters raise with the class's name."""
  logits = _logits(15, (B, K))
  per_row = distrax_adapter.RelaxedOneHotCategorical(TAU[:, None], logits=logits)
  chex.assert_shape(per_row.temperature, (B,))
  np.testing.assert_array_equal(per_row.temperature, TAU)
  shared = distrax_adapter.RelaxedOneHotCategorical(TAU, logits=logits[0])  # Logits [K].
  assert shared.batch_shape == (B,)
  # Samples drawn with a sample axis as long as the batch stay per row.
  _, log_p = _sample_and_log_prob(per_row, _key(16), (B,))
  chex.assert_shape(log_p, (B, B))
  with pytest.raises(ValueError, match=r'RelaxedOneHotCategorical: temperature must be > 0'):
    distrax_adapter.RelaxedOneHotCategorical(0.0, logits=logits)
  with pytest.raises(ValueError, match=r'exactly one of logits and probs'):
    distrax_adapter.RelaxedOneHotCategorical(0.5)
  with pytest.raises(ValueError, match=r'RelaxedBernoulli: logits must be a floating'):
    distrax_adapter.RelaxedBernoulli(0.5, logits=jnp.asarray([0, 1]))
  assert per_row[1:3].batch_shape == (2,)
  np.testing.assert_array_equal(per_row[1:3].temperature, TAU[1:3])


def test_import_without_distrax_says_what_to_install(tmp_path):
  """With distrax hidden, `import gumbel` works and the adapter's ImportError
  names the extra."""
  (tmp_path / 'distrax.py').write_text("raise ImportError('hidden')\n")
  code = ('import gumbel\n'
          'try:\n'
          '  from gumbel import distrax_adapter\n'
          'except ImportError as e:\n'
          '  print(e)\n')
  out = subprocess.run([sys.executable, '-c', code], env={'PYTHONPATH': str(tmp_path)},
                       capture_output=True, text=True, check=True, cwd=tmp_path)
  assert 'pip install "gumbel[distrax]"' in out.stdout, out
