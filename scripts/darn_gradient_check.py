"""SBN (Bern.), 392-200-200-392 at initialization, 32 test images: the mean gradient of each
estimator (256 draws) against MuProp's (1024 draws, unbiased), per layer: cosine and norm.

  python -m scripts.darn_gradient_check   # the output: results/explain/darn_gradient_check.out
"""

import sys

import jax
import jax.numpy as jnp

from configs import estimator_comparison as ec_config
from experiments import estimator_comparison as ec


def grads(name, n=64, *, num_vars=200, images=32):
  """The mean and std over `n` draws of estimator `name`'s gradient at initialization."""
  config = ec_config.get_config(f'model=sbn_bern,estimator={name},preset=tiny')
  config.model.num_vars = num_vars
  task = ec.create_task(config)
  params, states = task.init(jax.random.key(0))
  x = jnp.asarray(task.eval_data['test'][:images])

  def g(k):
    return jax.grad(lambda p: task.loss(p, states, x, k, 0)[0])(params)

  gs = jax.jit(jax.vmap(g))(jax.random.split(jax.random.key(1), n))
  return jax.tree.map(lambda a: a.mean(0), gs), jax.tree.map(lambda a: a.std(0), gs)


def check(draws=256, reference_draws=1024, **sizes) -> list[tuple[str, str, float, float, float]]:
  """`(estimator, layer, cosine vs MuProp, norm, MuProp's norm)` rows, printed as they come."""
  ref, _ = grads('muprop', reference_draws, **sizes)
  rows = []
  for name in ('darn', 'st', 'sf', 'muprop'):
    m, _ = grads(name, draws, **sizes)
    for layer in ('layer1', 'layer2'):
      a = jnp.concatenate([l.ravel() for l in jax.tree.leaves(m[layer])])
      b = jnp.concatenate([l.ravel() for l in jax.tree.leaves(ref[layer])])
      cosine = float(a @ b / jnp.linalg.norm(a) / jnp.linalg.norm(b))
      rows.append((name, layer, cosine, float(jnp.linalg.norm(a)), float(jnp.linalg.norm(b))))
      print(name, layer, f'cos vs muprop({reference_draws}):', cosine, 'norm', rows[-1][3],
            'ref norm', rows[-1][4])
  return rows


if __name__ == '__main__':
  if len(sys.argv) > 1:
    sys.exit('usage: python -m scripts.darn_gradient_check')
  check()
