"""The Gumbel vector quantizer of wav2vec 2.0, as a flax NNX module.

`GumbelVectorQuantizer` maps features `[..., in_features]` to G groups of V
logits (one linear projection), picks one of V learned codewords per group
(a hard, straight-through Gumbel-Softmax sample in training, the argmax in
evaluation) and concatenates them into the quantized vector. It returns,
with the vectors, what shows whether the codebook is healthy, as fairseq
does: the perplexity of the batch-averaged softmax per group (summed over
groups; G * V when every codeword is equally used, G when one is), the
perplexity of the hard codes, and the diversity loss (G V - perplexity) /
(G V) that keeps the first one high (codebook collapse is the failure it
prevents). The temperature follows `schedules.geometric_temperature`, tau
= max(tau_min, tau_max * decay^step), with the step passed in.

  quantizer = GumbelVectorQuantizer(64, num_groups=2, num_codewords=320,
                                    codeword_dim=256, rngs=nnx.Rngs(0))
  out = quantizer(features, step=step)   # training: Gumbel noise from rngs
  loss = task_loss(out.quantized) + 0.1 * out.diversity_loss
  quantizer.eval(); out = quantizer(features)   # argmax codewords, no noise

References:
  [W2V2] Baevski, Zhou, Mohamed, Auli. wav2vec 2.0: A Framework for
    Self-Supervised Learning of Speech Representations. NeurIPS 2020,
    arXiv:2006.11477: section 2 (Gumbel-Softmax quantization, eq. 1),
    section 3.2 (the diversity loss, eq. 4), section 4.2 (G = 2, V = 320,
    tau from 2 to 0.5 by a factor 0.999995 per update).
  [GS] Jang, Gu, Poole. ICLR 2017, arXiv:1611.01144 (section 2.2,
    straight-through).
  fairseq `fairseq/modules/gumbel_vector_quantizer.py`
    (`GumbelVectorQuantizer`: `prob_perplexity`, `code_perplexity`).
"""

from typing import NamedTuple

from flax import nnx
import jax
import jax.numpy as jnp

from gumbel import distributions
from gumbel import schedules

Array = jax.Array


class QuantizerOutput(NamedTuple):
  """What `GumbelVectorQuantizer` returns.

  Attributes:
    quantized: `[..., codeword_dim]`, the G chosen codewords concatenated.
    codes: `[..., G]` int32, the chosen codeword of each group.
    perplexity: scalar, sum over groups of exp(entropy) of the softmax
      averaged over all positions of the batch ([W2V2] eq. 4, fairseq's
      `prob_perplexity`), in [G, G V].
    code_perplexity: scalar, the same of the argmax codes' frequencies
      (fairseq's `code_perplexity`): how many codewords are in use.
    diversity_loss: scalar, (G V - perplexity) / (G V) ([W2V2] eq. 4), in
      [0, 1 - 1/V].
    temperature: scalar, the temperature used (training) or that the
      schedule gives at `step` (evaluation).
  """
  quantized: Array
  codes: Array
  perplexity: Array
  code_perplexity: Array
  diversity_loss: Array
  temperature: Array


def grouped_perplexity(probs: Array) -> Array:
  """Sum over groups of exp(entropy) of the probabilities averaged over positions.

  Args:
    probs: `[N, G, V]` per-position distributions (softmax or one-hot).

  Returns:
    A scalar in [G, G V].

  References:
    [W2V2] eq. 4; fairseq adds 1e-7 inside the log, we use xlogy (0 log 0 = 0).
  """
  mean = jnp.mean(probs.astype(jnp.float32), axis=0)  # [G, V]
  entropy = -jnp.sum(jax.scipy.special.xlogy(mean, mean), axis=-1)  # [G]
  return jnp.sum(jnp.exp(entropy))


def diversity_loss(perplexity: Array, num_groups: int, num_codewords: int) -> Array:
  """(G V - perplexity) / (G V): 0 when every codeword is equally used on average.

  References:
    [W2V2] eq. 4.
  """
  total = num_groups * num_codewords
  return (total - perplexity) / total


def _check_positive_int(value, name, low=1):
  if isinstance(value, bool) or not isinstance(value, int) or value < low:
    raise ValueError(f'GumbelVectorQuantizer: {name} must be an integer >= {low}, '
                     f'got {value!r}.')


