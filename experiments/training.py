"""The training loop that every experiment and every sweep shares.

An experiment describes one run as a `Task`: pure functions (init, loss,
batch sampling, evaluation) and its data. `run` trains a group of runs that
differ only in `MEMBER_FIELDS` (seed, learning rate) as one compiled program:
the state of every member carries a leading member axis, the training step is
`jax.vmap`ed over it, and with several devices that axis is sharded across
them with `jax.sharding`. A single run is a group of one.

`run` checks the configs, skips the members that are finished
(`run_files.is_finished`), creates the task and then runs three parts, each
public (benchmarks time the loop's own program from the loop's own start):

* `prepare`: pads the member axis to a multiple of the device count,
  initializes every member from its seed (`init_members`), restores the
  newest checkpoint that every member can restore, writes `config.json` and
  places the stacked state on the devices: a `Group`.
* `train`: chunks of `config.log_every` steps, each one compiled call
  (`make_train_chunk`); between chunks the NaN guard (`check_finite`),
  metrics lines, one progress line (the chunk's mean of the main metric,
  steps/s and the ETA: `eta_seconds`), checkpoints, and at SIGTERM or SIGINT
  a checkpoint of every member at the step reached and
  `preemption.Preempted` (see `experiments/preemption.py`).
* `finish`: every split of the evaluation data (`evaluate`), the last
  metrics line, `result.json` and the task's `finalize`.

Groups share compiled programs only where their tasks say they may
(`Task.program_key`, `Task.eval_key`).

Every member is the run you would get alone: its keys come from its own seed
(`fold_in(loop_key, step)` per step), its learning rate is data in its
optimizer state (`optax.inject_hyperparams`), and it writes ordinary run
outputs into its own workdir: `config.json`, `metrics.jsonl` (one JSON line
per logging step), orbax checkpoints of `{params, opt_state, extra, step}`
and, once trained and evaluated, `result.json` (the run folder's files are
`experiments/run_files.py`). A member whose `result.json` exists is never
trained again; the others resume from their newest checkpoint that restores.
A run holds its workdirs' locks (`experiments/workdir_lock.py`): one live
process per workdir.
"""

import collections
import dataclasses
import functools
import inspect
import json
import logging as std_logging
import os
import time
from typing import Any, Callable, Hashable, Mapping, Optional, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from experiments import checkpointing
from experiments import metric_writer
from experiments import preemption
from experiments import run_files
from experiments import workdir_lock

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
# What each member's seed is split into (`init_members`).
KEY_USES = ('init', 'loop', 'eval', 'grad_var')

# The run folder's files, kept here under their old names for callers of this module.
RESULT_FILE = run_files.RESULT_FILE
read_result = run_files.read_result
is_finished = run_files.is_finished
is_finished_result = run_files.is_finished_result
provenance = run_files.provenance


