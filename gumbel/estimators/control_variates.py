"""Learned control variates: rebar, relax.

REINFORCE with a reparameterised relaxed control variate whose parameters
(eta, the temperature, RELAX's network) are learned to minimise the
estimator's variance; both are unbiased. The signature and the registry are
in `gumbel.estimators`.

References:
  [REBAR] Tucker, Mnih, Maddison, Lawson, Sohl-Dickstein. REBAR: Low-variance,
    unbiased gradient estimates for discrete latent variable models. NeurIPS
    2017, arXiv:1703.07370.
  [RELAX] Grathwohl, Choi, Wu, Roeder, Duvenaud. Backpropagation through the
    Void: Optimizing control variates for black-box gradient estimation.
    ICLR 2018, arXiv:1711.00123.
"""

import jax
import jax.numpy as jnp
import optax

from gumbel.estimators import _common as common


def rebar_init(key, logits, *, kind, temperature=0.5, eta=1.0):
  del key, kind, logits
  params = {'log_temperature': jnp.log(jnp.asarray(temperature, jnp.float32)),
            'eta': jnp.asarray(eta, jnp.float32)}
  return {'params': params, 'opt_state': optax.adam(1.0).init(params)}


def relax_init(key, logits, *, kind, temperature=0.5, eta=1.0, hidden=32):
  state = rebar_init(key, logits, kind=kind, temperature=temperature, eta=eta)
  params = dict(state['params'])
  params['net'] = common.init_mlp(key, common.event_size(logits), hidden)
  return {'params': params, 'opt_state': optax.adam(1.0).init(params)}


def _rebar_surrogate(logits, params, u, v, f, f_cv, kind):
  """The REBAR / RELAX surrogate for fixed noise (u, v): [batch]."""
  ops = common.KIND_OPS[kind]
  fb = f(ops.hard(ops.perturb(ops.normalize_logits(logits), u)))
  return fb + _rebar_terms(logits, params, u, v, fb, f_cv, kind)


def _rebar_terms(logits, params, u, v, fb, f_cv, kind):
  """The REBAR / RELAX terms beyond f(b), zero in value, given fb = f(b): [batch]."""
  ops = common.KIND_OPS[kind]
  logits_n = ops.normalize_logits(logits)
  z = ops.perturb(logits_n, u)
  b = ops.hard(z)
  zt = ops.conditional_perturb(logits_n, b, v)
  temperature = jnp.exp(params['log_temperature'])

  def control_variate(zz):
    y = ops.relaxation(zz, temperature)
    c = params['eta'] * f_cv(y)
    if 'net' in params:
      c = c + common.apply_mlp(params['net'], y)
    return c

  c_z, c_zt = control_variate(z), control_variate(zt)
  # The learning signal is constant in the logits but not in the control
  # variate's parameters, whose variance gradient flows through it.
  zt_fixed = ops.conditional_perturb(jax.lax.stop_gradient(logits_n), b, v)
  signal = jax.lax.stop_gradient(fb) - control_variate(zt_fixed)
  log_q = ops.log_prob(logits, b)
  # Zero in value: a value-only call computes f(b) alone.
  return common.score_term(signal, log_q) + common.zero(c_z - c_zt)


def _adam_step(state, grads, learning_rate):
  """One Adam step of a control variate's parameters on its variance objective."""
  params = state['params']
  updates, opt_state = optax.adam(learning_rate).update(grads, state['opt_state'], params)
  return {'params': optax.apply_updates(params, updates), 'opt_state': opt_state}


def _rebar_apply(name, key, logits, f, state, *, kind, cv_learning_rate):
  common.check_logits(name, logits, kind)
  key_u, key_v = jax.random.split(key)
  u = common.uniform(key_u, logits.shape)
  v = common.uniform(key_v, logits.shape)
  params = state['params']
  f_cv = lambda y: common.input_only(f, y)
  surrogate = _rebar_surrogate(
      logits, jax.lax.stop_gradient(params), u, v, f, f_cv, kind)

  logits_sg = jax.lax.stop_gradient(logits)

  def variance_objective(params):
    grad = jax.grad(lambda l: jnp.sum(_rebar_surrogate(l, params, u, v, f, f, kind)))(logits_sg)
    return jnp.sum(grad**2) / logits.shape[0]

  var_obj, cv_grads = jax.value_and_grad(variance_objective)(params)
  new_state = _adam_step(state, cv_grads, cv_learning_rate)
  aux = {'variance_objective': var_obj, 'cv_grads': cv_grads,
         'temperature': jnp.exp(params['log_temperature']), 'eta': params['eta']}
  return surrogate, aux, new_state


