"""Tests of scripts/explain_table1.py: the registry of the runs that test Table 1's gaps."""

import csv
import json
import os

import pytest

from experiments import loop_config
from experiments import run_files
from scripts import explain_table1 as explain
from scripts import plot_runs
from scripts import reproduce_table1

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPLAIN = os.path.join(ROOT, 'results', 'explain')
TABLE1 = os.path.join(ROOT, 'results', 'table1')


@pytest.mark.parametrize('name', sorted(explain.EXPERIMENTS))
def test_every_experiment_is_its_cell_with_its_change(name, tmp_path):
  e = explain.EXPERIMENTS[name]
  assert e.estimator in reproduce_table1.PAPER_COLUMNS  # It explains a cell with a paper number.
  members = explain.members(name, e, str(tmp_path))
  assert len(members) == max(1, len(e.learning_rates))
  flat = loop_config.flatten_config(members[0].config)
  for key, value in e.overrides.items():
    assert flat[key] == value, key
  assert flat['model.name'] == e.row and flat['estimator.name'] == e.estimator
  if e.learning_rates:
    assert [m.config.optimizer.learning_rate for m in members] == list(e.learning_rates)
    assert all(os.path.dirname(m.workdir) == str(tmp_path / name) for m in members)
  else:
    assert members[0].workdir == str(tmp_path / name)


def _committed_configs():
  for name, e in explain.EXPERIMENTS.items():
    folder = os.path.join(EXPLAIN, name)
    for root, _, files in os.walk(folder):
      if 'config.json' in files and 'checkpoints' not in root:
        yield name, e, root


@pytest.mark.parametrize('name,experiment,folder', list(_committed_configs()))
def test_committed_runs_were_made_with_the_registered_change(name, experiment, folder, tmp_path):
  """A committed run's config.json is the config the registry gives (fields added to the
  config since it ran are absent from it, never different)."""
  if experiment.made_by:
    pytest.skip(f'{name} was made by {experiment.made_by}')
  with open(os.path.join(folder, 'config.json')) as f:
    committed = plot_runs.flatten(json.load(f))
  by_workdir = {os.path.relpath(m.workdir, str(tmp_path)): m
                for m in explain.members(name, experiment, str(tmp_path))}
  member = by_workdir[os.path.relpath(folder, EXPLAIN)]
  ours = plot_runs.flatten(json.loads(json.dumps(member.config.to_dict())))  # Tuples as lists, as on disk.
  differ = {k: (committed[k], ours.get(k)) for k in committed if committed[k] != ours.get(k)}
  assert not differ, differ


def test_table_puts_each_finished_experiment_beside_its_cell(tmp_path):
  text = explain.write_table(EXPLAIN, TABLE1, str(tmp_path))
  with open(tmp_path / 'table1_explain.csv') as f:
    records = {r['experiment']: r for r in csv.DictReader(f)}
  assert set(records) == set(explain.EXPERIMENTS)
  for name, r in records.items():
    e = explain.EXPERIMENTS[name]
    paper = reproduce_table1.PAPER[e.row][reproduce_table1.PAPER_COLUMNS.index(e.estimator)]
    assert float(r['paper']) == paper
    folder = os.path.join(EXPLAIN, name)
    result = run_files.read_result(folder)
    if result and not e.learning_rates:  # One run: its own test bound.
      assert float(r['test']) == pytest.approx(result['test/nll'])
      assert f'{result["test/nll"]:.2f}' in text
  assert '| sbn_bern_sf_lr0.01 | SBN (Bern.) sf |' in text


def test_a_bad_override_names_the_experiment(tmp_path):
  bad = explain.Experiment('vae_cat', 'st', 'nothing', {'estimator.no_such_field': 1})
  with pytest.raises(ValueError, match=r"'broken'.*no_such_field"):
    explain.members('broken', bad, str(tmp_path))
