"""The training loop that every experiment and every sweep shares.

An experiment describes one run as a `Task`: pure functions (init, loss,
batch sampling, evaluation) and its data. `run` trains a group of runs that
differ only in `MEMBER_FIELDS` (seed, learning rate) as one compiled program:
the state of every member carries a leading member axis, the training step is
`jax.vmap`ed over it, and with several devices that axis is sharded across
them with `jax.sharding`. A single run is a group of one.

Every member is the run you would get alone: its keys come from its own seed
(`fold_in(loop_key, step)` per step), its learning rate is data in its
optimizer state (`optax.inject_hyperparams`), and it writes ordinary run
outputs into its own workdir: `config.json`, `metrics.jsonl` (one JSON line
per logging step), orbax checkpoints of `{params, opt_state, extra, step}`
and, once trained and evaluated, `result.json`. A member whose `result.json`
exists is never trained again; the others resume from their newest
checkpoint that restores.

Each compiled call runs `config.log_every` steps in a `lax.scan`; metrics,
the NaN guard, checkpoints and progress lines happen between calls, and a
host callback inside the scan prints progress at least every
`PROGRESS_SECONDS` during long calls.
"""

import dataclasses
import functools
import importlib.metadata
import json
import logging as std_logging
import os
import platform
import subprocess
import time
from typing import Any, Callable, Mapping, Optional, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from experiments import checkpointing
from experiments import metric_writer
from experiments import preemption

PyTree = Any
# Fields in which the members of one compiled group may differ: data, not code.
MEMBER_FIELDS = ('seed', 'optimizer.learning_rate')
OPTIMIZERS = ('adam', 'sgd')
NONFINITE_POLICIES = ('raise', 'mark')
# config.step_loop: the chunk's steps in one lax.scan, or one compiled step per
# host iteration ('auto': host on CPU, where XLA runs convolutions inside a
# loop body 5-15x slower, jax-ml/jax#12868; scan elsewhere).
STEP_LOOPS = ('scan', 'host', 'auto')
PROGRESS_SECONDS = 15.0
RESULT_FILE = 'result.json'


@dataclasses.dataclass(frozen=True)
class Task:
  """What an experiment gives the shared loop.

  The functions are pure and are traced once per member (the loop vmaps
  them); `data` and `eval_data` are NumPy arrays that the loop places on the
  device(s) once.

  Attributes:
    init: `init(key) -> (params, extra)`: the trained parameters and the
      state that is not trained by the optimizer (estimator baselines and
      control variates, running statistics).
    loss: `loss(params, extra, batch, key, step) -> (loss, (metrics,
      new_extra))`, with scalar metrics; `metrics['neg_elbo']` (or the
      experiment's main objective) is what progress lines show.
    sample_batch: `sample_batch(data, key) -> batch`, a training batch drawn
      from `data` on the device.
    data: the training data, a pytree of arrays.
    eval_batch: `eval_batch(params, extra, batch, key) -> {name: [B]}`,
      per-example metrics of one evaluation batch (a slice of `eval_data`),
      or a mapping from split to such a function.
    eval_data: `{split: pytree of arrays with a leading example axis}`, e.g.
      the validation and test images, already binarized.
    grad_variance: optional `(params, extra, batch, key, step) ->
      {'grad_var/...': scalar}`, run on `grad_var_batch` every
      `config.grad_var_every` steps.
    grad_var_batch: the fixed batch for `grad_variance`.
    finalize: optional host-side `finalize(workdir, params, extra, key)`
      after evaluation, e.g. to save pictures (unbatched member values).
    main_metric: the training metric that progress lines show.
    info: facts recorded in every member's result (e.g. which data was used).
  """
  init: Callable[[jax.Array], tuple[PyTree, PyTree]]
  loss: Callable[..., tuple[jax.Array, tuple[dict, PyTree]]]
  sample_batch: Callable[[PyTree, jax.Array], PyTree]
  data: PyTree
  eval_batch: Callable[..., dict] | Mapping[str, Callable[..., dict]]
  eval_data: Mapping[str, PyTree]
  grad_variance: Optional[Callable[..., dict]] = None
  grad_var_batch: PyTree = None
  finalize: Optional[Callable[..., None]] = None
  main_metric: str = 'neg_elbo'
  info: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def quiet_orbax_logs():
  """Drops orbax's per-save INFO lines, which would drown the progress lines."""
  logging.get_absl_logger().addFilter(
      lambda record: record.levelno >= std_logging.WARNING or 'orbax' not in record.pathname)


