"""Prints every registered estimator's bias and variance as a markdown table.

Against exact gradients by enumeration on the toy models of
`gumbel.diagnostics`: 8 Bernoulli units (256 configurations) and 3
categorical variables of 4 classes (64), each with a batch of 2 examples
feeding a learned tanh decoder and a fixed nonlinear term; gradients are
taken with respect to the logits and the decoder parameters together.
For vimco the exact gradient is that of its own 2-sample objective.

  python -m scripts.estimator_bias [--estimates 20000] [--seed 0] [--out FILE]

Runs in about a minute on two CPU cores. The committed copy is
docs/estimator_bias.md:

  python -m scripts.estimator_bias --out docs/estimator_bias.md
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
    ('annealed_st (slope 2; units q(2 logits), exact: q(logits))', 'annealed_st', {'slope': 2.0}, 0),
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
    ('gapped_st (tau 1, gap 1)', 'gapped_st', {'temperature': 1.0, 'gap': 1.0}, 0),
    ('zgr', 'zgr', {}, 0),
    ('rloo (4 samples)', 'rloo', {'num_samples': 4}, 0),
)
# The head of the --out file.
_INTRO = """# Estimator bias and variance against exact gradients

Every registered estimator against the exact gradient of E[f(b)] by
enumeration (vimco: of its own 2-sample bound), on 8 Bernoulli units (256
configurations) and 3 categorical variables of 4 classes (64), each with a
batch of 2 examples feeding a learned tanh decoder and a fixed nonlinear
term; gradients with respect to the logits and the decoder parameters.
The tests (`tests/estimators_*_test.py`) assert that the unbiased
estimators agree with the exact gradient within 5 standard errors (+1e-3)
on every coordinate and that the biased ones are more than 8 standard
errors off somewhere.
"""
# Hyperparameters that only drive the state's training, not the estimate.
_TRAIN_ONLY = ('cv_learning_rate', 'baseline_learning_rate')


def _cells(key, problem, name, hparams, train_steps, num_estimates, exact):
  if problem.kind not in estimators.ESTIMATORS[name].kinds:
    return ['n/a'] * 4
  estimator = estimators.ESTIMATORS[name]
  num_samples = 1  # The exact gradient of E[f(b)], or of vimco's S-sample bound.
  if estimator.objective == 'multi_sample_bound':
    num_samples = hparams.get('num_samples', estimator.hparams['num_samples'].default)
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
  parser.add_argument('--out', default=None,
                      help='also write the table (markdown, with the command) to this file')
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
  lines = []

  def emit(line):
    print(line, flush=True)
    lines.append(line)

  emit(head)
  emit('|' + '---|' * (head.count('|') - 1))
  exact = [{} for _ in problems]  # Exact gradients, per problem and S.
  for i, (label, name, hparams, steps) in enumerate(_ROWS):
    row_key = jax.random.fold_in(key, i)
    cells = []
    for problem, cache in zip(problems, exact):
      cells += _cells(row_key, problem, name, hparams, steps, args.estimates, cache)
    unbiased = 'yes' if estimators.ESTIMATORS[name].unbiased else 'no'
    emit(f'| {label} | {unbiased} | ' + ' | '.join(cells) + ' |')
  noise = 1.0 / math.sqrt(args.estimates)
  emit(f'\n{args.estimates} estimates per cell; bias = mean estimate - exact '
        'gradient over all logits and decoder parameters (mean |bias| and '
        '|bias| / |exact|); var = per-parameter variance (mean, and '
        f'trace / |exact|^2). An unbiased estimator shows bias/norm of about '
        f'sqrt(var/norm^2) * {noise:.4f} (Monte Carlo noise). '
        f'Wall time {time.time() - start:.0f} s.')
  if args.out:
    command = ('python -m scripts.estimator_bias'
               + ''.join(f' --{k} {v}' for k, v in (('estimates', args.estimates),
                                                     ('seed', args.seed)))
               + f' --out {args.out}')
    with open(args.out, 'w') as f:
      f.write(f'{_INTRO}\nMade by `{command}`.\n\n' + '\n'.join(lines) + '\n')


if __name__ == '__main__':
  main()
