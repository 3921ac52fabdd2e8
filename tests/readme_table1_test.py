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


def _tables(text: str) -> list:
  """Markdown tables as (header cells, rows of cells)."""
  out, lines = [], text.splitlines()
  for i, line in enumerate(lines[:-1]):
    if line.startswith('| ') and lines[i + 1].startswith('|---') and (
        i == 0 or not lines[i - 1].startswith('|')):
      header = [c.strip() for c in line.strip('|').split('|')]
      rows = []
      for row in lines[i + 2:]:
        if not row.startswith('|'):
          break
        rows.append([c.strip() for c in row.strip('|').split('|')])
      out.append((header, rows))
  return out


def test_readme_table1_columns_are_docs_table1_columns():
  """Any README table of the models against some of docs/table1.md's columns shows its cells."""
  (header, rows), = [t for t in _tables((ROOT / 'docs' / 'table1.md').read_text())
                     if t[0][0] == 'model' and 'rebar' in t[0]]
  docs = {r[0]: dict(zip(header, r)) for r in rows}
  names = {h.split(' (')[0]: h for h in header}  # 'sf (paper, diff)' -> 'sf'
  checked = 0
  table1 = _section().split('**Small preset')[0]  # The small preset's table is another run's.
  for readme_header, readme_rows in _tables(table1):
    if readme_header[0] != 'model' or not readme_rows or readme_rows[0][0] not in docs:
      continue
    if not all(h.split(' (')[0] in names for h in readme_header[1:]):
      continue  # Not a table of estimator columns (an ordering, a gap table).
    for row in readme_rows:
      for h, cell in zip(readme_header[1:], row[1:]):
        assert cell == docs[row[0]][names[h.split(' (')[0]]], (row[0], h)
        checked += 1
  assert checked >= 28


def test_readme_explanation_rows_are_docs_rows():
  docs_text = (ROOT / 'docs' / 'table1_explain.md').read_text()
  names = re.findall(r'^\| ([a-z0-9_.]+) \|', docs_text, flags=re.M)
  assert names
  docs = _rows(docs_text, names)
  readme = _rows(_section(), names)
  assert readme, 'README shows none of docs/table1_explain.md'
  for name, line in readme.items():
    assert line == docs[name], name
