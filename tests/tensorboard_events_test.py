"""TensorBoard event files beside metrics.jsonl, read back without TensorBoard."""

import glob
import os

from experiments import metric_writer
from experiments import tensorboard_events


def test_metric_lines_are_scalars_and_a_resume_purges_the_steps_after_its_checkpoint(tmp_path):
  workdir = str(tmp_path)
  writer = metric_writer.MetricWriter(workdir)
  for step in (10, 20, 30):
    writer.write(step, {'train/neg_elbo': step / 4, 'train/tau': 1.0 / step, 'steps_per_sec': 5,
                        'data': 'embedded:mnist_5000', 'diverged': True})
  # Written and flushed at once (live curves), before any close.
  assert tensorboard_events.read_scalars(workdir)['train/neg_elbo'] == [
      (10, 2.5), (20, 5.0), (30, 7.5)]
  writer.close()
  events = tensorboard_events.read_scalars(workdir)
  assert sorted(events) == ['steps_per_sec', 'train/neg_elbo', 'train/tau']  # Numbers only.
  assert [s for s, _ in events['train/tau']] == [10, 20, 30]
  assert abs(events['train/tau'][1][1] - 0.05) < 1e-7  # float32.

  resumed = metric_writer.MetricWriter(workdir, resume_step=20)  # Step 30 was lost.
  resumed.write(30, {'train/neg_elbo': 99.0})
  resumed.write(40, {'train/neg_elbo': 98.0, 'test/nll': 90.0})
  resumed.close()
  assert len(glob.glob(os.path.join(workdir, tensorboard_events.EVENT_FILE_GLOB))) == 2
  events = tensorboard_events.read_scalars(workdir)
  assert events['train/neg_elbo'] == [(10, 2.5), (20, 5.0), (30, 99.0), (40, 98.0)]
  assert events['test/nll'] == [(40, 90.0)]
  assert [s for s, _ in events['train/tau']] == [10, 20]  # As metrics.jsonl drops step 30.
  assert [r['step'] for r in metric_writer.read_metrics(workdir)] == [10, 20, 30, 40]
