"""Tests of the Table 1 models: shapes, exact evaluation, nested estimators."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import estimator_comparison as ec_config
from experiments import estimator_comparison as ec
from gumbel import diagnostics
from gumbel import kinds
import gumbel

FAST = diagnostics.FAST_COMPILE


def _config(model, estimator='sf', preset='tiny'):
  return ec_config.get_config(f'model={model},estimator={estimator},preset={preset}')


@pytest.mark.parametrize('model,count', [('sbn_bern', 197_592), ('sbn_cat', 197_592),
                                         ('vae_bern', 314_784), ('vae_cat', 314_784)])
def test_paper_model_parameter_counts(model, count):
  """392-200-200-392 and 784-200-784 (20x10 categorical: the same widths), linear.

  The VAEs add the 200 logits of their learned prior (the final text of [GS]).
  """
  config = _config(model, preset='paper')
  nets, layers = ec.create_networks(config)
  params = ec.init_params(jax.random.key(0), config, nets, layers)
  assert sum(x.size for x in jax.tree.leaves(params)) == count


def _bernoulli_configs(d):
  return jnp.asarray(list(itertools.product([0.0, 1.0], repeat=d)), jnp.float32)


def _categorical_configs(d, k):
  return jax.nn.one_hot(np.asarray(list(itertools.product(range(k), repeat=d))), k)


def _all_configs(layer):
  if layer.kind == 'bernoulli':
    return _bernoulli_configs(layer.num_vars)
  return _categorical_configs(layer.num_vars, layer.num_classes)


def _random_params(config, scale=1.0):
  nets, layers = ec.create_networks(config)
  params = ec.init_params(jax.random.key(1), config, nets, layers)
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(2), len(leaves))
  leaves = [scale * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)]
  return nets, layers, jax.tree.unflatten(treedef, leaves)


def _images(n=3):
  return (jax.random.uniform(jax.random.key(3), (n, 784)) < 0.3).astype(jnp.float32)


def _sbn_exact_log_likelihood(params, nets, layers, x):
  """log p(x_l | x_u) summed over the batch, by enumerating h1 and h2."""
  x_u, x_l = x[:, :392], x[:, 392:]
  configs = _all_configs(layers[0])  # [N, ...]
  flat = jax.vmap(layers[0].flatten)(configs)  # [N, size]
  logits1 = layers[0].logits(nets['layer1'].apply(params['layer1'], x_u))  # [B, ...]
  log_q1 = jax.vmap(lambda h: layers[0].log_prob(logits1, jnp.broadcast_to(h, logits1.shape)))(
      configs)  # [N, B]
  logits2 = layers[1].logits(nets['layer2'].apply(params['layer2'], flat))  # [N, ...]
  log_q2 = jax.vmap(lambda h: layers[1].log_prob(logits2, jnp.broadcast_to(h, logits2.shape)))(
      configs)  # [N2, N1]
  out = nets['output'].apply(params['output'], flat)  # [N2, 392]
  log_lik = jax.vmap(lambda o: gumbel.bernoulli_log_likelihood(
      logits=jnp.broadcast_to(o, x_l.shape), targets=x_l))(out)  # [N2, B]
  inner = jax.nn.logsumexp(log_q2[:, :, None] + log_lik[:, None, :], axis=0)  # [N1, B]
  return jnp.sum(jax.nn.logsumexp(log_q1 + inner, axis=0))


@pytest.mark.parametrize('model', ['sbn_bern', 'sbn_cat'])
def test_sbn_test_nll_matches_exact_enumeration(model):
  """Statistical: the m=4096 importance-sampled NLL is within 0.1 nats of exact."""
  config = _config(model)
  nets, layers, params = _random_params(config, scale=0.3)
  x = _images()
  exact = -_sbn_exact_log_likelihood(params, nets, layers, x) / len(x)
  eval_fn = ec.eval_fn(config, 4096, 512)
  nll = jax.jit(eval_fn)(params, None, x, jax.random.key(4))['nll']
  assert float(jnp.mean(nll)) == pytest.approx(float(exact), abs=0.1)


@pytest.mark.parametrize('model', ['vae_bern', 'vae_cat'])
def test_vae_bounds_match_exact_enumeration(model):
  """Statistical: IW(4096) within 0.1 nats of -log p(x); -ELBO above it."""
  config = _config(model)
  config.model.prior = 'learned'
  nets, layers, params = _random_params(config, scale=0.3)
  # A broad q (small encoder weights) keeps the importance sampler efficient.
  params['encoder'] = jax.tree.map(lambda w: 0.03 * w, params['encoder'])
  layer = layers[0]
  x = _images()
  configs = _all_configs(layer)
  prior = ec.prior_logits(params, layer)
  log_prior = jax.vmap(lambda z: layer.log_prob(prior[None], z[None])[0])(configs)  # [N]
  out = nets['decoder'].apply(params['decoder'], jax.vmap(layer.flatten)(configs))  # [N, 784]
  log_lik = jax.vmap(lambda o: gumbel.bernoulli_log_likelihood(
      logits=jnp.broadcast_to(o, x.shape), targets=x))(out)  # [N, B]
  exact = -jnp.mean(jax.nn.logsumexp(log_prior[:, None] + log_lik, axis=0))
  eval_fn = ec.eval_fn(config, 4096, 512)
  out = jax.jit(eval_fn)(params, None, x, jax.random.key(5))
  assert float(jnp.mean(out['nll'])) == pytest.approx(float(exact), abs=0.1)
  # The ELBO with exact expectation (enumerated) is a bound: above the NLL.
  logits = layer.logits(nets['encoder'].apply(params['encoder'], x))
  log_q = jax.vmap(lambda z: layer.log_prob(logits, jnp.broadcast_to(z, logits.shape)))(configs)
  neg_elbo = -jnp.mean(jnp.sum(jnp.exp(log_q) * (log_lik + log_prior[:, None] - log_q), 0))
  assert float(neg_elbo) > float(exact)
  cheap = ec.eval_fn(config, 2, 2)
  elbo_estimates = jax.jit(jax.vmap(lambda k: cheap(params, None, x, k)['neg_elbo']))(
      jax.random.split(jax.random.key(6), 512))
  assert float(jnp.mean(elbo_estimates)) == pytest.approx(float(neg_elbo), abs=1.0)


@pytest.mark.parametrize('name,paths', [('sf', None), ('arm', None), ('rebar', 'nested'),
                                        ('rebar', 'joint'), ('relax', 'joint'),
                                        ('rloo', 'joint'), ('rloo', 'nested')])
def test_nested_two_layer_gradient_is_unbiased(name, paths):
  """Statistical: SBN gradients of all parameters within 5 stderr (+1e-3) of exact.

  The estimator on layer 1 receives layer 2's estimator (fixed key) inside
  its f; for an unbiased estimator the composed gradient of E[log p(x_l|h2)]
  is unbiased. rloo draws S joint paths (h1, h2) instead ('joint', its
  default in the SBN), or nests (S^2 paths); rebar and relax take [REBAR]'s
  multilayer form ('joint', `Estimator.chain`) or nest: all unbiased. 3
  Bernoulli units per layer: 64 joint configurations.
  """
  config = _config('sbn_bern', name)
  assert config.estimator.get('paths') == ('joint' if ec.has_paths(name) else None)
  if paths:
    config.estimator.paths = paths
  config.model.num_vars = 3
  nets, layers, params = _random_params(config, scale=0.5)
  x = _images(2)
  estimator = gumbel.get_estimator(name)
  example = jnp.zeros((1, 3))
  states = {k: estimator.init(jax.random.key(7), example, kind='bernoulli')
            for k in ('layer1', 'layer2')}

  def exact_objective(p):
    x_u, x_l = x[:, :392], x[:, 392:]
    configs = _bernoulli_configs(3)
    logits1 = nets['layer1'].apply(p['layer1'], x_u)
    q1 = jnp.exp(jax.vmap(lambda h: layers[0].log_prob(logits1, jnp.broadcast_to(h, (2, 3))))(
        configs))  # [8, B]
    logits2 = nets['layer2'].apply(p['layer2'], configs)  # [8, 3]
    q2 = jnp.exp(jax.vmap(lambda h: layers[1].log_prob(logits2, jnp.broadcast_to(h, (8, 3))))(
        configs))  # [8 (h2), 8 (h1)]
    out = nets['output'].apply(p['output'], configs)  # [8, 392]
    ll = jax.vmap(lambda o: gumbel.bernoulli_log_likelihood(
        logits=jnp.broadcast_to(o, x_l.shape), targets=x_l))(out)  # [8 (h2), B]
    return jnp.sum(q1 * jnp.einsum('ji,jb->ib', q2, ll))

  _assert_sbn_gradient_matches(config, nets, layers, params, states, x, {},
                                jax.grad(exact_objective)(params), jax.random.key(8))


def _flat(tree):
  return jnp.concatenate([v.reshape(-1) for v in jax.tree.leaves(tree)])


def _assert_sbn_gradient_matches(config, nets, layers, params, states, x, hparams, exact, key):
  """The mean of 2e4 SBN surrogate gradients within 5 stderr (+1e-3) of `exact` (a tree)."""
  def one(key):
    def surrogate(p):
      s, _, _ = ec.sbn_surrogate(p, states, x, key, config=config, nets=nets, layers=layers,
                                 hparams=hparams)
      return jnp.sum(s)
    return _flat(jax.grad(surrogate)(params))

  n = 20_000
  grads = diagnostics._run_fast(jax.vmap(one), jax.random.split(key, n))  # pylint: disable=protected-access
  mean, stderr = jnp.mean(grads, 0), jnp.std(grads, 0) / np.sqrt(n)
  exact = _flat(exact)
  z = jnp.abs(mean - exact) / jnp.maximum(stderr, 1e-12)
  assert np.all(np.abs(mean - exact) <= 5 * stderr + 1e-3), float(jnp.max(z))


def test_joint_vimco_in_the_sbn_is_unbiased_for_the_joint_multi_sample_bound():
  """Statistical: vimco's SBN gradient (S = 2 joint paths) within 5 stderr (+1e-3) of exact.

  The objective is [VIMCO]'s bound over S joint samples of the path (h1, h2),
  E log (1/S) sum_s p(x_l | h2_s), enumerated over the 64 x 64 pairs of paths
  (3 Bernoulli units per layer); the nested form would estimate another
  bound, and a path's log-probability without layer 2's term would leave
  layer 2's gradient zero.
  """
  config = _config('sbn_bern', 'vimco')
  assert config.estimator.paths == 'joint'
  config.model.num_vars = 3
  nets, layers, params = _random_params(config, scale=0.5)
  x = _images(2)
  x_u, x_l = x[:, :392], x[:, 392:]
  configs = _bernoulli_configs(3)  # [8, 3]

  def exact_objective(p):
    logits1 = nets['layer1'].apply(p['layer1'], x_u)
    log_q1 = jax.vmap(lambda h: layers[0].log_prob(logits1, jnp.broadcast_to(h, (2, 3))))(
        configs)  # [8 (h1), B]
    logits2 = nets['layer2'].apply(p['layer2'], configs)  # [8 (h1), 3]
    log_q2 = jax.vmap(lambda h: layers[1].log_prob(logits2, jnp.broadcast_to(h, (8, 3))))(
        configs)  # [8 (h2), 8 (h1)]
    out = nets['output'].apply(p['output'], configs)  # [8 (h2), 392]
    ll = jax.vmap(lambda o: gumbel.bernoulli_log_likelihood(
        logits=jnp.broadcast_to(o, x_l.shape), targets=x_l))(out)  # [8 (h2), B]
    log_path = (log_q1[:, None, :] + log_q2.T[:, :, None]).reshape(64, -1)  # [64 (h1, h2), B]
    f = jnp.broadcast_to(ll[None], (8, 8, 2)).reshape(64, -1)  # [64, B]
    bound = jnp.logaddexp(f[:, None], f[None, :]) - jnp.log(2.0)  # [64, 64, B]
    weight = jnp.exp(log_path[:, None] + log_path[None, :])
    return jnp.sum(weight * bound)

  exact = jax.grad(exact_objective)(params)
  _assert_sbn_gradient_matches(config, nets, layers, params, {'layer1': (), 'layer2': ()}, x,
                                {'num_samples': 2}, exact, jax.random.key(9))
  # Layer 2's gradient is large enough that leaving out its score term would fail.
  assert float(jnp.max(jnp.abs(_flat(exact['layer2'])))) > 0.1


@pytest.mark.parametrize('model', ['sbn_bern', 'sbn_cat'])
@pytest.mark.parametrize('name', list(gumbel.ESTIMATORS))
def test_every_estimator_trains_a_step(model, name):
  """One jitted loss-and-gradient step: finite loss, gradients and new states."""
  config = _config(model, name)
  if config.model.latent not in gumbel.get_estimator(name).kinds:
    with pytest.raises(ValueError, match=f'{name}.*does not support'):
      ec.check_config(config)
    return
  config.data.source = 'embedded'
  task = ec.create_task(config)
  params, states = task.init(jax.random.key(0))
  x = task.sample_batch(jnp.asarray(task.data), jax.random.key(1), None)
  grad_fn = jax.jit(jax.value_and_grad(task.loss, has_aux=True), compiler_options=FAST)
  (loss, (metrics, new_states)), grads = grad_fn(params, states, x, jax.random.key(2), 0)
  assert np.isfinite(float(loss)) and metrics['nll_bound'] == loss
  jax.tree.map(lambda a: np.testing.assert_array_equal(np.isfinite(a), True),
               (grads, new_states))
  assert jax.tree.structure(new_states) == jax.tree.structure(states)
  assert any(float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(grads['layer1']))


def test_vae_estimators_and_vimco_objective():
  for name in ('vimco', 'gumbel_softmax', 'relax'):
    config = _config('vae_cat', name)
    task = ec.create_task(config)
    params, states = task.init(jax.random.key(0))
    x = task.sample_batch(jnp.asarray(task.data), jax.random.key(1), None)
    (loss, (metrics, _)), grads = jax.jit(
        jax.value_and_grad(task.loss, has_aux=True), compiler_options=FAST)(
            params, states, x, jax.random.key(2), 0)
    assert np.isfinite(float(loss)) and float(metrics['kl']) >= 0
    assert np.isfinite(float(optax_norm(grads)))


def test_what_a_vae_estimator_sees_follows_its_declaration():
  """[NVIL] normalizes the whole learning signal: sf, nvil, darn, muprop (normalized) and
  vimco get the log-weight; the others the reconstruction with the KL analytic."""
  for name in ('sf', 'nvil', 'darn', 'muprop', 'vimco'):
    assert ec.learning_signal(_config('vae_bern', name)) == 'log_weight', name
  for name in ('st', 'gumbel_softmax', 'rebar', 'arm', 'reinmax'):
    assert ec.learning_signal(_config('vae_bern', name)) == 'reconstruction', name
  config = _config('vae_bern', 'sf')
  config.estimator.hparams.normalize = False
  assert ec.learning_signal(config) == 'reconstruction'


def test_normalized_sf_vae_loss_is_the_one_sample_elbo_with_q_through_its_score():
  config = _config('vae_cat', 'sf')
  task = ec.create_task(config)
  params, states = task.init(jax.random.key(0))
  x = task.sample_batch(jnp.asarray(task.data), jax.random.key(1), None)
  nets, layers = ec.create_networks(config)
  layer = layers[0]
  loss, (metrics, _) = task.loss(params, states, x, jax.random.key(2), 0)
  # The same sample b as the estimator draws (sf samples with the key it is given).
  logits = layer.logits(nets['encoder'].apply(params['encoder'], x))
  b = kinds.KIND_OPS['categorical'].sample(jax.random.key(2), logits)
  prior = jnp.broadcast_to(ec.prior_logits(params, layer), logits.shape)
  log_lik = gumbel.bernoulli_log_likelihood(
      logits=nets['decoder'].apply(params['decoder'], layer.flatten(b)), targets=x)
  log_w = log_lik + layer.log_prob(prior, b) - layer.log_prob(logits, b)
  np.testing.assert_allclose(float(loss), float(-jnp.mean(log_w)), rtol=1e-5)
  # The KL is logged, analytic, not a separate loss term.
  np.testing.assert_allclose(float(metrics['kl']), float(jnp.mean(layer.kl(logits, prior))),
                             rtol=1e-5)


def test_relaxed_estimators_report_the_relaxed_objective_at_the_final_temperature():
  config = _config('vae_cat', 'gumbel_softmax')
  task = ec.create_task(config)
  params, states = task.init(jax.random.key(0))
  x = jnp.asarray(task.eval_data['test'][:8])
  out = jax.jit(task.eval_batch['test'])(params, states, x, jax.random.key(3))
  assert set(out) == {'nll', 'neg_elbo', 'relaxed_neg_elbo'}
  st = ec.create_task(_config('vae_cat', 'st_gumbel_softmax'))
  assert set(jax.jit(st.eval_batch['test'])(params, states, x, jax.random.key(3))) == {
      'nll', 'neg_elbo'}
  sbn = ec.create_task(_config('sbn_bern', 'gumbel_softmax'))
  p, s = sbn.init(jax.random.key(0))
  out = jax.jit(sbn.eval_batch['test'])(p, s, jnp.asarray(sbn.eval_data['test'][:8]),
                                        jax.random.key(3))
  assert set(out) == {'nll', 'nll_bound', 'relaxed_nll_bound'}


def optax_norm(tree):
  return jnp.sqrt(sum(jnp.sum(x**2) for x in jax.tree.leaves(tree)))


def test_schedules_of_temperature_and_slope():
  config = _config('vae_cat', 'gumbel_softmax', preset='paper')
  hp = functools.partial(ec.estimator_hparams, config, 50_000)
  assert float(hp(0)['temperature']) == 1.0
  assert float(hp(499)['temperature']) == 1.0  # Recomputed every 500 steps.
  assert float(hp(1000)['temperature']) == pytest.approx(np.exp(-0.1), rel=1e-6)
  assert float(hp(100_000)['temperature']) == 0.5
  config = _config('sbn_cat', 'gumbel_softmax', preset='paper')
  assert float(ec.estimator_hparams(config, 50_000, 100_000)['temperature']) == 1.0
  config = _config('sbn_bern', 'annealed_st', preset='paper')
  hp = functools.partial(ec.estimator_hparams, config, 50_000)
  assert float(hp(0)['slope']) == 1.0
  assert float(hp(5000)['slope']) == pytest.approx(1.0 + 0.04 * 10)  # 10 epochs.
  assert float(hp(10**7)['slope']) == 5.0
  # a = 1 / tau: follows the VAE's annealing (and is 1 in the SBNs, tau fixed at 1).
  config = _config('vae_cat', 'annealed_st', preset='paper')
  config.estimator.slope.schedule = 'inverse_temperature'
  hp = functools.partial(ec.estimator_hparams, config, 50_000)
  assert float(hp(0)['slope']) == 1.0
  assert float(hp(1000)['slope']) == pytest.approx(np.exp(0.1), rel=1e-6)
  assert float(hp(100_000)['slope']) == 2.0
  config = _config('sbn_cat', 'annealed_st', preset='paper')
  config.estimator.slope.schedule = 'inverse_temperature'
  assert float(ec.estimator_hparams(config, 50_000, 100_000)['slope']) == 1.0
  config.estimator.slope.schedule = 'linear'
  with pytest.raises(ValueError, match=r"estimator.slope.schedule='linear'; allowed: "
                     r"\('chung', 'inverse_temperature'\)"):
    ec.check_config(config)
  # The config holds the estimator's declared defaults, so each can be overridden.
  assert ec.estimator_hparams(_config('vae_bern', 'vimco'), 1, 0) == {'num_samples': 5}
  assert dict(_config('vae_bern', 'sf').estimator.hparams) == {'decay': 0.9, 'normalize': True}
  assert dict(_config('vae_bern', 'relax').estimator.init_hparams) == {
      'temperature': 0.5, 'eta': 1.0, 'hidden': 32}
  # Every estimator whose apply takes a temperature follows the schedule (reinmax too).
  for name in ('gumbel_softmax', 'st_gumbel_softmax', 'gumbel_rao', 'reinmax'):
    hp = ec.estimator_hparams(_config('vae_cat', name, preset='paper'), 50_000, 100_000)
    assert float(hp['temperature']) == 0.5, name
  for name in ('st', 'rebar', 'sf'):
    assert 'temperature' not in ec.estimator_hparams(_config('vae_cat', name), 50_000, 0)


def test_bad_configs_name_the_value():
  with pytest.raises(ValueError, match="model='vae_dog'; allowed"):
    ec_config.get_config('model=vae_dog')
  with pytest.raises(ValueError, match="key=value"):
    ec_config.get_config('vae_cat')
  config = _config('vae_cat', 'disarm')
  with pytest.raises(ValueError, match="'disarm' does not support model.latent='categorical'"):
    ec.check_config(config)
  config = _config('vae_cat')
  config.estimator.name = 'reinforce'
  with pytest.raises(ValueError, match='valid names are'):
    ec.check_config(config)
  config = _config('sbn_bern', 'vimco')
  config.estimator.paths = 'both'
  with pytest.raises(ValueError, match=r"estimator.paths='both'; allowed: \('joint', 'nested'\)"):
    ec.check_config(config)
  config = _config('sbn_bern', 'sf')
  config.estimator.paths = 'joint'
  with pytest.raises(ValueError, match=r"for the estimators \('rebar', 'relax', 'vimco', 'rloo'\); "
                     "'sf' is composed one layer at a time"):
    ec.check_config(config)


def test_paper_preset_sweeps_the_annealing_where_the_temperature_is_scheduled():
  from experiments import sweep  # pylint: disable=g-import-not-at-top
  sizes = {arg: len(ec_config.get_hyper(sweep, arg)) for arg in (
      'model=vae_cat,estimator=gumbel_softmax,preset=paper',
      'model=vae_bern,estimator=gumbel_rao,preset=paper',
      'model=vae_cat,estimator=st,preset=paper',
      'model=sbn_cat,estimator=gumbel_softmax,preset=paper',
      'model=vae_cat,estimator=gumbel_softmax,preset=small')}
  assert list(sizes.values()) == [72, 72, 18, 18, 4]
  # annealed_st's VAE cells: Chung et al.'s slope schedule, or a = 1 / tau per annealing.
  points = ec_config.get_hyper(sweep, 'model=vae_bern,estimator=annealed_st,preset=cpu')
  assert len(points) == 10
  assert sorted({(p['config.estimator.slope.schedule'], p.get('config.temperature.interval'),
                  p.get('config.temperature.rate')) for p in points},
                key=str) == sorted({('chung', None, None)} | {
                    ('inverse_temperature', n, r) for n in (500, 1000) for r in (1e-5, 1e-4)},
                                   key=str)
  assert len(ec_config.get_hyper(sweep, 'model=sbn_bern,estimator=annealed_st,preset=cpu')) == 2
  points = ec_config.get_hyper(sweep, 'model=vae_cat,estimator=gumbel_softmax,preset=paper')
  assert {(p['config.temperature.interval'], p['config.temperature.rate']) for p in points} == {
      (500, 1e-5), (500, 1e-4), (1000, 1e-5), (1000, 1e-4)}


@pytest.mark.parametrize('model', ['vae_bern', 'vae_cat', 'sbn_cat'])
def test_annealed_st_units_are_at_the_slope_in_the_kl_and_the_evaluation(model):
  """annealed_st's units are q(a * logits) ([SLOPE]): the VAE's KL is taken there, and
  the evaluation at slope a equals the evaluation (slope None) of the same model whose
  first layer's logits are multiplied by a (the linear first layer's weights times a;
  the SBN's second layer is at the slope too, so only a = 1 ... a checked for the VAEs)."""
  config = _config(model, 'annealed_st')
  nets, layers = ec.create_networks(config)
  params = ec.init_params(jax.random.key(0), config, nets, layers)
  first = 'layer1' if model.startswith('sbn') else 'encoder'
  # Non-zero, non-trivial parameters.
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(1), len(leaves))
  params = jax.tree.unflatten(tree, [0.3 * jax.random.normal(k, l.shape) for k, l in
                                     zip(keys, leaves)])
  x = (jax.random.uniform(jax.random.key(2), (4, 784)) > 0.5).astype(jnp.float32)
  a = 2.5
  key = jax.random.key(3)
  scaled = {**params, first: jax.tree.map(lambda w: a * w, params[first])}
  at_slope = ec.eval_fn(config, 4, 2, None, a)(params, None, x, key)
  if model.startswith('vae'):
    by_weights = ec.eval_fn(config, 4, 2, None, None)(scaled, None, x, key)
    for name in at_slope:
      np.testing.assert_allclose(at_slope[name], by_weights[name], rtol=1e-5, err_msg=name)
    states = {'latent': ()}
    kwargs = dict(config=config, nets=nets, layers=layers)
    _, kl, _, _ = ec.vae_surrogate(params, states, x, key, hparams={'slope': a}, **kwargs)
    _, kl_scaled, _, _ = ec.vae_surrogate(scaled, states, x, key, hparams={'slope': 1.0},
                                          **kwargs)
    np.testing.assert_allclose(kl, kl_scaled, rtol=1e-5)
  else:  # Both layers at the slope: not the same as scaling layer 1 only.
    by_weights = ec.eval_fn(config, 4, 2, None, None)(scaled, None, x, key)
    assert not np.allclose(at_slope['nll'], by_weights['nll'])
    np.testing.assert_allclose(ec.eval_fn(config, 4, 2, None, 1.0)(params, None, x, key)['nll'],
                               ec.eval_fn(config, 4, 2, None, None)(params, None, x, key)['nll'],
                               rtol=1e-6)
