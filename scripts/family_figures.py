"""Draws the pictures of docs/family.md: relaxed top-k, Gumbel-Sinkhorn, hard concrete.

  python -m scripts.family_figures --out=docs [--seed=0]

Writes into `--out`:
  family_top_k.png: the relaxed 3-hot of 8 categories at tau = 1, 0.3, 0.1
    (one key: the same Gumbel noise in every panel), 'threshold' beside
    'xie_ermon', with the exact top-3 of the perturbed logits outlined. Xie &
    Ermon's entries exceed 1 at moderate temperatures.
  family_sinkhorn.png: a Gumbel-Sinkhorn sample of a 6 x 6 log_alpha at tau =
    1, 0.3, 0.1 and its hard matching; and the row-sum error of the Sinkhorn
    iterations against their number at those temperatures.
  family_hard_concrete.png: histograms of hard concrete gates (beta = 2/3,
    limits (-0.1, 1.1)) for log_alpha = -2, 0, 2, with the point masses at
    exactly 0 and 1 drawn as bars of their probability, and the closed form.
  family_l0_sparse.png: the test-time gates of examples/l0_sparse.py after
    3000 steps against the true weights |w*| (runs the example, about a
    minute on a shared CPU).
Takes about two minutes on a shared 2-core CPU.
"""

import importlib.util
import math
import os
import pathlib

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

import gumbel

matplotlib.use('Agg')
from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

_OUT = flags.DEFINE_string('out', 'docs', 'Folder for the PNG files.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of every key.')
TEMPERATURES = (1.0, 0.3, 0.1)


def top_k_figure(key):
  logits = jnp.array([1.2, 0.9, 0.8, 0.2, 0.0, -0.3, -0.8, -1.5])
  k = 3
  top = np.asarray(jnp.sum(jax.nn.one_hot(gumbel.gumbel_top_k(key, logits, k), 8), 0))
  fig, axes = plt.subplots(2, 3, figsize=(10, 4.5), sharey=True, sharex=True)
  for row, method in enumerate(('threshold', 'xie_ermon')):
    for col, tau in enumerate(TEMPERATURES):
      y = np.asarray(gumbel.relaxed_top_k(key, logits, k, tau, method=method))
      ax = axes[row, col]
      ax.bar(range(8), y, color=np.where(y > 1 + 1e-6, 'tab:red', 'tab:blue'))
      ax.bar(range(8), top, fill=False, edgecolor='k', linewidth=1)
      ax.axhline(1.0, color='gray', linewidth=0.8, linestyle='--')
      ax.set_title(f"{method}, tau = {tau:g} (sum {y.sum():.2f}, max {y.max():.2f})",
                   fontsize=9)
      ax.set_xticks(range(8))
  axes[1, 0].set_xlabel('category')
  axes[0, 0].set_ylabel('relaxed 3-hot')
  axes[1, 0].set_ylabel('relaxed 3-hot')
  fig.suptitle('relaxed_top_k: bars above 1 in red; the exact top-3 of logits + g outlined',
               fontsize=10)
  fig.tight_layout()
  return fig


def sinkhorn_figure(key):
  log_alpha = jnp.asarray(np.random.default_rng(0).normal(size=(6, 6)), jnp.float32)
  fig, axes = plt.subplots(1, 5, figsize=(15, 3.2))
  for ax, tau in zip(axes, TEMPERATURES):
    p = gumbel.gumbel_sinkhorn(key, log_alpha, tau, num_iters=1000, tol=1e-6)
    ax.imshow(np.asarray(p), vmin=0, vmax=1, cmap='viridis')
    ax.set_title(f'gumbel_sinkhorn, tau = {tau:g}', fontsize=9)
  hard = gumbel.gumbel_sinkhorn(key, log_alpha, 0.1, hard=True)
  axes[3].imshow(np.asarray(hard), vmin=0, vmax=1, cmap='viridis')
  axes[3].set_title('hard=True (the matching)', fontsize=9)
  for ax in axes[:4]:
    ax.set_xlabel('position')
    ax.set_ylabel('item')
  # Convergence: row-sum error after L iterations, for one 10 x 10 sample.
  x = jnp.asarray(np.random.default_rng(1).normal(size=(10, 10)), jnp.float32)
  x = x + gumbel.sample_gumbel(key, (10, 10))
  iterations = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
  for tau in TEMPERATURES + (0.03,):
    errors = [float(gumbel.sinkhorn(x / tau, num_iters=it, tol=0.0, return_residual=True)[1])
              for it in iterations]
    axes[4].loglog(iterations, np.maximum(errors, 1e-8), marker='.', label=f'tau = {tau:g}')
  axes[4].set_xlabel('Sinkhorn iterations')
  axes[4].set_ylabel('max |row sum - 1|')
  axes[4].set_title('convergence (n = 10)', fontsize=9)
  axes[4].legend(fontsize=7)
  fig.tight_layout()
  return fig


