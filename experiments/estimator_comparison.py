"""Gradient estimators compared on the four models of [GS] Table 1.

`config.model.task` picks the model, `config.model.latent` its units:

* 'sbn': structured output prediction with a stochastic network. The upper
  392 pixels x_u predict the lower 392 x_l through two stochastic layers,
  x_u -> h1 -> h2 -> x_l (200 Bernoulli units, or 20 categorical variables
  of 10 classes, per layer). Training maximizes the one-sample bound
  E[log p(x_l | h2)], h ~ p(h | x_u); the metric is the test NLL
  -log (1/m) sum_i p(x_l | h2_i) with m ancestral samples.
* 'vae': generative modelling 784-200-784 (Bernoulli) or 784-(20x10)-784
  (categorical), with a learned (the final text of [GS]) or uniform prior.
  Training minimizes -ELBO = KL(q(z|x) || p(z)) - E_q[log p(x|z)]. What the
  estimator sees as `f` follows what it is (`learning_signal`): most get the
  reconstruction log p(x|z), the KL analytic; estimators that normalize
  their learning signal (sf, nvil, darn, muprop: [NVIL] divides the whole
  signal by its running standard deviation, KL terms included) get the whole
  log-weight log p(x|z) + log p(z) - log q(z|x), with q's logits held fixed
  inside f (its score term carries the encoder's gradient, as in [NVIL]);
  `vimco` maximizes its multi-sample bound of the same log-weights. The
  metrics ([GS] section 4.2) are the test NLL bound -log (1/m) sum_i
  p(x, z_i) / q(z_i|x) with m = 1000 discrete samples (the table's number),
  the -ELBO with one discrete sample and, for estimators trained on relaxed
  samples (`Estimator.relaxed`), the relaxed -ELBO at the final temperature
  ([CON] Figure 4's integrality gap).

Each stochastic layer gets its own instance of the estimator that
`config.estimator.name` picks from `gumbel.ESTIMATORS`: the `f` of layer 1
samples layer 2 with the estimator (one fixed key) and returns its
surrogate. Layer 2's estimator state (baselines, control variates) is
updated by a second call on an exact sample of layer 1. The multi-sample
estimators (vimco, rloo) instead draw S joint samples of the path (h1, h2)
and give both layers' score terms the path's signal, and rebar and relax
take [REBAR]'s multilayer form, one sample of the path with each layer's
control variate relaxing it from that layer down (`estimator.paths`,
'joint'; 'nested' composes them like the others). Every layer maps its
input to the next logits with a Dense stack (`config.model.hidden`, empty:
linear, as the paper's 392-200-200-392 and 784-200-784 networks).

References:
  [GS] Jang, Gu, Poole. ICLR 2017, section 4.1-4.2 and Table 1.
  [MUPROP] Gu, Levine, Sutskever, Mnih. ICLR 2016 (the SBN set-up).
  [REBAR] Tucker, Mnih, Maddison, Lawson, Sohl-Dickstein. NeurIPS 2017
    (rebar's and relax's multilayer form).
  [SLOPE] Chung, Ahn, Bengio. Hierarchical Multiscale Recurrent Neural
    Networks. ICLR 2017, arXiv:1609.01704 (annealed_st's slope schedule).
"""

import math
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import gumbel
from gumbel import kinds
from gumbel import objectives
from experiments import input_pipeline
from experiments import models
from experiments import temperature
from experiments import training

TASKS = ('sbn', 'vae')
LATENTS = ('bernoulli', 'categorical')
PRIORS = ('uniform', 'learned')
NUM_PIXELS = 784
HALF = NUM_PIXELS // 2


