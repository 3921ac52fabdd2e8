"""Tests of the semi-supervised M2 experiment (experiments/ssl.py) and its scripts."""

import collections
import csv
import json
import math
import os
import shutil
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import ssl as ssl_config
from experiments import launcher
from experiments import metric_writer
from experiments import models
from experiments import optimizer
from experiments import programs
from experiments import ssl
from experiments import sweep
from experiments import training
from scripts import reproduce_table2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(mode='gumbel', **overrides):
  config = ssl_config.get_config(f'mode={mode},preset=tiny')
  config.lock()
  config.update_from_flattened_dict(overrides)
  return config


@pytest.fixture(scope='module')
def tiny_model():
  """M2 with K=4 classes and z_dim=3, and parameters with a clearly non-uniform q(y|x)."""
  k = 4
  model = models.M2(num_classes=k, z_dim=3, encoder_features=(4, 4, 4), hidden=8,
                    decoder_features=(4, 4, 4))
  params = jax.jit(lambda key: models.init_lecun_normal(
      model, key, jnp.zeros((1, 784)), jnp.zeros((1, k)), jnp.zeros((1, 3))))(jax.random.key(0))
  bias = params['params']['classifier_out']['bias']
  params['params']['classifier_out']['bias'] = bias + jnp.linspace(-2.0, 1.5, k)
  return model, params


def _images(key, n):
  return jax.random.bernoulli(key, 0.3, (n, 784)).astype(jnp.float32)


# ----------------------------------------------------------------------------
# The bound.
# ----------------------------------------------------------------------------


def test_gaussian_kl_closed_form():
  mean, log_std = jnp.asarray([[0.3, -1.0]]), jnp.asarray([[0.2, -0.5]])
  want = np.sum(-log_std + (np.exp(2 * log_std) + np.square(mean)) / 2 - 0.5)
  np.testing.assert_allclose(ssl.gaussian_kl(mean, log_std), [want], rtol=1e-6)
  assert float(ssl.gaussian_kl(jnp.zeros((1, 3)), jnp.zeros((1, 3)))[0]) == 0.0


def test_marginal_elbo_equals_the_sum_over_y_enumerated_by_hand(tiny_model):
  """sum_y q(y|x) ELBO(x, y) + H(q(y|x)), a Python loop over classes, same z noise."""
  model, params = tiny_model
  k = model.num_classes
  x = _images(jax.random.key(1), 5)
  eps = jax.random.normal(jax.random.key(2), (k, 5, 3))

  @jax.jit
  def marginal(params):
    logits_y = model.apply(params, x, method='classify')
    h = model.apply(params, x, method='encode_x')  # The shared trunk.
    return ssl.marginal_elbo(params, model=model, logits_y=logits_y, h=h, x=x, eps=eps), logits_y

  @jax.jit
  def labelled_elbo(params, x, y, eps):  # ELBO(x, y) = the conditional bound + log p(y).
    h = model.apply(params, x, method='encode_x')
    return ssl.conditional_elbo(params, model=model, h=h, x=x, y=y, eps=eps) - math.log(k)

  got, logits_y = marginal(params)
  q = np.asarray(jax.nn.softmax(logits_y))
  assert q.max() > 0.5  # Not uniform: the weights matter.
  want = -np.sum(q * np.log(q), axis=-1)  # H(q(y|x))
  for y in range(k):
    one_hot = jax.nn.one_hot(jnp.full((5,), y), k)
    want = want + q[:, y] * np.asarray(labelled_elbo(params, x=x, y=one_hot, eps=eps[y]))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  chex.assert_shape(got, (5,))


