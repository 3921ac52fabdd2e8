"""Tests for README.md, the front page: short, its commands and links real, its code runs.

Its ```python blocks run in order as one script (`markdown_blocks.run_page`); the test then
checks what their comments claim. The results summary is checked against the generated
tables in tests/readme_table1_test.py; the examples' output in tests/examples_test.py.
"""

import pathlib
import re

import jax.numpy as jnp
import numpy as np
import pytest

import gumbel
import markdown_blocks

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / 'README.md'
TRAIN = ('pip install -r requirements.txt && python -m experiments.main '
         '--config=configs/vae.py --workdir=workdirs/vae')
TEST = 'pip install -r requirements.txt && JAX_NUMPY_RANK_PROMOTION=raise python -m pytest -q'


def test_readme_is_a_front_page():
  assert len(README.read_text().splitlines()) <= 250


def test_quick_start_commands_are_the_ones_ci_runs():
  blocks = re.findall(r'```bash\n(.*?)\n```', README.read_text(), flags=re.S)
  assert TRAIN in blocks and TEST in blocks, blocks
  ci = (ROOT / '.ci' / 'run').read_text().rstrip().splitlines()[-1]
  assert ci.replace('pip install -q ', 'pip install ') == TEST, ci  # CI is quiet, no more.


def test_relative_links_and_pictures_exist():
  text = README.read_text()
  targets = re.findall(r'\]\(([^)#]+)(?:#[^)]*)?\)', text) + re.findall(r'src="([^"]+)"', text)
  local = [t for t in targets if '://' not in t]
  assert len(local) >= 10, local
  for target in local:
    assert (ROOT / target).exists(), f'README.md links to {target}, which does not exist'


def test_python_blocks_run_in_order_and_do_what_they_say():
  ns, _ = markdown_blocks.run_page(README)
  y, y_st, logits = ns['y'], ns['y_st'], ns['logits']
  assert y.shape == y_st.shape == logits.shape == (8, 30, 10)
  np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(y_st.sum(-1), 1.0)
  np.testing.assert_array_equal(y_st, gumbel.gumbel_max(ns['noise_key'], logits))
  np.testing.assert_allclose(ns['tau'], max(0.5, np.exp(-3e-5 * 5000)), rtol=1e-6)
  np.testing.assert_allclose(
      ns['kl'], gumbel.categorical_kl(logits, jnp.zeros_like(logits)).sum(-1), rtol=1e-6)
  assert ns['kl'].shape == (8,) and ns['grad'].shape == (8, 30, 10)
  assert np.all(np.isfinite(ns['grad'])) and np.any(ns['grad'] != 0)


def test_python_blocks_fail_when_the_code_is_wrong(tmp_path):
  """The runner is not a no-op: a block that breaks or a doctest that lies fails."""
  page = tmp_path / 'page.md'
  page.write_text('```python\nx = 1\n```\n\n```python\ny = x + key\n```\n')
  with pytest.raises(NameError, match='key'):
    markdown_blocks.run_page(page)
  page.write_text('```python\nx = 1\n```\n\n```python\n>>> x + 1\n3\n```\n')
  with pytest.raises(AssertionError, match='(?s)Expected:.*3.*Got:.*2'):
    markdown_blocks.run_page(page)


def test_estimator_count_is_the_registrys():
  counts = set(re.findall(r'(\d+) gradient\s+estimators|any of the (\d+)', README.read_text()))
  numbers = {int(n) for pair in counts for n in pair if n}
  assert numbers == {len(gumbel.ESTIMATORS)}, (numbers, sorted(gumbel.ESTIMATORS))
