"""Faults a run survives: preemption, damaged checkpoints, cut metrics, a full disk.

Each test injects one fault into the VAE on `configs/vae.py:tiny` (embedded
digits) and checks that the rerun ends with the same final metrics as an
uninterrupted run, or that the run stops with the stated error. Training is
deterministic (step t draws `fold_in(loop_key, t)`, and a resumed run compiles
the same chunks), so results and metrics lines must match exactly; only
wall-clock numbers (`steps_per_sec`, `*/eval_seconds`) and the result's
provenance (its wall time, the step it resumed from) are left out.
"""

import errno
import gc
import glob
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
from jax.experimental.compilation_cache import compilation_cache
import numpy as np
import pytest

from configs import vae as vae_config
from experiments import checkpointing
from experiments import evaluation
from experiments import launcher
from experiments import metric_writer
from experiments import preemption
from experiments import run_files
from experiments import sweep
from experiments import training
from experiments import vae
from scripts import results_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LONG_STEPS = 1000  # Long enough to be signalled mid-way (~1000 steps/s here).
LONG = {'num_train_steps': LONG_STEPS, 'checkpoint_every': 500}

# A restore that fails partway leaves orbax's pending reads behind, which complain when they
# are collected: collect them within the test that left them, and do not warn.
pytestmark = pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')


@pytest.fixture(autouse=True)
def collect_orbax_leftovers():
  yield
  gc.collect()


@pytest.fixture(scope='module', autouse=True)
def compile_once(tmp_path_factory):
  """Runs here compile the same few programs: compile each once (JAX's persistent cache)."""
  path = str(tmp_path_factory.mktemp('jax_cache'))
  options = {'jax_compilation_cache_dir': path,
             'jax_persistent_cache_min_compile_time_secs': 0.0,
             'jax_persistent_cache_min_entry_size_bytes': 0}
  previous = {k: getattr(jax.config, k) for k in options}
  for k, v in options.items():
    jax.config.update(k, v)
  compilation_cache.reset_cache()
  yield {k.upper(): str(v) for k, v in options.items()}  # The same for subprocesses.
  for k, v in previous.items():
    jax.config.update(k, v)
  compilation_cache.reset_cache()


def _config(**overrides):
  config = vae_config.get_config('tiny')
  config.data.source = 'embedded'
  config.update_from_flattened_dict(overrides)
  return config


def _train(workdir, **overrides):
  return vae.train_and_evaluate(_config(**overrides), str(workdir))


def _outcome(workdir):
  """result.json and every metrics line, without the wall-clock numbers and the provenance.

  (The provenance says how the result was made: the wall time, the step a
  resumed run started from.)
  """
  def strip(record):
    return {k: v for k, v in record.items()
            if k not in ('steps_per_sec', 'provenance') and not k.endswith('eval_seconds')}
  return (strip(run_files.read_result(str(workdir))),
          [strip(r) for r in metric_writer.read_metrics(str(workdir))])


def _assert_same_outcome(workdir, reference):
  result, lines = _outcome(workdir)
  ref_result, ref_lines = _outcome(reference)
  assert result == ref_result
  assert [l['step'] for l in lines] == [l['step'] for l in ref_lines]
  assert lines == ref_lines


def _train_steps(workdir):
  return [l['step'] for l in metric_writer.read_metrics(str(workdir)) if 'train/neg_elbo' in l]


def _checkpoint_steps(workdir):
  path = os.path.join(workdir, 'checkpoints')
  return sorted(int(s) for s in os.listdir(path) if s.isdigit())


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
  """Uninterrupted runs, by their number of steps."""
  runs = {}

  def get(steps, **overrides):
    key = (steps, tuple(sorted(overrides.items())))
    if key not in runs:
      workdir = tmp_path_factory.mktemp(f'reference{steps}')
      _train(workdir, num_train_steps=steps, **overrides)
      runs[key] = str(workdir)
    return runs[key]

  return get


@pytest.fixture
def absl_info(caplog):
  caplog.set_level(logging.INFO, logger='absl')
  return caplog