# ----------------------------------------------------------------------------
# Configuration.
# ----------------------------------------------------------------------------


def create_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """The optimizer of `config.optimizer`, its learning rate as data.

  `name` is 'adam' or 'sgd' (with `momentum`, 0 for none); an optional
  staircase decay multiplies the learning rate by `decay_rate` every
  `decay_steps` steps. The learning rate itself lives in the optimizer state
  (`inject_hyperparams`), so members of a sweep that differ only in it share
  one compiled program.

  Args:
    config: the experiment config.

  Returns:
    An optax transformation.
  """
  o = config.optimizer
  if o.name not in OPTIMIZERS:
    raise ValueError(f'Unknown optimizer.name={o.name!r}; allowed: {OPTIMIZERS}.')
  if not o.learning_rate > 0:
    raise ValueError(f'optimizer.learning_rate must be > 0, got {o.learning_rate!r}.')
  parts = []
  if o.name == 'adam':
    parts.append(optax.scale_by_adam())
  elif o.get('momentum', 0.0):
    parts.append(optax.trace(decay=o.momentum))
  if o.get('decay_steps', 0):
    parts.append(optax.scale_by_schedule(optax.exponential_decay(
        1.0, o.decay_steps, o.decay_rate, staircase=True)))
  parts.append(optax.inject_hyperparams(optax.scale_by_learning_rate)(
      learning_rate=o.learning_rate))
  return optax.chain(*parts)


def flatten_config(config: ml_collections.ConfigDict) -> dict:
  out = {}

  def visit(prefix, value):
    if isinstance(value, Mapping):
      for k, v in value.items():
        visit(f'{prefix}{k}.', v)
    else:
      out[prefix[:-1]] = value

  visit('', config.to_dict())
  return out


def check_group(configs: Sequence[ml_collections.ConfigDict]):
  """Raises unless the configs differ only in `MEMBER_FIELDS`."""
  first = flatten_config(configs[0])
  for config in configs[1:]:
    other = flatten_config(config)
    for key in sorted(set(first) | set(other)):
      if key not in MEMBER_FIELDS and first.get(key) != other.get(key):
        raise ValueError(
            f'Members of one compiled group may differ only in {MEMBER_FIELDS}; '
            f'they differ in {key!r} ({first.get(key)!r} vs {other.get(key)!r}).')


def check_loop_config(config: ml_collections.ConfigDict):
  """Checks the fields the loop reads; errors name the field and the value."""
  for name in ('num_train_steps', 'log_every', 'checkpoint_every'):
    if config[name] < 1:
      raise ValueError(f'{name} must be >= 1, got {config[name]}.')
  if config.checkpoint_every % config.log_every:
    raise ValueError(
        f'checkpoint_every={config.checkpoint_every} must be a multiple of '
        f'log_every={config.log_every} (checkpoints are written between compiled chunks).')
  if config.get('step_loop', 'scan') not in STEP_LOOPS:
    raise ValueError(f'step_loop={config.step_loop!r}; allowed: {STEP_LOOPS}.')
  every = config.get('grad_var_every', 0)
  if every < 0 or every % config.log_every:
    raise ValueError(f'grad_var_every={every} must be 0 (off) or a positive multiple '
                     f'of log_every={config.log_every}.')


# ----------------------------------------------------------------------------
# Members: stacking, slicing, sharding.
# ----------------------------------------------------------------------------


def _stack(trees: Sequence[PyTree]) -> PyTree:
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _member(tree: PyTree, i: int) -> PyTree:
  return jax.tree.map(lambda x: x[i], tree)


def _over_members(fn: Callable, batched: bool, in_axes) -> Callable:
  """`fn` vmapped over the leading member axis, or squeezed for one member."""
  if batched:
    return jax.vmap(fn, in_axes=in_axes)

  def single(*args):
    args = [a if ax is None else jax.tree.map(lambda x: x[0], a)
            for a, ax in zip(args, in_axes)]
    return jax.tree.map(lambda x: x[None], fn(*args))

  return single


