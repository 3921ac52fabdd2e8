"""Tests for gumbel/quantizer.py: the Gumbel vector quantizer against its formulas.

Run with `JAX_NUMPY_RANK_PROMOTION=raise python -m pytest tests/quantizer_test.py`.
"""

import chex
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gumbel
from gumbel import quantizer as quantizer_lib
from gumbel.quantizer import GumbelVectorQuantizer

G, V, D_IN, D_OUT = 2, 5, 8, 6


def _quantizer(**kwargs):
  return GumbelVectorQuantizer(D_IN, num_groups=G, num_codewords=V, codeword_dim=D_OUT,
                               rngs=nnx.Rngs(params=0, gumbel=1), **kwargs)


def _features(shape=(4, 3)):
  return jax.random.normal(jax.random.key(2), shape + (D_IN,))


def _entropy_perplexity(p):
  """exp(-sum p log p) with 0 log 0 = 0, in float64 NumPy."""
  p = np.asarray(p, np.float64)
  return np.exp(-np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)))


def test_exported():
  assert gumbel.GumbelVectorQuantizer is GumbelVectorQuantizer
  assert gumbel.geometric_temperature is gumbel.schedules.geometric_temperature


@pytest.mark.parametrize('deterministic', [False, True], ids=['train', 'eval'])
def test_shapes_and_perplexity_and_diversity_loss_against_their_formulas(deterministic):
  """perplexity = sum_g exp(H(mean over positions of softmax(logits_g))) and
  diversity loss = (G V - perplexity) / (G V) ([W2V2] eq. 4), recomputed in NumPy."""
  q = _quantizer(deterministic=deterministic)
  x = _features()
  out = q(x, step=0)
  chex.assert_shape(out.quantized, (4, 3, D_OUT))
  chex.assert_shape(out.codes, (4, 3, G))
  assert out.codes.dtype == jnp.int32
  probs = np.asarray(jax.nn.softmax(q.logits(x), axis=-1), np.float64).reshape(-1, G, V)
  expected = sum(_entropy_perplexity(probs[:, g].mean(0)) for g in range(G))
  np.testing.assert_allclose(float(out.perplexity), expected, rtol=1e-5)
  np.testing.assert_allclose(float(out.diversity_loss), (G * V - expected) / (G * V), rtol=1e-5)
  codes = np.asarray(out.codes).reshape(-1, G)
  code_expected = sum(_entropy_perplexity(np.bincount(codes[:, g], minlength=V) / len(codes))
                      for g in range(G))
  np.testing.assert_allclose(float(out.code_perplexity), code_expected, rtol=1e-5)
  assert G <= float(out.perplexity) <= G * V


def test_perplexity_bounds_uniform_and_collapsed():
  """G V for a uniform average (diversity loss 0), G for one codeword (loss 1 - 1/V)."""
  uniform = jnp.full((7, G, V), 1.0 / V)
  collapsed = jax.nn.one_hot(jnp.zeros((7, G), jnp.int32), V)
  np.testing.assert_allclose(quantizer_lib.grouped_perplexity(uniform), G * V, rtol=1e-6)
  np.testing.assert_allclose(quantizer_lib.grouped_perplexity(collapsed), G, rtol=1e-6)
  np.testing.assert_allclose(quantizer_lib.diversity_loss(G * V, G, V), 0.0)
  np.testing.assert_allclose(quantizer_lib.diversity_loss(float(G), G, V), 1 - 1 / V)


def test_eval_output_is_one_codeword_per_group_the_argmax():
  """Evaluation: per group exactly the codebook row of the argmax logit, no noise."""
  q = _quantizer()
  q.eval()
  assert q.deterministic
  x = _features()
  out = q(x)
  out_again = q(x)
  np.testing.assert_array_equal(out.codes, jnp.argmax(q.logits(x), axis=-1))
  np.testing.assert_array_equal(out.quantized, out_again.quantized)
  codebook = np.asarray(q.codebook[...])  # [G, V, D_OUT / G]
  expected = np.concatenate([codebook[g][np.asarray(out.codes[..., g])] for g in range(G)],
                            axis=-1)
  np.testing.assert_array_equal(np.asarray(out.quantized), expected)


