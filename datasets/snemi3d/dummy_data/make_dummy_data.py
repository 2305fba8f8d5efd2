# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Writes a full-size dummy SNEMI3D training volume (multi-page TIFFs).

  python datasets/snemi3d/dummy_data/make_dummy_data.py OUT_DIR [--bits=16]

writes OUT_DIR/train-input.tif (100 pages, 1024x1024, 8-bit) and
OUT_DIR/train-labels.tif (100 pages, 1024x1024, 8/16/32-bit instance ids), the
geometry of the real download. The files (100 MB + 100-400 MB uncompressed)
are not committed; tests write them into a temporary folder. Every voxel is a
deterministic function of (z, y, x), so tests recompute the expected crops
with `image_slice` / `label_slice`.
"""

import functools
import os
import sys

import numpy as np
from PIL import Image

NUM_SLICES = 100
SLICE_SIZE = 1024
# Label-page PIL mode per bit depth.
LABEL_MODES = {8: "L", 16: "I;16", 32: "I"}
# Added to non-zero ids so that 16-/32-bit files really need their width.
_ID_OFFSET = {8: 0, 16: 1000, 32: 100_000}


@functools.lru_cache(maxsize=4)
def _image_base(size):
  y, x = np.mgrid[:size, :size]
  return ((x + 2 * y) % 256).astype(np.uint8)


def image_slice(z, size=SLICE_SIZE):
  """(x + 2 y + 7 z) mod 256 as uint8."""
  return _image_base(size) + np.uint8((7 * z) % 256)  # uint8 wraps mod 256.


def label_slice(z, bits=16, size=SLICE_SIZE):
  """Instance ids on a 64-px block grid; some blocks are background (0)."""
  blocks = -(-size // 64)
  by, bx = np.mgrid[:blocks, :blocks]
  ids = 1 + (by * 16 + bx + 3 * z) % 250 + _ID_OFFSET[bits]
  ids = np.where((by + bx + z) % 5 == 0, 0, ids).astype(np.int64)
  return np.repeat(np.repeat(ids, 64, axis=0), 64, axis=1)[:size, :size]


def _label_image(array, bits):
  if bits == 8:
    return Image.fromarray(array.astype(np.uint8))
  if bits == 16:
    return Image.fromarray(array.astype(np.uint16))  # Mode "I;16".
  return Image.fromarray(array.astype(np.int32))


def _save_pages(path, pages, compression):
  kwargs = {} if compression is None else {"compression": compression}
  pages[0].save(path, format="TIFF", save_all=True, append_images=pages[1:],
                **kwargs)


def write_volume(out_dir, bits=16, num_slices=NUM_SLICES, size=SLICE_SIZE,
                 compression=None, image_pages=None, label_pages=None):
  """Writes train-input.tif / train-labels.tif; returns their paths.

  Args:
    out_dir: output folder (created).
    bits: label page bit depth, 8, 16 or 32.
    num_slices: number of pages (the real volume has 100).
    size: page side (the real volume has 1024).
    compression: PIL TIFF compression (None: uncompressed, like the real
      files; "tiff_adobe_deflate" makes much smaller files).
    image_pages: optional list of PIL images overriding the input pages.
    label_pages: optional list of PIL images overriding the label pages.
  """
  os.makedirs(out_dir, exist_ok=True)
  if image_pages is None:
    image_pages = [Image.fromarray(image_slice(z, size))
                   for z in range(num_slices)]
  if label_pages is None:
    label_pages = [_label_image(label_slice(z, bits, size), bits)
                   for z in range(num_slices)]
  input_path = os.path.join(out_dir, "train-input.tif")
  labels_path = os.path.join(out_dir, "train-labels.tif")
  _save_pages(input_path, image_pages, compression)
  _save_pages(labels_path, label_pages, compression)
  return input_path, labels_path


if __name__ == "__main__":
  args = [a for a in sys.argv[1:] if not a.startswith("--")]
  bits_flag = [a for a in sys.argv[1:] if a.startswith("--bits=")]
  write_volume(args[0] if args else ".",
               bits=int(bits_flag[0].split("=")[1]) if bits_flag else 16)