@dataclasses.dataclass(frozen=True)
class Task:
  """What an experiment gives the shared loop.

  The functions are pure and are traced once per member (the loop vmaps
  them); `data` and `eval_data` are NumPy arrays that the loop places on the
  device(s) once.

  Attributes:
    init: `init(key) -> (params, extra)`: the trained parameters and the
      state that is not trained by the optimizer (estimator baselines and
      control variates, running statistics, a member's own data choices).
    loss: `loss(params, extra, batch, key, step) -> (loss, (metrics,
      new_extra))`, with scalar metrics; `metrics[main_metric]` is what
      progress lines show.
    sample_batch: `sample_batch(data, key, extra) -> batch`, a training batch
      drawn from `data` on the device; `extra` is the member's state before
      the step (e.g. which examples are its labelled ones). A function of
      `(data, key)` alone is accepted too: it is adapted to take (and ignore)
      `extra`.
    data: the training data, a pytree of arrays.
    eval_batch: `{split: eval_batch(params, extra, batch, key) -> {name: [B]}}`,
      per-example metrics of one evaluation batch (a slice of
      `eval_data[split]`). A single function is accepted too: it becomes the
      function of every split.
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
    program_key: hashable, or None: what determines the compiled training
      programs (`loss`, `sample_batch`, `grad_variance`, `main_metric`)
      besides the shapes of their inputs, which the loop handles itself (as
      it does the optimizer, the member count and the step loop). Groups
      whose tasks have the same key train with one compilation (the first
      task's functions); None (the default): nothing is shared. A key that
      misses something the functions close over (a hyperparameter, the data
      size) gives wrong numbers, so build it from the config (`config_key`).
    eval_key: the same for the evaluation functions (`eval_batch`), which
      often depend on less (the model, not the estimator or the loss
      weights). None (the default): shared only where `eval_batch` holds
      the very same function objects (`jit_over_members`).
  """
  init: Callable[[jax.Array], tuple[PyTree, PyTree]]
  loss: Callable[..., tuple[jax.Array, tuple[dict, PyTree]]]
  sample_batch: Callable[[PyTree, jax.Array, PyTree], PyTree]
  data: PyTree
  eval_batch: Mapping[str, Callable[..., dict]]
  eval_data: Mapping[str, PyTree]
  grad_variance: Optional[Callable[..., dict]] = None
  grad_var_batch: PyTree = None
  finalize: Optional[Callable[..., None]] = None
  main_metric: str = 'neg_elbo'
  info: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  program_key: Optional[Hashable] = None
  eval_key: Optional[Hashable] = None

  def __post_init__(self):
    if not isinstance(self.eval_batch, Mapping):  # One function for every split.
      object.__setattr__(self, 'eval_batch', {split: self.eval_batch for split in self.eval_data})
    missing = [split for split in self.eval_data if split not in self.eval_batch]
    if missing:
      raise ValueError(f'Task.eval_batch has no function for the eval_data splits {missing}.')
    if not _takes_member_state(self.sample_batch):
      object.__setattr__(self, 'sample_batch', _ignoring_member_state(self.sample_batch))
    for name in ('program_key', 'eval_key'):
      try:
        hash(getattr(self, name))
      except TypeError as e:
        raise TypeError(f'Task.{name} must be hashable, got {getattr(self, name)!r}.') from e


def _takes_member_state(fn: Callable) -> bool:
  """Whether `fn` can be called as `fn(data, key, extra)`."""
  try:
    signature = inspect.signature(fn)
  except (TypeError, ValueError):  # No signature to read: take the documented one.
    return True
  try:
    signature.bind(None, None, None)
  except TypeError:
    return False
  return True


def _ignoring_member_state(sample_batch: Callable) -> Callable:
  """`sample_batch(data, key)` as `(data, key, extra=None) -> batch`."""

  def sample(data, key, extra=None):
    del extra
    return sample_batch(data, key)

  return sample


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
  """`{'optimizer.learning_rate': 0.001, ...}`: every leaf of `config` by its dotted name."""
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


def check_run(configs: Sequence[ml_collections.ConfigDict], workdirs: Sequence[str],
              on_nonfinite: str):
  """Checks the arguments of `run`: one workdir per config, one group, the loop's fields."""
  if on_nonfinite not in NONFINITE_POLICIES:
    raise ValueError(f'on_nonfinite={on_nonfinite!r}; allowed: {NONFINITE_POLICIES}.')
  if len(configs) != len(workdirs) or not configs:
    raise ValueError(f'Need one workdir per config, got {len(configs)} configs and '
                     f'{len(workdirs)} workdirs.')
  check_group(configs)
  for config in configs:
    check_loop_config(config)


def config_key(config: ml_collections.ConfigDict) -> tuple:
  """`config` without `MEMBER_FIELDS`, hashable: the same for every member of a group.

  What a task's `program_key` can be built from (with whatever else its
  functions close over, e.g. the size of the data).
  """
  return tuple(sorted((k, repr(v)) for k, v in flatten_config(config).items()
                      if k not in MEMBER_FIELDS))


def _optimizer_key(config: ml_collections.ConfigDict) -> tuple:
  """What of `config.optimizer` is code (everything but the learning rate, which is data)."""
  return tuple(sorted((k, repr(v)) for k, v in flatten_config(config.optimizer).items()
                      if k != 'learning_rate'))


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