def test_straight_through_sample_is_an_unbiased_estimate_of_the_marginal_bound(tiny_model):
  """Statistical: the mean of 2,000 ST estimates (y one-hot forward) within 5 s.e."""
  model, params = tiny_model
  k, n = model.num_classes, 2000
  x = _images(jax.random.key(1), 2)
  logits_y, h = jax.jit(lambda p: (model.apply(p, x, method='classify'),
                                   model.apply(p, x, method='encode_x')))(params)

  @jax.jit
  def estimates(key):
    def one(key):
      key_y, key_eps = jax.random.split(key)
      eps = jax.random.normal(key_eps, (2, 3))
      return ssl.sampled_elbo(params, key_y, model=model, logits_y=logits_y, h=h, x=x,
                              eps=eps, tau=0.5, hard=True)
    return jax.vmap(one)(jax.random.split(key, n))  # [n, 2]

  def exact(key):  # The marginal bound averaged over z noise.
    eps = jax.random.normal(key, (n, k, 2, 3))
    return jax.vmap(lambda e: ssl.marginal_elbo(params, model=model, logits_y=logits_y, h=h,
                                                x=x, eps=e))(eps)

  sampled = np.asarray(estimates(jax.random.key(3)))
  marginal = np.asarray(jax.jit(exact)(jax.random.key(4)))
  se = np.sqrt(sampled.var(0) / n + marginal.var(0) / n)
  assert np.all(np.abs(sampled.mean(0) - marginal.mean(0)) < 5 * se), (
      sampled.mean(0), marginal.mean(0), se)


def _conv_batch_sizes(jaxpr) -> collections.Counter:
  """Batch size of every convolution in a jaxpr, sub-jaxprs included."""
  sizes = collections.Counter()
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == 'conv_general_dilated':
      sizes[eqn.invars[0].aval.shape[0]] += 1
    for param in eqn.params.values():
      for sub in param if isinstance(param, (list, tuple)) else [param]:
        if hasattr(sub, 'eqns'):  # A Jaxpr.
          sizes += _conv_batch_sizes(sub)
        elif hasattr(sub, 'jaxpr') and hasattr(sub, 'consts'):  # A ClosedJaxpr.
          sizes += _conv_batch_sizes(sub.jaxpr)
  return sizes


@pytest.mark.parametrize('num_classes', [2, 8])
def test_marginalization_runs_q_y_and_the_z_trunk_once_per_example(num_classes):
  """In the traced loss: 6 encoder convs on B + B_l rows whatever K; 4 decoder convs on K B."""
  b, b_l = 8, 5
  config = _config('marginalize', **{'model.num_classes': num_classes, 'data.labels': 'random',
                                     'batch_size': b, 'labelled_batch_size': b_l})
  task = ssl.create_task(config)
  key = jax.random.key(0)
  params, extra = jax.eval_shape(task.init, key)  # Shapes suffice for tracing.
  data = jax.device_put(task.data)
  jaxpr = jax.make_jaxpr(
      lambda p, e: task.loss(p, e, task.sample_batch(data, key, e), key, 0)[0])(params, extra)
  # 3 convs of q(y|x) + 3 of the trunk of q(z|x,y), once, on both batches together;
  # the decoder's 4 transposed convs on every (class, unlabelled image) and on the labelled.
  assert _conv_batch_sizes(jaxpr.jaxpr) == {b + b_l: 6, num_classes * b: 4, b_l: 4}


# ----------------------------------------------------------------------------
# Labelled and unlabelled data.
# ----------------------------------------------------------------------------


def test_labelled_set_is_class_balanced_deterministic_per_key_and_differs_between_keys():
  labels = np.random.default_rng(0).integers(0, 10, 3000).astype(np.int32)
  select = jax.jit(lambda key: ssl.select_labelled(key, labels, num_classes=10, per_class=10))
  a, b = np.asarray(select(jax.random.key(0))), np.asarray(select(jax.random.key(1)))
  np.testing.assert_array_equal(a, np.asarray(select(jax.random.key(0))))
  for index in (a, b):
    assert len(set(index.tolist())) == 100 and np.all(np.diff(index) > 0)
    np.testing.assert_array_equal(np.bincount(labels[index], minlength=10), [10] * 10)
  assert len(set(a.tolist()) & set(b.tolist())) < 20


def test_unlabelled_index_enumerates_the_rest():
  labelled = jnp.asarray([0, 3, 4, 9, 10], jnp.int32)
  rank = jnp.arange(12 - 5, dtype=jnp.int32)
  np.testing.assert_array_equal(ssl.unlabelled_index(rank, labelled),
                                np.setdiff1d(np.arange(12), labelled))


