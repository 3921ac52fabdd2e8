"""Runs every script in examples/ for a few steps, as a user would, and checks its claims.

Each script runs in this process (`runpy`, with its own argv) on the embedded MNIST digits, so
the data are parsed once; the README's copy of each script's output must have the lines the
script prints (numbers aside).
"""

import pathlib
import re
import runpy
import sys

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

import gumbel

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / 'examples'


@pytest.fixture(autouse=True)
def _examples_importable(monkeypatch):
  # As `python examples/x.py` does: the script's folder first on sys.path.
  monkeypatch.syspath_prepend(str(EXAMPLES))


def _run(capsys, monkeypatch, name, *args) -> list:
  """Runs examples/<name>.py with `args`; returns the lines it printed."""
  monkeypatch.setattr(sys, 'argv', [f'examples/{name}.py', *args])
  runpy.run_path(str(EXAMPLES / f'{name}.py'), run_name='__main__')
  lines = capsys.readouterr().out.splitlines()
  _check_readme_shows(name, lines)
  return lines


def _shape(line: str) -> str:
  """A printed line without its numbers and its estimator's name (`rebar (categorical)`)."""
  line = re.sub(r'^[a-z_]+ \((categorical|bernoulli)\)', 'ESTIMATOR (KIND)', line)
  return ' '.join(re.sub(r'-?[0-9][0-9.,]*', 'N', line).split())


def _readme_output(name: str) -> list:
  text = (ROOT / 'README.md').read_text()
  m = re.search(rf'```text\n\$ python examples/{name}\.py[^\n]*\n(.*?)```', text, flags=re.S)
  assert m, f'README.md shows no output of examples/{name}.py'
  return m.group(1).splitlines()


def _check_readme_shows(name, printed):
  shown = {_shape(l) for l in _readme_output(name) if not l.startswith('wrote')}
  for line in printed:
    if not line.startswith('wrote'):
      assert _shape(line) in shown, f'README.md shows no line like {line!r} of {name}.py'


def _column(lines, word) -> list:
  return [float(l.split(word)[1].split()[0]) for l in lines if word in l]


def test_every_example_has_a_test_and_a_readme_output():
  tests = ''.join(p.read_text() for p in pathlib.Path(__file__).parent.glob('examples*_test.py'))
  for path in sorted(EXAMPLES.glob('*.py')):
    assert f'def test_{path.stem}' in tests, f'examples/{path.name} has no test in tests/examples*_test.py'
    assert _readme_output(path.stem)


def test_categorical_vae(capsys, monkeypatch, tmp_path):
  out = tmp_path / 'samples.png'
  lines = _run(capsys, monkeypatch, 'categorical_vae', '--steps=30', '--log_every=10',
               f'--out={out}')
  train = _column(lines, 'train -ELBO')
  assert len(train) == 3 and train[-1] < train[0] - 50, lines  # From ~545 nats, it learns.
  (test,) = _column(lines, 'test -ELBO')
  assert np.isfinite(test) and 100 < test < 550, lines
  image = Image.open(out)
  assert image.size == (280, 280) and image.mode == 'L'  # 10 x 10 decoded digits.


def test_categorical_vae_distrax(capsys, monkeypatch, tmp_path):
  lines = _run(capsys, monkeypatch, 'categorical_vae_distrax', '--steps=3', '--log_every=3',
               f'--out={tmp_path / "samples.png"}')
  assert len(_column(lines, 'train -ELBO')) == 1 and (tmp_path / 'samples.png').exists()
  # Its distribution objects compute the plain script's loss: the same sample, the same terms.
  import categorical_vae  # pylint: disable=g-import-not-at-top
  import categorical_vae_distrax  # pylint: disable=g-import-not-at-top
  x = jax.random.bernoulli(jax.random.key(0), 0.3, (16, 784)).astype(jnp.float32)
  params = categorical_vae.VAE().init(jax.random.key(1), x)
  for hard in (False, True):
    args = (params, jax.random.key(2), x, 0.7, hard)
    np.testing.assert_allclose(categorical_vae_distrax.neg_elbo(*args),
                               categorical_vae.neg_elbo(*args), rtol=1e-5)


def test_nnx_straight_through(capsys, monkeypatch):
  lines = _run(capsys, monkeypatch, 'nnx_straight_through', '--steps=20', '--log_every=10')
  train = _column(lines, 'train -ELBO')
  assert len(train) == 2 and train[-1] < 545, lines
  assert np.isfinite(_column(lines, 'test -ELBO')).all()
  from flax import nnx  # pylint: disable=g-import-not-at-top
  import nnx_straight_through as ex  # pylint: disable=g-import-not-at-top
  logits = jnp.zeros((4, 3, 5))
  for rngs in (nnx.Rngs(gumbel=0), nnx.Rngs(gumbel=0).gumbel):  # the Rngs or its stream
    layer = ex.StraightThroughGumbel(rngs=rngs)
    first, second = layer(logits, 0.5), layer(logits, 0.5)
    np.testing.assert_array_equal(first.sum(-1), 1.0)
    assert set(np.unique(first)) == {0.0, 1.0}
    assert not np.array_equal(first, second)  # A fresh key from the stream at every call.
  weights = jnp.broadcast_to(jnp.arange(5.0), logits.shape)
  grad = jax.grad(lambda l: jnp.sum(
      ex.StraightThroughGumbel(rngs=nnx.Rngs(gumbel=0))(l, 0.5) * weights))(logits)
  assert np.any(grad != 0)  # The straight-through gradient reaches the logits.


@pytest.mark.parametrize('estimator', ['sf', 'st_gumbel_softmax', 'arsm', 'rebar', 'disarm',
                                       'vimco'])
def test_estimator_in_your_loss(capsys, monkeypatch, estimator):
  lines = _run(capsys, monkeypatch, 'estimator_in_your_loss', f'--estimator={estimator}',
               '--steps=4', '--log_every=2')
  kind = 'bernoulli' if estimator == 'disarm' else 'categorical'
  assert [l.split(' step')[0] for l in lines] == [f'{estimator} ({kind})'] * 2
  assert np.isfinite(_column(lines, 'loss')).all(), lines
  assert set(gumbel.ESTIMATORS) >= {estimator}


def test_categorical_vae_is_under_100_lines_as_the_readme_says():
  lines = len((EXAMPLES / 'categorical_vae.py').read_text().splitlines())
  assert lines < 100  # The blog's "less than 100 lines".
  assert f'in {lines} lines of gumbel + flax + optax' in ' '.join(
      (ROOT / 'README.md').read_text().split())
