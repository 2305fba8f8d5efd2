# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Tests of the `snemi3d` TFDS builder on a full-size dummy volume."""

import atexit
import importlib.util
import pathlib
import shutil
import tempfile

from etils import epath
import numpy as np
from PIL import Image
from PIL import ImageSequence
import pytest
import tensorflow_datasets as tfds

from hpunet import dataset_builders

snemi3d = dataset_builders.load_builder_module("snemi3d")

_HERE = pathlib.Path(__file__).resolve().parent


def _load_dummy_maker():
  path = _HERE / "dummy_data" / "make_dummy_data.py"
  spec = importlib.util.spec_from_file_location("snemi3d_make_dummy_data",
                                                path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


dummy = _load_dummy_maker()


class _RemoveTmpDir:
  """Deletes DatasetBuilderTestCase's per-test `tmp_dir` (TFDS keeps it)."""

  def tearDown(self):
    super().tearDown()
    shutil.rmtree(self.tmp_dir, ignore_errors=True)


def _temporary_dir(prefix):
  """A folder removed at exit (also when its test class is deselected)."""
  path = tempfile.mkdtemp(prefix=prefix)
  atexit.register(shutil.rmtree, path, ignore_errors=True)
  return path


class Snemi3dBuilderTest(
    _RemoveTmpDir, tfds.testing.DatasetBuilderTestCase):
  """The full 1024x1024x100 geometry with 16-bit label pages.

  Besides the standard checks (registration, split sizes, dtypes and shapes
  read back through tf.data), `_download_and_prepare_as_dataset` checks the
  crop grid and crop values of the prepared dataset.
  """
  DATASET_CLASS = snemi3d.Builder
  SPLITS = {"train": 1280, "validation": 160, "test": 160}
  # Set at class creation (pytest reads `dummy_data` while collecting); the
  # TIFFs are written in setUpClass.
  EXAMPLE_DIR = _temporary_dir("snemi3d_dummy_")

  @classmethod
  def setUpClass(cls):
    dummy.write_volume(cls.EXAMPLE_DIR, bits=16)
    super().setUpClass()

  @classmethod
  def tearDownClass(cls):
    super().tearDownClass()
    shutil.rmtree(cls.EXAMPLE_DIR, ignore_errors=True)  # Free the space now.

  def _download_and_prepare_as_dataset(self, builder):
    super()._download_and_prepare_as_dataset(builder)
    with self._subTest("crop_values"):
      self._check_crops(builder)

  def _check_crops(self, builder):
    for split in ("validation", "test"):
      slices = snemi3d.SPLIT_SLICES[split]
      examples = {
          ex["image_id"].decode(): ex
          for ex in tfds.as_numpy(builder.as_dataset(split=split))}
      self.assertEqual(set(examples), {
          f"z{z:03d}_y{y:04d}_x{x:04d}" for z in slices
          for y in range(0, 1024, 256) for x in range(0, 1024, 256)})
      for image_id, ex in examples.items():
        z, y, x = (int(part[1:]) for part in image_id.split("_"))
        self.assertEqual(ex["image"].dtype, np.uint8)
        self.assertEqual(ex["image"].shape, (256, 256, 1))
        np.testing.assert_array_equal(
            ex["image"][..., 0], dummy.image_slice(z)[y:y + 256, x:x + 256],
            err_msg=image_id)
        self.assertEqual(ex["instances"].dtype, np.int32)
        np.testing.assert_array_equal(
            ex["instances"],
            dummy.label_slice(z, bits=16)[y:y + 256, x:x + 256],
            err_msg=image_id)
    train_ids = {ex["image_id"].decode() for ex in tfds.as_numpy(
        builder.as_dataset(split="train").map(lambda ex: ex["image_id"])
        .map(lambda i: {"image_id": i}))}
    self.assertEqual(train_ids, {
        f"z{z:03d}_y{y:04d}_x{x:04d}" for z in range(80)
        for y in range(0, 1024, 256) for x in range(0, 1024, 256)})


@pytest.mark.parametrize("bits", [8, 16, 32])
def test_label_pages_of_every_bit_depth(tmp_path, bits):
  labels = [dummy.label_slice(z, bits=bits, size=64) for z in range(3)]
  pages = [dummy._label_image(a, bits) for a in labels]
  path = tmp_path / "labels.tif"
  pages[0].save(path, format="TIFF", save_all=True, append_images=pages[1:])
  with Image.open(path) as volume:
    for z, page in enumerate(ImageSequence.Iterator(volume)):
      out = snemi3d._label_page(page, f"labels.tif: page {z}")
      assert out.dtype == np.int32
      np.testing.assert_array_equal(out, labels[z])


def _write_pages(directory, image_pages, label_pages):
  dummy.write_volume(directory, image_pages=image_pages,
                     label_pages=label_pages)


def _split_generators(manual):
  builder = snemi3d.Builder(data_dir=manual / "unused")

  class _DlManager:
    manual_dir = epath.Path(manual)
  return builder._split_generators(_DlManager())


def test_missing_files_are_listed(tmp_path):
  (tmp_path / "train-input.tif").write_bytes(b"")
  with pytest.raises(FileNotFoundError,
                     match=rf"missing train-labels\.tif in manual_dir"
                     rf" {tmp_path}\. Expected:\n.*train-input\.tif.*100"
                     r" pages of 1024x1024"):
    _split_generators(tmp_path)


def test_wrong_page_count_is_reported(tmp_path):
  pages = [Image.new("L", (1024, 1024)) for _ in range(3)]
  _write_pages(tmp_path, pages, pages)
  with pytest.raises(ValueError, match=r"train-input\.tif: has 3 page\(s\),"
                     r" expected 100 slices of 1024x1024"):
    _split_generators(tmp_path)


def test_wrong_page_size_and_mode_name_the_page(tmp_path):
  small = [Image.new("L", (64, 64)) for _ in range(100)]
  _write_pages(tmp_path, small, small)
  generators = _split_generators(tmp_path)
  with pytest.raises(ValueError, match=r"train-input\.tif: page 90: page is "
                     r"64x64 \(width x height\), expected 1024x1024"):
    next(iter(generators["test"]))
  with pytest.raises(ValueError, match=r"page 3: expected a single-channel"
                     r" 8/16/32-bit instance-id page, got PIL mode RGB"):
    snemi3d._label_page(Image.new("RGB", (4, 4)), "train-labels.tif: page 3")
  negative = Image.fromarray(np.array([[-5, 1]], np.int32))
  with pytest.raises(ValueError, match=r"instance ids in \[-5, 1\]"):
    snemi3d._label_page(negative, "train-labels.tif: page 4")


def test_not_a_tiff_is_reported(tmp_path):
  Image.new("L", (8, 8)).save(tmp_path / "train-input.tif", format="PNG")
  Image.new("L", (8, 8)).save(tmp_path / "train-labels.tif", format="PNG")
  with pytest.raises(ValueError, match=r"train-input\.tif: expected a TIFF"):
    _split_generators(tmp_path)
