"""Stopping training cleanly at SIGTERM and SIGINT (cluster preemption, Ctrl-C).

`Guard` is a context manager around the training loop of `training.run`. While
it is active, SIGTERM (what cluster schedulers send before they preempt a job)
and SIGINT (Ctrl-C) only set a flag: the loop finishes the compiled chunk it
is running, saves a checkpoint of every member at that step, flushes the
metrics and raises `Preempted`, whose `exit_status` (128 + the signal number:
143 for SIGTERM, 130 for SIGINT, as shells report a process killed by that
signal) `experiments/main.py` exits with. During evaluation there is nothing
left to save (the training is checkpointed), so a signal stops at once and
the next start evaluates again. The previous handlers come back when the
guard exits. A second SIGINT while stopping raises `KeyboardInterrupt` at
once (the rerun resumes from the newest checkpoint).

With several processes (`jax.process_count() > 1`) every process must stop
at the same step, so `stop_requested` is a collective: the flags are combined
with `multihost_utils.process_allgather`, and where jax.distributed's
preemption service runs (it owns SIGTERM then, so the guard leaves SIGTERM to
it) `multihost_utils.reached_preemption_sync_point` is asked for every step id,
as its protocol requires. That agreement is tested with two CPU processes on
one machine (tests/faults_test.py); the training loop itself has only been
run as a single process.
"""

import contextlib
import signal
import threading
from typing import Optional, Sequence

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(Exception):
  """Training stopped at a signal; rerunning the same command resumes it.

  Attributes:
    signum: the signal that stopped the run.
    step: the step of the checkpoints it saved (or restored) last.
    exit_status: 128 + signum (143 for SIGTERM, 130 for SIGINT).
  """

  def __init__(self, message: str, signum: int, step: int):
    super().__init__(message)
    self.signum = signum
    self.step = step
    self.exit_status = 128 + signum


def _name(signum: int) -> str:
  return signal.Signals(signum).name


class Guard:
  """Turns SIGTERM and SIGINT into a request to stop between compiled chunks."""

  def __init__(self, label: str = ''):
    self.label = label
    self.signum: Optional[int] = None  # The signal that requested the stop.
    self._previous = {}
    self._interruptible = False
    self._multiprocess = jax.process_count() > 1
    self._sync_service = self._multiprocess and jax.config.jax_enable_preemption_service
    self._last_step_id = None
    self._step = None  # The step being evaluated.

  def __enter__(self) -> 'Guard':
    if threading.current_thread() is not threading.main_thread():
      logging.warning('%sNot in the main thread: SIGTERM and SIGINT are not caught, so a '
                      'signal stops the run without saving.', self.label)
      return self
    for signum in SIGNALS:
      if signum == signal.SIGTERM and self._sync_service:
        continue  # jax.distributed's preemption notifier listens for it.
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous = {}
    return False

  def _handle(self, signum, frame):
    del frame
    if self._interruptible:
      self.signum = signum
      raise self.preempted(self._step, (), evaluating=True)
    if self.signum is not None:
      if signum == signal.SIGINT:
        logging.warning('%sSecond signal (SIGINT): stopping now without saving; a rerun '
                        'resumes from the newest checkpoint.', self.label)
        raise KeyboardInterrupt
      logging.warning('%s%s again: already stopping after the current chunk.', self.label,
                      _name(signum))
      return
    self.signum = signum
    logging.warning('%sReceived %s: finishing the current chunk of steps, then saving a '
                    'checkpoint and stopping.', self.label, _name(signum))

  def stop_requested(self, step: int) -> bool:
    """Whether to stop at `step`; every process gets the same answer.

    Call it at the same points in every process: before the first chunk and
    after each chunk, with the step reached.
    """
    if not self._multiprocess:
      return self.signum is not None
    agreed = int(np.max(multihost_utils.process_allgather(np.int32(self.signum or 0))))
    if self._sync_service:
      # The protocol stops at (the largest step id any process has reported) + 1,
      # so it must see every step id.
      first = step if self._last_step_id is None else self._last_step_id + 1
      reached = False
      for step_id in range(first, step + 1):
        reached |= multihost_utils.reached_preemption_sync_point(step_id)
      self._last_step_id = max(step, first - 1)
      if reached:
        agreed = agreed or int(signal.SIGTERM)
    if agreed:
      self.signum = agreed
    return bool(agreed)

  @contextlib.contextmanager
  def interruptible(self, step: int):
    """Within it (evaluation: nothing to save) a signal raises `Preempted` at once."""
    self._step = step
    if self.signum is not None:
      raise self.preempted(step, (), evaluating=True)
    self._interruptible = True
    try:
      yield
    finally:
      self._interruptible = False

  def preempted(self, step: int, checkpoint_dirs: Sequence[str], *,
                evaluating: bool = False, finished: bool = False) -> Preempted:
    """Logs the line that says what was kept and how to resume; returns the exception."""
    name = _name(self.signum)
    status = 128 + self.signum
    if evaluating:
      what = (f'during the evaluation at step {step}: the training is checkpointed (no '
              'result.json yet); rerun the same command to evaluate again')
    elif finished:
      what = (f'after the run finished (result.json written at step {step}); '
              'a rerun skips it')
    elif step == 0:
      what = 'before the first step: nothing to save; rerun the same command to start'
    else:
      shown = ', '.join(f'{d}/{step}' for d in checkpoint_dirs[:3])
      more = f' and {len(checkpoint_dirs) - 3} more' if len(checkpoint_dirs) > 3 else ''
      what = (f'at step {step}: saved the checkpoint of every run at that step ({shown}{more}) '
              f'and flushed the metrics; rerun the same command to resume from step {step}')
    message = f'{self.label}Stopped by {name} {what}. Exit status {status}.'
    logging.warning(message)
    return Preempted(message, self.signum, step)