class GumbelVectorQuantizer(nnx.Module):
  """G groups of V codewords chosen by a hard Gumbel-Softmax ([W2V2] section 2).

  Training (the default, or after `.train()`): per group, the one-hot
  straight-through sample of softmax((logits + g) / tau) (forward the
  Gumbel-Max choice, backward the relaxation's gradient), g from the `rngs`
  stream 'gumbel' (or 'default'), tau = max(tau_min, tau_max * decay^step).
  Evaluation (`.eval()` or `deterministic=True`): the argmax codeword, no
  noise. Parameters: the projection (`nnx.Linear`, weights N(0, 1), bias 0,
  as fairseq) and the codebook `[G, V, codeword_dim / G]` (uniform in
  [0, 1), as fairseq).

  Attributes:
    num_groups: G.
    num_codewords: V per group.
    codeword_dim: the size of the quantized vector (G codewords of
      codeword_dim / G each).
    tau_max, tau_min, decay: the temperature schedule,
      `schedules.geometric_temperature(tau_max, tau_min, decay)`.
    deterministic: True in evaluation mode.
  """

  def __init__(self, in_features: int, *, num_groups: int = 2, num_codewords: int = 320,
               codeword_dim: int = 256, tau_max: float = 2.0, tau_min: float = 0.5,
               decay: float = 0.999995, deterministic: bool = False, rngs: nnx.Rngs):
    """Makes the projection and the codebook.

    Args:
      in_features: the size of the input's last axis.
      num_groups: G >= 1.
      num_codewords: V >= 2 per group.
      codeword_dim: the quantized vector's size, a multiple of G.
      tau_max: the initial temperature, > 0.
      tau_min: the floor of the temperature, in (0, tau_max].
      decay: the temperature's factor per step, in (0, 1].
      deterministic: start in evaluation mode (argmax).
      rngs: the parameters' keys ('params' stream) and the Gumbel noise's
        ('gumbel' stream if it has one, else 'default'), kept for `__call__`.
    """
    _check_positive_int(in_features, 'in_features')
    _check_positive_int(num_groups, 'num_groups')
    _check_positive_int(num_codewords, 'num_codewords', low=2)
    _check_positive_int(codeword_dim, 'codeword_dim')
    if codeword_dim % num_groups:
      raise ValueError(f'GumbelVectorQuantizer: codeword_dim must be a multiple of '
                       f'num_groups={num_groups} (the G codewords are concatenated), got '
                       f'{codeword_dim}.')
    self.num_groups = num_groups
    self.num_codewords = num_codewords
    self.codeword_dim = codeword_dim
    schedules.geometric_temperature(tau_max, tau_min, decay)  # Checks the arguments.
    self.tau_max, self.tau_min, self.decay = tau_max, tau_min, decay
    self.deterministic = deterministic
    self.projection = nnx.Linear(
        in_features, num_groups * num_codewords,
        kernel_init=nnx.initializers.normal(1.0), bias_init=nnx.initializers.zeros,
        rngs=rngs)
    self.codebook = nnx.Param(jax.random.uniform(
        rngs.params(), (num_groups, num_codewords, codeword_dim // num_groups)))
    self.rngs = rngs

  def logits(self, x: Array) -> Array:
    """The codeword logits `[..., G, V]` of features `x` `[..., in_features]` (float32)."""
    out = self.projection(x).astype(jnp.float32)
    return out.reshape(out.shape[:-1] + (self.num_groups, self.num_codewords))

  def __call__(self, x: Array, *, step=0, deterministic: bool | None = None,
               rngs: nnx.Rngs | None = None) -> QuantizerOutput:
    """Quantizes `x`.

    Args:
      x: `[..., in_features]`, at least one leading axis; the perplexities
        average over all leading axes (the batch and, for sequences, time).
      step: the training step (an int or a traced integer) of the schedule.
      deterministic: overrides the module's mode (True: argmax).
      rngs: overrides the module's `rngs` for the noise.

    Returns:
      A `QuantizerOutput`.
    """
    if x.ndim < 2:
      raise ValueError(f'GumbelVectorQuantizer: x must be [..., in_features] with at least '
                       f'one leading (batch) axis, got shape {x.shape}.')
    deterministic = self.deterministic if deterministic is None else deterministic
    tau = schedules.geometric_temperature(self.tau_max, self.tau_min, self.decay)(step)
    logits = self.logits(x)  # [..., G, V]
    flat = logits.reshape((-1,) + logits.shape[-2:])  # [N, G, V]
    soft = jax.nn.softmax(flat, axis=-1)
    codes = jnp.argmax(logits, axis=-1)  # [..., G]
    if deterministic:
      onehot = jax.nn.one_hot(codes, self.num_codewords, dtype=logits.dtype)
    else:
      rngs = self.rngs if rngs is None else rngs
      key = rngs.gumbel() if 'gumbel' in rngs else rngs.default()
      onehot = distributions.gumbel_softmax(key, logits, tau, hard=True)  # [..., G, V]
      codes = jnp.argmax(onehot, axis=-1)
    # [..., G, V] x [G, V, d] -> [..., G, d]: the chosen codeword of each group.
    chosen = jnp.einsum('...gv,gvd->...gd', onehot, self.codebook[...])
    quantized = chosen.reshape(chosen.shape[:-2] + (self.codeword_dim,))
    hard = jax.nn.one_hot(codes.reshape(-1, self.num_groups), self.num_codewords)  # [N, G, V]
    perplexity = grouped_perplexity(soft)
    return QuantizerOutput(
        quantized=quantized, codes=codes.astype(jnp.int32), perplexity=perplexity,
        code_perplexity=grouped_perplexity(jax.lax.stop_gradient(hard)),
        diversity_loss=diversity_loss(perplexity, self.num_groups, self.num_codewords),
        temperature=tau)
