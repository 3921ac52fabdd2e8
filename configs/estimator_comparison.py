r"""[GS] Table 1: gradient estimators on SBN and VAE models, Bernoulli and categorical.

Reproduces Table 1 of Jang, Gu & Poole (ICLR 2017): structured output
prediction with stochastic networks (392-200-200-392 Bernoulli, or
392-(20x10)-(20x10)-392 categorical; test NLL with m importance samples) and
generative modelling (784-200-784 / 784-(20x10)-784 VAEs; test -ELBO and an
m-sample bound), every estimator of `gumbel.ESTIMATORS`, SGD with momentum 0.9,
the learning rate picked per cell on validation. The paper's numbers (nats,
SF / DARN / MuProp / ST / Annealed ST / Gumbel-S. / ST Gumbel-S.):
SBN Bern. 72.0 59.7 58.9 58.9 58.7 58.5 59.3; SBN Cat. 73.1 67.9 63.0 61.8
61.1 59.0 59.7; VAE Bern. 112.2 110.9 109.7 116.0 111.5 105.0 111.5; VAE Cat.
110.6 128.8 107.0 110.9 107.8 101.5 107.8.

The argument is big_vision style `key=value` pairs:
  model=sbn_bern|sbn_cat|vae_bern|vae_cat, estimator=<a gumbel.ESTIMATORS name>,
  preset=paper|cpu|small|tiny.
`paper` is the paper's set-up (full MNIST: tfds or the npm IDX files, see
docs/experiments.md; three seeds, six learning rates; a GPU is advised). `cpu` is the
paper's per-run budget that a CPU can finish: the same runs (100,000 steps of
100 on full MNIST, m = 1000 at test, the four annealings of the VAE cells
with a scheduled temperature), one seed and the top two learning rates of the
paper's grid {1e-3, 3e-3}. `small` runs offline on the 5,000 embedded digits
in minutes on a CPU (fewer steps, learning rates, seeds and importance
samples), `tiny` serves the tests. The whole table, all presets:
  python -m scripts.reproduce_table1 --preset=small --workdir=/tmp/table1
One cell's sweep (seeds x learning rates as one vmapped program):
  python -m experiments.main --sweep \
      --config=configs/estimator_comparison.py:model=vae_cat,estimator=rebar,preset=small \
      --workdir=/tmp/vae_cat_rebar
One run: the same without --sweep (override with --config.optimizer.learning_rate=...).
"""

import ml_collections

import gumbel

MODELS = {
    'sbn_bern': ('sbn', 'bernoulli'),
    'sbn_cat': ('sbn', 'categorical'),
    'vae_bern': ('vae', 'bernoulli'),
    'vae_cat': ('vae', 'categorical'),
}
PRESETS = ('paper', 'cpu', 'small', 'tiny')
ARG_KEYS = ('model', 'estimator', 'preset')
# The paper's learning rates, chosen per cell on validation.
PAPER_LEARNING_RATES = (3e-5, 1e-5, 3e-4, 1e-4, 3e-3, 1e-3)
# [GS] picks the VAEs' annealing, tau = max(0.5, exp(-r t)) every N steps, on
# validation from N in {500, 1000} and r in {1e-5, 1e-4}; the paper and cpu
# presets sweep it for the estimators whose temperature follows the schedule
# (those whose `apply` declares a `temperature`).
ANNEALING_PRESETS = ('paper', 'cpu')
# Estimator hyperparameters that the experiment sets per step from a schedule.
SCHEDULED_HPARAMS = ('temperature', 'slope')
PAPER_TEMPERATURE_INTERVALS = (500, 1000)
PAPER_TEMPERATURE_RATES = (1e-5, 1e-4)
SWEEPS = {
    'paper': {'seeds': (0, 1, 2), 'learning_rates': PAPER_LEARNING_RATES},
    'cpu': {'seeds': (0,), 'learning_rates': (1e-3, 3e-3)},
    'small': {'seeds': (0, 1), 'learning_rates': (3e-3, 1e-3)},
    'tiny': {'seeds': (0, 1), 'learning_rates': (1e-3, 3e-4)},
}


