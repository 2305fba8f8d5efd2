# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Tests of the `lidc` TFDS builder (configs `crops` and `pickle`)."""

import atexit
import importlib.util
import io
import os
import pathlib
import pickle
import shutil
import tarfile
import tempfile

from etils import epath
import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from hpunet import dataset_builders

lidc = dataset_builders.load_builder_module("lidc")

_HERE = pathlib.Path(__file__).resolve().parent


def _load_dummy_maker():
  path = _HERE / "dummy_data" / "make_dummy_data.py"
  spec = importlib.util.spec_from_file_location("lidc_make_dummy_data", path)
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

_SPLIT_ARCHIVE = {"train": "train", "validation": "val", "test": "test"}
_CROPS_SPLITS = {split: len(dummy.CROPS_CASES[archive])
                 for split, archive in _SPLIT_ARCHIVE.items()}


def _pickle_split_sizes():
  records = dummy.pickle_records()
  assignment = lidc.split_series(r["series_uid"] for r in records.values())
  sizes = {"train": 0, "validation": 0, "test": 0}
  for record in records.values():
    sizes[assignment[record["series_uid"]]] += 1
  return sizes


class LidcCropsBuilderTest(
    _RemoveTmpDir, tfds.testing.DatasetBuilderTestCase):
  """Builds the committed dummy archives (datasets/lidc/dummy_data/)."""
  DATASET_CLASS = lidc.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["crops"]
  SPLITS = _CROPS_SPLITS


class LidcPickleBuilderTest(
    _RemoveTmpDir, tfds.testing.DatasetBuilderTestCase):
  """Builds a dummy data_lidc.pickle written into a temporary folder."""
  DATASET_CLASS = lidc.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["pickle"]
  SPLITS = _pickle_split_sizes()
  # Must be set when the class is created: pytest reads `dummy_data` (which
  # caches EXAMPLE_DIR) while collecting. The pickle is written in setUpClass.
  EXAMPLE_DIR = _temporary_dir("lidc_pickle_dummy_")

  @classmethod
  def setUpClass(cls):
    dummy.write_pickle(cls.EXAMPLE_DIR)
    super().setUpClass()

  @classmethod
  def tearDownClass(cls):
    super().tearDownClass()
    shutil.rmtree(cls.EXAMPLE_DIR, ignore_errors=True)  # Free the space now.


# ----------------------------------------------------------------------------
# Values, read back through `tfds.data_source` (array_record, no TensorFlow).
# ----------------------------------------------------------------------------


def _read_all(name, data_dir):
  out = {}
  for split in ("train", "validation", "test"):
    source = tfds.data_source(name, split=split, data_dir=data_dir)
    out[split] = {ex["image_id"].decode(): ex
                  for ex in (source[i] for i in range(len(source)))}
  return out


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tfds")
  dataset_builders.build("lidc/crops", manual_dir=_HERE / "dummy_data",
                      data_dir=data_dir, file_format="array_record")
  return _read_all("lidc/crops", data_dir)


def test_crops_split_membership_and_values(crops):
  for split, archive in _SPLIT_ARCHIVE.items():
    cases = dummy.CROPS_CASES[archive]
    assert sorted(crops[split]) == sorted(
        f"{p}/z-{z}_c{c}" for p, z, c, _ in cases)
    for patient, z, crop, marked in cases:
      ex = crops[split][f"{patient}/z-{z}_c{crop}"]
      assert ex["image"].dtype == np.uint8
      assert ex["image"].shape == (180, 180, 1)
      np.testing.assert_array_equal(ex["image"][..., 0],
                                    dummy.crop_image(patient, z, crop))
      assert ex["masks"].dtype == np.uint8
      assert ex["masks"].shape == (180, 180, 4)
      assert set(np.unique(ex["masks"])) <= {0, 1}
      for g in range(4):
        expected = dummy.crop_mask(patient, z, crop, g, marked) > 0
        np.testing.assert_array_equal(ex["masks"][..., g], expected)
      assert ex["patient_id"].decode() == patient


def test_crops_grader_index_is_zero_based(crops):
  # Only the file ..._l2.png of this case has a lesion.
  masks = crops["train"]["LIDC-IDRI-0001/z-105.0_c0"]["masks"]
  assert masks[..., 2].sum() > 0
  assert masks[..., [0, 1, 3]].sum() == 0
  # A case nobody marked has 4 empty masks.
  assert crops["test"]["LIDC-IDRI-0005/z-7.0_c1"]["masks"].sum() == 0


def test_extracted_folders_give_the_same_dataset(crops, tmp_path):
  manual = tmp_path / "manual"
  dummy.write_crops(manual, extracted=True)
  dataset_builders.build("lidc/crops", manual_dir=manual,
                      data_dir=tmp_path / "tfds", file_format="array_record")
  extracted = _read_all("lidc/crops", tmp_path / "tfds")
  for split, examples in crops.items():
    assert sorted(extracted[split]) == sorted(examples)
    for image_id, ex in examples.items():
      for key in ("image", "masks"):
        np.testing.assert_array_equal(extracted[split][image_id][key], ex[key])