def _padded_slots(num_members: int, mesh) -> list[int]:
  """Which member fills each slot of the member axis, padded to a multiple of the devices.

  The padding repeats the last member; its results are dropped.
  """
  num_devices = 1 if mesh is None else mesh.devices.size
  num_padded = -(-num_members // num_devices) * num_devices
  return list(range(num_members)) + [num_members - 1] * (num_padded - num_members)


# ----------------------------------------------------------------------------
# Progress and time left.
# ----------------------------------------------------------------------------


def eta_seconds(elapsed: float, done: float, total: float) -> float:
  """Seconds left at the rate so far: `elapsed / done * (total - done)`; inf before any is done.

  Args:
    elapsed: seconds spent on the `done` units.
    done: units (steps, examples, groups) finished in `elapsed`.
    total: units in all, counted from the same start as `done`.
  """
  if done <= 0:
    return float('inf')
  return elapsed / done * (total - done)


def format_duration(seconds: float) -> str:
  """'45s', '12m05s', '3h20m'; '?' for an unknown (infinite or NaN) duration."""
  if not np.isfinite(seconds):
    return '?'
  seconds = int(round(seconds))
  if seconds >= 3600:
    return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m'
  if seconds >= 60:
    return f'{seconds // 60}m{seconds % 60:02d}s'
  return f'{seconds}s'


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
    elapsed, done = max(now - self.first[0], 1e-9), step - self.first[1]
    eta = eta_seconds(elapsed, done, self.total_steps - self.first[1])
    logging.info('%sstep %d/%d  %.1f steps/s  %s %.2f  ETA %s', self.label, step,
                 self.total_steps, done / elapsed, self.metric_name, float(metric),
                 format_duration(eta))


class _Forward:
  """A host callback that calls whatever `target` is now (a shared chunk's progress)."""

  def __init__(self):
    self.target: Optional[Callable] = None

  def __call__(self, *args):
    if self.target is not None:
      self.target(*args)


# ----------------------------------------------------------------------------
# The compiled programs.
# ----------------------------------------------------------------------------


def make_train_chunk(task: Task, tx: optax.GradientTransformation, *,
                     batched: bool, progress: Optional[Callable] = None,
                     progress_every: int = 50, step_loop: str = 'scan'):
  """Returns `train_chunk(state, loop_keys, data, num_steps) -> (state, metrics)`.

  `state` and `loop_keys` carry a leading member axis; `metrics` holds
  `[num_steps, members]` arrays. Jitted with `num_steps` static and the state
  donated. Step t of a member uses `fold_in(loop_key, t)`, split into the
  keys of `sample_batch` and `loss`. With `step_loop='host'` the same step is
  compiled alone and called `num_steps` times (`STEP_LOOPS`). `progress`
  (optional) is called with member 0's step and main metric every
  `progress_every` steps.
  """

  def train_step(state, loop_key, data):
    step = state['step']
    key_batch, key_loss = jax.random.split(jax.random.fold_in(loop_key, step))
    batch = task.sample_batch(data, key_batch, state['extra'])
    grad_fn = jax.value_and_grad(task.loss, has_aux=True)
    (loss, (metrics, extra)), grads = grad_fn(
        state['params'], state['extra'], batch, key_loss, step)
    updates, opt_state = tx.update(grads, state['opt_state'], state['params'])
    params = optax.apply_updates(state['params'], updates)
    metrics = {**metrics, 'loss': loss, 'grad_norm': optax.tree.norm(grads)}
    new_state = {'params': params, 'opt_state': opt_state, 'extra': extra, 'step': step + 1}
    return new_state, metrics

  step_fn = _over_members(train_step, batched, in_axes=(0, 0, None))
  if resolve_step_loop(step_loop) == 'host':
    return _host_chunk(step_fn, progress, progress_every, task.main_metric)

  def body(keys, data, state, _):
    state, metrics = step_fn(state, keys, data)
    if progress is not None:
      step = state['step'][0]
      jax.lax.cond(step % progress_every == 0,
                   lambda: jax.debug.callback(progress, step, metrics[task.main_metric][0]),
                   lambda: None)
    return state, metrics

  @functools.partial(jax.jit, static_argnames='num_steps', donate_argnames='state')
  def train_chunk(state, loop_keys, data, num_steps):
    return jax.lax.scan(functools.partial(body, loop_keys, data), state, None,
                        length=num_steps)

  return train_chunk


def _host_chunk(step_fn, progress, progress_every: int, main_metric: str):
  """`train_chunk` as a host loop over one jitted step (`step_loop='host'`)."""
  jitted_step = jax.jit(step_fn, donate_argnums=0)

  def host_chunk(state, loop_keys, data, num_steps):
    metrics = []
    for _ in range(num_steps):
      state, step_metrics = jitted_step(state, loop_keys, data)
      metrics.append(step_metrics)
      if progress is not None and len(metrics) % progress_every == 0:
        progress(state['step'][0], step_metrics[main_metric][0])
    return state, jax.tree.map(lambda *xs: jnp.stack(xs), *metrics)

  return host_chunk


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
                   format_duration(eta_seconds(now - start, done, n)))
  return [{k: v / n for k, v in t.items()} for t in totals]


