"""Categorical VAE with Gumbel-Softmax latents, trained and evaluated end to end.

The data set lives on the device; each compiled call runs `config.log_every`
training steps in a `lax.scan`, drawing batches (uniformly, with replacement)
and binarizing inside the program. Step t uses `fold_in(loop_key, t)`, so a
resumed run draws the same noise as an uninterrupted one.
"""

import functools
import json
import os
import time
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp

import gumbel
from gumbel import networks
from gumbel import objectives
from experiments import input_pipeline
from experiments import metric_writer

TEMPERATURE_SCHEDULES = ('exponential', 'constant', 'learned')
PRIORS = ('uniform', 'learned')
_TEST_BINARIZATION_SEED = 1


def create_model(config: ml_collections.ConfigDict) -> networks.CategoricalVAE:
  """Builds the VAE module from `config.model` and `config.temperature`."""
  if config.model.prior not in PRIORS:
    raise ValueError(f'Unknown model.prior={config.model.prior!r}; allowed: {PRIORS}.')
  if config.temperature.schedule not in TEMPERATURE_SCHEDULES:
    raise ValueError(f'Unknown temperature.schedule={config.temperature.schedule!r}; '
                     f'allowed: {TEMPERATURE_SCHEDULES}.')
  if (config.temperature.schedule == 'learned'
      and not config.temperature.tau0 > config.temperature.tau_min >= 0):
    raise ValueError(
        'A learned temperature needs temperature.tau0 > temperature.tau_min >= 0, got '
        f'tau0={config.temperature.tau0}, tau_min={config.temperature.tau_min}.')
  return networks.CategoricalVAE(
      num_latents=config.model.num_latents,
      num_classes=config.model.num_classes,
      encoder_hidden=tuple(config.model.encoder_hidden),
      decoder_hidden=tuple(config.model.decoder_hidden),
      activation=config.model.activation,
      learned_prior=config.model.prior == 'learned',
      learned_temperature=config.temperature.schedule == 'learned',
      tau_init=config.temperature.tau0,
      tau_min=config.temperature.tau_min)


def create_temperature_schedule(config: ml_collections.ConfigDict):
  """The schedule `step -> tau`, or None when the temperature is learned."""
  t = config.temperature
  if t.schedule == 'exponential':
    return gumbel.exponential_temperature(t.tau0, t.rate, t.tau_min, t.interval)
  if t.schedule == 'constant':
    return gumbel.constant_temperature(t.tau0)
  return None


def create_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Adam with the blog's staircase decay of the learning rate."""
  o = config.optimizer
  lr = optax.exponential_decay(o.learning_rate, o.decay_steps, o.decay_rate, staircase=True)
  return optax.adam(lr)


def loss_fn(params, *, model, images, key, tau, hard):
  """Mean -ELBO of a batch with one relaxed sample per example."""
  logits = model.apply(params, images, method='encode')  # [B, N, K]
  if tau is None:
    tau = model.apply(params, method='temperature')
  z = gumbel.gumbel_softmax(key, logits, tau, hard=hard)  # [B, N, K]
  x_logits = model.apply(params, z, method='decode')  # [B, D]
  log_likelihood = objectives.bernoulli_log_likelihood(logits=x_logits, targets=images)
  prior = model.apply(params, method='prior')[None]  # [1, N, K]
  kl = jnp.sum(gumbel.categorical_kl(logits, prior), axis=-1)  # [B]
  neg_elbo = objectives.negative_elbo(log_likelihood=log_likelihood, kl=kl)
  loss = jnp.mean(neg_elbo)
  return loss, {'neg_elbo': loss, 'kl': jnp.mean(kl),
                'recon': -jnp.mean(log_likelihood), 'tau': jnp.asarray(tau, jnp.float32)}


def make_train_chunk(config, model, tx):
  """Returns `train_chunk(state, images, loop_key, num_steps) -> (state, metrics)`.

  `metrics` holds one value per step ([num_steps] arrays). The function is
  jitted with `num_steps` static and the state donated.
  """
  schedule = create_temperature_schedule(config)
  dynamic = config.data.binarization == 'dynamic'
  batch_size = config.batch_size
  hard = config.model.hard

  def train_step(state, images, loop_key):
    step = state['step']
    key_batch, key_binarize, key_noise = jax.random.split(
        jax.random.fold_in(loop_key, step), 3)
    idx = jax.random.randint(key_batch, (batch_size,), 0, images.shape[0])
    x = images[idx]  # [B, D]
    if dynamic:
      x = jax.random.bernoulli(key_binarize, x).astype(jnp.float32)
    tau = None if schedule is None else schedule(step)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (_, metrics), grads = grad_fn(
        state['params'], model=model, images=x, key=key_noise, tau=tau, hard=hard)
    updates, opt_state = tx.update(grads, state['opt_state'], state['params'])
    params = optax.apply_updates(state['params'], updates)
    metrics['grad_norm'] = optax.tree.norm(grads)
    return {'params': params, 'opt_state': opt_state, 'step': step + 1}, metrics

  @functools.partial(jax.jit, static_argnames='num_steps', donate_argnames='state')
  def train_chunk(state, images, loop_key, num_steps):
    return jax.lax.scan(
        lambda s, _: train_step(s, images, loop_key), state, None, length=num_steps)

  return train_chunk


