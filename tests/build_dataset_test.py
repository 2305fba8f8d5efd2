# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Tests of hpunet/dataset_builders.py (builder loading, build()) and the
python -m hpunet.build_dataset command."""

import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow_datasets as tfds

from hpunet import dataset_builders

_REPO = pathlib.Path(dataset_builders.__file__).resolve().parent.parent
_LIDC_DUMMY = _REPO / "datasets" / "lidc" / "dummy_data"


def _lidc_dummy_maker():
  spec = importlib.util.spec_from_file_location(
      "lidc_make_dummy_data_for_build_test",
      _LIDC_DUMMY / "make_dummy_data.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _split_sizes(name, data_dir):
  return {split: len(tfds.data_source(name, split=split, data_dir=data_dir))
          for split in ("train", "validation", "test")}


# ----------------------------------------------------------------------------
# load_builder_module
# ----------------------------------------------------------------------------


def test_load_builder_module_registers_each_builder_once(tmp_path):
  module = dataset_builders.load_builder_module("lidc")
  assert dataset_builders.load_builder_module("lidc/pickle:1.0.0") is module
  assert module.__name__ == "_hpunet_datasets.lidc.lidc_dataset_builder"
  assert module.Builder.name == "lidc"
  builder = tfds.builder("lidc/pickle", data_dir=tmp_path)
  assert isinstance(builder, module.Builder)
  assert builder.builder_config.name == "pickle"
  # README.md and CITATIONS.bib beside the builder are found by TFDS.
  assert "armato2011lidc" in builder.info.citation
  assert "LIDC-IDRI" in builder.info.description


@pytest.mark.parametrize("name,configs", [
    ("lidc", ["crops", "pickle"]),
    ("snemi3d", []),
    ("hpunet_cityscapes", ["cars", "flips"]),
])
def test_every_builder_loads(name, configs):
  module = dataset_builders.load_builder_module(name)
  assert name in dataset_builders.available_datasets()
  assert module.Builder.name == name
  assert [c.name for c in module.Builder.BUILDER_CONFIGS] == configs
  assert module.Builder.MANUAL_DOWNLOAD_INSTRUCTIONS


def test_unknown_and_invalid_names():
  with pytest.raises(FileNotFoundError) as info:
    dataset_builders.load_builder_module("no_such_dataset")
  message = str(info.value)
  assert "no_such_dataset_dataset_builder.py" in message
  assert "lidc" in message and "snemi3d" in message  # The available ones.
  for bad in ("../etc", "Lidc", "", "/lidc"):
    with pytest.raises(ValueError, match="Invalid dataset name"):
      dataset_builders.load_builder_module(bad)


def test_generic_loading_from_another_folder(tmp_path):
  """Any datasets/<n>/<n>_dataset_builder.py works, with relative imports."""
  folder = tmp_path / "datasets" / "hpunet_toy_fixture"
  folder.mkdir(parents=True)
  (folder / "helpers.py").write_text("VALUES = (3, 1, 2)\n")
  (folder / "README.md").write_text("A toy dataset for build tests.\n")
  (folder / "hpunet_toy_fixture_dataset_builder.py").write_text(
      textwrap.dedent("""\
          import numpy as np
          import tensorflow_datasets as tfds
          from . import helpers

          class Builder(tfds.core.GeneratorBasedBuilder):
            VERSION = tfds.core.Version("1.0.0")

            def _info(self):
              return self.dataset_info_from_configs(
                  features=tfds.features.FeaturesDict(
                      {"x": tfds.features.Tensor(shape=(), dtype=np.int32)}))

            def _split_generators(self, dl_manager):
              return {"train": self._generate_examples()}

            def _generate_examples(self):
              for i, v in enumerate(helpers.VALUES):
                yield i, {"x": v}
          """))
  builder = dataset_builders.build(
      "hpunet_toy_fixture", data_dir=tmp_path / "tfds",
      file_format="array_record", datasets_dir=tmp_path / "datasets")
  assert builder.info.description.startswith("A toy dataset")
  source = tfds.data_source("hpunet_toy_fixture", split="train",
                            data_dir=tmp_path / "tfds")
  assert sorted(int(source[i]["x"]) for i in range(len(source))) == [1, 2, 3]


# ----------------------------------------------------------------------------
# build()
# ----------------------------------------------------------------------------


def test_build_and_load(tmp_path):
  builder = dataset_builders.build("lidc", manual_dir=_LIDC_DUMMY,
                                data_dir=tmp_path, file_format="array_record")
  assert builder.info.full_name == "lidc/crops/1.0.0"
  assert _split_sizes("lidc/crops", tmp_path) == {
      "train": 5, "validation": 2, "test": 2}
  # A second call reuses the prepared dataset.
  dataset_builders.build("lidc", manual_dir=_LIDC_DUMMY, data_dir=tmp_path,
                      file_format="array_record")


def test_manual_dir_on_a_non_local_filesystem(tmp_path, ram_dir):
  """A `ram://` manual_dir (handled like gs://) is read, not refused."""
  from etils import epath  # pylint: disable=g-import-not-at-top
  manual = epath.Path(ram_dir) / "lidc_crops"
  manual.mkdir(parents=True)
  with pytest.raises(FileNotFoundError, match="does not exist or is empty"):
    dataset_builders.build("lidc", manual_dir=str(manual), data_dir=tmp_path)
  for archive in ("train.tar.gz", "val.tar.gz", "test.tar.gz"):
    (manual / archive).write_bytes((_LIDC_DUMMY / archive).read_bytes())
  dataset_builders.build("lidc", manual_dir=str(manual), data_dir=tmp_path,
                         file_format="array_record")
  assert _split_sizes("lidc/crops", tmp_path) == {
      "train": 5, "validation": 2, "test": 2}


def test_manual_dir_problems_repeat_the_instructions(tmp_path):
  missing = tmp_path / "nowhere"
  with pytest.raises(FileNotFoundError,
                     match=rf"Manual directory {missing} .* does not exist or"
                     r" is empty\..*train\.tar\.gz, val\.tar\.gz"):
    dataset_builders.build("lidc", manual_dir=missing, data_dir=tmp_path)
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="does not exist or is empty"):
    dataset_builders.build("lidc", manual_dir=tmp_path / "empty",
                        data_dir=tmp_path)
  with pytest.raises(FileNotFoundError, match="needs --manual_dir"):
    dataset_builders.build("snemi3d", manual_dir=None, data_dir=tmp_path)
  with pytest.raises(ValueError, match="file_format='parquet'"):
    dataset_builders.build("lidc", manual_dir=_LIDC_DUMMY, data_dir=tmp_path,
                        file_format="parquet")


