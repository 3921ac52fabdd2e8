r"""Prints a markdown results row per VAE workdir, from config.json and metrics.jsonl.

  python -m scripts.results_table workdirs/vae workdirs/vae_st
"""

import json
import os
import sys

from experiments import metric_writer
from experiments import run_files


def row(workdir: str) -> str:
  """One `| workdir | data | steps | train time | test -ELBO | NLL |` row."""
  with open(os.path.join(workdir, 'config.json')) as f:
    config = json.load(f)
  lines = metric_writer.read_metrics(workdir)
  train = [l for l in lines if 'train/neg_elbo' in l]
  test = [l for l in lines if 'test/neg_elbo' in l]
  if not test and train and run_files.read_result(workdir):  # Its line cut off (a copy).
    test = [run_files.read_result(workdir)]
  if not train or not test:
    raise ValueError(f'{workdir}: no finished run in metrics.jsonl.')
  seconds, previous = 0.0, 0
  for l in train:  # Each line covers the steps since the previous line.
    seconds += (l['step'] - previous) / l['steps_per_sec']
    previous = l['step']
  test = test[-1]
  # `test/nll`; result files written before the rename call it `test/nll_iw<m>`.
  nll = test['test/nll'] if 'test/nll' in test else next(
      v for k, v in test.items() if k.startswith('test/nll_iw'))
  data = config['data']
  source = test.get('data', test.get('test/data', f"{data['source']}:{data['name']}"))
  return (f"| {os.path.basename(os.path.normpath(workdir))} | hard={config['model']['hard']} "
          f"| {source} ({data['binarization']}) | {train[-1]['step']} "
          f"| {seconds / 60:.1f} min | {test['test/neg_elbo']:.2f} | {nll:.2f} |")


def main(argv):
  if len(argv) < 2:
    sys.exit(__doc__)
  print('| workdir | model | data | steps | train time | test -ELBO | NLL (IW) |')
  print('|---|---|---|---|---|---|---|')
  for workdir in argv[1:]:
    print(row(workdir))


if __name__ == '__main__':
  main(sys.argv)
