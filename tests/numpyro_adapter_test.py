"""Tests for gumbel/numpyro_adapter.py (skipped without the numpyro extra)."""

import functools
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

numpyro = pytest.importorskip(
    'numpyro', reason='the numpyro extra is not installed: pip install "gumbel[numpyro]"')

import numpyro.distributions as dist  # pylint: disable=g-import-not-at-top
import tensorflow_probability.substrates.jax as tfp  # pylint: disable=g-import-not-at-top

import gumbel  # pylint: disable=g-import-not-at-top
from gumbel import numpyro_adapter  # pylint: disable=g-import-not-at-top

tfd = tfp.distributions
# tfp and numpyro promote ranks internally.
allow_rank_promotion = functools.partial(jax.numpy_rank_promotion, 'allow')

B, K = 4, 3
TAU = np.asarray([0.3, 0.7, 1.5, 4.0], np.float32)  # [B]
CLASSES = [numpyro_adapter.RelaxedOneHotCategorical,
           numpyro_adapter.RelaxedOneHotCategoricalStraightThrough]
CLASS_IDS = ['relaxed', 'straight_through']


def _logits(seed, shape):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize('cls', CLASSES, ids=CLASS_IDS)
def test_samples_are_gumbel_softmax(cls):
  """Same key, same sample (hard for straight-through); reparameterized."""
  hard = cls is numpyro_adapter.RelaxedOneHotCategoricalStraightThrough
  logits = _logits(0, (B, K))
  d = cls(TAU, logits=logits)
  assert d.has_rsample and set(d.reparametrized_params) == {'temperature', 'logits'}
  assert d.batch_shape == (B,) and d.event_shape == (K,)
  key = jax.random.key(1)
  sample = jax.jit(lambda d, key: d.sample(key, (2,)))
  np.testing.assert_allclose(
      sample(d, key), gumbel.gumbel_softmax(key, np.broadcast_to(logits, (2, B, K)), TAU,
                                            hard=hard), rtol=1e-6, atol=1e-7)
  np.testing.assert_array_equal(d.sample(key), gumbel.gumbel_softmax(key, logits, TAU, hard=hard))
  if hard:
    assert set(np.unique(np.asarray(d.sample(key)))) == {0.0, 1.0}


def test_log_probs():
  """Relaxed: the Concrete density, against tfp. Straight-through: the
  Categorical log-probability of the one-hot value."""
  logits = _logits(2, (B, K))
  relaxed = numpyro_adapter.RelaxedOneHotCategorical(TAU, probs=jax.nn.softmax(logits))
  y = gumbel.gumbel_softmax(jax.random.key(3), np.broadcast_to(logits, (2, B, K)), TAU)
  with allow_rank_promotion():
    # Jitted: one compilation rather than one per primitive.
    expected = jax.jit(lambda y: tfd.RelaxedOneHotCategorical(TAU, logits=logits).log_prob(y))(y)
  np.testing.assert_allclose(jax.jit(lambda d, y: d.log_prob(y))(relaxed, y), expected,
                             rtol=1e-4, atol=1e-4)
  st = numpyro_adapter.RelaxedOneHotCategoricalStraightThrough(TAU, logits=logits)
  one_hot = jax.nn.one_hot(jnp.asarray([0, 2, 1, 1]), K)
  np.testing.assert_allclose(
      st.log_prob(one_hot), jax.nn.log_softmax(logits)[np.arange(B), [0, 2, 1, 1]], rtol=1e-6)
  chex.assert_shape(st.log_prob(jnp.broadcast_to(one_hot, (2, B, K))), (2, B))


def _model_and_guide(cls, y):
  """One relaxed categorical latent z picks the mean of all observations y."""
  means = jnp.asarray([-2.0, 0.0, 2.0])
  tau = 0.5

  def model(y):
    z = numpyro.sample('z', cls(tau, logits=jnp.zeros(K)))
    with numpyro.plate('data', y.shape[0]):
      numpyro.sample('y', dist.Normal(jnp.dot(z, means), 0.5), obs=y)

  def guide(y):
    del y
    q_logits = numpyro.param('q_logits', jnp.zeros(K))
    numpyro.sample('z', cls(tau, logits=q_logits))

  return model, guide


@pytest.mark.parametrize('cls', CLASSES, ids=CLASS_IDS)
def test_svi_learns_the_posterior(cls):
  """SVI with Trace_ELBO on a tiny model (20 points from the third class):
  the loss decreases over 300 steps and the guide's logits put most mass on
  that class. Statistical (fixed key); the margins are wide."""
  y = 2.0 + 0.5 * jax.random.normal(jax.random.key(4), (20,))
  model, guide = _model_and_guide(cls, y)
  svi = numpyro.infer.SVI(model, guide, numpyro.optim.Adam(0.05), numpyro.infer.Trace_ELBO())
  with allow_rank_promotion():
    result = svi.run(jax.random.PRNGKey(5), 300, y, progress_bar=False)
  losses = np.asarray(result.losses)
  assert np.all(np.isfinite(losses))
  assert losses[-50:].mean() < losses[:50].mean() - 10, (losses[:50].mean(), losses[-50:].mean())
  probs = jax.nn.softmax(result.params['q_logits'])
  assert probs[2] > 0.8, probs


def test_in_a_model_trace():
  """Inside numpyro handlers: the site's value is the adapter's sample for
  the seeded key; straight-through values are exactly one-hot."""
  def model():
    return numpyro.sample(
        'z', numpyro_adapter.RelaxedOneHotCategoricalStraightThrough(0.5, logits=jnp.zeros((B, K))))

  trace = numpyro.handlers.trace(numpyro.handlers.seed(model, 0)).get_trace()
  z = trace['z']['value']
  chex.assert_shape(z, (B, K))
  np.testing.assert_array_equal(z.sum(-1), 1.0)
  assert set(np.unique(np.asarray(z))) == {0.0, 1.0}


def test_temperature_rule_and_pytree():
  logits = _logits(6, (B, K))
  d = numpyro_adapter.RelaxedOneHotCategorical(TAU[:, None], logits=logits)  # [B, 1]: per row.
  np.testing.assert_array_equal(d.temperature, TAU)
  shared = numpyro_adapter.RelaxedOneHotCategorical(TAU, logits=logits[0])
  assert shared.batch_shape == (B,)
  leaves = jax.tree_util.tree_leaves(d)
  assert len(leaves) == 2
  rebuilt = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(d), leaves)
  assert rebuilt.batch_shape == (B,)
  with pytest.raises(ValueError, match=r'RelaxedOneHotCategorical: temperature must be > 0'):
    numpyro_adapter.RelaxedOneHotCategorical(-1.0, logits=logits)


def test_import_without_numpyro_says_what_to_install(tmp_path):
  (tmp_path / 'numpyro.py').write_text("raise ImportError('hidden')\n")
  code = ('import gumbel\n'
          'try:\n'
          '  from gumbel import numpyro_adapter\n'
          'except ImportError as e:\n'
          '  print(e)\n')
  out = subprocess.run([sys.executable, '-c', code], env={'PYTHONPATH': str(tmp_path)},
                       capture_output=True, text=True, check=True, cwd=tmp_path)
  assert 'pip install "gumbel[numpyro]"' in out.stdout, out
