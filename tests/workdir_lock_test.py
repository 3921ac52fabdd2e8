"""One live process per workdir, tested with real processes (flock is per open file)."""

import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from experiments import config_checks
from experiments import workdir_lock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_HOLDER = textwrap.dedent('''
    import sys, time
    from experiments import workdir_lock
    with workdir_lock.hold(sys.argv[1]):
      print('held', flush=True)
      time.sleep(600)
''')


def _start_holder(workdir):
  """A process that holds `workdir` until killed; returns once it holds it."""
  proc = subprocess.Popen([sys.executable, '-c', _HOLDER, str(workdir)], cwd=ROOT,
                          env={**os.environ, 'PYTHONPATH': ROOT}, stdout=subprocess.PIPE,
                          text=True)
  assert proc.stdout.readline().strip() == 'held'
  return proc


def test_a_second_process_is_refused_naming_the_holder_until_the_holder_is_killed(tmp_path):
  holder = _start_holder(tmp_path)
  try:
    with pytest.raises(workdir_lock.WorkdirInUseError) as e:
      with workdir_lock.hold(str(tmp_path)):
        pytest.fail('Two processes held one workdir.')
    message = str(e.value)
    assert f'--workdir={tmp_path} is in use by pid {holder.pid} on host {socket.gethostname()}' \
        in message
    assert isinstance(e.value, config_checks.RunError)  # main.py prints it without a traceback.
  finally:
    holder.send_signal(signal.SIGKILL)  # No cleanup code runs: the kernel releases the lock.
    holder.wait()
  with workdir_lock.hold(str(tmp_path)):  # Not stuck after a kill.
    pass
  with workdir_lock.hold(str(tmp_path)):  # Released at the end of the block, and reusable.
    pass


def test_holding_every_member_and_a_workdir_that_is_a_file(tmp_path):
  a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
  with workdir_lock.hold_all([a, b]):
    assert os.path.isdir(a) and os.path.isdir(b)  # Created.
  path = tmp_path / 'file'
  path.write_text('')
  with pytest.raises(config_checks.ConfigError, match=f'--workdir={path} is a file'):
    with workdir_lock.hold(str(path)):
      pass


def test_the_launcher_refuses_a_held_workdir(tmp_path):
  """experiments.main on a workdir another live process holds: one line naming it, exit 1."""
  holder = _start_holder(tmp_path)
  try:
    out = subprocess.run(
        [sys.executable, '-m', 'experiments.main', '--config=configs/vae.py:tiny',
         '--config.data.source=embedded', f'--workdir={tmp_path}'],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, 'PYTHONPATH': ROOT, 'JAX_PLATFORMS': 'cpu'})
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  assert out.returncode == 1 and 'Traceback' not in out.stderr, out.stderr[-3000:]
  assert f'FATAL --workdir={tmp_path} is in use by pid {holder.pid}' in out.stderr
  assert sorted(os.listdir(tmp_path)) == ['.lock']  # Nothing written: no second writer.
