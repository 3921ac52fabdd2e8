"""Semi-supervised classification with the M2 model: [GS] Table 2.

Kingma et al.'s (2014) M2 on MNIST with few labels: p(y) uniform over K
classes, p(z) = N(0, I), p(x|y,z) Bernoulli pixels; q(y|x) classifies and
q(z|x,y) encodes (`gumbel.models.M2`: the conv nets of [GS] 4.3). Per
example, with one reparameterized z ~ q(z|x,y):

  labelled   ELBO(x, y) = log p(x|y,z) + log p(y) - KL(q(z|x,y) || p(z))
  unlabelled ELBO(x)    = sum_y q(y|x) ELBO(x, y) + H(q(y|x))

`config.model.y_mode` says how the unlabelled bound treats y:
* 'marginalize': the sum over all K classes, exactly (Kingma et al.). q(y|x)
  and the conv trunk of q(z|x,y) run once per example; only the y-dependent
  head of q(z|x,y) and the decoder run K times.
* 'gumbel': one Gumbel-Softmax sample y ~ GS(q(y|x), tau) replaces the sum:
  ELBO(x, y) without log p(y), minus the analytic KL(q(y|x) || p(y)).
* 'st_gumbel': the same with the straight-through sample (one-hot forward).

The loss per step is Kingma et al.'s J^alpha per training example,

  (N_u mean_u[-ELBO(x)] + N_l mean_l[-ELBO(x, y)]) / (N_u + N_l)
      + alpha mean_l[-log q(y|x)],

with N_u unlabelled and N_l labelled training images (their alpha = 0.1 N is
our alpha = 0.1), and tau = max(tau_min, tau0 exp(-rate t)) recomputed every
`interval` steps ([GS]: 0.5, 1, 3e-5, 2000).

The labelled set is `data.num_labelled_per_class` images of each class of
the training split, chosen by the run's seed (through its init key) and kept
in the member's state, so members of a vmapped sweep with different seeds
have different labelled sets; the rest of the training split is unlabelled.
Batches are drawn uniformly with replacement (labelled and unlabelled apart)
and binarized dynamically. Evaluation reports, per split, the accuracy of
argmax q(y|x) and -ELBO(x) with the exact sum over y whatever the training
mode (one z per class and example), so the modes compare on one bound.

References:
  [GS] Jang, Gu, Poole. ICLR 2017, section 4.3 and Table 2.
  Kingma, Rezende, Mohamed, Welling. NeurIPS 2014, section 3.1.2 (M2), eq. 9.
"""

import functools
import json
import math
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

LABELS = ('true', 'random')
# Seed of the random labels of `data.labels='random'` (the speed benchmark).
_RANDOM_LABELS_SEED = 0


# ----------------------------------------------------------------------------
# The bound.
# ----------------------------------------------------------------------------


def gaussian_kl(mean, log_std):
  """KL(N(mean, exp(log_std)^2) || N(0, I)), summed over the last axis."""
  return 0.5 * jnp.sum(jnp.square(mean) + jnp.exp(2.0 * log_std) - 1.0 - 2.0 * log_std,
                       axis=-1)


def conditional_elbo(params, *, model, h, x, y, eps):
  """log p(x|y,z) - KL(q(z|x,y) || p(z)) with z = mean + std * eps (no log p(y)).

  Args:
    params: M2 parameters.
    model: the `models.M2` module.
    h: `model.encode_x(x)`, [..., hidden], broadcasting against `y`.
    x: binary images, [..., 784], broadcasting against `y`.
    y: one-hot or relaxed classes, [..., K].
    eps: standard normal noise, [..., z_dim].

  Returns:
    The per-example bound, [...].
  """
  mean, log_std = model.apply(params, h, y, method='encode_z')  # [..., z_dim] each.
  z = mean + jnp.exp(log_std) * eps  # [..., z_dim], y's and eps's batch shape.
  y = jnp.broadcast_to(y, z.shape[:-1] + y.shape[-1:])
  x_logits = model.apply(params, y, z, method='decode')  # [..., 784]
  log_likelihood = objectives.bernoulli_log_likelihood(
      logits=x_logits, targets=jnp.broadcast_to(x, x_logits.shape))
  return log_likelihood - gaussian_kl(mean, log_std)


