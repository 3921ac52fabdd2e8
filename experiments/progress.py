"""Progress lines with the time left, for the loop, the evaluation and the sweeps."""

import logging as std_logging
import time
from typing import Callable, Optional

from absl import logging
import numpy as np

PROGRESS_SECONDS = 15.0


def quiet_orbax_logs():
  """Drops orbax's per-save INFO lines, which would drown the progress lines."""
  logging.get_absl_logger().addFilter(
      lambda record: record.levelno >= std_logging.WARNING or 'orbax' not in record.pathname)


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


class Progress:
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


class Forward:
  """A host callback that calls whatever `target` is now (a shared chunk's progress)."""

  def __init__(self):
    self.target: Optional[Callable] = None

  def __call__(self, *args):
    if self.target is not None:
      self.target(*args)
