"""Tests of scripts/reproduce_table1.py on the tiny preset."""

import csv
import json
import os
import shutil
import subprocess
import sys

from absl import app
import pytest

from configs import estimator_comparison as table_config
from experiments import launcher
from experiments import run_files
from experiments import sweep
from scripts import reproduce_table1 as table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('table1'))
  rows, estimators = ['sbn_cat', 'vae_bern'], ['disarm', 'sf']
  cells = table.cell_members('tiny', rows, estimators, workdir, {'grad_var_every': 0})
  launcher.run([m for ms in cells.values() for m in ms])
  return workdir, rows, estimators, cells


def test_table_picks_on_validation_and_marks_unsupported_cells(finished):
  workdir, rows, estimators, cells = finished
  assert ('sbn_cat', 'disarm') not in cells  # Bernoulli-only: n/a.
  text = table.write_table(cells, rows, estimators, workdir, 'tiny')
  lines = text.splitlines()
  assert '| model | sf (paper, diff) | disarm |' in lines
  sbn = next(l for l in lines if l.startswith('| SBN (Cat.)'))
  assert sbn.endswith('| n/a |') and '(73.1, ' in sbn and '±' in sbn
  assert 'Missing' not in text
  with open(os.path.join(workdir, 'table1.csv')) as f:
    records = list(csv.DictReader(f))
  assert len(records) == 3
  for r in records:
    s = table.summarize(cells[(r['row'], r['estimator'])])
    assert float(r['mean']) == pytest.approx(s['mean'])
    # The chosen learning rate has the lowest mean validation metric.
    valid_key, _ = table.metric_names(cells[(r['row'], r['estimator'])][0].config)
    by_lr = {}
    for m in cells[(r['row'], r['estimator'])]:
      by_lr.setdefault(m.config.optimizer.learning_rate, []).append(
          run_files.read_result(m.workdir)[valid_key])
    best = min(by_lr, key=lambda lr: sum(by_lr[lr]) / len(by_lr[lr]))
    assert float(r['learning_rate']) == best