def test_bad_config_values_name_the_field_and_the_allowed_values():
  with pytest.raises(ValueError, match="y_mode='sum'.*marginalize"):
    ssl.create_task(_config(**{'model.y_mode': 'sum'}))
  with pytest.raises(ValueError, match='model.num_classes=20.*10 classes.*random'):
    ssl.create_task(_config(**{'model.num_classes': 20}))
  with pytest.raises(ValueError, match='num_labelled_per_class=2000.*at most'):
    ssl.create_task(_config(**{'data.num_labelled_per_class': 2000}))
  with pytest.raises(ValueError, match="mode='sum'"):
    ssl_config.get_config('mode=sum')
  with pytest.raises(ValueError, match="classes='ten'"):
    ssl_config.get_config('classes=ten')


# ----------------------------------------------------------------------------
# Training, resuming, the table.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize('mode', ['marginalize', 'st_gumbel'])
def test_mode_trains_without_nan(mode):
  """A few compiled steps of the loop's own chunk ('gumbel' trains in the sweep below)."""
  config = _config(mode)
  task = ssl.create_task(config)
  tx = optimizer.create_optimizer(config)
  params, extra = jax.jit(task.init)(jax.random.key(0))
  state = jax.tree.map(lambda x: x[None], {'params': params, 'opt_state': tx.init(params),
                                           'extra': extra, 'step': jnp.int32(0)})
  before = jax.device_get(state['params'])
  chunk = programs.make_train_chunk(task, tx, batched=False)
  state, metrics = chunk(state, jax.random.key(1)[None], task.data, num_steps=4)
  for name in ('loss', 'neg_elbo', 'labelled_neg_elbo', 'cross_entropy', 'grad_norm'):
    assert np.all(np.isfinite(metrics[name])), name
  assert int(state['step'][0]) == 4
  changed = jax.tree.map(lambda a, b: not np.allclose(a, b), before,
                         jax.device_get(state['params']))
  assert all(jax.tree.leaves(changed))  # Every parameter gets a gradient.


@pytest.fixture(scope='module')
def gumbel_sweep(tmp_path_factory):
  """The tiny sweep of mode=gumbel (2 alphas x 2 seeds), trained by the table's members."""
  workdir = str(tmp_path_factory.mktemp('table2'))
  cells = reproduce_table2.cell_members('tiny', ['gumbel'], workdir)
  results = launcher.run(cells['gumbel'])
  return workdir, cells['gumbel'], results


def test_sweep_trains_and_each_seed_has_its_own_labelled_set(gumbel_sweep):
  _, members, results = gumbel_sweep
  assert len(members) == 4 and len(sweep.group(members)) == 2  # One program per alpha.
  labelled = {}
  for m in members:
    result = results[m.workdir]
    assert result['diverged_step'] is None
    for key in ('valid/accuracy', 'test/accuracy', 'test/neg_elbo', 'valid/neg_elbo'):
      assert np.isfinite(result[key]), key
    assert os.path.exists(os.path.join(m.workdir, 'samples.png'))
    with open(os.path.join(m.workdir, 'labelled.json')) as f:
      chosen = json.load(f)
    assert np.bincount(chosen['labels'], minlength=10).tolist() == [10] * 10
    labelled.setdefault(m.config.seed, []).append(chosen['train_index'])
  for seed, sets in labelled.items():  # Both alphas: the same set for the same seed.
    assert sets[0] == sets[1], seed
  assert labelled[0][0] != labelled[1][0]