class Layer:
  """The shapes of one stochastic layer; its sampling, densities and KL are
  the library's, through the operations of its kind (`KIND_OPS`)."""

  def __init__(self, latent: str, num_vars: int, num_classes: int):
    self.kind = latent
    self.ops = kinds.KIND_OPS[latent]
    self.num_vars = num_vars
    self.num_classes = num_classes if latent == 'categorical' else 1
    self.event_shape = self.ops.event_shape(num_vars, num_classes)  # [D] or [D, K]
    self.size = math.prod(self.event_shape)  # Width of a flattened sample.

  def logits(self, flat: jax.Array) -> jax.Array:
    """[B, size] -> [B, D] or [B, D, K]."""
    return flat.reshape(flat.shape[:-1] + self.event_shape)

  def flatten(self, sample: jax.Array) -> jax.Array:
    """[B, D] or [B, D, K] -> [B, size]."""
    return sample.reshape(sample.shape[:sample.ndim - len(self.event_shape)] + (self.size,))

  def sample(self, key: jax.Array, logits: jax.Array) -> jax.Array:
    """An exact sample (no gradient)."""
    return self.ops.standard_sample(key, logits)

  def log_prob(self, logits: jax.Array, sample: jax.Array) -> jax.Array:
    """log q(sample), summed over the layer: [B]."""
    return self.ops.log_prob(logits, sample)

  def relaxed_sample(self, key: jax.Array, logits: jax.Array, temperature) -> jax.Array:
    """A relaxed (Concrete / binary Concrete) sample at `temperature` (no gradient)."""
    return self.ops.relaxed_sample(key, jax.lax.stop_gradient(logits), temperature)

  def kl(self, logits: jax.Array, prior_logits: jax.Array) -> jax.Array:
    """KL(q || p) summed over the layer: [B]."""
    return self.ops.kl(logits, prior_logits)


def check_config(config: ml_collections.ConfigDict):
  """Errors name the field, the value and what is allowed."""
  m = config.model
  if m.task not in TASKS:
    raise ValueError(f'Unknown model.task={m.task!r}; allowed: {TASKS}.')
  if m.latent not in LATENTS:
    raise ValueError(f'Unknown model.latent={m.latent!r}; allowed: {LATENTS}.')
  if m.prior not in PRIORS:
    raise ValueError(f'Unknown model.prior={m.prior!r}; allowed: {PRIORS}.')
  estimator = gumbel.get_estimator(config.estimator.name)  # Lists valid names.
  if config.estimator.slope.schedule not in SLOPE_SCHEDULES:
    raise ValueError(f'Unknown estimator.slope.schedule={config.estimator.slope.schedule!r}; '
                     f'allowed: {SLOPE_SCHEDULES}.')
  paths = config.estimator.get('paths')
  if paths is not None:
    if paths not in PATHS:
      raise ValueError(f'Unknown estimator.paths={paths!r}; allowed: {PATHS}.')
    if not has_paths(config.estimator.name):
      allowed = tuple(n for n in gumbel.ESTIMATORS if has_paths(n))
      raise ValueError(f'estimator.paths={paths!r} is for the estimators {allowed}; '
                       f'{config.estimator.name!r} is composed one layer at a time (remove '
                       'the field).')
  if m.latent not in estimator.kinds:
    raise ValueError(
        f'estimator.name={config.estimator.name!r} does not support model.latent={m.latent!r}; '
        f'it allows {estimator.kinds}.')


def _mlp(hidden, out, activation):
  return models.MLP(tuple(hidden) + (out,), activation)


def create_networks(config) -> tuple[dict, list[Layer]]:
  """The Dense stacks of the model and its stochastic layers."""
  m = config.model
  layer = Layer(m.latent, m.num_vars, m.num_classes)
  if m.task == 'sbn':
    nets = {'layer1': _mlp(m.hidden, layer.size, m.activation),
            'layer2': _mlp(m.hidden, layer.size, m.activation),
            'output': _mlp(m.hidden, HALF, m.activation)}
    return nets, [layer, layer]
  nets = {'encoder': _mlp(m.hidden, layer.size, m.activation),
          'decoder': _mlp(tuple(m.hidden) + tuple(m.decoder_hidden), NUM_PIXELS, m.activation)}
  return nets, [layer]


def init_params(key, config, nets, layers) -> dict:
  """Initial parameters: one Dense stack per stage (and learned prior logits)."""
  if config.model.task == 'sbn':
    inputs = {'layer1': HALF, 'layer2': layers[0].size, 'output': layers[1].size}
  else:
    inputs = {'encoder': NUM_PIXELS, 'decoder': layers[0].size}
  keys = dict(zip(sorted(nets), jax.random.split(key, len(nets))))
  params = {name: nets[name].init(keys[name], jnp.zeros((1, inputs[name])))
            for name in sorted(nets)}
  if config.model.task == 'vae' and config.model.prior == 'learned':
    params['prior'] = jnp.zeros(layers[0].event_shape, jnp.float32)
  return params


