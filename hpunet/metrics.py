# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Evaluation metrics for the HPU-Net and sPU-Net tasks (NumPy/SciPy).

All functions work per image and are vectorised over leading batch axes:
masks are `[..., n, H, W]` (a set of `n` masks per image) and results are
`[...]`, so one call evaluates a whole batch of images. Unbatched inputs give
NumPy scalars. The conventions (numbered B1-B11 here and in the docstrings):

IoU (B1)
  * Binary / LIDC: foreground only; both masks empty -> IoU 1 (a correct
    absence), exactly one empty -> 0. `iou`, `pairwise_iou`.
  * Label maps (SNEMI3D / Cityscapes): per class of interest; a class absent
    from both maps is NaN and dropped by the nan-mean; predicted but absent
    from the GT -> 0. Pixels flagged in `ignore_mask` (GT ignore, e.g. 255)
    are excluded. If every class is NaN the image's mean IoU is NaN.
    `multiclass_iou`, `mean_multiclass_iou`, `pairwise_multiclass_iou`.

GED (B2): squared generalised energy distance with d = 1 - IoU. The default is
  the paper-comparable V-statistic (self-pairs i = j included). With
  `weights` (known mode probabilities) the GT-GT term is exact (sPU-Net eq. 7).
  `unbiased=True` gives the U-statistic (off-diagonal pairs only) -- NOT
  comparable with published numbers.

Hungarian-matched IoU (B3): both sets tiled to lcm(n, m), optimal matching.