def _member_mesh(num_members: int, devices) -> Optional[jax.sharding.Mesh]:
  if num_members < 2 or len(devices) < 2:
    return None
  return jax.sharding.Mesh(np.asarray(devices), ('members',))


def _place(tree, mesh, member_axis: bool):
  if mesh is None:
    return jax.device_put(tree)
  spec = jax.sharding.PartitionSpec('members') if member_axis else jax.sharding.PartitionSpec()
  return jax.device_put(tree, jax.sharding.NamedSharding(mesh, spec))


# ----------------------------------------------------------------------------
# The compiled programs.
# ----------------------------------------------------------------------------


class _Progress:
  """Prints a progress line at most every PROGRESS_SECONDS (a host callback).

  Called from inside the compiled chunk every few steps with member 0's
  step and training metric; the rate counts from the first call, after
  compilation.
  """

  def __init__(self, total_steps: int, label: str, metric_name: str):
    self.total_steps = total_steps
    self.label = label
    self.metric_name = metric_name
    self.first = None  # (time, step) of the first call.
    self.last_print = time.perf_counter()

  def __call__(self, step, metric):
    now = time.perf_counter()
    step = int(step)
    if self.first is None:
      self.first = (now, step)
    if now - self.last_print < PROGRESS_SECONDS:
      return
    self.last_print = now
    rate = (step - self.first[1]) / max(now - self.first[0], 1e-9)
    eta = (self.total_steps - step) / rate if rate > 0 else float('inf')
    logging.info('%sstep %d/%d  %.1f steps/s  %s %.2f  ETA %s', self.label, step,
                 self.total_steps, rate, self.metric_name, float(metric), format_duration(eta))


def format_duration(seconds: float) -> str:
  if not np.isfinite(seconds):
    return '?'
  seconds = int(round(seconds))
  if seconds >= 3600:
    return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m'
  if seconds >= 60:
    return f'{seconds // 60}m{seconds % 60:02d}s'
  return f'{seconds}s'


def make_train_chunk(task: Task, tx: optax.GradientTransformation, *,
                     batched: bool, progress: Optional[Callable] = None,
                     progress_every: int = 50, step_loop: str = 'scan'):
  """Returns `train_chunk(state, loop_keys, data, num_steps) -> (state, metrics)`.

  `state` and `loop_keys` carry a leading member axis; `metrics` holds
  `[num_steps, members]` arrays. Jitted with `num_steps` static and the state
  donated. Step t of a member uses `fold_in(loop_key, t)`. With
  `step_loop='host'` the same step is compiled alone and called `num_steps`
  times (`STEP_LOOPS`).
  """

  def train_step(state, loop_key, data):
    step = state['step']
    key_batch, key_loss = jax.random.split(jax.random.fold_in(loop_key, step))
    batch = task.sample_batch(data, key_batch)
    grad_fn = jax.value_and_grad(task.loss, has_aux=True)
    (loss, (metrics, extra)), grads = grad_fn(
        state['params'], state['extra'], batch, key_loss, step)
    updates, opt_state = tx.update(grads, state['opt_state'], state['params'])
    params = optax.apply_updates(state['params'], updates)
    metrics = {**metrics, 'loss': loss, 'grad_norm': optax.tree.norm(grads)}
    new_state = {'params': params, 'opt_state': opt_state, 'extra': extra, 'step': step + 1}
    return new_state, metrics

  step_fn = _over_members(train_step, batched, in_axes=(0, 0, None))

  def body(keys, data, state, _):
    state, metrics = step_fn(state, keys, data)
    if progress is not None:
      step = state['step'][0]
      jax.lax.cond(step % progress_every == 0,
                   lambda: jax.debug.callback(progress, step, metrics[task.main_metric][0]),
                   lambda: None)
    return state, metrics

  if resolve_step_loop(step_loop) == 'host':
    jitted_step = jax.jit(step_fn, donate_argnums=0)

    def host_chunk(state, loop_keys, data, num_steps):
      metrics = []
      for _ in range(num_steps):
        state, step_metrics = jitted_step(state, loop_keys, data)
        metrics.append(step_metrics)
        if progress is not None and len(metrics) % progress_every == 0:
          progress(state['step'][0], step_metrics[task.main_metric][0])
      return state, jax.tree.map(lambda *xs: jnp.stack(xs), *metrics)

    return host_chunk

  @functools.partial(jax.jit, static_argnames='num_steps', donate_argnames='state')
  def train_chunk(state, loop_keys, data, num_steps):
    return jax.lax.scan(functools.partial(body, loop_keys, data), state, None,
                        length=num_steps)

  return train_chunk


