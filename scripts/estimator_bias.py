"""Prints every registered estimator's bias and variance as a markdown table.

Against exact gradients by enumeration on the toy models of
`gumbel.diagnostics`: 8 Bernoulli units (256 configurations) and 3
categorical variables of 4 classes (64), each with a batch of 2 examples
feeding a learned tanh decoder and a fixed nonlinear term; gradients are
taken with respect to the logits and the decoder parameters together.
For vimco the exact gradient is that of its own 2-sample objective.

  python -m scripts.estimator_bias [--estimates 20000] [--seed 0]

Runs in about a minute on two CPU cores.
"""

import argparse
import math
import time

import jax

from gumbel import diagnostics
from gumbel import estimators

# (row label, estimator name, apply hparams, training steps for its state).
# Rows with training steps first learn the estimator's own state (baseline or
# control variate) for that many steps at the fixed model parameters.
_ROWS = (
    ('sf', 'sf', {}, 0),
    ('nvil', 'nvil', {}, 0),
    ('nvil (baseline trained, 500 steps)', 'nvil',
     {'normalize': False, 'baseline_learning_rate': 1e-2}, 500),
    ('darn', 'darn', {}, 0),
    ('muprop', 'muprop', {}, 0),
    ('st', 'st', {}, 0),
    ('annealed_st (slope 2)', 'annealed_st', {'slope': 2.0}, 0),
    ('gumbel_softmax (tau 1)', 'gumbel_softmax', {'temperature': 1.0}, 0),
    ('gumbel_softmax (tau 0.5)', 'gumbel_softmax', {'temperature': 0.5}, 0),
    ('st_gumbel_softmax (tau 1)', 'st_gumbel_softmax', {'temperature': 1.0}, 0),
    ('rebar', 'rebar', {}, 0),
    ('rebar (cv trained, 500 steps)', 'rebar', {'cv_learning_rate': 1e-2}, 500),
    ('relax', 'relax', {}, 0),
    ('relax (cv trained, 500 steps)', 'relax', {'cv_learning_rate': 1e-2}, 500),
    ('arm (ARSM for categorical)', 'arm', {}, 0),
    ('disarm', 'disarm', {}, 0),
    ('vimco (2 samples; own objective)', 'vimco', {'num_samples': 2}, 0),
    ('gumbel_rao (tau 1, 10 cond.)', 'gumbel_rao',
     {'temperature': 1.0, 'num_conditional': 10}, 0),
    ('reinmax (tau 1)', 'reinmax', {'temperature': 1.0}, 0),
)
# Hyperparameters that only drive the state's training, not the estimate.
_TRAIN_ONLY = ('cv_learning_rate', 'baseline_learning_rate')


def _cells(key, problem, name, hparams, train_steps, num_estimates, exact):
  if problem.kind not in estimators.ESTIMATORS[name].kinds:
    return ['n/a'] * 4
  num_samples = hparams.get('num_samples', 5) if name == 'vimco' else 1
  if num_samples not in exact:
    exact[num_samples] = diagnostics.exact_gradient(problem, num_samples)
  state = None
  if train_steps:
    state_key, key = jax.random.split(key)
    state = diagnostics.train_estimator_state(
        state_key, problem, name, num_steps=train_steps, **hparams)
  hparams = {k: v for k, v in hparams.items() if k not in _TRAIN_ONLY}
  r = diagnostics.bias_variance(key, problem, name, num_estimates=num_estimates,
                                state=state, exact=exact[num_samples], **hparams)
  return [f"{float(r['bias_mean_abs']):.4f}", f"{float(r['bias_rel']):.3f}",
          f"{float(r['variance_mean']):.3f}", f"{float(r['variance_rel']):.2f}"]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--estimates', type=int, default=20_000,
                      help='independent gradient estimates per estimator')
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  start = time.time()
  key = jax.random.key(args.seed)
  problem_key, key = jax.random.split(key)
  k_bern, k_cat = jax.random.split(problem_key)
  problems = (diagnostics.bernoulli_toy_problem(k_bern),
              diagnostics.categorical_toy_problem(k_cat))
  head = ('| estimator | unbiased | Bern. mean abs bias | Bern. bias/norm | '
          'Bern. mean var | Bern. var/norm^2 | Cat. mean abs bias | '
          'Cat. bias/norm | Cat. mean var | Cat. var/norm^2 |')
  print(head)
  print('|' + '---|' * (head.count('|') - 1))
  exact = [{} for _ in problems]  # Exact gradients, per problem and S.
  for i, (label, name, hparams, steps) in enumerate(_ROWS):
    row_key = jax.random.fold_in(key, i)
    cells = []
    for problem, cache in zip(problems, exact):
      cells += _cells(row_key, problem, name, hparams, steps, args.estimates, cache)
    unbiased = 'yes' if estimators.ESTIMATORS[name].unbiased else 'no'
    print(f'| {label} | {unbiased} | ' + ' | '.join(cells) + ' |', flush=True)
  noise = 1.0 / math.sqrt(args.estimates)
  print(f'\n{args.estimates} estimates per cell; bias = mean estimate - exact '
        'gradient over all logits and decoder parameters (mean |bias| and '
        '|bias| / |exact|); var = per-parameter variance (mean, and '
        f'trace / |exact|^2). An unbiased estimator shows bias/norm of about '
        f'sqrt(var/norm^2) * {noise:.4f} (Monte Carlo noise). '
        f'Wall time {time.time() - start:.0f} s.')


if __name__ == '__main__':
  main()
