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

  fb = f(b)
  c_z, c_zt = control_variate(z), control_variate(zt)
  # The learning signal is constant in the logits but not in the control
  # variate's parameters, whose variance gradient flows through it.
  zt_fixed = ops.conditional_perturb(jax.lax.stop_gradient(logits_n), b, v)
  signal = jax.lax.stop_gradient(fb) - control_variate(zt_fixed)
  log_q = ops.log_prob(logits, b)
  # Zero in value: a value-only call computes f(b) alone.
  return fb + common.score_term(signal, log_q) + common.zero(c_z - c_zt)


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
  updates, opt_state = optax.adam(cv_learning_rate).update(
      cv_grads, state['opt_state'], params)
  new_state = {'params': optax.apply_updates(params, updates), 'opt_state': opt_state}
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
