r"""Measures what each fault costs a run: steps trained again and seconds lost.

  python -m scripts.fault_costs [WORKDIR]

Runs the launcher (`python -m experiments.main`) on `configs/vae.py:tiny`
(embedded digits, 1000 steps, a checkpoint every 500) as a user would: once
uninterrupted, then once per fault, injected as on a cluster (a signal or
kill -9 from outside, files damaged between runs, a disk full while saving),
each followed by the rerun that completes it. Steps lost are the steps
trained twice; seconds lost are the wall time of the faulty run and its rerun
minus the uninterrupted run's (so they include the rerun's start-up and
compilation). Prints a markdown table. The full disk needs root (a tmpfs);
without it that row says so. About 2 minutes on a 2-core CPU.
"""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS, EVERY = 1000, 500
FAULT_STEP = 700  # Faults hit once a metrics line at this step or later is written.


def _launch(workdir, steps=STEPS):
  return subprocess.Popen(
      [sys.executable, '-m', 'experiments.main', '--config=configs/vae.py:tiny',
       '--config.data.source=embedded', f'--config.num_train_steps={steps}',
       f'--config.checkpoint_every={EVERY}', f'--workdir={workdir}'],
      cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
      env={**os.environ, 'JAX_PLATFORMS': 'cpu'})


def _run(workdir, steps=STEPS):
  """Runs to the end; returns (exit status, seconds)."""
  start = time.perf_counter()
  status = _launch(workdir, steps).wait()
  return status, time.perf_counter() - start


def _train_steps(workdir):
  steps = []
  with open(os.path.join(workdir, 'metrics.jsonl'), errors='replace') as f:
    for line in f:
      try:
        record = json.loads(line)
      except ValueError:
        continue
      if 'train/neg_elbo' in record:
        steps.append(record['step'])
  return steps


def _interrupted(workdir, signum):
  """Sends `signum` once training passed FAULT_STEP; returns (steps trained, seconds)."""
  start = time.perf_counter()
  proc = _launch(workdir)
  path = os.path.join(workdir, 'metrics.jsonl')
  while proc.poll() is None:
    if os.path.exists(path) and any(s >= FAULT_STEP for s in _train_steps(workdir)):
      proc.send_signal(signum)
      break
    time.sleep(0.005)
  proc.wait()
  return max(_train_steps(workdir)), time.perf_counter() - start


def _checkpoints(workdir):
  return sorted(int(s) for s in os.listdir(os.path.join(workdir, 'checkpoints')) if s.isdigit())


def main(argv):
  base = argv[1] if len(argv) > 1 else tempfile.mkdtemp(prefix='fault_costs_')
  shutil.rmtree(base, ignore_errors=True)
  os.makedirs(base)
  _, clean = _run(os.path.join(base, 'clean'))
  rows = []

  for name, signum in (('SIGTERM (preemption)', signal.SIGTERM), ('SIGINT (Ctrl-C)', signal.SIGINT),
                       ('kill -9', signal.SIGKILL)):
    workdir = os.path.join(base, name.split()[0].lower())
    trained, first = _interrupted(workdir, signum)
    resumed_from = max(_checkpoints(workdir))
    _, second = _run(workdir)
    rows.append((name, f'at step {trained}', trained - resumed_from, first + second - clean))

  # The newest checkpoint of a finished run cut in half (an interrupted copy), then 500 more
  # steps; against the same rerun on an intact copy.
  seconds = {}
  for copy in ('intact', 'damaged'):
    workdir = os.path.join(base, copy)
    shutil.copytree(os.path.join(base, 'clean'), workdir)
    if copy == 'damaged':
      for folder, _, files in os.walk(os.path.join(workdir, 'checkpoints', str(STEPS))):
        for f in files:
          os.truncate(os.path.join(folder, f), os.path.getsize(os.path.join(folder, f)) // 2)
      older = max(s for s in _checkpoints(workdir) if s < STEPS)
    _, seconds[copy] = _run(workdir, STEPS + EVERY)
  rows.append((f'newest checkpoint damaged, rerun with {EVERY} more steps', f'checkpoint {STEPS}',
               STEPS - older, seconds['damaged'] - seconds['intact']))

  workdir = os.path.join(base, 'cut_metrics')  # kill -9 mid-run, then the last line cut.
  trained, first = _interrupted(workdir, signal.SIGKILL)
  with open(os.path.join(workdir, 'metrics.jsonl'), 'rb+') as f:
    size = f.seek(0, os.SEEK_END)
    f.truncate(size - 20)
  resumed_from = max(_checkpoints(workdir))
  _, second = _run(workdir)
  rows.append(('kill -9, then the last metrics line cut', f'at step {trained}',
               trained - resumed_from, first + second - clean))

  rows.append(_full_disk(base, clean))
  print(f'Uninterrupted: {STEPS} steps in {clean:.1f} s (start-up, compilation and evaluation '
        'included).\n')
  print('| fault | where | steps lost | seconds lost |')
  print('|---|---|---|---|')
  for name, where, steps, seconds in rows:
    shown = '-' if seconds is None else f'{seconds:.1f}'
    print(f'| {name} | {where} | {steps} | {shown} |')


def _full_disk(base, clean):
  """A tmpfs that holds one checkpoint, not two; then more space and a rerun."""
  disk = os.path.join(base, 'disk')
  os.makedirs(disk)
  if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=800k', 'tmpfs', disk],
                    capture_output=True, check=False).returncode:
    return ('disk full while saving', 'not measured (mounting a tmpfs needs root)', '-', None)
  try:
    workdir = os.path.join(disk, 'run')
    status, first = _run(workdir)
    assert status != 0, 'the small disk did not fill up'
    trained, resumed_from = max(_train_steps(workdir)), max(_checkpoints(workdir))
    subprocess.run(['mount', '-o', 'remount,size=8m', disk], check=True)
    _, second = _run(workdir)
    return ('disk full while saving (tmpfs), rerun after freeing space',
            f'saving step {trained} ({errno.errorcode[errno.ENOSPC]})', trained - resumed_from,
            first + second - clean)
  finally:
    subprocess.run(['umount', disk], check=False)


if __name__ == '__main__':
  main(sys.argv)
