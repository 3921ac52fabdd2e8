"""README.md's results summary shows what the committed tables and benchmarks say.

docs/table1.md is rebuilt from results/ by `scripts.reproduce_table1 --collect_only`; the
README's Table 1 rows, its headline sentence and its speed ratios are derived here from those
files, so that a rebuilt table (or a new benchmark) and the README cannot drift apart: after a
rebuild, rerun this test and copy what it asks for. The hand-written pages under docs/ link to
the generated tables instead of copying their rows (one fact, one place).
"""

import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ('SBN (Bern.)', 'SBN (Cat.)', 'VAE (Bern.)', 'VAE (Cat.)')
PAPER_COLUMNS = ('sf', 'darn', 'muprop', 'st', 'annealed_st', 'gumbel_softmax',
                 'st_gumbel_softmax')
# Hand-written pages that discuss the tables; they must link to them, not copy them.
NOTES = ('table1_notes.md', 'reproducing.md', 'benchmarks.md', 'index.md')


def _section(title: str) -> str:
  text = (ROOT / 'README.md').read_text()
  start = text.index(f'\n## {title}\n')
  end = text.find('\n## ', start + 1)
  return text[start:end if end > 0 else len(text)]


def _table(text: str, first_header: str, column: str) -> tuple:
  """The first Markdown table whose header starts with `first_header` and names `column`."""
  lines = text.splitlines()
  for i, line in enumerate(lines[:-1]):
    cells = [c.strip() for c in line.strip().strip('|').split('|')]
    if line.startswith('| ') and cells[0] == first_header and any(
        c.split(' (')[0] == column for c in cells) and lines[i + 1].startswith('|---'):
      rows = []
      for row in lines[i + 2:]:
        if not row.startswith('|'):
          break
        rows.append([c.strip() for c in row.strip().strip('|').split('|')])
      return cells, rows
  raise AssertionError(f'no table with a column {column!r}')


def _docs_table1() -> dict:
  """docs/table1.md's main table: {model: {column: cell}}, columns without ' (paper, diff)'."""
  header, rows = _table((ROOT / 'docs' / 'table1.md').read_text(), 'model', 'rebar')
  names = [h.split(' (')[0] for h in header]
  return {r[0]: dict(zip(names, r)) for r in rows}


def table1_rows() -> list:
  """The README's Table 1 rows: docs/table1.md's cells of the paper's seven columns."""
  docs = _docs_table1()
  return ['| ' + ' | '.join([m] + [docs[m][c] for c in PAPER_COLUMNS]) + ' |' for m in MODELS]


def _value(cell: str, paper: bool = False) -> float:
  """`107.0 (101.5, +5.5)` -> 107.0 (ours) or 101.5 (paper's); inf where not run."""
  m = re.match(r'([0-9.]+) \(([0-9.]+),', cell)
  if not m:
    return float('inf')
  return float(m.group(2 if paper else 1))


def table1_headline() -> str:
  """The README's sentence on which of the paper's columns is best in each row."""
  docs = _docs_table1()

  def best(paper):
    return [min(PAPER_COLUMNS, key=lambda c: _value(docs[m][c], paper)) for m in MODELS]

  ours, theirs = best(False), best(True)
  if len(set(ours)) == 1:
    ours_text = f'`{ours[0]}` has the best bound of the paper\'s seven columns in all four rows'
  else:
    ours_text = 'The best of the paper\'s seven columns per row: ' + ', '.join(
        f'{m} `{c}`' for m, c in zip(MODELS, ours))
  if theirs == ours:
    return ours_text + ', as in the paper.'
  return ours_text + ' (the paper: ' + ', '.join(f'`{c}`' for c in theirs) + ').'


def _steps_per_sec(name: str) -> dict:
  lines = (ROOT / 'docs' / 'benchmarks' / name).read_text().splitlines()
  rows = [json.loads(line) for line in lines if line.strip()]
  return {r['impl']: r['steps_per_sec'] for r in rows if 'impl' in r}  # Not the ratio lines.


