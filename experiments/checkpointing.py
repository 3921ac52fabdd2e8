"""Orbax checkpoints that survive damage: fall back, set aside, never delete.

`CheckpointManager` wraps `orbax.checkpoint.CheckpointManager` for one run.
`restore_common` restores every member of a group at the newest step that all
of them can restore: a checkpoint that fails to restore is logged with the
reason and moved aside into `checkpoints_damaged/` next to `checkpoints/`
(never deleted), and the next older one is tried. When none restores, the
error names the folders and says how to start fresh.
"""

import datetime
import errno
import os
import shutil
from typing import Any, Optional, Sequence

from absl import logging
import orbax.checkpoint as ocp

PyTree = Any
DAMAGED_DIR = 'checkpoints_damaged'


class CheckpointError(RuntimeError):
  """No checkpoint of a run could be restored, or one could not be saved."""


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
    return self._manager.restore(step, args=ocp.args.StandardRestore(target))

  def set_aside(self, step: int, reason: str) -> str:
    """Moves checkpoint `step` into checkpoints_damaged/ and says so."""
    source = os.path.join(self.directory, str(step))
    stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    target_dir = os.path.join(os.path.dirname(self.directory), DAMAGED_DIR)
    os.makedirs(target_dir, exist_ok=True)
    target = os.path.join(target_dir, f'{step}-{stamp}')
    self._manager.close()
    shutil.move(source, target)
    self._manager = self._open()
    logging.warning('Checkpoint %s cannot be restored (%s). Moved it to %s (not deleted); '
                    'trying an older one.', source, reason, target)
    return target

  def save(self, step: int, state: PyTree):
    """Saves `state` at `step`; a full disk raises an error naming the path."""
    try:
      self._manager.save(step, args=ocp.args.StandardSave(state))
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
      except Exception as e:  # pylint: disable=broad-except
        reason = f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}'[:300]
        tried.append(f'{manager.directory}/{step} ({reason})')
        manager.set_aside(step, reason)
        break
    else:
      if tried:
        logging.warning('%sResuming from the older checkpoint at step %d.', label, step)
      return states
  folders = sorted({m.directory for m in managers if m.all_steps()} |
                   {m.directory for m in managers})
  raise CheckpointError(
      f'{label}No checkpoint could be restored for every run in {folders}'
      + (f'; damaged ones were moved to {DAMAGED_DIR}/: {tried}' if tried else
         '; the runs have no checkpoint step in common')
      + '. To start fresh, move or delete those checkpoints folders (and metrics.jsonl) '
      'and run again.')