def marginal_elbo(params, *, model, logits_y, h, x, eps):
  """sum_y q(y|x) ELBO(x, y) + H(q(y|x)), the sum over all K classes: [B].

  The y-independent work (`logits_y` of q(y|x) and `h` of q(z|x,y)) comes in
  computed once per example; the head of q(z|x,y) and the decoder run on the
  K classes at once.

  Args:
    params: M2 parameters.
    model: the `models.M2` module.
    logits_y: logits of q(y|x), [B, K].
    h: `model.encode_x(x)`, [B, hidden].
    x: binary images, [B, 784].
    eps: standard normal noise, one z per class and example, [K, B, z_dim].

  References:
    Kingma et al. 2014, eq. 7.
  """
  num_classes = model.num_classes
  ys = jnp.eye(num_classes, dtype=h.dtype)[:, None, :]  # [K, 1, K]
  elbo_y = conditional_elbo(params, model=model, h=h[None], x=x[None], y=ys, eps=eps)  # [K, B]
  log_q = jax.nn.log_softmax(logits_y)  # [B, K]
  # sum_y q(y) (ELBO_z(x, y) + log p(y)) + H(q) = sum_y q(y) ELBO_z(x, y) - KL(q || p(y)).
  expected = jnp.sum(jnp.exp(log_q) * elbo_y.T, axis=-1)  # [B]
  return expected - gumbel.categorical_kl(logits_y, jnp.zeros(()))


def sampled_elbo(params, key, *, model, logits_y, h, x, eps, tau, hard):
  """ELBO(x) with one (ST) Gumbel-Softmax sample of y: [B].

  ELBO_z(x, y) at y ~ GS(q(y|x), tau), minus the analytic KL(q(y|x) || p(y)):
  the estimator of [GS] section 4.3, whose gradient flows through y.

  Args:
    params: M2 parameters.
    key: a PRNG key for the Gumbel noise.
    model: the `models.M2` module.
    logits_y: logits of q(y|x), [B, K].
    h: `model.encode_x(x)`, [B, hidden].
    x: binary images, [B, 784].
    eps: standard normal noise, [B, z_dim].
    tau: the temperature.
    hard: straight-through (one-hot forward, relaxed gradient).
  """
  y = gumbel.gumbel_softmax(key, logits_y, tau, hard=hard)  # [B, K]
  elbo = conditional_elbo(params, model=model, h=h, x=x, y=y, eps=eps)
  return elbo - gumbel.categorical_kl(logits_y, jnp.zeros(()))


def _marginalize(params, key, *, model, logits_y, h, x, eps_key, tau):
  del key, tau
  eps = jax.random.normal(eps_key, (model.num_classes,) + h.shape[:1] + (model.z_dim,))
  return marginal_elbo(params, model=model, logits_y=logits_y, h=h, x=x, eps=eps)


def _sample(params, key, *, model, logits_y, h, x, eps_key, tau, hard):
  eps = jax.random.normal(eps_key, h.shape[:1] + (model.z_dim,))
  return sampled_elbo(params, key, model=model, logits_y=logits_y, h=h, x=x, eps=eps,
                      tau=tau, hard=hard)


# The unlabelled bound of each `model.y_mode`, one signature:
# `(params, key, *, model, logits_y, h, x, eps_key, tau) -> ELBO(x) [B]`.
Y_MODES = {
    'marginalize': _marginalize,
    'gumbel': functools.partial(_sample, hard=False),
    'st_gumbel': functools.partial(_sample, hard=True),
}


# ----------------------------------------------------------------------------
# Labelled and unlabelled data.
# ----------------------------------------------------------------------------


def select_labelled(key, labels, *, num_classes: int, per_class: int):
  """`per_class` random indices of each class of `labels`, sorted: [K * per_class] int32.

  Jittable; the same key gives the same set. Every class must have at least
  `per_class` examples (`create_task` checks that on the host).

  Args:
    key: a PRNG key (the run's, so the set depends on the seed).
    labels: int labels of the training split, [N].
    num_classes: K.
    per_class: how many examples of each class.
  """
  u = jax.random.uniform(key, labels.shape)  # [N]
  is_class = labels[None, :] == jnp.arange(num_classes)[:, None]  # [K, N]
  scores = jnp.where(is_class, u[None, :], -1.0)
  _, index = jax.lax.top_k(scores, per_class)  # [K, per_class]
  return jnp.sort(index.reshape(-1)).astype(jnp.int32)