def speed_ratios() -> str:
  """JAX against PyTorch eager, from the committed benchmark_vae JSON lines."""
  cpu = _steps_per_sec('benchmark_vae_cpu.jsonl')
  gpu = _steps_per_sec('benchmark_vae_h200.jsonl')
  return (f'{cpu["jax"] / cpu["torch"]:.1f}x as many steps/s on a 2-core CPU '
          f'({cpu["jax"]:.0f} against {cpu["torch"]:.0f}) and {gpu["jax"] / gpu["torch"]:.1f}x on '
          f'an NVIDIA H200 ({gpu["jax"]:,.0f} against {gpu["torch"]:.0f})')


def ssl_speedups() -> str:
  """Gumbel-Softmax over marginalization in M2, from the committed scripts.ssl_speedup JSON."""
  def speedup(path, classes):
    (row,) = [r for r in json.loads((ROOT / 'docs' / path).read_text()) if r['classes'] == classes]
    return f'{row["speedup"]:.1f}x'
  cpu, gpu = 'ssl_speedup.json', 'benchmarks/ssl_speedup_h200.json'
  return (f'{speedup(cpu, 10)} at K = 10 and {speedup(cpu, 100)} at K = 100 on the CPU, '
          f'{speedup(gpu, 10)} and {speedup(gpu, 100)} on an H200')


def test_readme_table1_rows_are_docs_table1_rows():
  header, rows = _table(_section('Results'), 'model', 'gumbel_softmax')
  assert header == ['model', *PAPER_COLUMNS]
  shown = ['| ' + ' | '.join(r) + ' |' for r in rows]
  assert shown == table1_rows(), 'README Table 1 rows differ from docs/table1.md; use:\n' + (
      '\n'.join(table1_rows()))


def test_readme_table1_headline_is_docs_table1s():
  assert table1_headline() in ' '.join(_section('Results').split()), (
      f'README.md should say, from docs/table1.md: {table1_headline()}')


def test_readme_speed_ratios_are_the_benchmarks():
  assert speed_ratios() in ' '.join(_section('Results').split()), (
      f'README.md should say, from docs/benchmarks/: {speed_ratios()}')


def test_readme_ssl_speedups_are_the_benchmarks():
  section = ' '.join(_section('Results').split())
  assert ssl_speedups() in section, f'README.md should say, from docs/: {ssl_speedups()}'


def test_headline_follows_the_table(monkeypatch):
  """The derivation itself: a made-up table where st wins one of our rows changes the sentence."""
  assert _value('107.0 (101.5, +5.5)') == 107.0
  assert _value('107.0 (101.5, +5.5)', paper=True) == 101.5
  assert _value('missing') == float('inf')
  cells = {c: f'{70 + i}.0 ({60 + i}.0, +10.0)' for i, c in enumerate(PAPER_COLUMNS)}
  fake = {m: dict(cells) for m in MODELS}
  monkeypatch.setattr(__import__(__name__), '_docs_table1', lambda: fake)
  assert table1_headline() == "`sf` has the best bound of the paper's seven columns in all four rows, as in the paper."
  fake['VAE (Cat.)'] = dict(cells, st='50.0 (63.0, -13.0)')
  assert table1_headline() == (
      "The best of the paper's seven columns per row: SBN (Bern.) `sf`, SBN (Cat.) `sf`, "
      "VAE (Bern.) `sf`, VAE (Cat.) `st` (the paper: `sf`, `sf`, `sf`, `sf`).")


@pytest.mark.parametrize('page', NOTES)
def test_hand_written_pages_link_to_the_tables_rather_than_copy_them(page):
  """No row of a generated table (docs/table1*.md, table2_small.md) is copied into `page`."""
  text = (ROOT / 'docs' / page).read_text()
  generated = [p for p in (ROOT / 'docs').glob('table[12]*.md') if p.name not in NOTES]
  assert generated
  for path in generated:
    for line in path.read_text().splitlines():
      if line.startswith('| ') and not line.startswith('| model |') and len(line) > 40:
        assert line not in text, f'{page} copies a row of {path.name}: {line[:80]}'
