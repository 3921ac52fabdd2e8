"""The temperature schedule of an experiment's `config.temperature`, one factory for all."""

import gumbel
import ml_collections

# 'learned' (the VAE's) has no schedule: the model holds the temperature.
SCHEDULES = ('exponential', 'constant', 'learned')


def create_temperature_schedule(temperature: ml_collections.ConfigDict):
  """`step -> tau` of a config's `temperature` group, or None when it is learned.

  Args:
    temperature: `config.temperature`: `schedule` ('exponential' when the
      group has no such field), `tau0`, and for 'exponential' `rate`,
      `tau_min` and `interval` (`gumbel.exponential_temperature`).

  Returns:
    A `gumbel.schedules` schedule, or None for 'learned'.
  """
  t = temperature
  schedule = t.get('schedule', 'exponential')
  if schedule == 'exponential':
    return gumbel.exponential_temperature(t.tau0, t.rate, t.tau_min, t.interval)
  if schedule == 'constant':
    return gumbel.constant_temperature(t.tau0)
  if schedule == 'learned':
    return None
  raise ValueError(f'Unknown temperature.schedule={schedule!r}; allowed: {SCHEDULES}.')
