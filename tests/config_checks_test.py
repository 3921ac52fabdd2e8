"""Config, flag and workdir errors: the field, the value and what is allowed, no traceback."""

import json
import os
import subprocess
import sys

import pytest

from configs import estimator_comparison as ec_config
from configs import vae as vae_config
from experiments import config_checks
from experiments import run_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _vae(**overrides):
  config = vae_config.get_config('tiny')
  config.update_from_flattened_dict(overrides)
  return config


def _main(*args, timeout=120):
  """Runs experiments.main on the tiny VAE config (embedded data)."""
  return subprocess.run(
      [sys.executable, '-m', 'experiments.main', '--config=configs/vae.py:tiny',
       '--config.data.source=embedded', *args],
      capture_output=True, text=True, timeout=timeout, cwd=ROOT,
      env={**os.environ, 'PYTHONPATH': ROOT, 'JAX_PLATFORMS': 'cpu'})


@pytest.mark.parametrize('field,value,allowed', [
    ('batch_size', 0, 'an integer >= 1'),
    ('num_train_steps', -5, 'an integer >= 1'),
    ('log_every', 0, 'an integer >= 1'),
    ('checkpoint_every', 0, 'an integer >= 1'),
    ('eval.batch_size', 0, 'an integer >= 1'),
    ('eval.num_examples', 0, 'an integer >= 1, or -1 for all'),
    ('optimizer.learning_rate', -1e-3, 'a finite number > 0'),
    ('optimizer.learning_rate', float('nan'), 'a finite number > 0'),
    ('temperature.tau0', -1.0, 'a finite number > 0'),
    ('temperature.tau_min', -0.5, 'a finite number >= 0'),
    ('data.source', 'web', 'auto, tfds, idx, embedded'),
    ('optimizer.name', 'lamb', 'adam, sgd'),
])
def test_out_of_range_fields_name_the_field_the_value_and_what_is_allowed(field, value,
                                                                           allowed):
  with pytest.raises(config_checks.ConfigError) as e:
    config_checks.check_config(_vae(**{field: value}))
  assert str(e.value) == (f'config.{field}={value!r} is not allowed; allowed: {allowed}.')
  config_checks.check_config(_vae())  # The config itself is fine.


def test_fields_that_must_fit_together():
  with pytest.raises(config_checks.ConfigError,
                     match=r'^config.checkpoint_every=15 must be a multiple of log_every=10'):
    config_checks.check_config(_vae(checkpoint_every=15))


def test_estimator_hyperparameters_are_checked_with_their_own_advice():
  config = ec_config.get_config('model=vae_cat,estimator=nvil,preset=tiny')
  config_checks.check_config(config)
  config.estimator.hparams.baseline_learning_rate = -1.0
  with pytest.raises(config_checks.ConfigError) as e:
    config_checks.check_config(config)
  message = str(e.value)
  assert message.startswith("config.estimator.hparams: Estimator 'nvil': baseline_learning_rate")
  assert 'Adam step size' in message and 'hard=True' not in message
  config = ec_config.get_config('model=vae_cat,estimator=nvil,preset=tiny')
  config.estimator.init_hparams.hidden = 0
  with pytest.raises(config_checks.ConfigError, match='init_hparams.*hidden must be an integer'):
    config_checks.check_config(config)


def test_unknown_override_names_the_nearest_valid_keys():
  config = _vae()
  assert config_checks.unknown_override(['--config.batch_size=3'], config) is None
  assert config_checks.unknown_override(['--config.model.hard'], config) is None
  message = config_checks.unknown_override(['--config.seed=1', '--config.batchsize=3'], config)
  assert message == ('--config.batchsize names no field of the config; nearest valid keys: '
                     'batch_size, eval.batch_size.')
  message = config_checks.unknown_override(['--config.model.num_clases=3'], config)
  assert 'nearest valid keys: model.num_classes' in message
  message = config_checks.unknown_override(['--config.foo=1'], config)
  assert message.startswith('--config.foo names no field of the config; valid keys: batch_size,')


def test_a_workdir_that_is_a_file_is_an_error_naming_it(tmp_path):
  path = tmp_path / 'file'
  path.write_text('')
  with pytest.raises(config_checks.ConfigError, match=f'--workdir={path} is a file'):
    config_checks.check_workdir(str(path))
  config_checks.check_workdir(str(tmp_path))
  config_checks.check_workdir(str(tmp_path / 'new'))


