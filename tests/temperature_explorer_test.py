"""Tests for scripts/temperature_explorer.py, in a real headless Chromium.

The page is driven with selenium through Debian's `chromium` and
`chromium-driver` (.ci/run installs them); the browser tests skip, saying
why, only where neither can be found. The page's numbers are compared with
the library (`gumbel.gumbel_from_uniform` on the page's uniforms, then
`jax.nn.softmax`) in float64. The low/high temperature checks are
statistical over 20 draws, made reproducible with the page's `?seed=`.
"""

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

import gumbel
from scripts import temperature_explorer

CHROME_FLAGS = (
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--window-size=1000,900')
NUM_DRAWS = 20


def _find_chromium():
  """Returns (browser, chromedriver) paths, or None where either is missing."""
  browser = os.environ.get('CHROMIUM') or next(
      filter(None, map(shutil.which, ('chromium', 'chromium-browser', 'google-chrome'))), None)
  chromedriver = os.environ.get('CHROMEDRIVER') or shutil.which('chromedriver')
  if chromedriver is None and os.path.exists('/usr/lib/chromium/chromedriver'):
    chromedriver = '/usr/lib/chromium/chromedriver'
  return (browser, chromedriver) if browser and chromedriver else None


def test_page_is_self_contained():
  page = temperature_explorer.build_html()
  assert '://' not in page  # No http(s) resources: nothing loads at view time.
  assert '<script src' not in page and 'stylesheet' not in page and '@import' not in page
  assert 'type="range"' in page and 'id="resample"' in page
  assert f'"version": "{gumbel.__version__}"' in page
  assert '"u_max": 0.9999998807907104' in page  # float32 1 - eps, the library's bound.


@pytest.mark.parametrize('probs, kwargs', [
    ((0.5,), {}), ((0.5, -0.1), {}), ((0.0, 0.0), {}),
    ((1.0, 1.0), {'tau': 20.0}), ((1.0, 1.0), {'tau_min': 0.0}),
], ids=['one_class', 'negative', 'zero_sum', 'tau_outside', 'tau_min_zero'])
def test_build_html_rejects_bad_arguments(probs, kwargs):
  with pytest.raises(ValueError):
    temperature_explorer.build_html(probs, **kwargs)


@pytest.fixture(scope='module')
def page_url(tmp_path_factory):
  path = tmp_path_factory.mktemp('explorer') / 'explorer.html'
  path.write_text(temperature_explorer.build_html(), encoding='utf-8')
  return path.as_uri()


@pytest.fixture(scope='module')
def driver():
  found = _find_chromium()
  if found is None:
    pytest.skip('no chromium/chromedriver found (Debian: apt-get install chromium '
                'chromium-driver; .ci/run does this as root): browser test not run')
  browser, chromedriver = found
  profile = tempfile.mkdtemp(prefix='explorer-test-profile-')
  options = webdriver.ChromeOptions()
  options.binary_location = browser
  for flag in CHROME_FLAGS + (f'--user-data-dir={profile}',):
    options.add_argument(flag)
  options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
  chrome = webdriver.Chrome(service=Service(chromedriver), options=options)
  yield chrome
  chrome.quit()
  shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(driver, page_url):
  """Loads the page with ?seed=1; afterwards asserts the console had no errors."""
  driver.get_log('browser')  # Drops earlier entries.
  driver.get(page_url + '?seed=1')
  yield driver
  errors = [e for e in driver.get_log('browser') if e['level'] in ('SEVERE', 'ERROR')]
  assert not errors, errors


def _state(driver):
  return driver.execute_script('return window.explorerState;')


def _set_slider(driver, value):
  driver.execute_script(
      "const s = document.getElementById('tau-slider'); s.value = arguments[0];"
      "s.dispatchEvent(new Event('input', {bubbles: true}));", value)


def _rendered_y(driver):
  """The y bars as the page shows them: full-precision values and pixel heights."""
  return driver.execute_script("""
      const bars = Array.from(document.querySelectorAll('#sample .bar'));
      const full = document.querySelector('#sample .bars').clientHeight - 1;  // Less the border.
      return {values: bars.map(b => Number(b.dataset.value)),
              heights: bars.map(b => b.getBoundingClientRect().height / full)};""")


def _library_y(state):
  """y = softmax((log pi + g) / tau) with the library's g, in float64."""
  with jax.enable_x64(True):
    u = jnp.asarray(state['u'], jnp.float64)
    g = gumbel.gumbel_from_uniform(u)
    logits = jnp.log(jnp.asarray(state['pi'], jnp.float64))
    y = jax.nn.softmax((logits + g) / state['tau'])
    return np.asarray(g), np.asarray(y)


def _check_matches_library(driver):
  """Asserts the shown y is the library's; returns it."""
  state = _state(driver)
  g, y = _library_y(state)
  np.testing.assert_allclose(state['g'], g, rtol=1e-12, atol=1e-12)
  rendered = _rendered_y(driver)
  np.testing.assert_allclose(rendered['values'], y, rtol=0, atol=1e-9)
  np.testing.assert_allclose(state['y'], y, rtol=0, atol=1e-9)
  np.testing.assert_allclose(rendered['heights'], y, atol=0.01)
  return np.asarray(rendered['values'])


def test_initial_page_matches_library(page):
  state = _state(page)
  assert state['seed'] == 1 and state['tau'] == 1.0 and state['K'] == 5
  assert state['version'] == gumbel.__version__
  probs = np.asarray(temperature_explorer.PROBS)
  np.testing.assert_allclose(state['pi'], probs / probs.sum(), rtol=1e-12)
  assert np.all(np.asarray(state['u']) > 0) and np.all(np.asarray(state['u']) < 1)
  _check_matches_library(page)


def test_sample_is_one_hot_at_low_and_flat_at_high_temperature(page):
  """Statistical, over 20 draws: at tau=0.05 about 10% of draws have max < 0.95."""
  maxima, spreads, previous_g = [], [], None
  for draw in range(NUM_DRAWS):
    if draw:
      page.find_element(By.ID, 'resample').click()
    state = _state(page)
    assert state['g'] != previous_g  # Re-sampling draws new noise.
    previous_g = state['g']
    _set_slider(page, 0)
    assert _state(page)['tau'] == pytest.approx(0.05, rel=1e-12)
    low = _check_matches_library(page)
    _set_slider(page, temperature_explorer.SLIDER_STEPS)
    assert _state(page)['tau'] == pytest.approx(10.0, rel=1e-12)
    high = _check_matches_library(page)
    assert np.argmax(low) == np.argmax(high)  # The Gumbel-Max sample does not depend on tau.
    maxima.append(low.max())
    spreads.append(high.max() - high.min())
  assert _state(page)['draws'] == NUM_DRAWS
  assert np.sum(np.asarray(maxima) > 0.95) >= 0.75 * NUM_DRAWS, maxima
  assert np.median(maxima) > 0.99, maxima
  assert np.max(spreads) < 0.4 and np.median(spreads) < 0.15, spreads


def test_keyboard_moves_the_slider(page):
  slider = page.find_element(By.ID, 'tau-slider')
  slider.send_keys(Keys.HOME)
  assert _state(page)['tau'] == pytest.approx(0.05, rel=1e-12)
  assert 'τ = 0.0500' in page.find_element(By.ID, 'tau-value').text
  slider.send_keys(Keys.END)
  assert _state(page)['tau'] == pytest.approx(10.0, rel=1e-12)
  slider.send_keys(Keys.ARROW_LEFT)
  step = np.exp(np.log(10.0 / 0.05) / temperature_explorer.SLIDER_STEPS)
  assert _state(page)['tau'] == pytest.approx(10.0 / step, rel=1e-9)
  _check_matches_library(page)


def test_resample_changes_g_but_not_pi(page):
  before = _state(page)
  page.find_element(By.ID, 'resample').click()
  after = _state(page)
  assert after['draws'] == before['draws'] + 1
  assert not np.any(np.asarray(after['g']) == np.asarray(before['g']))
  assert not np.any(np.asarray(after['u']) == np.asarray(before['u']))
  assert after['pi'] == before['pi'] and after['tau'] == before['tau']
  _check_matches_library(page)


def test_editing_a_probability_changes_pi(page):
  before = _state(page)
  field = page.find_elements(By.CSS_SELECTOR, 'input.prob')[2]
  field.send_keys(Keys.CONTROL, 'a')
  field.send_keys('0.35')
  weights = np.array([0.1, 0.25, 0.35, 0.4, 0.2])
  after = _state(page)
  np.testing.assert_allclose(after['pi'], weights / weights.sum(), rtol=1e-12)
  assert after['g'] == before['g']  # Same noise, new pi.
  assert after['y'] != before['y']
  _check_matches_library(page)
  # A negative weight is marked and ignored.
  field.send_keys(Keys.CONTROL, 'a')
  field.send_keys('-1')
  assert 'invalid' in field.get_attribute('class')
  np.testing.assert_allclose(_state(page)['pi'], weights / weights.sum(), rtol=1e-12)


def test_zero_probability_gives_zero_mass(page):
  field = page.find_elements(By.CSS_SELECTOR, 'input.prob')[0]
  field.send_keys(Keys.CONTROL, 'a')
  field.send_keys('0')
  state = _state(page)
  assert state['pi'][0] == 0 and _rendered_y(page)['values'][0] == 0
  assert sum(state['y']) == pytest.approx(1.0, abs=1e-12)


def test_seed_reproduces_the_noise(driver, page_url):
  driver.get(page_url + '?seed=7')
  first = _state(driver)['u']
  driver.get(page_url + '?seed=7')
  assert _state(driver)['u'] == first
  driver.get(page_url + '?seed=8')
  assert _state(driver)['u'] != first
  driver.get(page_url)  # No seed: a random one.
  assert _state(driver)['seed'] != 7 or _state(driver)['u'] != first


def test_console_errors_are_caught(driver, page_url):
  """The console check of the `page` fixture can fail: it sees page errors."""
  driver.get(page_url)
  driver.get_log('browser')
  driver.execute_script("console.error('explorer probe');")
  logs = driver.get_log('browser')
  assert any('explorer probe' in e['message'] and e['level'] == 'SEVERE' for e in logs), logs


def test_command_line(tmp_path):
  root = pathlib.Path(__file__).resolve().parent.parent
  out = tmp_path / 'sub' / 'explorer.html'
  subprocess.run([sys.executable, '-m', 'scripts.temperature_explorer', f'--out={out}',
                  '--probs=1,3', '--tau=0.5'], check=True, cwd=root)
  page = out.read_text(encoding='utf-8')
  assert '"probs": [1.0, 3.0]' in page and '"tau": 0.5' in page
  missing = subprocess.run([sys.executable, '-m', 'scripts.temperature_explorer'],
                           cwd=root, capture_output=True, text=True)
  assert missing.returncode != 0 and '--out' in missing.stderr
