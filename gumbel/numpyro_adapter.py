"""numpyro distributions backed by gumbel's samplers and densities.

    pip install "gumbel[numpyro]"

    from gumbel import numpyro_adapter
    z = numpyro.sample('z', numpyro_adapter.RelaxedOneHotCategorical(0.5, logits=logits))

`RelaxedOneHotCategorical` (the Concrete distribution) and
`RelaxedOneHotCategoricalStraightThrough` (one-hot forward value, gradient of
the relaxed sample) are `numpyro.distributions.Distribution`s with
reparameterized samples (`has_rsample` is True; `reparametrized_params` are
the temperature and the logits), so `numpyro.infer.SVI` with `Trace_ELBO`
differentiates through them. They hold parameters only: samples are
`gumbel.gumbel_softmax(key, logits, temperature[, hard=True])`, and the
relaxed density is `gumbel.concrete_log_prob`. Arguments are in numpyro's
and TensorFlow Probability's order, `(temperature, logits=, probs=)`; the
temperature follows gumbel's rule (`gumbel/distributions.py`) and is stored
broadcast to the batch shape. The category axis is the last.

This module imports numpyro, which `import gumbel` does not.

References:
  [CON] Maddison, Mnih, Teh. The Concrete Distribution. ICLR 2017.
  [GS] Jang, Gu, Poole. Categorical Reparameterization with Gumbel-Softmax.
    ICLR 2017 (section 2.2: straight-through Gumbel-Softmax).
"""

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

try:
  from numpyro.distributions import constraints
  from numpyro.distributions import distribution
  from numpyro.distributions.util import lazy_property
  from numpyro.distributions.util import validate_sample
except ImportError as e:  # pragma: no cover - exercised in a subprocess.
  raise ImportError(
      'gumbel.numpyro_adapter needs numpyro, an optional extra of gumbel: '
      'pip install "gumbel[numpyro]"') from e

from gumbel import _checks
from gumbel import distributions
from gumbel import objectives

Array = jax.Array
# The temperature rule's broadcasting, shared with gumbel.distrax_adapter.
_categorical_parameters = _checks.relaxed_categorical_parameters


class RelaxedOneHotCategorical(distribution.Distribution):
  """The Concrete (Gumbel-Softmax) distribution on the simplex.

  `sample(key, sample_shape)` is `gumbel.gumbel_softmax(key, logits
  broadcast to sample_shape + batch_shape + [K], temperature)`, so with
  `sample_shape=()` it is exactly `gumbel.gumbel_softmax(key, logits,
  temperature)`. `log_prob` is `gumbel.concrete_log_prob` (finite on the
  simplex's boundary, where it clamps).

  References:
    [CON] definition 2 and eq. 11; [GS] eqs. 2-3.
  """

  arg_constraints = {'temperature': constraints.positive,
                     'logits': constraints.real_vector}
  support = constraints.simplex
  reparametrized_params = ['temperature', 'logits']

  def __init__(self, temperature, logits: Optional[Array] = None,
               probs: Optional[Array] = None, *, validate_args: Optional[bool] = None):
    """Initializes the distribution.

    Args:
      temperature: tau > 0: a scalar, a batch-shaped array or any form of
        gumbel's temperature rule.
      logits: unnormalized log-probabilities `[..., K]` (or give `probs`).
      probs: probabilities `[..., K]` (or give `logits`).
      validate_args: numpyro's argument validation.
    """
    self.logits, self.temperature = _categorical_parameters(
        temperature, logits, probs, type(self).__name__)
    super().__init__(batch_shape=self.logits.shape[:-1], event_shape=self.logits.shape[-1:],
                     validate_args=validate_args)

  @lazy_property
  def probs(self) -> Array:
    return jax.nn.softmax(self.logits, axis=-1)

  def _logits_for(self, sample_shape):
    shape = tuple(sample_shape) + self.batch_shape + self.event_shape
    return jnp.broadcast_to(self.logits, shape)  # [*sample_shape, *batch, K]

  def sample(self, key, sample_shape=()):
    return distributions.gumbel_softmax(key, self._logits_for(sample_shape), self.temperature)

  @validate_sample
  def log_prob(self, value):
    return distributions.concrete_log_prob(value, self.logits, self.temperature)


class RelaxedOneHotCategoricalStraightThrough(RelaxedOneHotCategorical):
  """Straight-through Gumbel-Softmax: one-hot samples with relaxed gradients.

  `sample` is `gumbel.gumbel_softmax(..., hard=True)`: exactly one-hot in
  the forward pass (an exact Categorical sample, the argmax of the relaxed
  one) with the gradient of the relaxed sample. As the forward value is
  one-hot, where the Concrete density is 0 or infinite, `log_prob` is the
  Categorical log-probability of the one-hot value,
  `sum_k value_k log softmax(logits)_k` (`gumbel.objectives.
  categorical_log_prob`), whose gradient also flows through the value. Use
  it for the prior too (the model's site with the same logits' shape), so
  that `Trace_ELBO` estimates the discrete ELBO with the straight-through
  gradient; the temperature only shapes the gradient.

  References:
    [GS] section 2.2; Bengio, Leonard, Courville 2013 (arXiv:1308.3432).
  """

  def sample(self, key, sample_shape=()):
    return distributions.gumbel_softmax(
        key, self._logits_for(sample_shape), self.temperature, hard=True)

  @validate_sample
  def log_prob(self, value):
    shape = np.broadcast_shapes(jnp.shape(value), self.logits.shape)
    # Broadcast explicitly: rank promotion may be disabled.
    return objectives.categorical_log_prob(
        sample=jnp.broadcast_to(value, shape), logits=jnp.broadcast_to(self.logits, shape))