def resolve_step_loop(step_loop: str) -> str:
  """'scan' or 'host' for a `STEP_LOOPS` value on the default backend."""
  if step_loop not in STEP_LOOPS:
    raise ValueError(f'step_loop={step_loop!r}; allowed: {STEP_LOOPS}.')
  if step_loop == 'auto':
    return 'host' if jax.default_backend() == 'cpu' else 'scan'
  return step_loop


def evaluate(eval_fn, params, extra, examples: PyTree, keys, batch_size: int,
             label: str = '') -> list[dict]:
  """Mean per-member metrics of `eval_fn` over `examples` (partial batch included).

  Args:
    eval_fn: the member-vectorized `(params, extra, batch, key) -> {name: [M, B]}`.
    params: member-stacked parameters.
    extra: member-stacked extra state.
    examples: a pytree of arrays with a leading example axis.
    keys: `[M]` keys; batch i uses `fold_in(key, i)`.
    batch_size: the evaluation batch size.
    label: a prefix for progress lines.

  Returns:
    One dict of means per member.
  """
  n = len(jax.tree.leaves(examples)[0])
  num_members = len(keys)
  totals = [dict() for _ in range(num_members)]
  last_print = start = time.perf_counter()
  fold = jax.jit(jax.vmap(jax.random.fold_in, in_axes=(0, None)))
  for i, begin in enumerate(range(0, n, batch_size)):
    batch = jax.tree.map(lambda x: x[begin:begin + batch_size], examples)
    size = len(jax.tree.leaves(batch)[0])
    if size < batch_size:  # Pad to one compiled shape; padded rows are dropped.
      batch = jax.tree.map(
          lambda x: np.concatenate([x, np.zeros((batch_size - size,) + x.shape[1:], x.dtype)]),
          batch)
    out = jax.device_get(eval_fn(params, extra, batch, fold(keys, i)))
    for m in range(num_members):
      for k, v in out.items():
        totals[m][k] = totals[m].get(k, 0.0) + float(np.sum(v[m, :size], dtype=np.float64))
    now = time.perf_counter()
    if now - last_print >= PROGRESS_SECONDS:
      last_print = now
      done = begin + size
      logging.info('%sevaluated %d/%d examples, ETA %s', label, done, n,
                   format_duration((now - start) / done * (n - done)))
  return [{k: v / n for k, v in t.items()} for t in totals]


# ----------------------------------------------------------------------------
# The loop.
# ----------------------------------------------------------------------------


