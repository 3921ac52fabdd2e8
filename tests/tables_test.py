"""Tests of scripts/tables.py."""

import csv
import os

from scripts import tables


def test_write_names_missing_and_diverged_runs_and_writes_both_files(tmp_path):
  summaries = {'a': {'missing': ['/w/b', '/w/a'], 'diverged': []},
               'b': {'missing': [], 'diverged': ['/w/c']}}
  rows = [{'row': 'a', 'mean': 1.5}, {'row': 'b', 'mean': None}]
  text = tables.write(str(tmp_path), 't', ['| x |'], rows, summaries, first_field='row')
  assert text == ('| x |\n\nMissing (2 runs not finished):\n- /w/a\n- /w/b\n\n'
                  'Diverged (1 runs, excluded):\n- /w/c\n')
  assert (tmp_path / 't.md').read_text() == text
  with open(tmp_path / 't.csv') as f:
    assert list(csv.DictReader(f)) == [{'row': 'a', 'mean': '1.5'}, {'row': 'b', 'mean': ''}]


def test_write_without_rows_writes_a_header(tmp_path):
  text = tables.write(str(tmp_path), 't', ['| x |'], [], {}, first_field='mode')
  assert text == '| x |\n'
  assert open(os.path.join(tmp_path, 't.csv')).read().strip() == 'mode'