def parse_arg(arg):
  """'model=vae_cat,estimator=rebar' -> dict with defaults; unknown keys fail."""
  values = {'model': 'vae_cat', 'estimator': 'gumbel_softmax', 'preset': 'paper'}
  for item in filter(None, (arg or '').split(',')):
    key, sep, value = item.partition('=')
    if not sep or key not in ARG_KEYS:
      raise ValueError(f'Bad config argument {item!r}; expected key=value with key in '
                       f'{ARG_KEYS}, e.g. model=vae_cat,estimator=rebar,preset=small.')
    values[key] = value
  if values['model'] not in MODELS:
    raise ValueError(f'Unknown model={values["model"]!r}; allowed: {tuple(MODELS)}.')
  if values['preset'] not in PRESETS:
    raise ValueError(f'Unknown preset={values["preset"]!r}; allowed: {PRESETS}.')
  return values


def get_config(arg=None):
  """Returns the config of one (model, estimator, preset)."""
  args = parse_arg(arg)
  task, latent = MODELS[args['model']]
  config = ml_collections.ConfigDict()
  config.experiment = 'estimator_comparison'
  config.seed = 0

  # Training loop.
  config.num_train_steps = 100_000
  config.batch_size = 100
  config.log_every = 1000  # Steps per compiled call.
  config.checkpoint_every = 5000
  config.max_checkpoints_to_keep = 2
  config.grad_var_every = 5000  # Encoder gradient variance on a fixed batch.
  config.grad_var_samples = 16

  # Data: MNIST with a fixed binarization and a validation split.
  config.data = ml_collections.ConfigDict()
  config.data.source = 'auto'
  config.data.name = 'mnist'
  config.data.dir = ''
  config.data.binarization = 'static'
  config.data.valid_size = -1  # The data set's standard validation split.

  # Model.
  config.model = ml_collections.ConfigDict()
  config.model.name = args['model']
  config.model.task = task  # sbn | vae
  config.model.latent = latent  # bernoulli | categorical
  config.model.num_vars = 200 if latent == 'bernoulli' else 20
  config.model.num_classes = 10  # Categorical layers only.
  config.model.hidden = ()  # Deterministic layers between stochastic ones: none.
  # Extra hidden widths of the VAE's decoder only: (200,) is the "784 - (20 x 10) - 200"
  # reading of [GS] Figure 4(b)'s caption (scripts/explain_table1.py tests it).
  config.model.decoder_hidden = ()
  config.model.activation = 'tanh'
  # VAE: learned (the final text of [GS], arXiv v5) | uniform (an earlier copy).
  config.model.prior = 'learned'

  # Estimator: one instance per stochastic layer.
  config.estimator = ml_collections.ConfigDict()
  config.estimator.name = args['estimator']
  # The keyword arguments of the estimator's `apply` and `init`: the defaults
  # its `Estimator` declares, so that each can be set from the command line
  # (e.g. --config.estimator.hparams.normalize=False). The temperature and
  # the slope follow `temperature` and `estimator.slope` per step instead.
  declared = gumbel.get_estimator(args['estimator'])
  config.estimator.hparams = ml_collections.ConfigDict(
      {k: v.default for k, v in declared.hparams.items() if k not in SCHEDULED_HPARAMS})
  config.estimator.init_hparams = ml_collections.ConfigDict(
      {k: v.default for k, v in declared.init_hparams.items()})
  # annealed_st's slope a (inside its units): 'chung', a = min(max, 1 + rate * epoch)
  # (Chung et al. 2016 section 4.1), or 'inverse_temperature', a = 1 / tau of the
  # temperature schedule below. [GS] states none; the VAE cells of the paper and
  # cpu presets choose on validation between them.
  config.estimator.slope = ml_collections.ConfigDict(
      {'schedule': 'chung', 'rate': 0.04, 'max': 5.0})  # rate per epoch.
  if task == 'sbn' and (declared.from_samples is not None or declared.chain is not None):
    # vimco, rloo, rebar, relax in the SBN: 'joint', the path (h1, h2) sampled
    # whole (S samples for vimco and rloo, as their papers draw them; for rebar
    # and relax one, each layer's control variate relaxing it from that layer
    # down, as their reference code does), or 'nested', each layer its own
    # estimator inside layer 1's f.
    config.estimator.paths = 'joint'

  # Temperature of every estimator whose `apply` takes one (gumbel_softmax,
  # st_gumbel_softmax, gumbel_rao, reinmax, gapped_st): fixed at 1 for the SBNs;
  # max(0.5, exp(-r t)) every N steps for the VAEs.
  config.temperature = ml_collections.ConfigDict()
  config.temperature.schedule = 'constant' if task == 'sbn' else 'exponential'
  config.temperature.tau0 = 1.0
  config.temperature.rate = 1e-4
  config.temperature.tau_min = 0.5
  config.temperature.interval = 500

  # Optimizer.
  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = 'sgd'
  config.optimizer.momentum = 0.9
  config.optimizer.learning_rate = 1e-3

  # Evaluation.
  config.eval = ml_collections.ConfigDict()
  config.eval.num_samples = 1000  # m of the test bound (SBN NLL, VAE NLL bound).
  config.eval.valid_num_samples = 100  # m of the same bound on validation (the choice).
  config.eval.batch_size = 100
  config.eval.sample_chunk = 100
  config.eval.num_examples = -1

  overrides = dict(_PRESET_OVERRIDES.get(args['preset'], {}))
  if args['preset'] == 'small' and 'num_samples' in declared.hparams:
    overrides['estimator.hparams.num_samples'] = 2  # vimco, rloo.
  if args['preset'] == 'tiny':
    overrides['model.num_vars'] = 6 if latent == 'bernoulli' else 3
  config.update_from_flattened_dict(overrides)
  return config


