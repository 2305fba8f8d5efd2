# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Tests of hpunet/input_pipeline.py.

End-to-end tests run on `synthetic/s32` prepared in a temporary data_dir (a few
seconds). LIDC/SNEMI3D/Cityscapes-shaped logic runs on small in-memory sources
through the same internal functions the TFDS path uses (`_store_from_arrays`
-> `_train_dataset_from_store`, `_eval_dataset_from_examples`).
"""
# pylint: disable=protected-access

import itertools
import math
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from hpunet import augment as augment_lib
from hpunet import config_lib
from hpunet import dataset_builders
from hpunet import input_pipeline as ip
from hpunet import tasks


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  path = tmp_path_factory.mktemp("tfds")
  dataset_builders.build("synthetic/s32", data_dir=path)
  return str(path)


# The experiment config whose input section each task's tests start from.
_TASK_CONFIGS = {"synthetic": "synthetic", "lidc": "lidc",
                 "snemi3d": "snemi3d", "cityscapes_cars": "cityscapes",
                 "cityscapes_flips": "cityscapes_flips_spunet"}


def _input_config(name):
  """A copy of the `input` section of the task's experiment config."""
  config = config_lib.load_config(_TASK_CONFIGS[name])
  return config.input.copy_and_resolve_references()



def _synthetic_config(data_dir, **overrides):
  cfg = _input_config("synthetic")
  cfg.update(dataset="synthetic/s32", data_dir=data_dir, image_size=(32, 32),
             crop_size=(32, 32), batch_size=8, eval_batch_size=24,
             num_parallel_calls=2)
  cfg.update(overrides)
  return cfg


def _settings(name, image_size, crop_size=None, **augment):
  cfg = _input_config(name)
  cfg.update(image_size=image_size, crop_size=crop_size or image_size,
             num_parallel_calls=2)
  cfg.augment = augment_lib.augment_off()
  cfg.augment.update(augment)
  return ip._Settings(cfg)


def _batches(store, s, n, *, seed=0, start_step=0, batch=4, process_index=0):
  ds = ip._train_dataset_from_store(
      store, s, seed=seed, start_step=start_step, local_batch=batch,
      process_index=process_index)
  return list(itertools.islice(ds.as_numpy_iterator(), n))


