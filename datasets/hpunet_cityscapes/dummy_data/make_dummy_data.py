# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Writes dummy Cityscapes zips in the layout of the real downloads.

  python datasets/hpunet_cityscapes/dummy_data/make_dummy_data.py OUT_DIR

writes OUT_DIR/leftImg8bit_trainvaltest.zip and OUT_DIR/gtFine_trainvaltest.zip
with a few full-size (1024x2048) images, the size the builder expects and
resizes. They are a few MB, so they are not committed: tests call
`write_zips(tmp_dir)`.

Label layout of every image (full-resolution pixel rectangles, all multiples
of 8 so that they survive the 2x and 4x nearest-neighbour down-sampling
exactly), see `REGIONS`:
  rows    0-255: sky (labelId 23, trainId 10)
  rows  256-511: cols 0-511 car instance 26000, cols 512-1023 car instance
                 26001, cols 1024-1535 car group (bare 26), cols 1536-2047
                 person instance 24000
  rows  512-767: cols 0-1023 road (7 -> 0), cols 1024-2047 sidewalk (8 -> 1)
  rows 768-1023: cols 0-511 unlabeled (0 -> 255), 512-1023 ground (6 -> 255),
                 1024-1535 bicycle (33 -> 18), 1536-2047 car instance 26002
"""

import io
import os
import sys
import zipfile

import numpy as np
from PIL import Image

FULL_HEIGHT, FULL_WIDTH = 1024, 2048

# (official split, city, "<seq>_<frame>"); leftImg8bit/test is ignored by the
# builder, like the real (unlabelled) test split.
IMAGES = (
    ("train", "aachen", "000000_000019"),
    ("train", "bochum", "000000_000313"),
    ("train", "ulm", "000000_000019"),
    ("train", "darmstadt", "000001_000019"),
    ("val", "frankfurt", "000000_000294"),
    ("val", "lindau", "000000_000019"),
    ("test", "berlin", "000000_000019"),
)
EXPECTED_SPLITS = {
    "train": ["aachen_000000_000019", "bochum_000000_000313"],
    "validation": ["darmstadt_000001_000019", "ulm_000000_000019"],
    "test": ["frankfurt_000000_000294", "lindau_000000_000019"],
}

# (row0, row1, col0, col1, instanceIds value); labelId = value // 1000 for
# instances (value >= 1000), else the value itself.
REGIONS = (
    (0, 256, 0, 2048, 23),
    (256, 512, 0, 512, 26000),
    (256, 512, 512, 1024, 26001),
    (256, 512, 1024, 1536, 26),
    (256, 512, 1536, 2048, 24000),
    (512, 768, 0, 1024, 7),
    (512, 768, 1024, 2048, 8),
    (768, 1024, 0, 512, 0),
    (768, 1024, 512, 1024, 6),
    (768, 1024, 1024, 1536, 33),
    (768, 1024, 1536, 2048, 26002),
)


def instance_ids():
  out = np.zeros((FULL_HEIGHT, FULL_WIDTH), np.int32)
  for r0, r1, c0, c1, value in REGIONS:
    out[r0:r1, c0:c1] = value
  return out


def label_ids():
  ids = instance_ids()
  return np.where(ids >= 1000, ids // 1000, ids).astype(np.uint8)


def image(index):
  """A smooth (well-compressible) full-size RGB image unique to `index`."""
  y, x = np.mgrid[:FULL_HEIGHT, :FULL_WIDTH]
  return np.stack([(x // 8) % 256, (y // 4) % 256,
                   np.full_like(x, 30 * index)], axis=-1).astype(np.uint8)


def _png(array):
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
  return buffer.getvalue()


def write_zips(out_dir, overrides=None):
  """Writes both zips; `overrides` maps member name -> bytes (for bad data)."""
  os.makedirs(out_dir, exist_ok=True)
  overrides = dict(overrides or {})
  labels_png = _png(label_ids())
  instances_png = _png(instance_ids().astype(np.uint16))
  images_path = os.path.join(out_dir, "leftImg8bit_trainvaltest.zip")
  labels_path = os.path.join(out_dir, "gtFine_trainvaltest.zip")
  with zipfile.ZipFile(images_path, "w", zipfile.ZIP_STORED) as images, \
      zipfile.ZipFile(labels_path, "w", zipfile.ZIP_DEFLATED,
                      compresslevel=1) as labels:
    images.writestr("README", "dummy Cityscapes leftImg8bit\n")
    images.writestr("license.txt", "dummy\n")
    labels.writestr("README", "dummy Cityscapes gtFine\n")
    labels.writestr("license.txt", "dummy\n")
    for index, (split, city, frame) in enumerate(IMAGES):
      stem = f"{city}_{frame}"
      members = {
          (images, f"leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png"):
              _png(image(index)),
          (labels, f"gtFine/{split}/{city}/{stem}_gtFine_labelIds.png"):
              labels_png,
          (labels, f"gtFine/{split}/{city}/{stem}_gtFine_instanceIds.png"):
              instances_png,
          (labels, f"gtFine/{split}/{city}/{stem}_gtFine_polygons.json"):
              b"{}",
      }
      for (archive, name), data in members.items():
        data = overrides.pop(name, data)
        if data is not None:  # None in `overrides` drops the member.
          archive.writestr(name, data)
  if overrides:
    raise KeyError(f"Unknown members in overrides: {sorted(overrides)}")
  return images_path, labels_path


if __name__ == "__main__":
  write_zips(sys.argv[1] if len(sys.argv) > 1 else ".")
