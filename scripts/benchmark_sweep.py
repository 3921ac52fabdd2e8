r"""Aggregate throughput of vmapped sweep members against one member run alone.

  python -m scripts.benchmark_sweep [--model=vae_cat --estimator=gumbel_softmax \
      --members=1,8,64 --steps=50 --repeats=3]

Times the shared loop's compiled training chunk (`training.prepare`, then
`programs.compile_train_chunk`: what `training.run` trains) of a Table 1
model (`configs/estimator_comparison.py`, paper sizes, batch 100, data on
the device) for one member alone (no vmap), then for M members vmapped in
one program (seeds and learning rates as data), and prints one
JSON line per setting: steps per second of the program, aggregate
model-steps per second (M x steps/s), and the speedup of the aggregate over
the member alone. Medians over repeats, after compilation and a warm-up.
Runs unchanged on a CPU or a GPU (whatever `jax.devices()` holds; several
devices shard the member axis).
"""

import json
import time

from absl import app
from absl import flags
import jax
import numpy as np

from configs import estimator_comparison as ec_config
from experiments import estimator_comparison
from experiments import input_pipeline
from experiments import programs
from experiments import training

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command-line flags (only when run as a script: tests import scripts)."""
  flags.DEFINE_string('model', 'vae_cat', 'A Table 1 model: sbn_bern, sbn_cat, vae_bern, vae_cat.')
  flags.DEFINE_string('estimator', 'gumbel_softmax', 'An estimator name.')
  flags.DEFINE_list('members', ['1', '8', '64'], 'Vmapped member counts.')
  flags.DEFINE_integer('steps', 50, 'Training steps per timed call.')
  flags.DEFINE_integer('repeats', 3, 'Timed calls per setting (median reported).')


def make_runner(config, task, num_members: int, batched: bool, steps: int):
  """Returns `run() -> seconds` for one compiled call of `steps` steps."""
  lrs = np.geomspace(1e-4, 3e-3, num_members)  # Members differ in data only.
  configs = []
  for i in range(num_members):
    c = ec_config.get_config(f'model={config.model.name},estimator={config.estimator.name},'
                             'preset=paper')
    c.seed, c.optimizer.learning_rate = i, float(lrs[i])
    configs.append(c)
  # The loop's own start (keys, padding, placement) and its own compiled chunk.
  timed = programs.chunk_timer(training.prepare(task, configs, batched=batched), steps)

  def run():
    return timed()[0]

  return run


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = ec_config.get_config(f'model={FLAGS.model},estimator={FLAGS.estimator},preset=paper')
  task = estimator_comparison.create_task(config, input_pipeline.random_dataset(4000, 0))
  device = jax.devices()[0]
  common = {'model': FLAGS.model, 'estimator': FLAGS.estimator, 'batch_size': config.batch_size,
            'steps_per_call': FLAGS.steps, 'repeats': FLAGS.repeats,
            'device': f'{device.platform}:{getattr(device, "device_kind", "")}',
            'num_devices': len(jax.devices()), 'jax_version': jax.__version__}
  settings = [('alone', 1, False)] + [(f'vmap{m}', int(m), True) for m in FLAGS.members]
  alone = None
  for name, members, batched in settings:
    start = time.perf_counter()
    run = make_runner(config, task, members, batched, FLAGS.steps)
    run()  # Compiles.
    setup = time.perf_counter() - start
    run()  # Warm-up.
    seconds = float(np.median([run() for _ in range(FLAGS.repeats)]))
    steps_per_sec = FLAGS.steps / seconds
    aggregate = members * steps_per_sec
    if alone is None:
      alone = aggregate
    print(json.dumps({'setting': name, 'members': members, 'vmapped': batched,
                      'steps_per_sec': round(steps_per_sec, 2),
                      'aggregate_model_steps_per_sec': round(aggregate, 1),
                      'speedup_vs_alone': round(aggregate / alone, 2),
                      'setup_seconds': round(setup, 1), **common}), flush=True)


if __name__ == '__main__':
  define_flags()
  app.run(main)
