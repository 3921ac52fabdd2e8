"""The compiled programs of a group: training chunks and gradient variances.

`make_train_chunk` compiles `config.log_every` steps of every member into one
call (`jax.lax.scan`, or a host loop over one compiled step on a CPU:
`loop_config.STEP_LOOPS`). Groups share these programs (and their
evaluations) through a process-wide cache whose key the loop derives from
what determines a program (`program_key`): the function that created the
group's task, the config without `MEMBER_FIELDS`, whether the programs vmap
over members, and the shapes and dtypes of the arrays the task was given.
Groups not created by `training.run` from a `create_task` share nothing.
"""

import collections
import functools
import time
from typing import Any, Callable, Optional, TYPE_CHECKING

import jax
import jax.numpy as jnp
import optax

from experiments import loop_config
from experiments import members
from experiments import optimizer
from experiments import progress as progress_lib

if TYPE_CHECKING:
  from experiments import training  # pylint: disable=g-bad-import-order

PyTree = Any


def make_train_chunk(task: 'training.Task', tx: optax.GradientTransformation, *,
                     batched: bool, progress: Optional[Callable] = None,
                     progress_every: int = 50, step_loop: str = 'scan'):
  """Returns `train_chunk(state, loop_keys, data, num_steps) -> (state, metrics)`.

  `state` and `loop_keys` carry a leading member axis; `metrics` holds
  `[num_steps, members]` arrays. Jitted with `num_steps` static and the state
  donated. Step t of a member uses `fold_in(loop_key, t)`, split into the
  keys of `sample_batch` and `loss`. With `step_loop='host'` the same step is
  compiled alone and called `num_steps` times (`loop_config.STEP_LOOPS`).
  `progress` (optional) is called with member 0's step and main metric every
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

  step_fn = members.over_members(train_step, batched, in_axes=(0, 0, None))
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
  """'scan' or 'host' for a `loop_config.STEP_LOOPS` value on the default backend."""
  if step_loop not in loop_config.STEP_LOOPS:
    raise ValueError(f'step_loop={step_loop!r}; allowed: {loop_config.STEP_LOOPS}.')
  if step_loop == 'auto':
    return 'host' if jax.default_backend() == 'cpu' else 'scan'
  return step_loop


# Compiled programs shared between groups, by `program_key` and the kind of
# program; least recently used dropped first.
_PROGRAMS: collections.OrderedDict = collections.OrderedDict()
_MAX_PROGRAMS = 32


def _signature(tree: PyTree) -> tuple:
  """The structure, shapes and dtypes of `tree`'s arrays (what a trace depends on)."""
  leaves, treedef = jax.tree.flatten(tree)
  return treedef, tuple((tuple(jnp.shape(x)), str(jnp.result_type(x))) for x in leaves)


def program_key(group: 'training.Group') -> Optional[tuple]:
  """What determines the group's compiled programs; None when they are not shared.

  The task's functions are those `group.create_task` makes from the config,
  and a config's members differ only in data (`MEMBER_FIELDS`), so two groups
  with the same `create_task`, the same `config_key` and arrays of the same
  shapes and dtypes compile the same programs.
  """
  if group.create_task is None:
    return None
  task = group.task
  return (group.create_task, loop_config.config_key(group.config), group.batched,
          _signature((task.data, task.eval_data, task.grad_var_batch)))


def shared(key: Optional[tuple], build: Callable[[], Any]) -> Any:
  """`build()`, or what it returned for the same `key` before (None: never shared)."""
  if key is None:
    return build()
  if key not in _PROGRAMS:
    _PROGRAMS[key] = build()
    while len(_PROGRAMS) > _MAX_PROGRAMS:
      _PROGRAMS.popitem(last=False)
  _PROGRAMS.move_to_end(key)
  return _PROGRAMS[key]


def compile_train_chunk(group: 'training.Group',
                        progress: Optional[Callable] = None) -> Callable:
  """The group's `make_train_chunk`, shared by groups with the same `program_key`.

  Args:
    group: the group.
    progress: called with member 0's step and main metric every 50 steps
      inside the chunk (`progress.Progress`: a line at most every
      `PROGRESS_SECONDS`).
  """
  task, config = group.task, group.config
  step_loop = config.get('step_loop', 'scan')
  key = program_key(group)
  key = None if key is None else ('train', key, resolve_step_loop(step_loop))

  def build():
    forward = progress_lib.Forward()  # One callback in the program; each group aims it.
    return forward, make_train_chunk(task, optimizer.create_optimizer(config),
                                     batched=group.batched, progress=forward, step_loop=step_loop)

  forward, chunk = shared(key, build)
  forward.target = progress
  return chunk


def chunk_timer(group: 'training.Group', num_steps: int) -> Callable[[], tuple[float, dict]]:
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


def compile_grad_var(group: 'training.Group') -> Optional[Callable[[PyTree, int], list[dict]]]:
  """`grad_var(state, step) -> [{'grad_var/...': float}] per member`, or None when off."""
  task = group.task
  if task.grad_variance is None or not group.config.get('grad_var_every', 0):
    return None
  key = program_key(group)
  key = None if key is None else ('grad_var', key)
  fn = shared(key, lambda: jax.jit(
      members.over_members(task.grad_variance, group.batched, (0, 0, None, 0, 0))))
  batch = group.place(task.grad_var_batch)
  fold = jax.vmap(jax.random.fold_in, (0, None))

  def grad_var(state, step):
    gv = jax.device_get(fn(state['params'], state['extra'], batch,
                           fold(group.keys['grad_var'], step), state['step']))
    return [{k: float(v[m]) for k, v in gv.items()} for m in range(group.num_members)]

  return grad_var
