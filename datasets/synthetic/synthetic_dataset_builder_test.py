# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Tests of the synthetic dataset: exact mode distribution, graders, builder."""

import os

import numpy as np
from scipy import ndimage
import tensorflow_datasets as tfds

from hpunet import dataset_builders

synthetic = dataset_builders.load_builder_module("synthetic")

# Chi-square critical values at p = 0.001.
_CHI2_CRIT = {17: 40.79}


def _mode_index(modes, mask):
  """Index of the mode equal to `mask` (exactly one must match)."""
  hits = np.flatnonzero((modes == mask[None]).all(axis=(1, 2)))
  assert len(hits) == 1, f"grader mask matches {len(hits)} modes"
  return int(hits[0])


def test_mode_probabilities_exact():
  probs = synthetic.mode_probabilities([0, 2])
  assert probs.shape == (18,)
  np.testing.assert_allclose(probs.sum(), 1.0, rtol=0, atol=1e-15)
  # g = 1, blob 1 (p = 0.2) thin, blob 2 (p = 0.8) thick.
  np.testing.assert_allclose(probs[9 + 3 * 1 + 2], 0.5 * 0.2 * 0.6 * 0.8 * 0.4)
  # Nothing ambiguous annotated.
  np.testing.assert_allclose(probs[0], 0.5 * 0.8 * 0.2)


def test_example_structure_and_determinism():
  size = 32
  ex = synthetic.generate_example(size, synthetic.split_seed(0, "train", 7))
  again = synthetic.generate_example(size, synthetic.split_seed(0, "train", 7))
  other = synthetic.generate_example(size, synthetic.split_seed(0, "test", 7))
  for key in ("image", "masks", "modes", "mode_probs"):
    np.testing.assert_array_equal(ex[key], again[key])
  assert not np.array_equal(ex["image"], other["image"])
  assert ex["image"].shape == (size, size, 1) and ex["image"].dtype == np.uint8
  assert ex["masks"].shape == (size, size, 4) and ex["masks"].dtype == np.uint8
  assert ex["modes"].shape == (18, size, size)
  assert ex["mode_probs"].dtype == np.float32
  assert np.isclose(ex["mode_probs"].sum(dtype=np.float64), 1.0, atol=1e-6)
  np.testing.assert_allclose(ex["mode_probs"],
                             synthetic.mode_probabilities(ex["levels"]),
                             rtol=1e-6)
  assert set(np.unique(ex["modes"])) <= {0, 1}
  # All 18 modes are distinct masks; the factor structure is nested:
  # thick contains thin contains nothing, spots add pixels.
  flat = ex["modes"].reshape(18, -1)
  assert len({m.tobytes() for m in flat}) == 18
  sums = flat.sum(1).reshape(2, 3, 3)
  assert (sums[1] > sums[0]).all()
  assert (sums[:, 2] > sums[:, 1]).all() and (sums[:, 1] > sums[:, 0]).all()
  assert (sums[:, :, 2] > sums[:, :, 1]).all()
  assert (ex["modes"][17] >= ex["modes"]).all()  # everything annotated
  for j in range(4):
    assert _mode_index(ex["modes"], ex["masks"][..., j]) == (
        ex["grader_modes"][j])


def test_grader_frequencies_match_mode_probabilities():
  """Chi-square of grader draws (matched to modes) against the exact probs."""
  observed = np.zeros(18)
  expected = np.zeros(18)
  for i in range(500):
    ex = synthetic.generate_example(32, synthetic.split_seed(1, "train", i))
    expected += 4 * ex["mode_probs"].astype(np.float64)
    for j in range(4):
      observed[_mode_index(ex["modes"], ex["masks"][..., j])] += 1
  assert observed.sum() == 2000
  chi2 = ((observed - expected) ** 2 / expected).sum()
  assert chi2 < _CHI2_CRIT[17], (chi2, observed, expected)
  # The marginals of the three factor kinds, with a 4.5 sigma tolerance.
  obs = observed.reshape(2, 3, 3)
  exp = expected.reshape(2, 3, 3)
  for o, e in ((obs.sum((1, 2)), exp.sum((1, 2))),
               (obs.sum((0, 2)), exp.sum((0, 2))),
               (obs.sum((0, 1)), exp.sum((0, 1)))):
    p = e / 2000
    np.testing.assert_array_less(np.abs(o - e),
                                 4.5 * np.sqrt(2000 * p * (1 - p)))


def test_blob_brightness_encodes_annotation_probability():
  """The image shows the level of each ambiguous blob (learnable task)."""
  for i in range(20):
    ex = synthetic.generate_example(64, synthetic.split_seed(2, "train", i))
    image = ex["image"][..., 0] / 255.0
    certain = ex["modes"][0].astype(bool)  # g = 0, nothing ambiguous
    for k, level in enumerate(ex["levels"]):
      # Mode with only blob k (thin) annotated beside the certain blob.
      idx = 3 * 1 if k == 0 else 1
      blob = ex["modes"][idx].astype(bool) & ~certain
      mean = image[blob].mean()
      nearest = np.argmin(np.abs(np.array(synthetic.LEVEL_INTENSITY) - mean))
      assert nearest == level, (i, k, mean, level)


