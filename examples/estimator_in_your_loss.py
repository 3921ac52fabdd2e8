"""Any gradient estimator of `gumbel.ESTIMATORS` dropped into your own loss.

A discrete autoencoder (784-200-(20 x 10 categorical) encoder, 200-784 decoder, the
uniform prior's analytic KL) whose reconstruction term is estimated by the estimator
that `--estimator` names. Your loss only has to say what the objective of a sample
is (`f`, here log p(x|z) through a decoder it closes over); the estimator returns a
surrogate whose value estimates f and whose gradient is the estimator's gradient,
for the encoder's logits and for everything f closes over. Bernoulli-only
estimators (disarm) get 200 Bernoulli units instead.

  python examples/estimator_in_your_loss.py --estimator=rebar --steps=1000
"""

import argparse
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

import gumbel
from experiments import input_pipeline


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--estimator', default='rebar', choices=sorted(gumbel.ESTIMATORS))
  parser.add_argument('--steps', type=int, default=1000)
  parser.add_argument('--log_every', type=int, default=250)
  args = parser.parse_args()
  estimator = gumbel.ESTIMATORS[args.estimator]
  kind = 'categorical' if 'categorical' in estimator.kinds else 'bernoulli'
  shape = (20, 10) if kind == 'categorical' else (200,)                # latent shape per image
  kl_fn = gumbel.categorical_kl if kind == 'categorical' else gumbel.bernoulli_kl
  encoder = nn.Sequential([nn.Dense(200), nn.tanh, nn.Dense(math.prod(shape))])
  decoder = nn.Sequential([nn.Dense(200), nn.tanh, nn.Dense(784)])

  def loss_fn(params, key, x, estimator_state):
    logits = encoder.apply(params['encoder'], x).reshape(len(x), *shape)    # [B, *shape]

    def f(z):  # The objective of a sample z [B, *shape] (hard or relaxed): log p(x|z).
      x_logits = decoder.apply(params['decoder'], z.reshape(len(x), -1))    # [B, 784]
      return gumbel.bernoulli_log_likelihood(logits=x_logits, targets=x)   # [B]

    surrogate, _, estimator_state = estimator.apply(key, logits, f, estimator_state, kind=kind)
    kl = kl_fn(logits, jnp.zeros(())).reshape(len(x), -1).sum(-1)           # [B]
    return jnp.mean(kl - surrogate), estimator_state

  data = input_pipeline.load_mnist()
  train = jnp.asarray(data.train)                                          # [n, 784] in [0, 1]
  init_key, estimator_key, loop_key = jax.random.split(jax.random.key(0), 3)
  encoder_key, decoder_key = jax.random.split(init_key)
  params = {'encoder': encoder.init(encoder_key, train[:1]),
            'decoder': decoder.init(decoder_key, jnp.zeros((1, 200)))}
  estimator_state = estimator.init(estimator_key, jnp.zeros((100, *shape)), kind=kind)
  optimizer = optax.adam(1e-3)
  opt_state = optimizer.init(params)

  @jax.jit
  def train_step(params, opt_state, estimator_state, step):
    batch_key, binarize_key, key = jax.random.split(jax.random.fold_in(loop_key, step), 3)
    images = train[jax.random.randint(batch_key, (100,), 0, len(train))]
    x = jax.random.bernoulli(binarize_key, images).astype(jnp.float32)
    (loss, estimator_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, key, x, estimator_state)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, estimator_state, loss

  for step in range(args.steps):
    params, opt_state, estimator_state, loss = train_step(params, opt_state, estimator_state, step)
    if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
      print(f'{args.estimator} ({kind}) step {step + 1:5d}  loss {float(loss):7.2f} '
            '(this step: KL - surrogate)', flush=True)


if __name__ == '__main__':
  main()