def test_index_groups_and_sorts_numerically():
  names = sorted(dummy.crop_files("train"), reverse=True)  # Any order.
  cases = lidc.index_crop_files(names, "train.tar.gz")
  assert [c.image_id for c in cases] == [
      "LIDC-IDRI-0001/z-105.0_c0", "LIDC-IDRI-0001/z-105.0_c1",
      "LIDC-IDRI-0002/z--9.5_c0", "LIDC-IDRI-0002/z-10.0_c0",
      "LIDC-IDRI-0002/z-105.0_c0"]
  assert cases[2].graders == {
      g: f"gt/LIDC-IDRI-0002/z--9.5_c0_l{g}.png" for g in range(4)}


def test_index_accepts_a_leading_folder_in_the_archive():
  names = [f"train/{n}" for n in dummy.crop_files("val")]
  cases = lidc.index_crop_files(names, "val.tar.gz")
  assert [c.image for c in cases] == [
      "train/images/LIDC-IDRI-0003/z--120.25_c0.png",
      "train/images/LIDC-IDRI-0003/z--118.0_c2.png"]


def test_missing_grader_file_is_named():
  names = [n for n in dummy.crop_files("val")
           if n != "gt/LIDC-IDRI-0003/z--118.0_c2_l3.png"]
  with pytest.raises(ValueError, match=r"grader masks missing for "
                     r"images/LIDC-IDRI-0003/z--118\.0_c2\.png: expected "
                     r"gt/LIDC-IDRI-0003/z--118\.0_c2_l3\.png"):
    lidc.index_crop_files(names, "val.tar.gz")


def test_one_based_grader_names_are_rejected():
  names = ["images/P/z-1.0_c0.png"] + [
      f"gt/P/z-1.0_c0_l{g}.png" for g in (1, 2, 3, 4)]
  with pytest.raises(ValueError, match=r"z-1\.0_c0_l4\.png: grader index 4 "
                     r"is outside 0\.\.3.*0-based"):
    lidc.index_crop_files(names, "x.tar.gz")


def test_mask_without_image_and_unexpected_names():
  with pytest.raises(ValueError, match=r"gt/P/z-1\.0_c0_l0\.png has no image;"
                     r" expected images/P/z-1\.0_c0\.png"):
    lidc.index_crop_files([f"gt/P/z-1.0_c0_l{g}.png" for g in range(4)], "x")
  with pytest.raises(ValueError, match=r"unexpected file images/P/scan\.png"):
    lidc.index_crop_files(["images/P/scan.png"], "x")
  with pytest.raises(ValueError, match=r"found no images/"):
    lidc.index_crop_files(["README.txt"], "x")


def test_missing_archives_list_the_expected_files(tmp_path):
  (tmp_path / "train.tar.gz").write_bytes(b"")
  with pytest.raises(FileNotFoundError) as info:
    lidc.find_crop_splits(epath.Path(tmp_path))
  message = str(info.value)
  assert "val.tar.gz" in message and "test.tar.gz" in message
  assert "train.tar.gz (or" not in message  # Present, so not listed missing.
  assert str(tmp_path) in message
  assert "images/<patient>/z-<zpos>_c<crop>.png" in message


def test_wrong_image_size_names_the_file(tmp_path):
  files = dummy.crop_files("test")
  buffer = io.BytesIO()
  Image.fromarray(np.zeros((128, 128), np.uint8)).save(buffer, format="PNG")
  files["images/LIDC-IDRI-0004/z-33.5_c0.png"] = buffer.getvalue()
  dummy.write_crops(tmp_path, files_by_split={"test": files})
  source = lidc._TarSplit(epath.Path(tmp_path) / "test.tar.gz")
  builder = lidc.Builder(config="crops", data_dir=tmp_path / "unused")
  cases = lidc.index_crop_files(source.names(), str(source))
  with pytest.raises(ValueError, match=r"test\.tar\.gz: images/LIDC-IDRI-0004/"
                     r"z-33\.5_c0\.png: image is 128x128 .* expected 180x180"):
    list(builder._generate_crops(source, cases))


