"""One live process per workdir: an exclusive `fcntl.flock` on `<workdir>/.lock`.

A run holds its workdir's lock file open, locked, for its whole life; a
second process (a requeued job while the old one still runs, a command typed
twice) gets `WorkdirInUseError` naming the holder (pid, host, start time)
instead of a second writer of the same checkpoints and metrics. The kernel
releases the lock when the holder exits or is killed (even by SIGKILL), so a
dead run never leaves its workdir stuck; the file itself stays (it says who
held it last) and is not a sign of a live run.

flock locks work between processes on one machine and on most network file
systems that support them (NFSv4, Lustre with flock); on one that does not,
acquiring raises an `OSError` naming the file rather than running unlocked.
"""

import contextlib
import datetime
import fcntl
import json
import os
import socket
from typing import Iterator, Sequence

from experiments import config_checks

LOCK_FILE = '.lock'


class WorkdirInUseError(config_checks.RunError, RuntimeError):
  """Another live process holds the workdir."""


def _holder(path: str) -> str:
  """'pid 123 on host h since 2026-12-06 08:44:07', from the lock file (best effort)."""
  try:
    with open(path) as f:
      info = json.load(f)
    return f'pid {info["pid"]} on host {info["host"]} since {info["since"]}'
  except (OSError, ValueError, KeyError, TypeError):  # Being written right now.
    return 'a process that is starting up'


@contextlib.contextmanager
def hold(workdir: str) -> Iterator[None]:
  """Holds `workdir` (created if missing) for the `with` block.

  Args:
    workdir: the run's folder.

  Raises:
    WorkdirInUseError: another live process holds it; names its pid and host.
    config_checks.ConfigError: `workdir` is a file.
  """
  config_checks.check_workdir(workdir)
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, LOCK_FILE)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # Not inherited by child processes.
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise WorkdirInUseError(
          f'--workdir={workdir} is in use by {_holder(path)} (it holds {path}). One process '
          'per workdir: wait for that run to end, or stop it, then run again to resume.'
      ) from None
    except OSError as e:
      raise OSError(e.errno, f'Could not lock {path}: {e.strerror or e}. The workdir needs a '
                    'file system with flock (one process per workdir).') from e
    info = {'pid': os.getpid(), 'host': socket.gethostname(),
            'since': datetime.datetime.now().isoformat(sep=' ', timespec='seconds')}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
    yield
  finally:
    os.close(fd)  # Releases the lock.


@contextlib.contextmanager
def hold_all(workdirs: Sequence[str]) -> Iterator[None]:
  """Holds every workdir of `workdirs` (a group's members) for the `with` block."""
  with contextlib.ExitStack() as stack:
    for workdir in workdirs:
      stack.enter_context(hold(workdir))
    yield