def prior_logits(params, layer: Layer) -> jax.Array:
  if 'prior' in params:
    return params['prior']
  return jnp.zeros(layer.event_shape)


def follows_schedule(estimator_name: str) -> bool:
  """Whether the estimator's `apply` takes a temperature (so it is annealed)."""
  return 'temperature' in gumbel.get_estimator(estimator_name).hparams


def learning_signal(config) -> str:
  """What a VAE's estimator gets as `f`: 'log_weight' or 'reconstruction'.

  'log_weight' (log p(x|z) + log p(z) - log q(z|x)) for the multi-sample
  bound of vimco and for estimators that normalize their signal (with
  `normalize` on), whose normalization [NVIL] applies to the whole learning
  signal; 'reconstruction' (log p(x|z), the KL analytic) otherwise.
  """
  estimator = gumbel.get_estimator(config.estimator.name)
  if estimator.objective == 'multi_sample_bound':
    return 'log_weight'
  if estimator.normalizes_signal and config.estimator.hparams.get(
      'normalize', estimator.hparams['normalize'].default):
    return 'log_weight'
  return 'reconstruction'


SLOPE_SCHEDULES = ('chung', 'inverse_temperature')
# How the SBN's multi-sample estimators (vimco, rloo) and learned control
# variates (rebar, relax) treat its two layers. 'joint': vimco and rloo draw
# S samples of the path (h1, h2), each layer's score term with the path's
# signal (as [VIMCO] and [RLOO] draw S samples of all the latents); rebar and
# relax draw one, each layer's control variate relaxing the path from that
# layer down ([REBAR]'s multilayer form, `Estimator.chain`). 'nested': one
# estimator a layer, layer 2's inside layer 1's f (for vimco S^2 paths and
# the nested bound log mean_i exp log mean_j p(x_l | h2_ij)).
PATHS = ('joint', 'nested')


def has_paths(estimator_name: str) -> bool:
  """Whether `estimator.paths` applies: a from_samples or chain form exists."""
  estimator = gumbel.get_estimator(estimator_name)
  return estimator.from_samples is not None or estimator.chain is not None


def slope_schedule(config, num_train: int) -> Callable:
  """`step -> a`, the slope of annealed_st's units (`config.estimator.slope.schedule`).

  'chung': a = min(max, 1 + rate * epoch), [SLOPE] section 4.1's schedule
  (rate 0.04, max 5); 'inverse_temperature': a = 1 / tau, following the
  temperature schedule of `config.temperature` (the VAEs' annealing; a = 1 in
  the SBNs, whose temperature is fixed at 1).
  """
  s = config.estimator.slope
  if s.schedule == 'chung':
    return lambda step: jnp.minimum(s.max, 1.0 + s.rate * (step * config.batch_size / num_train))
  if s.schedule == 'inverse_temperature':
    tau = temperature.create_temperature_schedule(config.temperature)
    return lambda step: 1.0 / tau(step)
  raise ValueError(f'Unknown estimator.slope.schedule={s.schedule!r}; allowed: '
                   f'{SLOPE_SCHEDULES}.')


def estimator_hparams(config, num_train: int, step):
  """The estimator's `apply` keyword arguments at `step` (schedules included)."""
  hparams = dict(config.estimator.hparams)
  declared = gumbel.get_estimator(config.estimator.name).hparams
  if 'temperature' in declared:
    hparams['temperature'] = temperature.create_temperature_schedule(config.temperature)(step)
  if 'slope' in declared:
    hparams['slope'] = slope_schedule(config, num_train)(step)
  return hparams


def unit_logits(logits: jax.Array, slope) -> jax.Array:
  """The logits of the units' distribution: `slope * logits` for annealed_st,
  whose slope is inside the unit ([SLOPE]); `logits` (slope None) otherwise."""
  return logits if slope is None else slope * logits


# ----------------------------------------------------------------------------
# Objectives.
# ----------------------------------------------------------------------------