def test_corrupt_archive_is_reported(tmp_path):
  dummy.write_crops(tmp_path)
  data = (tmp_path / "val.tar.gz").read_bytes()
  (tmp_path / "val.tar.gz").write_bytes(data[: len(data) // 2])
  with pytest.raises(ValueError, match=r"val\.tar\.gz: corrupt or truncated"):
    lidc._TarSplit(epath.Path(tmp_path) / "val.tar.gz").names()


def test_sixteen_bit_images_are_scaled_by_dtype_max():
  values = np.array([[0, 257, 65535, 32896]], np.uint16)
  image = Image.fromarray(values)
  out = lidc._grayscale_to_unit_uint8(image, "x.png")
  np.testing.assert_array_equal(out, [[0, 1, 255, 128]])
  with pytest.raises(ValueError, match=r"x\.png: expected a single-channel"):
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 9
    lidc._grayscale_to_unit_uint8(Image.fromarray(rgb), "x.png")


# ----------------------------------------------------------------------------
# `pickle` config.
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pickled(tmp_path_factory):
  manual = tmp_path_factory.mktemp("manual")
  dummy.write_pickle(manual)
  data_dir = tmp_path_factory.mktemp("tfds")
  dataset_builders.build("lidc/pickle", manual_dir=manual, data_dir=data_dir,
                      file_format="array_record")
  return _read_all("lidc/pickle", data_dir)


def test_pickle_values_and_series_split(pickled):
  records = dummy.pickle_records()
  assignment = lidc.split_series(r["series_uid"] for r in records.values())
  series_per_split = {}
  for split, examples in pickled.items():
    for key, ex in examples.items():
      record = records[key]
      assert assignment[record["series_uid"]] == split
      series_per_split.setdefault(split, set()).add(record["series_uid"])
      assert ex["image"].shape == (128, 128, 1)
      np.testing.assert_array_equal(
          ex["image"][..., 0],
          np.round(record["image"].astype(np.float64) * 255).astype(np.uint8))
      np.testing.assert_array_equal(ex["masks"],
                                    np.stack(record["masks"], axis=-1))
      assert ex["patient_id"].decode() == key[:14]  # "LIDC-IDRI-0001".
  assert sum(len(e) for e in pickled.values()) == len(records)
  # No series in two splits; 6 series -> 4 / 1 / 1.
  splits = list(series_per_split.values())
  assert not (splits[0] & splits[1] or splits[0] & splits[2] or
              splits[1] & splits[2])
  assert sorted(len(s) for s in splits) == [1, 1, 4]


def test_series_split_is_deterministic_and_order_free():
  uids = [f"1.2.840.{i}" for i in range(200)]
  first = lidc.split_series(uids)
  assert lidc.split_series(list(reversed(uids)) + uids[:5]) == first
  counts = {s: list(first.values()).count(s)
            for s in ("train", "validation", "test")}
  assert counts == {"train": 140, "validation": 30, "test": 30}
  with pytest.raises(ValueError, match="at least 3"):
    lidc.split_series(["a", "b", "a"])


def test_pickle_refuses_arbitrary_globals(tmp_path):
  path = tmp_path / "data_lidc.pickle"
  path.write_bytes(pickle.dumps({"k": os.system}))
  with pytest.raises(ValueError, match=r"refusing to load global"):
    lidc.load_pickle(epath.Path(path))


def test_truncated_pickle_is_reported(tmp_path):
  path = pathlib.Path(dummy.write_pickle(tmp_path))
  path.write_bytes(path.read_bytes()[:1000])
  with pytest.raises(ValueError, match=r"data_lidc\.pickle: cannot read"):
    lidc.load_pickle(epath.Path(path))


def test_bad_pickle_records_are_named(tmp_path):
  records = dummy.pickle_records()
  key = sorted(records)[0]
  records[key]["image"] = records[key]["image"][:64]
  builder = lidc.Builder(config="pickle", data_dir=tmp_path / "unused")
  with pytest.raises(ValueError, match=rf"record '{key}': 'image' has shape "
                     r"\(64, 128\), expected \(128, 128\)"):
    list(builder._generate_pickle("data_lidc.pickle", [(key, records[key])]))
  records[key]["image"] = np.full((128, 128), 3.0)
  with pytest.raises(ValueError,
                     match=r"values in \[3, 3\], expected \[0, 1\]"):
    list(builder._generate_pickle("data_lidc.pickle", [(key, records[key])]))
  records[key]["image"] = np.zeros((128, 128))
  records[key]["masks"] = records[key]["masks"][:3]
  with pytest.raises(ValueError, match=r"'masks' must be a list of 4 arrays"):
    list(builder._generate_pickle("data_lidc.pickle", [(key, records[key])]))


def test_missing_pickle_lists_the_expected_file(tmp_path):
  builder = lidc.Builder(config="pickle", data_dir=tmp_path / "unused")
  with pytest.raises(FileNotFoundError, match=r"missing data_lidc\.pickle in"
                     rf" manual_dir {tmp_path}"):
    builder._pickle_split_generators(epath.Path(tmp_path))


def test_tar_reader_streams_members_in_archive_order(tmp_path):
  dummy.write_crops(tmp_path)
  source = lidc._TarSplit(epath.Path(tmp_path) / "train.tar.gz")
  with tarfile.open(tmp_path / "train.tar.gz") as archive:
    assert len(archive.getnames()) == 5 * 5
  cases = lidc.index_crop_files(source.names(), str(source))
  emitted = [case.image_id for case, _, _ in source.iter_case_bytes(cases)]
  assert sorted(emitted) == sorted(c.image_id for c in cases)