@functools.lru_cache(maxsize=64)
def jit_over_members(fn: Callable, batched: bool) -> Callable:
  """`eval_batch` jitted over the member axis, what `evaluate` takes.

  Cached by the function object: callers holding the same `fn` share its
  compilations (the loop shares by `Task.eval_key` where a task has one).
  """
  return jax.jit(_over_members(fn, batched, (0, 0, None, 0)))


# Compiled programs shared between groups, by the task's program_key or eval_key
# and what the loop adds (the kind of program, vmapped or not, ...); least recently
# used dropped first.
_PROGRAMS: collections.OrderedDict = collections.OrderedDict()
_MAX_PROGRAMS = 32


def _shared(key: Optional[tuple], build: Callable[[], Any]) -> Any:
  """`build()`, or what it returned for the same `key` before (None: never shared)."""
  if key is None:
    return build()
  if key not in _PROGRAMS:
    _PROGRAMS[key] = build()
    while len(_PROGRAMS) > _MAX_PROGRAMS:
      _PROGRAMS.popitem(last=False)
  _PROGRAMS.move_to_end(key)
  return _PROGRAMS[key]


# ----------------------------------------------------------------------------
# A group of members: prepare, train, finish.
# ----------------------------------------------------------------------------


def init_members(task: Task, configs: Sequence[ml_collections.ConfigDict]
                 ) -> tuple[list[PyTree], dict[str, jax.Array]]:
  """Each member's state at step 0 and its keys, all from its own seed.

  Returns:
    `(states, keys)`: one `{params, opt_state, extra, step}` per config, and
    `{use: [M] keys}` for each of `KEY_USES`, what `prepare` starts from.
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


@dataclasses.dataclass
class Group:
  """Members on their devices: what `prepare` returns, `train` advances, `finish` ends.

  The member axis of `state` and `keys` has `len(configs)` members, then the
  padding (copies of the last member) up to a multiple of the device count.

  Attributes:
    task: the members' task.
    configs: one config per member (they differ only in `MEMBER_FIELDS`).
    state: `{params, opt_state, extra, step}`, stacked over the member axis,
      on the devices (sharded over them with several).
    keys: `{use: [padded members] keys}` for each of `KEY_USES`; 'loop'
      placed like `state`.
    data: `task.data` on the devices.
    mesh: the member axis' device mesh, or None (one device or one member).
    batched: whether the programs vmap over the member axis (else they
      squeeze a group of one).
    step: the step `state` is at.
    start_step: the step the group started or resumed from.
    label: a prefix for log lines.
    workdirs: one workdir per member; empty for a group that reads and
      writes no files (benchmarks), which `train` and `finish` do not take.
    checkpoints: one `checkpointing.CheckpointManager` per workdir.
    writers: one `metric_writer.MetricWriter` per workdir.
    diverged: per workdir, the step at which the member was marked
      diverged, or None.
  """
  task: Task
  configs: list[ml_collections.ConfigDict]
  state: PyTree
  keys: dict[str, jax.Array]
  data: PyTree
  mesh: Optional[jax.sharding.Mesh]
  batched: bool
  step: int
  start_step: int
  label: str = ''
  workdirs: list[str] = dataclasses.field(default_factory=list)
  checkpoints: list[checkpointing.CheckpointManager] = dataclasses.field(default_factory=list)
  writers: list[metric_writer.MetricWriter] = dataclasses.field(default_factory=list)
  diverged: list[Optional[int]] = dataclasses.field(default_factory=list)

  @property
  def config(self) -> ml_collections.ConfigDict:
    """The first member's config: every field but `MEMBER_FIELDS` holds for all."""
    return self.configs[0]

  @property
  def num_members(self) -> int:
    """Members without the padding."""
    return len(self.configs)

  def member(self, m: int) -> PyTree:
    """Member m's state (still on the devices)."""
    return _member(self.state, m)

  def place(self, tree: PyTree, member_axis: bool = False) -> PyTree:
    """`tree` on the group's devices: sharded over its member axis, or replicated."""
    return _place(tree, self.mesh, member_axis)


