"""End-to-end tests of the categorical VAE experiment on its tiny config."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import vae as vae_config
from experiments import metric_writer
from experiments import optimizer
from experiments import programs
from experiments import run_files
from experiments import vae
from scripts import results_table


def _tiny_config(**overrides):
  config = vae_config.get_config('tiny')
  config.data.source = 'embedded'
  config.update_from_flattened_dict(overrides)
  return config


@pytest.fixture(scope='module')
def full_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('full'))
  state = vae.train_and_evaluate(_tiny_config(), workdir)
  return workdir, state


def test_outputs_and_loss_goes_down(full_run):
  workdir, state = full_run
  for name in ('config.json', 'metrics.jsonl', 'samples.png', 'reconstructions.png',
               'latent_classes.png', 'result.json'):
    assert os.path.exists(os.path.join(workdir, name)), name
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['20', '40']
  lines = metric_writer.read_metrics(workdir)
  train = [l for l in lines if 'train/neg_elbo' in l]
  assert [l['step'] for l in train] == [10, 20, 30, 40]
  assert train[-1]['train/neg_elbo'] < train[0]['train/neg_elbo'] - 20
  for l in train:
    assert {'train/tau', 'train/kl', 'train/recon', 'steps_per_sec'} <= set(l)
    assert np.isfinite(l['train/neg_elbo'])
  test = lines[-1]
  assert test['step'] == 40
  assert np.isfinite(test['test/neg_elbo']) and np.isfinite(test['test/nll'])
  assert not any(k.startswith('test/nll_iw') for k in test)  # No config value in a name.
  # The importance-weighted bound is tighter than the single-sample ELBO.
  assert test['test/nll'] < test['test/neg_elbo']
  assert int(state['step']) == 40
  assert test['data'] == 'embedded:mnist_5000'
  assert run_files.read_result(workdir)['test/nll'] == test['test/nll']
  row = results_table.row(workdir)
  assert '| embedded:mnist_5000 (dynamic) | 40 |' in row
  assert row.endswith(f"| {test['test/neg_elbo']:.2f} | {test['test/nll']:.2f} |")


def test_results_table_reads_the_old_metric_name(tmp_path):
  """Result files written before `nll_iw<m>` became `nll` still make a row."""
  with open(tmp_path / 'config.json', 'w') as f:
    json.dump({'model': {'hard': False},
               'data': {'source': 'embedded', 'name': 'mnist', 'binarization': 'dynamic'}}, f)
  with open(tmp_path / 'metrics.jsonl', 'w') as f:
    f.write(json.dumps({'step': 10, 'train/neg_elbo': 200.0, 'steps_per_sec': 10.0}) + '\n')
    f.write(json.dumps({'step': 10, 'test/neg_elbo': 170.0, 'test/nll_iw1000': 160.5}) + '\n')
  assert results_table.row(str(tmp_path)).endswith('| 170.00 | 160.50 |')


def test_resumed_run_matches_uninterrupted(full_run, tmp_path):
  workdir = str(tmp_path)
  vae.train_and_evaluate(_tiny_config(num_train_steps=20), workdir)
  resumed = vae.train_and_evaluate(_tiny_config(), workdir)  # Continues from 20.
  steps = [l['step'] for l in metric_writer.read_metrics(workdir) if 'train/neg_elbo' in l]
  assert steps == [10, 20, 30, 40]  # 10 and 20 were not trained again.
  chex_equal = jax.tree.map(np.testing.assert_array_equal,
                            jax.device_get(resumed['params']),
                            jax.device_get(full_run[1]['params']))
  del chex_equal


def _initial_state(config, task):
  tx = optimizer.create_optimizer(config)
  params, extra = task.init(jax.random.key(0))
  state = {'params': params, 'opt_state': tx.init(params), 'extra': extra,
           'step': jnp.int32(0)}
  return jax.tree.map(lambda x: x[None], state), tx  # A member axis of one.


def test_one_compilation_per_chunk_length():
  config = _tiny_config()
  task = vae.create_task(config)
  state, tx = _initial_state(config, task)
  train_chunk = programs.make_train_chunk(task, tx, batched=False)
  images = jnp.asarray(np.random.default_rng(0).random((64, 784), np.float32))
  keys = jax.random.key(1)[None]
  for _ in range(3):
    state, metrics = train_chunk(state, keys, images, num_steps=5)
  assert train_chunk._cache_size() == 1  # pylint: disable=protected-access
  assert int(state['step'][0]) == 15
  assert metrics['neg_elbo'].shape == (5, 1)
  assert np.all(np.isfinite(metrics['neg_elbo']))


@pytest.mark.parametrize('variant', ['st', 'learned_tau', 'learned_prior'])
def test_variants_train_without_nan(variant):
  config = vae_config.get_config(f'tiny,{variant}')
  config.data.source = 'embedded'
  task = vae.create_task(config)
  state, tx = _initial_state(config, task)
  images = jnp.asarray(np.random.default_rng(0).random((64, 784), np.float32))
  state, metrics = programs.make_train_chunk(task, tx, batched=False)(
      state, jax.random.key(1)[None], images, num_steps=3)
  assert np.all(np.isfinite(metrics['neg_elbo']))
  assert np.all(np.isfinite(jax.tree.leaves(jax.tree.map(jnp.sum, state['params']))))
  if variant == 'learned_tau':
    assert 'raw_temperature' in state['params']['params']
    assert metrics['tau'][0, 0] == pytest.approx(config.temperature.tau0, rel=1e-5)
    assert metrics['tau'][-1, 0] != metrics['tau'][0, 0]  # The temperature is trained.


def test_paper_model_parameter_count():
  config = vae_config.get_config()
  params = vae.create_model(config).init(jax.random.key(0), jnp.zeros((1, 784)))
  # 784-512-256-300 encoder and 300-256-512-784 decoder, with biases.
  assert sum(x.size for x in jax.tree.leaves(params)) == 1_221_180


def test_bad_configs():
  with pytest.raises(ValueError, match='bogus'):
    vae_config.get_config('bogus')
  config = _tiny_config()
  config.temperature.schedule = 'cosine'
  with pytest.raises(ValueError, match='cosine'):
    vae.create_model(config)
  config = _tiny_config(checkpoint_every=15)
  with pytest.raises(ValueError, match='checkpoint_every=15'):
    vae.train_and_evaluate(config, '/nonexistent/never/written')


def test_launcher_rejects_unknown_config_key(tmp_path):
  out = subprocess.run(
      [sys.executable, '-m', 'experiments.main', '--config=configs/vae.py:tiny',
       f'--workdir={tmp_path}', '--config.model.hardd=True'],
      capture_output=True, text=True, timeout=120,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert out.returncode != 0
  assert 'hardd' in out.stderr
  assert not os.path.exists(tmp_path / 'metrics.jsonl')
