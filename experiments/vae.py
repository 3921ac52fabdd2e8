"""Categorical VAE with Gumbel-Softmax latents, trained and evaluated end to end.

The model, loss and evaluation of the blog's categorical VAE, run by the
shared training loop (`experiments.training`): the data set lives on the
device, each compiled call runs `config.log_every` steps in a `lax.scan`,
drawing batches (uniformly, with replacement) and binarizing inside the
program, and step t uses `fold_in(loop_key, t)`, so a resumed run draws the
same noise as an uninterrupted one.
"""

import os
from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import gumbel
from gumbel import objectives
from experiments import input_pipeline
from experiments import models
from experiments import pictures
from experiments import temperature
from experiments import training

PRIORS = ('uniform', 'learned')


def create_model(config: ml_collections.ConfigDict) -> models.CategoricalVAE:
  """Builds the VAE module from `config.model` and `config.temperature`."""
  if config.model.prior not in PRIORS:
    raise ValueError(f'Unknown model.prior={config.model.prior!r}; allowed: {PRIORS}.')
  if config.temperature.schedule not in temperature.SCHEDULES:
    raise ValueError(f'Unknown temperature.schedule={config.temperature.schedule!r}; '
                     f'allowed: {temperature.SCHEDULES}.')
  if (config.temperature.schedule == 'learned'
      and not config.temperature.tau0 > config.temperature.tau_min >= 0):
    raise ValueError(
        'A learned temperature needs temperature.tau0 > temperature.tau_min >= 0, got '
        f'tau0={config.temperature.tau0}, tau_min={config.temperature.tau_min}.')
  return models.CategoricalVAE(
      num_latents=config.model.num_latents,
      num_classes=config.model.num_classes,
      encoder_hidden=tuple(config.model.encoder_hidden),
      decoder_hidden=tuple(config.model.decoder_hidden),
      activation=config.model.activation,
      learned_prior=config.model.prior == 'learned',
      learned_temperature=config.temperature.schedule == 'learned',
      tau_init=config.temperature.tau0,
      tau_min=config.temperature.tau_min)


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


def make_eval_batch(config, model):
  """Returns `eval_batch(params, extra, images, key) -> {neg_elbo, nll}` per example.

  -ELBO uses one Gumbel-Max (one-hot) code per image, as [GS] evaluates; the
  NLL is -IWAE bound with `eval.num_samples` one-hot samples from q (named
  `nll` as the estimator comparison names its m-sample bound; m is in the
  config, not in the metric's name).
  """
  num_samples = config.eval.num_samples
  chunk = min(config.eval.sample_chunk, num_samples)
  if num_samples % chunk:
    raise ValueError(f'eval.num_samples={num_samples} must be a multiple of '
                     f'eval.sample_chunk={chunk}.')

  def eval_batch(params, extra, images, key):
    del extra
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
    bound = objectives.importance_weighted_bound_chunked(
        key_iw, log_weight, num_samples=num_samples, chunk=chunk)  # [B]
    return {'neg_elbo': neg_elbo, 'nll': -bound}

  return eval_batch


def save_pictures(workdir, model, params, test_images, key):
  """samples.png, reconstructions.png and latent_classes.png in `workdir`."""
  n, k = model.num_latents, model.num_classes

  @jax.jit
  def decode_all(params, x, key):
    key_codes, key_rec = jax.random.split(key)
    codes = jax.nn.one_hot(jax.random.randint(key_codes, (100, n), 0, k), k)  # [100, N, K]
    logits = model.apply(params, x, method='encode')  # [20, N, K]
    z = gumbel.gumbel_max(key_rec, logits)
    decode = lambda z: jax.nn.sigmoid(model.apply(params, z, method='decode'))
    # Variable i set to class j, the others at the most likely code of image 0.
    base = jax.nn.one_hot(jnp.argmax(logits[0], axis=-1), k)  # [N, K]
    grid = jnp.broadcast_to(base, (n, k, n, k))  # [variable, class, N, K]
    eye = jnp.eye(n, dtype=bool)[:, None, :, None]  # [variable, 1, N, 1]
    grid = jnp.where(eye, jnp.eye(k)[None, :, None, :], grid)
    return decode(codes), decode(z), decode(grid.reshape(n * k, n, k))

  x = test_images[:20]
  samples, recon, classes = jax.device_get(decode_all(params, x, key))
  pictures.save_image_grid(os.path.join(workdir, 'samples.png'), samples, 10, 10)
  rows = np.concatenate([x[:10], recon[:10], x[10:], recon[10:]])
  pictures.save_image_grid(os.path.join(workdir, 'reconstructions.png'), rows, 4, 10)
  pictures.save_image_grid(os.path.join(workdir, 'latent_classes.png'), classes, n, k)


def create_task(config: ml_collections.ConfigDict,
                dataset: Optional[input_pipeline.Dataset] = None) -> training.Task:
  """The VAE as a `training.Task`: model, loss, data and evaluation.

  `dataset` defaults to `input_pipeline.load_dataset(config.data)`;
  benchmarks pass generated data.
  """
  model = create_model(config)
  schedule = temperature.create_temperature_schedule(config.temperature)
  data = dataset or input_pipeline.load_dataset(config.data)
  eval_data = input_pipeline.eval_splits(data, config.data.binarization,
                                         config.eval.num_examples)

  def init(key):
    return model.init(key, jnp.zeros((1, model.num_pixels))), {}

  def loss(params, extra, images, key, step):
    tau = None if schedule is None else schedule(step)
    value, metrics = loss_fn(params, model=model, images=images, key=key, tau=tau,
                             hard=config.model.hard)
    return value, (metrics, extra)

  def finalize(workdir, params, extra, key):
    del extra
    save_pictures(workdir, model, params, eval_data['test'], key)

  return training.Task(
      init=init,
      loss=loss,
      sample_batch=input_pipeline.batch_sampler(config),
      data=data.train,
      eval_batch={split: make_eval_batch(config, model) for split in eval_data},
      eval_data=eval_data,
      finalize=finalize,
      info={'data': f'{data.source}:{data.name}'})


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains the VAE, checkpointing to `workdir`, then evaluates; returns the state."""
  (out,) = training.run(create_task, [config], [workdir])
  return out['state']
