"""Writes metrics as one JSON line per logging step into the workdir."""

import errno
import json
import os
from typing import Optional

from absl import logging

from experiments import tensorboard_events


def _parse(path: str) -> tuple[list[dict], list[int]]:
  """The readable lines of a metrics file, and the numbers of the unreadable ones.

  A line cut off mid-write (a killed process, a full disk) does not parse;
  it is dropped with a warning rather than failing the run or the reader.
  """
  records, bad = [], []
  with open(path, errors='replace') as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
        if not isinstance(record, dict) or 'step' not in record:
          raise ValueError('not a metrics record')
      except ValueError:
        bad.append(number)
        continue
      records.append(record)
  if bad:
    logging.warning('%s: dropped %d unreadable line(s) (%s), e.g. cut off mid-write.',
                    path, len(bad), ', '.join(map(str, bad[:5])))
  return records, bad


class MetricWriter:
  """Appends `{"step": ..., **metrics}` lines to `workdir/metrics.jsonl`.

  On resume, lines of steps after `resume_step` (written after the last
  checkpoint by a killed run) and unreadable lines are dropped, so the file
  matches the run. The same numbers go to TensorBoard event files in
  `workdir` (`tensorboard_events.EventWriter`), for live curves.
  """

  def __init__(self, workdir: str, resume_step: int = 0):
    self.path = os.path.join(workdir, 'metrics.jsonl')
    self.events = tensorboard_events.EventWriter(workdir, resume_step)
    if os.path.exists(self.path):
      records, bad = _parse(self.path)
      kept = [r for r in records if r['step'] <= resume_step]
      if bad or len(kept) != len(records):
        tmp = self.path + '.tmp'
        try:
          with open(tmp, 'w') as f:
            f.writelines(json.dumps(r) + '\n' for r in kept)
          os.replace(tmp, self.path)
        except OSError as e:
          raise _write_error(tmp, e) from e

  def write(self, step: int, metrics: dict):
    try:
      with open(self.path, 'a') as f:
        f.write(json.dumps({'step': int(step), **metrics}) + '\n')
    except OSError as e:
      raise _write_error(self.path, e) from e
    try:
      self.events.write(step, metrics)
    except OSError as e:
      raise _write_error(self.events.path, e) from e

  def flush(self):
    """Makes the lines written so far durable (fsync), e.g. before a preempted job exits."""
    if os.path.exists(self.path):
      with open(self.path, 'a') as f:
        os.fsync(f.fileno())
    self.events.flush()

  def close(self):
    """Closes the event file; the metrics file is closed after each line."""
    self.events.close()


def _write_error(path: str, e: OSError) -> OSError:
  what = 'the disk is full' if e.errno == errno.ENOSPC else (e.strerror or str(e))
  return OSError(e.errno, f'Could not write {path}: {what}. Free some space (or point --workdir '
                 'elsewhere) and run again: the run resumes from its newest checkpoint, and a '
                 'line cut off here is dropped with a warning.')


def read_metrics(workdir: str) -> list[dict]:
  """Reads back the lines of `workdir/metrics.jsonl` (unreadable ones dropped)."""
  return _parse(os.path.join(workdir, 'metrics.jsonl'))[0]


def diverged_step(workdir: str) -> Optional[int]:
  """The step at which a run was marked diverged, or None."""
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return None
  for record in _parse(path)[0]:
    if record.get('diverged'):
      return record['step']
  return None