def sbn_surrogate(params, states, x, key, *, config, nets, layers, hparams):
  """The estimators' surrogate of log p(x_l | x_u) per example, and new states.

  Returns:
    (surrogate [B], new estimator states, aux).
  """
  estimator = gumbel.get_estimator(config.estimator.name)
  kind = layers[0].kind
  x_u, x_l = x[:, :HALF], x[:, HALF:]  # [B, 392] each.
  k1, k2, k_state1, k_state2 = jax.random.split(key, 4)

  def log_likelihood(h2):
    return objectives.bernoulli_log_likelihood(
        logits=nets['output'].apply(params['output'], layers[1].flatten(h2)), targets=x_l)

  def logits2(h1):
    return layers[1].logits(nets['layer2'].apply(params['layer2'], layers[0].flatten(h1)))

  logits1 = layers[0].logits(nets['layer1'].apply(params['layer1'], x_u))
  if config.estimator.get('paths') == 'joint' and estimator.chain is not None:
    # rebar, relax: one sample of the path (h1, h2); each layer's control
    # variate relaxes the path from that layer down ([REBAR]'s multilayer form).
    s, aux, (state1, state2) = estimator.chain(
        k1, [lambda _: logits1, logits2], lambda hs: log_likelihood(hs[1]),
        [states['layer1'], states['layer2']], kind=kind, **hparams)
    return s, {'layer1': state1, 'layer2': state2}, aux
  if config.estimator.get('paths') == 'joint':
    # S samples of the path (h1, h2) ~ q(h1 | x_u) p(h2 | h1), each with f =
    # log p(x_l | h2) and log q of the whole path (both layers' terms).
    def path(k):
      k_h1, k_h2 = jax.random.split(k)
      h1 = layers[0].sample(k_h1, logits1)
      l2 = logits2(h1)
      h2 = layers[1].sample(k_h2, l2)
      return log_likelihood(h2), layers[0].log_prob(logits1, h1) + layers[1].log_prob(l2, h2)

    num_samples = hparams.get('num_samples', estimator.hparams['num_samples'].default)
    fs, log_probs = jax.vmap(path)(jax.random.split(k1, num_samples))  # [S, B]
    s, aux = estimator.from_samples(fs, log_probs)
    return s, states, aux

  def f1(h1):  # Layer 2 sampled with its estimator: its surrogate is f of layer 1.
    s2, _, _ = estimator.apply(k2, logits2(h1), log_likelihood, states['layer2'],
                               kind=kind, **hparams)
    return s2

  s1, aux, state1 = estimator.apply(k1, logits1, f1, states['layer1'], kind=kind, **hparams)
  # Layer 2's estimator state learns from an exact sample of layer 1.
  h1 = layers[0].sample(k_state1, logits1)
  _, _, state2 = estimator.apply(k_state2, jax.lax.stop_gradient(logits2(h1)),
                                 log_likelihood, states['layer2'], kind=kind, **hparams)
  return s1, {'layer1': state1, 'layer2': state2}, aux


def vae_surrogate(params, states, x, key, *, config, nets, layers, hparams):
  """-ELBO per example (vimco: -its multi-sample bound), and new states.

  Returns:
    (neg_elbo [B], kl [B], new estimator states, aux).
  """
  estimator = gumbel.get_estimator(config.estimator.name)
  layer = layers[0]
  logits = layer.logits(nets['encoder'].apply(params['encoder'], x))
  prior = prior_logits(params, layer)

  def log_likelihood(z):
    return objectives.bernoulli_log_likelihood(
        logits=nets['decoder'].apply(params['decoder'], layer.flatten(z)), targets=x)

  kl = layer.kl(unit_logits(logits, hparams.get('slope')), prior)
  if learning_signal(config) == 'log_weight':
    prior_b = jnp.broadcast_to(prior, logits.shape)
    # vimco's bound differentiates the log-weights themselves; the normalized
    # score-function estimators take q's gradient from the score term only.
    q_logits = logits if estimator.objective == 'multi_sample_bound' else (
        jax.lax.stop_gradient(logits))
    f = lambda z: log_likelihood(z) + layer.log_prob(prior_b, z) - layer.log_prob(q_logits, z)
    s, aux, state = estimator.apply(key, logits, f, states['latent'], kind=layer.kind,
                                    **hparams)
    return -s, jax.lax.stop_gradient(kl), {'latent': state}, aux
  s, aux, state = estimator.apply(key, logits, log_likelihood, states['latent'],
                                  kind=layer.kind, **hparams)
  return kl - s, kl, {'latent': state}, aux