def prepare(task: Task, configs: Sequence[ml_collections.ConfigDict],
            workdirs: Sequence[str] = (), *, devices: Optional[Sequence[Any]] = None,
            batched: Optional[bool] = None, label: str = '') -> Group:
  """Pads, initializes, restores and places a group of members (the start of `run`).

  Args:
    task: the members' task (created from the first config).
    configs: one config per member, all of one group (`check_group`).
    workdirs: one per member: the members resume from the newest checkpoint
      that all of them restore, and get `config.json` and their metrics
      files. Empty: nothing is read or written (benchmarks).
    devices: the devices to shard members over (default: all).
    batched: whether the programs vmap over the member axis; default: when
      the padded axis holds more than one member.
    label: a prefix for log lines.

  Returns:
    The group, at step 0 or at the restored step.
  """
  devices = list(devices or jax.devices())
  mesh = _member_mesh(len(configs), devices)
  slots = _padded_slots(len(configs), mesh)
  if batched is False and len(slots) > 1:
    raise ValueError(f'batched=False needs a group of one member, got {len(slots)}.')
  states, keys = init_members(task, [configs[i] for i in slots])
  logging.info('%sModel parameters: %d per member, %d members%s.', label,
               sum(x.size for x in jax.tree.leaves(states[0]['params'])), len(configs),
               '' if mesh is None else f' sharded over {len(devices)} devices')
  checkpoints = []
  for workdir in workdirs:
    os.makedirs(workdir, exist_ok=True)
    checkpoints.append(checkpointing.CheckpointManager(
        os.path.join(workdir, 'checkpoints'), configs[0].max_checkpoints_to_keep))
  if workdirs:
    states = _restore(checkpoints, states, len(configs), label)
    for config, workdir in zip(configs, workdirs):  # After restoring: not over another config's.
      run_files.write_config(workdir, config)
  state = _place(_stack(states), mesh, member_axis=True)
  step = int(state['step'][0])
  return Group(
      task=task, configs=list(configs), state=state,
      keys={**keys, 'loop': _place(keys['loop'], mesh, member_axis=True)},
      data=_place(task.data, mesh, member_axis=False), mesh=mesh,
      batched=len(slots) > 1 if batched is None else batched, step=step, start_step=step,
      label=label, workdirs=list(workdirs), checkpoints=checkpoints,
      writers=[metric_writer.MetricWriter(w, resume_step=step) for w in workdirs],
      diverged=[metric_writer.diverged_step(w) for w in workdirs])


def _restore(checkpoints, states: list[PyTree], num_members: int, label: str) -> list[PyTree]:
  """`states` with the members' newest common checkpoint restored (padding copied), if any."""
  restored = checkpointing.restore_common(checkpoints, states[:num_members], label=label)
  if restored is None:
    return states
  logging.info('%sResumed from the checkpoints at step %d.', label, int(restored[0]['step']))
  return restored + [restored[-1]] * (len(states) - num_members)


def compile_train_chunk(group: Group, progress: Optional[Callable] = None) -> Callable:
  """The group's `make_train_chunk`, shared by groups with the same `Task.program_key`.

  Args:
    group: the group.
    progress: called with member 0's step and main metric every 50 steps
      inside the chunk (`_Progress`: a line at most every PROGRESS_SECONDS).
  """
  task, config = group.task, group.config
  step_loop = config.get('step_loop', 'scan')
  key = None if task.program_key is None else (
      'train', task.program_key, group.batched, resolve_step_loop(step_loop),
      _optimizer_key(config), task.main_metric)

  def build():
    forward = _Forward()  # The same callback in the program; each group points it at its own.
    return forward, make_train_chunk(task, create_optimizer(config), batched=group.batched,
                                     progress=forward, step_loop=step_loop)

  forward, chunk = _shared(key, build)
  forward.target = progress
  return chunk