# What the small and tiny presets change (the paper and cpu presets are the defaults).
_PRESET_OVERRIDES = {
    'small': {
        'data.source': 'embedded', 'num_train_steps': 1000, 'batch_size': 50, 'log_every': 250,
        'checkpoint_every': 1000, 'grad_var_every': 500, 'grad_var_samples': 8,
        'eval.num_samples': 100, 'eval.valid_num_samples': 20, 'eval.sample_chunk': 20,
    },
    'tiny': {
        'data.source': 'embedded', 'num_train_steps': 20, 'batch_size': 8, 'log_every': 10,
        'checkpoint_every': 10, 'grad_var_every': 10, 'grad_var_samples': 2,
        'model.num_classes': 4, 'eval.num_samples': 4, 'eval.valid_num_samples': 2,
        'eval.batch_size': 16, 'eval.sample_chunk': 2, 'eval.num_examples': 32,
    },
}


def get_hyper(h, arg=None):
  """The sweep of one cell: seeds x learning rates (one compiled program).

  In the paper and cpu presets, the VAE cells of estimators with a scheduled
  temperature also sweep the annealing (N, r) as [GS] does: one compiled
  program per schedule, chosen on validation with the learning rate.
  annealed_st's VAE cells sweep its slope schedule the same way: Chung et
  al.'s, and a = 1 / tau for each of the four annealings.
  """
  args = parse_arg(arg)
  sweep = SWEEPS[args['preset']]
  axes = [
      h.sweep('config.seed', sweep['seeds']),
      h.sweep('config.optimizer.learning_rate', sweep['learning_rates']),
  ]
  if args['preset'] not in ANNEALING_PRESETS or MODELS[args['model']][0] != 'vae':
    return h.product(axes)
  declared = gumbel.get_estimator(args['estimator']).hparams
  annealings = [h.sweep('config.temperature.interval', PAPER_TEMPERATURE_INTERVALS),
                h.sweep('config.temperature.rate', PAPER_TEMPERATURE_RATES)]
  if 'temperature' in declared:
    return h.product(axes + annealings)
  if 'slope' in declared:  # annealed_st: Chung et al.'s schedule, or a = 1 / tau per annealing.
    return (h.product(axes + [h.sweep('config.estimator.slope.schedule', ['chung'])]) +
            h.product(axes + [h.sweep('config.estimator.slope.schedule',
                                      ['inverse_temperature'])] + annealings))
  return h.product(axes)
