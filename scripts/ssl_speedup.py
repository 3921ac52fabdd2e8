r"""Times M2's compiled training step: marginalization over y against Gumbel-Softmax.

  python -m scripts.ssl_speedup --classes=10,20,50,100 [--out=DIR] [--preset=paper]

As [GS] section 4.3 does: K classes of random labels, the same networks with
a K-way y. For each K it builds both modes' tasks (`experiments.ssl.create_task`
with `configs/ssl.py:mode=...,preset=...,classes=K`, the images on the
device) and times the training loop's own compiled chunk
(`training.prepare`, then `programs.compile_train_chunk` with the config's
`step_loop`, as `training.run` trains: batches drawn in the program, the
loss, its gradient and the Adam update; `--steps` steps per call; on CPU one
compiled step per host call) after compilation and one warm-up call,
alternating the two modes `--repeats` times so that load from other
processes hits both alike. It prints one JSON line per K with the median
seconds per step of each mode, the speedup and the device
(`jax.devices()[0]`: the same command runs on CPU or GPU), and with --out
writes `ssl_speedup.png` (speedup against K, beside the paper's two points)
and `ssl_speedup.json`.

Cost per step ([GS] 4.3): O(D + K(I + G)) for marginalization against
O(D + I + G) for Gumbel-Softmax, with D the y-independent work (q(y|x) and
the trunk of q(z|x,y)) and I + G the head of q(z|x,y) and the decoder.
"""

import json
import os
import statistics
import time

from absl import app
from absl import flags
import jax
import numpy as np

from configs import ssl as ssl_config
from experiments import programs
from experiments import ssl
from experiments import training

# [GS] 4.3: Gumbel-Softmax over marginalization, GTX Titan X.
PAPER_SPEEDUPS = {10: 2.0, 100: 9.9}
MODES = ('marginalize', 'gumbel')

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command-line flags (only when run as a script: tests import scripts)."""
  flags.DEFINE_list('classes', ['10', '20', '50', '100'], 'Numbers of classes K.')
  flags.DEFINE_enum('preset', 'paper', ssl_config.PRESETS, 'Networks and batch sizes.')
  flags.DEFINE_integer('steps', 1, 'Training steps per timed call.')
  flags.DEFINE_integer('repeats', 3, 'Timed calls per mode and K (alternating).')
  flags.DEFINE_string('data_source', 'embedded', 'data.source (the images do not change '
                      'the timing; the embedded digits need no download).')
  flags.DEFINE_string('out', None, 'Folder for ssl_speedup.png and ssl_speedup.json.')


def _load() -> float:
  return round(os.getloadavg()[0], 2) if hasattr(os, 'getloadavg') else float('nan')


def make_runner(config, steps: int):
  """Returns `(run() -> seconds, compile_seconds)` for `steps` compiled steps of one mode."""
  timed = programs.chunk_timer(training.prepare(ssl.create_task(config), [config]), steps)

  def run():
    elapsed, metrics = timed()
    if not np.isfinite(np.asarray(metrics['loss'])).all():
      raise FloatingPointError(f'{config.model.y_mode} diverged during the benchmark.')
    return elapsed

  compile_seconds = run()  # Compilation (and the first steps).
  run()  # Warm-up.
  return run, compile_seconds


def measure(num_classes: int, *, preset: str, steps: int, repeats: int,
            data_source: str) -> dict:
  """Median seconds per step of both modes at K classes, and their ratio."""
  runners, compile_seconds = {}, {}
  for mode in MODES:
    config = ssl_config.get_config(f'mode={mode},preset={preset},classes={num_classes}')
    config.data.labels = 'random'  # As the paper times it, K=10 included.
    config.data.source = data_source
    runners[mode], compile_seconds[mode] = make_runner(config, steps)
  times = {mode: [] for mode in MODES}
  for _ in range(repeats):
    for mode in MODES:
      times[mode].append(runners[mode]() / steps)
  median = {mode: statistics.median(t) for mode, t in times.items()}
  device = jax.devices()[0]
  return {
      'classes': num_classes,
      'marginalize_s_per_step': median['marginalize'],
      'gumbel_s_per_step': median['gumbel'],
      'speedup': median['marginalize'] / median['gumbel'],
      'device': f'{device.platform}:{device.device_kind}',
      'num_devices': jax.device_count(),
      'preset': preset,
      'batch_size': config.batch_size,
      'labelled_batch_size': config.labelled_batch_size,
      'steps_per_call': steps,
      'step_loop': programs.resolve_step_loop(config.step_loop),
      'repeats': repeats,
      'times_s_per_step': times,
      'compile_s': compile_seconds,
      'load_avg': _load(),
  }


def plot(rows: list[dict], path: str):
  """Speedup against K, measured and the paper's."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(5, 3.6))
  ks = [r['classes'] for r in rows]
  ax.plot(ks, [r['speedup'] for r in rows], 'o-', label=f'measured ({rows[0]["device"]})')
  ax.plot(list(PAPER_SPEEDUPS), list(PAPER_SPEEDUPS.values()), 'x', markersize=9,
          label='[GS] 4.3 (GTX Titan X)')
  ax.axhline(1.0, color='grey', linewidth=0.5)
  ax.set_xscale('log')
  ax.set_yscale('log')
  ax.set_xticks(ks, [str(k) for k in ks])
  ax.set_xlabel('classes K')
  ax.set_ylabel('step time: marginalization / Gumbel')
  ax.set_title(f'M2 training step, preset {rows[0]["preset"]}, batch '
               f'{rows[0]["batch_size"]}+{rows[0]["labelled_batch_size"]}', fontsize=9)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  try:
    classes = [int(k) for k in FLAGS.classes]
  except ValueError:
    raise app.UsageError(f'--classes={",".join(FLAGS.classes)}; allowed: integers >= 2, '
                         'e.g. --classes=10,20,50,100.') from None
  if min(classes) < 2 or FLAGS.steps < 1 or FLAGS.repeats < 1:
    raise app.UsageError(f'--classes={classes} (each >= 2), --steps={FLAGS.steps} and '
                         f'--repeats={FLAGS.repeats} (each >= 1).')
  rows = []
  for k in classes:
    row = measure(k, preset=FLAGS.preset, steps=FLAGS.steps, repeats=FLAGS.repeats,
                  data_source=FLAGS.data_source)
    print(json.dumps(row), flush=True)
    rows.append(row)
  if FLAGS.out:
    os.makedirs(FLAGS.out, exist_ok=True)
    plot(rows, os.path.join(FLAGS.out, 'ssl_speedup.png'))
    with open(os.path.join(FLAGS.out, 'ssl_speedup.json'), 'w') as f:
      json.dump(rows, f, indent=1)


if __name__ == '__main__':
  define_flags()
  app.run(main)
