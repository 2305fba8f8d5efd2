# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Tests for hpunet.metrics: hand-computed cases for every metric."""

import itertools

import numpy as np
import pytest

from hpunet import metrics


def _m(*rows):
  return np.array(rows, bool)


# ---------------------------------------------------------------------------
# IoU.
# ---------------------------------------------------------------------------


def test_iou_hand_cases_and_empty_conventions():
  a = _m([1, 1], [0, 0])
  b = _m([1, 0], [1, 0])
  empty = _m([0, 0], [0, 0])
  assert metrics.iou(a, b) == pytest.approx(1 / 3)
  assert metrics.iou(a, a) == 1.0
  assert metrics.iou(empty, empty) == 1.0  # correct absence
  assert metrics.iou(a, empty) == 0.0
  assert metrics.iou(empty, b) == 0.0
  # Broadcasting over a leading axis.
  np.testing.assert_allclose(metrics.iou(np.stack([a, b, empty]), a),
                             [1.0, 1 / 3, 0.0])


def test_pairwise_iou_matches_loops():
  rng = np.random.default_rng(0)
  x = rng.random((5, 6, 7)) < 0.3
  y = rng.random((3, 6, 7)) < 0.3
  x[0] = False
  y[1] = False
  expected = np.array([[metrics.iou(xi, yj) for yj in y] for xi in x])
  np.testing.assert_allclose(metrics.pairwise_iou(x, y), expected)
  assert metrics.pairwise_iou(x, y)[0, 1] == 1.0  # empty vs empty
  # Batched over images.
  batched = metrics.pairwise_iou(np.stack([x, x]), np.stack([y, y]))
  np.testing.assert_allclose(batched, np.stack([expected, expected]))


def test_multiclass_iou_nan_for_correct_absence_and_ignore():
  pred = np.array([[1, 1], [2, 0]])
  gt = np.array([[1, 0], [0, 0]])
  per_class = metrics.multiclass_iou(pred, gt, class_ids=(1, 2, 3))
  np.testing.assert_allclose(per_class, [0.5, 0.0, np.nan])
  assert metrics.mean_multiclass_iou(pred, gt, class_ids=(1, 2, 3)) == 0.25
  ignore = np.array([[False, False], [True, False]])  # hides the class-2 FP
  assert metrics.mean_multiclass_iou(
      pred, gt, class_ids=(1, 2, 3), ignore_mask=ignore) == 0.5
  assert np.isnan(metrics.mean_multiclass_iou(pred, gt, class_ids=(7,)))


def test_pairwise_multiclass_iou_matches_loops():
  rng = np.random.default_rng(1)
  x = rng.integers(0, 5, (4, 6, 8))
  y = rng.integers(0, 5, (3, 6, 8))
  ignore = rng.random((6, 8)) < 0.2
  cls = (1, 2, 4, 9)
  expected = np.array([[
      metrics.mean_multiclass_iou(xi, yj, class_ids=cls, ignore_mask=ignore)
      for yj in y] for xi in x])
  got = metrics.pairwise_multiclass_iou(x, y, class_ids=cls,
                                        ignore_mask=ignore)
  np.testing.assert_allclose(got, expected)
  zeros = np.zeros((2, 3, 3), int)
  assert np.isnan(metrics.pairwise_multiclass_iou(zeros, zeros,
                                                  class_ids=(5,))).all()


# ---------------------------------------------------------------------------
# GED.
# ---------------------------------------------------------------------------

# 1x2-pixel hand example: S1=[1,0], S2=[1,1]; Y1=[1,0], Y2=[0,0].
_S = np.array([[[1, 0]], [[1, 1]]], bool)
_Y = np.array([[[1, 0]], [[0, 0]]], bool)
# d_sy = [[0, 1], [.5, 1]], d_ss = [[0, .5], [.5, 0]], d_yy = [[0, 1], [1, 0]].


