"""VAE rows (784-200-784 Bernoulli, 784-(20x10)-784 categorical), learned prior, at
initialization, 32 test images: the mean encoder gradient of each estimator (256 draws) against
MuProp's (4,096 draws, unbiased), cosine and norm. The decoder's and the prior's gradients are
pathwise at the sample for every estimator here, so the estimators differ on the encoder only.
  cd <checkout> && python results/explain/darn_vae_gradient_check.py"""
import jax, jax.numpy as jnp
from configs import estimator_comparison as ec_config
from experiments import estimator_comparison as ec


def flat(tree):
  return jnp.concatenate([l.ravel() for l in jax.tree.leaves(tree)])


def mean_grad(row, name, n, seed):
  config = ec_config.get_config(f'model={row},estimator={name},preset=tiny')
  config.model.num_vars = 200 if row == 'vae_bern' else 20
  config.model.num_classes = 10
  task = ec.create_task(config)
  params, states = task.init(jax.random.key(0))  # The same initialization for every estimator.
  x = jnp.asarray(task.eval_data['test'][:32])
  def g(k):
    return jax.grad(lambda p: task.loss(p, states, x, k, 0)[0])(params)['encoder']
  total = None
  for keys in jnp.split(jax.random.split(jax.random.key(seed), n), max(1, n // 256)):
    s = jax.tree.map(lambda a: a.sum(0), jax.jit(jax.vmap(g))(keys))
    total = s if total is None else jax.tree.map(jnp.add, total, s)
  return flat(jax.tree.map(lambda a: a / n, total))


for row in ('vae_bern', 'vae_cat'):
  ref = mean_grad(row, 'muprop', 4096, 1)
  for name in ('darn', 'st', 'sf', 'muprop'):
    m = mean_grad(row, name, 256, 2)
    print(row, name, 'encoder cos vs muprop(4096): %.3f' % float(m @ ref / jnp.linalg.norm(m) / jnp.linalg.norm(ref)),
          'norm %.3f' % float(jnp.linalg.norm(m)), 'ref norm %.3f' % float(jnp.linalg.norm(ref)))