def hard_concrete_figure(key):
  beta, (low, high) = 2 / 3, (-0.1, 1.1)
  fig, axes = plt.subplots(1, 3, figsize=(11, 3), sharey=True)
  n = 200_000
  for ax, log_alpha in zip(axes, (-2.0, 0.0, 2.0)):
    z = np.asarray(gumbel.hard_concrete(key, jnp.full((n,), log_alpha), beta))
    inner = z[(z > 0) & (z < 1)]
    ax.hist(inner, bins=50, range=(0, 1), weights=np.full(inner.shape, 50 / n),
            color='tab:blue', label='0 < z < 1 (density)')
    p0 = 1 / (1 + math.exp(-(beta * math.log(-low / high) - log_alpha)))
    p1 = 1 / (1 + math.exp(-(log_alpha - beta * math.log((1 - low) / (high - 1)))))
    ax.bar([0, 1], [np.mean(z == 0), np.mean(z == 1)], width=0.04, color='tab:red',
           label='P(z = 0), P(z = 1): sampled')
    ax.plot([0, 1], [p0, p1], 'kx', markersize=9, label='closed form')
    l0 = float(gumbel.hard_concrete_l0(jnp.array(log_alpha), beta))
    ax.set_title(f'log_alpha = {log_alpha:g}: P(z != 0) = {l0:.3f}', fontsize=9)
    ax.set_xlabel('z')
  axes[0].legend(fontsize=7, loc='upper center')
  fig.tight_layout()
  return fig


def l0_figure():
  path = pathlib.Path(__file__).resolve().parent.parent / 'examples' / 'l0_sparse.py'
  spec = importlib.util.spec_from_file_location('l0_sparse', path)
  example = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(example)
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), sharey=True)
  for ax, weight in zip(axes, ('0.05', '0')):
    metrics, params, w_true = example.main(['--steps=3000', f'--l0_weight={weight}',
                                            '--log_every=3000'])
    z = np.asarray(example.test_gates(params['log_alpha']))
    ax.scatter(np.abs(np.asarray(w_true)), z, s=12)
    ax.set_xlabel('|w*| (true weight)')
    ax.set_title(f'l0_weight = {weight}: {100 * metrics["test/fraction_gates_zero"]:.0f}% '
                 f'of gates exactly 0, test MSE {metrics["test/mse"]:.4f}', fontsize=9)
  axes[0].set_ylabel('test-time gate z')
  fig.tight_layout()
  return fig


def main(argv):
  del argv
  os.makedirs(_OUT.value, exist_ok=True)
  key = jax.random.key(_SEED.value)
  keys = jax.random.split(key, 3)
  for name, make in (('family_top_k', lambda: top_k_figure(keys[0])),
                     ('family_sinkhorn', lambda: sinkhorn_figure(keys[1])),
                     ('family_hard_concrete', lambda: hard_concrete_figure(keys[2])),
                     ('family_l0_sparse', l0_figure)):
    fig = make()
    fig.savefig(os.path.join(_OUT.value, f'{name}.png'), dpi=110)
    plt.close(fig)
    print('wrote', os.path.join(_OUT.value, f'{name}.png'), flush=True)


if __name__ == '__main__':
  app.run(main)