def test_spearman_gives_tied_values_their_mean_rank():
  # Ranks (1, 2, 3) against (1.5, 1.5, 3): r = 1.5 / sqrt(2 * 1.5). Ordinal ranks would break
  # the tie by position and give 1 or 0.5.
  assert table._spearman([1.0, 2.0, 3.0], [5.0, 5.0, 7.0]) == pytest.approx(0.75 ** 0.5)
  assert table._spearman([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)


def test_missing_members_are_named(finished, tmp_path):
  workdir, rows, estimators, _ = finished
  copy = str(tmp_path / 'copy')
  shutil.copytree(workdir, copy)
  cells = table.cell_members('tiny', rows, estimators, copy, {'grad_var_every': 0})
  gone = cells[('vae_bern', 'sf')][0].workdir
  os.remove(os.path.join(gone, 'result.json'))
  text = table.write_table(cells, rows, estimators, copy, 'tiny')
  assert 'Missing (1 runs not finished):' in text and gone in text
  assert table.summarize(cells[('vae_bern', 'sf')])['seeds'] >= 1
  # A cell chosen among some of its runs says how many.
  runs = len(cells[('vae_bern', 'sf')])
  lines = text.splitlines()
  header = next(l for l in lines if l.startswith('| model |')).split('|')
  line, = [l for l in lines if l.startswith('| VAE (Bern.) |')]
  column = next(i for i, h in enumerate(header) if h.strip().startswith('sf'))
  assert f'[{runs - 1} of {runs} runs]' in line.split('|')[column]
  whole = str(tmp_path / 'whole')
  os.makedirs(whole)
  assert ' runs]' not in table.write_table(finished[3], rows, estimators, whole, 'tiny')


def test_two_local_workers_cover_the_grid(tmp_path):
  proc = subprocess.run(
      [sys.executable, '-m', 'scripts.reproduce_table1', '--preset=tiny',
       f'--workdir={tmp_path}', '--rows=vae_cat', '--estimators=st,arm', '--workers=2'],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert os.path.exists(tmp_path / 'worker0.log') and os.path.exists(tmp_path / 'worker1.log')
  with open(tmp_path / 'table1.md') as f:
    text = f.read()
  assert '| VAE (Cat.) |' in text and 'Missing' not in text
  assert 'Wall time of this run' in text


def test_one_worker_trains_here_with_xla_on_one_thread_as_the_workers_do(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  proc = subprocess.run(
      [sys.executable, '-m', 'scripts.reproduce_table1', '--preset=tiny',
       f'--workdir={tmp_path}', '--rows=vae_cat', '--estimators=st', '--workers=1'],
      cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert not os.path.exists(tmp_path / 'worker0.log')  # Trained in the launcher itself.
  cells = table.cell_members('tiny', ['vae_cat'], ['st'], str(tmp_path), {})
  for m in cells[('vae_cat', 'st')]:
    with open(os.path.join(m.workdir, 'result.json')) as f:
      text = f.read()
    assert 'intra_op_parallelism_threads=1' in text and 'multi_thread_eigen=false' in text


def test_validation_chooses_the_annealing_with_the_learning_rate(tmp_path):
  config = table_config.get_config('model=vae_cat,estimator=gumbel_softmax,preset=tiny')
  hyper = sweep.product([sweep.sweep('config.seed', (0, 1)),
                         sweep.sweep('config.optimizer.learning_rate', (1e-3, 3e-4)),
                         sweep.sweep('config.temperature.interval', (500, 1000))])
  members = sweep.expand(config, hyper, str(tmp_path))
  for m in members:
    best = m.config.optimizer.learning_rate == 3e-4 and m.config.temperature.interval == 1000
    os.makedirs(m.workdir)
    with open(os.path.join(m.workdir, 'result.json'), 'w') as f:
      json.dump({'step': m.config.num_train_steps,
                 'valid/nll': (90.0 if best else 100.0) + m.config.seed,
                 'test/nll': (80.0 if best else 70.0) + m.config.seed}, f)
  summary = table.summarize(members)
  assert summary['learning_rate'] == 3e-4
  assert summary['chosen'] == 'temperature.interval=1000'
  assert summary['seeds'] == 2 and summary['mean'] == pytest.approx(80.5)


def test_figures_draw_cost_and_curves_of_the_finished_cells(finished, tmp_path):
  from scripts import table1_figures  # pylint: disable=g-import-not-at-top
  _, rows, _, cells = finished
  paths = table1_figures.draw(cells, rows, str(tmp_path))
  assert [os.path.basename(p) for p in paths] == ['table1_cost.png', 'table1_curves.png']
  assert all(os.path.getsize(p) > 5000 for p in paths)
  with pytest.raises(ValueError, match='No finished cell'):
    table1_figures.draw({}, rows, str(tmp_path))


def test_queue_order_puts_slow_or_cheap_cells_first(tmp_path):
  cells = table.cell_members('tiny', ['vae_cat', 'sbn_cat'], ['st', 'arm'], str(tmp_path))
  members = [m for ms in cells.values() for m in ms]
  def names(order):
    return [(m.config.model.task, m.config.estimator.name)
            for m in table.queue_order(members, order)]
  slow, cheap = names('slow_first'), names('cheap_first')
  assert slow[0] == ('sbn', 'arm') and cheap[-1] == ('sbn', 'arm')  # ARM's categorical cost, x2.
  assert cheap[0][1] == 'st' and sorted(slow) == sorted(cheap) == sorted(names('slow_first'))
  # A stable sort: members of one cell keep the grid's order.
  sbn_st = [m.workdir for m in table.queue_order(members, 'cheap_first')
            if m.config.model.task == 'sbn' and m.config.estimator.name == 'st']
  assert sbn_st == [m.workdir for m in cells[('sbn_cat', 'st')]]
  with pytest.raises(ValueError, match="'fastest'.*allowed"):
    table.queue_order(members, 'fastest')


def test_a_bad_override_names_the_key_and_the_cell(tmp_path):
  with pytest.raises(ValueError, match=r'vae_cat st.*no_such_field'):
    table.cell_members('tiny', ['vae_cat'], ['st'], str(tmp_path), {'model.no_such_field': 1})


def test_newest_estimators_are_set_against_their_peers():
  summaries = {('vae_bern', 'zgr'): {'mean': 108.0}, ('vae_bern', 'st_gumbel_softmax'): {'mean': 109.5},
               ('vae_bern', 'reinmax'): {'mean': 107.25}, ('vae_cat', 'gumbel_rao'): {'mean': 1.0}}
  lines = table._against_peers(summaries, ['vae_bern', 'vae_cat'])
  assert lines[3] == ('| model | estimator | ours | minus st_gumbel_softmax | minus gumbel_rao | '
                      'minus reinmax |')
  assert lines[5:] == ['| VAE (Bern.) | zgr | 108.0 | -1.5 | missing | +0.8 |']
  assert table._against_peers({('vae_bern', 'reinmax'): {'mean': 1.0}}, ['vae_bern']) == []
  partial = {('vae_cat', 'rloo'): {'mean': 2.0, 'runs': 8, 'missing': ['a'] * 6}}
  assert table._against_peers(partial, ['vae_cat'])[-1] == (
      '| VAE (Cat.) | rloo | 2.0 [2 of 8 runs] | missing | missing | missing |')