def chunk_timer(group: Group, num_steps: int) -> Callable[[], tuple[float, dict]]:
  """`run() -> (seconds, metrics)`: `num_steps` steps of the group's compiled chunk.

  Each call advances `group.state` and waits for the result, so the seconds
  are the program's own (the first call includes compilation). What the
  benchmarks and `reproduce_table1 --estimate` time: the loop's own program
  from the loop's own start (`prepare`).
  """
  train_chunk = compile_train_chunk(group)

  def run():
    start = time.perf_counter()
    group.state, metrics = train_chunk(group.state, group.keys['loop'], group.data,
                                       num_steps=num_steps)
    jax.block_until_ready((group.state, metrics))
    return time.perf_counter() - start, metrics

  return run


def compile_grad_var(group: Group) -> Optional[Callable[[PyTree, int], list[dict]]]:
  """`grad_var(state, step) -> [{'grad_var/...': float}] per member`, or None when off."""
  task = group.task
  if task.grad_variance is None or not group.config.get('grad_var_every', 0):
    return None
  key = None if task.program_key is None else ('grad_var', task.program_key, group.batched)
  fn = _shared(key, lambda: jax.jit(
      _over_members(task.grad_variance, group.batched, (0, 0, None, 0, 0))))
  batch = group.place(task.grad_var_batch)
  fold = jax.vmap(jax.random.fold_in, (0, None))

  def grad_var(state, step):
    gv = jax.device_get(fn(state['params'], state['extra'], batch,
                           fold(group.keys['grad_var'], step), state['step']))
    return [{k: float(v[m]) for k, v in gv.items()} for m in range(group.num_members)]

  return grad_var


def compile_eval(group: Group) -> dict[str, Callable]:
  """`{split: eval_batch jitted over the member axis}`, what `evaluate` takes.

  Shared by groups with the same `Task.eval_key` (without one, by function
  object: `jit_over_members`); splits with the same function share one.
  """
  task, programs = group.task, {}
  for split, fn in task.eval_batch.items():
    same = [s for s in programs if task.eval_batch[s] is fn]
    if same:
      programs[split] = programs[same[0]]
    elif task.eval_key is None:
      programs[split] = jit_over_members(fn, group.batched)
    else:
      programs[split] = _shared(('eval', task.eval_key, split, group.batched),
                                lambda fn=fn: jax.jit(_over_members(fn, group.batched,
                                                                    (0, 0, None, 0))))
  return programs


def train(group: Group, guard: preemption.Guard, *, on_nonfinite: str = 'raise') -> int:
  """Trains the group to `num_train_steps`, a chunk of `log_every` steps per compiled call.

  Between chunks: the NaN guard (`check_finite`), metrics lines, a progress
  line, a checkpoint every `checkpoint_every` steps and at the end.

  Returns:
    The step reached (`num_train_steps`).

  Raises:
    preemption.Preempted: at SIGTERM or SIGINT (`guard`), after the current
      chunk and a checkpoint of every member at that step.
  """
  config = group.config
  # One progress line per chunk (`_log_chunk`), from the chunk's metrics: no
  # host callback inside it, whose last values would interleave with the means.
  chunk = compile_train_chunk(group)
  grad_var = compile_grad_var(group)
  saved, run_start = group.step, time.perf_counter()  # The restored checkpoint (or none).
  stop = guard.stop_requested(group.step)
  while group.step < config.num_train_steps and not stop:
    step = group.step
    num_steps = min(config.log_every - step % config.log_every, config.num_train_steps - step)
    start = time.perf_counter()
    group.state, metrics = chunk(group.state, group.keys['loop'], group.data,
                                 num_steps=num_steps)
    metrics = jax.device_get(metrics)
    steps_per_sec = num_steps / (time.perf_counter() - start)
    check_finite(group, metrics, on_nonfinite)
    group.step = step = step + num_steps
    extra = ([{}] * group.num_members if grad_var is None or step % config.grad_var_every
             else grad_var(group.state, step))
    _write_metrics(group, metrics, steps_per_sec, extra)
    _log_chunk(group, num_steps, steps_per_sec, metrics, eta_seconds(
        time.perf_counter() - run_start, step - group.start_step,
        config.num_train_steps - group.start_step))
    if step % config.checkpoint_every == 0 or step == config.num_train_steps:
      saved = _save(group)
    stop = guard.stop_requested(step)
  _stop_or_close(group, guard, stop, saved)
  return group.step


