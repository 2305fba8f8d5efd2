# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""The `folder` builder on dummy data made here: layout, values, one-line
errors naming the file, reading back by name, one input-pipeline batch of
`configs/folder.py`; a 3-class dataset (classes.txt) from the build command
through a few training steps to `evaluate` and `sample`."""

import contextlib
import io
import os
import types

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
          seed=0, num_classes=None):
  """Images with K masks each; returns {image_id: (image, masks)}.

  num_classes: None = binary masks; C = class ids 0..C-1 and classes.txt.
  """
  rng = np.random.default_rng(seed)
  written = {}
  if num_classes:
    os.makedirs(root, exist_ok=True)
    (root / "classes.txt").write_text(
        "".join(f"class {c}\n" for c in range(num_classes)))
  for split, n in splits:
    os.makedirs(root / split / "images", exist_ok=True)
    os.makedirs(root / split / "masks", exist_ok=True)
    for i in range(n):
      shape = (H, W, 3) if rgb else (H, W)
      image = rng.integers(0, 256, shape, dtype=np.uint8)
      Image.fromarray(image).save(root / split / "images" / f"c{i}.png")
      masks = rng.integers(0, num_classes or 2, (H, W, K), dtype=np.uint8)
      for k in range(K):
        # Binary: both conventions ({0, 1} and {0, 255}).
        scale = 255 if k % 2 and not num_classes else 1
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


def test_multiclass_mask_values_and_classes_file(tmp_path):
  _make(tmp_path / "src", num_classes=3)
  masks = tmp_path / "src" / "train" / "masks"
  values = np.zeros((H, W), np.uint8)
  values[0, :3] = (2, 3, 7)
  Image.fromarray(values).save(masks / "c1_2.png")
  message = _error(tmp_path)
  assert message == (
      f"{masks / 'c1_2.png'}: mask values [3, 7] (of [0, 2, 3, 7]); expected "
      "class ids 0..2 (the 3 classes of classes.txt).")
  (tmp_path / "src" / "classes.txt").write_text("background\n\n")
  message = _error(tmp_path)
  assert "classes.txt: 1 line(s); expected one class name per line" in message
  # Without classes.txt, class ids are refused as non-binary, with the hint.
  os.remove(tmp_path / "src" / "classes.txt")
  message = _error(tmp_path)
  assert f"{masks / 'c0_0.png'}: mask values [0, 1, 2]; expected a binary " \
      "mask with values {0, 1} or {0, 255}" in message
  assert "list the classes in <manual_dir>/classes.txt" in message


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory):
  """A 3-class folder dataset built by the command (in-process)."""
  from hpunet import build_dataset  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("folder3")
  written = _make(root / "src", num_classes=3)
  data_dir = str(root / "tfds")
  flag = lambda v: types.SimpleNamespace(value=v)
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    build_dataset.main(
        ["build_dataset", "folder/three"],
        types.SimpleNamespace(manual_dir=flag(str(root / "src")),
                              data_dir=flag(data_dir),
                              file_format=flag("tfrecord")))
  printed = out.getvalue()
  return root, data_dir, written, printed


def _three_class_config(data_dir):
  config = config_lib.load_config("folder", "smoke")
  config.input.dataset = "folder/three"
  config.input.data_dir = data_dir
  config.input.image_size = (H, W)
  config.input.num_classes = config.model.num_classes = 3
  config.input.batch_size = 2
  config.mesh.data = 1
  return config


def test_three_classes_build_and_input(three_classes):
  from hpunet import errors  # pylint: disable=g-import-not-at-top
  from hpunet import validation  # pylint: disable=g-import-not-at-top
  _, data_dir, written, printed = three_classes
  assert "Prepared folder/three/1.0.0" in printed
  assert ("--config.input.num_classes=3 --config.model.num_classes=3 "
          f"--config.input.data_dir={data_dir} --workdir=<workdir>") in printed
  builder = tfds.builder("folder/three", data_dir=data_dir)
  assert folder.num_classes(builder) == 3
  assert builder.info.metadata["class_names"] == [
      "class 0", "class 1", "class 2"]
  for ex in tfds.as_numpy(builder.as_dataset(split="validation")):
    np.testing.assert_array_equal(ex["masks"],
                                  written[ex["image_id"].decode()][1])
  config = _three_class_config(data_dir)
  validation.check_model(config)
  batch = next(input_pipeline.create_train_dataset(
      config.input, seed=0, process_index=0, process_count=1))
  assert set(np.unique(batch["seg"])) == {0, 1, 2}
  # The config's classes against the dataset's and the model's: one line.
  config.input.num_classes = config.model.num_classes = 2
  with pytest.raises(ValueError, match=(
      r"^input_config.num_classes=2, but the dataset 'folder/three' has 3 "
      r"classes \(stored when it was built\): pass "
      r"--config.input.num_classes=3 --config.model.num_classes=3.$")):
    next(input_pipeline.create_train_dataset(
        config.input, seed=0, process_index=0, process_count=1))
  config.input.num_classes = 3
  with pytest.raises(errors.UserError, match=(
      "^config.model.num_classes=2: expected config.input.num_classes=3.$")):
    validation.check_model(config)
  config = config_lib.load_config("lidc", "smoke")
  config.input.num_classes = config.model.num_classes = 3
  with pytest.raises(errors.UserError, match=(
      "^config.input.num_classes=3: task 'lidc' has 2 classes.$")):
    validation.check_model(config)


def test_three_classes_train_evaluate_and_sample(three_classes, tmp_path,
                                                 fast_compiles):
  """A few training steps with the trainer's validation, then `evaluate`'s
  and `sample`'s library calls on the workdir."""
  from hpunet import evaluate  # pylint: disable=g-import-not-at-top
  from hpunet import sample  # pylint: disable=g-import-not-at-top
  from hpunet import train  # pylint: disable=g-import-not-at-top
  root, data_dir, _, _ = three_classes
  config = _three_class_config(data_dir)
  # Smaller than the smoke model (3 scales, one latent level): cheap compiles.
  config.model.channels_per_block = (4, 8, 8)
  config.model.down_channels_per_block = (2, 4, 4)
  config.model.latent_dims = (1,)
  config.num_train_steps = 2
  config.summary_images_every_steps = 0
  config.evals = {"val": {"split": "validation", "every_steps": 2,
                          "batch_size": 2, "num_samples": 2}}
  config.input.eval_batch_size = 2
  workdir = str(tmp_path / "workdir")
  final = train.train_and_evaluate(config, workdir).metrics
  classes = ("rec_iou_class1", "rec_iou_class2")
  for key in ("val/ged", "val/hm_iou", "val/rec_iou") + tuple(
      f"val/{c}" for c in classes):
    assert np.isfinite(final[key]), (key, final)
  run = evaluate.evaluate_run(config, workdir, split="validation",
                              num_samples=3, max_batches=1)
  per_image = run["per_image"]
  assert set(per_image) == {"ged", "hm_iou", "rec_iou", *classes}
  assert all(len(v) == 2 for v in per_image.values())
  assert np.all((0 <= per_image["ged"]) & (per_image["ged"] <= 2))
  for key in ("hm_iou", "rec_iou"):
    assert np.all((0 <= per_image[key]) & (per_image[key] <= 1)), key
  image = np.asarray(Image.open(root / "src" / "validation" / "images" /
                                "c0.png"), np.float32)[..., None] / 255.0
  out = sample.sample_image(config, workdir, image, num_samples=2,
                            center_crop=True)
  assert out["samples"].shape == (2, 32, 32)
  assert out["probabilities"].shape == (2, 32, 32, 3)
  assert out["samples"].max() <= 2 and np.isfinite(out["std"]).all()