def test_a_resumable_workdir_of_another_config_is_an_error_naming_the_fields(tmp_path):
  workdir = str(tmp_path)
  run_files.write_config(workdir, _vae())
  config_checks.check_saved_config(_vae(**{'model.num_classes': 4}), workdir)  # No checkpoint.
  run_files.write_result(workdir, {'step': 40})
  # The step count and the evaluation settings may change.
  config_checks.check_saved_config(_vae(num_train_steps=80, **{'eval.num_samples': 16}),
                                   workdir)
  with pytest.raises(config_checks.ConfigError) as e:
    config_checks.check_saved_config(_vae(seed=3, **{'model.num_classes': 4}), workdir)
  assert str(e.value) == (
      f'--workdir={workdir} holds a run of another config (its config.json): '
      'model.num_classes (saved 3, given 4); seed (saved 0, given 3). Use a new --workdir, or '
      'pass --force_config to continue this one with the config given.')
  config_checks.check_saved_config(_vae(seed=3), workdir, force=True)
  os.remove(os.path.join(workdir, 'result.json'))
  os.makedirs(os.path.join(workdir, 'checkpoints', '20'))  # Resumable: the same check.
  with pytest.raises(config_checks.ConfigError, match=r'seed \(saved 0, given 3\)'):
    config_checks.check_saved_config(_vae(seed=3), workdir)


def test_launcher_config_errors_are_one_line_and_write_nothing(tmp_path):
  """Each error is the last line, without a traceback, and no workdir file is written."""
  workdir = tmp_path / 'run'
  for args, expected in [
      (['--config.foo=1'], 'FATAL --config.foo names no field of the config; valid keys: '),
      (['--config.batch_size=0'], 'FATAL config.batch_size=0 is not allowed; allowed: an '
                                  'integer >= 1.'),
      (['--config.data.source=auto', f'--config.data.dir={tmp_path}/none'],
       f"FATAL data.dir='{tmp_path}/none' does not exist (data.source=auto)"),
  ]:
    out = _main(f'--workdir={workdir}', *args)
    assert out.returncode == 1, out.stderr[-2000:]
    assert 'Traceback' not in out.stderr, out.stderr[-3000:]
    (line,) = [l for l in out.stderr.splitlines() if l.startswith('FATAL')]
    assert line.startswith(expected), line
    assert not workdir.exists()
  (tmp_path / 'file').write_text('')
  out = _main(f'--workdir={tmp_path / "file"}')
  assert out.returncode == 1 and 'Traceback' not in out.stderr
  assert f'FATAL --workdir={tmp_path / "file"} is a file' in out.stderr


def test_launcher_refuses_a_finished_run_of_another_config(tmp_path):
  workdir = str(tmp_path)
  saved = _vae(**{'data.source': 'embedded'})
  run_files.write_config(workdir, saved)
  run_files.write_result(workdir, {'step': saved.num_train_steps})
  out = _main(f'--workdir={workdir}', '--config.model.num_classes=4')
  assert out.returncode == 1 and 'Traceback' not in out.stderr, out.stderr[-3000:]
  assert 'model.num_classes (saved 3, given 4)' in out.stderr and '--force_config' in out.stderr
  out = _main(f'--workdir={workdir}', '--config.eval.num_samples=4')  # Finished: skipped.
  assert out.returncode == 0, out.stderr[-3000:]
  assert 'is finished (result.json); not training it again' in out.stderr
  assert json.load(open(os.path.join(workdir, 'config.json')))['model']['num_classes'] == 3


def test_the_experiments_own_checks_are_config_errors():
  """An experiment's `check_config` (its model and schedule choices) fails as a
  `ConfigError`, which the command line prints in one line."""
  from configs import estimator_comparison as ec_config  # pylint: disable=g-import-not-at-top
  config = ec_config.get_config('model=sbn_bern,estimator=vimco,preset=tiny')
  config_checks.check_config(config)
  config.estimator.paths = 'both'
  with pytest.raises(config_checks.ConfigError,
                     match=r"^config: Unknown estimator.paths='both'; allowed: \('joint', 'nested'\)"):
    config_checks.check_config(config)
  config = ec_config.get_config('model=vae_cat,estimator=annealed_st,preset=tiny')
  config.estimator.slope.schedule = 'linear'
  with pytest.raises(config_checks.ConfigError, match="slope.schedule='linear'; allowed"):
    config_checks.check_config(config)
