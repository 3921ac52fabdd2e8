"""SBN (Bern.), 392-200-200-392 at initialization, 32 test images: the mean gradient of each
estimator (256 draws) against MuProp's (1024 draws, unbiased), per layer: cosine and norm.
  cd <checkout> && python results/explain/darn_gradient_check.py"""
import jax, jax.numpy as jnp, numpy as np
from configs import estimator_comparison as ec_config
from experiments import estimator_comparison as ec
def grads(name, n=64):
  config = ec_config.get_config(f'model=sbn_bern,estimator={name},preset=tiny')
  config.model.num_vars = 200
  task = ec.create_task(config)
  params, states = task.init(jax.random.key(0))
  x = jnp.asarray(task.eval_data['test'][:32])
  def g(k):
    return jax.grad(lambda p: task.loss(p, states, x, k, 0)[0])(params)
  gs = jax.jit(jax.vmap(g))(jax.random.split(jax.random.key(1), n))
  return jax.tree.map(lambda a: a.mean(0), gs), jax.tree.map(lambda a: a.std(0), gs)
ref, _ = grads('muprop', 1024)
for name in ('darn', 'st', 'sf', 'muprop'):
  m, s = grads(name, 256)
  for layer in ('layer1', 'layer2'):
    a = jnp.concatenate([l.ravel() for l in jax.tree.leaves(m[layer])]); b = jnp.concatenate([l.ravel() for l in jax.tree.leaves(ref[layer])])
    print(name, layer, 'cos vs muprop(1024):', float(a @ b / jnp.linalg.norm(a) / jnp.linalg.norm(b)), 'norm', float(jnp.linalg.norm(a)), 'ref norm', float(jnp.linalg.norm(b)))
