"""Tests for the documentation: the site builds in strict mode and every page's code runs.

`mkdocs build --strict` (mkdocs.yml) fails on a broken link or anchor, a page missing from
the nav or the nav naming a missing page, and a docstring that mkdocstrings cannot render or
a cross-reference it cannot resolve. Each docs/*.md page's ```python blocks run in order as one
script, `>>>` blocks as doctests (tests/markdown_blocks.py); the guide's blocks are then checked
against what their comments claim.
"""

import functools
import pathlib
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

import gumbel
import markdown_blocks

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / 'docs'
_ENV = {'NO_MKDOCS_2_WARNING': '1', 'PATH': '/usr/bin:/bin', 'PYTHONPATH': str(ROOT)}
PAGES_WITH_CODE = sorted(p.name for p in DOCS.glob('*.md') if markdown_blocks.python_blocks(p))


def test_site_builds_in_strict_mode(tmp_path):
  out = subprocess.run(
      [sys.executable, '-m', 'mkdocs', 'build', '--strict', '--site-dir', str(tmp_path / 'site')],
      cwd=ROOT, capture_output=True, text=True, timeout=120, check=False, env=_ENV)
  assert out.returncode == 0, out.stderr[-6000:]
  api = (tmp_path / 'site' / 'api' / 'distributions' / 'index.html').read_text()
  assert 'gumbel_softmax' in api and 'readings' in api  # The docstrings, temperature rule too.


def _build_tiny_site(tmp_path, pages: dict, nav: list, plugins: list) -> subprocess.CompletedProcess:
  """Builds `pages` under mkdocs.yml's own settings (strict, link validation, plugins)."""
  import yaml  # pylint: disable=g-import-not-at-top  # mkdocs's own dependency.
  config = yaml.safe_load((ROOT / 'mkdocs.yml').read_text())
  config.update(docs_dir='docs', nav=nav,
                plugins=[p for p in config['plugins'] if (p if isinstance(p, str) else
                                                          next(iter(p))) in plugins])
  (tmp_path / 'docs').mkdir()
  for name, text in pages.items():
    (tmp_path / 'docs' / name).write_text(text)
  (tmp_path / 'mkdocs.yml').write_text(yaml.safe_dump(config))
  env = dict(_ENV, PYTHONPATH=str(tmp_path))
  return subprocess.run(
      [sys.executable, '-m', 'mkdocs', 'build', '--site-dir', str(tmp_path / 'out')],
      cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False, env=env)


def test_strict_build_fails_on_a_broken_link(tmp_path):
  out = _build_tiny_site(tmp_path, {'index.md': '# Home\n\n[gone](no_such_page.md)\n'},
                         ['index.md'], plugins=[])
  assert out.returncode != 0 and 'no_such_page.md' in out.stderr, out.stderr[-3000:]


def test_strict_build_fails_on_a_broken_docstring_reference(tmp_path):
  (tmp_path / 'fakemod.py').write_text(
      '"""A module."""\n\n\ndef f(x):\n  """Like [the missing one][fakemod.missing].\n\n'
      '  Args:\n    x: a number.\n\n  Returns:\n    x.\n  """\n  return x\n')
  out = _build_tiny_site(tmp_path, {'index.md': '# Home\n', 'api.md': '# API\n\n::: fakemod\n'},
                         ['index.md', 'api.md'], plugins=['mkdocstrings'])
  assert out.returncode != 0 and 'fakemod.missing' in out.stderr, out.stderr[-3000:]


def test_every_public_module_has_an_api_page():
  """A module of gumbel/ (or a package) that is not private is documented by a ::: entry."""
  documented = set()
  for page in (DOCS / 'api').glob('*.md'):
    documented |= set(re.findall(r'^::: ([\w.]+)', page.read_text(), flags=re.M))
  modules = {'gumbel'}
  for path in (ROOT / 'gumbel').rglob('*.py'):
    parts = path.relative_to(ROOT).with_suffix('').parts
    if parts[-1] == '__init__':
      parts = parts[:-1]
    if not any(p.startswith('_') for p in parts):
      modules.add('.'.join(parts))
  missing = sorted(modules - documented)
  assert not missing, (f'no API page for {missing}: add docs/api/<module>.md holding '
                       "'::: <module>' and a line in mkdocs.yml's nav")


def test_every_docs_page_is_in_the_nav():
  nav = (ROOT / 'mkdocs.yml').read_text()
  pages = [p.relative_to(DOCS).as_posix() for p in DOCS.rglob('*.md')]
  assert pages and [p for p in pages if p not in nav] == []


@functools.cache
def _run(page: str) -> tuple:
  """Each page's blocks run once per session; the tests below check what they left."""
  return markdown_blocks.run_page(DOCS / page)


@pytest.mark.parametrize('page', PAGES_WITH_CODE)
def test_python_blocks_run(page):
  _run(page)


def test_guide_blocks_do_what_they_say():
  ns, out = _run('guide.md')
  np.testing.assert_array_equal(ns['z'], ns['y_st'])       # the same noise, the same argmax
  np.testing.assert_allclose(ns['y'].sum(-1), 1.0, rtol=1e-5)
  assert ns['log_p'].shape == (8,) and ns['y_rows'].shape == (8, 4)
  assert ns['mnist'].train.shape[1:] == (784,) and ns['x'].shape == (100, 784)
  assert set(np.unique(ns['x'])) <= {0.0, 1.0}
  # From PyTorch: the same sample under jit.
  np.testing.assert_allclose(ns['y_jit'], gumbel.gumbel_softmax(
      jax.random.key(1), ns['logits'], 0.5, hard=True, axis=-1), atol=1e-6)
  # distrax: a one-sample relaxed KL per example, and the sample is gumbel_softmax's.
  assert ns['kl'].shape == (8,) and np.all(np.isfinite(ns['kl']))
  np.testing.assert_allclose(ns['y_relaxed'], gumbel.gumbel_softmax(
      jax.random.key(1), ns['latent_logits'], 0.5), rtol=1e-5, atol=1e-7)
  # numpyro: the printed posterior is the one the comment shows, and the loss fell.
  block = [c for _, c in markdown_blocks.python_blocks(DOCS / 'guide.md') if 'numpyro' in c][-1]
  shown = re.search(r'# \[([0-9. ]+)\]', block).group(1)
  printed = out.strip().splitlines()[-1].strip('[]').split()
  np.testing.assert_allclose(np.asarray(printed, float), np.asarray(shown.split(), float),
                             atol=1e-3)
  assert ns['result'].losses[-50:].mean() < ns['result'].losses[:50].mean()


def test_estimator_page_gradient_is_the_surrogates():
  ns, _ = _run('estimators.md')
  assert ns['surrogate'].shape == (16,) and ns['grads'].shape == (16, 3, 4)
  assert np.all(np.isfinite(ns['grads'])) and np.any(ns['grads'] != 0)