# ----------------------------------------------------------------------------
# Preemption: SIGTERM and SIGINT.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize('signum,status', [(signal.SIGTERM, 143), (signal.SIGINT, 130)],
                         ids=['sigterm', 'sigint'])
def test_signalled_subprocess_saves_and_resumes_to_the_same_result(
    signum, status, reference, tmp_path, absl_info, compile_once):
  """A real launcher process: signal mid-run, then resume; no step lost."""
  workdir = tmp_path / 'run'
  log_path = tmp_path / 'log.txt'
  with open(log_path, 'w') as log:
    proc = subprocess.Popen(
        [sys.executable, '-m', 'experiments.main', '--config=configs/vae.py:tiny',
         '--config.data.source=embedded', f'--config.num_train_steps={LONG_STEPS}',
         '--config.checkpoint_every=500', f'--workdir={workdir}'],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, **compile_once, 'JAX_PLATFORMS': 'cpu'})
    metrics = workdir / 'metrics.jsonl'
    deadline = time.time() + 180
    while proc.poll() is None and time.time() < deadline:
      if metrics.exists() and metrics.stat().st_size:
        break
      time.sleep(0.01)
    assert proc.poll() is None, 'the run ended before the signal:\n' + log_path.read_text()[-3000:]
    proc.send_signal(signum)
    proc.wait(timeout=120)
  text = log_path.read_text()
  assert proc.returncode == status, text[-3000:]
  name = signal.Signals(signum).name
  match = re.search(rf'Stopped by {name} at step (\d+): saved the checkpoint .*'
                    rf'{re.escape(str(workdir))}/checkpoints/(\d+).*rerun the same command to '
                    rf'resume from step (\d+)\. Exit status {status}\.', text)
  assert match, text[-3000:]
  step = int(match.group(1))
  assert step == int(match.group(2)) == int(match.group(3))
  assert 0 < step < LONG_STEPS and step % 10 == 0  # The end of a compiled chunk.
  assert step in _checkpoint_steps(str(workdir))  # Saved there, whatever checkpoint_every says.
  assert _train_steps(workdir) == list(range(10, step + 1, 10))  # Flushed, none missing.
  assert run_files.read_result(str(workdir)) is None

  _train(workdir, **LONG)
  assert f'Resumed from the checkpoints at step {step}.' in absl_info.text
  _assert_same_outcome(workdir, reference(LONG_STEPS, checkpoint_every=500))
  assert _checkpoint_steps(str(workdir)) == [500, 1000]  # Later saves went on as usual.


