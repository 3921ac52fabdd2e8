"""Tests of sweeps: declaration, grouping, shards, and resuming after kill -9."""

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import ml_collections
import pytest

from configs import estimator_comparison as ec_config
from experiments import launcher
from experiments import run_files
from experiments import sweep
from experiments import training

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_hyper_product():
  grid = sweep.product([sweep.sweep('config.seed', [0, 1]),
                        sweep.sweep('config.optimizer.learning_rate', [1e-3, 3e-4])])
  assert grid == [{'config.seed': 0, 'config.optimizer.learning_rate': 1e-3},
                  {'config.seed': 0, 'config.optimizer.learning_rate': 3e-4},
                  {'config.seed': 1, 'config.optimizer.learning_rate': 1e-3},
                  {'config.seed': 1, 'config.optimizer.learning_rate': 3e-4}]
  with pytest.raises(ValueError, match="start with 'config.'"):
    sweep.sweep('seed', [0])


def test_config_declares_its_sweep_and_unknown_keys_fail(tmp_path):
  arg = 'model=sbn_cat,estimator=rebar,preset=small'
  base = ec_config.get_config(arg)
  base.lock()
  members = sweep.expand(base, ec_config.get_hyper(sweep, arg), str(tmp_path))
  assert len(members) == 4
  assert {(m.config.seed, m.config.optimizer.learning_rate) for m in members} == {
      (s, lr) for s in (0, 1) for lr in (3e-3, 1e-3)}
  assert os.path.basename(members[0].workdir) == 'seed=0,optimizer.learning_rate=0.003'
  assert len(sweep.group(members)) == 1  # Seeds and learning rates: one program.
  with pytest.raises(ValueError, match='not in the config'):
    sweep.expand(base, sweep.sweep('config.optimizer.learning_rte', [1.0]), str(tmp_path))


def test_groups_split_on_code_fields_and_shards_cover_the_grid(tmp_path):
  base = ec_config.get_config('model=vae_cat,preset=tiny')
  base.lock()
  grid = sweep.product([sweep.sweep('config.estimator.name', ['sf', 'st', 'rebar']),
                        sweep.sweep('config.seed', [0, 1, 2])])
  members = sweep.expand(base, grid, str(tmp_path))
  groups = sweep.group(members)
  assert [len(g) for g in groups] == [3, 3, 3]
  assert all(len({m.config.estimator.name for m in g}) == 1 for g in groups)
  shards = [sweep.shard(members, i, 4) for i in range(4)]  # 3 groups: members dealt out.
  assert sorted(m.workdir for s in shards for m in s) == sorted(m.workdir for m in members)
  assert all(len(s) <= 3 for s in shards) and all(shards)
  halves = [sweep.shard(members, i, 2) for i in range(2)]  # Whole groups dealt out.
  assert [len(h) for h in halves] == [6, 3]
  assert sorted(m.workdir for h in halves for m in h) == sorted(m.workdir for m in members)
  for h in halves:
    assert all(len([m for m in h if m.config.estimator.name == n]) in (0, 3)
               for n in ('sf', 'st', 'rebar'))
  assert sweep.parse_shard('3/4') == (3, 4)
  for bad in ('4/4', '1', 'a/b', '-1/2'):
    with pytest.raises(ValueError, match='shard'):
      sweep.parse_shard(bad)


_SWEEP_CONFIG = textwrap.dedent('''
    """Two groups (estimators) of two members (seeds), long enough to be killed."""
    from configs import estimator_comparison

    def get_config(arg=None):
      config = estimator_comparison.get_config('model=vae_bern,preset=tiny')
      config.num_train_steps = 3000
      config.log_every = 100
      config.checkpoint_every = 100
      config.grad_var_every = 0
      return config

    def get_hyper(h, arg=None):
      return h.product([h.sweep('config.estimator.name', ['sf', 'st']),
                        h.sweep('config.seed', [0, 1])])
''')


def _launch(config_path, workdir):
  return subprocess.Popen(
      [sys.executable, '-m', 'experiments.main', '--sweep', f'--config={config_path}',
       f'--workdir={workdir}'],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
      env={**os.environ, 'JAX_PLATFORMS': 'cpu'})


def _checkpoint_steps(member_dir):
  path = os.path.join(member_dir, 'checkpoints')
  return sorted(int(s) for s in os.listdir(path) if s.isdigit()) if os.path.isdir(path) else []


