"""Image grids written by the experiments."""

import numpy as np


def save_image_grid(path: str, images: np.ndarray, rows: int, cols: int, size: int = 28,
                    scale: int = 2):
  """Writes `[rows * cols, size * size]` images in [0, 1] as one grey PNG."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  images = np.asarray(images, np.float32).reshape(rows, cols, size, size)
  grid = images.transpose(0, 2, 1, 3).reshape(rows * size, cols * size)
  Image.fromarray((255 * np.clip(grid, 0, 1)).astype(np.uint8)).resize(
      (cols * size * scale, rows * size * scale), Image.NEAREST).save(path)