def test_ged_two_by_two_hand_example():
  # V: 2 * 0.625 - 0.25 - 0.5.
  assert metrics.ged(_S, _Y) == pytest.approx(0.5)
  # U: off-diagonal means: 1.25 - 0.5 - 1.0.
  assert metrics.ged(_S, _Y, unbiased=True) == pytest.approx(-0.25)
  # Weighted (eq. 7): 2*mean_i sum_k w_k d_ik = .875; yy = 2*.75*.25 = .375.
  assert metrics.ged(_S, _Y, weights=[0.75, 0.25]) == pytest.approx(0.25)
  # Weighted + unbiased: exact yy term kept, ss off-diagonal: .875-.5-.375.
  assert metrics.ged(_S, _Y, [0.75, 0.25], unbiased=True) == pytest.approx(0)


def test_ged_matches_reference_snippet_and_batches():
  rng = np.random.default_rng(2)
  s = rng.random((3, 16, 8, 8)) < 0.4
  y = rng.random((3, 4, 8, 8)) < 0.4
  y[0, :2] = False
  got = metrics.ged(s, y)
  for b in range(3):
    d_sy = 1 - metrics.pairwise_iou(s[b], y[b])
    d_ss = 1 - metrics.pairwise_iou(s[b], s[b])
    d_yy = 1 - metrics.pairwise_iou(y[b], y[b])
    w = np.full(4, 0.25)
    ref = 2 * (d_sy.mean(0) @ w) - d_ss.mean() - w @ d_yy @ w  # B2 snippet.
    assert got[b] == pytest.approx(ref)


def test_ged_zero_for_identical_distributions_weighted():
  a = _m([1, 1, 0], [0, 0, 0])
  b = _m([0, 1, 1], [0, 1, 1])
  samples = np.stack([a, a, a, b])  # empirical frequencies .75 / .25
  assert metrics.ged(samples, np.stack([a, b]),
                     weights=[0.75, 0.25]) == pytest.approx(0.0, abs=1e-12)
  with pytest.raises(ValueError, match="sum to 1"):
    metrics.ged(samples, np.stack([a, b]), weights=[0.5, 0.6])


def test_ged_multiclass_flip_form():
  label = np.array([[1, 1, 11], [13, 8, 0], [255, 0, 2]])
  ignore = label == 255
  modes, probs = metrics.cityscapes_flip_modes(label)
  # Identical distribution of two modes with weights 1/2 each.
  pick = modes[[0, 31]]
  assert metrics.ged_multiclass(
      pick, pick, [0.5, 0.5], ignore_mask=ignore) == pytest.approx(0.0)
  # Against an explicit loop over pairs.
  samples = modes[[0, 5, 5, 30]].astype(np.int32)
  samples[1, 0, 0] = 255  # ignored pixel: must not matter.
  samples[2, 2, 2] = 23  # class present only in a sample.
  cls = metrics.FLIP_CLASS_IDS

  def d(a, b):
    return 1 - metrics.mean_multiclass_iou(a, b, class_ids=cls,
                                           ignore_mask=ignore)

  d_sy = np.array([[d(s, y) for y in modes] for s in samples])
  d_ss = np.array([[d(s, t) for t in samples] for s in samples])
  d_yy = np.array([[d(y, z) for z in modes] for y in modes])
  ref = 2 * (d_sy.mean(0) @ probs) - d_ss.mean() - probs @ d_yy @ probs
  got = metrics.ged_multiclass(samples, modes, probs, ignore_mask=ignore)
  assert got == pytest.approx(ref)
  # Batched form.
  got_b = metrics.ged_multiclass(samples[None], modes[None], probs[None],
                                 ignore_mask=ignore[None])
  np.testing.assert_allclose(got_b, [ref])