def test_resumed_run_matches_uninterrupted(gumbel_sweep, tmp_path):
  """A run killed after its step-10 checkpoint resumes to the sweep's uninterrupted result.

  The killed runs' folders are the uninterrupted runs' as a kill after step 10
  leaves them: the step-10 checkpoint (the same program writes it either
  way), metrics past step 10, no step-20 checkpoint and no result.
  """
  _, members, results = gumbel_sweep
  reference = [m for m in members if m.config.loss.alpha == 0.1]
  workdirs = [str(tmp_path / os.path.basename(m.workdir)) for m in reference]
  for m, workdir in zip(reference, workdirs):
    shutil.copytree(m.workdir, workdir, ignore=lambda d, names: (
        {'20'} if os.path.basename(d) == 'checkpoints' else
        {'result.json', 'labelled.json', 'samples.png'}))
  outputs = training.run(ssl.create_task, [m.config for m in reference], workdirs)
  for m, out, workdir in zip(reference, outputs, workdirs):
    assert int(out['state']['step']) == 20
    for key in ('test/neg_elbo', 'test/accuracy', 'valid/neg_elbo', 'valid/cross_entropy'):
      assert out['result'][key] == pytest.approx(results[m.workdir][key], rel=1e-5), key
    with open(os.path.join(workdir, 'labelled.json')) as f, \
        open(os.path.join(m.workdir, 'labelled.json')) as g:
      assert json.load(f) == json.load(g)  # The seed's labelled set, restored.
    steps = [l['step'] for l in metric_writer.read_metrics(workdir) if 'train/loss' in l]
    assert steps == [10, 20]


def test_table_picks_alpha_on_validation_and_names_missing_runs(gumbel_sweep):
  workdir, members, results = gumbel_sweep
  cells = reproduce_table2.cell_members('tiny', list(reproduce_table2.ROWS), workdir)
  text = reproduce_table2.write_table(cells, workdir, 'tiny', wall_seconds=12.0)
  valid = collections.defaultdict(list)
  for m in members:
    valid[m.config.loss.alpha].append(results[m.workdir]['valid/accuracy'])
  best = max(valid, key=lambda a: (np.mean(valid[a]), -a))
  chosen = [results[m.workdir] for m in members if m.config.loss.alpha == best]
  with open(os.path.join(workdir, 'table2.csv')) as f:
    rows = {r['mode']: r for r in csv.DictReader(f)}
  assert float(rows['gumbel']['alpha']) == best
  assert float(rows['gumbel']['accuracy']) == pytest.approx(
      100 * np.mean([r['test/accuracy'] for r in chosen]))
  assert float(rows['gumbel']['elbo']) == pytest.approx(
      -np.mean([r['test/neg_elbo'] for r in chosen]))
  assert rows['marginalize']['elbo'] == '' and rows['marginalize']['missing'] == '4'
  assert '| Gumbel | ' in text and '(paper)' in text and '-109.6' in text
  assert '| Marginalization | missing | -106.8 | missing | 92.6% |' in text
  assert 'Missing (8 runs not finished):' in text
  assert os.path.join(workdir, 'st_gumbel', 'loss.alpha=1.0,seed=1') in text
  assert 'Preset `tiny` cuts' in text and 'Wall time of this run: 12s.' in text


def test_task_evaluates_every_split_with_one_function():
  task = ssl.create_task(_config())
  assert set(task.eval_batch) == set(task.eval_data) == {'valid', 'test'}
  assert task.eval_batch['valid'] is task.eval_batch['test']


# ----------------------------------------------------------------------------
# The speed comparison.
# ----------------------------------------------------------------------------


def test_speedup_script_prints_json_and_draws_the_png(tmp_path):
  proc = subprocess.run(
      [sys.executable, '-m', 'scripts.ssl_speedup', '--classes=3', '--preset=tiny',
       '--repeats=2', '--steps=1', f'--out={tmp_path}'],
      cwd=ROOT, capture_output=True, text=True, timeout=300,
      env={**os.environ, 'JAX_PLATFORMS': 'cpu'})
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{')]
  assert [r['classes'] for r in rows] == [3]
  for r in rows:
    assert r['marginalize_s_per_step'] > 0 and r['gumbel_s_per_step'] > 0
    assert r['speedup'] == pytest.approx(r['marginalize_s_per_step'] / r['gumbel_s_per_step'])
    assert r['device'].startswith('cpu') and len(r['times_s_per_step']['gumbel']) == 2
  assert os.path.getsize(tmp_path / 'ssl_speedup.png') > 1000
  with open(tmp_path / 'ssl_speedup.json') as f:
    assert json.load(f) == rows
