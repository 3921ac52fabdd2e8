"""The files of a run folder that say what a run is and whether it is done.

Every run (a single run, or one member of a sweep) writes into its own
workdir: `config.json` (the config, written when training starts), orbax
checkpoints (`experiments/checkpointing.py`), `metrics.jsonl`
(`experiments/metric_writer.py`) and, once trained and evaluated,
`result.json`: the final metrics, the step, and `provenance()` (commit,
versions, device, wall time). A run is finished when its `result.json` is of
`num_train_steps` or more (`is_finished`); finished runs are never trained
again. `result.json` is written atomically (a temporary file, fsync, rename),
so a killed process leaves the old one or the new one, never half of one.
"""

import functools
import importlib.metadata
import json
import os
import platform
import subprocess
from typing import Optional

import jax
import ml_collections

CONFIG_FILE = 'config.json'
RESULT_FILE = 'result.json'


def write_config(workdir: str, config: ml_collections.ConfigDict):
  """Writes `config.json` (what a user reruns the member from)."""
  with open(os.path.join(workdir, CONFIG_FILE), 'w') as f:
    f.write(config.to_json_best_effort(indent=2))


def _read_json(path: str) -> Optional[dict]:
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def read_config(workdir: str) -> Optional[dict]:
  """The `config.json` of a run as a dict, or None when there is none."""
  return _read_json(os.path.join(workdir, CONFIG_FILE))


def read_result(workdir: str) -> Optional[dict]:
  """The `result.json` of a finished run, or None."""
  return _read_json(os.path.join(workdir, RESULT_FILE))


def is_finished_result(config: ml_collections.ConfigDict, result: Optional[dict]) -> bool:
  """Whether `result` (a `result.json`, or None) ends a run of `config`.

  A run evaluated before `config.num_train_steps` (a config asking for more
  steps than the run had) is not finished: it trains on from its checkpoint.
  """
  return result is not None and result['step'] >= config.num_train_steps


def is_finished(config: ml_collections.ConfigDict, workdir: str) -> bool:
  """Whether the run in `workdir` was evaluated after `num_train_steps` (more steps: not yet)."""
  return is_finished_result(config, read_result(workdir))


def write_result(workdir: str, result: dict):
  """Writes `result.json` atomically: from then on the run counts as finished."""
  write_json_atomically(os.path.join(workdir, RESULT_FILE), result)


def write_json_atomically(path: str, value: dict):
  """Writes `value` to `path` through a fsynced temporary file; errors name the file."""
  tmp = path + '.tmp'
  try:
    with open(tmp, 'w') as f:
      json.dump(value, f, indent=1)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except OSError as e:
    raise OSError(e.errno, f'Could not write {path}: {e.strerror or e}. Free some space (or '
                  'point --workdir elsewhere) and run again: the run is checkpointed, so only '
                  'the evaluation runs again.') from e


@functools.lru_cache(maxsize=1)
def provenance() -> dict:
  """Where a result comes from: the code's git commit, the versions, the device.

  Read once per process (a worker keeps the commit it started with).
  """
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

  def git(*args):
    try:
      return subprocess.run(['git', *args], cwd=root, capture_output=True, text=True,
                            timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
      return None

  versions = {}
  for package in ('jax', 'jaxlib', 'flax', 'optax', 'numpy'):
    try:
      versions[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      versions[package] = None
  device = jax.devices()[0]
  status = git('status', '--porcelain', '--untracked-files=no')
  return {
      'git_commit': git('rev-parse', 'HEAD'),
      'git_dirty': None if status is None else bool(status),
      'versions': versions,
      'device': f'{device.platform}:{getattr(device, "device_kind", "?")} x{jax.device_count()}',
      'host': f'{platform.machine()} {os.cpu_count()} cores',
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
  }
