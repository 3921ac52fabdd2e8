"""Tests for pyproject.toml: the wheel installs `gumbel` and `experiments`, nothing else.

Builds the wheel from a copy of the checkout (so that the build leaves no
`build/` or `*.egg-info` behind in it), without build isolation and without
an index (offline; needs setuptools >= 70.1, pinned in requirements.txt),
installs it into a fresh folder and imports it in a subprocess that runs
outside the checkout. About 5 seconds.
"""

import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
_IGNORE = shutil.ignore_patterns(
    '.git', '__pycache__', '*.pyc', '*.egg-info', 'build', 'dist', 'workdirs',
    '.venv', '.whl', '.pytest_cache')

_CHECK = """
import importlib.metadata, sys
import jax, jax.numpy as jnp
import gumbel
from gumbel import estimators
print(gumbel.__file__)
assert importlib.metadata.version('gumbel') == gumbel.__version__
y = gumbel.gumbel_softmax(jax.random.key(0), jnp.zeros((2, 3)), 0.5)
assert y.shape == (2, 3), y.shape
assert abs(float(y.sum()) - 2.0) < 1e-5, y
assert 'rebar' in gumbel.ESTIMATORS and estimators.ESTIMATORS is gumbel.ESTIMATORS
# The adapters' packages are optional extras: importing gumbel needs neither.
assert 'distrax' not in sys.modules and 'numpyro' not in sys.modules
"""

# The one line of the docs that loads MNIST in a user's script (the experiments extra).
_LOAD_MNIST = """
from experiments import input_pipeline; data = input_pipeline.load_mnist(source='embedded')
import experiments
print(experiments.__file__)
assert data.train.shape == (4000, 784) and data.test.shape == (1000, 784), data
assert data.train.dtype == 'float32' and 0 <= data.train.min() and data.train.max() <= 1
"""


def _pip(*args, cwd):
  return subprocess.run(
      [sys.executable, '-m', 'pip', *args, '--no-index', '--quiet',
       '--disable-pip-version-check'],
      cwd=cwd, check=True, capture_output=True, text=True)


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
  tmp = tmp_path_factory.mktemp('packaging')
  src = tmp / 'src'
  shutil.copytree(ROOT, src, ignore=_IGNORE)
  dist = tmp / 'dist'
  _pip('wheel', '--no-deps', '--no-build-isolation', '--wheel-dir', str(dist),
       str(src), cwd=tmp)
  (path,) = dist.glob('gumbel-*.whl')
  return path


def test_wheel_holds_the_library_and_the_experiments(wheel):
  with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
  top = {n.split('/')[0] for n in names}
  assert {n for n in top if not n.endswith('.dist-info')} == {'gumbel', 'experiments'}, top
  assert 'experiments/input_pipeline.py' in names
  assert 'gumbel/__init__.py' in names
  assert 'gumbel/estimators/__init__.py' in names
  assert 'gumbel/estimators.py' not in names
  assert {'gumbel/distrax_adapter.py', 'gumbel/numpyro_adapter.py'} <= set(names)
  (metadata,) = [n for n in names if n.endswith('.dist-info/METADATA')]
  with zipfile.ZipFile(wheel) as z:
    text = z.read(metadata).decode()
  requires = [l.split(':', 1)[1].strip() for l in text.splitlines()
              if l.startswith('Requires-Dist:')]
  base = sorted(r.split('>')[0].split('=')[0] for r in requires if 'extra ==' not in r)
  assert base == ['flax', 'jax', 'numpy', 'optax', 'scipy'], requires
  extras = [l.split(':', 1)[1].strip() for l in text.splitlines()
            if l.startswith('Provides-Extra:')]
  assert sorted(extras) == ['distrax', 'experiments', 'numpyro', 'test'], extras
  assert any(r.startswith('distrax') and 'extra == "distrax"' in r for r in requires), requires
  assert any(r.startswith('numpyro') and 'extra == "numpyro"' in r for r in requires), requires


@pytest.fixture(scope='module')
def installed(wheel, tmp_path_factory):
  """The wheel installed into a fresh folder, and an empty folder outside the checkout."""
  tmp = tmp_path_factory.mktemp('installed')
  target = tmp / 'site'
  _pip('install', '--no-deps', '--target', str(target), str(wheel), cwd=tmp)
  elsewhere = tmp / 'elsewhere'
  elsewhere.mkdir()
  return target, elsewhere


@pytest.mark.parametrize('check', [_CHECK, _LOAD_MNIST], ids=['gumbel', 'load_mnist'])
def test_installed_wheel_imports_outside_the_checkout(installed, check):
  target, elsewhere = installed
  env = {**os.environ, 'PYTHONPATH': str(target)}
  out = subprocess.run([sys.executable, '-c', check], cwd=elsewhere, env=env,
                       check=False, capture_output=True, text=True)
  assert out.returncode == 0, out.stderr
  location = pathlib.Path(out.stdout.strip().splitlines()[-1]).resolve()
  assert location.is_relative_to(target.resolve()), location
  assert not location.is_relative_to(ROOT), location