def test_wrong_files_in_manual_dir_are_listed(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  (manual / "train.tar.gz").write_bytes(b"")
  (manual / "lidc.zip").write_bytes(b"")
  with pytest.raises(FileNotFoundError) as info:
    dataset_builders.build("lidc/crops", manual_dir=manual,
                        data_dir=tmp_path / "tfds")
  message = str(info.value)
  assert f"in manual_dir {manual}" in message
  assert "val.tar.gz (or extracted val/images, val/gt)" in message
  assert "test.tar.gz" in message
  assert "gt/<patient>/z-<zpos>_c<crop>_l<g>.png" in message


def test_failed_build_leaves_no_dataset_behind(tmp_path):
  """A generator failing after the train split was written."""
  dummy = _lidc_dummy_maker()
  manual, data_dir = tmp_path / "manual", tmp_path / "tfds"
  files = dummy.crop_files("test")
  bad = "images/LIDC-IDRI-0005/z-7.0_c1.png"
  files[bad] = dummy._png(np.zeros((180, 170), np.uint8))
  dummy.write_crops(manual, files_by_split={"test": files})
  with pytest.raises(ValueError, match=rf"test\.tar\.gz: {bad}: image is"
                     r" 170x180 \(width x height\), expected 180x180"):
    dataset_builders.build("lidc/crops", manual_dir=manual, data_dir=data_dir)
  leftovers = [p for p in data_dir.rglob("*")
               if "lidc-" in p.name or "incomplete" in p.name]
  assert not leftovers
  assert not (data_dir / "lidc" / "crops" / "1.0.0").exists()
  assert not tfds.builder("lidc/crops", data_dir=data_dir).is_prepared()
  # After fixing the input the same data_dir builds normally.
  dummy.write_crops(manual)
  builder = dataset_builders.build("lidc/crops", manual_dir=manual,
                                data_dir=data_dir, file_format="array_record")
  assert builder.is_prepared()
  assert _split_sizes("lidc/crops", data_dir)["test"] == 2


def test_a_build_that_loses_the_race_reads_the_winners_dataset(
    tmp_path, synthetic_data_dir):
  """Two runs building the same missing dataset at once: the second one's
  final rename fails, and it reads the dataset the first one put there."""
  dataset_builders.load_builder_module("synthetic")
  data_dir = tmp_path / "tfds"
  builder = tfds.builder("synthetic/s32", data_dir=data_dir)
  final_dir = builder.data_dir
  prepare = builder._download_and_prepare  # pylint: disable=protected-access

  def racing(*args, **kwargs):  # the other build finishes first
    out = prepare(*args, **kwargs)
    shutil.copytree(os.path.join(synthetic_data_dir, "synthetic", "s32",
                                 os.path.basename(final_dir)), final_dir)
    return out

  builder._download_and_prepare = racing  # pylint: disable=protected-access
  prepared = dataset_builders.download_and_prepare(
      builder, reopen=lambda: tfds.builder("synthetic/s32", data_dir=data_dir),
      download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  assert prepared.is_prepared() and prepared is not builder
  assert {k: v.num_examples for k, v in prepared.info.splits.items()} == {
      "train": 512, "validation": 64, "test": 64}
  assert [p.name for p in (data_dir / "synthetic" / "s32").iterdir()] == [
      os.path.basename(final_dir)]  # the losing build's folder is gone


# ----------------------------------------------------------------------------
# python -m hpunet.build_dataset
# ----------------------------------------------------------------------------


def _run_cli(*args):
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(
      [str(_REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  return subprocess.run(
      [sys.executable, "-m", "hpunet.build_dataset", *args], cwd=_REPO,
      env=env, capture_output=True, text=True, timeout=300, check=False)


def test_cli_builds_end_to_end(tmp_path):
  result = _run_cli("lidc/crops", f"--manual_dir={_LIDC_DUMMY}",
                    f"--data_dir={tmp_path}", "--file_format=array_record")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Prepared lidc/crops/1.0.0" in result.stdout
  assert "train: 5 examples" in result.stdout
  assert _split_sizes("lidc/crops", tmp_path) == {
      "train": 5, "validation": 2, "test": 2}
  example = tfds.data_source("lidc/crops", split="validation",
                             data_dir=tmp_path)[0]
  assert example["masks"].shape == (180, 180, 4)


def test_cli_reports_bad_input(tmp_path):
  result = _run_cli("lidc", f"--manual_dir={tmp_path / 'missing'}",
                    f"--data_dir={tmp_path}")
  assert result.returncode != 0
  assert "does not exist or is empty" in result.stderr
  assert "val.tar.gz" in result.stderr
  assert not (tmp_path / "lidc").exists()


def test_expand_path_keeps_urls_and_absolutises_local_paths(tmp_path,
                                                            monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert dataset_builders.expand_path("gs://bucket/tfds") == "gs://bucket/tfds"
  assert dataset_builders.expand_path("data") == str(tmp_path / "data")
  assert dataset_builders.expand_path(None) is None


def test_cityscapes_builder_coexists_with_tfds_own():
  """Ours is `hpunet_cityscapes`: TFDS' catalogue `cityscapes` keeps its
  name (and its folder), and both register in one process."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  ours = dataset_builders.load_builder_module("hpunet_cityscapes").Builder
  theirs = tfds.builder_cls("cityscapes")
  assert ours.name == "hpunet_cityscapes"
  assert theirs.name == "cityscapes" and theirs is not ours
  assert tfds.builder_cls("hpunet_cityscapes") is ours
