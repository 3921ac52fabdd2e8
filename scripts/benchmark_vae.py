r"""Times the categorical VAE's compiled training against an idiomatic PyTorch peer.

  python -m scripts.benchmark_vae [--steps_per_call=300 --repeats=5 --torch_compile]

The JAX side runs the experiment's own code (`training.prepare` and
`programs.compile_train_chunk`, what `training.run` trains, on
`experiments.vae.create_task` with `configs/vae.py`: K=10, N=30,
784-512-256-300 / 300-256-512-784, Adam with staircase decay, dynamic
binarization, tau schedule) on images living on the device:
`steps_per_call` steps per compiled call, as training does. When PyTorch is
installed (an optional, benchmark-only dependency) the same model, batch,
loss and optimizer written as a researcher would (an `nn.Module`,
`F.gumbel_softmax`, `torch.optim.Adam`, eager by default) runs in the same
process on the same kind of device, on the same images. Repeats alternate between the two so that
load from other processes hits both alike; medians are reported, after
compilation and warm-up. PyTorch gets as many threads as this process may use
(XLA's CPU client uses that many too) and flushes denormals, as XLA does.

Prints JSON lines: one per implementation, then their ratio.
"""

import json
import math
import os
import platform
import time

from absl import app
from absl import flags
import jax
import numpy as np

from configs import vae as vae_config
from experiments import input_pipeline
from experiments import programs
from experiments import training
from experiments import vae

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command-line flags (only when run as a script: tests import scripts)."""
  flags.DEFINE_integer('steps_per_call', 300,
                       'Training steps per timed repeat (one compiled call for JAX).')
  flags.DEFINE_integer('repeats', 5, 'Timed repeats of each implementation.')
  flags.DEFINE_integer('batch_size', 100, 'Batch size (configs/vae.py uses 100).')
  flags.DEFINE_integer('num_images', 4000, 'Random training images on the device.')
  flags.DEFINE_bool('torch', True, 'Also time PyTorch when it is installed.')
  flags.DEFINE_bool('torch_compile', False, 'Also time the PyTorch step under torch.compile.')


# Idle OpenMP (PyTorch) and Eigen (XLA) workers spin for a while before they
# sleep; without a pause, whichever runs second competes with those spins.
_PAUSE_SECONDS = 1.0


def _num_threads() -> int:
  return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()


def _load() -> float:
  return round(os.getloadavg()[0], 2) if hasattr(os, 'getloadavg') else float('nan')


def make_jax_runner(config, dataset: input_pipeline.Dataset, steps: int):
  """Returns `run() -> seconds` for `steps` steps of the experiment's compiled chunk."""
  task = vae.create_task(config, dataset)
  timed = programs.chunk_timer(training.prepare(task, [config]), steps)  # A group of one.

  def run():
    elapsed, metrics = timed()
    if not np.isfinite(np.asarray(metrics['neg_elbo'])).all():
      raise FloatingPointError('JAX training diverged during the benchmark.')
    return elapsed

  return run


