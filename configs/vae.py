r"""Categorical VAE of the Gumbel-Softmax blog post (Jang, Gu, Poole 2016/2017).

Model: K=10 classes, N=30 categorical variables; encoder 784-512-256-(N*K),
decoder (N*K)-256-512-784 Bernoulli, ReLU; Adam 1e-3 decayed x0.9 every 1000
steps; batch 100; 50,000 steps; tau = max(0.5, exp(-3e-5 t)) recomputed every
1000 steps; analytic KL to the uniform prior; `model.hard=True` for
straight-through Gumbel-Softmax. Evaluated as [GS] Table 1 does: test -ELBO
with one-hot (Gumbel-Max) codes, and an importance-sampled NLL bound with
`eval.num_samples` samples (1000 in the paper).

Expected (docs/reproducing.md, measured on a 2-core CPU): on the
5,000 embedded digits (4,000 train / 1,000 test) the default run takes ~7.5 min
(448 s) and reaches a test -ELBO of 116.42 nats and an NLL bound of 100.11 nats
(`:st`: 420 s, 115.52 / 102.16). [GS] Table 1 reports 101.5 for VAE (Cat.) on
full binarized MNIST (a smaller 784-(20x10)-784 model, not this one).

Run:
  python -m experiments.main --config=configs/vae.py --workdir=/tmp/vae
Variants (comma-separated, as in big_vision): `configs/vae.py:st` (hard=True),
`configs/vae.py:tiny` (tests), `configs/vae.py:learned_tau`,
`configs/vae.py:learned_prior`, e.g. `--config=configs/vae.py:st,learned_prior`;
`configs/vae.py:fashion` reads Fashion-MNIST IDX files from `data.dir` (empty:
`$GUMBEL_DATA_DIR/fashion_mnist`; Debian's dataset-fashion-mnist package:
`--config.data.dir=/usr/share/datasets/fashion-mnist`).
Any field: `--config.model.hard=True --config.data.source=idx`.
"""

import ml_collections

VARIANTS = ('st', 'tiny', 'learned_tau', 'learned_prior', 'fashion')


def get_config(arg=None):
  """Returns the config; `arg` is a comma-separated list of VARIANTS."""
  config = ml_collections.ConfigDict()
  config.experiment = 'vae'
  config.seed = 0

  # Training loop.
  config.num_train_steps = 50_000
  config.batch_size = 100
  config.log_every = 1000  # Also the number of steps compiled into one call.
  config.checkpoint_every = 5000
  config.max_checkpoints_to_keep = 2

  # Data.
  config.data = ml_collections.ConfigDict()
  config.data.source = 'auto'  # auto | tfds | idx | embedded
  config.data.name = 'mnist'  # tfds name: mnist | binarized_mnist | fashion_mnist
  config.data.dir = ''  # IDX folder (source=idx) or tfds data dir.
  config.data.binarization = 'dynamic'  # dynamic | static | none

  # Model.
  config.model = ml_collections.ConfigDict()
  config.model.num_latents = 30  # N
  config.model.num_classes = 10  # K
  config.model.encoder_hidden = (512, 256)
  config.model.decoder_hidden = (256, 512)
  config.model.activation = 'relu'
  config.model.hard = False  # Straight-through Gumbel-Softmax.
  config.model.prior = 'uniform'  # uniform | learned

  # Temperature.
  config.temperature = ml_collections.ConfigDict()
  config.temperature.schedule = 'exponential'  # exponential | constant | learned
  config.temperature.tau0 = 1.0
  config.temperature.rate = 3e-5
  config.temperature.tau_min = 0.5
  config.temperature.interval = 1000

  # Optimizer.
  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = 'adam'
  config.optimizer.learning_rate = 1e-3
  config.optimizer.decay_rate = 0.9
  config.optimizer.decay_steps = 1000

  # Evaluation.
  config.eval = ml_collections.ConfigDict()
  config.eval.num_samples = 1000  # Importance samples for the NLL bound.
  config.eval.batch_size = 50
  config.eval.sample_chunk = 100  # Importance samples per vectorized chunk.
  config.eval.num_examples = -1  # -1: the whole test set.

  for variant in filter(None, (arg or '').split(',')):
    if variant not in VARIANTS:
      raise ValueError(f'Unknown variant {variant!r} of configs/vae.py; allowed: {VARIANTS}.')
    if variant == 'st':
      config.model.hard = True
    elif variant == 'learned_tau':
      config.temperature.schedule = 'learned'
      config.temperature.tau_min = 0.1
    elif variant == 'learned_prior':
      config.model.prior = 'learned'
    elif variant == 'fashion':
      config.data.source = 'idx'
      config.data.name = 'fashion_mnist'
    elif variant == 'tiny':
      config.num_train_steps = 40
      config.batch_size = 16
      config.log_every = 10
      config.checkpoint_every = 20
      config.model.num_latents = 4
      config.model.num_classes = 3
      config.model.encoder_hidden = (32,)
      config.model.decoder_hidden = (32,)
      config.eval.num_samples = 8
      config.eval.batch_size = 16
      config.eval.sample_chunk = 4
      config.eval.num_examples = 32
  return config
