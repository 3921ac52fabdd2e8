"""VAE rows: is DARN's expected encoder gradient the true one? Exact expectations, no draws of
the estimator itself.

f(b) = log p(x|b) + log p(b) - log q(b|x) (q's logits fixed: the learning signal of the
normalized score-function estimators here). Per example, with logits l of q:
- true gradient of E_q[f] w.r.t. l: Bernoulli sigma'(l_i) E[f(b_i=1) - f(b_i=0)]; categorical
  p_j * (F_j - p_j . F_j), F_j[c] = E[f(b_j = e_c)] (expectations over the other units: 64
  draws, every unit flipped in each; unbiased, low variance);
- DARN's expected gradient (its signal f'(b0) . (b - b0) times the score; running-mean centring
  and normalization change neither its direction): the same with the differences replaced by the
  slope f'(b0) at b0 = 1/2 (1/K): sigma'(l_i) f'_i(1/2), p_j * (g_j - p_j . g_j);
- ST's expected gradient, E[f'(b)] through the same Jacobian (64 draws).
Cosine with the true gradient over the 32 test images x units, at initialization and after
3,000 steps of MuProp (batch 100, SGD momentum 0.9, lr 3e-3, the 5,000 embedded digits).

  python -m scripts.darn_vae_bias_check   # the output: results/explain/darn_vae_bias_check.out
"""

import sys

import jax
import jax.numpy as jnp
import optax

from configs import estimator_comparison as ec_config
from experiments import estimator_comparison as ec
from gumbel import objectives

S = 64  # Draws of the other units.


def setup(row, num_vars=None, batch_size=100):
  config = ec_config.get_config(f'model={row},estimator=muprop,preset=tiny')
  config.model.num_vars = num_vars or (200 if row == 'vae_bern' else 20)
  config.model.num_classes = 10
  config.batch_size = batch_size
  task = ec.create_task(config)
  nets, layers = ec.create_networks(config)
  return task, nets, layers[0]


def train(task, steps):
  params, states = task.init(jax.random.key(0))
  opt = optax.sgd(3e-3, momentum=0.9)
  data = jax.tree.map(jnp.asarray, task.data)

  def step(carry, t):
    params, states, opt_state = carry
    k1, k2 = jax.random.split(jax.random.fold_in(jax.random.key(5), t))
    x = task.sample_batch(data, k1, states)
    (loss, (_, states)), g = jax.value_and_grad(task.loss, has_aux=True)(params, states, x, k2, t)
    updates, opt_state = opt.update(g, opt_state)
    return (optax.apply_updates(params, updates), states, opt_state), loss

  (params, _, _), losses = jax.jit(lambda c: jax.lax.scan(step, c, jnp.arange(steps)))(
      (params, states, opt.init(params)))
  return params, losses


def check(row, task, nets, layer, params, images=32, draws=S):
  """Prints and returns `{estimator: (cosine, norm ratio)}` against the true gradient."""
  x = jnp.asarray(task.eval_data['test'][:images])
  logits = layer.logits(nets['encoder'].apply(params['encoder'], x))
  prior = jnp.broadcast_to(ec.prior_logits(params, layer), logits.shape)

  def f(z, xi, li, pi):  # One example: z of the event shape.
    decoded = nets['decoder'].apply(params['decoder'], layer.flatten(z[None]))
    ll = objectives.bernoulli_log_likelihood(logits=decoded, targets=xi[None])[0]
    return ll + layer.log_prob(pi[None], z[None])[0] - layer.log_prob(li[None], z[None])[0]

  bern = layer.kind == 'bernoulli'
  units = logits.shape[1]

  def per_example(xi, li, pi, key):
    fe = lambda z: f(z, xi, li, pi)
    def one_draw(k):
      b = layer.sample(k, li[None])[0]
      if bern:  # [D]: f with unit i set to 1 minus with it set to 0.
        eye = jnp.eye(units)
        ones = jnp.maximum(b[None], eye)
        zeros = b[None] * (1 - eye)
        diff = jax.vmap(fe)(ones) - jax.vmap(fe)(zeros)
      else:  # [J, K]: f with variable j set to class c.
        k_ = li.shape[-1]
        def setj(j, c):
          return b.at[j].set(jax.nn.one_hot(c, k_))
        diff = jax.vmap(lambda j: jax.vmap(lambda c: fe(setj(j, c)))(jnp.arange(k_)))(
            jnp.arange(units))
      return diff, jax.grad(fe)(b)
    diffs, slopes = jax.lax.map(one_draw, jax.random.split(key, draws))
    centre = jnp.full(li.shape, 0.5 if bern else 1.0 / li.shape[-1])
    return diffs.mean(0), slopes.mean(0), jax.grad(fe)(centre)

  true_d, st_d, darn_d = jax.jit(jax.vmap(per_example))(
      x, logits, prior, jax.random.split(jax.random.key(3), x.shape[0]))

  def through_jacobian(d):
    if bern:
      s = jax.nn.sigmoid(logits)
      return s * (1 - s) * d
    p = jax.nn.softmax(logits, -1)
    return p * (d - jnp.sum(p * d, -1, keepdims=True))

  t = through_jacobian(true_d).ravel()
  out = {}
  for name, d in (('darn', darn_d), ('st', st_d)):
    g = through_jacobian(d).ravel()
    out[name] = (float(g @ t / jnp.linalg.norm(g) / jnp.linalg.norm(t)),
                 float(jnp.linalg.norm(g) / jnp.linalg.norm(t)))
    print(f'{row} {name}: cosine with the true logit gradient {out[name][0]:.3f}, '
          f'norm ratio {out[name][1]:.2f}')
  return out


def main(steps=3000, images=32, draws=S, num_vars=None, batch_size=100):
  """Both VAE rows, at initialization and after `steps` MuProp steps."""
  for row in ('vae_bern', 'vae_cat'):
    task, nets, layer = setup(row, num_vars, batch_size)
    for n in (0, steps):
      params, losses = train(task, n) if n else (task.init(jax.random.key(0))[0], None)
      if n:
        print(f'{row}: after {n} MuProp steps (train -ELBO, last 100 steps: '
              f'{float(losses[-100:].mean()):.1f})')
      else:
        print(f'{row}: at initialization')
      check(row, task, nets, layer, params, images, draws)


if __name__ == '__main__':
  if len(sys.argv) > 1:
    sys.exit('usage: python -m scripts.darn_vae_bias_check')
  main()
