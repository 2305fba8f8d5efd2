# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""The `folder` builder on dummy data made here: layout, values, one-line
errors naming the file, reading back by name, one input-pipeline batch of
`configs/folder.py`."""

import os

import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from hpunet import config_lib
from hpunet import dataset_builders
from hpunet import input_pipeline

folder = dataset_builders.load_builder_module("folder")

H, W, K = 32, 48, 3


def _make(root, *, splits=(("train", 4), ("validation", 2)), rgb=False,
          seed=0):
  """Images with K masks each; returns {image_id: (image, masks)}."""
  rng = np.random.default_rng(seed)
  written = {}
  for split, n in splits:
    os.makedirs(root / split / "images", exist_ok=True)
    os.makedirs(root / split / "masks", exist_ok=True)
    for i in range(n):
      shape = (H, W, 3) if rgb else (H, W)
      image = rng.integers(0, 256, shape, dtype=np.uint8)
      Image.fromarray(image).save(root / split / "images" / f"c{i}.png")
      masks = rng.integers(0, 2, (H, W, K), dtype=np.uint8)
      for k in range(K):
        scale = 255 if k % 2 else 1  # both binary conventions
        Image.fromarray(masks[..., k] * scale).save(
            root / split / "masks" / f"c{i}_{k}.png")
      written[f"{split}/c{i}"] = (image, masks)
  return written


def test_builds_and_reads_back_by_name(tmp_path):
  written = _make(tmp_path / "src")
  data_dir = str(tmp_path / "tfds")
  builder = dataset_builders.build("folder/toy", manual_dir=tmp_path / "src",
                                   data_dir=data_dir)
  assert builder.info.splits["train"].num_examples == 4
  assert builder.info.splits["validation"].num_examples == 2
  # A prepared dataset is read from its stored info, by name only.
  again = tfds.builder("folder/toy", data_dir=data_dir)
  assert again.info.features["image"].shape == (H, W, 1)
  assert again.info.features["masks"].shape == (H, W, K)
  seen = 0
  for ex in tfds.as_numpy(again.as_dataset(split="train")):
    image, masks = written[ex["image_id"].decode()]
    np.testing.assert_array_equal(ex["image"][..., 0], image)
    np.testing.assert_array_equal(ex["masks"], masks)
    seen += 1
  assert seen == 4
  command = folder.next_command(again, data_dir)
  assert command.startswith(
      "python -m hpunet.train --config=configs/folder.py "
      f"--config.input.dataset=folder/toy --config.input.image_size='({H}, {W})'")
  assert f"--config.input.data_dir={data_dir}" in command
  assert f"the {H}x{W} images are smaller than the 128x128 crops" in command
  # Rebuilding a prepared dataset needs no manual_dir.
  assert dataset_builders.build("folder/toy", data_dir=data_dir).is_prepared()


def test_one_input_batch_of_the_folder_config(tmp_path):
  _make(tmp_path / "src", splits=(("train", 4), ("validation", 2)), rgb=True)
  data_dir = str(tmp_path / "tfds")
  dataset_builders.build("folder/rgb", manual_dir=tmp_path / "src",
                         data_dir=data_dir)
  config = config_lib.load_config("folder", "smoke")
  config.input.dataset = "folder/rgb"
  config.input.data_dir = data_dir
  config.input.image_size = (H, W)
  config.input.crop_size = (32, 32)
  config.input.channels = 3
  config.input.batch_size = 2
  input_pipeline.check_input_config(config.input)
  batch = next(input_pipeline.create_train_dataset(
      config.input, seed=0, process_index=0, process_count=1))
  assert batch["image"].shape == (2, 32, 32, 3)
  assert batch["seg"].shape == (2, 32, 32)
  assert set(np.unique(batch["seg"])) <= {0, 1}
  assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
  # The wrong size is refused naming both sizes.
  config.input.image_size = (64, 64)
  with pytest.raises(ValueError, match=r"image_size=\(64, 64\).*\(32, 48, 3\)"):
    next(input_pipeline.create_train_dataset(
        config.input, seed=0, process_index=0, process_count=1))


def _error(tmp_path, name="folder/bad"):
  with pytest.raises((ValueError, FileNotFoundError)) as e:
    dataset_builders.build(name, manual_dir=tmp_path / "src",
                           data_dir=str(tmp_path / "tfds"))
  message = str(e.value).splitlines()[0]
  assert not (tmp_path / "tfds" / "folder" / "bad").exists()
  return message


def test_mismatched_image_size(tmp_path):
  _make(tmp_path / "src")
  bad = tmp_path / "src" / "validation" / "images" / "c1.png"
  Image.fromarray(np.zeros((H, W + 2), np.uint8)).save(bad)
  message = _error(tmp_path)
  assert str(bad) in message and f"{W + 2}x{H}" in message
  assert f"expected {W}x{H}" in message


def test_mismatched_mask_size_count_and_values(tmp_path):
  _make(tmp_path / "src")
  masks = tmp_path / "src" / "train" / "masks"
  Image.fromarray(np.zeros((H + 1, W), np.uint8)).save(masks / "c2_1.png")
  message = _error(tmp_path)
  assert str(masks / "c2_1.png") in message and "size of its image" in message

  Image.fromarray(np.zeros((H, W), np.uint8)).save(masks / "c2_1.png")
  os.remove(masks / "c3_2.png")  # c3 has 2 masks, the others 3
  message = _error(tmp_path)
  assert "c3.png: 2 mask(s); expected 3" in message

  Image.fromarray(np.zeros((H, W), np.uint8)).save(masks / "c3_2.png")
  os.remove(masks / "c1_0.png")  # a gap: _1, _2 only
  message = _error(tmp_path)
  assert "c1.png: its masks are ['c1_1.png', 'c1_2.png']" in message

  Image.fromarray(np.zeros((H, W), np.uint8)).save(masks / "c1_0.png")
  Image.fromarray(np.full((H, W), 7, np.uint8)).save(masks / "c0_1.png")
  message = _error(tmp_path)
  assert str(masks / "c0_1.png") in message and "mask values [7]" in message

  Image.fromarray(np.zeros((H, W), np.uint8)).save(masks / "c0_1.png")
  Image.fromarray(np.zeros((H, W), np.uint8)).save(masks / "orphan_0.png")
  message = _error(tmp_path)
  assert "orphan_0.png: no image" in message


def test_missing_split_and_bad_names(tmp_path):
  _make(tmp_path / "src", splits=(("train", 2),))
  message = _error(tmp_path)
  assert "validation" in message and "does not exist" in message
  with pytest.raises(ValueError, match="folder/<name>"):
    dataset_builders.build("folder", manual_dir=tmp_path / "src",
                           data_dir=str(tmp_path / "tfds"))
  with pytest.raises(FileNotFoundError, match="needs --manual_dir"):
    dataset_builders.build("folder/new", data_dir=str(tmp_path / "tfds"))
