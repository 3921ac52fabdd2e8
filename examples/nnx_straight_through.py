"""A categorical VAE in flax NNX with a straight-through Gumbel-Softmax layer.

`StraightThroughGumbel` is a layer like `nnx.Dropout`: it takes an `nnx.Rngs`
(or one of its streams) when built and draws a fresh key from its stream at every
call, so the model's randomness lives in the model and `nnx.jit` carries it from
step to step. Its output is one-hot in the forward pass with the Gumbel-Softmax
gradient (ST Gumbel-Softmax, [GS] section 2.2): the decoder only ever sees
discrete codes, so the training loss is the discrete model's -ELBO.

  python examples/nnx_straight_through.py --steps=2000
"""

import argparse

from flax import nnx
import jax
import jax.numpy as jnp
import optax

import gumbel
from experiments import input_pipeline

N, K = 30, 10  # Latent variables, classes per variable.


class StraightThroughGumbel(nnx.Module):
  """One-hot samples forward, Gumbel-Softmax gradients back; noise from an nnx.Rngs stream."""

  def __init__(self, *, rngs: nnx.Rngs | nnx.RngStream, stream: str = 'gumbel'):
    self.rng = rngs[stream] if isinstance(rngs, nnx.Rngs) else rngs

  def __call__(self, logits, tau):
    return gumbel.gumbel_softmax(self.rng(), logits, tau, hard=True)   # a key, not the stream


class VAE(nnx.Module):
  """The blog's model: 784-512-256-(N*K) encoder, ST layer, (N*K)-256-512-784 decoder."""

  def __init__(self, *, rngs: nnx.Rngs):
    def mlp(*sizes):
      layers = [nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes, sizes[1:])]
      return nnx.Sequential(*[l for layer in layers for l in (layer, nnx.relu)][:-1])
    self.encoder, self.decoder = mlp(784, 512, 256, N * K), mlp(N * K, 256, 512, 784)
    self.sample = StraightThroughGumbel(rngs=rngs)

  def __call__(self, x, tau):
    logits = self.encoder(x).reshape(-1, N, K)                          # [B, N, K]
    z = self.sample(logits, tau)                                        # [B, N, K], one-hot
    return logits, self.decoder(z.reshape(-1, N * K))                   # [B, 784]


def neg_elbo(model, x, tau):
  logits, x_logits = model(x, tau)
  log_likelihood = gumbel.bernoulli_log_likelihood(logits=x_logits, targets=x)   # [B]
  kl = gumbel.categorical_kl(logits, jnp.zeros(())).sum(-1)                     # [B]
  return gumbel.negative_elbo(log_likelihood=log_likelihood, kl=kl).mean()


@nnx.jit
def train_step(model, optimizer, x, tau):
  loss, grads = nnx.value_and_grad(neg_elbo)(model, x, tau)
  optimizer.update(model, grads)
  return loss


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--steps', type=int, default=2000)
  parser.add_argument('--log_every', type=int, default=500)
  args = parser.parse_args()
  data = input_pipeline.load_mnist()
  train, test = jnp.asarray(data.train), jnp.asarray(data.test)       # [n, 784] in [0, 1]
  model = VAE(rngs=nnx.Rngs(params=0, gumbel=1))
  optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
  tau_schedule = gumbel.exponential_temperature(tau0=1.0, rate=3e-5, tau_min=0.5, interval=1000)
  data_key = jax.random.key(2)
  for step in range(args.steps):
    batch_key, binarize_key = jax.random.split(jax.random.fold_in(data_key, step))
    images = train[jax.random.randint(batch_key, (100,), 0, len(train))]
    x = jax.random.bernoulli(binarize_key, images).astype(jnp.float32)
    loss = train_step(model, optimizer, x, tau_schedule(step))
    if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
      print(f'step {step + 1:6d}  tau {float(tau_schedule(step)):.3f}  '
            f'train -ELBO {float(loss):8.2f} (this step)', flush=True)
  x_test = jax.random.bernoulli(jax.random.key(3), test).astype(jnp.float32)
  test_loss = neg_elbo(model, x_test, tau_schedule(args.steps))
  print(f'test -ELBO {float(test_loss):.2f} ({len(test)} images, one-hot codes)')


if __name__ == '__main__':
  main()
