# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""SNEMI3D neurite instances as 2-D 256x256 crops (TFDS builder `snemi3d`).

The annotated SNEMI3D training volume (Kasthuri et al. 2015): 100 slices of
1024x1024 mouse-cortex EM with neurite instance labels, as used for the
instance task of the Hierarchical Probabilistic U-Net (Kohl et al. 2019).

* Splits by slice: z 0-79 -> `train`, 80-89 -> `validation`, 90-99 -> `test`.
* Every slice is cut into the 4x4 grid of non-overlapping 256x256 crops, giving
  1280 / 160 / 160 examples.
* `manual_dir` holds `train-input.tif` and `train-labels.tif`, the multi-page
  TIFFs of the challenge download; pages are read one at a time with PIL.

Features:
  image      Image uint8 (256, 256, 1); 8-bit slices are stored as they are,
             16-bit ones scaled by 255/65535 ([0, 1] by dtype max, as uint8).
  instances  Tensor int32 (256, 256): the raw instance ids of the label
             volume (0 = unlabelled / background), from 8-, 16- or 32-bit
             label pages. zlib-compressed.
  image_id   Text "z<zzz>_y<yyyy>_x<xxxx>", e.g. "z012_y0256_x0512": slice and
             top-left pixel of the crop.
"""

import io

from etils import epath
import numpy as np
from PIL import Image
from PIL import ImageSequence
import tensorflow_datasets as tfds

INPUT_FILE = "train-input.tif"
LABELS_FILE = "train-labels.tif"
NUM_SLICES = 100
SLICE_SIZE = 1024
CROP_SIZE = 256
# Split -> slice indices (0-based).
SPLIT_SLICES = {
    "train": range(0, 80),
    "validation": range(80, 90),
    "test": range(90, 100),
}
_INT32_MAX = np.iinfo(np.int32).max

_PAGES = f"{NUM_SLICES} pages of {SLICE_SIZE}x{SLICE_SIZE}"
_LAYOUT = f"""\
  <manual_dir>/{INPUT_FILE}   {_PAGES}, 8-bit grayscale EM
  <manual_dir>/{LABELS_FILE}  {_PAGES}, 8/16/32-bit instance ids"""


def crop_id(z: int, y: int, x: int) -> str:
  return f"z{z:03d}_y{y:04d}_x{x:04d}"


def _image_page(page: Image.Image, name: str) -> np.ndarray:
  mode = page.mode
  if mode == "L":
    return np.asarray(page).copy()
  if mode.startswith("I;16") or mode == "I":
    values = np.asarray(page).astype(np.int64)
    if values.min() < 0 or values.max() > 65535:
      raise ValueError(f"{name}: image values outside [0, 65535].")
    return np.round(values * (255.0 / 65535.0)).astype(np.uint8)
  raise ValueError(
      f"{name}: expected an 8-bit (or 16-bit) grayscale page, got PIL mode"
      f" {mode}.")


def _label_page(page: Image.Image, name: str) -> np.ndarray:
  mode = page.mode
  if mode not in ("1", "L", "I", "F") and not mode.startswith("I;16"):
    raise ValueError(
        f"{name}: expected a single-channel 8/16/32-bit instance-id page, got"
        f" PIL mode {mode}.")
  values = np.asarray(page)
  if mode == "F":
    if not np.array_equal(values, np.round(values)):
      raise ValueError(f"{name}: float instance ids are not integers.")
  values = values.astype(np.int64)
  low, high = values.min(), values.max()
  if low < 0 or high > _INT32_MAX:
    raise ValueError(
        f"{name}: instance ids in [{low}, {high}], expected [0, {_INT32_MAX}]"
        " (ids >= 2**31 in an unsigned 32-bit file read back as negative).")
  return values.astype(np.int32)


def _check_page_size(page: Image.Image, name: str) -> None:
  if page.size != (SLICE_SIZE, SLICE_SIZE):
    raise ValueError(
        f"{name}: page is {page.size[0]}x{page.size[1]} (width x height),"
        f" expected {SLICE_SIZE}x{SLICE_SIZE}.")


def _num_pages(path: epath.Path) -> int:
  try:
    with path.open("rb") as f, Image.open(f) as image:
      if image.format != "TIFF":
        raise ValueError(f"{path}: expected a TIFF file, got {image.format}.")
      return getattr(image, "n_frames", 1)
  except (OSError, SyntaxError) as e:  # PIL's UnidentifiedImageError: OSError.
    raise ValueError(f"{path}: not a readable TIFF file ({e}).") from e


def _encode_png(gray: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  image = Image.fromarray(np.ascontiguousarray(gray, np.uint8))  # Mode "L".
  image.save(buffer, format="PNG")
  return buffer.getvalue()


class Builder(tfds.core.GeneratorBasedBuilder):
  """SNEMI3D 256x256 EM crops with neurite instance ids."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Register at https://snemi3d.grand-challenge.org/ and download the training data
("train-input.zip" / "train-labels.zip", or the TIFFs directly). Put the two
multi-page TIFFs into manual_dir:
{_LAYOUT}
"""

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(CROP_SIZE, CROP_SIZE, 1)),
            "instances": tfds.features.Tensor(
                shape=(CROP_SIZE, CROP_SIZE), dtype=np.int32,
                encoding=tfds.features.Encoding.ZLIB),
            "image_id": tfds.features.Text(),
        }),
        homepage="https://snemi3d.grand-challenge.org/",
    )

  def _split_generators(self, dl_manager):
    manual_dir = epath.Path(dl_manager.manual_dir)
    paths = (manual_dir / INPUT_FILE, manual_dir / LABELS_FILE)
    missing = [p.name for p in paths if not p.exists()]
    if missing:
      raise FileNotFoundError(
          f"SNEMI3D: missing {', '.join(missing)} in manual_dir {manual_dir}."
          f" Expected:\n{_LAYOUT}\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    for path in paths:
      pages = _num_pages(path)
      if pages != NUM_SLICES:
        raise ValueError(
            f"{path}: has {pages} page(s), expected {NUM_SLICES} slices of"
            f" {SLICE_SIZE}x{SLICE_SIZE}.")
    return {split: self._generate_examples(*paths, slices)
            for split, slices in SPLIT_SLICES.items()}

  def _generate_examples(self, input_path, labels_path, slices):
    wanted = set(slices)
    with input_path.open("rb") as fi, labels_path.open("rb") as fl:
      with Image.open(fi) as images, Image.open(fl) as labels:
        pages = zip(ImageSequence.Iterator(images),
                    ImageSequence.Iterator(labels))
        for z, (image_page, label_page) in enumerate(pages):
          if z not in wanted:
            continue
          image_name = f"{input_path}: page {z}"
          label_name = f"{labels_path}: page {z}"
          _check_page_size(image_page, image_name)
          _check_page_size(label_page, label_name)
          image = _image_page(image_page, image_name)
          instances = _label_page(label_page, label_name)
          for y in range(0, SLICE_SIZE, CROP_SIZE):
            for x in range(0, SLICE_SIZE, CROP_SIZE):
              key = crop_id(z, y, x)
              yield key, {
                  "image": _encode_png(image[y:y + CROP_SIZE,
                                             x:x + CROP_SIZE]),
                  "instances": instances[y:y + CROP_SIZE, x:x + CROP_SIZE],
                  "image_id": key,
              }
