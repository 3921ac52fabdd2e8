"""distrax distributions backed by gumbel's samplers and densities.

    pip install "gumbel[distrax]"

    from gumbel import distrax_adapter
    q = distrax_adapter.RelaxedOneHotCategorical(0.5, logits=logits)  # [B, K]
    y, log_q = q.sample_and_log_prob(seed=key)                       # [B, K], [B]

`RelaxedOneHotCategorical`, `ExpRelaxedOneHotCategorical` and
`RelaxedBernoulli` are `distrax.Distribution`s, so they pass through `jit`
and `vmap` (they are pytrees) and compose with distrax's combinators
(`distrax.Independent`, `distrax.Transformed`, ...). They hold parameters
only: sampling is `gumbel.gumbel_softmax` / `gumbel.log_gumbel_softmax` /
`gumbel.relaxed_bernoulli` and the densities are `gumbel.concrete_log_prob` /
`exp_concrete_log_prob` / `binary_concrete_log_prob`, so
`RelaxedOneHotCategorical(tau, logits=logits).sample(seed=key)` is exactly
`gumbel.gumbel_softmax(key, logits, tau)` and a sample of `sample_shape`
`[S]` is `gumbel.gumbel_softmax(key, logits broadcast to [S, *batch, K], tau)`.
Arguments are in TensorFlow Probability's order, `(temperature, logits=,
probs=)`; the temperature follows gumbel's rule (see
`gumbel/distributions.py`; a batch-shaped temperature `[B]` always works) and
is stored broadcast to the batch shape. The category axis is the last.

This module imports distrax, which `import gumbel` does not.

References:
  [CON] Maddison, Mnih, Teh. The Concrete Distribution. ICLR 2017.
  [GS] Jang, Gu, Poole. Categorical Reparameterization with Gumbel-Softmax.
    ICLR 2017.
"""

from typing import Optional

import jax
import jax.numpy as jnp

try:
  import distrax
  from distrax._src.distributions import distribution as _distribution
except ImportError as e:  # pragma: no cover - exercised in a subprocess.
  raise ImportError(
      'gumbel.distrax_adapter needs distrax, an optional extra of gumbel: '
      'pip install "gumbel[distrax]"') from e

from gumbel import _checks
from gumbel import distributions

Array = jax.Array
# The temperature rule's broadcasting, shared with gumbel.numpyro_adapter.
_categorical_parameters = _checks.relaxed_categorical_parameters
_bernoulli_parameters = _checks.relaxed_bernoulli_parameters


class _RelaxedCategorical(distrax.Distribution):
  """The parameters and shapes shared by the two categorical relaxations."""

  def __init__(self, temperature, logits: Optional[Array] = None,
               probs: Optional[Array] = None):
    """Initializes the distribution.

    Args:
      temperature: tau > 0: a scalar, a batch-shaped array or any form of
        gumbel's temperature rule.
      logits: unnormalized log-probabilities `[..., K]` (or give `probs`).
      probs: probabilities `[..., K]` (or give `logits`).
    """
    super().__init__()
    self._logits, self._temperature = _categorical_parameters(
        temperature, logits, probs, type(self).__name__)

  @property
  def event_shape(self):
    return self._logits.shape[-1:]

  @property
  def batch_shape(self):
    return self._logits.shape[:-1]

  @property
  def logits(self) -> Array:
    """The logits, broadcast to `batch_shape + event_shape`."""
    return self._logits

  @property
  def probs(self) -> Array:
    return jax.nn.softmax(self._logits, axis=-1)

  @property
  def temperature(self) -> Array:
    """The temperature, broadcast to `batch_shape`."""
    return self._temperature

  def _batched_logits(self, n):
    return jnp.broadcast_to(self._logits, (n,) + self._logits.shape)  # [n, *batch, K]

  def __getitem__(self, index):
    index = _distribution.to_batch_shape_index(self.batch_shape, index)
    return type(self)(self._temperature[index], logits=self._logits[index])


class RelaxedOneHotCategorical(_RelaxedCategorical):
  """The Concrete (Gumbel-Softmax) distribution on the simplex.

  Samples are `gumbel.gumbel_softmax(key, logits, temperature)`; `log_prob`
  is `gumbel.concrete_log_prob` (finite on the simplex's boundary, where it
  clamps). Reparameterized: samples are differentiable in the logits and
  the temperature.

  References:
    [CON] definition 2 and eq. 11; [GS] eqs. 2-3.
  """

  def _sample_n(self, key, n):
    return distributions.gumbel_softmax(key, self._batched_logits(n), self._temperature)

  def log_prob(self, value):
    return distributions.concrete_log_prob(value, self._logits, self._temperature)


class ExpRelaxedOneHotCategorical(_RelaxedCategorical):
  """The ExpConcrete distribution: the log of a Concrete sample.

  Samples are `gumbel.log_gumbel_softmax(key, logits, temperature)` (exp of
  a sample is `RelaxedOneHotCategorical`'s sample with the same key);
  `log_prob` is `gumbel.exp_concrete_log_prob`. Prefer it to
  `RelaxedOneHotCategorical` for log-density ratios (relaxed KL terms) at low
  temperatures, where Concrete samples underflow.

  References:
    [CON] appendix C.3.
  """

  def _sample_n(self, key, n):
    return distributions.log_gumbel_softmax(key, self._batched_logits(n), self._temperature)

  def log_prob(self, value):
    return distributions.exp_concrete_log_prob(value, self._logits, self._temperature)


class RelaxedBernoulli(distrax.Distribution):
  """The Binary Concrete (relaxed Bernoulli) distribution on (0, 1).

  Samples are `gumbel.relaxed_bernoulli(key, logits, temperature)`;
  `log_prob` is `gumbel.binary_concrete_log_prob`. The temperature and the
  logits broadcast against each other (both ways), and the event shape is ().

  References:
    [CON] section 3.3 and eq. 21.
  """

  def __init__(self, temperature, logits: Optional[Array] = None,
               probs: Optional[Array] = None):
    """Initializes the distribution.

    Args:
      temperature: tau > 0, broadcasting against the logits.
      logits: log(p / (1 - p)) (or give `probs`).
      probs: p (or give `logits`).
    """
    super().__init__()
    self._logits, self._temperature = _bernoulli_parameters(
        temperature, logits, probs, type(self).__name__)

  @property
  def event_shape(self):
    return ()

  @property
  def batch_shape(self):
    return self._logits.shape

  @property
  def logits(self) -> Array:
    return self._logits

  @property
  def probs(self) -> Array:
    return jax.nn.sigmoid(self._logits)

  @property
  def temperature(self) -> Array:
    return self._temperature

  def _sample_n(self, key, n):
    logits = jnp.broadcast_to(self._logits, (n,) + self._logits.shape)  # [n, *batch]
    return distributions.relaxed_bernoulli(key, logits, self._temperature)

  def log_prob(self, value):
    return distributions.binary_concrete_log_prob(value, self._logits, self._temperature)

  def __getitem__(self, index):
    index = _distribution.to_batch_shape_index(self.batch_shape, index)
    return RelaxedBernoulli(self._temperature[index], logits=self._logits[index])