def test_ged_of_one_sample_is_the_cross_term_alone():
  """n = 1: no sample diversity (d(S_1, S_1) = 0); by hand on 2x2 masks."""
  s1 = _m([1, 0], [0, 0])
  y1 = _m([1, 1], [0, 0])  # IoU(s1, y1) = 1/2
  y2 = _m([0, 0], [0, 0])  # empty: d(s1, y2) = 1, d(y1, y2) = 1
  d = metrics.ged_distances(s1[None], np.stack([y1, y2]))
  got = metrics.ged_at_sample_counts(*d, [1])[1]
  # 2 * mean(0.5, 1) - mean(0, 1, 1, 0) = 1.5 - 0.5.
  assert got == pytest.approx(1.0)
  assert got == pytest.approx(metrics.ged(s1[None], np.stack([y1, y2])))
  # Weighted (known modes): 2 * (0.25 * 0.5 + 0.75 * 1) - 2 * 0.25 * 0.75.
  got_w = metrics.ged_at_sample_counts(*d, [1], weights=[0.25, 0.75])[1]
  assert got_w == pytest.approx(1.75 - 0.375)


def test_ged_at_n_uses_exactly_the_first_n_samples():
  rng = np.random.RandomState(4)
  samples = rng.rand(2, 16, 6, 6) > 0.5  # [B, S, H, W]
  graders = rng.rand(2, 4, 6, 6) > 0.5
  curve = metrics.ged_at_sample_counts(
      *metrics.ged_distances(samples, graders), (1, 4, 8, 16))
  for n in (1, 4, 8, 16):
    np.testing.assert_allclose(curve[n], metrics.ged(samples[:, :n], graders),
                               atol=1e-12)
  # Samples after the first n do not change GED^2 at n.
  changed = samples.copy()
  changed[:, 4:] = ~changed[:, 4:]
  again = metrics.ged_at_sample_counts(
      *metrics.ged_distances(changed, graders), (1, 4, 8))
  np.testing.assert_allclose(again[4], curve[4], atol=1e-12)
  np.testing.assert_allclose(again[1], curve[1], atol=1e-12)
  assert not np.allclose(again[8], curve[8])
  with pytest.raises(ValueError, match="sample count 17 not in 1..16"):
    metrics.ged_at_sample_counts(*metrics.ged_distances(samples, graders),
                                 (17,))
  # The batch metrics: GED, Hungarian IoU and known-mode GED of the first
  # num_samples; `_n<n>` of the first n.
  modes = rng.rand(2, 3, 6, 6) > 0.5
  probs = np.array([[0.5, 0.25, 0.25]] * 2)
  out = metrics.binary_batch_metrics(samples, None, graders, modes, probs,
                                     num_samples=8, ged_sample_counts=(1, 4))
  assert "rec_iou" not in out  # no reconstructions: no IoU_rec
  np.testing.assert_allclose(out["ged"], curve[8], atol=1e-12)
  np.testing.assert_allclose(out["ged_n1"], curve[1], atol=1e-12)
  np.testing.assert_allclose(out["ged_n4"], curve[4], atol=1e-12)
  np.testing.assert_allclose(out["hm_iou"], metrics.hungarian_iou(
      samples[:, :8], graders))
  np.testing.assert_allclose(out["ged_modes_n4"], metrics.ged(
      samples[:, :4], modes, probs), atol=1e-12)
  # Label maps (Cityscapes flips): the same prefixes.
  label = np.array([[1, 1, 11], [13, 8, 0], [255, 0, 2]])
  flip_modes, flip_probs = metrics.cityscapes_flip_modes(label)
  picks = flip_modes[[0, 5, 31, 7, 9]]
  multi = metrics.ged_at_sample_counts(
      *metrics.ged_multiclass_distances(picks, flip_modes), (2, 5),
      flip_probs)
  assert multi[2] == pytest.approx(
      metrics.ged_multiclass(picks[:2], flip_modes, flip_probs))
  assert multi[5] == pytest.approx(
      metrics.ged_multiclass(picks, flip_modes, flip_probs))


# ---------------------------------------------------------------------------
# Hungarian-matched IoU.
# ---------------------------------------------------------------------------


