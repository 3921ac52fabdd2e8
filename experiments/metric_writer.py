"""Writes metrics as one JSON line per logging step into the workdir."""

import json
import os


class MetricWriter:
  """Appends `{"step": ..., **metrics}` lines to `workdir/metrics.jsonl`.

  On resume, lines of steps after `resume_step` (written after the last
  checkpoint by a killed run) are dropped, so the file matches the run.
  """

  def __init__(self, workdir: str, resume_step: int = 0):
    self.path = os.path.join(workdir, 'metrics.jsonl')
    if os.path.exists(self.path):
      with open(self.path) as f:
        lines = [l for l in f if l.strip()]
      kept = [l for l in lines if json.loads(l)['step'] <= resume_step]
      if len(kept) != len(lines):
        with open(self.path, 'w') as f:
          f.writelines(kept)

  def write(self, step: int, metrics: dict):
    with open(self.path, 'a') as f:
      f.write(json.dumps({'step': int(step), **metrics}) + '\n')


def read_metrics(workdir: str) -> list[dict]:
  """Reads back the lines of `workdir/metrics.jsonl`."""
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(l) for l in f if l.strip()]