# ----------------------------------------------------------------------------
# Evaluation.
# ----------------------------------------------------------------------------


def eval_fn(config: ml_collections.ConfigDict, num_samples: int, sample_chunk: int,
            relaxed_temperature: Optional[float] = None, slope: Optional[float] = None):
  """The evaluation function of `config.model`, the same for every estimator.

  Metrics per example, all of the discrete model: `nll`, the m-sample bound
  -log (1/m) sum_i w_i (m = `num_samples`; SBN: w = p(x_l | h_i), h ~ p(h |
  x_u); VAE: w = p(x, z_i) / q(z_i | x)); the VAE's `neg_elbo` with one
  discrete sample. With `relaxed_temperature`, also the one-sample relaxed
  objective at that temperature that a relaxed estimator trains on
  (`relaxed_neg_elbo`; SBN: `relaxed_nll_bound`, beside the discrete
  one-sample `nll_bound`).

  Returns:
    `eval_batch(params, extra, x, key) -> {name: [B]}`.
  """
  task = config.model.task
  nets, layers = create_networks(config)
  chunk = min(sample_chunk, num_samples)
  if num_samples % chunk:
    raise ValueError(f'eval num_samples={num_samples} must be a multiple of '
                     f'eval.sample_chunk={chunk}.')

  def iw_bound(log_weight, key):
    return objectives.importance_weighted_bound_chunked(
        key, log_weight, num_samples=num_samples, chunk=chunk)  # [B]

  def sbn_eval(params, extra, x, key):
    del extra
    x_u, x_l = x[:, :HALF], x[:, HALF:]
    logits1 = unit_logits(layers[0].logits(nets['layer1'].apply(params['layer1'], x_u)), slope)

    def log_weight(k, sample=lambda k, logits, layer: layer.sample(k, logits)):
      """log p(x_l | h2), h ~ p(h | x_u) ancestrally (or relaxed samples)."""
      k1, k2 = jax.random.split(k)
      h1 = sample(k1, logits1, layers[0])
      logits2 = unit_logits(
          layers[1].logits(nets['layer2'].apply(params['layer2'], layers[0].flatten(h1))), slope)
      h2 = sample(k2, logits2, layers[1])
      return objectives.bernoulli_log_likelihood(
          logits=nets['output'].apply(params['output'], layers[1].flatten(h2)), targets=x_l)

    key_iw, key_one, key_relaxed = jax.random.split(key, 3)
    out = {'nll': -iw_bound(log_weight, key_iw)}
    if relaxed_temperature is not None:
      out['nll_bound'] = -log_weight(key_one)
      out['relaxed_nll_bound'] = -log_weight(
          key_relaxed, lambda k, logits, layer: layer.relaxed_sample(k, logits,
                                                                     relaxed_temperature))
    return out

  def vae_eval(params, extra, x, key):
    del extra
    layer = layers[0]
    logits = unit_logits(layer.logits(nets['encoder'].apply(params['encoder'], x)), slope)
    prior = jnp.broadcast_to(prior_logits(params, layer), logits.shape)

    def log_likelihood(z):
      return objectives.bernoulli_log_likelihood(
          logits=nets['decoder'].apply(params['decoder'], layer.flatten(z)), targets=x)

    def log_weight(k):  # log p(x, z) - log q(z | x), z ~ q exactly.
      z = layer.sample(k, logits)
      return log_likelihood(z) + layer.log_prob(prior, z) - layer.log_prob(logits, z)

    key_elbo, key_iw = jax.random.split(key)
    kl = layer.kl(logits, prior)
    out = {'neg_elbo': kl - log_likelihood(layer.sample(key_elbo, logits)),
           'nll': -iw_bound(log_weight, key_iw)}
    if relaxed_temperature is not None:
      key_relaxed = jax.random.fold_in(key, 1)
      out['relaxed_neg_elbo'] = kl - log_likelihood(
          layer.relaxed_sample(key_relaxed, logits, relaxed_temperature))
    return out

  return sbn_eval if task == 'sbn' else vae_eval


# ----------------------------------------------------------------------------
# The task.
# ----------------------------------------------------------------------------


