# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Tests of the `cityscapes` TFDS builder (configs `cars` and `flips`)."""

import atexit
import importlib.util
import io
import pathlib
import shutil
import tempfile
import zipfile

from etils import epath
import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from hpunet import dataset_builders

cityscapes = dataset_builders.load_builder_module("hpunet_cityscapes")

_HERE = pathlib.Path(__file__).resolve().parent


def _load_dummy_maker():
  path = _HERE / "dummy_data" / "make_dummy_data.py"
  spec = importlib.util.spec_from_file_location("cityscapes_make_dummy_data",
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


class CityscapesBuilderTest(
    _RemoveTmpDir, tfds.testing.DatasetBuilderTestCase):
  """Both configs from dummy zips of full-size (1024x2048) PNGs."""
  DATASET_CLASS = cityscapes.Builder
  SPLITS = {split: len(ids) for split, ids in dummy.EXPECTED_SPLITS.items()}
  # Set at class creation (pytest reads `dummy_data` while collecting); the
  # zips are written in setUpClass.
  EXAMPLE_DIR = _temporary_dir("cityscapes_dummy_")

  @classmethod
  def setUpClass(cls):
    dummy.write_zips(cls.EXAMPLE_DIR)
    super().setUpClass()

  @classmethod
  def tearDownClass(cls):
    super().tearDownClass()
    shutil.rmtree(cls.EXAMPLE_DIR, ignore_errors=True)  # Free the space now.


@pytest.fixture(scope="module")
def manual_dir(tmp_path_factory):
  manual = tmp_path_factory.mktemp("manual")
  dummy.write_zips(manual)
  return manual


def _read_all(name, manual, data_dir):
  dataset_builders.build(name, manual_dir=manual, data_dir=data_dir,
                      file_format="array_record")
  out = {}
  for split in ("train", "validation", "test"):
    source = tfds.data_source(name, split=split, data_dir=data_dir)
    out[split] = {ex["image_id"].decode(): ex
                  for ex in (source[i] for i in range(len(source)))}
  return out


@pytest.fixture(scope="module")
def cars(manual_dir, tmp_path_factory):
  return _read_all("hpunet_cityscapes/cars", manual_dir,
                   tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="module")
def flips(manual_dir, tmp_path_factory):
  return _read_all("hpunet_cityscapes/flips", manual_dir,
                   tmp_path_factory.mktemp("tfds"))


def _expected_image(image_id, size):
  index = next(i for i, (_, city, frame) in enumerate(dummy.IMAGES)
               if f"{city}_{frame}" == image_id)
  full = Image.fromarray(dummy.image(index))
  return np.asarray(full.resize(size[::-1], Image.Resampling.BILINEAR))


def test_splits_by_city(cars, flips):
  for examples in (cars, flips):
    assert {s: sorted(e) for s, e in examples.items()} == dummy.EXPECTED_SPLITS


def test_cars_features(cars):
  full_ids = dummy.instance_ids()
  full_train_ids = cityscapes.TRAIN_ID_TABLE[dummy.label_ids()]
  for examples in cars.values():
    for image_id, ex in examples.items():
      assert ex["image"].dtype == np.uint8
      assert ex["image"].shape == (512, 1024, 3)
      np.testing.assert_array_equal(ex["image"],
                                    _expected_image(image_id, (512, 1024)))
      label, cars_ = ex["label"], ex["car_instances"]
      assert label.dtype == np.uint8 and label.shape == (512, 1024)
      assert cars_.dtype == np.int32 and cars_.shape == (512, 1024)
      # Full-resolution rows/cols r map to r // 2 (regions are 8-aligned).
      assert (label[:128] == 10).all()  # sky
      assert (label[128:256, :512] == 13).all()  # car instances
      assert (label[128:256, 512:768] == 255).all()  # car group -> ignore
      assert (label[128:256, 768:] == 11).all()  # person instance
      assert (label[256:384, :512] == 0).all()  # road
      assert (label[256:384, 512:] == 1).all()  # sidewalk
      assert (label[384:, :512] == 255).all()  # unlabeled -> ignore
      assert (label[384:, 256:512] == 255).all()  # ground -> ignore
      assert (label[384:, 512:768] == 18).all()  # bicycle
      assert (label[384:, 768:] == 13).all()  # car instance 26002
      # Distinct ids for distinct cars (26000 + k -> k + 1), 0 elsewhere.
      assert (cars_[128:256, :256] == 1).all()
      assert (cars_[128:256, 256:512] == 2).all()
      assert (cars_[384:, 768:] == 3).all()
      assert set(np.unique(cars_)) == {0, 1, 2, 3}
      assert ((cars_ > 0) == (label == 13)).all()
      # Exactly PIL-style nearest sampling of the full-resolution maps.
      expected = full_train_ids.copy()
      expected[full_ids == 26] = 255
      np.testing.assert_array_equal(label, expected[1::2, 1::2])


def test_flips_features(flips):
  full_train_ids = cityscapes.TRAIN_ID_TABLE[dummy.label_ids()]
  for examples in flips.values():
    for image_id, ex in examples.items():
      assert set(ex) == {"image", "label", "image_id"}
      assert ex["image"].shape == (256, 512, 3)
      np.testing.assert_array_equal(ex["image"],
                                    _expected_image(image_id, (256, 512)))
      label = ex["label"]
      assert label.dtype == np.uint8 and label.shape == (256, 512)
      # Car groups are plain cars here; 255 only where the labelId is not
      # evaluated.
      assert (label[64:128, 256:384] == 13).all()
      assert (label[192:, :256] == 255).all()
      np.testing.assert_array_equal(label, full_train_ids[2::4, 2::4])
      assert set(np.unique(label)) == {0, 1, 10, 11, 13, 18, 255}


def test_train_id_table():
  table = cityscapes.TRAIN_ID_TABLE
  assert table.shape == (256,) and table.dtype == np.uint8
  np.testing.assert_array_equal(
      table[[7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31,
             32, 33]], np.arange(19))
  evaluated = np.zeros(256, bool)
  evaluated[list(cityscapes.EVALUATED_LABEL_IDS)] = True
  assert (table[~evaluated] == 255).all()
  assert table[np.uint8(-1 % 256)] == 255  # license plate, id -1.
  assert table[0] == 255 and table[6] == 255 and table[29] == 255


def _png(array):
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
  return buffer.getvalue()


def _generators(manual, config):
  builder = cityscapes.Builder(config=config, data_dir=manual / "unused")

  class _DlManager:
    manual_dir = epath.Path(manual)
  return builder._split_generators(_DlManager())


def test_missing_zips_are_listed(tmp_path):
  (tmp_path / "notes.txt").write_text("x")
  with pytest.raises(FileNotFoundError) as info:
    _generators(tmp_path, "cars")
  message = str(info.value)
  assert "leftImg8bit_trainvaltest.zip" in message
  assert "gtFine_trainvaltest.zip" in message
  assert f"manual_dir {tmp_path}" in message


def test_label_values_out_of_range_name_the_member(tmp_path):
  bad = dummy.label_ids()
  bad[0, 0] = 40
  member = "gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png"
  dummy.write_zips(tmp_path, overrides={member: _png(bad)})
  generators = _generators(tmp_path, "flips")
  with pytest.raises(ValueError, match=rf"gtFine_trainvaltest\.zip: {member}: "
                     r"label values \[40\] out of range; expected Cityscapes"
                     r" labelIds 0\.\.33"):
    list(generators["test"])


def test_wrong_image_size_names_the_member(tmp_path):
  member = "leftImg8bit/train/ulm/ulm_000000_000019_leftImg8bit.png"
  small = np.zeros((512, 1024, 3), np.uint8)
  dummy.write_zips(tmp_path, overrides={member: _png(small)})
  generators = _generators(tmp_path, "cars")
  with pytest.raises(ValueError, match=rf"{member}: image is 1024x512 \(width"
                     r" x height\), expected 2048x1024"):
    list(generators["validation"])


def test_missing_instance_ids_only_matter_for_cars(tmp_path):
  member = "gtFine/train/bochum/bochum_000000_000313_gtFine_instanceIds.png"
  dummy.write_zips(tmp_path, overrides={member: None})
  with pytest.raises(ValueError, match=r"bochum_000000_000313_leftImg8bit\.png"
                     r" has no label file: expected gtFine/train/bochum/"
                     r"bochum_000000_000313_gtFine_instanceIds\.png"):
    _generators(tmp_path, "cars")
  assert len(list(_generators(tmp_path, "flips")["train"])) == 2


def test_extracted_folders_are_accepted(tmp_path):
  zips = dummy.write_zips(tmp_path / "zips")
  for path in zips:
    with zipfile.ZipFile(path) as archive:
      archive.extractall(tmp_path / "extracted")
  generators = _generators(tmp_path / "extracted", "flips")
  keys = {split: sorted(key for key, _ in generator)
          for split, generator in generators.items()}
  assert keys == dummy.EXPECTED_SPLITS