def unlabelled_index(rank, labelled):
  """The `rank`-th (0-based) training index that is not in `labelled` (sorted).

  With t_k = labelled_k - k (how many unlabelled indices precede labelled_k),
  that index is rank + #{k : t_k <= rank}.
  """
  shifted = labelled - jnp.arange(labelled.shape[0], dtype=labelled.dtype)
  return rank + jnp.searchsorted(shifted, rank, side='right').astype(rank.dtype)


def _binarize(key, x, binarization):
  return input_pipeline.binarize(key, x) if binarization == 'dynamic' else x


def draw_batches(key, train, labelled, *, batch_size, labelled_batch_size, binarization):
  """An unlabelled batch [B, 784] and a labelled one ([B_l, 784], [B_l]), jittable.

  Args:
    key: a PRNG key.
    train: `{'images': [N, 784], 'labels': [N]}` on the device.
    labelled: the member's labelled indices, sorted, [L].
    batch_size: B.
    labelled_batch_size: B_l.
    binarization: 'dynamic' draws x ~ Bernoulli(images); otherwise as stored.
  """
  key_u, key_l, key_bin_u, key_bin_l = jax.random.split(key, 4)
  num_train, num_labelled = train['images'].shape[0], labelled.shape[0]
  rank = jax.random.randint(key_u, (batch_size,), 0, num_train - num_labelled)
  x_u = _binarize(key_bin_u, train['images'][unlabelled_index(rank, labelled)], binarization)
  index_l = labelled[jax.random.randint(key_l, (labelled_batch_size,), 0, num_labelled)]
  x_l = _binarize(key_bin_l, train['images'][index_l], binarization)
  return x_u, x_l, train['labels'][index_l]


# ----------------------------------------------------------------------------
# The task.
# ----------------------------------------------------------------------------


def check_config(config: ml_collections.ConfigDict):
  """Errors name the field, the value and what is allowed."""
  if config.model.y_mode not in Y_MODES:
    raise ValueError(f'Unknown model.y_mode={config.model.y_mode!r}; allowed: {tuple(Y_MODES)}.')
  if config.data.labels not in LABELS:
    raise ValueError(f'Unknown data.labels={config.data.labels!r}; allowed: {LABELS}.')
  if not (isinstance(config.model.num_classes, int) and config.model.num_classes >= 2):
    raise ValueError(f'model.num_classes={config.model.num_classes!r}; allowed: an int >= 2.')
  if not config.loss.alpha >= 0:
    raise ValueError(f'loss.alpha={config.loss.alpha!r}; allowed: a number >= 0.')
  if len(config.model.encoder_features) != 3 or len(config.model.decoder_features) != 3:
    raise ValueError(
        f'model.encoder_features={tuple(config.model.encoder_features)} and '
        f'model.decoder_features={tuple(config.model.decoder_features)}: allowed: 3 widths each '
        '(3 conv layers per encoder; the decoder has a 4th, 1-channel layer).')
  if not config.data.num_labelled_per_class >= 1:
    raise ValueError(f'data.num_labelled_per_class={config.data.num_labelled_per_class!r}; '
                     'allowed: an int >= 1.')
  for name in ('batch_size', 'labelled_batch_size'):
    if not config[name] >= 1:
      raise ValueError(f'{name}={config[name]!r}; allowed: an int >= 1.')


def create_model(config: ml_collections.ConfigDict) -> models.M2:
  """The M2 nets of `config.model`."""
  m = config.model
  return models.M2(num_classes=m.num_classes, z_dim=m.z_dim,
                   encoder_features=tuple(m.encoder_features), hidden=m.hidden,
                   decoder_features=tuple(m.decoder_features))