def make_eval_batch(config, model):
  """Returns `eval_batch(params, images, key) -> {neg_elbo, nll}` per example.

  -ELBO uses one Gumbel-Max (one-hot) code per image, as [GS] evaluates; the
  NLL is -IWAE bound with `eval.num_samples` one-hot samples from q.
  """
  num_samples = config.eval.num_samples
  chunk = min(config.eval.sample_chunk, num_samples)
  if num_samples % chunk:
    raise ValueError(f'eval.num_samples={num_samples} must be a multiple of '
                     f'eval.sample_chunk={chunk}.')

  @jax.jit
  def eval_batch(params, images, key):
    logits = model.apply(params, images, method='encode')  # [B, N, K]
    prior = model.apply(params, method='prior')[None]  # [1, N, K]
    log_q = jax.nn.log_softmax(logits)
    log_p = jax.nn.log_softmax(prior)

    def log_likelihood(z):
      x_logits = model.apply(params, z, method='decode')
      return objectives.bernoulli_log_likelihood(logits=x_logits, targets=images)

    def log_weight(k):  # log p(x, z) - log q(z | x), z ~ q one-hot.
      z = gumbel.gumbel_max(k, logits)  # [B, N, K]
      return log_likelihood(z) + jnp.sum(z * (log_p - log_q), axis=(-2, -1))  # [B]

    key_elbo, key_iw = jax.random.split(key)
    kl = jnp.sum(gumbel.categorical_kl(logits, prior), axis=-1)  # [B]
    neg_elbo = kl - log_likelihood(gumbel.gumbel_max(key_elbo, logits))
    keys = jax.random.split(key_iw, num_samples).reshape(num_samples // chunk, chunk)
    log_w = jax.lax.map(jax.vmap(log_weight), keys)  # [S / chunk, chunk, B]
    log_w = log_w.reshape(num_samples, -1)  # [S, B]
    return {'neg_elbo': neg_elbo,
            'nll': -objectives.importance_weighted_bound(log_w, axis=0)}

  return eval_batch


def evaluate(eval_batch, params, images, key, batch_size):
  """Mean test metrics over `images` (the last partial batch included)."""
  totals, count = {}, 0
  for i, start in enumerate(range(0, len(images), batch_size)):
    batch = images[start:start + batch_size]
    n = len(batch)
    if n < batch_size:  # Pad to one compiled shape; padded rows are dropped.
      batch = np.concatenate([batch, np.zeros((batch_size - n, batch.shape[1]), batch.dtype)])
    out = jax.device_get(eval_batch(params, batch, jax.random.fold_in(key, i)))
    for k, v in out.items():
      totals[k] = totals.get(k, 0.0) + float(np.sum(v[:n], dtype=np.float64))
    count += n
  return {k: v / count for k, v in totals.items()}


def binarize_test(images: np.ndarray, binarization: str) -> np.ndarray:
  """A fixed binarization of the test set, so evaluations are comparable."""
  if binarization == 'dynamic':
    rng = np.random.default_rng(_TEST_BINARIZATION_SEED)
    return (rng.random(images.shape) < images).astype(np.float32)
  return images


def save_image_grid(path: str, images: np.ndarray, rows: int, cols: int):
  """Writes [rows * cols, 784] images in [0, 1] as one grey PNG."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  images = np.asarray(images, np.float32).reshape(rows, cols, 28, 28)
  grid = images.transpose(0, 2, 1, 3).reshape(rows * 28, cols * 28)
  Image.fromarray((255 * np.clip(grid, 0, 1)).astype(np.uint8)).resize(
      (cols * 56, rows * 56), Image.NEAREST).save(path)


def save_pictures(workdir, model, params, test_images, key):
  """samples.png (random one-hot codes decoded) and reconstructions.png."""

  @jax.jit
  def decode_codes_and_reconstruct(params, x, key):
    n, k = model.num_latents, model.num_classes
    key_codes, key_rec = jax.random.split(key)
    codes = jax.nn.one_hot(jax.random.randint(key_codes, (100, n), 0, k), k)  # [100, N, K]
    logits = model.apply(params, x, method='encode')
    z = gumbel.gumbel_max(key_rec, logits)
    decode = lambda z: jax.nn.sigmoid(model.apply(params, z, method='decode'))
    return decode(codes), decode(z)

  x = test_images[:20]
  samples, recon = jax.device_get(decode_codes_and_reconstruct(params, x, key))
  save_image_grid(os.path.join(workdir, 'samples.png'), samples, 10, 10)
  rows = np.concatenate([x[:10], recon[:10], x[10:], recon[10:]])
  save_image_grid(os.path.join(workdir, 'reconstructions.png'), rows, 4, 10)


def _check_config(config):
  for name in ('num_train_steps', 'batch_size', 'log_every', 'checkpoint_every'):
    if config[name] < 1:
      raise ValueError(f'{name} must be >= 1, got {config[name]}.')
  if config.checkpoint_every % config.log_every:
    raise ValueError(
        f'checkpoint_every={config.checkpoint_every} must be a multiple of '
        f'log_every={config.log_every} (checkpoints are written between compiled chunks).')


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains the VAE, checkpointing to `workdir`, then evaluates; returns the state."""
  _check_config(config)
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    f.write(config.to_json_best_effort(indent=2))

  data = input_pipeline.load_dataset(config.data)
  test_images = binarize_test(data.test, config.data.binarization)
  if config.eval.num_examples > 0:
    test_images = test_images[:config.eval.num_examples]

  key = jax.random.key(config.seed)
  init_key, loop_key, eval_key = jax.random.split(key, 3)
  del key
  model = create_model(config)
  tx = create_optimizer(config)
  params = jax.jit(model.init)(init_key, jnp.zeros((1, model.num_pixels)))
  state = {'params': params, 'opt_state': tx.init(params), 'step': jnp.int32(0)}
  logging.info('Model parameters: %d', sum(x.size for x in jax.tree.leaves(params)))

  checkpoints = ocp.CheckpointManager(
      os.path.abspath(os.path.join(workdir, 'checkpoints')),
      options=ocp.CheckpointManagerOptions(max_to_keep=config.max_checkpoints_to_keep))
  if checkpoints.latest_step() is not None:
    state = checkpoints.restore(checkpoints.latest_step(),
                                args=ocp.args.StandardRestore(state))
    logging.info('Resumed from the checkpoint at step %d.', int(state['step']))
  writer = metric_writer.MetricWriter(workdir, resume_step=int(state['step']))

  train_images = jax.device_put(data.train)
  train_chunk = make_train_chunk(config, model, tx)
  step = int(state['step'])
  while step < config.num_train_steps:
    num_steps = min(config.log_every - step % config.log_every, config.num_train_steps - step)
    start = time.perf_counter()
    state, metrics = train_chunk(state, train_images, loop_key, num_steps=num_steps)
    metrics = jax.device_get(metrics)
    elapsed = time.perf_counter() - start
    bad = ~np.isfinite(metrics['neg_elbo']) | ~np.isfinite(metrics['grad_norm'])
    if bad.any():
      raise FloatingPointError(
          f'Non-finite loss or gradient norm at step {step + int(np.argmax(bad))} '
          f'(-ELBO {metrics["neg_elbo"][bad][0]}, grad norm {metrics["grad_norm"][bad][0]}).')
    step += num_steps
    summary = {f'train/{k}': float(np.mean(v)) for k, v in metrics.items()}
    summary['train/tau'] = float(metrics['tau'][-1])
    summary['steps_per_sec'] = num_steps / elapsed
    writer.write(step, summary)
    logging.info('step %d/%d  %.1f steps/s  -ELBO %.2f  KL %.2f  tau %.3f',
                 step, config.num_train_steps, summary['steps_per_sec'],
                 summary['train/neg_elbo'], summary['train/kl'], summary['train/tau'])
    if step % config.checkpoint_every == 0 or step == config.num_train_steps:
      checkpoints.save(step, args=ocp.args.StandardSave(state))
  checkpoints.wait_until_finished()
  checkpoints.close()

  eval_batch = make_eval_batch(config, model)
  start = time.perf_counter()
  results = evaluate(eval_batch, state['params'], test_images, eval_key,
                     config.eval.batch_size)
  test = {'test/neg_elbo': results['neg_elbo'],
          f'test/nll_iw{config.eval.num_samples}': results['nll'],
          'test/num_examples': len(test_images),
          'test/data': f'{data.source}:{data.name}',
          'eval_seconds': time.perf_counter() - start}
  writer.write(step, test)
  logging.info('Test (%d images of %s): -ELBO %.2f nats, NLL (%d importance samples) %.2f nats.',
               len(test_images), data.name, results['neg_elbo'],
               config.eval.num_samples, results['nll'])
  print(json.dumps({'step': step, **test}))
  save_pictures(workdir, model, state['params'], test_images,
                jax.random.fold_in(eval_key, 2**31 - 1))
  return state
