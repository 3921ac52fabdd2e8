"""README.md's Table 1 section shows what the committed tables (docs/table1*.md) say.

The tables are rebuilt from results/ by the commands the section shows; the README's copies of
their rows must be the same rows, so that a rebuilt table and the README cannot drift apart.
"""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
SECTION = '## Estimator comparison: [GS] Table 1'


def _section() -> str:
  text = (ROOT / 'README.md').read_text()
  start = text.index(SECTION)
  return text[start:text.index('\n## ', start + len(SECTION))]


def _rows(text: str, first_cells) -> dict:
  """Table lines keyed by their first cell, for first cells in `first_cells`."""
  out = {}
  for line in text.splitlines():
    m = re.match(r'\| ([^|]+?) \|', line)
    if m and m.group(1) in first_cells and m.group(1) not in out:
      out[m.group(1)] = line
  return out


def test_readme_table1_rows_are_docs_table1_rows():
  models = ('SBN (Bern.)', 'SBN (Cat.)', 'VAE (Bern.)', 'VAE (Cat.)')
  docs = _rows((ROOT / 'docs' / 'table1.md').read_text(), models)
  readme = _rows(_section(), models)
  assert set(docs) == set(models)
  for model in models:  # The README may show the paper's columns only: a prefix of the cells.
    cells = readme[model].strip('|').split('|')
    assert len(cells) >= 8, readme[model]
    assert cells == docs[model].strip('|').split('|')[:len(cells)], model


def test_readme_explanation_rows_are_docs_rows():
  docs_text = (ROOT / 'docs' / 'table1_explain.md').read_text()
  names = re.findall(r'^\| ([a-z0-9_.]+) \|', docs_text, flags=re.M)
  assert names
  docs = _rows(docs_text, names)
  readme = _rows(_section(), names)
  assert readme, 'README shows none of docs/table1_explain.md'
  for name, line in readme.items():
    assert line == docs[name], name
