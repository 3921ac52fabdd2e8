"""Evaluation of a group's members: per-example metrics, batched, averaged."""

import functools
import time
from typing import Any, Callable, TYPE_CHECKING

from absl import logging
import jax
import numpy as np

from experiments import members
from experiments import programs
from experiments import progress

if TYPE_CHECKING:
  from experiments import training  # pylint: disable=g-bad-import-order

PyTree = Any


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
    if now - last_print >= progress.PROGRESS_SECONDS:
      last_print = now
      done = begin + size
      logging.info('%sevaluated %d/%d examples, ETA %s', label, done, n,
                   progress.format_duration(progress.eta_seconds(now - start, done, n)))
  return [{k: v / n for k, v in t.items()} for t in totals]


@functools.lru_cache(maxsize=64)
def jit_over_members(fn: Callable, batched: bool) -> Callable:
  """`eval_batch` jitted over the member axis, what `evaluate` takes.

  Cached by the function object: callers holding the same `fn` share its
  compilations (the loop shares by `programs.program_key` where it has one).
  """
  return jax.jit(members.over_members(fn, batched, (0, 0, None, 0)))


def compile_eval(group: 'training.Group') -> dict[str, Callable]:
  """`{split: eval_batch jitted over the member axis}`, what `evaluate` takes.

  Shared by groups with the same `programs.program_key` (without one, by
  function object: `jit_over_members`); splits with the same function share one.
  """
  task, compiled = group.task, {}
  key = programs.program_key(group)
  for split, fn in task.eval_batch.items():
    same = [s for s in compiled if task.eval_batch[s] is fn]
    if same:
      compiled[split] = compiled[same[0]]
    elif key is None:
      compiled[split] = jit_over_members(fn, group.batched)
    else:
      compiled[split] = programs.shared(
          ('eval', key, split),
          lambda fn=fn: jax.jit(members.over_members(fn, group.batched, (0, 0, None, 0))))
  return compiled


def evaluate_group(group: 'training.Group') -> list[dict]:
  """Every member's `{split/metric: mean}` on every non-empty split of `task.eval_data`."""
  task, config, label = group.task, group.config, group.label
  compiled = compile_eval(group)
  results = [{} for _ in range(group.num_members)]
  for j, (split, examples) in enumerate(task.eval_data.items()):
    n = len(jax.tree.leaves(examples)[0])
    if n == 0:
      continue
    start = time.perf_counter()
    keys = jax.vmap(jax.random.fold_in, (0, None))(group.keys['eval'], j)
    means = evaluate(compiled[split], group.state['params'], group.state['extra'], examples,
                     keys, config.eval.batch_size, label=f'{label}{split}: ')
    seconds = time.perf_counter() - start
    for m in range(group.num_members):
      results[m].update({f'{split}/{k}': v for k, v in means[m].items()})
      results[m][f'{split}/num_examples'] = n
      results[m][f'{split}/eval_seconds'] = seconds
    logging.info('%s%s (%d examples, %.1f s): %s', label, split, n, seconds,
                 ', '.join(f'{k} {means[0][k]:.2f}' for k in sorted(means[0])))
  return results
