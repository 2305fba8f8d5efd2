# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Writes LIDC dummy data in the exact layout of the real downloads.

  python datasets/lidc/dummy_data/make_dummy_data.py            # crops archives
  python datasets/lidc/dummy_data/make_dummy_data.py --pickle   # + the pickle

The committed `train.tar.gz`, `val.tar.gz`, `test.tar.gz` beside this script
are its output (a few KB). The pickle (about 1 MB) is not committed; tests
write it into a temporary folder with `write_pickle`.

Every pixel is a deterministic function of the case, so tests recompute the
expected arrays with `crop_image` / `crop_mask` / `pickle_records`.
"""

import gzip
import io
import os
import pickle
import sys
import tarfile

import numpy as np
from PIL import Image

CROP_SIZE = 180
PICKLE_SIZE = 128
NUM_GRADERS = 4

# split archive -> [(patient, zpos string, crop, graders that marked a lesion)]
# Notes: LIDC-IDRI-0002 has z positions whose string order differs from their
# numeric order (-9.5 < 10.0 < 105.0); the first train case is one where only
# grader _l2 marked a lesion, so its lesion must land in masks[..., 2].
CROPS_CASES = {
    "train": [
        ("LIDC-IDRI-0001", "105.0", 0, (2,)),
        ("LIDC-IDRI-0001", "105.0", 1, (0, 1, 2, 3)),
        ("LIDC-IDRI-0002", "105.0", 0, (0, 3)),
        ("LIDC-IDRI-0002", "-9.5", 0, (1,)),
        ("LIDC-IDRI-0002", "10.0", 0, (0, 1)),
    ],
    "val": [
        ("LIDC-IDRI-0003", "-120.25", 0, (0, 1, 2)),
        ("LIDC-IDRI-0003", "-118.0", 2, (3,)),
    ],
    "test": [
        ("LIDC-IDRI-0004", "33.5", 0, (0, 1, 2, 3)),
        ("LIDC-IDRI-0005", "7.0", 1, ()),
    ],
}


def case_index(patient, z, crop):
  return int(patient[-4:]) * 1000 + int(abs(float(z)) * 4) + crop * 7


def crop_image(patient, z, crop, size=CROP_SIZE):
  """A uint8 grayscale crop unique to the case."""
  seed = case_index(patient, z, crop)
  y, x = np.mgrid[:size, :size]
  return ((x * 3 + y * 5 + seed) % 256).astype(np.uint8)


def crop_mask(patient, z, crop, grader, marked, size=CROP_SIZE):
  """A {0, 255} uint8 lesion disk, all zero if `grader` did not mark one."""
  if grader not in marked:
    return np.zeros((size, size), np.uint8)
  seed = case_index(patient, z, crop)
  y, x = np.mgrid[:size, :size]
  cy, cx = size // 2 + grader * 3, size // 2 - grader * 2 + seed % 5
  radius = 8 + grader * 2
  return np.where((y - cy) ** 2 + (x - cx) ** 2 <= radius ** 2, 255,
                  0).astype(np.uint8)


def _png(array):
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format="PNG")
  return buffer.getvalue()


def crop_files(split):
  """{relative path: PNG bytes} of one split, in the release layout."""
  files = {}
  for patient, z, crop, marked in CROPS_CASES[split]:
    stem = f"{patient}/z-{z}_c{crop}"
    files[f"images/{stem}.png"] = _png(crop_image(patient, z, crop))
    for g in range(NUM_GRADERS):
      files[f"gt/{stem}_l{g}.png"] = _png(
          crop_mask(patient, z, crop, g, marked))
  return files


def _add(archive, name, data):
  info = tarfile.TarInfo(name)
  info.size = len(data)
  info.mtime = 0
  info.mode = 0o644
  archive.addfile(info, io.BytesIO(data))


def write_crops(out_dir, extracted=False, files_by_split=None):
  """Writes `<split>.tar.gz` (or extracted `<split>/...`) into `out_dir`."""
  os.makedirs(out_dir, exist_ok=True)
  for split in CROPS_CASES:
    files = (files_by_split or {}).get(split) or crop_files(split)
    if extracted:
      for name, data in files.items():
        path = os.path.join(out_dir, split, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
          f.write(data)
      continue
    path = os.path.join(out_dir, f"{split}.tar.gz")
    # Deterministic bytes: fixed mtimes, sorted members, no gzip timestamp.
    with open(path, "wb") as raw:
      with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w") as archive:
          for name in sorted(files):
            _add(archive, name, files[name])


# ----------------------------------------------------------------------------
# data_lidc.pickle
# ----------------------------------------------------------------------------

# (series_uid, number of slices). The builder's sha256 ranking puts 4 of these
# 6 series into train and one each into validation and test.
PICKLE_SERIES = (
    ("1.3.6.1.4.1.14519.5.2.1.6279.6001.100000000000000000000000000001", 2),
    ("1.3.6.1.4.1.14519.5.2.1.6279.6001.100000000000000000000000000002", 1),
    ("1.3.6.1.4.1.14519.5.2.1.6279.6001.100000000000000000000000000003", 1),
    ("1.3.6.1.4.1.14519.5.2.1.6279.6001.100000000000000000000000000004", 2),
    ("1.3.6.1.4.1.14519.5.2.1.6279.6001.100000000000000000000000000005", 1),
    ("1.3.6.1.4.1.14519.5.2.1.6279.6001.100000000000000000000000000006", 1),
)


def pickle_records(size=PICKLE_SIZE):
  """The dict stored in data_lidc.pickle: {key: record}."""
  records = {}
  for i, (uid, num_slices) in enumerate(PICKLE_SERIES):
    for s in range(num_slices):
      key = f"LIDC-IDRI-{i + 1:04d}_slice{s}_series{uid[-2:]}"
      y, x = np.mgrid[:size, :size]
      image = ((x + 2 * y + 11 * i + 5 * s) % 101 / 100.0).astype(np.float32)
      masks = []
      for g in range(NUM_GRADERS):
        mask = np.zeros((size, size), np.uint8)
        if (i + s + g) % 3:  # Some graders mark nothing.
          mask[40 + g:60 + g, 50:70 + i] = 1
        masks.append(mask)
      records[key] = {"image": image, "masks": masks, "series_uid": uid}
  return records


def write_pickle(out_dir, records=None):
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, "data_lidc.pickle")
  with open(path, "wb") as f:
    pickle.dump(pickle_records() if records is None else records, f,
                protocol=4)
  return path


if __name__ == "__main__":
  here = os.path.dirname(os.path.abspath(__file__))
  write_crops(here)
  if "--pickle" in sys.argv[1:]:
    write_pickle(here)
