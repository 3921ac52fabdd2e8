"""Tests for scripts/plot_runs.py on hand-written workdirs."""

import json
import logging
import os
import subprocess
import sys

import pytest

from scripts import plot_runs

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def _config(**overrides):
  config = {
      'experiment': 'vae', 'seed': 0,
      'model': {'hard': False, 'num_classes': 10},
      'optimizer': {'name': 'adam', 'learning_rate': 1e-3},
      'temperature': {'tau_min': 0.5},
  }
  for dotted, value in overrides.items():
    node = config
    *parents, leaf = dotted.split('.')
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return config


def _metrics(num_steps=4, grad_var=(), valid=False, scale=1.0):
  lines = []
  for i in range(1, num_steps + 1):
    line = {'step': 100 * i, 'train/neg_elbo': scale * (200.0 - 10 * i), 'train/kl': 5.0 + i,
            'train/tau': max(0.5, 1.0 - 0.1 * i), 'steps_per_sec': 100.0}
    line.update({f'grad_var/{name}': 10.0 / i for name in grad_var})
    if valid:
      line['valid/neg_elbo'] = 205.0 - 10 * i
    lines.append(line)
  lines.append({'step': 100 * num_steps, 'test/neg_elbo': 170.0, 'test/nll_iw1000': 160.0,
                'data': 'embedded:mnist_5000'})
  return lines


def _write_run(path, config, metrics, tail=''):
  os.makedirs(os.path.join(path, 'checkpoints', '100'), exist_ok=True)
  if config is not None:
    with open(os.path.join(path, 'config.json'), 'w') as f:
      json.dump(config, f)
  with open(os.path.join(path, 'metrics.jsonl'), 'w') as f:
    f.writelines(json.dumps(m) + '\n' for m in metrics)
    f.write(tail)
  return str(path)


def test_labels_are_the_fields_that_differ():
  configs = [_config(**{'estimator.name': 'rebar', 'seed': 0}),
             _config(**{'estimator.name': 'rebar', 'seed': 1}),
             _config(**{'estimator.name': 'relax', 'seed': 0})]
  assert plot_runs.make_labels(configs, ['a', 'b', 'c']) == [
      'estimator=rebar, seed=0', 'estimator=rebar, seed=1', 'estimator=relax, seed=0']


def test_labels_with_hard_and_learning_rate():
  configs = [_config(), _config(**{'model.hard': True, 'optimizer.learning_rate': 3e-4})]
  assert plot_runs.make_labels(configs, ['a', 'b']) == [
      'hard=False, lr=0.001', 'hard=True, lr=0.0003']


def test_labels_mark_a_missing_field():
  configs = [_config(), _config(**{'estimator.name': 'st'})]
  assert plot_runs.make_labels(configs, ['a', 'b']) == ['estimator=n/a', 'estimator=st']


def test_labels_fall_back_to_other_differing_fields():
  configs = [_config(), _config(**{'temperature.tau_min': 0.1})]
  assert plot_runs.make_labels(configs, ['a', 'b']) == [
      'temperature.tau_min=0.5', 'temperature.tau_min=0.1']


def test_other_fields_only_when_the_usual_ones_collide():
  configs = [_config(seed=0), _config(seed=1, **{'temperature.tau_min': 0.1}),
             _config(seed=1)]
  assert plot_runs.make_labels(configs, ['a', 'b', 'c']) == [
      'seed=0, temperature.tau_min=0.5', 'seed=1, temperature.tau_min=0.1',
      'seed=1, temperature.tau_min=0.5']


def test_names_tell_apart_runs_with_the_same_fields():
  configs = [_config(seed=0), _config(seed=0), _config(seed=1)]
  assert plot_runs.make_labels(configs, ['a', 'b', 'c']) == [
      'seed=0 (a)', 'seed=0 (b)', 'seed=1']


def test_labels_of_identical_configs_are_the_names():
  assert plot_runs.make_labels([_config()], ['run']) == ['run']
  assert plot_runs.make_labels([_config(), _config()], ['x/1', 'x/2']) == ['x/1', 'x/2']