def rebar(key, logits, f, state, *, kind, cv_learning_rate=1e-3):
  """REBAR: REINFORCE with a reparameterised relaxed control variate.

  With z = logits + noise, b = H(z), z~ ~ p(z | b) and sigma_lambda the
  Concrete relaxation:
    grad = [f(b) - eta f(sigma_lambda(z~))] grad log q(b)
           + eta grad f(sigma_lambda(z)) - eta grad f(sigma_lambda(z~))
           + grad_params f(b),
  unbiased for any eta and lambda. The control-variate terms differentiate f
  only through its input, so they add no noise to the gradient of f's own
  parameters.

  The control-variate parameters phi = (eta, log lambda) live in
  `state['params']` and are learned to minimise the estimator's variance:
  since E[g] does not depend on phi, d Var / d phi = d E[|g|^2] / d phi,
  where g is the estimator's gradient with respect to `logits` (the
  encoder's output; [REBAR] section 3.3). `apply` computes this gradient
  with the same noise, returns it as `aux['cv_grads']` together with the
  single-sample objective `aux['variance_objective']` = sum(g^2) / batch, and
  takes one Adam step (`cv_learning_rate`) on it in the returned state.

  Args:
    key: a PRNG key.
    logits: `[batch, D]` or `[batch, D, K]` logits.
    f: the per-example objective, twice differentiable on relaxed inputs.
    state: from `init(key, logits, kind=..., temperature=0.5, eta=1.0)`.
    kind: 'bernoulli' or 'categorical'.
    cv_learning_rate: Adam step size of the control-variate parameters.

  Returns:
    (surrogate [batch] with value f(b), aux, new state).

  References:
    [REBAR] eq. 6-8 and section 3.3 (variance-minimising eta and lambda);
    [RELAX] section 3.3 and appendix B (conditional noise).
  """
  return _rebar_apply('rebar', key, logits, f, state, kind=kind,
                      cv_learning_rate=cv_learning_rate)


def relax(key, logits, f, state, *, kind, cv_learning_rate=1e-3):
  """RELAX: REBAR with a learned free-form control variate.

  c_phi(z) = eta f(sigma_lambda(z)) + r_rho(sigma_lambda(z)) with r_rho a
  small MLP, and
    grad = [f(b) - c_phi(z~)] grad log q(b) + grad c_phi(z) - grad c_phi(z~)
           + grad_params f(b).
  phi = (eta, log lambda, rho) is learned by minimising the variance exactly
  as in `rebar` (`aux['cv_grads']`, one Adam step in the new state).

  Args:
    key: a PRNG key.
    logits: `[batch, D]` or `[batch, D, K]` logits.
    f: the per-example objective, twice differentiable on relaxed inputs.
    state: from `init(key, logits, kind=..., temperature=0.5, eta=1.0,
      hidden=32)`.
    kind: 'bernoulli' or 'categorical'.
    cv_learning_rate: Adam step size of phi.

  Returns:
    (surrogate [batch] with value f(b), aux, new state).

  References:
    [RELAX] eq. 6-8, algorithm 2 (discrete RELAX) and section 3.3.
  """
  return _rebar_apply('relax', key, logits, f, state, kind=kind,
                      cv_learning_rate=cv_learning_rate)


# ----------------------------------------------------------------------------
# A chain of stochastic layers: [REBAR]'s multilayer form.
# ----------------------------------------------------------------------------


def _chain_terms(logits, bs, logits_fns, f, params, noise, fb, kind, cv_input_only):
  """The sum over layers of REBAR's terms beyond f(b), zero in value: [batch].

  Layer l's control variate sees f(b_1, ..., b_{l-1}, y_l, y_{l+1}, ...): the
  layers above l discrete, layer l relaxed (at z or z~) and the layers below
  relaxed from the noise u that drew their discrete samples, each at its own
  temperature.
  """
  ops = common.KIND_OPS[kind]
  total = 0.0
  for l in range(len(logits)):

    def relaxed_from(y, l=l):
      hs = list(bs[:l]) + [y]
      for m in range(l + 1, len(logits)):
        z = ops.perturb(ops.normalize_logits(logits_fns[m](hs[-1])), noise[m][0])
        hs.append(ops.relaxation(z, jnp.exp(params[m]['log_temperature'])))
      return f(hs)

    if cv_input_only:
      f_cv = lambda y, g=relaxed_from: common.input_only(g, y)
    else:
      f_cv = relaxed_from
    u, v = noise[l]
    total = total + _rebar_terms(logits[l], params[l], u, v, fb, f_cv, kind)
  return total