def read_result(workdir: str) -> Optional[dict]:
  """The `result.json` of a finished run, or None."""
  path = os.path.join(workdir, RESULT_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def is_finished(config: ml_collections.ConfigDict, workdir: str) -> bool:
  """Whether the run was evaluated after `num_train_steps` (more steps: not yet)."""
  result = read_result(workdir)
  return result is not None and result['step'] >= config.num_train_steps


def _write_json_atomically(path: str, value: dict):
  tmp = path + '.tmp'
  try:
    with open(tmp, 'w') as f:
      json.dump(value, f, indent=1)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except OSError as e:
    raise OSError(e.errno, f'Could not write {path}: {e.strerror or e}. Free some space (or '
                  'point --workdir elsewhere) and run again: the run is checkpointed, so only '
                  'the evaluation runs again.') from e


@functools.lru_cache(maxsize=1)
def provenance() -> dict:
  """Where a result comes from: the code's git commit, the versions, the device.

  Read once per process (a worker keeps the commit it started with).
  """
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

  def git(*args):
    try:
      return subprocess.run(['git', *args], cwd=root, capture_output=True, text=True,
                            timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
      return None

  versions = {}
  for package in ('jax', 'jaxlib', 'flax', 'optax', 'numpy'):
    try:
      versions[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      versions[package] = None
  device = jax.devices()[0]
  status = git('status', '--porcelain', '--untracked-files=no')
  return {
      'git_commit': git('rev-parse', 'HEAD'),
      'git_dirty': None if status is None else bool(status),
      'versions': versions,
      'device': f'{device.platform}:{getattr(device, "device_kind", "?")} x{jax.device_count()}',
      'host': f'{platform.machine()} {os.cpu_count()} cores',
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
  }


def _summary(metrics: dict, m: int) -> dict:
  return {f'train/{k}': float(np.mean(v[:, m])) for k, v in metrics.items()}


def run(create_task: Callable[[ml_collections.ConfigDict], Task],
        configs: Sequence[ml_collections.ConfigDict],
        workdirs: Sequence[str], *,
        on_nonfinite: str = 'raise',
        devices: Optional[Sequence[Any]] = None,
        label: str = '') -> list[dict]:
  """Trains and evaluates a group of members as one compiled program.

  Args:
    create_task: `create_task(config) -> Task` (called once, with the first
      member's config: the members share everything but `MEMBER_FIELDS`).
    configs: one config per member.
    workdirs: one workdir per member.
    on_nonfinite: 'raise' stops with `FloatingPointError` at a non-finite
      loss or gradient norm, naming the step; 'mark' (sweeps) records the
      member as diverged in its metrics and result and trains the others on.
    devices: the devices to shard members over (default: all).
    label: a prefix for log lines.

  Returns:
    Per member: `{'state': final state (None if it finished earlier),
    'result': the result dict}`.

  Raises:
    preemption.Preempted: at SIGTERM or SIGINT, after the current chunk and a
      checkpoint of every member at that step (see `experiments/preemption.py`).
  """
  with preemption.Guard(label) as guard:
    return _run(create_task, configs, workdirs, on_nonfinite=on_nonfinite, devices=devices,
                label=label, guard=guard)


KEY_USES = ('init', 'loop', 'eval', 'grad_var')


def init_members(task: Task, configs: Sequence[ml_collections.ConfigDict]
                 ) -> tuple[list[PyTree], dict[str, jax.Array]]:
  """Each member's state at step 0 and its keys, all from its own seed.

  Returns:
    `(states, keys)`: one `{params, opt_state, extra, step}` per config, and
    `{use: [M] keys}` for each of `KEY_USES`, what `run` starts from
    (benchmarks time the same program from the same start).
  """
  split = [jax.random.split(jax.random.key(c.seed), len(KEY_USES)) for c in configs]
  keys = {use: jnp.stack([k[j] for k in split]) for j, use in enumerate(KEY_USES)}
  states = []
  for i, config in enumerate(configs):
    tx = create_optimizer(config)
    params, extra = jax.jit(task.init)(keys['init'][i])
    states.append({'params': params, 'opt_state': tx.init(params), 'extra': extra,
                   'step': jnp.int32(0)})
  return states, keys


def _run(create_task, configs, workdirs, *, on_nonfinite, devices, label, guard):
  """`run` with its signal guard."""
  if on_nonfinite not in NONFINITE_POLICIES:
    raise ValueError(f'on_nonfinite={on_nonfinite!r}; allowed: {NONFINITE_POLICIES}.')
  if len(configs) != len(workdirs) or not configs:
    raise ValueError(f'Need one workdir per config, got {len(configs)} configs and '
                     f'{len(workdirs)} workdirs.')
  check_group(configs)
  for config in configs:
    check_loop_config(config)
  outputs = [{'state': None, 'result': read_result(w)} for w in workdirs]
  pending = [i for i, (c, w) in enumerate(zip(configs, workdirs)) if not is_finished(c, w)]
  for i in set(range(len(configs))) - set(pending):
    logging.info('%s%s is finished (result.json); not training it again.', label, workdirs[i])
  if not pending:
    return outputs

  configs = [configs[i] for i in pending]
  workdirs = [workdirs[i] for i in pending]
  for workdir in workdirs:
    os.makedirs(workdir, exist_ok=True)

  config = configs[0]
  wall_start = time.perf_counter()
  task = create_task(config)
  devices = list(devices or jax.devices())
  num_members = len(configs)
  mesh = _member_mesh(num_members, devices)
  # Pad the member axis to a multiple of the device count (padding is dropped).
  num_padded = num_members if mesh is None else -(-num_members // len(devices)) * len(devices)
  slots = list(range(num_members)) + [num_members - 1] * (num_padded - num_members)
  batched = num_padded > 1

  members, keys = init_members(task, [configs[i] for i in slots])
  loop_keys, eval_keys, grad_var_keys = keys['loop'], keys['eval'], keys['grad_var']
  logging.info('%sModel parameters: %d per member, %d members%s.', label,
               sum(x.size for x in jax.tree.leaves(members[0]['params'])), num_members,
               '' if mesh is None else f' sharded over {len(devices)} devices')

  managers = [checkpointing.CheckpointManager(os.path.join(w, 'checkpoints'),
                                              config.max_checkpoints_to_keep)
              for w in workdirs]
  restored = checkpointing.restore_common(managers, members[:num_members], label=label)
  if restored is not None:
    members[:num_members] = restored
    members[num_members:] = [restored[-1]] * (num_padded - num_members)
    logging.info('%sResumed from the checkpoints at step %d.', label, int(restored[0]['step']))
  for config, workdir in zip(configs, workdirs):  # After restoring: not over another config's.
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
      f.write(config.to_json_best_effort(indent=2))
  state = _place(_stack(members), mesh, member_axis=True)
  del members
  step = int(state['step'][0])
  writers = [metric_writer.MetricWriter(w, resume_step=step) for w in workdirs]
  diverged = [metric_writer.diverged_step(w) for w in workdirs]

  data = _place(task.data, mesh, member_axis=False)
  loop_keys = _place(loop_keys, mesh, member_axis=True)
  progress = _Progress(config.num_train_steps, label, task.main_metric)
  run_start, start_step = time.perf_counter(), step
  train_chunk = make_train_chunk(task, create_optimizer(config), batched=batched,
                                 progress=progress,
                                 step_loop=config.get('step_loop', 'scan'))
  grad_var_fn = None
  if task.grad_variance is not None and config.get('grad_var_every', 0):
    grad_var_fn = jax.jit(_over_members(task.grad_variance, batched, (0, 0, None, 0, 0)))
    grad_var_batch = _place(task.grad_var_batch, mesh, member_axis=False)
  saved_step = step  # The restored checkpoint (or none, at step 0).
  stop = guard.stop_requested(step)
  while step < config.num_train_steps and not stop:
    num_steps = min(config.log_every - step % config.log_every, config.num_train_steps - step)
    start = time.perf_counter()
    state, metrics = train_chunk(state, loop_keys, data, num_steps=num_steps)
    metrics = jax.device_get(metrics)
    elapsed = time.perf_counter() - start
    bad = ~np.isfinite(metrics['loss']) | ~np.isfinite(metrics['grad_norm'])  # [T, M]
    for m in range(num_members):
      if bad[:, m].any() and diverged[m] is None:
        j = int(np.argmax(bad[:, m]))
        first = step + j
        message = (f'Non-finite loss or gradient norm at step {first} in {workdirs[m]} '
                   f'(loss {metrics["loss"][j, m]}, grad norm {metrics["grad_norm"][j, m]}).')
        if on_nonfinite == 'raise':
          raise FloatingPointError(message)
        logging.warning('%s%s Marked as diverged; the other members train on.', label, message)
        diverged[m] = first
        writers[m].write(first, {'diverged': True})
    step += num_steps
    extra_metrics = [{} for _ in range(num_members)]
    if grad_var_fn is not None and step % config.grad_var_every == 0:
      gv = jax.device_get(grad_var_fn(
          state['params'], state['extra'], grad_var_batch,
          jax.vmap(jax.random.fold_in, (0, None))(grad_var_keys, step), state['step']))
      extra_metrics = [{k: float(v[m]) for k, v in gv.items()} for m in range(num_members)]
    for m in range(num_members):
      if diverged[m] is None:
        summary = _summary(metrics, m)
        summary['steps_per_sec'] = num_steps / elapsed
        summary.update(extra_metrics[m])
        writers[m].write(step, summary)
    eta = ((time.perf_counter() - run_start) / (step - start_step)
           * (config.num_train_steps - step))
    _log_chunk(label, step, config.num_train_steps, num_steps / elapsed, metrics,
               task.main_metric, num_members, eta)
    if step % config.checkpoint_every == 0 or step == config.num_train_steps:
      for m, manager in enumerate(managers):
        manager.save(step, _member(state, m))
      saved_step = step
    stop = guard.stop_requested(step)
  if stop and saved_step != step:  # Preempted between regular checkpoints.
    for m, manager in enumerate(managers):
      manager.save(step, _member(state, m))
  for manager in managers:
    manager.close()
  if stop:
    for writer in writers:
      writer.flush()
    raise guard.preempted(step, [m.directory for m in managers])

  with guard.interruptible(step):
    results = _evaluate_all(task, config, state, eval_keys, num_members, label)
  origin = {**provenance(), 'wall_seconds': round(time.perf_counter() - wall_start, 1),
            'resumed_from_step': start_step, 'members_in_program': num_members}
  for m in range(num_members):
    result = {'step': step, **results[m], **task.info, 'diverged_step': diverged[m],
              'provenance': origin}
    writers[m].write(step, {**results[m], **task.info})
    logging.info('%sresult %s: %s', label, workdirs[m], json.dumps(result))
    outputs[pending[m]] = {'state': _member(state, m), 'result': result}
    if task.finalize is not None and diverged[m] is None:
      member_state = jax.device_get(_member(state, m))
      task.finalize(workdirs[m], member_state['params'], member_state['extra'],
                    jax.random.fold_in(eval_keys[m], 2**31 - 1))
    _write_json_atomically(os.path.join(workdirs[m], RESULT_FILE), result)
  if guard.stop_requested(step):
    raise guard.preempted(step, [], finished=True)
  return outputs


def _log_chunk(label, step, total, steps_per_sec, metrics, main_metric, num_members, eta):
  values = [float(np.mean(metrics[main_metric][:, m])) for m in range(num_members)]
  shown = ' '.join(f'{v:.2f}' for v in values[:8]) + (' ...' if num_members > 8 else '')
  logging.info('%sstep %d/%d  %.1f steps/s  %s %s  ETA %s', label, step, total, steps_per_sec,
               main_metric, shown, format_duration(eta))


@functools.lru_cache(maxsize=64)
def jit_over_members(fn: Callable, batched: bool) -> Callable:
  """`eval_batch` jitted over the member axis (once per function: groups that share
  the function share its compilations); what `evaluate` takes."""
  return jax.jit(_over_members(fn, batched, (0, 0, None, 0)))


def _evaluate_all(task, config, state, eval_keys, num_members, label) -> list[dict]:
  """Evaluates every member on every split of `task.eval_data`."""
  batched = len(eval_keys) > 1
  results = [{} for _ in range(num_members)]
  for j, (split, examples) in enumerate(task.eval_data.items()):
    n = len(jax.tree.leaves(examples)[0])
    if n == 0:
      continue
    fn = task.eval_batch[split] if isinstance(task.eval_batch, Mapping) else task.eval_batch
    eval_fn = jit_over_members(fn, batched)
    start = time.perf_counter()
    keys = jax.vmap(jax.random.fold_in, (0, None))(eval_keys, j)
    means = evaluate(eval_fn, state['params'], state['extra'], examples, keys,
                     config.eval.batch_size, label=f'{label}{split}: ')
    seconds = time.perf_counter() - start
    for m in range(num_members):
      results[m].update({f'{split}/{k}': v for k, v in means[m].items()})
      results[m][f'{split}/num_examples'] = n
      results[m][f'{split}/eval_seconds'] = seconds
    logging.info('%s%s (%d examples, %.1f s): %s', label, split, n, seconds,
                 ', '.join(f'{k} {means[0][k]:.2f}' for k in sorted(means[0])))
  return results