def _brute_force_hm(mat):
  n, m = mat.shape
  size = np.lcm(n, m)
  big = np.tile(mat, (size // n, size // m))
  return max(big[np.arange(size), list(p)].mean()
             for p in itertools.permutations(range(size)))


def test_hungarian_lcm_duplication_three_samples_two_graders():
  mat = np.array([[1.0, 0.0], [0.5, 0.25], [0.0, 1.0]])
  # Each sample used twice, each grader thrice: s1->Y1 x2, s3->Y2 x2,
  # s2 -> Y1 and Y2: (2 + 2 + 0.75) / 6.
  assert metrics.hungarian_iou_from_matrix(mat) == pytest.approx(4.75 / 6)
  assert _brute_force_hm(mat) == pytest.approx(4.75 / 6)
  rng = np.random.default_rng(3)
  for shape in [(2, 3), (4, 2), (3, 3)]:
    mat = rng.random(shape)
    assert metrics.hungarian_iou_from_matrix(mat) == pytest.approx(
        _brute_force_hm(mat))


def test_hungarian_iou_on_masks_and_order_invariance():
  a = _m([1, 1], [0, 0])
  b = _m([0, 0], [1, 1])
  empty = np.zeros((2, 2), bool)
  # 3 samples {a, b, empty} vs 2 graders {a, empty}: IoU matrix
  # [[1, 0], [0, 0], [0, 1]] -> (2 + 2 + 0) / 6.
  s = np.stack([a, b, empty])
  y = np.stack([a, empty])
  assert metrics.hungarian_iou(s, y) == pytest.approx(4 / 6)
  rng = np.random.default_rng(4)
  s = rng.random((2, 16, 10, 10)) < 0.3
  y = rng.random((2, 4, 10, 10)) < 0.3
  ref = metrics.hungarian_iou(s, y)
  perm = rng.permutation(16)
  np.testing.assert_allclose(metrics.hungarian_iou(s[:, perm], y), ref)
  np.testing.assert_allclose(metrics.hungarian_iou(s, y[:, ::-1]), ref)
  assert metrics.hungarian_iou(y[0], y[0]) == pytest.approx(1.0)


# ---------------------------------------------------------------------------
# Reconstruction IoU.
# ---------------------------------------------------------------------------


def test_reconstruction_iou():
  a = _m([1, 1], [0, 0])
  empty = np.zeros((2, 2), bool)
  graders = np.stack([a, a, empty, empty])
  recons = np.stack([a, _m([1, 0], [0, 0]), empty, a])
  # IoUs 1, 1/2, 1 (both empty), 0.
  assert metrics.lidc_reconstruction_iou(recons, graders) == pytest.approx(
      2.5 / 4)
  np.testing.assert_allclose(
      metrics.lidc_reconstruction_iou(recons[None], graders[None]), [0.625])
  # Label maps: instance ids 1..3; class 3 absent in both -> dropped.
  gt = np.array([[1, 1, 0], [2, 2, 255]])
  rec = np.array([[1, 2, 0], [2, 2, 3]])
  ig = gt == 255
  # class 1: 1/2; class 2: 2/3; class 3 only on an ignored pixel: NaN.
  assert metrics.reconstruction_iou(rec, gt, class_ids=(1, 2, 3),
                                    ignore_mask=ig) == pytest.approx(7 / 12)


# ---------------------------------------------------------------------------
# Adapted Rand error.
# ---------------------------------------------------------------------------


def test_adapted_rand_error_hand_cases():
  gt = np.array([[1, 1], [2, 2]])
  merged = np.ones((2, 2), int)
  # sum n^2 = 8, sum a^2 = 8, sum b^2 = 16: P = .5, R = 1, ARE = 1/3.
  scores = metrics.adapted_rand_error(merged, gt, return_scores=True)
  np.testing.assert_allclose(scores, [1 / 3, 0.5, 1.0])
  # Self-pairs subtracted: 4 / (4, 12): F = 8 / 16.
  assert metrics.adapted_rand_error(
      merged, gt, subtract_self_pairs=True) == pytest.approx(0.5)
  assert metrics.adapted_rand_error(gt * 7, gt) == pytest.approx(0.0)
  # Predicted background inside one GT segment of 4 pixels.
  one = np.ones((2, 2), int)
  zero = np.zeros((2, 2), int)
  # singleton: sum n^2 = 4, sum b^2 = 4, sum a^2 = 16 -> F = 8/20.
  assert metrics.adapted_rand_error(zero, one) == pytest.approx(0.6)
  assert metrics.adapted_rand_error(
      zero, one, pred_background="segment") == pytest.approx(0.0)
  # GT background is excluded whatever is predicted there.
  gt_bg = np.array([[1, 1, 0], [2, 2, 0]])
  pred_bg = np.array([[1, 1, 5], [2, 2, 1]])
  assert metrics.adapted_rand_error(pred_bg, gt_bg) == pytest.approx(0.0)
  assert np.isnan(metrics.adapted_rand_error(one, zero))
  np.testing.assert_allclose(
      metrics.adapted_rand_error(np.stack([merged, gt]), np.stack([gt, gt])),
      [1 / 3, 0.0])
  with pytest.raises(ValueError, match="pred_background"):
    metrics.adapted_rand_error(one, one, pred_background="ignore")


def test_adapted_rand_error_agrees_with_skimage():
  skm = pytest.importorskip("skimage.metrics")
  rng = np.random.default_rng(5)
  for _ in range(5):
    gt = rng.integers(0, 6, (20, 24))
    pred = rng.integers(0, 5, (20, 24))
    pred[:10] = gt[:10]  # partly agreeing segmentations
    are, sk_prec, sk_rec = skm.adapted_rand_error(gt, pred)
    ours = metrics.adapted_rand_error(pred, gt, pred_background="segment",
                                      subtract_self_pairs=True,
                                      return_scores=True)
    assert ours.error == pytest.approx(are)
    # scikit-image swaps the names of precision and recall.
    assert ours.precision == pytest.approx(sk_rec)
    assert ours.recall == pytest.approx(sk_prec)
    # No predicted 0 inside the GT foreground: singleton == segment.
    pred_nz = np.where(pred == 0, 9, pred)
    are_nz, _, _ = skm.adapted_rand_error(gt, pred_nz)
    assert metrics.adapted_rand_error(
        pred_nz, gt, subtract_self_pairs=True) == pytest.approx(are_nz)


# ---------------------------------------------------------------------------
# Mode analysis.
# ---------------------------------------------------------------------------


def test_cityscapes_flip_modes():
  label = np.array([[1, 11, 13], [8, 0, 255]])
  modes, probs = metrics.cityscapes_flip_modes(label)
  assert modes.shape == (32, 2, 3)
  assert probs.sum() == pytest.approx(1.0)
  assert probs[0] == pytest.approx(9 * 10 * 11 * 12 * 13 / 17**5)  # 10.9%
  assert probs[31] == pytest.approx(8 * 7 * 6 * 5 * 4 / 17**5)  # 0.47%
  np.testing.assert_array_equal(modes[0], label)
  np.testing.assert_array_equal(modes[31], [[19, 20, 21], [22, 23, 255]])
  # Bit order: 16 = sidewalk only (most significant), 1 = road only.
  np.testing.assert_array_equal(modes[16], [[19, 11, 13], [8, 0, 255]])
  np.testing.assert_array_equal(modes[1], [[1, 11, 13], [8, 23, 255]])
  assert probs[16] == pytest.approx(probs[0] * (8 / 9))


def test_assign_modes_and_frequencies():
  label = np.array([[1, 11, 13], [8, 0, 255]])
  modes, probs = metrics.cityscapes_flip_modes(label)
  samples = modes[[3, 3, 17, 31]].astype(np.int32)
  samples[0, 0, 0] = 2  # one wrong pixel: still closest to mode 3.
  samples[1, 1, 2] = 19  # ignored pixel
  ignore = label == 255
  got = metrics.assign_modes(samples, modes, class_ids=metrics.FLIP_CLASS_IDS,
                             ignore_mask=ignore)
  np.testing.assert_array_equal(got, [3, 3, 17, 31])
  batched = metrics.assign_modes(samples[None], modes[None],
                                 class_ids=metrics.FLIP_CLASS_IDS,
                                 ignore_mask=ignore[None])
  np.testing.assert_array_equal(batched, [[3, 3, 17, 31]])
  # Binary modes (synthetic task).
  a = _m([1, 1], [0, 0])
  b = _m([0, 0], [1, 1])
  empty = np.zeros((2, 2), bool)
  np.testing.assert_array_equal(
      metrics.assign_modes(np.stack([b, empty, _m([1, 0], [0, 0])]),
                           np.stack([a, b, empty])), [1, 2, 0])
  freq = metrics.mode_frequencies(np.array([0, 0, 1, -1]), [0.5, 0.25, 0.25])
  np.testing.assert_allclose(freq.predicted, [2 / 3, 1 / 3, 0])
  assert freq.total_variation == pytest.approx(0.5 * (1 / 6 + 1 / 12 + .25))
  assert freq.num_assigned == 3


def test_flip_pixel_counts():
  label = np.array([[1, 1, 0], [0, 255, 11]])
  samples = np.array([
      [[19, 1, 23], [23, 19, 20]],
      [[19, 19, 0], [2, 1, 11]],
  ])
  c = metrics.flip_pixel_counts(samples, label)
  # sidewalk (1): 4 pixel-samples, 1 as 1, 3 as 19; road (0): 4, 1 as 0,
  # 2 as 23; person (11): 2, 1 and 1; car, vegetation: none.
  np.testing.assert_array_equal(c.gt, [4, 2, 0, 0, 4])
  np.testing.assert_array_equal(c.as_source, [1, 1, 0, 0, 1])
  np.testing.assert_array_equal(c.as_target, [3, 1, 0, 0, 2])
  total = c + c
  np.testing.assert_allclose(total.target_frequency,
                             [0.75, 0.5, np.nan, np.nan, 0.5])
  np.testing.assert_allclose(total.source_frequency[0], 0.25)


# ---------------------------------------------------------------------------
# Ambiguity detection.
# ---------------------------------------------------------------------------


def test_ambiguity_detection():
  lesion = _m([1, 0], [0, 0])
  empty = np.zeros((2, 2), bool)
  graders = np.stack([np.stack([lesion] * 4),
                      np.stack([lesion, empty, empty, lesion])])
  np.testing.assert_array_equal(metrics.is_ambiguous(graders), [False, True])
  samples = np.zeros((16, 2, 2), bool)
  samples[:5, 0, 0] = True
  assert metrics.lesion_presence_counts(samples) == 5
  assert metrics.lesion_presence_counts(samples, min_pixels=2) == 0
  val_counts = np.array([16, 15, 16, 3, 8, 12, 16])
  val_amb = np.array([False, False, False, True, True, True, False])
  t, acc = metrics.fit_ambiguity_threshold(val_counts, val_amb, 16)
  assert (t, acc) == (13, 1.0)  # smallest t separating 12 from 15.
  res = metrics.ambiguity_detection(val_counts, val_amb, np.array([16, 12]),
                                    np.array([False, False]))
  assert res == (13, 1.0, 0.5)


# ---------------------------------------------------------------------------
# Bootstrap.
# ---------------------------------------------------------------------------


def test_bootstrap_sane_and_seeded():
  values = np.random.default_rng(6).normal(0.3, 0.1, size=400)
  r1 = metrics.bootstrap(values, num_resamples=1000, seed=0)
  assert r1 == metrics.bootstrap(values, num_resamples=1000, seed=0)
  assert r1.std != metrics.bootstrap(values, num_resamples=1000, seed=1).std
  assert r1.mean == pytest.approx(values.mean())
  expected_std = values.std() / np.sqrt(values.size)
  assert r1.std == pytest.approx(expected_std, rel=0.15)
  with_nan = np.concatenate([values, [np.nan]])
  assert metrics.bootstrap(with_nan, seed=0) == r1  # NaN image dropped
  assert metrics.bootstrap(np.full(10, 0.5), seed=0) == (0.5, 0.0, 10)


def test_bootstrap_over_seeds():
  rng = np.random.default_rng(7)
  seeds = [rng.normal(mu, 0.1, 300) for mu in (0.2, 0.3)]
  r = metrics.bootstrap_over_seeds(seeds, num_resamples=500, seed=0)
  assert r.mean == pytest.approx(np.mean([s.mean() for s in seeds]))
  assert r.num_images == 600
  # Pooled replicates: std dominated by the 0.1 gap between seed means.
  assert r.std == pytest.approx(0.05, rel=0.15)
  assert r == metrics.bootstrap_over_seeds(seeds, num_resamples=500, seed=0)


def test_variance_ratio_hand_case():
  # 2 samples [1, 0] -> p_hat 1/2, unbiased variance 1/2; truth 1/4 -> 2.
  samples = np.zeros((2, 2, 2), bool)
  samples[0, 0, 0] = True
  p_true = np.full((2, 2), 0.5)
  region = np.zeros((2, 2), bool)
  region[0, :] = True
  # Region = row 0. Sampled: 1/2 at (0, 0), 0 at (0, 1); truth 1/4 + 1/4.
  assert metrics.variance_ratio(samples, p_true, region) == pytest.approx(1.0)
  single = region & (np.arange(2)[None, :] == 0)
  assert metrics.variance_ratio(samples, p_true, single) == pytest.approx(2.0)
  assert np.isnan(metrics.variance_ratio(samples, np.zeros((2, 2)), region))
  batched = metrics.variance_ratio(np.stack([samples, ~samples]),
                                   np.stack([p_true, p_true]),
                                   np.stack([region, region]))
  np.testing.assert_allclose(batched, [1.0, 1.0])
  with pytest.raises(ValueError, match="at least 2 samples"):
    metrics.variance_ratio(samples[:1], p_true, region)
  with pytest.raises(ValueError, match="18 modes"):
    metrics.synthetic_factor_regions(np.zeros((17, 4, 4), bool))


def test_region_recall_hand_case():
  gt = np.zeros((2, 2, 3), bool)  # [G, H, W]
  gt[0, 0, :] = True  # grader 0: 3 pixels of row 0
  gt[1, 0, :2] = True  # grader 1: 2 of them
  pred = np.zeros_like(gt)
  pred[0, 0, 0] = pred[1, 0, 1] = True
  pred[1, 1, :] = True  # outside the region: ignored
  region = np.zeros((2, 3), bool)
  region[0, :] = True
  assert metrics.region_recall(pred, gt, region) == pytest.approx(2 / 5)
  assert np.isnan(metrics.region_recall(pred, gt, ~region))
  np.testing.assert_allclose(
      metrics.region_recall(np.stack([pred, gt]), np.stack([gt, gt]),
                            np.stack([region, region])), [0.4, 1.0])


# ---------------------------------------------------------------------------
# Wilcoxon signed-rank test (B12).
# ---------------------------------------------------------------------------


def test_wilcoxon_signed_rank_by_hand_and_against_scipy():
  from scipy import stats  # pylint: disable=g-import-not-at-top
  # Differences a - b = 1, 2, -3, 4, 5: R- = 3, R+ = 12. Exact two-sided p:
  # P(W <= 3) over the 2^5 sign patterns = 5 / 32, doubled.
  b = np.array([1.0, 1.0, 4.0, 1.0, 1.0])
  a = b + np.array([1.0, 2.0, -3.0, 4.0, 5.0])
  res = metrics.wilcoxon_signed_rank(a, b)
  assert res.statistic == 3.0 and res.p_value == pytest.approx(10 / 32)
  assert res.num_images == 5 and res.median_difference == 2.0
  assert res.mean_difference == pytest.approx(1.8)
  assert res.better == "b"  # a has the larger GED^2 on the signed ranks
  assert metrics.wilcoxon_signed_rank(b, a).better == "a"
  assert metrics.wilcoxon_signed_rank(
      a, b, lower_is_better=False).better == "a"
  # Many images (normal approximation), NaN images dropped: scipy's values.
  rng = np.random.RandomState(0)
  b = rng.rand(200)
  a = b - 0.05 + 0.1 * rng.randn(200)
  a[:3] = np.nan
  res = metrics.wilcoxon_signed_rank(a, b)
  ref = stats.wilcoxon(a[3:], b[3:])
  assert res.statistic == ref.statistic
  assert res.p_value == pytest.approx(ref.pvalue) and res.p_value < 1e-3
  assert res.num_images == 197 and res.better == "a"
  assert res.median_difference == pytest.approx(np.median(a[3:] - b[3:]))
  # Identical values: no difference, no better model.
  same = metrics.wilcoxon_signed_rank(b, b)
  assert same.p_value == 1.0 and same.better == "neither"
  with pytest.raises(ValueError, match="same images"):
    metrics.wilcoxon_signed_rank(a, b[:10])


def test_multiclass_grader_metrics_equal_the_binary_ones_for_one_class():
  """`folder` with C classes: with one foreground class the distance and
  every metric are the binary (LIDC-rule) ones, empty masks included."""
  rng = np.random.default_rng(3)
  samples = rng.random((3, 5, 6, 7)) < 0.3
  graders = rng.random((3, 4, 6, 7)) < 0.3
  recs = rng.random((3, 4, 6, 7)) < 0.3
  samples[0, :2] = False  # empty samples and graders: IoU 1 pairs
  graders[0, 1] = False
  recs[0, 1] = False
  binary = metrics.binary_batch_metrics(samples, recs, graders)
  multi = metrics.multiclass_batch_metrics(
      samples.astype(np.int32), recs.astype(np.int32),
      graders.astype(np.int32), class_ids=(1,))
  for key in ("ged", "hm_iou", "rec_iou"):
    np.testing.assert_allclose(multi[key], binary[key], rtol=1e-12,
                               atol=1e-15, err_msg=key)
  np.testing.assert_array_equal(
      metrics.pairwise_label_iou(samples[0].astype(int), graders[0].astype(int),
                                 class_ids=(1,)),
      metrics.pairwise_iou(samples[0], graders[0]))


def test_multiclass_grader_metrics_hand_case():
  """Three classes: d = 1 - mean IoU over the foreground classes present."""
  y0 = np.zeros((2, 4), np.int32)
  y0[0, :2] = 1  # class 1: 2 px
  y0[1, :] = 2  # class 2: 4 px
  y1 = np.zeros((2, 4), np.int32)
  y1[0, :2] = 1  # class 1 only
  s = y0.copy()
  s[1, 2:] = 0  # class 2: 2 of 4 px
  # s vs y0: class 1 IoU 1, class 2 IoU 2/4 -> 0.75; s vs y1: class 1 IoU 1,
  # class 2 only in s -> 0 -> 0.5; y0 vs y1: 0.5; empty vs empty: 1.
  empty = np.zeros((2, 4), np.int32)
  iou = metrics.pairwise_label_iou(np.stack([s, empty]),
                                   np.stack([y0, y1, empty]),
                                   class_ids=(1, 2))
  np.testing.assert_allclose(iou, [[0.75, 0.5, 0.0], [0.0, 0.0, 1.0]])
  graders = np.stack([y0, y1])[None]  # [1, G=2, H, W]
  samples = np.stack([s, y1])[None]  # [1, S=2, H, W]
  recs = np.stack([s, y1])[None]  # grading 0 reconstructed as s
  out = metrics.multiclass_batch_metrics(samples, recs, graders,
                                         class_ids=(1, 2))
  # d_sy = [[.25, .5], [.5, 0]], d_ss = d_yy = [[0, .5], [.5, 0]]:
  # GED = 2 * 1.25 / 4 - 1 / 4 - 1 / 4 = 0.125.
  np.testing.assert_allclose(out["ged"], [0.125])
  np.testing.assert_allclose(out["hm_iou"], [(0.75 + 1.0) / 2])
  np.testing.assert_allclose(out["rec_iou"], [(0.75 + 1.0) / 2])
  np.testing.assert_allclose(out["rec_iou_class1"], [1.0])
  np.testing.assert_allclose(out["rec_iou_class2"], [0.5])  # grading 1: NaN
  assert set(out) == {"ged", "hm_iou", "rec_iou", "rec_iou_class1",
                      "rec_iou_class2"}
