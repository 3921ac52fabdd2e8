"""gumbel: Gumbel-Softmax / Concrete relaxations and gradient estimators in JAX.

The public API is listed in `__all__` (what `help(gumbel)` shows). The
distribution objects for distrax and numpyro live in `gumbel.distrax_adapter`
and `gumbel.numpyro_adapter`; they need the extras `gumbel[distrax]` and
`gumbel[numpyro]`, so `import gumbel` does not import them.
"""

from gumbel.distributions import bernoulli_kl
from gumbel.distributions import binary_concrete_log_prob
from gumbel.distributions import categorical_kl
from gumbel.distributions import check_temperature
from gumbel.distributions import concrete_log_prob
from gumbel.distributions import exp_concrete_log_prob
from gumbel.distributions import gumbel_from_uniform
from gumbel.distributions import gumbel_max
from gumbel.distributions import gumbel_softmax
from gumbel.distributions import log_gumbel_softmax
from gumbel.distributions import logistic_from_uniform
from gumbel.distributions import relaxed_bernoulli
from gumbel.distributions import sample_gumbel
from gumbel.distributions import sample_logistic
from gumbel.distributions import straight_through
from gumbel.diagnostics import gradient_variance
from gumbel.estimators import ESTIMATORS
from gumbel.estimators import Estimator
from gumbel.estimators import get_estimator
from gumbel.gates import hard_concrete
from gumbel.gates import hard_concrete_l0
from gumbel.objectives import bernoulli_log_likelihood
from gumbel.objectives import categorical_log_prob
from gumbel.objectives import importance_weighted_bound
from gumbel.objectives import negative_elbo
from gumbel.permutations import gumbel_sinkhorn
from gumbel.permutations import matching
from gumbel.permutations import sinkhorn
from gumbel.quantizer import GumbelVectorQuantizer
from gumbel.schedules import constant_temperature
from gumbel.schedules import exponential_temperature
from gumbel.schedules import geometric_temperature
from gumbel.subsets import gumbel_top_k
from gumbel.subsets import plackett_luce_log_prob
from gumbel.subsets import relaxed_top_k

__version__ = '0.1.0'

__all__ = (
    # Distributions: noise, sampling, densities, divergences.
    'bernoulli_kl',
    'binary_concrete_log_prob',
    'categorical_kl',
    'check_temperature',
    'concrete_log_prob',
    'exp_concrete_log_prob',
    'gumbel_from_uniform',
    'gumbel_max',
    'gumbel_softmax',
    'log_gumbel_softmax',
    'logistic_from_uniform',
    'relaxed_bernoulli',
    'sample_gumbel',
    'sample_logistic',
    'straight_through',
    # Diagnostics.
    'gradient_variance',
    # Estimators.
    'ESTIMATORS',
    'Estimator',
    'get_estimator',
    # Objectives.
    'bernoulli_log_likelihood',
    'categorical_log_prob',
    'importance_weighted_bound',
    'negative_elbo',
    # Subsets: sampling without replacement, relaxed top-k.
    'gumbel_top_k',
    'plackett_luce_log_prob',
    'relaxed_top_k',
    # Permutations: Sinkhorn, Gumbel-Sinkhorn, matchings.
    'gumbel_sinkhorn',
    'matching',
    'sinkhorn',
    # Sparse gates: hard concrete.
    'hard_concrete',
    'hard_concrete_l0',
    # Vector quantizer (flax NNX).
    'GumbelVectorQuantizer',
    # Temperature schedules.
    'constant_temperature',
    'exponential_temperature',
    'geometric_temperature',
)
