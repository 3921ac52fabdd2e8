"""The categorical VAE of the Gumbel-Softmax blog post, in plain gumbel + flax + optax.

Jang (2016), "Categorical Variational Autoencoders using Gumbel-Softmax": N = 30
categorical variables of K = 10 classes, a 784-512-256 encoder and a symmetric
decoder, tau = max(0.5, exp(-r t)) recomputed every 1000 steps, Adam, dynamic
binarization. Prints the -ELBO and writes 100 decoded random codes as a PNG.

  python examples/categorical_vae.py --steps=2000 --out=categorical_vae_samples.png
"""

import argparse

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from PIL import Image

import gumbel
from experiments import input_pipeline

N, K = 30, 10  # Latent variables, classes per variable.


class VAE(nn.Module):
  """Encoder 784-512-256-(N*K) logits; decoder (N*K)-256-512-784 Bernoulli logits."""

  def setup(self):
    self.encoder = nn.Sequential([nn.Dense(512), nn.relu, nn.Dense(256), nn.relu, nn.Dense(N * K)])
    self.decoder = nn.Sequential([nn.Dense(256), nn.relu, nn.Dense(512), nn.relu, nn.Dense(784)])

  def encode(self, x):
    return self.encoder(x).reshape(-1, N, K)                    # [B, N, K] logits of q(z|x)

  def decode(self, z):
    return self.decoder(z.reshape(-1, N * K))                   # [B, 784] logits of p(x|z)

  def __call__(self, x):
    return self.decode(self.encode(x))


def neg_elbo(params, key, x, tau, hard=False):
  """Mean -ELBO of the batch x, with the analytic KL to the uniform prior."""
  logits = VAE().apply(params, x, method='encode')              # [B, N, K]
  z = gumbel.gumbel_softmax(key, logits, tau, hard=hard)        # [B, N, K], relaxed one-hot
  x_logits = VAE().apply(params, z, method='decode')            # [B, 784]
  log_likelihood = gumbel.bernoulli_log_likelihood(logits=x_logits, targets=x)   # [B]
  kl = gumbel.categorical_kl(logits, jnp.zeros(())).sum(-1)                     # [B]
  return gumbel.negative_elbo(log_likelihood=log_likelihood, kl=kl).mean()


def main(loss_fn=neg_elbo, default_out='categorical_vae_samples.png'):
  """Trains with `loss_fn(params, key, x, tau, hard)`, prints the -ELBO, writes samples."""
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  for flag, default in (('steps', 2000), ('batch_size', 100), ('learning_rate', 1e-3),
                        ('log_every', 500), ('out', default_out)):
    parser.add_argument(f'--{flag}', type=type(default), default=default)
  args = parser.parse_args()
  data = input_pipeline.load_mnist()                   # float32 [n, 784] grey levels in [0, 1]
  train, test = jnp.asarray(data.train), jnp.asarray(data.test)
  tau_schedule = gumbel.exponential_temperature(tau0=1.0, rate=3e-5, tau_min=0.5, interval=1000)
  optimizer = optax.adam(args.learning_rate)
  init_key, loop_key, eval_key, sample_key = jax.random.split(jax.random.key(0), 4)
  params = VAE().init(init_key, train[:1])
  opt_state = optimizer.init(params)

  @jax.jit
  def train_step(params, opt_state, step):
    batch_key, binarize_key, noise_key = jax.random.split(jax.random.fold_in(loop_key, step), 3)
    images = train[jax.random.randint(batch_key, (args.batch_size,), 0, len(train))]
    x = jax.random.bernoulli(binarize_key, images).astype(jnp.float32)    # dynamic binarization
    tau = tau_schedule(step)
    loss, grads = jax.value_and_grad(loss_fn)(params, noise_key, x, tau)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss, tau

  losses = []
  for step in range(args.steps):
    params, opt_state, loss, tau = train_step(params, opt_state, step)
    losses.append(loss)
    if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
      print(f'step {step + 1:6d}  tau {float(tau):.3f}  train -ELBO {np.mean(losses):8.2f} '
            f'(mean of the last {len(losses)} steps)', flush=True)
      losses = []
  binarize_key, noise_key = jax.random.split(eval_key)
  x_test = jax.random.bernoulli(binarize_key, test).astype(jnp.float32)
  test_loss = loss_fn(params, noise_key, x_test, tau, hard=True)  # one-hot codes: the discrete model
  print(f'test -ELBO {float(test_loss):.2f} ({len(test)} images, one-hot codes)')
  z = gumbel.gumbel_max(sample_key, jnp.zeros((100, N, K)))          # 100 codes from the prior
  x_logits = VAE().apply(params, z, method='decode')                 # [100, 784]
  grid = np.asarray(jax.nn.sigmoid(x_logits)).reshape(10, 10, 28, 28).transpose(0, 2, 1, 3)
  Image.fromarray((255 * grid.reshape(280, 280)).astype(np.uint8)).save(args.out)
  print(f'wrote {args.out}')


if __name__ == '__main__':
  main()
