"""Runs the code blocks of README.md's section on PyTorch, distrax and numpyro.

Each block runs as written, in a fresh namespace; the test then checks what
the block's comments claim (shapes, the same samples, the printed output).
The distrax and numpyro blocks are skipped with the extra's name when the
package is absent.
"""

import contextlib
import io
import pathlib
import re

import jax
import numpy as np
import pytest

import gumbel

README = pathlib.Path(__file__).resolve().parent.parent / 'README.md'
SECTION = '## From PyTorch; distrax and numpyro distributions'


def _blocks():
  text = README.read_text()
  start = text.index(SECTION)
  end = text.index('\n## ', start + len(SECTION))
  return re.findall(r'```python\n(.*?)```', text[start:end], flags=re.S)


def _run(code):
  namespace, out = {}, io.StringIO()
  with contextlib.redirect_stdout(out):
    exec(compile(code, str(README), 'exec'), namespace)  # pylint: disable=exec-used
  return namespace, out.getvalue()


def _block(word):
  (block,) = [b for b in _blocks() if word in b]
  return block


def test_section_has_the_three_blocks():
  assert len(_blocks()) == 3


def test_pytorch_block():
  ns, _ = _run(_block('F.gumbel_softmax'))
  np.testing.assert_array_equal(ns['y'].sum(-1), 1.0)
  np.testing.assert_allclose(ns['y_jit'], ns['y'], atol=1e-6)


def test_distrax_block():
  pytest.importorskip('distrax', reason='the distrax extra is not installed: '
                      'pip install "gumbel[distrax]"')
  ns, _ = _run(_block('import distrax'))
  assert ns['kl'].shape == (8,) and np.all(np.isfinite(ns['kl']))
  np.testing.assert_allclose(
      ns['y'], gumbel.gumbel_softmax(jax.random.key(1), ns['logits'], 0.5), rtol=1e-5, atol=1e-7)


def test_numpyro_block():
  pytest.importorskip('numpyro', reason='the numpyro extra is not installed: '
                      'pip install "gumbel[numpyro]"')
  block = _block('import numpyro')
  ns, out = _run(block)
  printed = np.asarray([float(v) for v in out.strip().strip('[]').split()])
  shown = re.search(r'# \[([0-9. ]+)\]', block).group(1)
  np.testing.assert_allclose(printed, np.asarray(shown.split(), float), atol=1e-3)
  assert ns['result'].losses[-50:].mean() < ns['result'].losses[:50].mean()