def _blobs(rng, n, h, w, count=3):
  """n random binary masks [n, h, w] with `count` rectangles each."""
  out = np.zeros((n, h, w), np.uint8)
  for i in range(n):
    for _ in range(count):
      y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
      out[i, y:y + rng.integers(3, h // 2), x:x + rng.integers(3, w // 2)] = 1
  return out


def _lidc_arrays(rng, n, size):
  masks = np.stack([_blobs(rng, n, size, size) for _ in range(4)], -1)
  image = rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8)
  ids = np.array([f"ex{i:03d}".encode() for i in range(n)])
  return {"image": image, "masks": masks, "image_id": ids}


_STRONG_AUG = dict(mirror=True, rotation_deg=30.0, shear_deg=10.0,
                   scale_range=(0.8, 1.25), elastic_max_px=4.0,
                   elastic_spacing_px=8.0, random_crop=True, translate_px=4.0)


# ----------------------------------------------------------------------------
# End to end on synthetic/s32.
# ----------------------------------------------------------------------------


def test_train_batches_are_the_stored_examples(data_dir):
  """Augment off: image/seg are an exact stored example and its grader."""
  cfg = _synthetic_config(data_dir)
  cfg.augment = augment_lib.augment_off()
  it = ip.create_train_dataset(cfg, seed=1, process_index=0, process_count=1)
  batch = next(it)
  assert batch["image"].shape == (8, 32, 32, 1)
  assert batch["image"].dtype == np.float32
  assert batch["seg"].dtype == np.int32 and batch["mask"].dtype == np.float32
  assert batch["grader_id"].dtype == np.int32
  np.testing.assert_array_equal(batch["mask"], 1.0)
  builder = tfds.builder("synthetic/s32", data_dir=data_dir)
  by_image = {ex["image"].tobytes(): ex["masks"] for ex in tfds.as_numpy(
      builder.as_dataset(split="train"))}
  for i in range(8):
    key = np.round(batch["image"][i] * 255).astype(np.uint8).tobytes()
    masks = by_image[key]
    np.testing.assert_array_equal(batch["seg"][i],
                                  masks[..., batch["grader_id"][i]])


def test_same_seed_and_step_same_batch_and_resume(data_dir):
  cfg = _synthetic_config(data_dir)

  def run(**kw):
    return list(itertools.islice(ip.create_train_dataset(
        cfg, process_index=0, process_count=1, **kw), 3))

  full = run(seed=5)
  again = run(seed=5)
  resumed = run(seed=5, start_step=1)
  other = run(seed=6)
  for a, b in zip(full, again):
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
  for a, b in zip(full[1:], resumed[:2]):
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
  assert not np.array_equal(full[0]["image"], other[0]["image"])


def test_process_shares_partition_the_split(data_dir):
  builder = tfds.builder("synthetic/s32", data_dir=data_dir)
  s = ip._Settings(_synthetic_config(data_dir))
  ids = []
  for p in range(2):
    split = tfds.even_splits("train", 2)[p]
    store = ip._load_train_store(builder, split, s)
    ids.append(set(store.columns["image_id"]))
    assert len(ids[-1]) == store.size == 256
  assert not ids[0] & ids[1]
  everything = {ex["image_id"] for ex in tfds.as_numpy(
      builder.as_dataset(split="train"))}
  assert ids[0] | ids[1] == everything


def test_eval_counts_every_example_once(data_dir):
  builder = tfds.builder("synthetic/s32", data_dir=data_dir)
  everything = {ex["image_id"]: ex for ex in tfds.as_numpy(
      builder.as_dataset(split="validation"))}
  # 64 examples, 2 processes, global eval batch 10: 5 per process, 32 each
  # -> 7 batches per process, 3 padding examples each.
  cfg = _synthetic_config(data_dir, eval_batch_size=10)
  assert ip.num_eval_batches(cfg, process_count=2) == 7
  seen = []
  for p in range(2):
    batches = list(ip.create_eval_dataset(cfg, process_index=p,
                                          process_count=2))
    assert len(batches) == 7
    for b in batches:
      assert b["image"].shape == (5, 32, 32, 1)
      assert b["modes"].shape == (5, 18, 32, 32)
      assert b["mode_probs"].shape == (5, 18)
      assert b["masks"].shape == (5, 32, 32, 4)
      for i in np.flatnonzero(b["batch_mask"]):
        ref = everything[b["image_id"][i]]
        np.testing.assert_array_equal(b["modes"][i], ref["modes"])
        np.testing.assert_array_equal(b["masks"][i], ref["masks"])
        np.testing.assert_allclose(b["image"][i], ref["image"] / 255.0)
        assert any(np.array_equal(b["seg"][i], ref["masks"][..., g])
                   for g in range(4))
      pad = ~b["batch_mask"]
      assert (b["image"][pad] == 0).all() and (b["mask"][pad] == 0).all()
      seen.extend(b["image_id"][b["batch_mask"]])
    assert sum(int(b["batch_mask"].sum()) for b in batches) == 32
  assert len(seen) == len(set(seen)) == 64 and set(seen) == set(everything)
  # Evaluation labels are deterministic and do not depend on process_count.
  one = {i: seg for b in ip.create_eval_dataset(cfg, process_index=0,
                                                process_count=1)
         for i, seg, m in zip(b["image_id"], b["seg"], b["batch_mask"]) if m}
  two = {i: seg for p in range(2) for b in ip.create_eval_dataset(
      cfg, process_index=p, process_count=2)
         for i, seg, m in zip(b["image_id"], b["seg"], b["batch_mask"]) if m}
  assert one.keys() == two.keys()
  for k in one:
    np.testing.assert_array_equal(one[k], two[k])


def test_lidc_builder_dummy_data_end_to_end(tmp_path):
  """The LIDC builder's dummy crops: 180 -> 128 crop, eval = [26:154]."""
  dummy = os.path.join(dataset_builders.default_datasets_dir(), "lidc",
                       "dummy_data")
  builder = dataset_builders.build("lidc/crops", manual_dir=dummy,
                                data_dir=tmp_path)
  ref = {ex["image_id"]: ex for ex in tfds.as_numpy(
      builder.as_dataset(split="validation"))}
  cfg = _input_config("lidc")
  cfg.update(data_dir=str(tmp_path), batch_size=2, eval_batch_size=4,
             num_parallel_calls=2)
  batches = list(ip.create_eval_dataset(cfg, process_index=0,
                                        process_count=1))
  assert len(batches) == 1 and batches[0]["batch_mask"].sum() == len(ref)
  b = batches[0]
  for i in np.flatnonzero(b["batch_mask"]):
    ex = ref[b["image_id"][i]]
    np.testing.assert_allclose(b["image"][i],
                               ex["image"][26:154, 26:154] / 255.0)
    np.testing.assert_array_equal(b["masks"][i], ex["masks"][26:154, 26:154])
  train = next(ip.create_train_dataset(cfg, seed=0, process_index=0,
                                       process_count=1))
  assert train["image"].shape == (2, 128, 128, 1)
  assert set(np.unique(train["seg"])) <= {0, 1}


def test_bad_config_errors_name_the_field(data_dir):
  cfg = _synthetic_config(data_dir, image_size=(64, 64), crop_size=(64, 64))
  with pytest.raises(ValueError, match="image_size"):
    ip.create_train_dataset(cfg, seed=0, process_index=0, process_count=1)
  with pytest.raises(ValueError, match="input_config.name"):
    ip._Settings(_synthetic_config(data_dir, name="lidc_v3"))
  with pytest.raises(ValueError, match="unknown keys"):
    ip._Settings(_synthetic_config(data_dir, num_graders=4))
  cfg = _synthetic_config(data_dir, name="brats")
  with pytest.raises(ValueError, match="input_config.name"):
    ip.create_eval_dataset(cfg, process_index=0, process_count=1)
  cfg = _synthetic_config(data_dir, batch_size=9)
  with pytest.raises(ValueError, match="batch_size"):
    ip.create_train_dataset(cfg, seed=0, process_index=0, process_count=2)
  cfg = _synthetic_config(data_dir, num_classes=3)
  with pytest.raises(ValueError, match="num_classes"):
    ip.create_train_dataset(cfg, seed=0, process_index=0, process_count=1)
  cfg = _synthetic_config(data_dir, crop_size=(48, 32))
  with pytest.raises(ValueError, match="crop_size"):
    ip.create_train_dataset(cfg, seed=0, process_index=0, process_count=1)
  cfg = _synthetic_config(data_dir)
  cfg.augment.rotate = 3.0
  with pytest.raises(ValueError, match="augment"):
    ip.create_train_dataset(cfg, seed=0, process_index=0, process_count=1)
  cfg = _synthetic_config(data_dir, dataset="lidc/crops",
                          prepare_if_missing=False)
  with pytest.raises((FileNotFoundError, ValueError), match="lidc"):
    ip.create_train_dataset(cfg, seed=0, process_index=0, process_count=1)


def test_every_config_input_section_validates():
  for config_name in config_lib.config_names():
    cfg = config_lib.load_config(config_name).input
    s = ip._Settings(cfg)
    assert s.num_classes == tasks.TASKS[cfg.name].num_classes
    assert cfg.batch_size > 0 and cfg.eval_batch_size > 0
  assert _input_config("lidc").crop_size == (128, 128)


# ----------------------------------------------------------------------------
# In-memory sources through the internal functions.
# ----------------------------------------------------------------------------


def test_epoch_permutation_and_resume_across_epochs():
  rng = np.random.default_rng(0)
  arrays = _lidc_arrays(rng, 10, 8)
  arrays["image"] = np.arange(10, dtype=np.uint8)[:, None, None, None] * (
      np.ones((10, 8, 8, 1), np.uint8))
  s = _settings("lidc", (8, 8))
  store = ip._store_from_arrays(arrays, s)
  full = _batches(store, s, 10, seed=3)  # 40 examples = 4 epochs of 10
  order = np.concatenate([np.round(b["image"][:, 0, 0, 0] * 255)
                          for b in full]).astype(int)
  for e in range(4):
    assert sorted(order[10 * e:10 * e + 10]) == list(range(10))
  assert not all(np.array_equal(order[:10], order[10 * e:10 * e + 10])
                 for e in range(1, 4))
  resumed = _batches(store, s, 5, seed=3, start_step=5)  # mid-epoch start
  for a, b in zip(full[5:], resumed):
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
  # Another process: another order, the same every time.
  p1 = _batches(store, s, 3, seed=3, process_index=1)
  assert not all(np.array_equal(a["image"], b["image"])
                 for a, b in zip(full, p1))


def test_lidc_eval_centre_crop():
  rng = np.random.default_rng(1)
  arrays = _lidc_arrays(rng, 3, 180)
  s = _settings("lidc", (180, 180), (128, 128))
  specs = {n: (a.shape[1:], a.dtype) for n, a in arrays.items()}
  ds = tf.data.Dataset.from_tensor_slices(arrays)
  batches = list(ip._eval_dataset_from_examples(
      ds, s, specs, first_index=0, num_local=3, num_batches=1,
      local_batch=4).as_numpy_iterator())
  b = batches[0]
  assert list(b["batch_mask"]) == [True, True, True, False]
  np.testing.assert_allclose(b["image"][:3],
                             arrays["image"][:, 26:154, 26:154] / 255.0)
  np.testing.assert_array_equal(b["masks"][:3],
                                arrays["masks"][:, 26:154, 26:154])
  # Training with augmentation off is the same centre crop.
  store = ip._store_from_arrays(arrays, s)
  train = _batches(store, s, 1, batch=3)[0]
  crops = {(arrays["image"][i, 26:154, 26:154] / 255.0).astype(
      np.float32).tobytes() for i in range(3)}
  assert {im.tobytes() for im in train["image"]} == crops
  np.testing.assert_array_equal(train["mask"], 1.0)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_warp_keeps_alignment_and_masks_padding(interpolation):
  """An image equal to its label stays equal to it after the warp."""
  rng = np.random.default_rng(2)
  n, size, crop = 8, 40, 32
  label = _blobs(rng, n, size, size, count=4)
  arrays = {"image": (label * 255)[..., None],
            "masks": np.repeat(label[..., None], 4, -1),
            "image_id": np.array([b"%d" % i for i in range(n)])}
  s = _settings("lidc", (size, size), (crop, crop),
                image_interpolation=interpolation, **_STRONG_AUG)
  store = ip._store_from_arrays(arrays, s)
  b = _batches(store, s, 1, batch=n)[0]
  image, seg, mask = b["image"][..., 0], b["seg"], b["mask"]
  assert 0.02 < (mask == 0).mean() < 0.6  # the warp introduced padding
  assert (seg[mask == 0] == 0).all()
  assert not np.array_equal(image, label[:, 4:36, 4:36])  # it did warp
  if interpolation == "nearest":
    np.testing.assert_array_equal(image, seg.astype(np.float32))
  else:
    valid = mask == 1
    assert np.abs(image[valid] - seg[valid]).mean() < 0.1
    # Away from label edges (5x5 neighbourhood constant), equal except where
    # the strong elastic field compresses the source locally by > 2x.
    interior = valid.copy()
    for dy, dx in itertools.product(range(-2, 3), repeat=2):
      interior &= np.roll(seg, (dy, dx), axis=(1, 2)) == seg
      interior &= np.roll(mask, (dy, dx), axis=(1, 2)) == 1
    assert interior.sum() > 500
    assert (np.abs(image[interior] - seg[interior]) < 1e-5).mean() > 0.99
  # An all-ones image through the same warp is exactly the mask.
  ones = dict(arrays, image=np.full_like(arrays["image"], 255))
  store = ip._store_from_arrays(ones, s)
  b1 = _batches(store, s, 1, batch=n)[0]
  np.testing.assert_array_equal(b1["mask"], mask)
  if interpolation == "nearest":
    np.testing.assert_array_equal(b1["image"][..., 0], mask)


def test_cityscapes_flips_frequencies_and_mask():
  classes = np.array([1, 11, 13, 8, 0, 255, 5, 18], np.uint8)
  label = np.tile(np.repeat(classes, 2)[None], (4, 1))  # [4, 16]
  n = 4000
  image = np.zeros((1, 4, 16, 3), np.uint8)
  arrays = {"image": image, "label": label[None],
            "image_id": np.array([b"a"])}
  s = _settings("cityscapes_flips", (4, 16))
  store = ip._store_from_arrays(arrays, s)
  batches = _batches(store, s, n // 500, batch=500)
  seg = np.concatenate([b["seg"] for b in batches])
  mask = np.concatenate([b["mask"] for b in batches])
  np.testing.assert_array_equal(mask, np.broadcast_to(label != 255, mask.shape))
  assert (seg[:, label == 5] == 5).all() and (seg[:, label == 18] == 18).all()
  bits = []
  for cls, p, new in tasks.FLIPS:
    px = seg[:, label == cls]                          # [n, pixels]
    assert np.isin(px, (cls, new)).all()
    flipped = (px == new).all(1)
    assert (flipped | (px == cls).all(1)).all()        # whole class flips
    bits.append(flipped)
    tol = 4.5 * math.sqrt(p * (1 - p) / n)
    assert abs(flipped.mean() - p) < tol, (cls, flipped.mean(), p)
  # Independent: the joint frequency of two flips is the product.
  both = (bits[0] & bits[1]).mean()
  assert abs(both - 8 / 17 * 7 / 17) < 4.5 * math.sqrt(0.2 * 0.8 / n)


def test_snemi3d_random_ids():
  inst = np.zeros((2, 16, 16), np.int32)
  inst[0, :8, :8], inst[0, :8, 8:], inst[0, 8:, :5] = 7, 1000, 123456
  inst[0, 8:, 5:10] = 4
  for k in range(20):  # 20 instances (> 15 ids) in the second image
    inst[1, k % 4 * 4:(k % 4 + 1) * 4, k // 4 * 3:k // 4 * 3 + 3] = k + 1
  image = np.zeros((2, 16, 16, 1), np.uint8)
  image[1] = 255  # tells the two examples apart
  arrays = {"image": image, "instances": inst,
            "image_id": np.array([b"a", b"b"])}
  s = _settings("snemi3d", (16, 16))
  store = ip._store_from_arrays(arrays, s)
  mappings = set()
  for b in _batches(store, s, 20, batch=2):
    for seg, img in zip(b["seg"], b["image"]):
      src = inst[int(img[0, 0, 0] > 0.5)]
      assert ((seg == 0) == (src == 0)).all()
      ids = {i: np.unique(seg[src == i]) for i in np.unique(src) if i}
      assert all(len(v) == 1 and 1 <= v[0] <= 15 for v in ids.values())
      values = [int(v[0]) for v in ids.values()]
      if len(values) <= 15:
        assert len(set(values)) == len(values)  # distinct ids
        mappings.add(tuple(values))
      else:
        assert set(values) == set(range(1, 16))  # even reuse
  assert len(mappings) > 5  # a fresh mapping each time


@pytest.mark.parametrize("group", ["mask", "keep"])
def test_cityscapes_cars_ids_and_mask(group):
  label = np.full((8, 16), 0, np.uint8)
  label[:, 8:] = 13
  label[0] = 255
  inst = np.zeros((8, 16), np.int32)
  inst[1:4, 8:11], inst[1:4, 11:14], inst[4:8, 8:12] = 26001, 26002, 26005
  # label 13 without instance: [4:8, 12:16] and [1:4, 14:16] = group pixels.
  rng = np.random.default_rng(3)
  arrays = {"image": rng.integers(0, 256, (1, 8, 16, 3), dtype=np.uint8),
            "label": label[None], "car_instances": inst[None],
            "image_id": np.array([b"a"])}
  s = _settings("cityscapes_cars", (8, 16), brightness=0.2, contrast=0.2,
                saturation=0.2, gamma_range=(0.7, 1.5), gamma_prob=0.5)
  s.car_group_pixels = group
  store = ip._store_from_arrays(arrays, s)
  batch = _batches(store, s, 1, batch=16)[0]
  group_px = (label == 13) & (inst == 0)
  for seg, mask, image in zip(batch["seg"], batch["mask"], batch["image"]):
    assert (mask[0] == 0).all() and (seg[0] == 0).all()
    assert (seg[1:, :8] == 0).all() and (mask[1:, :8] == 1).all()
    car_ids = [np.unique(seg[inst == k]) for k in (26001, 26002, 26005)]
    assert all(len(c) == 1 and 19 <= c[0] <= 23 for c in car_ids)
    assert len({int(c[0]) for c in car_ids}) == 3
    if group == "mask":
      assert (mask[group_px] == 0).all() and (seg[group_px] == 0).all()
    else:
      assert (mask[group_px] == 1).all() and (seg[group_px] == 13).all()
    assert 0 <= image.min() and image.max() <= 1
  # Colour augmentation changed the images, not the geometry.
  assert not np.allclose(batch["image"][0], arrays["image"][0] / 255.0)
  assert len({b.tobytes() for b in batch["image"]}) > 1


def test_bad_label_values_raise_naming_the_feature():
  label = np.full((1, 4, 8), 40, np.uint8)
  arrays = {"image": np.zeros((1, 4, 8, 3), np.uint8), "label": label,
            "image_id": np.array([b"a"])}
  s = _settings("cityscapes_flips", (4, 8))
  store = ip._store_from_arrays(arrays, s)
  with pytest.raises(tf.errors.InvalidArgumentError, match="`label`"):
    _batches(store, s, 1, batch=1)
  arrays = _lidc_arrays(np.random.default_rng(4), 1, 8)
  arrays["masks"][0, 0, 0, 0] = 255
  s = _settings("lidc", (8, 8))
  store = ip._store_from_arrays(arrays, s)
  with pytest.raises(tf.errors.InvalidArgumentError, match="`masks`"):
    _batches(store, s, 1, batch=1)
  with pytest.raises(ValueError, match="image_size"):
    ip._store_from_arrays(arrays, _settings("lidc", (16, 16)))
