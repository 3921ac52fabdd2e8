"""Smoke tests of the DARN explanation scripts (scripts/darn_*_check.py) on tiny sizes.

The committed outputs (results/explain/*.out) come from the full sizes; here each
script runs end to end at HEAD and gives finite cosines in [-1, 1].
"""

import math

from scripts import darn_gradient_check
from scripts import darn_meanfield_check
from scripts import darn_vae_bias_check


def _cosine(c):
  return math.isfinite(c) and -1.0 - 1e-5 <= c <= 1.0 + 1e-5


def test_gradient_check_runs():
  rows = darn_gradient_check.check(draws=2, reference_draws=2, num_vars=3, images=2)
  assert [(r[0], r[1]) for r in rows] == [
      (n, l) for n in ('darn', 'st', 'sf', 'muprop') for l in ('layer1', 'layer2')]
  assert all(_cosine(r[2]) and r[3] >= 0 for r in rows)


def test_meanfield_check_runs():
  cosine, norm, ref_norm = darn_meanfield_check.check(draws=2, reference_draws=2, num_vars=3,
                                                      images=2)
  assert _cosine(cosine) and norm >= 0 and ref_norm >= 0


def test_vae_bias_check_runs():
  task, nets, layer = darn_vae_bias_check.setup('vae_cat', num_vars=2, batch_size=4)
  params, losses = darn_vae_bias_check.train(task, 2)
  assert losses.shape == (2,)
  out = darn_vae_bias_check.check('vae_cat', task, nets, layer, params, images=2, draws=2)
  assert set(out) == {'darn', 'st'} and all(_cosine(c) for c, _ in out.values())
