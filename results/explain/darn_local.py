"""Experiment: DARN with a per-unit learning signal f'_i(b0) (b_i - b0_i) on each unit's own
score (the same expectation as the summed signal on the joint score, f'(b0) . grad E[b],
without the zero-mean cross terms), on SBN (Bern.), against the summed one.

  python /work/darn_local.py WORKDIR LR   (run from a checkout)
"""
import sys
import jax
import jax.numpy as jnp
from absl import logging
from configs import estimator_comparison as ec_config
from experiments import estimator_comparison
from experiments import training
from gumbel.estimators import _common as common
from gumbel.estimators import score_function
import gumbel.estimators as estimators


def darn_local(key, logits, f, state, *, kind, decay=0.9, normalize=True):
  assert kind == 'bernoulli'
  b = common.sample(key, logits, kind)
  fb = f(b)
  point = jnp.full(logits.shape, 0.5, logits.dtype)
  _, grad_point = score_function._taylor_baseline(f, b, point)
  per_unit = jax.lax.stop_gradient(grad_point * (b - point))  # [B, D]
  # Variance normalisation by the running std of the summed signal, as `darn`.
  total = common.event_sum(per_unit)
  _, new_state = common.normalize_signal(total, state, decay=decay, normalize=normalize)
  scale = jnp.maximum(1.0, jnp.sqrt(state['var'])) if normalize else 1.0
  log_q_units = b * logits - jax.nn.softplus(logits)  # [B, D]: each unit's log q(b_i).
  surrogate = fb + jnp.sum(common.score_term(per_unit / scale, log_q_units), axis=-1)
  return surrogate, {'signal': total}, new_state


est = estimators.ESTIMATORS['darn']
wrapped = estimators._make('darn', darn_local, score_function.sf_init, unbiased=False,
                           hparams=est.hparams)
estimators.ESTIMATORS._estimators['darn'] = wrapped
logging.set_verbosity(logging.INFO)
logging.use_absl_handler()
workdir, lr = sys.argv[1], float(sys.argv[2])
config = ec_config.get_config('model=sbn_bern,estimator=darn,preset=cpu')
config.num_train_steps = 20000
config.eval.num_examples = 2000
config.eval.num_samples = 100
config.grad_var_every = 0
config.optimizer.learning_rate = lr
training.run(estimator_comparison.create_task, [config], [workdir])
