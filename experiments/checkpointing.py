"""Orbax checkpoints that survive damage: fall back, set aside, never delete.

`CheckpointManager` wraps `orbax.checkpoint.CheckpointManager` for one run.
`restore_common` restores every member of a group at the newest step that all
of them can restore: a checkpoint that fails to restore is logged with the
reason and moved aside into `checkpoints_damaged/` next to `checkpoints/`
(never deleted), and the next older one is tried. Checkpoints of a member
that are newer than the step the group resumes from are moved there too (the
group trains those steps again and saves them anew; orbax refuses to save a
step that exists). When none restores, the error names the folders and says
how to start fresh. An intact checkpoint of another model (a changed config
pointed at an old workdir) is not damage: `ModelMismatchError` says so and
moves nothing.
"""

import datetime
import errno
import os
import shutil
from typing import Any, Optional, Sequence

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

PyTree = Any
DAMAGED_DIR = 'checkpoints_damaged'


class CheckpointError(RuntimeError):
  """No checkpoint of a run could be restored, or one could not be saved."""


class ModelMismatchError(CheckpointError):
  """An intact checkpoint holds arrays of other shapes: another config wrote it."""


class CheckpointManager:
  """Saves and restores `{params, opt_state, extra, step}` of one run."""

  def __init__(self, directory: str, max_to_keep: int):
    self.directory = os.path.abspath(directory)
    self._max_to_keep = max_to_keep
    self._manager = self._open()

  def _open(self) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=self._max_to_keep))

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def restore(self, step: int, target: PyTree) -> PyTree:
    """The state at `step`; `ModelMismatchError` when it holds another model."""
    path = os.path.join(self.directory, str(step))
    if os.path.isdir(path) and not os.listdir(path):
      raise CheckpointError(f'{path} is an empty folder')
    try:
      return self._manager.restore(step, args=ocp.args.StandardRestore(target))
    except Exception as e:
      difference = _model_difference(path, target)
      if difference:
        raise ModelMismatchError(
            f'The checkpoint {path} is intact but holds another model than this config '
            f'({difference}): the workdir {os.path.dirname(self.directory)} belongs to another '
            'config (see its config.json). Nothing was moved. Use a new --workdir for this '
            'config, or rerun with the config that wrote it.') from e
      raise

  def set_aside(self, step: int, reason: str, what: str = 'cannot be restored') -> str:
    """Moves checkpoint `step` into checkpoints_damaged/ and says so."""
    source = os.path.join(self.directory, str(step))
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    target_dir = os.path.join(os.path.dirname(self.directory), DAMAGED_DIR)
    os.makedirs(target_dir, exist_ok=True)
    target = os.path.join(target_dir, f'{step}-{stamp}')
    self._manager.close()
    shutil.move(source, target)
    self._manager = self._open()
    logging.warning('Checkpoint %s %s (%s). Moved it to %s (not deleted).',
                    source, what, reason, target)
    return target

  def save(self, step: int, state: PyTree):
    """Saves `state` at `step`; a full disk raises an error naming the path."""
    try:
      # force: orbax's own save policy would skip a step silently (one not after
      # its latest, e.g. a preemption checkpoint next to a regular one).
      if not self._manager.save(step, args=ocp.args.StandardSave(state), force=True):
        raise CheckpointError(f'Orbax did not save step {step} in {self.directory}.')
      self._manager.wait_until_finished()
    except OSError as e:
      raise _save_error(self.directory, step, e) from e
    except Exception as e:  # Orbax wraps errors of its writer threads.
      cause = _os_error_cause(e)
      if cause is None:
        raise
      raise _save_error(self.directory, step, cause) from e

  def close(self):
    self._manager.wait_until_finished()
    self._manager.close()


