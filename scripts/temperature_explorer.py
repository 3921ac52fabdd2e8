r"""Writes the interactive temperature explorer: one self-contained HTML file.

The page draws uniforms u, turns them into Gumbel noise g = -log(-log u) and
shows the Gumbel-Softmax sample y = softmax((log pi + g) / tau) as bars, with
a log-scaled temperature slider, a re-sample button and editable class
probabilities (renormalized). The math is that of `gumbel.gumbel_from_uniform`
and `gumbel.gumbel_softmax`: u lies in [tiny, 1 - eps] of float32 (the
library's bounds, embedded here from `jnp.finfo`), the softmax is a stable
log-sum-exp. The page computes in float64 (JavaScript numbers), the library in
float32; tests/temperature_explorer_test.py checks that they agree.

Nothing is loaded at view time: the CSS and JavaScript are inline. The page
exposes its state as `window.explorerState` (u, g, pi, tau, y, seed) for tests;
`?seed=N` in the URL makes the uniforms reproducible (default: a random seed).

  python -m scripts.temperature_explorer --out=explorer.html [--probs=0.1,0.25,0.05,0.4,0.2]

References:
  [GS] Jang, Gu, Poole. Categorical Reparameterization with Gumbel-Softmax.
    ICLR 2017, arXiv:1611.01144, eq. 2.
"""

import html
import json
import math
import os

from absl import app
from absl import flags
import jax.numpy as jnp
import numpy as np

import gumbel

PROBS = (0.1, 0.25, 0.05, 0.4, 0.2)

FLAGS = flags.FLAGS


def define_flags():
  """Defines the command-line flags (only when run as a script: tests import several scripts)."""
  flags.DEFINE_string('out', None, 'Path of the HTML file to write.', required=True)
  flags.DEFINE_list('probs', [str(p) for p in PROBS], 'Default class probabilities pi (renormalized).')
  flags.DEFINE_float('tau', 1.0, 'Initial temperature.')
  flags.DEFINE_float('tau_min', 0.05, 'Left end of the log-scaled slider.')
  flags.DEFINE_float('tau_max', 10.0, 'Right end of the log-scaled slider.')

SLIDER_STEPS = 1000

