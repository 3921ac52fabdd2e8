"""Tests of the shared training loop: vmapped members, sharding, NaN guard, shared programs."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import chex
import jax
import ml_collections
import numpy as np
import optax
import pytest

from configs import estimator_comparison as ec_config
from experiments import estimator_comparison
from experiments import loop_config
from experiments import metric_writer
from experiments import optimizer
from experiments import programs
from experiments import progress
from experiments import run_files
from experiments import tensorboard_events
from experiments import training

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(estimator='nvil', model='vae_bern', **overrides):
  config = ec_config.get_config(f'model={model},estimator={estimator},preset=tiny')
  config.lock()
  config.update_from_flattened_dict(overrides)
  return config


def _members(base, points):
  configs = []
  for seed, lr in points:
    c = ml_collections.ConfigDict(base.to_dict())
    c.seed, c.optimizer.learning_rate = seed, lr
    configs.append(c)
  return configs


def test_vmapped_member_matches_the_same_config_run_alone(tmp_path):
  """A member of a 4-member group ends where it ends trained alone (float tolerance)."""
  base = _config()
  points = [(0, 1e-3), (0, 3e-4), (1, 1e-3), (1, 3e-4)]
  group = training.run(estimator_comparison.create_task, _members(base, points),
                       [str(tmp_path / f'm{i}') for i in range(4)])
  (alone,) = training.run(estimator_comparison.create_task, _members(base, [points[3]]),
                          [str(tmp_path / 'alone')])
  member = group[3]
  chex.assert_trees_all_close(jax.device_get(member['state']['params']),
                              jax.device_get(alone['state']['params']), rtol=1e-4, atol=1e-5)
  # The learned NVIL baseline (estimator state) too.
  chex.assert_trees_all_close(jax.device_get(member['state']['extra']),
                              jax.device_get(alone['state']['extra']), rtol=1e-4, atol=1e-5)
  for key in ('test/neg_elbo', 'test/nll', 'valid/neg_elbo'):
    assert member['result'][key] == pytest.approx(alone['result'][key], rel=1e-5), key
  # The members really differ (different seeds and learning rates).
  assert group[0]['result']['test/neg_elbo'] != group[3]['result']['test/neg_elbo']
  lines = metric_writer.read_metrics(str(tmp_path / 'm3'))
  assert [l['step'] for l in lines if 'train/neg_elbo' in l] == [10, 20]
  assert all('grad_var/nvil' in l for l in lines if 'train/neg_elbo' in l)


def test_learning_rate_is_data_in_the_optimizer_state():
  config = _config()
  tx = optimizer.create_optimizer(config)
  params = {'w': np.ones(3, np.float32)}
  state = tx.init(params)
  lr = [s for s in jax.tree.leaves(state) if np.ndim(s) == 0]
  assert any(np.isclose(x, config.optimizer.learning_rate) for x in lr)
  # The same updates as optax's SGD with momentum.
  grads = {'w': np.asarray([1.0, -2.0, 0.5], np.float32)}
  reference = optax.sgd(config.optimizer.learning_rate, momentum=0.9)
  ref_state = reference.init(params)
  for _ in range(3):
    updates, state = tx.update(grads, state, params)
    ref_updates, ref_state = reference.update(grads, ref_state, params)
    np.testing.assert_allclose(updates['w'], ref_updates['w'], rtol=1e-6)


def test_bad_optimizer_and_group_configs():
  config = _config()
  config.optimizer.name = 'adagrad'
  with pytest.raises(ValueError, match="optimizer.name='adagrad'.*allowed"):
    optimizer.create_optimizer(config)
  a, b = _config(estimator='st'), _config(estimator='arm')  # Neither takes hyperparameters.
  with pytest.raises(ValueError, match="differ in 'estimator.name'"):
    loop_config.check_group([a, b])
  loop_config.check_group(_members(a, [(0, 1e-3), (5, 1e-2)]))  # Seeds and rates may differ.
  with pytest.raises(ValueError, match='grad_var_every=15'):
    loop_config.check_loop_config(_config(grad_var_every=15))


def test_divergent_member_is_marked_and_the_others_train_on(tmp_path):
  """In a sweep ('mark'), a member that blows up does not stop the others."""
  base = _config(estimator='gumbel_softmax')
  configs = _members(base, [(0, 1e-3), (0, 1e38)])
  out = training.run(estimator_comparison.create_task, configs,
                     [str(tmp_path / 'ok'), str(tmp_path / 'bad')], on_nonfinite='mark')
  assert out[0]['result']['diverged_step'] is None
  assert np.isfinite(out[0]['result']['test/neg_elbo'])
  bad_step = out[1]['result']['diverged_step']
  assert bad_step is not None and 0 <= bad_step < 20
  assert metric_writer.diverged_step(str(tmp_path / 'bad')) == bad_step
  # Alone ('raise', the default), the same run stops and names the step.
  with pytest.raises(FloatingPointError, match=f'at step {bad_step} in'):
    training.run(estimator_comparison.create_task, configs[1:], [str(tmp_path / 'alone')])


_SHARDED_SCRIPT = textwrap.dedent('''
    import json, sys
    import jax
    import ml_collections
    from configs import estimator_comparison as ec_config
    from experiments import estimator_comparison, training
    assert len(jax.devices()) == 4, jax.devices()
    base = ec_config.get_config('model=vae_cat,estimator=st_gumbel_softmax,preset=tiny')
    configs = []
    for seed, lr in [(0, 1e-3), (1, 1e-3), (1, 3e-4)]:
      c = ml_collections.ConfigDict(base.to_dict()); c.seed = seed; c.optimizer.learning_rate = lr
      configs.append(c)
    seen = {}
    original = training.prepare
    def prepare(*args, **kwargs):
      group = original(*args, **kwargs)
      seen['devices'] = len(jax.tree.leaves(group.state)[0].sharding.device_set)
      seen['padded'] = len(group.keys['loop'])
      return group
    training.prepare = prepare
    out = training.run(estimator_comparison.create_task, configs,
                       [sys.argv[1] + f'/m{i}' for i in range(3)])
    print(json.dumps({'devices': seen['devices'], 'padded': seen['padded'],
                      'results': [o['result']['test/neg_elbo'] for o in out]}))
''')


def test_members_shard_across_devices(tmp_path):
  """With 4 (forced host) devices the member axis is sharded; results unchanged."""
  script = tmp_path / 'sharded.py'
  script.write_text(_SHARDED_SCRIPT)
  env = {**os.environ, 'XLA_FLAGS': '--xla_force_host_platform_device_count=4',
         'PYTHONPATH': ROOT, 'JAX_PLATFORMS': 'cpu'}
  proc = subprocess.run([sys.executable, str(script), str(tmp_path / 'sharded')],
                        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  sharded = json.loads(proc.stdout.strip().splitlines()[-1])
  assert sharded['devices'] == 4 and sharded['padded'] == 4  # 3 members padded to 4.
  base = ec_config.get_config('model=vae_cat,estimator=st_gumbel_softmax,preset=tiny')
  configs = _members(base, [(0, 1e-3), (1, 1e-3), (1, 3e-4)])
  local = training.run(estimator_comparison.create_task, configs,
                       [str(tmp_path / f'local{i}') for i in range(3)])
  np.testing.assert_allclose(sharded['results'],
                             [o['result']['test/neg_elbo'] for o in local], rtol=1e-5)


def test_one_progress_line_per_chunk_and_tensorboard_events(tmp_path, monkeypatch, caplog):
  """One progress line per logged step, saying it is the chunk's mean; no line from inside.

  The run's TensorBoard events hold what metrics.jsonl holds: the train
  means, tau, steps/s and the valid and test evaluations.
  """
  monkeypatch.setattr(progress, 'PROGRESS_SECONDS', 0.0)  # A callback would print at once.
  config = _config(estimator='gumbel_softmax', num_train_steps=120, log_every=40,
                   checkpoint_every=120, grad_var_every=0)
  caplog.set_level('INFO')
  training.run(estimator_comparison.create_task, [config], [str(tmp_path)])
  lines = [r.getMessage() for r in caplog.records if 'steps/s' in r.getMessage()]
  assert [l.split('  ')[0] for l in lines] == ['step 40/120', 'step 80/120', 'step 120/120']
  metrics = metric_writer.read_metrics(str(tmp_path))
  for line, record, first in zip(lines, metrics, (1, 41, 81)):
    assert f'(mean over steps {first}-{first + 39})' in line and 'ETA' in line, line
    assert f"neg_elbo {record['train/neg_elbo']:.2f} " in line, (line, record)
  assert any('test (' in l.getMessage() for l in caplog.records)

  events = tensorboard_events.read_scalars(str(tmp_path))
  for tag in ('train/neg_elbo', 'train/tau', 'train/loss', 'steps_per_sec', 'valid/neg_elbo',
              'test/neg_elbo', 'test/nll'):
    expected = [(r['step'], r[tag]) for r in metrics if tag in r]
    assert expected, tag
    assert [s for s, _ in events[tag]] == [s for s, _ in expected], tag
    np.testing.assert_allclose([v for _, v in events[tag]], [v for _, v in expected], rtol=1e-6,
                               err_msg=tag)


def test_host_step_loop_matches_scan_and_logs_progress(monkeypatch, caplog):
  """step_loop='host' (one compiled step per call) ends where the scanned chunk ends."""
  monkeypatch.setattr(progress, 'PROGRESS_SECONDS', 0.0)
  config = _config(estimator='gumbel_softmax', grad_var_every=0)
  task = estimator_comparison.create_task(config)
  tx = optimizer.create_optimizer(config)
  keys = jax.random.split(jax.random.key(0), 2)
  params, extra = task.init(keys[0])
  ends = {}
  for loop in ('scan', 'host'):
    state = jax.tree.map(lambda x: x[None], {'params': params, 'opt_state': tx.init(params),
                                             'extra': extra, 'step': np.int32(0)})
    reporter = progress.Progress(100, '', 'neg_elbo') if loop == 'host' else None
    chunk = programs.make_train_chunk(task, tx, batched=False, step_loop=loop,
                                      progress=reporter, progress_every=5)
    caplog.set_level('INFO')
    ends[loop] = jax.device_get(chunk(state, keys[1][None], task.data, num_steps=12))
  chex.assert_trees_all_close(ends['host'][0]['params'], ends['scan'][0]['params'],
                              rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(ends['host'][1]['loss'], ends['scan'][1]['loss'], rtol=1e-4)
  assert ends['host'][1]['loss'].shape == (12, 1)
  assert [r.getMessage().split('  ')[0] for r in caplog.records if 'ETA' in r.getMessage()][:2] \
      == ['step 5/100', 'step 10/100']
  assert programs.resolve_step_loop('auto') == 'host'  # The suite runs on CPU.
  with pytest.raises(ValueError, match="step_loop='loop'.*'scan', 'host', 'auto'"):
    programs.resolve_step_loop('loop')


def test_task_takes_one_form_of_eval_batch():
  """`eval_batch` maps every split of `eval_data` to its function; nothing else is taken."""
  task = estimator_comparison.create_task(_config())
  fn = task.eval_batch['test']
  with pytest.raises(TypeError, match='eval_batch must map each split'):
    training.Task(init=task.init, loss=task.loss, sample_batch=task.sample_batch,
                  data=task.data, eval_batch=fn, eval_data=task.eval_data)
  with pytest.raises(ValueError, match=r"no function for the eval_data splits \['test'\]"):
    training.Task(init=task.init, loss=task.loss, sample_batch=task.sample_batch,
                  data=task.data, eval_batch={'valid': fn}, eval_data=task.eval_data)


def test_groups_share_compiled_programs_only_where_the_loop_derives_the_same_key(tmp_path):
  """One `create_task` and configs that differ only in MEMBER_FIELDS: one trace of the
  training step; another `create_task` or another config field: a trace of its own."""
  traces = []

  def counting(tag):
    def create_task(config):
      task = estimator_comparison.create_task(config)

      def loss(*args):
        traces.append(tag)
        return task.loss(*args)

      return dataclasses.replace(task, loss=loss)
    return create_task

  base = _config(estimator='gumbel_softmax', grad_var_every=0)
  a, b = _members(base, [(0, 1e-3), (1, 3e-4)])
  create = counting('shared')
  shared = [training.run(create, [c], [str(tmp_path / f'shared{i}')])[0]
            for i, c in enumerate((a, b))]
  assert traces.count('shared') == 1
  (alone,) = training.run(counting('alone'), [b], [str(tmp_path / 'alone')])
  assert traces.count('alone') == 1  # Another create_task: its own compilation.
  assert shared[1]['result']['test/neg_elbo'] == alone['result']['test/neg_elbo']
  assert shared[0]['result']['test/neg_elbo'] != shared[1]['result']['test/neg_elbo']
  other = _members(_config(estimator='gumbel_softmax', grad_var_every=0, batch_size=4),
                   [(0, 1e-3)])
  training.run(create, other, [str(tmp_path / 'other')])
  assert traces.count('shared') == 2  # Another config field: another program.
  assert loop_config.config_key(a) == loop_config.config_key(b) != loop_config.config_key(
      _config(estimator='st'))


def test_prepare_without_workdirs_gives_the_loops_start(tmp_path):
  """What benchmarks time: the same keys and state as `run` starts from, no files."""
  base = _config(estimator='gumbel_softmax', grad_var_every=0)
  configs = _members(base, [(0, 1e-3), (1, 3e-4)])
  task = estimator_comparison.create_task(base)
  group = training.prepare(task, configs)
  assert group.batched and group.num_members == 2 and group.step == 0 and not group.workdirs
  states, keys = training.init_members(task, configs)
  chex.assert_trees_all_equal(jax.device_get(group.member(1)['params']),
                              jax.device_get(states[1]['params']))
  np.testing.assert_array_equal(jax.random.key_data(group.keys['loop']),
                                jax.random.key_data(keys['loop']))
  alone = training.prepare(task, configs[:1], batched=True)  # A vmapped program of one.
  assert alone.batched and len(alone.keys['loop']) == 1
  assert not training.prepare(task, configs[:1]).batched
  chunk = programs.compile_train_chunk(group)
  group.state, metrics = chunk(group.state, group.keys['loop'], group.data, num_steps=3)
  assert metrics['loss'].shape == (3, 2) and int(group.state['step'][0]) == 3
  assert not os.listdir(tmp_path)


def test_eta_seconds_and_the_run_files(tmp_path):
  assert progress.eta_seconds(10.0, 20, 100) == pytest.approx(40.0)
  assert progress.eta_seconds(3.0, 0, 100) == float('inf')
  assert progress.format_duration(progress.eta_seconds(1.0, 0, 5)) == '?'
  config = _config()
  workdir = str(tmp_path)
  assert run_files.read_result(workdir) is None and not run_files.is_finished(config, workdir)
  run_files.write_result(workdir, {'step': config.num_train_steps - 1})
  assert not run_files.is_finished(config, workdir)  # Asked for more steps than it had.
  run_files.write_result(workdir, {'step': config.num_train_steps})
  assert run_files.is_finished(config, workdir)
  assert run_files.read_result(workdir) == {'step': config.num_train_steps}
  assert not os.path.exists(os.path.join(workdir, 'result.json.tmp'))
  run_files.write_config(workdir, config)
  assert run_files.read_config(workdir)['optimizer']['learning_rate'] == (
      config.optimizer.learning_rate)
