"""Tests for experiments/input_pipeline.py: IDX files, tfds, embedded digits."""

import gzip
import os

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from experiments import input_pipeline


def _idx_bytes(array: np.ndarray) -> bytes:
  header = bytes([0, 0, 0x08, array.ndim]) + b''.join(
      int(d).to_bytes(4, 'big') for d in array.shape)
  return header + array.astype(np.uint8).tobytes()


def _write_mnist_dir(directory, n_train=12, n_test=5, gz=True):
  rng = np.random.default_rng(0)
  arrays = {}
  for stem, n in (('train-images-idx3-ubyte', n_train), ('t10k-images-idx3-ubyte', n_test)):
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    arrays[stem] = images
    path = os.path.join(directory, stem + ('.gz' if gz else ''))
    with (gzip.open if gz else open)(path, 'wb') as f:
      f.write(_idx_bytes(images))
  return arrays


def _data_config(**kwargs):
  config = ml_collections.ConfigDict(
      {'source': 'auto', 'name': 'mnist', 'dir': '', 'binarization': 'dynamic'})
  config.update(kwargs)
  return config


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


def test_auto_falls_back_to_embedded_without_download(tmp_path):
  ds = input_pipeline.load_dataset(_data_config(dir=str(tmp_path)))
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