def check_finite(group: Group, metrics: dict, on_nonfinite: str = 'raise'):
  """The NaN guard over a chunk's `[T, M]` metrics, which start at `group.step`.

  A member whose loss or gradient norm is not finite raises
  `FloatingPointError` naming the step ('raise'), or is marked diverged in
  its metrics (and later its result) while the others train on ('mark').
  """
  bad = ~np.isfinite(metrics['loss']) | ~np.isfinite(metrics['grad_norm'])  # [T, M]
  for m in range(group.num_members):
    if bad[:, m].any() and group.diverged[m] is None:
      j = int(np.argmax(bad[:, m]))
      first = group.step + j
      message = (f'Non-finite loss or gradient norm at step {first} in {group.workdirs[m]} '
                 f'(loss {metrics["loss"][j, m]}, grad norm {metrics["grad_norm"][j, m]}).')
      if on_nonfinite == 'raise':
        raise FloatingPointError(message)
      logging.warning('%s%s Marked as diverged; the other members train on.', group.label,
                      message)
      group.diverged[m] = first
      group.writers[m].write(first, {'diverged': True})


def _summary(metrics: dict, m: int) -> dict:
  return {f'train/{k}': float(np.mean(v[:, m])) for k, v in metrics.items()}


def _write_metrics(group: Group, metrics: dict, steps_per_sec: float, extra: list[dict]):
  """One metrics line per member that has not diverged: chunk means, steps/s, `extra`."""
  for m in range(group.num_members):
    if group.diverged[m] is None:
      summary = _summary(metrics, m)
      summary['steps_per_sec'] = steps_per_sec
      summary.update(extra[m])
      group.writers[m].write(group.step, summary)


def _log_chunk(group: Group, num_steps: int, steps_per_sec: float, metrics: dict, eta: float):
  """The chunk's progress line: the mean of the main metric over its steps, as metrics.jsonl."""
  main_metric, n = group.task.main_metric, group.num_members
  values = [float(np.mean(metrics[main_metric][:, m])) for m in range(n)]
  shown = ' '.join(f'{v:.2f}' for v in values[:8]) + (' ...' if n > 8 else '')
  logging.info('%sstep %d/%d  %.1f steps/s  %s %s (mean over steps %d-%d)  ETA %s', group.label,
               group.step, group.config.num_train_steps, steps_per_sec, main_metric, shown,
               group.step - num_steps + 1, group.step, format_duration(eta))


def _save(group: Group) -> int:
  """Saves every member's checkpoint at the group's step; returns the step."""
  for m, manager in enumerate(group.checkpoints):
    manager.save(group.step, group.member(m))
  return group.step


def _stop_or_close(group: Group, guard: preemption.Guard, stop: bool, saved: int):
  """Closes the checkpoints; when stopped by a signal, saves, flushes and raises `Preempted`."""
  if stop and saved != group.step:  # Preempted between regular checkpoints.
    _save(group)
  for manager in group.checkpoints:
    manager.close()
  if stop:
    for writer in group.writers:
      writer.flush()
    raise guard.preempted(group.step, [m.directory for m in group.checkpoints])