def create_task(config: ml_collections.ConfigDict,
                dataset: Optional[input_pipeline.Dataset] = None) -> training.Task:
  """The comparison model as a `training.Task`.

  Args:
    config: the experiment config.
    dataset: the data; default `input_pipeline.load_dataset(config.data)`
      (benchmarks pass generated data).

  Returns:
    The task.
  """
  check_config(config)
  nets, layers = create_networks(config)
  estimator = gumbel.get_estimator(config.estimator.name)
  data = dataset or input_pipeline.load_dataset(config.data)
  num_train = len(data.train)
  eval_data = input_pipeline.eval_splits(data, config.data.binarization,
                                         config.eval.num_examples)
  surrogate_fn = sbn_surrogate if config.model.task == 'sbn' else vae_surrogate
  kwargs = dict(config=config, nets=nets, layers=layers)
  schedule = temperature.create_temperature_schedule(config.temperature)
  relaxed_temperature = None
  if estimator.relaxed:  # Its training objective at the final temperature, for the gap.
    relaxed_temperature = (float(schedule(config.num_train_steps))
                           if follows_schedule(config.estimator.name) else 1.0)
  final_slope = None  # annealed_st: its units at the final slope.
  if 'slope' in estimator.hparams:
    final_slope = float(slope_schedule(config, num_train)(config.num_train_steps))

  def init(key):
    key_params, key_state = jax.random.split(key)
    params = init_params(key_params, config, nets, layers)
    names = ('layer1', 'layer2') if config.model.task == 'sbn' else ('latent',)
    example = jnp.zeros((1,) + layers[0].logits(jnp.zeros((layers[0].size,))).shape)
    states = {name: estimator.init(k, example, kind=layers[0].kind,
                                   **dict(config.estimator.init_hparams))
              for name, k in zip(names, jax.random.split(key_state, len(names)))}
    return params, states

  def loss(params, states, x, key, step):
    hparams = estimator_hparams(config, num_train, step)
    if config.model.task == 'sbn':
      s, new_states, _ = surrogate_fn(params, states, x, key, hparams=hparams, **kwargs)
      value = -jnp.mean(s)
      metrics = {'nll_bound': value}
    else:
      neg_elbo, kl, new_states, _ = surrogate_fn(params, states, x, key, hparams=hparams,
                                                 **kwargs)
      value = jnp.mean(neg_elbo)
      metrics = {'neg_elbo': value, 'kl': jnp.mean(kl)}
    if 'temperature' in hparams:
      metrics['tau'] = jnp.asarray(hparams['temperature'], jnp.float32)
    if 'slope' in hparams:
      metrics['slope'] = jnp.asarray(hparams['slope'], jnp.float32)
    return value, (metrics, new_states)

  first = 'layer1' if config.model.task == 'sbn' else 'encoder'

  def grad_variance(params, states, x, key, step):
    """Variance of the gradient of the first stochastic layer's parameters."""

    def surrogate(k, first_params, name):
      del name
      return loss({**params, first: first_params}, states, x, k, step)[0]

    return gumbel.gradient_variance(key, surrogate, params[first], [config.estimator.name],
                                    num_samples=config.grad_var_samples)

  grad_var_batch = None
  if config.grad_var_every:
    rng = np.random.default_rng(0)  # The same fixed batch for every run.
    index = rng.choice(num_train, config.batch_size, replace=False)
    grad_var_batch = (input_pipeline.binarize(rng, data.train[index])
                      if config.data.binarization == 'dynamic' else data.train[index])

  return training.Task(
      init=init,
      loss=loss,
      sample_batch=input_pipeline.batch_sampler(config),
      data=data.train,
      eval_batch={
          'valid': eval_fn(config, config.eval.valid_num_samples, config.eval.sample_chunk,
                           relaxed_temperature, final_slope),
          'test': eval_fn(config, config.eval.num_samples, config.eval.sample_chunk,
                          relaxed_temperature, final_slope),
      },
      eval_data=eval_data,
      grad_variance=grad_variance if config.grad_var_every else None,
      grad_var_batch=grad_var_batch,
      main_metric='nll_bound' if config.model.task == 'sbn' else 'neg_elbo',
      info={'data': f'{data.source}:{data.name}', 'num_train': num_train})


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains one configuration, checkpointing to `workdir`; returns the state."""
  (out,) = training.run(create_task, [config], [workdir])
  return out['state']
