"""TensorBoard event files beside `metrics.jsonl`: live curves of every run.

`EventWriter` writes each metrics line (train chunk means, steps/s, tau,
gradient variances, the valid and test evaluations) as TensorBoard scalars
into the run's workdir, with tensorboardX (no TensorFlow), on disk as soon
as the line is, so `tensorboard --logdir workdirs` shows a run while it trains. On
resume it purges the steps after the restored checkpoint, as
`metric_writer.MetricWriter` drops those lines. `read_scalars` reads the
files back (with that purge), without TensorBoard.
"""

import glob
import itertools
import os
import struct
import time
import weakref
from typing import Mapping

from tensorboardX import event_file_writer
from tensorboardX import summary
from tensorboardX.proto import event_pb2
from tensorboardX.proto import summary_pb2

EVENT_FILE_GLOB = 'events.out.tfevents.*'
_UNIQUE = itertools.count()  # Two writers of one process in one second get two files.


class EventWriter:
  """Appends `{tag: number}` scalars at a step to a new event file in `workdir`.

  Synchronous (tensorboardX's `EventsWriter`, no writer thread): each `write`
  is on disk when it returns, as a metrics line is.
  """

  def __init__(self, workdir: str, resume_step: int = 0):
    earlier = glob.glob(os.path.join(workdir, EVENT_FILE_GLOB))
    self._file = event_file_writer.EventsWriter(
        os.path.join(workdir, 'events'), filename_suffix=f'.{os.getpid()}.{next(_UNIQUE)}')
    self.path = self._file._file_name  # pylint: disable=protected-access
    if earlier:
      # Steps > resume_step were written after the restored checkpoint: TensorBoard
      # hides them in the files written before this one.
      self._file.write_event(event_pb2.Event(
          wall_time=time.time(), step=resume_step + 1,
          session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))
    self._file.flush()
    self._close = weakref.finalize(self, self._file.close)  # At the latest when dropped.

  def write(self, step: int, metrics: Mapping):
    """Writes the numbers of `metrics` (not strings or bools) as scalars, and flushes."""
    values = [summary.scalar(tag, float(value)).value[0] for tag, value in metrics.items()
              if isinstance(value, (int, float)) and not isinstance(value, bool)]
    if values:
      self._file.write_event(event_pb2.Event(wall_time=time.time(), step=int(step),
                                             summary=summary_pb2.Summary(value=values)))
      self._file.flush()

  def flush(self):
    self._file.flush()

  def close(self):
    self._close()


def _records(path: str):
  """The records of a TFRecord file: [length u64][crc u32][data][crc u32]."""
  with open(path, 'rb') as f:
    while True:
      header = f.read(12)
      if len(header) < 12:
        return
      (length,) = struct.unpack('<Q', header[:8])
      data = f.read(length)
      if len(data) < length or len(f.read(4)) < 4:
        return  # Cut off mid-write.
      yield data


def read_scalars(workdir: str) -> dict[str, list[tuple[int, float]]]:
  """`{tag: [(step, value), ...]}` of the event files in `workdir`, oldest file first.

  A file that starts with a purge (a resumed run) drops the earlier files'
  values at or after its step, as TensorBoard shows them.
  """
  out: dict[str, list[tuple[int, float]]] = {}
  for path in sorted(glob.glob(os.path.join(workdir, EVENT_FILE_GLOB)), key=os.path.getmtime):
    for data in _records(path):
      event = event_pb2.Event.FromString(data)
      if event.HasField('session_log') and event.session_log.status == event.session_log.START:
        out = {tag: [(s, v) for s, v in points if s < event.step] for tag, points in out.items()}
      for value in event.summary.value:
        out.setdefault(value.tag, []).append((event.step, value.simple_value))
  return out