def test_sweep_killed_with_sigkill_resumes_and_loses_no_finished_member(tmp_path):
  """kill -9 during the second group: the rerun skips the first and resumes the second."""
  config_path = tmp_path / 'sweep_config.py'
  config_path.write_text(_SWEEP_CONFIG)
  workdir = tmp_path / 'sweep'
  first = [workdir / f'estimator.name=sf,seed={s}' for s in (0, 1)]
  second = [workdir / f'estimator.name=st,seed={s}' for s in (0, 1)]

  proc = _launch(config_path, workdir)
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    if all(_checkpoint_steps(d) for d in second):
      break
    time.sleep(0.02)
  assert proc.poll() is None, 'the sweep ended before it could be killed:\n' + proc.stdout.read()
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait()
  assert all(run_files.read_result(str(d)) for d in first)
  assert not any(run_files.read_result(str(d)) for d in second)
  killed_at = min(_checkpoint_steps(d)[-1] for d in second)
  assert 0 < killed_at < 3000
  finished = {str(d): (os.path.getmtime(d / 'result.json'), (d / 'metrics.jsonl').read_text())
              for d in first}

  proc = _launch(config_path, workdir)
  log, _ = proc.communicate(timeout=600)
  assert proc.returncode == 0, log[-3000:]
  assert log.count('not training it again') == 2
  assert f'Resumed from the checkpoints at step {killed_at}' in log or (
      'Resumed from the checkpoints at step' in log)
  for d in first:  # Finished members were not touched.
    assert finished[str(d)] == (os.path.getmtime(d / 'result.json'),
                                (d / 'metrics.jsonl').read_text())
  # The resumed group ends exactly where an uninterrupted run ends.
  spec = {'__file__': str(config_path)}
  exec(compile(_SWEEP_CONFIG, str(config_path), 'exec'), spec)  # pylint: disable=exec-used
  base = spec['get_config']()
  base.lock()
  reference = sweep.expand(base, sweep.product([sweep.sweep('config.estimator.name', ['st']),
                                                sweep.sweep('config.seed', [0, 1])]),
                           str(tmp_path / 'reference'))
  results = launcher.run(reference)
  for d, ref in zip(second, reference):
    resumed = run_files.read_result(str(d))
    for key in ('test/neg_elbo', 'test/nll', 'valid/neg_elbo'):
      assert resumed[key] == pytest.approx(results[ref.workdir][key], rel=1e-6), key
    steps = [json.loads(l)['step'] for l in (d / 'metrics.jsonl').read_text().splitlines()]
    assert steps == sorted(steps) and steps.count(3000) == 2  # Last train line + results.


def test_a_work_queue_claims_each_group_once(tmp_path):
  base = ec_config.get_config('model=vae_cat,preset=tiny')
  base.lock()
  members = sweep.expand(base, sweep.sweep('config.seed', [0, 1]), str(tmp_path))
  assert launcher._claim(members)  # pylint: disable=protected-access
  assert not launcher._claim(members)  # pylint: disable=protected-access
  assert launcher.run(members, claim=True) == {}  # Claimed elsewhere: skipped here.
  launcher.clear_claims(members)
  assert launcher._claim(members)  # pylint: disable=protected-access


def test_outcomes_sort_members_by_their_results(tmp_path):
  config = ec_config.get_config('model=vae_cat,estimator=st,preset=tiny')
  members = sweep.expand(config, sweep.sweep('config.seed', range(5)), str(tmp_path))
  results = [{'step': config.num_train_steps, 'valid/x': 1.0},  # finished
             None,  # never evaluated
             {'step': config.num_train_steps - 1, 'valid/x': 1.0},  # fewer steps than asked
             {'step': config.num_train_steps, 'valid/x': 1.0, 'diverged_step': 3},
             {'step': config.num_train_steps, 'valid/x': float('nan')}]
  for m, result in zip(members, results):
    os.makedirs(m.workdir)
    if result is not None:
      with open(os.path.join(m.workdir, run_files.RESULT_FILE), 'w') as f:
        json.dump(result, f)
  found = sweep.outcomes(members, 'valid/x')
  assert [(m.workdir, r) for m, r in found.finished] == [(members[0].workdir, results[0])]
  assert found.missing == [members[1].workdir, members[2].workdir]
  assert found.diverged == [members[3].workdir, members[4].workdir]


def test_group_size_caps_programs_and_resolves_on_cpu(tmp_path, monkeypatch):
  from configs import ssl as ssl_config  # pylint: disable=g-import-not-at-top
  arg = 'mode=gumbel,preset=tiny'
  members = sweep.expand(ssl_config.get_config(arg), ssl_config.get_hyper(sweep, arg),
                         str(tmp_path))
  groups = sweep.group(members)
  assert len(groups) == 2 and all(len(g) == 2 for g in groups)  # alphas x seeds.
  assert sweep.group(members, 1) == [[m] for g in groups for m in g]
  assert sweep.resolve_group_size(-1) == 1 and sweep.resolve_group_size(0) == 0  # CPU.
  assert sweep.resolve_group_size(3) == 3
  monkeypatch.setattr(sweep.jax, 'default_backend', lambda: 'gpu')
  assert sweep.resolve_group_size(-1) == 0
  with pytest.raises(ValueError, match='max_group_size must be -1'):
    sweep.resolve_group_size(-2)
  calls = []
  monkeypatch.setattr(training, 'run', lambda create_task, configs, workdirs, **kw: calls.append(
      workdirs) or [{'result': None} for _ in workdirs])
  monkeypatch.setattr(launcher, '_finished', lambda m: False)
  launcher.run(members, max_group_size=1)
  assert calls == [[m.workdir] for m in members]
  calls.clear()
  launcher.launch(members, workers=1, max_group_size=0)  # One program per alpha.
  assert calls == [[m.workdir for m in g] for g in groups]