_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Gumbel-Softmax temperature explorer</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 46em; color: #222; }
  h1 { font-size: 1.3em; }
  .controls { display: flex; flex-wrap: wrap; gap: 1em; align-items: center; margin: 1em 0; }
  #tau-slider { width: 20em; }
  #tau-value { font-variant-numeric: tabular-nums; min-width: 6em; display: inline-block; }
  .charts { display: flex; gap: 2.5em; }
  .chart h2 { font-size: 1em; margin: 0 0 0.3em; }
  .bars { display: flex; align-items: flex-end; gap: 0.4rem; height: 12rem; margin-top: 1.4rem;
          border-bottom: 1px solid #555; }
  .col { display: flex; align-items: flex-end; height: 100%; width: 3.2rem; }
  .bar { position: relative; width: 100%; background: #1f77b4; }
  #sample .bar { background: #ff7f0e; }
  #sample .bar.argmax { background: #c94f00; }
  .val { position: absolute; bottom: 100%; width: 100%; text-align: center; font-size: 0.75rem;
         font-variant-numeric: tabular-nums; }
  .axis { display: flex; gap: 0.4rem; }
  .axis div { width: 3.2rem; text-align: center; font-size: 0.8rem; }
  table { border-collapse: collapse; margin-top: 1em; font-size: 0.9em; }
  td, th { padding: 0.15em 0.6em; text-align: right; font-variant-numeric: tabular-nums; }
  input.prob { width: 5em; }
  input.prob.invalid { outline: 2px solid #d62728; }
  .note { color: #555; font-size: 0.85em; }
</style>
</head>
<body>
<h1>Gumbel-Softmax temperature explorer</h1>
<p>y = softmax((log &pi; + g) / &tau;) with Gumbel noise g = &minus;log(&minus;log u), u uniform
on [tiny, 1 &minus; eps] of float32 ([GS] eq. 2). Low temperatures give nearly one-hot samples
(the argmax, a Gumbel-Max sample of &pi;, does not depend on &tau;); high temperatures give
nearly uniform ones.</p>
<div class="controls">
  <label for="tau-slider">temperature</label>
  <input type="range" id="tau-slider" min="0" max="__SLIDER_STEPS__" step="1">
  <span id="tau-value"></span>
  <button id="resample" type="button">re-sample g</button>
</div>
<div class="charts">
  <div class="chart" id="categorical"><h2>class probabilities &pi;</h2>
    <div class="bars"></div><div class="axis"></div></div>
  <div class="chart" id="sample"><h2>sample y</h2>
    <div class="bars"></div><div class="axis"></div></div>
</div>
<table id="values">
  <thead><tr><th>class</th><th>weight (edit)</th><th>&pi;</th><th>u</th><th>g</th><th>y</th></tr></thead>
  <tbody></tbody>
</table>
<p class="note">Weights are renormalized to &pi; = w / &Sigma;w; negative or empty weights are
ignored (marked red). Computed in float64 here; the library computes in float32.
Written by scripts/temperature_explorer.py, gumbel __VERSION__. Add <code>?seed=N</code> to the
address for reproducible noise.</p>
<script>
'use strict';
(function () {
  const CONFIG = __CONFIG__;
  const K = CONFIG.probs.length;
  const LOG_TAU_MIN = Math.log(CONFIG.tau_min);
  const LOG_TAU_MAX = Math.log(CONFIG.tau_max);

  // mulberry32: a small seeded generator, so that ?seed=N reproduces the noise.
  function makeRandom32(seed) {
    let a = seed >>> 0;
    return function () {
      a = (a + 0x6D2B79F5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return (t ^ (t >>> 14)) >>> 0;
    };
  }
  function initialSeed() {
    const param = new URLSearchParams(window.location.search).get('seed');
    if (param !== null && /^[0-9]+$/.test(param)) return Number(param) >>> 0;
    const buffer = new Uint32Array(1);
    window.crypto.getRandomValues(buffer);
    return buffer[0];
  }
  const seed = initialSeed();
  const random32 = makeRandom32(seed);
  // A double in [0, 1) with 53 random bits.
  function random53() {
    return ((random32() >>> 5) * 67108864 + (random32() >>> 6)) / 9007199254740992;
  }
  // As jax.random.uniform(minval=tiny, maxval=1 - eps) in gumbel.sample_gumbel.
  function drawUniform() {
    return CONFIG.u_min + random53() * (CONFIG.u_max - CONFIG.u_min);
  }
  // As gumbel.gumbel_from_uniform: clip into [tiny, 1 - eps], then -log(-log u).
  function gumbelFromUniform(u) {
    const clipped = Math.min(Math.max(u, CONFIG.u_min), CONFIG.u_max);
    return -Math.log(-Math.log(clipped));
  }
  // softmax(z) = exp(z - logsumexp(z)), logsumexp shifted by the max for stability.
  function softmax(z) {
    const m = Math.max(...z);
    let total = 0;
    for (const v of z) total += Math.exp(v - m);
    const lse = m + Math.log(total);
    return z.map(v => Math.exp(v - lse));
  }
  function tauFromSlider(value) {
    return Math.exp(LOG_TAU_MIN + (value / CONFIG.slider_steps) * (LOG_TAU_MAX - LOG_TAU_MIN));
  }
  function sliderFromTau(tau) {
    return Math.round((Math.log(tau) - LOG_TAU_MIN) / (LOG_TAU_MAX - LOG_TAU_MIN) * CONFIG.slider_steps);
  }
  function normalize(weights) {
    const total = weights.reduce((a, b) => a + b, 0);
    return weights.map(w => w / total);
  }

  const state = {
    version: CONFIG.version, seed: seed, K: K, tau: CONFIG.tau,
    weights: CONFIG.probs.slice(), pi: normalize(CONFIG.probs), u: [], g: [], logits: [], y: [],
    draws: 0,
  };
  window.explorerState = state;

  function resample() {
    state.u = Array.from({length: K}, drawUniform);
    state.g = state.u.map(gumbelFromUniform);
    state.draws += 1;
  }
  function compute() {
    state.logits = state.pi.map(Math.log);  // log 0 = -Infinity gives y = 0.
    state.y = softmax(state.logits.map((l, k) => (l + state.g[k]) / state.tau));
  }

  const slider = document.getElementById('tau-slider');
  const tauValue = document.getElementById('tau-value');
  const tbody = document.querySelector('#values tbody');

  function makeChart(id) {
    const chart = document.getElementById(id);
    const bars = chart.querySelector('.bars');
    const axis = chart.querySelector('.axis');
    const cols = [];
    for (let k = 0; k < K; k++) {
      const col = document.createElement('div');
      col.className = 'col';
      const val = document.createElement('div');
      val.className = 'val';
      const bar = document.createElement('div');
      bar.className = 'bar';
      bar.dataset.k = String(k);
      bar.append(val);
      col.append(bar);
      bars.append(col);
      const label = document.createElement('div');
      label.textContent = String(k + 1);
      axis.append(label);
      cols.push({bar: bar, val: val});
    }
    return cols;
  }
  const piChart = makeChart('categorical');
  const yChart = makeChart('sample');

  const rows = [];
  for (let k = 0; k < K; k++) {
    const tr = document.createElement('tr');
    const cells = [];
    for (let c = 0; c < 6; c++) cells.push(document.createElement('td'));
    cells[0].textContent = String(k + 1);
    const input = document.createElement('input');
    input.type = 'number';
    input.className = 'prob';
    input.min = '0';
    input.step = 'any';
    input.value = String(CONFIG.probs[k]);
    input.dataset.k = String(k);
    input.addEventListener('input', onWeights);
    cells[1].append(input);
    tr.append(...cells);
    tbody.append(tr);
    rows.push({input: input, pi: cells[2], u: cells[3], g: cells[4], y: cells[5]});
  }

  function onWeights() {
    const weights = rows.map(r => r.input.valueAsNumber);
    let ok = true;
    rows.forEach((r, k) => {
      const bad = !(weights[k] >= 0);  // Also NaN (empty or not a number).
      r.input.classList.toggle('invalid', bad);
      ok = ok && !bad;
    });
    const total = weights.reduce((a, b) => a + b, 0);
    if (!ok || !(total > 0) || !isFinite(total)) return;
    state.weights = weights;
    state.pi = normalize(weights);
    render();
  }

  function drawBars(cols, values) {
    const best = values.indexOf(Math.max(...values));
    cols.forEach((c, k) => {
      c.bar.style.height = (100 * values[k]) + '%';
      c.bar.dataset.value = String(values[k]);  // Full precision, for tests.
      c.bar.classList.toggle('argmax', k === best);
      c.val.textContent = values[k].toFixed(3);
    });
  }

  function render() {
    compute();
    tauValue.textContent = '\u03c4 = ' + state.tau.toPrecision(3);
    slider.setAttribute('aria-valuetext', 'temperature ' + state.tau.toPrecision(3));
    document.body.dataset.tau = String(state.tau);
    drawBars(piChart, state.pi);
    drawBars(yChart, state.y);
    rows.forEach((r, k) => {
      r.pi.textContent = state.pi[k].toFixed(4);
      r.u.textContent = state.u[k].toFixed(4);
      r.g.textContent = state.g[k].toFixed(4);
      r.y.textContent = state.y[k].toFixed(4);
    });
  }

  slider.value = String(sliderFromTau(state.tau));
  slider.addEventListener('input', () => {
    state.tau = tauFromSlider(slider.valueAsNumber);
    render();
  });
  document.getElementById('resample').addEventListener('click', () => {
    resample();
    render();
  });
  resample();
  render();
})();
</script>
</body>
</html>
"""


def build_html(probs=PROBS, *, tau=1.0, tau_min=0.05, tau_max=10.0) -> str:
  """Returns the page's HTML with `probs` as the default class probabilities.

  Args:
    probs: non-negative class weights (renormalized on the page), [K].
    tau: the initial temperature.
    tau_min: the slider's lowest temperature.
    tau_max: the slider's highest temperature.

  Returns:
    The complete, self-contained HTML document.
  """
  probs = [float(p) for p in probs]
  if len(probs) < 2 or any(not p >= 0 for p in probs) or sum(probs) <= 0:
    raise ValueError(f'probs must be >= 2 non-negative weights with a positive sum, got {probs}.')
  if not 0 < tau_min < tau_max or not tau_min <= tau <= tau_max:
    raise ValueError(f'need 0 < tau_min <= tau <= tau_max, got {tau_min}, {tau}, {tau_max}.')
  finfo = jnp.finfo(jnp.float32)
  config = {
      'probs': probs,
      'tau': float(tau),
      'tau_min': float(tau_min),
      'tau_max': float(tau_max),
      'slider_steps': SLIDER_STEPS,
      # gumbel.sample_gumbel's bounds for float32 uniforms, exactly.
      'u_min': float(finfo.tiny),
      'u_max': float(np.float32(1.0) - finfo.eps),
      'version': gumbel.__version__,
  }
  assert math.isfinite(config['u_min']) and config['u_max'] < 1.0
  # '<' escaped so that no string can close the script element.
  config_js = json.dumps(config).replace('<', '\\u003c')
  return (_TEMPLATE.replace('__CONFIG__', config_js)
          .replace('__SLIDER_STEPS__', str(SLIDER_STEPS))
          .replace('__VERSION__', html.escape(gumbel.__version__)))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  page = build_html([float(p) for p in FLAGS.probs], tau=FLAGS.tau,
                    tau_min=FLAGS.tau_min, tau_max=FLAGS.tau_max)
  directory = os.path.dirname(os.path.abspath(FLAGS.out))
  os.makedirs(directory, exist_ok=True)
  with open(FLAGS.out, 'w', encoding='utf-8') as f:
    f.write(page)
  print(f'Wrote {FLAGS.out} ({len(page):,} bytes); open it in a browser.')


if __name__ == '__main__':
  define_flags()
  app.run(main)
