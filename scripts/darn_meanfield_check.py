"""SBN (Bern.) at initialization: would DARN's layer-1 gradient carry information if its Taylor
derivative f'(1/2) were taken through a mean-field pass of layer 2 (h2 = sigmoid(logits2(h1)))
instead of through layer 2's score-function term? Cosine of the mean layer-1 gradient (256
draws) against MuProp's (1,024 draws), as `scripts/darn_gradient_check.py`.

  python -m scripts.darn_meanfield_check   # the output: results/explain/darn_meanfield_check.out
"""

import sys

import jax
import jax.numpy as jnp

from configs import estimator_comparison as ec_config
from experiments import estimator_comparison as ec
from gumbel import objectives


def flat(tree):
  return jnp.concatenate([l.ravel() for l in jax.tree.leaves(tree)])


def check(draws=256, reference_draws=1024, *, num_vars=200,
          images=32) -> tuple[float, float, float]:
  """`(cosine vs MuProp, norm, MuProp's norm)` of the mean-field DARN layer-1 gradient."""
  config = ec_config.get_config('model=sbn_bern,estimator=muprop,preset=tiny')
  config.model.num_vars = num_vars
  task = ec.create_task(config)
  params, states = task.init(jax.random.key(0))
  x = jnp.asarray(task.eval_data['test'][:images])
  nets, _ = ec.create_networks(config)
  x_u, x_l = x[:, :392], x[:, 392:]

  def muprop_grad(k):
    return jax.grad(lambda p: task.loss(p, states, x, k, 0)[0])(params)['layer1']

  def darn_meanfield_grad(k):
    def f_mf(h1):  # log p(x_l | mean-field h2), h2 = sigmoid(logits2(h1)).
      h2 = jax.nn.sigmoid(nets['layer2'].apply(params['layer2'], h1))
      return objectives.bernoulli_log_likelihood(
          logits=nets['output'].apply(params['output'], h2), targets=x_l)

    def surrogate(p1):
      logits1 = nets['layer1'].apply(p1, x_u)
      b1 = jax.random.bernoulli(k, jax.nn.sigmoid(jax.lax.stop_gradient(logits1))).astype(x.dtype)
      point = jnp.full(b1.shape, 0.5)
      _, vjp = jax.vjp(f_mf, point)
      (slope,) = vjp(jnp.ones((x.shape[0],)))
      signal = jax.lax.stop_gradient(jnp.sum(slope * (b1 - point), axis=-1))
      log_q = jnp.sum(b1 * logits1 - jax.nn.softplus(logits1), axis=-1)
      return -jnp.mean(signal * log_q)  # The loss is -objective, as task.loss.

    return jax.grad(surrogate)(params['layer1'])

  ref = flat(jax.tree.map(lambda a: a.mean(0), jax.jit(jax.vmap(muprop_grad))(
      jax.random.split(jax.random.key(1), reference_draws))))
  mf = flat(jax.tree.map(lambda a: a.mean(0), jax.jit(jax.vmap(darn_meanfield_grad))(
      jax.random.split(jax.random.key(2), draws))))
  out = (float(mf @ ref / jnp.linalg.norm(mf) / jnp.linalg.norm(ref)), float(jnp.linalg.norm(mf)),
         float(jnp.linalg.norm(ref)))
  print(f'darn with a mean-field layer-1 derivative, layer1 cos vs muprop({reference_draws}):',
        out[0], 'norm', out[1], 'ref norm', out[2])
  return out


if __name__ == '__main__':
  if len(sys.argv) > 1:
    sys.exit('usage: python -m scripts.darn_meanfield_check')
  check()