Reconstruction IoU (B4), adapted Rand error (B5, SNEMI3D convention), mode
frequencies and pixel flip frequencies (B9), ambiguity detection (sPU-Net
App. E, B10) and the bootstrap over test images and model seeds (B11).
"""

import dataclasses
import math
from typing import NamedTuple, Sequence

import numpy as np
from scipy import optimize

from hpunet import tasks

# The Cityscapes flip task's classes (defined in `tasks`), in mode-bit order.
FLIP_SOURCE_IDS = tasks.FLIP_SOURCE_IDS
FLIP_TARGET_IDS = tasks.FLIP_TARGET_IDS
FLIP_PROBS = tasks.FLIP_PROBS
FLIP_CLASS_IDS = tasks.FLIP_CLASS_IDS

# Memory budget for the temporaries of the chunked pairwise IoU helpers.
_CHUNK_BYTES = 64 * 2**20


def _result(x):
  """Returns a NumPy scalar for 0-d results, the array otherwise."""
  x = np.asarray(x)
  return x[()] if x.ndim == 0 else x


def _check_spatial(name, a, b):
  if a.shape[-2:] != b.shape[-2:]:
    raise ValueError(
        f"{name}: spatial shapes differ, {a.shape} vs {b.shape}; expected "
        "[..., H, W] with equal H, W.")


def _safe_divide(num, den, fill):
  num = np.asarray(num, np.float64)
  den = np.asarray(den, np.float64)
  out = np.full(np.broadcast_shapes(num.shape, den.shape), fill, np.float64)
  np.divide(num, den, out=out, where=den != 0)
  return out


def _nanmean(x, axis=-1):
  """Nan-mean that returns NaN (without a warning) where all are NaN."""
  valid = ~np.isnan(x)
  total = np.where(valid, x, 0.0).sum(axis)
  return _safe_divide(total, valid.sum(axis), np.nan)


# ----------------------------------------------------------------------------
# IoU.
# ----------------------------------------------------------------------------


def iou(a, b):
  """Foreground IoU of binary masks `[..., H, W]` (broadcasting), LIDC rule.

  Both masks empty -> 1.0 (a correct absence); exactly one empty -> 0.0.

  Args:
    a: bool (or {0,1}) array `[..., H, W]`.
    b: bool array broadcastable with `a`.

  Returns:
    float64 IoU with the broadcast leading shape.
  """
  a = np.asarray(a, bool)
  b = np.asarray(b, bool)
  _check_spatial("iou", a, b)
  inter = np.logical_and(a, b).sum((-2, -1))
  union = np.logical_or(a, b).sum((-2, -1))
  return _result(_safe_divide(inter, union, 1.0))


def _pack_rows(x):
  """Bit-packs bool `[..., k, P]` along P into uint64 words `[..., k, W]`."""
  packed = np.packbits(x, axis=-1)
  pad = (-packed.shape[-1]) % 8
  if pad:
    packed = np.pad(packed, [(0, 0)] * (packed.ndim - 1) + [(0, pad)])
  return np.ascontiguousarray(packed).view(np.uint64)


def _pairwise_counts(x, y):
  """Intersection `[..., n, m]`, |x| `[..., n]`, |y| `[..., m]`.

  x, y: bool flattened masks `[..., n, P]`, `[..., m, P]`. The intersection
  matrix is the {0,1} matrix product X Y^T, evaluated exactly on bit-packed
  rows as popcount(x_i AND y_j) summed over 64-bit words: ~3-4x faster than
  a float32 BLAS matmul here and free of float casts (benchmarks/
  evaluation.py).
  """
  xp = _pack_rows(x)
  yp = _pack_rows(y)
  inter = np.bitwise_count(xp[..., :, None, :] & yp[..., None, :, :]).sum(
      -1, dtype=np.int64)
  return (inter, np.bitwise_count(xp).sum(-1, dtype=np.int64),
          np.bitwise_count(yp).sum(-1, dtype=np.int64))


def pairwise_iou(x, y):
  """All-pairs LIDC IoU between two mask sets (vectorised, no pair loops).

  Args:
    x: bool `[..., n, H, W]`.
    y: bool `[..., m, H, W]` with the same (or broadcastable) leading axes.

  Returns:
    float64 `[..., n, m]`; entry (i, j) = iou(x_i, y_j), empty/empty = 1.
  """
  x = np.asarray(x, bool)
  y = np.asarray(y, bool)
  _check_spatial("pairwise_iou", x, y)
  inter, sx, sy = _pairwise_counts(x.reshape(x.shape[:-2] + (-1,)),
                                   y.reshape(y.shape[:-2] + (-1,)))
  union = sx[..., :, None] + sy[..., None, :] - inter
  return _safe_divide(inter, union, 1.0)


def _batched_pairwise_iou(x, y):
  """`pairwise_iou` on `[B?, n, H, W]` x `[B?, m, H, W]`, chunked over B."""
  if x.ndim == 3:
    return pairwise_iou(x, y)
  num_images, n = x.shape[:2]
  m = y.shape[1]
  words = -(-x.shape[-1] * x.shape[-2] // 64)
  per_image = 9 * n * m * words + (n + m) * words * 8
  step = max(1, _CHUNK_BYTES // per_image)
  if not num_images:
    return np.zeros((0, n, m))
  return np.concatenate([
      pairwise_iou(x[i:i + step], y[i:i + step])
      for i in range(0, num_images, step)
  ], axis=0)


def multiclass_iou(pred, gt, *, class_ids, ignore_mask=None):
  """Per-class IoU of label maps `[..., H, W]` with NaN for correct absences.

  Args:
    pred: int label map `[..., H, W]`.
    gt: int label map, same shape.
    class_ids: the classes of interest (e.g. instance ids 1..15, car ids, or
      `FLIP_CLASS_IDS`).
    ignore_mask: optional bool `[..., H, W]`, True where the pixel is excluded
      (e.g. `gt == 255`). Broadcastable to `gt`.

  Returns:
    float64 `[..., len(class_ids)]`: NaN where the class is absent from both
    maps (over the non-ignored pixels), 0 where it is in only one.
  """
  pred = np.asarray(pred)
  gt = np.asarray(gt)
  _check_spatial("multiclass_iou", pred, gt)
  valid = (np.ones(gt.shape, bool) if ignore_mask is None else
           ~np.broadcast_to(np.asarray(ignore_mask, bool), gt.shape))
  out = []
  for c in class_ids:
    p = (pred == c) & valid
    g = (gt == c) & valid
    inter = (p & g).sum((-2, -1))
    union = (p | g).sum((-2, -1))
    out.append(_safe_divide(inter, union, np.nan))
  return np.stack(out, -1)


def mean_multiclass_iou(pred, gt, *, class_ids, ignore_mask=None):
  """Nan-mean over `class_ids` of `multiclass_iou`; NaN if all are NaN."""
  return _result(_nanmean(
      multiclass_iou(pred, gt, class_ids=class_ids, ignore_mask=ignore_mask)))


def pairwise_multiclass_iou(x, y, *, class_ids, ignore_mask=None):
  """All-pairs mean multi-class IoU between two label-map sets.

  Used for the Cityscapes flip task (d = 1 - this). Per class, only the pixel
  columns where some mask has the class enter the matrix product.

  Args:
    x: int `[n, H, W]` label maps (e.g. samples).
    y: int `[m, H, W]` label maps (e.g. the 32 GT modes).
    class_ids: classes to average over.
    ignore_mask: optional bool `[H, W]`, True = excluded for every pair
      (the GT-derived mask also applies to sample-sample pairs, B1).

  Returns:
    float64 `[n, m]` nan-mean IoU (NaN where every class is absent in both).
  """
  x = np.asarray(x)
  y = np.asarray(y)
  _check_spatial("pairwise_multiclass_iou", x, y)
  if x.ndim != 3 or y.ndim != 3:
    raise ValueError("pairwise_multiclass_iou: expected x [n,H,W] and y "
                     f"[m,H,W], got {x.shape} and {y.shape}.")
  n, m = x.shape[0], y.shape[0]
  xf = x.reshape(n, -1)
  yf = y.reshape(m, -1)
  if ignore_mask is not None:
    keep = ~np.asarray(ignore_mask, bool).reshape(-1)
    xf, yf = xf[:, keep], yf[:, keep]
  total = np.zeros((n, m))
  count = np.zeros((n, m))
  for c in class_ids:
    xc = xf == c
    yc = yf == c
    cols = np.flatnonzero(xc.any(0) | yc.any(0))
    if cols.size == 0:
      continue  # absent everywhere: NaN for every pair.
    inter, sx, sy = _pairwise_counts(xc[:, cols], yc[:, cols])
    union = sx[:, None] + sy[None, :] - inter
    present = union > 0
    total += np.where(present, _safe_divide(inter, union, 0.0), 0.0)
    count += present
  return _safe_divide(total, count, np.nan)


# ----------------------------------------------------------------------------
# Generalised energy distance.
# ----------------------------------------------------------------------------


def ged_from_distances(d_sy, d_ss, d_yy, weights=None, *, unbiased=False):
  """GED^2 from distance matrices (batched over leading axes).

  V-statistic (default, paper-comparable; sPU-Net eqs. 6 and 7):
    2 * mean_i sum_k w_k d(S_i, Y_k) - mean_{i,j} d(S_i, S_j)
      - sum_{k,l} w_k w_l d(Y_k, Y_l),   w_k = 1/m unless given.
  `unbiased=True` (U-statistic, NOT the published estimator): the S-S term
  averages over i != j; the Y-Y term too when `weights` is None (with known
  mode weights that term is already exact and is left unchanged). Needs
  n >= 2 (and m >= 2 without weights), else NaN.

  Args:
    d_sy: `[..., n, m]` sample-GT distances.
    d_ss: `[..., n, n]` sample-sample distances.
    d_yy: `[..., m, m]` GT-GT distances.
    weights: optional `[..., m]` GT probabilities (must sum to 1).
    unbiased: use the U-statistic.

  Returns:
    float64 `[...]`; NaN propagates from NaN distances.
  """
  d_sy = np.asarray(d_sy, np.float64)
  d_ss = np.asarray(d_ss, np.float64)
  d_yy = np.asarray(d_yy, np.float64)
  n, m = d_sy.shape[-2:]
  if weights is None:
    w = np.full(d_sy.shape[:-2] + (m,), 1.0 / m)
  else:
    w = np.broadcast_to(np.asarray(weights, np.float64), d_sy.shape[:-2] + (m,))
    if not np.allclose(w.sum(-1), 1.0, atol=1e-5):
      raise ValueError(f"ged: weights must sum to 1 per image, got sums "
                       f"{np.unique(w.sum(-1))[:5]}.")
  cross = 2.0 * np.einsum("...nm,...m->...", d_sy, w) / n
  if unbiased:
    ss = _safe_divide(d_ss.sum((-2, -1)) - np.trace(d_ss, 0, -2, -1),
                      n * (n - 1), np.nan)
  else:
    ss = d_ss.mean((-2, -1))
  if unbiased and weights is None:
    yy = _safe_divide(d_yy.sum((-2, -1)) - np.trace(d_yy, 0, -2, -1),
                      m * (m - 1), np.nan)
  else:
    yy = np.einsum("...k,...kl,...l->...", w, d_yy, w)
  return _result(cross - ss - yy)


def ged(samples, ground_truths, weights=None, *, unbiased=False):
  """Squared GED between binary sample and GT sets, d = 1 - IoU (LIDC rule).

  Args:
    samples: bool `[..., n, H, W]` (leading axes = images; at most one).
    ground_truths: bool `[..., m, H, W]` (graders, or known modes).
    weights: optional `[..., m]` mode probabilities (sPU-Net eq. 7, synthetic
      dataset); None = uniform over the m ground truths (eq. 6).
    unbiased: U-statistic instead of the paper-comparable V-statistic.

  Returns:
    float64 GED^2 per image.
  """
  s = np.asarray(samples, bool)
  y = np.asarray(ground_truths, bool)
  if s.ndim not in (3, 4) or y.ndim != s.ndim:
    raise ValueError(f"ged: expected samples [B?,n,H,W] and ground_truths "
                     f"[B?,m,H,W], got {s.shape} and {y.shape}.")
  d_sy = 1.0 - _batched_pairwise_iou(s, y)
  d_ss = 1.0 - _batched_pairwise_iou(s, s)
  d_yy = 1.0 - _batched_pairwise_iou(y, y)
  return ged_from_distances(d_sy, d_ss, d_yy, weights, unbiased=unbiased)


def ged_multiclass(samples, ground_truths, weights=None, *,
                   class_ids=FLIP_CLASS_IDS, ignore_mask=None,
                   unbiased=False):
  """GED^2 for label maps with d = 1 - nan-mean IoU over `class_ids`.

  The Cityscapes flip task form (sPU-Net eq. 7 with `weights` = the 32 mode
  probabilities). Images whose GED is NaN (all classes absent) should be
  dropped before averaging, as the reference evaluation does.

  Args:
    samples: int `[..., n, H, W]` label maps (leading axes = images).
    ground_truths: int `[..., m, H, W]` (e.g. `cityscapes_flip_modes`).
    weights: optional `[..., m]` mode probabilities.
    class_ids: classes averaged in the IoU (default: the 10 flip classes).
    ignore_mask: optional bool `[..., H, W]` (True = excluded), e.g.
      `label == 255`; applied to every pair, sample-sample pairs included.
    unbiased: U-statistic instead of the V-statistic.

  Returns:
    float64 GED^2 per image.
  """
  s = np.asarray(samples)
  y = np.asarray(ground_truths)
  _check_spatial("ged_multiclass", s, y)
  batch = s.shape[:-3]
  if y.shape[:-3] != batch:
    raise ValueError(f"ged_multiclass: leading axes differ, {s.shape} vs "
                     f"{y.shape}.")
  s2 = s.reshape((-1,) + s.shape[-3:])
  y2 = y.reshape((-1,) + y.shape[-3:])
  if ignore_mask is None:
    ig = [None] * s2.shape[0]
  else:
    ig = np.broadcast_to(np.asarray(ignore_mask, bool),
                         batch + s.shape[-2:]).reshape((-1,) + s.shape[-2:])
  d_sy, d_ss, d_yy = [], [], []
  for i in range(s2.shape[0]):
    kw = dict(class_ids=class_ids, ignore_mask=ig[i])
    d_sy.append(1.0 - pairwise_multiclass_iou(s2[i], y2[i], **kw))
    d_ss.append(1.0 - pairwise_multiclass_iou(s2[i], s2[i], **kw))
    d_yy.append(1.0 - pairwise_multiclass_iou(y2[i], y2[i], **kw))
  n, m = s.shape[-3], y.shape[-3]
  d_sy = np.reshape(d_sy, batch + (n, m))
  d_ss = np.reshape(d_ss, batch + (n, n))
  d_yy = np.reshape(d_yy, batch + (m, m))
  return ged_from_distances(d_sy, d_ss, d_yy, weights, unbiased=unbiased)


# ----------------------------------------------------------------------------
# Hungarian-matched IoU.
# ----------------------------------------------------------------------------


def hungarian_iou_from_matrix(iou_matrix):
  """Hungarian-matched IoU of one `[n, m]` sample-vs-GT IoU matrix.

  Rows (samples) and columns (GTs) are tiled to lcm(n, m) each, the
  maximum-IoU one-to-one matching is found with `linear_sum_assignment`, and
  the matched IoUs are averaged (HPU-Net App. B.1).
  """
  mat = np.asarray(iou_matrix, np.float64)
  n, m = mat.shape
  size = math.lcm(n, m)
  big = np.tile(mat, (size // n, size // m))
  rows, cols = optimize.linear_sum_assignment(big, maximize=True)
  return big[rows, cols].mean()


def hungarian_iou(samples, ground_truths):
  """Hungarian-matched IoU between binary sample and GT sets (LIDC rule).

  Args:
    samples: bool `[..., n, H, W]` (at most one leading image axis).
    ground_truths: bool `[..., m, H, W]`.

  Returns:
    float64 per image.
  """
  s = np.asarray(samples, bool)
  y = np.asarray(ground_truths, bool)
  if s.ndim not in (3, 4) or y.ndim != s.ndim:
    raise ValueError(f"hungarian_iou: expected samples [B?,n,H,W] and "
                     f"ground_truths [B?,m,H,W], got {s.shape}, {y.shape}.")
  mats = _batched_pairwise_iou(s, y)
  if mats.ndim == 2:
    return _result(hungarian_iou_from_matrix(mats))
  return np.array([hungarian_iou_from_matrix(mt) for mt in mats])


# ----------------------------------------------------------------------------
# Reconstruction IoU.
# ----------------------------------------------------------------------------


def lidc_reconstruction_iou(reconstructions, ground_truths):
  """LIDC IoU_rec: mean over graders of IoU(recon of grading g, grading g).

  Args:
    reconstructions: bool `[..., G, H, W]`, the argmax of
      `reconstruct(seg=grading g, mean=True)` for each grader g.
    ground_truths: bool `[..., G, H, W]`, the gradings.

  Returns:
    float64 per image (foreground IoU, empty/empty = 1, averaged over G).
  """
  return _result(np.mean(iou(reconstructions, ground_truths), axis=-1))


def binary_batch_metrics(samples, reconstructions, graders, modes=None,
                         mode_probs=None, *, subset_b=False
                         ) -> dict[str, np.ndarray]:
  """Per-image metrics of a batch of a binary task (LIDC, synthetic).

  The one definition used by both the trainer's periodic validation and
  `python -m hpunet.evaluate`.

  Args:
    samples: bool `[B, S, H, W]` prior samples (argmax).
    reconstructions: bool `[B, G, H, W]`, the posterior-mean reconstruction
      of each grading; None for models without a posterior (no `rec_iou`).
    graders: bool `[B, G, H, W]` the gradings.
    modes: optional bool `[B, M, H, W]` known modes (synthetic).
    mode_probs: `[B, M]` their probabilities (with `modes`).
    subset_b: add the LIDC subset-B metrics (all graders marked a lesion;
      NaN for the other images).

  Returns:
    name -> float64 `[B]`: `rec_iou` (B4), `ged` (B2, against the graders),
    `hm_iou` (B3); `ged_modes` (against the known modes, weighted) with
    `modes`; `hm_iou_subset_b`, `ged_subset_b` with `subset_b`.
  """
  s = np.asarray(samples, bool)
  y = np.asarray(graders, bool)
  out = {}
  if reconstructions is not None:
    out["rec_iou"] = np.asarray(lidc_reconstruction_iou(reconstructions, y),
                                np.float64).reshape(-1)
  out["ged"] = np.asarray(ged(s, y), np.float64).reshape(-1)
  out["hm_iou"] = np.asarray(hungarian_iou(s, y), np.float64).reshape(-1)
  if subset_b:
    in_b = y.any(axis=(-2, -1)).all(axis=-1)
    out["hm_iou_subset_b"] = np.where(in_b, out["hm_iou"], np.nan)
    out["ged_subset_b"] = np.where(in_b, out["ged"], np.nan)
  if modes is not None:
    if mode_probs is None:
      raise ValueError("binary_batch_metrics: modes need mode_probs.")
    out["ged_modes"] = np.asarray(
        ged(s, np.asarray(modes, bool), np.asarray(mode_probs, np.float64)),
        np.float64).reshape(-1)
  return out


def reconstruction_iou(reconstruction, ground_truth, *, class_ids,
                       ignore_mask=None):
  """IoU_rec on label maps: nan-mean IoU over the stochastic id classes.

  SNEMI3D: `class_ids` = instance ids 1..15; Cityscapes cars: the car ids,
  with `ignore_mask = label == 255`. NaN for an image where every id class is
  absent from both maps (drop it when averaging over images).
  """
  return mean_multiclass_iou(reconstruction, ground_truth,
                             class_ids=class_ids, ignore_mask=ignore_mask)


# ----------------------------------------------------------------------------
# Adapted Rand error.
# ----------------------------------------------------------------------------


class RandScores(NamedTuple):
  """Adapted Rand error and its pairwise precision / recall (SNEMI names).

  precision = sum n_ij^2 / sum b_j^2 (over predicted segments),
  recall = sum n_ij^2 / sum a_i^2 (over GT segments). scikit-image swaps
  these two names (its issue #6485); the error itself is symmetric.
  """
  error: float
  precision: float
  recall: float


def _rand_scores(pred, gt, pred_background, subtract_self_pairs):
  fg = gt != 0
  gt_fg = gt[fg].astype(np.int64)
  pred_fg = pred[fg].astype(np.int64)
  num = gt_fg.size
  if num == 0:
    return RandScores(np.nan, np.nan, np.nan)
  if pred_background == "singleton":
    singles = np.count_nonzero(pred_fg == 0)
    keep = pred_fg != 0
    gt_seg, pred_seg = gt_fg[keep], pred_fg[keep]
  else:
    singles = 0
    gt_seg, pred_seg = gt_fg, pred_fg
  _, a = np.unique(gt_fg, return_counts=True)
  _, g_idx = np.unique(gt_seg, return_inverse=True)
  _, p_idx, b = np.unique(pred_seg, return_inverse=True, return_counts=True)
  pair_counts = np.bincount(g_idx * max(b.size, 1) + p_idx)
  a = a.astype(np.float64)
  sum_ab = np.sum(pair_counts.astype(np.float64)**2) + singles
  sum_a = np.sum(a**2)
  sum_b = np.sum(b.astype(np.float64)**2) + singles
  if subtract_self_pairs:
    sum_ab -= num
    sum_a -= num
    sum_b -= num
  precision = _safe_divide(sum_ab, sum_b, np.nan)[()]
  recall = _safe_divide(sum_ab, sum_a, np.nan)[()]
  f_score = _safe_divide(2 * sum_ab, sum_a + sum_b, np.nan)[()]
  return RandScores(1.0 - f_score, precision, recall)


def adapted_rand_error(pred, gt, *, pred_background="singleton",
                       subtract_self_pairs=False, return_scores=False):
  """Foreground-restricted adapted Rand error (SNEMI3D convention).

  With n_ij = #pixels with GT label i != 0 and predicted label j,
  a_i = sum_j n_ij, b_j = sum_i n_ij (inside the GT foreground):
    P = sum n_ij^2 / sum b_j^2,  R = sum n_ij^2 / sum a_i^2,
    ARE = 1 - 2PR / (P + R) = 1 - 2 sum n_ij^2 / (sum a_i^2 + sum b_j^2).
  All terms are pixel-pair counts (no count/probability mixing).

  * `pred_background="singleton"` (default; SNEMI3D script / old gala):
    predicted label 0 inside the GT foreground counts as one segment per
    pixel. `"segment"`: 0 is an ordinary predicted segment.
  * `subtract_self_pairs=True` subtracts the N self-pairs from each sum.
  * `pred_background="segment", subtract_self_pairs=True` equals
    `skimage.metrics.adapted_rand_error(image_true=gt, image_test=pred)`
    (which ignores GT label 0 only).
  GT label 0 is always excluded. No GT foreground -> NaN.

  Args:
    pred: int label map `[..., H, W]` (e.g. clustered instances, 0 = bg).
    gt: int label map, same shape (0 = background / unlabelled).
    pred_background: "singleton" or "segment".
    subtract_self_pairs: remove i = i pairs.
    return_scores: also return precision and recall (`RandScores`).

  Returns:
    ARE per image (float64 `[...]`), or `RandScores` of such arrays.
  """
  if pred_background not in ("singleton", "segment"):
    raise ValueError("adapted_rand_error: pred_background must be "
                     f"'singleton' or 'segment', got {pred_background!r}.")
  pred = np.asarray(pred)
  gt = np.asarray(gt)
  if pred.shape != gt.shape or pred.ndim < 2:
    raise ValueError(f"adapted_rand_error: expected equal [..., H, W] "
                     f"shapes, got {pred.shape} and {gt.shape}.")
  batch = gt.shape[:-2]
  flat_p = pred.reshape((-1,) + gt.shape[-2:])
  flat_g = gt.reshape((-1,) + gt.shape[-2:])
  scores = np.array([
      _rand_scores(p, g, pred_background, subtract_self_pairs)
      for p, g in zip(flat_p, flat_g)
  ], np.float64).reshape(batch + (3,))
  out = RandScores(*(_result(scores[..., k]) for k in range(3)))
  return out if return_scores else out.error


# ----------------------------------------------------------------------------
# Known-mode analysis (synthetic, Cityscapes flips).
# ----------------------------------------------------------------------------


def cityscapes_flip_modes(label):
  """All 32 flip-task GT modes of an unflipped trainId map, with weights.

  Mode index = sum_i s_i 2^(4-i) with s_i = 1 iff class FLIP_SOURCE_IDS[i]
  is flipped to FLIP_TARGET_IDS[i]; probability prod p_i^s_i (1-p_i)^(1-s_i).

  Args:
    label: int `[..., H, W]` unflipped trainIds (255 = ignore is kept).

  Returns:
    (modes uint8 `[..., 32, H, W]`, probs float64 `[32]`).
  """
  label = np.asarray(label)
  k = len(FLIP_SOURCE_IDS)
  modes, probs = [], []
  for mode in range(2**k):
    bits = [(mode >> (k - 1 - i)) & 1 for i in range(k)]
    out = label.copy()
    prob = 1.0
    for bit, src, dst, p in zip(bits, FLIP_SOURCE_IDS, FLIP_TARGET_IDS,
                                FLIP_PROBS):
      if bit:
        out[label == src] = dst
      prob *= p if bit else 1.0 - p
    modes.append(out)
    probs.append(prob)
  return np.stack(modes, -3).astype(np.uint8), np.array(probs)


def mode_distances(samples, modes, *, class_ids=None, ignore_mask=None):
  """Task distance `[..., n, M]` between samples and known modes.

  Binary masks (synthetic task, `class_ids=None`): d = 1 - IoU, LIDC rule.
  Label maps (Cityscapes flips, `class_ids` given): d = 1 - nan-mean IoU over
  `class_ids` with `ignore_mask` `[..., H, W]`.
  """
  if class_ids is None:
    s = np.asarray(samples, bool)
    y = np.asarray(modes, bool)
    if s.ndim > 4:
      raise ValueError("mode_distances: at most one leading image axis.")
    return 1.0 - _batched_pairwise_iou(s, y)
  s = np.asarray(samples)
  y = np.asarray(modes)
  if s.ndim == 3:
    return 1.0 - pairwise_multiclass_iou(s, y, class_ids=class_ids,
                                         ignore_mask=ignore_mask)
  ig = ([None] * s.shape[0] if ignore_mask is None else
        np.broadcast_to(np.asarray(ignore_mask, bool),
                        s.shape[:1] + s.shape[-2:]))
  return np.stack([
      1.0 - pairwise_multiclass_iou(si, yi, class_ids=class_ids,
                                    ignore_mask=gi)
      for si, yi, gi in zip(s, y, ig)
  ])


def assign_modes(samples, modes, *, class_ids=None, ignore_mask=None):
  """Index of each sample's closest mode, argmin_k d(Y_k, S_i) (B9).

  Ties go to the lowest mode index; a sample whose distances to all modes are
  NaN (every class absent everywhere) gets -1.

  Returns:
    int64 `[..., n]`.
  """
  d = mode_distances(samples, modes, class_ids=class_ids,
                     ignore_mask=ignore_mask)
  all_nan = np.isnan(d).all(-1)
  idx = np.argmin(np.where(np.isnan(d), np.inf, d), axis=-1)
  return np.where(all_nan, -1, idx)


class ModeFrequencies(NamedTuple):
  predicted: np.ndarray  # [M] fraction of (assigned) samples per mode.
  expected: np.ndarray  # [M] mean GT mode probability over images.
  total_variation: float  # 0.5 * sum |predicted - expected|.
  num_assigned: int  # samples with a valid (non -1) assignment.


def mode_frequencies(assignments, mode_probs):
  """Predicted vs true mode frequencies (sPU-Net Fig. 5) and their TV.

  Args:
    assignments: int array of mode indices from `assign_modes` (any shape,
      all images and samples pooled); -1 entries are skipped.
    mode_probs: `[M]` or `[num_images, M]` true mode probabilities.

  Returns:
    `ModeFrequencies`.
  """
  probs = np.asarray(mode_probs, np.float64)
  expected = probs if probs.ndim == 1 else probs.mean(0)
  a = np.asarray(assignments).reshape(-1)
  a = a[a >= 0]
  if a.size and a.max() >= expected.size:
    raise ValueError(f"mode_frequencies: assignment {a.max()} >= number of "
                     f"modes {expected.size}.")
  counts = np.bincount(a, minlength=expected.size).astype(np.float64)
  predicted = counts / max(a.size, 1)
  tv = 0.5 * np.abs(predicted - expected).sum()
  return ModeFrequencies(predicted, expected, float(tv), int(a.size))


# Synthetic dataset (datasets/synthetic): mode = 9 g + 3 s1 + s2, g = faint
# spots annotated, s_k in {0: blob k absent, 1: thin, 2: thick}.
SYNTHETIC_FACTORS = ("spots", "blobs", "rings")


def synthetic_factor_regions(modes):
  """Pixels controlled by each factor of variation of a synthetic example.

  Args:
    modes: `[..., 18, H, W]` the example's 18 mode masks (mode index
      9 g + 3 s1 + s2, see datasets/synthetic).

  Returns:
    dict factor -> bool `[..., H, W]`: "spots" (the global factor g: the faint
    spots, spread over the image), "blobs" (the two ambiguous blobs' thin
    masks: mid-scale, independent presence) and "rings" (thick minus thin
    outline: the 1-2 px local boundary variant).
  """
  m = np.asarray(modes, bool)
  if m.shape[-3] != 18:
    raise ValueError(f"synthetic_factor_regions: expected 18 modes on axis "
                     f"-3, got shape {m.shape}.")
  base = m[..., 0, :, :]
  blob1, blob1_thick = m[..., 3, :, :], m[..., 6, :, :]
  blob2, blob2_thick = m[..., 1, :, :], m[..., 2, :, :]
  return {
      "spots": m[..., 9, :, :] & ~base,
      "blobs": (blob1 | blob2) & ~base,
      "rings": ((blob1_thick & ~blob1) | (blob2_thick & ~blob2)) & ~base,
  }


def variance_ratio(samples, p_true, region):
  """Sampled over true per-pixel label variance inside `region`.

  `sum_region v_hat / sum_region p (1 - p)` with `v_hat` the unbiased
  Bernoulli variance of the `n` binary samples per pixel and `p` the true
  per-pixel foreground probability. 1 = the samples vary as much as the
  ground truth there, 0 = they do not vary (HPU-Net Fig. 3 / 15 made
  quantitative: which scale's latents move which factor).

  Args:
    samples: bool `[..., n, H, W]`.
    p_true: `[..., H, W]` true P(foreground).
    region: bool `[..., H, W]`.

  Returns:
    `[...]` float; NaN where the region has no true variance.
  """
  s = np.asarray(samples, bool)
  n = s.shape[-3]
  if n < 2:
    raise ValueError("variance_ratio needs at least 2 samples per image.")
  p_hat = s.mean(-3)
  v_hat = p_hat * (1.0 - p_hat) * n / (n - 1)
  r = np.asarray(region, bool)
  p = np.asarray(p_true, np.float64)
  num = np.sum(v_hat * r, axis=(-2, -1))
  den = np.sum(p * (1.0 - p) * r, axis=(-2, -1))
  return _result(_safe_divide(num, den, np.nan))


def region_recall(predictions, ground_truths, region):
  """Fraction of the annotated pixels inside `region` that are predicted.

  `sum(pred & gt & region) / sum(gt & region)` pooled over the `G` masks of
  an image: e.g. how much of the faint spots the posterior-mean
  reconstructions draw when a grader marked them.

  Args:
    predictions: bool `[..., G, H, W]`.
    ground_truths: bool `[..., G, H, W]`.
    region: bool `[..., H, W]`.

  Returns:
    `[...]` float; NaN where no grader annotated the region.
  """
  p = np.asarray(predictions, bool)
  y = np.asarray(ground_truths, bool) & np.asarray(region, bool)[..., None, :, :]
  num = np.sum(p & y, axis=(-3, -2, -1))
  den = np.sum(y, axis=(-3, -2, -1))
  return _result(_safe_divide(num, den, np.nan))


@dataclasses.dataclass(frozen=True)
class FlipPixelCounts:
  """Additive pixel counts for the pixel-wise flip calibration (B9).

  For each switchable class c (in `FLIP_SOURCE_IDS` order): the number of
  (pixel, sample) pairs whose unflipped GT is c, and how many of them were
  predicted as c and as its flipped id c'. Sum over batches with `+`.
  """
  gt: np.ndarray
  as_source: np.ndarray
  as_target: np.ndarray

  def __add__(self, other):
    return FlipPixelCounts(self.gt + other.gt,
                           self.as_source + other.as_source,
                           self.as_target + other.as_target)

  @property
  def source_frequency(self):
    return _safe_divide(self.as_source, self.gt, np.nan)

  @property
  def target_frequency(self):
    """Predicted flip frequency; compare with `FLIP_PROBS`."""
    return _safe_divide(self.as_target, self.gt, np.nan)


def flip_pixel_counts(samples, label, *, source_ids=FLIP_SOURCE_IDS,
                      target_ids=FLIP_TARGET_IDS):
  """Pixel-wise flip counts of samples `[..., n, H, W]` against `label`.

  Args:
    samples: int label-map samples `[..., n, H, W]`.
    label: unflipped trainIds `[..., H, W]` (255 pixels never count).
    source_ids, target_ids: the switchable classes and their flipped ids.

  Returns:
    `FlipPixelCounts`; frequencies normalise by #GT pixels x #samples.
  """
  s = np.asarray(samples)
  y = np.asarray(label)[..., None, :, :]
  n = s.shape[-3]
  gt, as_src, as_tgt = [], [], []
  for src, tgt in zip(source_ids, target_ids):
    is_c = y == src
    gt.append(np.count_nonzero(is_c) * n)
    as_src.append(np.count_nonzero(is_c & (s == src)))
    as_tgt.append(np.count_nonzero(is_c & (s == tgt)))
  return FlipPixelCounts(np.array(gt, np.int64), np.array(as_src, np.int64),
                         np.array(as_tgt, np.int64))


# ----------------------------------------------------------------------------
# Ambiguity detection (sPU-Net App. E).
# ----------------------------------------------------------------------------


def lesion_presence_counts(samples, *, min_pixels=1):
  """Number of samples `[..., n, H, W]` containing a lesion (>= min_pixels)."""
  s = np.asarray(samples, bool)
  return _result((s.sum((-2, -1)) >= min_pixels).sum(-1))


def is_ambiguous(ground_truths):
  """True where graders `[..., m, H, W]` disagree on lesion presence."""
  present = np.asarray(ground_truths, bool).any((-2, -1))
  return _result(present.any(-1) & ~present.all(-1))


class AmbiguityResult(NamedTuple):
  threshold: int  # predict "ambiguous" iff count < threshold.
  validation_accuracy: float
  test_accuracy: float


def ambiguity_accuracy(counts, ambiguous, threshold):
  """Accuracy of the rule "ambiguous iff lesion count < threshold"."""
  counts = np.asarray(counts)
  ambiguous = np.asarray(ambiguous, bool)
  return float(np.mean((counts < threshold) == ambiguous))


def fit_ambiguity_threshold(counts, ambiguous, num_samples):
  """Best threshold t in 0..num_samples+1 for "ambiguous iff count < t".

  Ties go to the smallest t. The one-sided rule fits LIDC crops, where every
  crop has at least one lesion mark, so unambiguous = all graders mark it and
  a calibrated model puts a lesion in (nearly) every sample.

  Returns:
    (threshold, accuracy) on the given (validation) data.
  """
  accs = [ambiguity_accuracy(counts, ambiguous, t)
          for t in range(num_samples + 2)]
  best = int(np.argmax(accs))
  return best, accs[best]


def ambiguity_detection(val_counts, val_ambiguous, test_counts,
                        test_ambiguous, num_samples=16):
  """Threshold fitted on validation, accuracy reported on test (App. E)."""
  t, val_acc = fit_ambiguity_threshold(val_counts, val_ambiguous,
                                       num_samples)
  return AmbiguityResult(t, val_acc,
                         ambiguity_accuracy(test_counts, test_ambiguous, t))


# ----------------------------------------------------------------------------
# Bootstrap (B11).
# ----------------------------------------------------------------------------


class BootstrapResult(NamedTuple):
  mean: float  # point estimate: mean of the (non-NaN) per-image values.
  std: float  # std of the bootstrap replicate means.
  num_images: int  # non-NaN images used (per seed, summed over seeds).


def _replicate_means(values, num_resamples, rng):
  values = np.asarray(values, np.float64).reshape(-1)
  values = values[~np.isnan(values)]
  if values.size == 0:
    raise ValueError("bootstrap: no non-NaN per-image values.")
  idx = rng.integers(0, values.size, size=(num_resamples, values.size))
  return values, values[idx].mean(1)


def bootstrap(values_per_image, num_resamples=1000, seed=0):
  """Mean +- std of the mean by resampling test images with replacement.

  NaN images (e.g. GED undefined) are dropped first, like the reference
  evaluation. The std is the population std (ddof=0) of `num_resamples`
  replicate means; `seed` makes it deterministic.
  """
  rng = np.random.default_rng(seed)
  values, means = _replicate_means(values_per_image, num_resamples, rng)
  return BootstrapResult(float(values.mean()), float(means.std()),
                         int(values.size))


def bootstrap_over_seeds(values_per_seed: Sequence[np.ndarray],
                         num_resamples=1000, seed=0):
  """B11: mean +- std over model seeds x bootstrap resamples of test images.

  For each model seed (one per-image value array each), `num_resamples`
  bootstrap replicate means are drawn (independent resampling per seed); all
  seeds x resamples replicates are pooled and their std reported, so the std
  covers both initialisation and test-set variability. The mean is the mean
  of the per-seed means.
  """
  rng = np.random.default_rng(seed)
  seed_means, pooled, total = [], [], 0
  for values in values_per_seed:
    kept, means = _replicate_means(values, num_resamples, rng)
    seed_means.append(kept.mean())
    pooled.append(means)
    total += kept.size
  if not pooled:
    raise ValueError("bootstrap_over_seeds: no seeds given.")
  return BootstrapResult(float(np.mean(seed_means)),
                         float(np.concatenate(pooled).std()), total)
