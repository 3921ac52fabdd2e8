"""Runs examples/quantizer_mnist.py for a few steps, as a user would.

Run with `JAX_NUMPY_RANK_PROMOTION=raise python -m pytest tests/examples_quantizer_test.py`.
"""

import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_quantizer_mnist_prints_both_perplexities_and_plots(tmp_path):
  env = dict(os.environ, PYTHONPATH=str(ROOT))  # This checkout's gumbel.
  picture = tmp_path / 'quantizer.png'
  result = subprocess.run(
      [sys.executable, str(ROOT / 'examples' / 'quantizer_mnist.py'), '--steps=3',
       '--batch_size=16', f'--plot={picture}'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = re.findall(r'^diversity weight (0\.1|0\.0): train perplexity ([0-9.]+) / 64, '
                     r'code perplexity ([0-9.]+).*test code perplexity ([0-9.]+)',
                     result.stdout, flags=re.M)
  assert [line[0] for line in lines] == ['0.1', '0.0'], result.stdout
  for _, *perplexities in lines:
    assert all(2.0 <= float(p) <= 64.0 for p in perplexities), lines
  assert picture.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'  # A PNG was written.