class SyntheticBuilderTest(tfds.testing.DatasetBuilderTestCase):
  """TFDS builder checks for the tiny config (generated, no dummy data)."""
  DATASET_CLASS = synthetic.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ["s32"]
  SPLITS = {"train": 512, "validation": 64, "test": 64}
  EXAMPLE_DIR = os.path.dirname(synthetic.__file__)  # nothing is downloaded
  SKIP_CHECKSUMS = True


def test_builder_examples_match_generator(tmp_path):
  builder = dataset_builders.build("synthetic/s32", data_dir=tmp_path)
  ds = builder.as_dataset(split="validation")
  seen = 0
  for ex in tfds.as_numpy(ds.take(5)):
    index = int(ex["image_id"].decode().split("_")[1])
    ref = synthetic.generate_example(
        32, synthetic.split_seed(0, "validation", index))
    for key in ("image", "masks", "modes", "mode_probs"):
      np.testing.assert_array_equal(ex[key], ref[key])
    seen += 1
  assert seen == 5


def test_factor_regions_and_variance_ratio_separate_the_factors():
  """metrics.synthetic_factor_regions follows this builder's mode encoding:
  varying one factor only moves that factor's variance ratio."""
  from hpunet import metrics  # pylint: disable=g-import-not-at-top
  ex = synthetic.generate_example(64, synthetic.split_seed(0, "test", 3))
  modes = ex["modes"] > 0
  probs = ex["mode_probs"].astype(np.float64)
  regions = metrics.synthetic_factor_regions(modes)
  assert set(regions) == set(metrics.SYNTHETIC_FACTORS)
  for name, r in regions.items():
    assert r.any(), name
  assert not (regions["spots"] & regions["rings"]).any()
  assert not (regions["blobs"] & regions["rings"]).any()
  p_true = np.einsum("m,mhw->hw", probs, modes)
  # Spot pixels are foreground with P(g = 1) = 1/2 exactly (unless a blob
  # covers them).
  only_spots = regions["spots"] & ~regions["blobs"]
  np.testing.assert_allclose(p_true[only_spots], 0.5, atol=1e-6)

  rng = np.random.default_rng(0)
  n = 4000
  # Samples from the true distribution: every ratio is 1 up to noise.
  full = modes[rng.choice(18, size=n, p=probs / probs.sum())]
  for name, r in regions.items():
    assert abs(metrics.variance_ratio(full, p_true, r) - 1.0) < 0.1, name
  # Only g varies (blobs fixed thin, present): only the spots move.
  g = rng.integers(0, 2, size=n)
  only_g = modes[9 * g + 3 * 1 + 1]
  ratios = {k: metrics.variance_ratio(only_g, p_true, r)
            for k, r in regions.items()}
  assert ratios["spots"] > 0.9 and ratios["blobs"] == 0 and ratios["rings"] == 0
  # Only the outlines vary (thin/thick): only the rings move.
  s1, s2 = rng.integers(1, 3, size=(2, n))
  only_rings = modes[3 * s1 + s2]
  ratios = {k: metrics.variance_ratio(only_rings, p_true, r)
            for k, r in regions.items()}
  assert ratios["rings"] > 0.5 and ratios["spots"] == 0 and ratios["blobs"] == 0


def test_visible_spots_change_only_the_image_at_the_spots():
  configs = {c.name: c for c in synthetic.Builder.BUILDER_CONFIGS}
  assert configs["s128"].spot_contrast == 0.10
  assert configs["s128_visible"].spot_contrast == 0.30
  assert configs["s128_visible"].size == configs["s128"].size == 128
  seed = synthetic.split_seed(0, "test", 5)
  faint = synthetic.generate_example(128, seed)
  bright = synthetic.generate_example(128, seed, spot_contrast=0.30)
  for key in ("masks", "modes", "mode_probs", "grader_modes"):
    np.testing.assert_array_equal(faint[key], bright[key])
  spots = (faint["modes"][9] > 0) & (faint["modes"][0] == 0)  # g = 1 only
  diff = bright["image"][..., 0].astype(int) - faint["image"][..., 0]
  # +0.20 brighter (51 grey levels) inside the spots, up to blur and clipping;
  # nothing changes away from them (the blur reaches about 2 px).
  assert np.median(diff[spots]) >= 40
  far = ~_dilate(spots, 3)
  assert np.abs(diff[far]).max() <= 1


def _dilate(mask, radius):
  return ndimage.binary_dilation(mask, iterations=radius)