def load_labelled_data(config: ml_collections.ConfigDict,
                       dataset: Optional[input_pipeline.Dataset] = None,
                       ) -> tuple[input_pipeline.Dataset, dict]:
  """The data set and its labels per split (random with data.labels='random')."""
  data = dataset or input_pipeline.load_dataset(config.data)
  if data.train_labels is None or data.test_labels is None:
    raise ValueError(
        f'data.source={config.data.source!r}, data.name={config.data.name!r} gave {data.source}:'
        f'{data.name}, which has no labels; semi-supervised training needs labelled MNIST '
        '(data.name=mnist with source auto, idx, tfds or embedded).')
  k = config.model.num_classes
  labels = {'train': data.train_labels, 'valid': data.valid_labels, 'test': data.test_labels}
  if config.data.labels == 'random':
    rng = np.random.default_rng(_RANDOM_LABELS_SEED)
    labels = {s: rng.integers(0, k, len(v)).astype(np.int32) for s, v in labels.items()}
  else:
    found = int(max(v.max() for v in labels.values() if len(v))) + 1
    if found != k:
      raise ValueError(
          f'model.num_classes={k} but {data.source}:{data.name} has {found} classes; with '
          f"data.labels='true' set model.num_classes={found}, or data.labels='random' "
          '(random labels of K classes, as the speed comparison uses).')
  counts = np.bincount(labels['train'], minlength=k)
  per_class = config.data.num_labelled_per_class
  if counts.min() < per_class:
    raise ValueError(
        f'data.num_labelled_per_class={per_class}, but class {int(counts.argmin())} has only '
        f'{int(counts.min())} training examples; allowed: at most {int(counts.min())}.')
  if counts.sum() <= per_class * k:
    raise ValueError(f'data.num_labelled_per_class={per_class} leaves no unlabelled images.')
  return data, labels


def make_loss(config: ml_collections.ConfigDict, model: models.M2, *, num_train: int,
              num_labelled: int):
  """`loss(params, extra, (x_u, x_l, y_l), key, step) -> (J^alpha, (metrics, extra))`.

  Args:
    config: the experiment config (y_mode, alpha, the temperature schedule).
    model: the `models.M2` module.
    num_train: N_u + N_l, the training images.
    num_labelled: N_l.
  """
  k = model.num_classes
  schedule = temperature.create_temperature_schedule(config.temperature)
  unlabelled_elbo = functools.partial(Y_MODES[config.model.y_mode], model=model)
  weight_u, weight_l = (num_train - num_labelled) / num_train, num_labelled / num_train

  def loss(params, extra, batch, key, step):
    x_u, x_l, y_l = batch
    key_y, key_eps_u, key_eps_l = jax.random.split(key, 3)
    tau = schedule(step)
    # q(y|x) and the trunk of q(z|x,y): once per example, both batches in one call.
    x = jnp.concatenate([x_u, x_l])  # [B + B_l, 784]
    logits_y = model.apply(params, x, method='classify')  # [B + B_l, K]
    h = model.apply(params, x, method='encode_x')  # [B + B_l, hidden]
    b = x_u.shape[0]
    elbo_u = unlabelled_elbo(params, key_y, logits_y=logits_y[:b], h=h[:b], x=x_u,
                             eps_key=key_eps_u, tau=tau)
    eps_l = jax.random.normal(key_eps_l, (x_l.shape[0], config.model.z_dim))
    elbo_l = conditional_elbo(params, model=model, h=h[b:], x=x_l, y=jax.nn.one_hot(y_l, k),
                              eps=eps_l) - math.log(k)
    log_q = jax.nn.log_softmax(logits_y[b:])  # [B_l, K]
    cross_entropy = -jnp.take_along_axis(log_q, y_l[:, None], axis=-1)[:, 0]
    value = (weight_u * jnp.mean(-elbo_u) + weight_l * jnp.mean(-elbo_l)
             + config.loss.alpha * jnp.mean(cross_entropy))
    metrics = {'neg_elbo': -jnp.mean(elbo_u), 'labelled_neg_elbo': -jnp.mean(elbo_l),
               'cross_entropy': jnp.mean(cross_entropy),
               'labelled_accuracy': jnp.mean(jnp.argmax(log_q, -1) == y_l).astype(jnp.float32),
               'tau': jnp.asarray(tau, jnp.float32)}
    return value, (metrics, extra)

  return loss