def _leaf_specs(tree: PyTree) -> dict[str, tuple]:
  """`{'params.encoder.dense_0.kernel': (shape, dtype)}` of a state or its metadata."""
  def name(key):
    for attr in ('key', 'idx', 'name'):
      if hasattr(key, attr):
        return str(getattr(key, attr))
    return str(key)
  return {'.'.join(name(k) for k in path): (tuple(leaf.shape), np.dtype(leaf.dtype).name)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _model_difference(path: str, target: PyTree) -> Optional[str]:
  """How the arrays stored at `path` differ from `target`'s; None if alike or unreadable."""
  try:
    metadata = ocp.StandardCheckpointer().metadata(os.path.join(path, 'default'))
    stored = _leaf_specs(metadata.item_metadata)
  except Exception:  # pylint: disable=broad-except
    stored = None
  if not stored:
    return None  # Unreadable metadata: damage, not another model.
  expected = _leaf_specs(target)
  if sorted(stored.values()) == sorted(expected.values()):
    return None
  show = lambda spec: 'absent' if spec is None else f'{spec[1]}{list(spec[0])}'
  for key in sorted(set(stored) | set(expected), key=lambda k: (not k.startswith('params'), k)):
    if stored.get(key) != expected.get(key):
      return f'{key}: stored {show(stored.get(key))}, this config {show(expected.get(key))}'
  return 'the arrays differ in shape or dtype'


def _os_error_cause(e: BaseException) -> Optional[OSError]:
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError):
      return e
    if 'No space left on device' in str(e):
      return OSError(errno.ENOSPC, str(e))
    e = e.__cause__ or e.__context__
  return None


def _save_error(directory: str, step: int, e: OSError) -> CheckpointError:
  what = 'the disk is full' if e.errno == errno.ENOSPC else f'{e.strerror or e}'
  return CheckpointError(
      f'Could not save the checkpoint of step {step} in {directory}: {what} ({e}). '
      'The previous checkpoints there are untouched and a rerun resumes from the newest one; '
      'free some space (or point --workdir elsewhere) and run again.')


def restore_common(managers: Sequence[CheckpointManager], targets: Sequence[PyTree],
                   label: str = '') -> Optional[list[PyTree]]:
  """Restores every run at the newest step that all of them can restore.

  Args:
    managers: one per run.
    targets: one abstract or concrete state per run (the restore target).
    label: a prefix for log lines.

  Returns:
    The restored states, or None when no run has a checkpoint.

  Raises:
    CheckpointError: checkpoints exist but none restores for all runs.
  """
  if not any(m.all_steps() for m in managers):
    return None
  tried = []
  while True:
    common = set.intersection(*(set(m.all_steps()) for m in managers))
    if not common:
      break
    step = max(common)
    states = []
    for manager, target in zip(managers, targets):
      try:
        states.append(manager.restore(step, target))
      except ModelMismatchError:
        raise
      except Exception as e:  # pylint: disable=broad-except
        reason = f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}'[:300]
        tried.append(f'{manager.directory}/{step} ({reason})')
        manager.set_aside(step, reason)
        break
    else:
      if tried:
        logging.warning('%sResuming from the older checkpoint at step %d.', label, step)
      for manager in managers:  # Trained again from `step`, and saved anew.
        for newer in [s for s in manager.all_steps() if s > step]:
          manager.set_aside(newer, f'the group resumes from step {step}',
                            what='is newer than the step every run of the group restores')
      return states
  remaining = sorted(m.directory for m in managers if m.all_steps())
  folders = sorted(m.directory for m in managers)
  where = f'; damaged ones were moved to {DAMAGED_DIR}/ beside them: {tried}' if tried else ''
  if remaining:
    raise CheckpointError(
        f'{label}No checkpoint step restores for every run in {folders}{where}; '
        f'{remaining} still hold checkpoints of other steps. To start fresh, move those '
        'checkpoints folders (and metrics.jsonl, result.json) out of the workdirs and run again.')
  raise CheckpointError(
      f'{label}No checkpoint in {folders} could be restored{where}. '
      'To start fresh, run the same command again: it finds no checkpoint and starts at step 0 '
      f'(older metrics lines are dropped). To recover instead, copy intact checkpoints back '
      f'into {folders[0] if len(folders) == 1 else "those folders"} first.')