def test_signal_during_evaluation_stops_and_the_rerun_only_evaluates(
    reference, tmp_path, monkeypatch, absl_info):
  """The training is checkpointed; evaluation runs again on the next start."""
  previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
  evaluate = evaluation.evaluate

  def signalled_evaluate(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    return evaluate(*args, **kwargs)

  monkeypatch.setattr(evaluation, 'evaluate', signalled_evaluate)
  with pytest.raises(preemption.Preempted, match='during the evaluation at step 40') as info:
    _train(tmp_path)
  assert info.value.exit_status == 143 and info.value.step == 40
  assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == previous
  assert run_files.read_result(str(tmp_path)) is None
  assert _checkpoint_steps(str(tmp_path)) == [20, 40]
  assert [l['step'] for l in metric_writer.read_metrics(str(tmp_path))] == [10, 20, 30, 40]

  monkeypatch.undo()
  absl_info.clear()
  _train(tmp_path)
  assert 'Resumed from the checkpoints at step 40.' in absl_info.text
  assert 'step 40/40' not in absl_info.text  # No chunk trained again.
  _assert_same_outcome(tmp_path, reference(40))


def test_sweep_stops_after_the_signalled_group_and_resumes(reference, tmp_path, monkeypatch):
  """A signal in the first group: it is saved, the second group is not started."""
  base = _config()
  base.lock()
  members = sweep.expand(base, sweep.sweep('config.model.hard', [False, True]), str(tmp_path))
  assert len(sweep.group(members)) == 2
  write = metric_writer.MetricWriter.write
  sent = []

  def signalled_write(self, step, metrics):
    if not sent:
      sent.append(step)
      os.kill(os.getpid(), signal.SIGTERM)
    return write(self, step, metrics)

  monkeypatch.setattr(metric_writer.MetricWriter, 'write', signalled_write)
  with pytest.raises(preemption.Preempted, match=r'\[1/2 .*\] Stopped by SIGTERM at step 10'):
    launcher.run(members)
  first, second = (m.workdir for m in members)
  assert _checkpoint_steps(first) == [10] and _train_steps(first) == [10]
  assert not os.path.exists(second)

  monkeypatch.undo()
  results = launcher.run(members)
  assert set(results) == {first, second}
  _assert_same_outcome(first, reference(40))
  assert run_files.read_result(second)['step'] == 40


def test_guard_sets_a_flag_and_restores_the_previous_handlers():
  previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
  with preemption.Guard() as guard:
    assert not guard.stop_requested(0)
    os.kill(os.getpid(), signal.SIGINT)  # Not a KeyboardInterrupt: a request.
    assert guard.stop_requested(0) and guard.signum == signal.SIGINT
    with pytest.raises(KeyboardInterrupt):  # A second Ctrl-C stops at once.
      os.kill(os.getpid(), signal.SIGINT)
  assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == previous
  with preemption.Guard() as guard:
    with pytest.raises(preemption.Preempted, match='during the evaluation at step 7'):
      with guard.interruptible(7):
        os.kill(os.getpid(), signal.SIGTERM)
  assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == previous


_TWO_PROCESSES = textwrap.dedent('''
    import json, os, sys, time
    import jax
    index, port, ready = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(f'localhost:{port}', num_processes=2, process_id=index)
    from experiments import preemption
    with preemption.Guard() as guard:
      open(f'{ready}{index}', 'w').close()
      step = 0
      while step < 100_000 and not guard.stop_requested(step):
        time.sleep(0.005)  # A chunk of steps.
        step += 10
    print(json.dumps({'step': step, 'signum': guard.signum}), flush=True)
    jax.distributed.shutdown()
''')


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT], ids=['sigterm', 'sigint'])
def test_two_processes_stop_at_the_same_step(signum, tmp_path):
  """jax.distributed on two CPU processes; only process 1 gets the signal.

  SIGTERM goes through jax's preemption sync service
  (`reached_preemption_sync_point`), SIGINT through the all-gathered flags.
  """
  script = tmp_path / 'two.py'
  script.write_text(_TWO_PROCESSES)
  with socket.socket() as s:
    s.bind(('localhost', 0))
    port = s.getsockname()[1]
  ready = str(tmp_path / 'ready')
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'PYTHONPATH': ROOT}
  procs = [subprocess.Popen([sys.executable, str(script), str(i), str(port), ready], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  try:
    deadline = time.time() + 120
    while not all(os.path.exists(f'{ready}{i}') for i in range(2)):
      assert time.time() < deadline and all(p.poll() is None for p in procs), [
          p.stderr.read()[-2000:] for p in procs if p.poll() is not None]
      time.sleep(0.05)
    time.sleep(0.2)
    procs[1].send_signal(signum)
    outputs = [p.communicate(timeout=120) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
  stops = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
  assert stops[0] == stops[1], stops
  assert stops[0]['signum'] == signum and 0 < stops[0]['step'] < 100_000


# ----------------------------------------------------------------------------
# Damaged checkpoints.
# ----------------------------------------------------------------------------


def _files(path):
  return sorted(f for f in glob.glob(os.path.join(path, '**'), recursive=True)
                if os.path.isfile(f))


def _truncate(path):
  for f in _files(path):
    os.truncate(f, os.path.getsize(f) // 2)


def _zero(path):
  for f in _files(path):
    with open(f, 'r+b') as h:
      h.write(b'\0' * os.path.getsize(f))


def _cut_array_data(path):  # Metadata intact, the largest array file cut: TensorStore fails.
  f = max(_files(path), key=os.path.getsize)
  os.truncate(f, os.path.getsize(f) // 2)


def _remove_a_file(path):
  os.remove(max(_files(path), key=os.path.getsize))


def _empty(path):
  shutil.rmtree(path)
  os.mkdir(path)


@pytest.mark.parametrize('damage', [_truncate, _zero, _cut_array_data, _remove_a_file, _empty],
                         ids=['truncated', 'zeroed', 'array_data_cut', 'file_missing',
                              'empty_folder'])
def test_damaged_latest_checkpoint_falls_back_and_ends_the_same(
    damage, reference, tmp_path, absl_info):
  """As an interrupted copy leaves a workdir; then rerun with more steps."""
  workdir = str(tmp_path / 'run')
  shutil.copytree(reference(40), workdir)
  damage(os.path.join(workdir, 'checkpoints', '40'))
  _train(workdir, num_train_steps=60)
  assert re.search(rf'Checkpoint {re.escape(workdir)}/checkpoints/40 cannot be restored '
                   rf'\(.+\)\. Moved it to {re.escape(workdir)}/checkpoints_damaged/40-\d+-\d+ '
                   r'\(not deleted\)', absl_info.text), absl_info.text[-3000:]
  assert 'Resumed from the checkpoints at step 20.' in absl_info.text
  assert [d.split('-')[0] for d in os.listdir(os.path.join(workdir, 'checkpoints_damaged'))] == [
      '40']
  assert _checkpoint_steps(workdir) == [40, 60]  # Saved again after the fallback.
  _assert_same_outcome(workdir, reference(60))


def test_no_checkpoint_restores_names_the_folder_then_starts_fresh(reference, tmp_path):
  workdir = str(tmp_path / 'run')
  shutil.copytree(reference(40), workdir)
  for step in (20, 40):
    _zero(os.path.join(workdir, 'checkpoints', str(step)))
  with pytest.raises(checkpointing.CheckpointError) as info:
    _train(workdir, num_train_steps=60)
  message = str(info.value)
  assert f"No checkpoint in ['{workdir}/checkpoints'] could be restored" in message
  assert 'To start fresh, run the same command again' in message
  assert len(os.listdir(os.path.join(workdir, 'checkpoints_damaged'))) == 2  # Kept.
  _train(workdir, num_train_steps=60)  # As the message says.
  _assert_same_outcome(workdir, reference(60))


def test_checkpoint_of_another_model_is_not_damage(reference, tmp_path):
  """A changed config pointed at an old workdir: say so, move nothing."""
  workdir = str(tmp_path / 'run')
  shutil.copytree(reference(40), workdir)
  with open(os.path.join(workdir, 'config.json')) as f:
    config_json = f.read()
  with pytest.raises(checkpointing.ModelMismatchError) as info:
    _train(workdir, num_train_steps=60, **{'model.encoder_hidden': (64,)})
  message = str(info.value)
  assert f'The checkpoint {workdir}/checkpoints/40 is intact but holds another model' in message
  assert ('params.encoder.dense_0.bias: stored float32[32], this config float32[64]' in message)
  assert 'Nothing was moved. Use a new --workdir' in message
  assert _checkpoint_steps(workdir) == [20, 40]
  assert not os.path.exists(os.path.join(workdir, 'checkpoints_damaged'))
  with open(os.path.join(workdir, 'config.json')) as f:
    assert f.read() == config_json


def test_group_sets_aside_a_members_newer_checkpoint_so_later_saves_succeed(tmp_path):
  """Member b's step 2 is damaged: both resume at 1, and a's step 2 must not block saving."""
  managers = [checkpointing.CheckpointManager(str(tmp_path / m / 'checkpoints'), 3)
              for m in 'ab']
  state = lambda v, step: {'w': jnp.full(3, v, jnp.float32), 'step': jnp.int32(step)}
  for step in (1, 2):
    for i, manager in enumerate(managers):
      manager.save(step, state(10 * i + step, step))
  _empty(str(tmp_path / 'b' / 'checkpoints' / '2'))
  restored = checkpointing.restore_common(managers, [state(0, 0)] * 2)
  assert [int(s['step']) for s in restored] == [1, 1]
  np.testing.assert_array_equal(restored[1]['w'], [11, 11, 11])
  assert [m.all_steps() for m in managers] == [[1], [1]]
  aside = sorted(os.listdir(tmp_path / m / 'checkpoints_damaged')[0].split('-')[0] for m in 'ab')
  assert aside == ['2', '2']
  for i, manager in enumerate(managers):  # Orbax refuses a step that exists.
    manager.save(2, state(100 + i, 2))
    manager.close()


# ----------------------------------------------------------------------------
# A metrics line cut off mid-write.
# ----------------------------------------------------------------------------


def _cut_last_line(path):
  with open(path, 'rb') as f:
    lines = f.read().splitlines(keepends=True)
  with open(path, 'wb') as f:
    f.writelines(lines[:-1])
    f.write(lines[-1][:len(lines[-1]) // 2])


def test_cut_result_line_is_dropped_and_a_longer_rerun_ends_the_same(
    reference, tmp_path, absl_info):
  """A finished run copied while its last line (the results) was being written."""
  workdir = str(tmp_path / 'run')
  shutil.copytree(reference(40), workdir)
  _cut_last_line(os.path.join(workdir, 'metrics.jsonl'))
  assert [m['step'] for m in metric_writer.read_metrics(workdir)] == [10, 20, 30, 40]
  assert 'dropped 1 unreadable line(s) (5)' in absl_info.text
  row = results_table.row(workdir)  # The results come from result.json then.
  assert f"| {run_files.read_result(workdir)['test/neg_elbo']:.2f} |" in row
  _train(workdir, num_train_steps=60)
  assert 'dropped 1 unreadable line(s) (5)' in absl_info.text
  _assert_same_outcome(workdir, reference(60))


def test_cut_train_line_of_a_killed_run_is_dropped_and_the_rerun_ends_the_same(
    reference, tmp_path, absl_info):
  """As kill -9 while writing step 30's line leaves a run: checkpoint 20, line 30 cut."""
  workdir = str(tmp_path / 'run')
  shutil.copytree(reference(40), workdir)
  os.remove(os.path.join(workdir, 'result.json'))
  shutil.rmtree(os.path.join(workdir, 'checkpoints', '40'))
  path = os.path.join(workdir, 'metrics.jsonl')
  with open(path) as f:
    lines = f.readlines()[:3]
  with open(path, 'w') as f:
    f.writelines(lines[:2] + [lines[2][:40]])
  assert [m['step'] for m in metric_writer.read_metrics(workdir)] == [10, 20]
  assert 'dropped 1 unreadable line(s) (3)' in absl_info.text
  with pytest.raises(ValueError, match='no finished run'):
    results_table.row(workdir)
  _train(workdir)
  assert 'dropped 1 unreadable line(s) (3)' in absl_info.text
  assert 'Resumed from the checkpoints at step 20.' in absl_info.text
  _assert_same_outcome(workdir, reference(40))
  assert '| 40 |' in results_table.row(workdir)


# ----------------------------------------------------------------------------
# A full disk while saving.
# ----------------------------------------------------------------------------


def _check_full_disk_error(error, workdir):
  message = str(error)
  assert f'Could not save the checkpoint of step 40 in {workdir}/checkpoints: the disk is full' in (
      message)
  assert 'a rerun resumes from the newest one; free some space' in message


def test_full_disk_while_saving_names_the_path_and_the_previous_checkpoint_serves(
    reference, tmp_path, monkeypatch, absl_info):
  """Injected: the second save writes two arrays, then the disk is full (ENOSPC)."""
  from orbax.checkpoint._src.serialization import serialization  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path / 'run')
  save, write = checkpointing.CheckpointManager.save, serialization.async_serialize_from_host
  calls = {'saves': 0, 'writes': 0}

  def counted_save(self, step, state):
    calls['saves'] += 1
    return save(self, step, state)

  async def full_disk_write(*args, **kwargs):
    if calls['saves'] == 2:
      calls['writes'] += 1
      if calls['writes'] > 2:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return await write(*args, **kwargs)

  monkeypatch.setattr(checkpointing.CheckpointManager, 'save', counted_save)
  monkeypatch.setattr(serialization, 'async_serialize_from_host', full_disk_write)
  with pytest.raises(checkpointing.CheckpointError) as info:
    _train(workdir)
  assert calls['writes'] > 2  # It failed partway, not before writing.
  _check_full_disk_error(info.value, workdir)
  assert _checkpoint_steps(workdir) == [20]

  monkeypatch.undo()  # Space freed.
  _train(workdir)
  assert 'Resumed from the checkpoints at step 20.' in absl_info.text
  _assert_same_outcome(workdir, reference(40))
  assert _checkpoint_steps(workdir) == [20, 40]


def test_full_tmpfs_while_saving(reference, tmp_path, absl_info):
  """A real full disk: a 800 KiB tmpfs holds one tiny checkpoint (~570 KiB), not two."""
  disk = tmp_path / 'disk'
  disk.mkdir()
  mount = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=800k', 'tmpfs', str(disk)],
                         capture_output=True, text=True, check=False)
  if mount.returncode:
    pytest.skip(f'cannot mount a tmpfs here (needs root): {mount.stderr.strip()}')
  try:
    workdir = str(disk / 'run')
    with pytest.raises(checkpointing.CheckpointError) as info:
      _train(workdir)
    _check_full_disk_error(info.value, workdir)
    assert _checkpoint_steps(workdir) == [20]
    subprocess.run(['mount', '-o', 'remount,size=8m', str(disk)], check=True)  # Space freed.
    _train(workdir)
    assert 'Resumed from the checkpoints at step 20.' in absl_info.text
    _assert_same_outcome(workdir, reference(40))
  finally:
    # A file still open (a checkpointer's thread) makes umount fail with 'target is busy'; the
    # lazy one detaches it at once, so no tmpfs outlives the test.
    if subprocess.run(['umount', str(disk)], capture_output=True, check=False).returncode:
      subprocess.run(['umount', '--lazy', str(disk)], check=False)


def test_full_disk_while_writing_metrics_or_the_result_names_the_file(tmp_path):
  """/dev/full answers every write with ENOSPC."""
  if not os.path.exists('/dev/full'):
    pytest.skip('no /dev/full on this machine')
  writer = metric_writer.MetricWriter(str(tmp_path))
  os.symlink('/dev/full', tmp_path / 'metrics.jsonl')  # (Reading it never ends.)
  with pytest.raises(OSError, match=rf'Could not write {re.escape(str(tmp_path))}/metrics.jsonl: '
                     'the disk is full') as info:
    writer.write(10, {'train/neg_elbo': 1.0})
  assert info.value.errno == errno.ENOSPC
  os.symlink('/dev/full', tmp_path / 'result.json.tmp')
  with pytest.raises(OSError, match=rf'Could not write {re.escape(str(tmp_path))}/result.json: '
                     'No space left on device') as info:
    run_files.write_json_atomically(str(tmp_path / 'result.json'), {'step': 40})
  assert info.value.errno == errno.ENOSPC
  assert not os.path.exists(tmp_path / 'result.json')


def test_result_names_the_commit_checked_out_when_training_began(tmp_path, monkeypatch):
  """A checkout moved during training (a worktree updated under a running job) is not named."""
  moved = []  # Non-empty once training is done: the checkout then names another commit.
  real_run, real_train = run_files.subprocess.run, training.train

  def fake_git(args, **kwargs):
    if args[:2] == ['git', 'rev-parse']:
      commit = ('b' if moved else 'a') * 40
      return subprocess.CompletedProcess(args, 0, stdout=commit + '\n', stderr='')
    return real_run(args, **kwargs)

  def train_then_move(*args, **kwargs):
    steps = real_train(*args, **kwargs)
    moved.append(True)
    return steps

  monkeypatch.setattr(run_files.subprocess, 'run', fake_git)
  monkeypatch.setattr(training, 'train', train_then_move)
  run_files.provenance.cache_clear()
  try:
    _train(tmp_path / 'run')
    assert moved
    assert run_files.read_result(str(tmp_path / 'run'))['provenance']['git_commit'] == 'a' * 40
  finally:
    run_files.provenance.cache_clear()