def create_task(config: ml_collections.ConfigDict,
                dataset: Optional[input_pipeline.Dataset] = None) -> training.Task:
  """M2 as a `training.Task`: model, loss, data and evaluation.

  Args:
    config: the experiment config.
    dataset: the data; default `input_pipeline.load_dataset(config.data)`.
  """
  check_config(config)
  model = create_model(config)
  k, per_class = config.model.num_classes, config.data.num_labelled_per_class
  data, labels = load_labelled_data(config, dataset)
  num_train = len(data.train)
  num_labelled = k * per_class
  train_labels = jnp.asarray(labels['train'])

  def init(key):
    key_params, key_labelled = jax.random.split(key)
    params = models.init_lecun_normal(model, key_params, jnp.zeros((1, 784)),
                                      jnp.zeros((1, k)), jnp.zeros((1, config.model.z_dim)))
    labelled = select_labelled(key_labelled, train_labels, num_classes=k, per_class=per_class)
    return params, {'labelled_index': labelled}

  def sample_batch(train, key, extra):
    # The member's own labelled set (it depends on the seed) is in its state.
    return draw_batches(key, train, extra['labelled_index'], batch_size=config.batch_size,
                        labelled_batch_size=config.labelled_batch_size,
                        binarization=config.data.binarization)

  eval_batch = make_eval_batch(model)
  eval_data = {split: {'images': images, 'labels': labels[split][:len(images)]}
               for split, images in input_pipeline.eval_splits(
                   data, config.data.binarization, config.eval.num_examples).items()}

  def finalize(workdir, params, extra, key):
    index = np.asarray(extra['labelled_index'])
    with open(os.path.join(workdir, 'labelled.json'), 'w') as f:
      json.dump({'train_index': index.tolist(), 'labels': labels['train'][index].tolist()}, f)
    save_samples(os.path.join(workdir, 'samples.png'), model, params, key)

  return training.Task(
      init=init,
      loss=make_loss(config, model, num_train=num_train, num_labelled=num_labelled),
      sample_batch=sample_batch,
      data={'images': data.train, 'labels': labels['train']},
      eval_batch={split: eval_batch for split in eval_data},
      eval_data=eval_data,
      finalize=finalize,
      info={'data': f'{data.source}:{data.name}', 'num_train': num_train,
            'num_labelled': num_labelled, 'labels': config.data.labels})


def make_eval_batch(model: models.M2):
  """`eval_batch(params, extra, batch, key) -> {name: [B]}`: it depends on `model` only."""

  def eval_batch(params, extra, batch, key):
    """Per example: -ELBO(x) summed exactly over y, accuracy and -log q(y|x)."""
    del extra
    x, y = batch['images'], batch['labels']
    logits_y = model.apply(params, x, method='classify')
    h = model.apply(params, x, method='encode_x')
    elbo = _marginalize(params, None, model=model, logits_y=logits_y, h=h, x=x, eps_key=key,
                        tau=None)
    log_q = jax.nn.log_softmax(logits_y)
    return {'neg_elbo': -elbo,
            'accuracy': (jnp.argmax(logits_y, -1) == y).astype(jnp.float32),
            'cross_entropy': -jnp.take_along_axis(log_q, y[:, None], axis=-1)[:, 0]}

  return eval_batch


def save_samples(path, model, params, key, num_columns: int = 10):
  """Pixel means of p(x|y,z), one row per class (at most 10), z ~ N(0, I) per column."""
  rows = min(model.num_classes, 10)
  y = jnp.repeat(jnp.eye(model.num_classes)[:rows], num_columns, axis=0)  # [rows * cols, K]
  z = jnp.tile(jax.random.normal(key, (num_columns, model.z_dim)), (rows, 1))
  images = jax.nn.sigmoid(model.apply(params, y, z, method='decode'))
  pictures.save_image_grid(path, jax.device_get(images), rows, num_columns)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains M2, checkpointing to `workdir`, then evaluates; returns the state."""
  (out,) = training.run(create_task, [config], [workdir])
  return out['state']
