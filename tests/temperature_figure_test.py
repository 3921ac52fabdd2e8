"""Tests for scripts/temperature_figure.py.

The expectation checks are statistical: 100,000 samples with a fixed seed,
tolerances of several standard errors (about 0.0015 at most here).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from scripts import temperature_figure

NUM_SAMPLES = 100_000


@pytest.fixture(scope='module')
def data(tmp_path_factory):
  out = tmp_path_factory.mktemp('figure')
  temperature_figure.write_figure(str(out), seed=0, num_samples=NUM_SAMPLES)
  with open(out / 'temperature_figure.json') as f:
    return out, json.load(f)


def _column(data, name):
  return next(c for c in data['columns'] if c['name'] == name)


def test_writes_png_pdf_and_json(data):
  out, _ = data
  with open(out / 'temperature_figure.png', 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  with open(out / 'temperature_figure.pdf', 'rb') as f:
    assert f.read(5) == b'%PDF-'
  assert os.path.getsize(out / 'temperature_figure.png') > 10_000


def test_columns_and_shapes(data):
  _, data = data
  assert [c['name'] for c in data['columns']] == [
      'categorical', 'tau=0.1', 'tau=0.5', 'tau=1', 'tau=10']
  assert data['num_samples'] == NUM_SAMPLES and data['seed'] == 0
  np.testing.assert_allclose(data['probs'], temperature_figure.PROBS, rtol=1e-12)
  for column in data['columns']:
    samples = np.asarray(column['samples'])
    assert samples.shape == (3, 5)
    assert np.all(samples >= 0)
    np.testing.assert_allclose(samples.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.sum(column['expectation']), 1.0, atol=1e-5)


def test_categorical_expectation_is_pi(data):
  """Gumbel-Max samples have mean pi (within 5 standard errors)."""
  _, data = data
  column = _column(data, 'categorical')
  np.testing.assert_array_less(
      np.abs(np.asarray(column['expectation']) - data['probs']),
      5 * np.asarray(column['standard_error']) + 1e-4)


def test_low_temperature_expectation_is_close_to_pi(data):
  _, data = data
  expectation = np.asarray(_column(data, 'tau=0.1')['expectation'])
  np.testing.assert_allclose(expectation, data['probs'], atol=0.01)


def test_high_temperature_expectation_is_close_to_uniform(data):
  _, data = data
  expectation = np.asarray(_column(data, 'tau=10')['expectation'])
  np.testing.assert_allclose(expectation, 0.2, atol=0.03)
  # ... and flatter than at tau = 1, which is not close to uniform.
  at_one = np.asarray(_column(data, 'tau=1')['expectation'])
  assert np.ptp(expectation) < 0.5 * np.ptp(at_one)
  assert np.max(np.abs(at_one - 0.2)) > 0.1


def test_samples_sharpen_as_temperature_falls(data):
  _, data = data
  maxima = [np.max(_column(data, f'tau={t:g}')['samples'], axis=-1)
            for t in temperature_figure.TEMPERATURES]
  assert np.all(maxima[0] > 0.99)  # tau = 0.1: nearly one-hot.
  assert np.all(maxima[-1] < 0.4)  # tau = 10: nearly flat.


def test_rows_share_the_gumbel_noise(data):
  """Same key in every column: each row's argmax is the Gumbel-Max sample."""
  _, data = data
  categorical = np.asarray(_column(data, 'categorical')['samples'])
  for tau in temperature_figure.TEMPERATURES:
    samples = np.asarray(_column(data, f'tau={tau:g}')['samples'])
    np.testing.assert_array_equal(np.argmax(samples, -1), np.argmax(categorical, -1))


def test_rejects_bad_probs():
  with pytest.raises(ValueError, match='non-negative'):
    temperature_figure.compute_figure_data(None, [0.5, -0.1], (1.0,), 10, 1)


def test_command_line(tmp_path):
  subprocess.run(
      [sys.executable, '-m', 'scripts.temperature_figure', f'--out={tmp_path}',
       '--num_samples=1000', '--seed=3', '--probs=1,1,2'],
      check=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  with open(tmp_path / 'temperature_figure.json') as f:
    data = json.load(f)
  assert data['seed'] == 3 and data['num_samples'] == 1000
  np.testing.assert_allclose(data['probs'], [0.25, 0.25, 0.5])
  assert os.path.exists(tmp_path / 'temperature_figure.pdf')
