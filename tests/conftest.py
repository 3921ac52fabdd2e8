"""Test configuration shared by the whole suite.

The suite is meant to run as `JAX_NUMPY_RANK_PROMOTION=raise python -m pytest`
(as flax's CI does); setting the flag here makes a plain `pytest` behave the
same, so implicit rank promotion in library code fails the tests either way.
"""

import jax

jax.config.update('jax_numpy_rank_promotion', 'raise')