def evaluate_group(group: Group) -> list[dict]:
  """Every member's `{split/metric: mean}` on every non-empty split of `task.eval_data`."""
  task, config, label = group.task, group.config, group.label
  programs = compile_eval(group)
  results = [{} for _ in range(group.num_members)]
  for j, (split, examples) in enumerate(task.eval_data.items()):
    n = len(jax.tree.leaves(examples)[0])
    if n == 0:
      continue
    start = time.perf_counter()
    keys = jax.vmap(jax.random.fold_in, (0, None))(group.keys['eval'], j)
    means = evaluate(programs[split], group.state['params'], group.state['extra'], examples,
                     keys, config.eval.batch_size, label=f'{label}{split}: ')
    seconds = time.perf_counter() - start
    for m in range(group.num_members):
      results[m].update({f'{split}/{k}': v for k, v in means[m].items()})
      results[m][f'{split}/num_examples'] = n
      results[m][f'{split}/eval_seconds'] = seconds
    logging.info('%s%s (%d examples, %.1f s): %s', label, split, n, seconds,
                 ', '.join(f'{k} {means[0][k]:.2f}' for k in sorted(means[0])))
  return results


def finish(group: Group, guard: preemption.Guard, started: float) -> list[dict]:
  """Evaluates the trained group and writes each member's results (the end of `run`).

  Per member: the evaluation as the last metrics line, `result.json` (with
  `provenance()`), and the task's `finalize` unless the member diverged.

  Args:
    group: the trained group.
    guard: the signal guard; a signal during evaluation stops at once.
    started: `time.perf_counter()` when the group's work began (wall time).

  Returns:
    Per member: `{'state': its final state, 'result': its result dict}`.
  """
  with guard.interruptible(group.step):
    results = evaluate_group(group)
  task = group.task
  origin = {**run_files.provenance(), 'wall_seconds': round(time.perf_counter() - started, 1),
            'resumed_from_step': group.start_step, 'members_in_program': group.num_members}
  outputs = []
  for m, workdir in enumerate(group.workdirs):
    result = {'step': group.step, **results[m], **task.info, 'diverged_step': group.diverged[m],
              'provenance': origin}
    group.writers[m].write(group.step, {**results[m], **task.info})
    logging.info('%sresult %s: %s', group.label, workdir, json.dumps(result))
    outputs.append({'state': group.member(m), 'result': result})
    if task.finalize is not None and group.diverged[m] is None:
      member_state = jax.device_get(group.member(m))
      task.finalize(workdir, member_state['params'], member_state['extra'],
                    jax.random.fold_in(group.keys['eval'][m], 2**31 - 1))
    run_files.write_result(workdir, result)
  if guard.stop_requested(group.step):
    raise guard.preempted(group.step, [], finished=True)
  return outputs


# ----------------------------------------------------------------------------
# The loop.
# ----------------------------------------------------------------------------


def run(create_task: Callable[[ml_collections.ConfigDict], Task],
        configs: Sequence[ml_collections.ConfigDict],
        workdirs: Sequence[str], *,
        on_nonfinite: str = 'raise',
        devices: Optional[Sequence[Any]] = None,
        label: str = '') -> list[dict]:
  """Trains and evaluates a group of members as one compiled program.

  Args:
    create_task: `create_task(config) -> Task` (called once, with the first
      unfinished member's config: the members share everything but
      `MEMBER_FIELDS`).
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
  check_run(configs, workdirs, on_nonfinite)
  with workdir_lock.hold_all(workdirs), preemption.Guard(label) as guard:
    outputs, pending = _skip_finished(configs, workdirs, label)
    if not pending:
      return outputs
    started = time.perf_counter()
    group = prepare(create_task(configs[pending[0]]), [configs[i] for i in pending],
                    [workdirs[i] for i in pending], devices=devices, label=label)
    train(group, guard, on_nonfinite=on_nonfinite)
    for i, output in zip(pending, finish(group, guard, started)):
      outputs[i] = output
  return outputs


def _skip_finished(configs, workdirs, label: str) -> tuple[list[dict], list[int]]:
  """`run`'s outputs of the finished members (the others' come later), and the others."""
  results = [run_files.read_result(w) for w in workdirs]
  pending = []
  for i, (config, workdir, result) in enumerate(zip(configs, workdirs, results)):
    if run_files.is_finished_result(config, result):
      logging.info('%s%s is finished (result.json); not training it again.', label, workdir)
    else:
      pending.append(i)
  return [{'state': None, 'result': r} for r in results], pending