def test_sweep_folder_expands_to_its_members(tmp_path):
  for member in ('member_1', 'member_0'):
    _write_run(tmp_path / 'sweep' / member, _config(seed=int(member[-1])), _metrics())
  single = _write_run(tmp_path / 'single', _config(seed=5), _metrics())
  runs = plot_runs.load_runs([str(tmp_path / 'sweep'), single])
  assert [r.name for r in runs] == ['sweep/member_0', 'sweep/member_1', 'single']
  assert [r.config['seed'] for r in runs] == [0, 1, 5]
  assert all(len(r.metrics) == 5 for r in runs)


def test_folder_without_runs_is_an_error(tmp_path):
  (tmp_path / 'empty' / 'sub').mkdir(parents=True)
  with pytest.raises(ValueError, match='no metrics.jsonl'):
    plot_runs.find_runs([str(tmp_path / 'empty')])


def test_truncated_last_line_is_dropped_with_a_warning(tmp_path, caplog):
  run = _write_run(tmp_path / 'run', _config(), _metrics(num_steps=3),
                   tail='{"step": 400, "train/neg_elbo": 17')
  caplog.set_level(logging.WARNING, logger='absl')
  runs = plot_runs.load_runs([run])
  assert 'metrics.jsonl: dropped 1 unreadable line(s) (5)' in caplog.text
  assert [m['step'] for m in runs[0].metrics] == [100, 200, 300, 300]
  out = tmp_path / 'curves.png'
  assert plot_runs.plot_runs(runs, str(out)) == ['neg_elbo', 'kl', 'tau']
  assert out.read_bytes()[:8] == PNG_MAGIC


def test_writes_png_with_all_panels_when_grad_var_is_logged(tmp_path):
  a = _write_run(tmp_path / 'a', _config(**{'estimator.name': 'rebar'}),
                 _metrics(grad_var=('rebar', 'sf'), valid=True))
  b = _write_run(tmp_path / 'b', _config(**{'estimator.name': 'sf'}),
                 _metrics(grad_var=('sf',), scale=1.1))
  out = tmp_path / 'curves.png'
  panels = plot_runs.plot_runs(plot_runs.load_runs([a, b]), str(out), title='test')
  assert panels == ['neg_elbo', 'kl', 'tau', 'grad_var']
  assert out.read_bytes()[:8] == PNG_MAGIC and out.stat().st_size > 20_000


def test_panels_without_data_are_left_out(tmp_path):
  metrics = [{'step': s, 'train/neg_elbo': 100.0 / s, 'grad_var/st': 1.0 / s} for s in (1, 2, 3)]
  run = _write_run(tmp_path / 'run', _config(), metrics)
  panels = plot_runs.plot_runs(plot_runs.load_runs([run]), str(tmp_path / 'c.png'))
  assert panels == ['neg_elbo', 'grad_var']


def test_no_plottable_metric_is_an_error(tmp_path):
  run = _write_run(tmp_path / 'run', _config(), [{'step': 1, 'steps_per_sec': 3.0}])
  with pytest.raises(ValueError, match='nothing to plot'):
    plot_runs.plot_runs(plot_runs.load_runs([run]), str(tmp_path / 'c.png'))


def test_missing_config_warns_and_uses_the_folder_name(tmp_path):
  run = _write_run(tmp_path / 'run', None, _metrics())
  with pytest.warns(UserWarning, match='config.json: missing'):
    runs = plot_runs.load_runs([run])
  assert runs[0].config == {} and runs[0].name == 'run'


def test_command_line(tmp_path):
  for seed in (0, 1):
    _write_run(tmp_path / 'sweep' / f'seed_{seed}', _config(seed=seed), _metrics())
  other = _write_run(tmp_path / 'st', _config(**{'model.hard': True}), _metrics())
  out = tmp_path / 'curves.png'
  result = subprocess.run(
      [sys.executable, '-m', 'scripts.plot_runs', str(tmp_path / 'sweep'), other, f'--out={out}'],
      check=True, capture_output=True, text=True,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert '3 runs' in result.stdout
  assert out.read_bytes()[:8] == PNG_MAGIC
