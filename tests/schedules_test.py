"""Tests for gumbel/schedules.py."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gumbel

# The blog's categorical VAE: tau0 = 1, r = 3e-5, tau_min = 0.5, every 1000 steps.
BLOG = dict(tau0=1.0, rate=3e-5, tau_min=0.5, interval=1000)


def _reference(step, tau0, rate, tau_min, interval):
  t = (step // interval) * interval
  return max(tau_min, tau0 * math.exp(-rate * t))


@pytest.mark.parametrize('step, expected', [
    (0, 1.0),
    (999, 1.0),
    (1000, math.exp(-0.03)),
    (1999, math.exp(-0.03)),
    (20_500, math.exp(-0.6)),
    (23_999, math.exp(-0.69)),  # 0.5016, just above the floor.
    (24_000, 0.5),  # exp(-0.72) = 0.487 is floored.
    (50_000, 0.5),
], ids=lambda v: str(v))
def test_exponential_temperature_blog_settings(step, expected):
  schedule = gumbel.exponential_temperature(**BLOG)
  tau = schedule(step)
  assert tau.dtype == jnp.float32 and tau.shape == ()
  np.testing.assert_allclose(tau, expected, rtol=1e-6)
  np.testing.assert_allclose(tau, _reference(step, **BLOG), rtol=1e-6)


def test_exponential_temperature_defaults_are_blog_settings():
  default, blog = gumbel.exponential_temperature(), gumbel.exponential_temperature(**BLOG)
  steps = jnp.arange(0, 60_000, 250)
  np.testing.assert_array_equal(jax.vmap(default)(steps), jax.vmap(blog)(steps))


@pytest.mark.parametrize('settings', [
    dict(tau0=1.0, rate=1e-4, tau_min=0.5, interval=500),
    dict(tau0=1.0, rate=1e-5, tau_min=0.5, interval=1000),
    dict(tau0=2.0, rate=3e-5, tau_min=0.5, interval=2000),
    dict(tau0=5.0, rate=0.0, tau_min=0.1, interval=1),
], ids=['r1e-4_N500', 'r1e-5_N1000', 'tau0_2_N2000', 'no_decay'])
def test_exponential_temperature_matches_reference_under_jit(settings):
  chex.clear_trace_counter()
  schedule = jax.jit(chex.assert_max_traces(gumbel.exponential_temperature(**settings), n=1))
  for step in [0, 1, 499, 500, 1999, 2000, 7_001, 33_333, 100_000]:
    np.testing.assert_allclose(
        schedule(jnp.asarray(step)), _reference(step, **settings), rtol=1e-6, err_msg=str(step))


def test_exponential_temperature_is_piecewise_constant_and_nonincreasing():
  steps = jnp.arange(30_000)
  tau = np.asarray(jax.vmap(gumbel.exponential_temperature(**BLOG))(steps))
  assert np.all(np.diff(tau) <= 0)
  change = np.nonzero(np.diff(tau))[0] + 1  # Steps where tau changes.
  np.testing.assert_array_equal(change, np.arange(1000, 24_001, 1000))
  assert tau.min() == 0.5


def test_exponential_temperature_in_scan():
  schedule = gumbel.exponential_temperature(**BLOG)

  def body(carry, step):
    return carry, schedule(step)

  _, taus = jax.lax.scan(body, None, jnp.arange(0, 5000, 999))
  np.testing.assert_allclose(taus, [_reference(s, **BLOG) for s in range(0, 5000, 999)], rtol=1e-6)


def test_constant_temperature():
  schedule = gumbel.constant_temperature(0.7)
  for step in (0, 10, jnp.asarray(10**6)):
    np.testing.assert_allclose(schedule(step), 0.7)
  tau = jax.jit(schedule)(jnp.asarray(3))
  assert tau.dtype == jnp.float32 and tau.shape == ()
  np.testing.assert_allclose(tau, 0.7)


@pytest.mark.parametrize('kwargs, pattern', [
    (dict(tau0=0.0), r'tau0 must be > 0.*0\.'),
    (dict(tau0=-1.0), r'tau0 must be > 0.*-1\.'),
    (dict(tau0=float('nan')), r'tau0 must be > 0.*nan'),
    (dict(tau_min=0.0), r'tau_min must be > 0.*0\.'),
    (dict(rate=-1e-5), r'rate must be >= 0, got -1e-05'),
    (dict(rate=float('nan')), r'rate must be >= 0, got nan'),
    (dict(interval=0), r'interval must be a positive integer, got 0'),
    (dict(interval=-1000), r'interval must be a positive integer, got -1000'),
    (dict(interval=2.5), r'interval must be a positive integer, got 2\.5'),
], ids=['tau0_zero', 'tau0_negative', 'tau0_nan', 'tau_min_zero', 'rate_negative', 'rate_nan',
        'interval_zero', 'interval_negative', 'interval_fractional'])
def test_exponential_temperature_bad_args_raise(kwargs, pattern):
  with pytest.raises(ValueError, match=pattern):
    gumbel.exponential_temperature(**{**BLOG, **kwargs})


@pytest.mark.parametrize('tau', [0.0, -0.5, float('nan')], ids=['zero', 'negative', 'nan'])
def test_constant_temperature_bad_tau_raises(tau):
  with pytest.raises(ValueError, match=rf'tau must be > 0.*{tau}'):
    gumbel.constant_temperature(tau)