def make_torch_runner(config, images: np.ndarray, steps: int, compile_step: bool):
  """Returns `run() -> seconds` for `steps` steps of an idiomatic PyTorch loop."""
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top

  m, t, o = config.model, config.temperature, config.optimizer
  if m.activation != 'relu' or m.prior != 'uniform' or t.schedule != 'exponential':
    raise ValueError('The PyTorch peer implements the default configs/vae.py model only.')
  device = torch.device('cuda' if jax.default_backend() == 'gpu' and torch.cuda.is_available()
                        else 'cpu')

  def mlp(sizes):
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
      layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])

  class CategoricalVAE(nn.Module):

    def __init__(self):
      super().__init__()
      n_k = m.num_latents * m.num_classes
      self.encoder = mlp([784, *m.encoder_hidden, n_k])
      self.decoder = mlp([n_k, *m.decoder_hidden, 784])

    def forward(self, x, tau):
      logits = self.encoder(x).view(-1, m.num_latents, m.num_classes)
      z = F.gumbel_softmax(logits, tau=tau, hard=m.hard)
      x_logits = self.decoder(z.view(-1, m.num_latents * m.num_classes))
      recon = F.binary_cross_entropy_with_logits(x_logits, x, reduction='none').sum(-1)
      log_q = F.log_softmax(logits, dim=-1)  # KL to the uniform prior.
      kl = (log_q.exp() * (log_q + math.log(m.num_classes))).sum((-2, -1))
      return (recon + kl).mean()

  if device.type == 'cuda':
    # XLA's default float32 matmul precision on Ampere and newer is TF32;
    # PyTorch's is full float32. Give PyTorch the same (faster) TF32 matmuls.
    torch.set_float32_matmul_precision('high')
  torch.manual_seed(config.seed)
  model = CategoricalVAE().to(device)
  optimizer = torch.optim.Adam(model.parameters(), lr=o.learning_rate)
  lr_decay = torch.optim.lr_scheduler.StepLR(optimizer, o.decay_steps, gamma=o.decay_rate)
  data = torch.from_numpy(images).to(device)
  loss_of = torch.compile(model) if compile_step else model
  step = 0

  def train_step():
    nonlocal step
    tau = max(t.tau_min, t.tau0 * math.exp(-t.rate * (step // t.interval) * t.interval))
    idx = torch.randint(0, data.shape[0], (config.batch_size,), device=device)
    x = torch.bernoulli(data[idx])
    loss = loss_of(x, tau)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    lr_decay.step()
    step += 1
    return loss

  def sync():
    if device.type == 'cuda':
      torch.cuda.synchronize()

  def run():
    sync()
    start = time.perf_counter()
    for _ in range(steps):
      loss = train_step()
    sync()
    elapsed = time.perf_counter() - start
    if not math.isfinite(loss.item()):
      raise FloatingPointError('PyTorch training diverged during the benchmark.')
    return elapsed

  return run


def _result(impl, device, times, steps, batch_size, **extra):
  seconds = float(np.median(times))
  return {'impl': impl, 'device': device, 'steps_per_sec': round(steps / seconds, 1),
          'images_per_sec': round(steps * batch_size / seconds), 'batch_size': batch_size,
          'repeats_steps_per_sec': [round(steps / s, 1) for s in times], **extra}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = vae_config.get_config()
  config.batch_size = FLAGS.batch_size
  steps = FLAGS.steps_per_call
  dataset = input_pipeline.random_dataset(FLAGS.num_images, 0)  # Both sides train on these.
  images = dataset.train
  threads = _num_threads()

  runners = {}
  start = time.perf_counter()
  runners['jax'] = make_jax_runner(config, dataset, steps)
  runners['jax']()  # Compiles; the second call below warms the caches.
  compile_seconds = {'jax': time.perf_counter() - start}
  torch_version = None
  if FLAGS.torch:
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError:
      print(json.dumps({'note': 'PyTorch is not installed; timing JAX only.'}))
    else:
      torch_version = torch.__version__
      # XLA's CPU runtime flushes denormals to zero; without this (set before
      # PyTorch starts its OpenMP workers, which copy the setting), PyTorch's
      # Adam slows down ~1.5x after ~700 steps, when its state turns denormal.
      torch.set_flush_denormal(True)
      torch.set_num_threads(threads)
      variants = {'torch': False, **({'torch_compile': True} if FLAGS.torch_compile else {})}
      for name, compile_step in variants.items():
        start = time.perf_counter()
        runners[name] = make_torch_runner(config, images, steps, compile_step)
        runners[name]()
        compile_seconds[name] = time.perf_counter() - start

  times = {name: [] for name in runners}
  loads = [_load()]
  for name, run in runners.items():
    run()  # Warm-up.
  for _ in range(FLAGS.repeats):
    for name, run in runners.items():  # Interleaved, so load hits all alike.
      time.sleep(_PAUSE_SECONDS)  # Lets the other runtime's worker threads stop spinning.
      times[name].append(run())
    loads.append(_load())

  jax_device = jax.devices()[0]
  jax_device = f'{jax_device.platform}:{getattr(jax_device, "device_kind", "")}'
  common = {'steps_per_call': steps,
            'repeats': FLAGS.repeats, 'threads': threads, 'load_avg_1m': loads,
            'host': platform.processor() or platform.machine()}
  results = {'jax': _result('jax', jax_device, times['jax'], steps, config.batch_size,
                            jax_version=jax.__version__,
                            setup_seconds=round(compile_seconds['jax'], 1), **common)}
  for name in runners:
    if name != 'jax':
      torch_device = 'cuda' if jax.default_backend() == 'gpu' and torch.cuda.is_available() \
          else 'cpu'
      results[name] = _result(name, torch_device, times[name], steps, config.batch_size,
                              torch_version=torch_version,
                              torch_matmul_precision=torch.get_float32_matmul_precision(),
                              setup_seconds=round(compile_seconds[name], 1), **common)
  for result in results.values():
    print(json.dumps(result))
  for name in runners:
    if name != 'jax':
      suffix = '' if name == 'torch' else '_' + name.removeprefix('torch_')
      print(json.dumps({f'ratio_jax_over_torch{suffix}': round(
          results['jax']['steps_per_sec'] / results[name]['steps_per_sec'], 2)}))


if __name__ == '__main__':
  define_flags()
  app.run(main)