def _chain_apply(name, key, logits_fns, f, states, *, kind, cv_learning_rate):
  ops = common.KIND_OPS[kind]
  params = [state['params'] for state in states]
  # Layer by layer: the logits, the noise (u, v) and the discrete sample.
  keys = jax.random.split(key, len(logits_fns))
  noise, logits, bs = [], [], []
  for fn, layer_key in zip(logits_fns, keys):
    layer_logits = fn(bs[-1] if bs else None)
    common.check_logits(name, layer_logits, kind)
    layer_logits = common.propagate_nan(layer_logits)
    key_u, key_v = jax.random.split(layer_key)
    u = common.uniform(key_u, layer_logits.shape)
    noise.append((u, common.uniform(key_v, layer_logits.shape)))
    logits.append(layer_logits)
    bs.append(ops.hard(ops.perturb(ops.normalize_logits(layer_logits), u)))
  fb = f(bs)
  surrogate = fb + _chain_terms(logits, bs, logits_fns, f, jax.lax.stop_gradient(params),
                                noise, fb, kind, cv_input_only=True)

  logits_sg = [jax.lax.stop_gradient(l) for l in logits]
  bs_sg = [jax.lax.stop_gradient(b) for b in bs]
  fb_sg = jax.lax.stop_gradient(fb)
  batch = logits[0].shape[0]

  def variance_objective(params):
    grads = jax.grad(lambda ls: jnp.sum(_chain_terms(
        ls, bs_sg, logits_fns, f, params, noise, fb_sg, kind, cv_input_only=False)))(logits_sg)
    return sum(jnp.sum(g**2) for g in grads) / batch

  var_obj, cv_grads = jax.value_and_grad(variance_objective)(params)
  new_states = [_adam_step(state, g, cv_learning_rate) for state, g in zip(states, cv_grads)]
  aux = {'variance_objective': var_obj, 'cv_grads': cv_grads,
         'temperature': jnp.stack([jnp.exp(p['log_temperature']) for p in params]),
         'eta': jnp.stack([p['eta'] for p in params])}
  # An example with a NaN logit in any layer gets a NaN value (x + 0 == x otherwise).
  nan = sum(jax.lax.stop_gradient(common.nan_rows(l)) for l in logits)
  return surrogate + nan.astype(surrogate.dtype), aux, new_states


def rebar_chain(key, logits_fns, f, states, *, kind, cv_learning_rate=1e-3):
  """REBAR for a chain of stochastic layers h_1 -> h_2 -> ... -> h_L.

  [REBAR]'s multilayer form (its reference code's default, 'quadratic'; the
  RELAX code's too): one discrete sample of the whole chain, b_l drawn from
  noise u_l at logits `logits_fns[l](b_{l-1})`, and for each layer l the
  estimator of `rebar` with the control variate
    c_l(z_l) = eta_l f(b_1, ..., b_{l-1}, sigma(z_l), sigma(z_{l+1}), ...),
  the layers above l discrete, layer l relaxed (at z_l or z~_l ~ p(z | b_l))
  and the layers below relaxed from the same u that drew their discrete
  samples, at their own temperatures. Every layer's score term has the
  signal f(b) - c_l(z~_l); c_l is differentiated only through layer l's
  sample (it adds nothing to the other layers' or f's parameters), so each
  layer's gradient is unbiased and the whole is.

  The control-variate parameters of all layers (each layer's eta and
  temperature, in its state) take one Adam step on the summed variance
  objective sum_l |g_l|^2 / batch, g_l the estimator's gradient with respect
  to layer l's logits (which depends on the temperatures of the layers below).

  Args:
    key: a PRNG key.
    logits_fns: L callables; `logits_fns[0](None)` gives layer 1's logits
      `[batch, D]` or `[batch, D, K]`, `logits_fns[l](h)` layer l+1's from
      layer l's sample h (discrete or relaxed, the same shape).
    f: `f(hs) -> [batch]`, the objective of the list of the L samples, twice
      differentiable on relaxed inputs.
    states: L states, each from `init` for its layer's logits.
    kind: 'bernoulli' or 'categorical' (every layer).
    cv_learning_rate: Adam step size of the control-variate parameters.

  Returns:
    (surrogate [batch] with value f(b), aux, new states (a list)).

  References:
    [REBAR] section 3 and its code (`_create_gumbel_control_variate_quadratic`);
    [RELAX] its code for the two-layer models (`binary_vae_multilayer_per_layer.py`).
  """
  return _chain_apply('rebar', key, logits_fns, f, states, kind=kind,
                      cv_learning_rate=cv_learning_rate)


def relax_chain(key, logits_fns, f, states, *, kind, cv_learning_rate=1e-3):
  """RELAX for a chain of stochastic layers: `rebar_chain` with each layer's
  control variate c_l = eta_l f(...) + r_l(sigma(z_l)), r_l that layer's
  learned network (in its state), as `relax` for one layer.

  Args and returns: as `rebar_chain`, the states from `relax`'s `init`.

  References:
    [RELAX] section 3.3, algorithm 2 and its code for the two-layer models.
  """
  return _chain_apply('relax', key, logits_fns, f, states, kind=kind,
                      cv_learning_rate=cv_learning_rate)
