"""L0-sparse linear regression with hard concrete gates (Louizos et al. 2018).

y = X w* + noise with 100 features of which 10 matter. Each weight w_j has a
gate z_j ~ HardConcrete(log_alpha_j, beta = 2/3, limits (-0.1, 1.1)); the model
predicts X (w * z) and minimizes the mean squared error plus
l0_weight * E[||z||_0], the expected number of open gates in closed form
(`gumbel.hard_concrete_l0`, their eq. 12). At test time the gates are the
deterministic z = min(1, max(0, sigmoid(log_alpha) (r - l) + l)) (their
eq. 13), exactly 0 for most of the 90 useless features.

  python examples/l0_sparse.py --steps=3000
  python examples/l0_sparse.py --steps=3000 --l0_weight=0   # no penalty

Measured here (seed 0; 2-core CPU shared with other jobs, under `nice`; the
wall time includes compilation):

  --l0_weight=0.05: test gates exactly 0: 0.90 (90 of 100), true features kept
    10 of 10, false kept 0, test MSE 0.0129 (noise variance 0.01), E[L0] 10.1,
    sampled gates exactly 0: 0.90 (31 s)
  --l0_weight=0:    test gates exactly 0: 0.08 (8 of 100), true features kept
    10 of 10, false kept 82, test MSE 0.0237, E[L0] 80.1, sampled gates
    exactly 0: 0.18 (14 s)
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gumbel

LIMITS = (-0.1, 1.1)   # (l, r), the stretch interval of Louizos et al.
BETA = 2 / 3           # Their temperature.


def make_data(key, num_train, num_test, features, informative, noise):
  """X ~ N(0, 1); w* has `informative` non-zero entries of magnitude 1..2."""
  kx, kw, ks, kn, kt = jax.random.split(key, 5)
  w = jnp.zeros(features).at[:informative].set(
      jax.random.uniform(kw, (informative,), minval=1.0, maxval=2.0)
      * jnp.where(jax.random.bernoulli(ks, 0.5, (informative,)), 1.0, -1.0))
  x = jax.random.normal(kx, (num_train + num_test, features))
  y = x @ w + noise * jax.random.normal(kn, (num_train + num_test,))
  return (x[:num_train], y[:num_train]), (x[num_train:], y[num_train:]), w


def test_gates(log_alpha):
  """Louizos et al. eq. 13: the deterministic gates used at test time."""
  low, high = LIMITS
  return jnp.clip(jax.nn.sigmoid(log_alpha) * (high - low) + low, 0.0, 1.0)


def loss_fn(params, key, x, y, l0_weight):
  """MSE with sampled gates + l0_weight * expected number of open gates."""
  z = gumbel.hard_concrete(key, params['log_alpha'], BETA, limits=LIMITS)   # [features]
  mse = jnp.mean((x @ (params['w'] * z) - y) ** 2)
  l0 = gumbel.hard_concrete_l0(params['log_alpha'], BETA, limits=LIMITS).sum()
  return mse + l0_weight * l0, (mse, l0)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  for flag, default in (('steps', 3000), ('l0_weight', 0.05), ('learning_rate', 0.02),
                        ('features', 100), ('informative', 10), ('num_train', 500),
                        ('num_test', 1000), ('noise', 0.1), ('seed', 0), ('log_every', 500)):
    parser.add_argument(f'--{flag}', type=type(default), default=default)
  args = parser.parse_args(argv)
  start = time.time()
  key = jax.random.key(args.seed)
  data_key, init_key, noise_key = jax.random.split(key, 3)
  del key
  (x, y), (x_test, y_test), w_true = make_data(
      data_key, args.num_train, args.num_test, args.features, args.informative, args.noise)
  params = {'w': 0.01 * jax.random.normal(init_key, (args.features,)),
            'log_alpha': jnp.full((args.features,), 2.0)}   # Gates start open: P(z != 0) = 0.95.
  optimizer = optax.adam(args.learning_rate)
  opt_state = optimizer.init(params)

  @jax.jit
  def train_step(params, opt_state, step):
    (loss, (mse, l0)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, jax.random.fold_in(noise_key, step), x, y, args.l0_weight)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss, mse, l0

  for step in range(args.steps):
    params, opt_state, loss, mse, l0 = train_step(params, opt_state, step)
    if not np.isfinite(float(loss)):
      raise FloatingPointError(f'loss is {float(loss)} at step {step}')
    if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
      print(f'step {step + 1}: train/loss {float(loss):.4f} train/mse {float(mse):.4f} '
            f'train/expected_l0 {float(l0):.1f}', flush=True)

  z = test_gates(params['log_alpha'])
  open_gate = np.asarray(z > 0)
  informative = np.asarray(w_true != 0)
  sampled = gumbel.hard_concrete(jax.random.fold_in(noise_key, args.steps),
                                 params['log_alpha'], BETA, limits=LIMITS)
  metrics = {
      'test/fraction_gates_zero': float(np.mean(~open_gate)),
      'train/fraction_sampled_gates_zero': float(jnp.mean(sampled == 0)),
      'test/true_features_kept': int(np.sum(open_gate & informative)),
      'test/false_features_kept': int(np.sum(open_gate & ~informative)),
      'test/mse': float(jnp.mean((x_test @ (params['w'] * z) - y_test) ** 2)),
      'expected_l0': float(gumbel.hard_concrete_l0(params['log_alpha'], BETA,
                                                   limits=LIMITS).sum()),
      'train/loss': float(loss),
  }
  metrics['wall_s'] = time.time() - start
  print(f'l0_weight {args.l0_weight}: test gates exactly 0: '
        f'{metrics["test/fraction_gates_zero"]:.2f} ({int(np.sum(~open_gate))} of '
        f'{args.features}), true features kept {metrics["test/true_features_kept"]} of '
        f'{int(informative.sum())}, false kept {metrics["test/false_features_kept"]}, '
        f'test MSE {metrics["test/mse"]:.4f} (noise variance {args.noise ** 2:g}), '
        f'E[L0] {metrics["expected_l0"]:.1f}, sampled gates exactly 0: '
        f'{metrics["train/fraction_sampled_gates_zero"]:.2f} ({metrics["wall_s"]:.0f} s)')
  return metrics, params, w_true


if __name__ == '__main__':
  main()