def test_workers_default_to_one_per_core_on_cpu_only(monkeypatch):
  monkeypatch.setattr(launcher.os, 'cpu_count', lambda: 2)
  monkeypatch.setattr(launcher.jax, 'default_backend', lambda: 'cpu')
  assert launcher.num_workers(0, 1) == 2
  assert launcher.num_workers(0, 4) == 1  # --shard: one process per task.
  assert launcher.num_workers(3, 1) == 3
  monkeypatch.setattr(launcher.os, 'cpu_count', lambda: 64)
  assert launcher.num_workers(0, 1) == 8
  monkeypatch.setattr(launcher.jax, 'default_backend', lambda: 'gpu')
  assert launcher.num_workers(0, 1) == 1
  with pytest.raises(ValueError, match='--workers must be >= 0, got -1'):
    launcher.num_workers(-1, 1)
  with pytest.raises(ValueError, match='without --shard'):
    launcher.launch([], workers=2, shard_spec='0/2')


def test_local_workers_train_the_members_they_are_given(tmp_path):
  """The workers take the members from the parent's queue file, overrides included:
  no flag re-parsing, so what they train is what the parent tabulates."""
  arg = 'model=vae_bern,estimator=st,preset=tiny'
  config = ec_config.get_config(arg)
  config.num_train_steps = 10  # An override a re-parsed command line would not carry.
  config.grad_var_every = 0
  members = sweep.expand(config, sweep.product([sweep.sweep('config.seed', (0, 1)),
                                               sweep.sweep('config.optimizer.learning_rate',
                                                           (1e-3, 3e-4))]),
                         str(tmp_path))
  launcher.run_local(members, 2, str(tmp_path), max_group_size=1)
  for m in members:
    assert run_files.read_result(m.workdir)['step'] == 10
  logs = [open(tmp_path / f'worker{i}.log').read() for i in range(2)]
  assert all('[' in log for log in logs)  # Both trained something.
  assert not [f for f in os.listdir(tmp_path) if f.startswith('queue-')]  # Removed.


def test_the_queue_carries_data_and_workers_refuse_anything_else(tmp_path):
  """Configs as JSON (tuples kept), experiments by registered name; a pickle, another
  format or an unregistered experiment is refused before anything runs."""
  config = ec_config.get_config('model=vae_bern,estimator=st,preset=tiny')
  members = sweep.expand(config, sweep.sweep('config.seed', (0, 1)), str(tmp_path / 'grid'))
  path = str(tmp_path / 'queue.json')
  launcher.write_queue(path, members, 3)
  got, max_group_size = launcher.read_queue(path)
  assert max_group_size == 3 and [m.workdir for m in got] == [m.workdir for m in members]
  assert [m.config.to_dict() for m in got] == [m.config.to_dict() for m in members]
  assert isinstance(got[0].config.model.hidden, tuple)
  assert got[0].experiment == 'estimator_comparison'
  with open(path) as f:
    spec = json.load(f)

  def refused(content, match, binary=False):
    bad = tmp_path / 'bad'
    bad.write_bytes(content) if binary else bad.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=match):
      launcher.read_queue(str(bad))

  refused(pickle.dumps({'members': members, 'max_group_size': 0}), 'not JSON', binary=True)
  refused({**spec, 'format': 'other'}, 'not a sweep queue of format')
  refused({**spec, 'code': 'print(1)'}, 'a queue holds exactly')
  entry = spec['members'][0]
  refused({**spec, 'members': [{**entry, 'experiment': 'os'}]}, "Unknown experiment 'os'")
  refused({**spec, 'members': [{**entry, 'experiment': 'vae'}]}, "names experiment 'vae'")
  refused({**spec, 'members': [{**entry, 'extra': 1}]}, 'member 0 must be')
  unregistered = sweep.Member(ml_collections.ConfigDict({'experiment': 'nope'}), 'w')
  with pytest.raises(ValueError, match="Unknown experiment 'nope'"):
    launcher.write_queue(path, [unregistered], 0)
  not_data = sweep.Member(ml_collections.ConfigDict({'experiment': 'vae', 'f': len}), 'w')
  with pytest.raises(ValueError, match='not JSON data'):
    launcher.write_queue(path, [not_data], 0)


def test_pinning_xla_threads_after_the_backend_started_is_an_error():
  import jax  # pylint: disable=g-import-not-at-top
  jax.devices()  # The backend is up in this process.
  with pytest.raises(RuntimeError, match='before JAX starts its backend'):
    launcher.pin_xla_to_one_thread()
