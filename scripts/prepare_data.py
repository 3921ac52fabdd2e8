r"""Downloads and prepares tensorflow-datasets data sets (needs internet).

  python -m scripts.prepare_data mnist binarized_mnist fashion_mnist \
      [--data_dir=~/tensorflow_datasets]

Prepares them in the array_record format, which `tfds.data_source` reads
without TensorFlow; afterwards `data.source=auto` (the default) finds them.
"""

from absl import app
from absl import flags

from experiments import input_pipeline

_DATA_DIR = flags.DEFINE_string(
    'data_dir', None, 'tfds data dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).')


def main(argv):
  names = argv[1:]
  if not names:
    raise app.UsageError(f'Name data sets to prepare, from {input_pipeline.TFDS_NAMES}.')
  for name in names:
    if name not in input_pipeline.TFDS_NAMES:
      raise app.UsageError(f'Unknown data set {name!r}; allowed: {input_pipeline.TFDS_NAMES}.')
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  data_dir = input_pipeline.tfds_data_dir(_DATA_DIR.value)
  for name in names:
    builder = tfds.builder(name, data_dir=data_dir, file_format='array_record')
    builder.download_and_prepare()
    print(f'Prepared {name} in {builder.data_dir}.')


if __name__ == '__main__':
  app.run(main)