def test_training_draws_gumbel_max_codes_with_straight_through_gradients():
  """Training: one codeword per group (a codebook row), noise from the rngs stream
  (two calls differ), codes distributed as softmax(logits) (Gumbel-Max; statistical,
  2000 draws, 5 stderr), and gradients reach the projection through the relaxation."""
  q = _quantizer()
  x = _features((1, 1))
  codebook = np.asarray(q.codebook[...])
  first = q(x)
  rows = {tuple(np.round(codebook[0, v], 6)) for v in range(V)}
  assert tuple(np.round(np.asarray(first.quantized[0, 0, :D_OUT // G]), 6)) in rows

  # 2000 copies of the input in one call: independent noise per position.
  many = jnp.broadcast_to(x, (2000, 1, D_IN))
  codes = np.asarray(q(many).codes)[:, 0, 0]
  assert not np.array_equal(codes, np.asarray(q(many).codes)[:, 0, 0])  # Fresh noise.
  p = np.asarray(jax.nn.softmax(q.logits(x)[0, 0, 0]))
  freq = np.bincount(codes, minlength=V) / len(codes)
  np.testing.assert_array_less(np.abs(freq - p), 5 * np.sqrt(p * (1 - p) / len(codes)) + 1e-3)

  def loss(q):
    return jnp.sum(q(_features()).quantized ** 2)

  grads = nnx.grad(loss)(q)
  assert float(jnp.abs(grads.projection.kernel[...]).sum()) > 0
  assert float(jnp.abs(grads.codebook[...]).sum()) > 0


def test_temperature_schedule():
  """tau = max(tau_min, tau_max * decay^step), every step ([W2V2] section 4.2)."""
  q = _quantizer(tau_max=2.0, tau_min=0.5, decay=0.9)
  for step in (0, 1, 5, 100):
    expected = max(0.5, 2.0 * 0.9 ** step)
    np.testing.assert_allclose(float(q(_features(), step=step).temperature), expected, rtol=1e-5)
  schedule = gumbel.geometric_temperature()  # wav2vec 2.0's (2, 0.5, 0.999995).
  np.testing.assert_allclose(float(schedule(0)), 2.0)
  np.testing.assert_allclose(float(schedule(10**7)), 0.5)
  np.testing.assert_allclose(float(jax.jit(schedule)(100_000)), 2.0 * 0.999995**100_000,
                             rtol=1e-4)


def test_jit_traces_once_and_perplexity_gradient_raises_diversity():
  """Under nnx.jit with a traced step: one trace for several steps; a gradient
  step on the diversity loss raises the perplexity."""
  q = _quantizer()
  x = _features((16, 4))
  optimizer = nnx.Optimizer(q, __import__('optax').sgd(0.5), wrt=nnx.Param)
  traces = []

  @nnx.jit
  def train_step(q, optimizer, x, step):
    traces.append(1)
    def loss(q):
      return q(x, step=step).diversity_loss
    value, grads = nnx.value_and_grad(loss)(q)
    optimizer.update(q, grads)
    return value

  losses = [float(train_step(q, optimizer, x, jnp.asarray(s))) for s in range(20)]
  assert len(traces) == 1
  assert losses[-1] < losses[0]
  assert np.all(np.isfinite(losses))


def test_extreme_inputs_stay_finite():
  q = _quantizer()
  out = q(1e4 * _features(), step=10**8)
  for value in (out.quantized, out.perplexity, out.diversity_loss):
    assert np.all(np.isfinite(np.asarray(value)))


@pytest.mark.parametrize('kwargs,message', [
    ({'num_groups': 0}, 'num_groups must be an integer >= 1, got 0'),
    ({'num_codewords': 1}, 'num_codewords must be an integer >= 2, got 1'),
    ({'codeword_dim': 7}, 'codeword_dim must be a multiple of num_groups=2'),
    ({'tau_min': 3.0}, 'tau_min must be <= tau_max'),
    ({'decay': 1.5}, r'decay must be in \(0, 1\], got 1.5'),
    ({'tau_max': 0.0}, 'tau_max'),
])
def test_bad_arguments_name_the_argument(kwargs, message):
  args = {'num_groups': G, 'num_codewords': V, 'codeword_dim': D_OUT, **kwargs}
  with pytest.raises(ValueError, match=message):
    GumbelVectorQuantizer(D_IN, rngs=nnx.Rngs(0), **args)


def test_input_without_batch_axis_raises():
  with pytest.raises(ValueError, match=r'at least one leading \(batch\) axis, got shape \(8,\)'):
    _quantizer()(jnp.zeros((D_IN,)))
