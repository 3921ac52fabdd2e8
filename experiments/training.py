"""The training loop that every experiment and every sweep shares.

An experiment describes one run as a `Task`: pure functions (init, loss,
batch sampling, evaluation) and its data. `run` trains a group of runs that
differ only in `MEMBER_FIELDS` (seed, learning rate) as one compiled program:
the state of every member carries a leading member axis, the training step is
`jax.vmap`ed over it, and with several devices that axis is sharded across
them with `jax.sharding` (`experiments/members.py`). A single run is a group
of one.

`run` checks the configs (`experiments/loop_config.py`), skips the members that are finished
(`run_files.is_finished`), creates the task and then runs three parts, each
public (benchmarks time the loop's own program from the loop's own start):

* `prepare`: pads the member axis to a multiple of the device count,
  initializes every member from its seed (`init_members`), restores the
  newest checkpoint that every member can restore, writes `config.json` and
  places the stacked state on the devices: a `Group`.
* `train`: chunks of `config.log_every` steps, each one compiled call
  (`programs.make_train_chunk`); between chunks the NaN guard
  (`check_finite`), metrics lines, one progress line (the chunk's mean of
  the main metric, steps/s and the ETA: `experiments/progress.py`),
  checkpoints, and at SIGTERM or SIGINT a checkpoint of every member at the
  step reached and `preemption.Preempted` (see `experiments/preemption.py`).
* `finish`: every split of the evaluation data
  (`experiments/evaluation.py`), the last metrics line, `result.json` and
  the task's `finalize`.

Groups made by `run` from the same `create_task` and configs that agree but
in `MEMBER_FIELDS` share compiled programs (`programs.program_key`).

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

import dataclasses
import json
import os
import time
from typing import Any, Callable, Mapping, Optional, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import checkpointing
from experiments import evaluation
from experiments import loop_config
from experiments import members
from experiments import metric_writer
from experiments import optimizer
from experiments import preemption
from experiments import programs
from experiments import progress
from experiments import run_files
from experiments import workdir_lock

PyTree = Any
# What each member's seed is split into (`init_members`).
KEY_USES = ('init', 'loop', 'eval', 'grad_var')


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
      the step (e.g. which examples are its labelled ones).
    data: the training data, a pytree of arrays.
    eval_batch: `{split: eval_batch(params, extra, batch, key) -> {name: [B]}}`,
      per-example metrics of one evaluation batch (a slice of
      `eval_data[split]`), one function per split of `eval_data`.
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
  sample_batch: Callable[[PyTree, jax.Array, PyTree], PyTree]
  data: PyTree
  eval_batch: Mapping[str, Callable[..., dict]]
  eval_data: Mapping[str, PyTree]
  grad_variance: Optional[Callable[..., dict]] = None
  grad_var_batch: PyTree = None
  finalize: Optional[Callable[..., None]] = None
  main_metric: str = 'neg_elbo'
  info: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if not isinstance(self.eval_batch, Mapping):
      raise TypeError(f'Task.eval_batch must map each split of eval_data to its function, '
                      f'got {self.eval_batch!r}.')
    missing = [split for split in self.eval_data if split not in self.eval_batch]
    if missing:
      raise ValueError(f'Task.eval_batch has no function for the eval_data splits {missing}.')


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
    tx = optimizer.create_optimizer(config)
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
    create_task: the function that made `task` from the first config, or
      None: what the compiled programs are shared by (`programs.program_key`).
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
  create_task: Optional[Callable[[ml_collections.ConfigDict], Task]] = None

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
    return members.member(self.state, m)

  def place(self, tree: PyTree, member_axis: bool = False) -> PyTree:
    """`tree` on the group's devices: sharded over its member axis, or replicated."""
    return members.place(tree, self.mesh, member_axis)


def prepare(task: Task, configs: Sequence[ml_collections.ConfigDict],
            workdirs: Sequence[str] = (), *, devices: Optional[Sequence[Any]] = None,
            batched: Optional[bool] = None, label: str = '',
            create_task: Optional[Callable[[ml_collections.ConfigDict], Task]] = None
            ) -> Group:
  """Pads, initializes, restores and places a group of members (the start of `run`).

  Args:
    task: the members' task (created from the first config).
    configs: one config per member, all of one group (`loop_config.check_group`).
    workdirs: one per member: the members resume from the newest checkpoint
      that all of them restore, and get `config.json` and their metrics
      files. Empty: nothing is read or written (benchmarks).
    devices: the devices to shard members over (default: all).
    batched: whether the programs vmap over the member axis; default: when
      the padded axis holds more than one member.
    label: a prefix for log lines.
    create_task: the function that made `task` from `configs[0]` (`run`
      passes it): groups made by the same one from configs that agree but in
      `MEMBER_FIELDS` share compiled programs. None: nothing is shared.

  Returns:
    The group, at step 0 or at the restored step.
  """
  devices = list(devices or jax.devices())
  mesh = members.member_mesh(len(configs), devices)
  slots = members.padded_slots(len(configs), mesh)
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
  state = members.place(members.stack(states), mesh, member_axis=True)
  step = int(state['step'][0])
  return Group(
      task=task, configs=list(configs), state=state,
      keys={**keys, 'loop': members.place(keys['loop'], mesh, member_axis=True)},
      data=members.place(task.data, mesh, member_axis=False), mesh=mesh,
      batched=len(slots) > 1 if batched is None else batched, step=step, start_step=step,
      label=label, workdirs=list(workdirs), checkpoints=checkpoints,
      writers=[metric_writer.MetricWriter(w, resume_step=step) for w in workdirs],
      diverged=[metric_writer.diverged_step(w) for w in workdirs], create_task=create_task)


def _restore(checkpoints, states: list[PyTree], num_members: int, label: str) -> list[PyTree]:
  """`states` with the members' newest common checkpoint restored (padding copied), if any."""
  restored = checkpointing.restore_common(checkpoints, states[:num_members], label=label)
  if restored is None:
    return states
  logging.info('%sResumed from the checkpoints at step %d.', label, int(restored[0]['step']))
  return restored + [restored[-1]] * (len(states) - num_members)


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
  chunk = programs.compile_train_chunk(group)
  grad_var = programs.compile_grad_var(group)
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
    _log_chunk(group, num_steps, steps_per_sec, metrics, progress.eta_seconds(
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
               group.step - num_steps + 1, group.step, progress.format_duration(eta))


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
    results = evaluation.evaluate_group(group)
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
  loop_config.check_run(configs, workdirs, on_nonfinite)
  with workdir_lock.hold_all(workdirs), preemption.Guard(label) as guard:
    outputs, pending = _skip_finished(configs, workdirs, label)
    if not pending:
      return outputs
    started = time.perf_counter()
    run_files.provenance()  # Read (and cached) now: the commit that trains, not the one at the end.
    group = prepare(create_task(configs[pending[0]]), [configs[i] for i in pending],
                    [workdirs[i] for i in pending], devices=devices, label=label,
                    create_task=create_task)
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
