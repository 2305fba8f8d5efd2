# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Tests for hpunet.clustering against straightforward reference versions."""

import numpy as np
import pytest
from scipy import ndimage

from hpunet import clustering


def naive_cluster(samples, alpha, background_label=0, seed=0):
  """Literal Algorithm 1 (pixel loops), with the module's random-draw rule."""
  rng = np.random.default_rng(seed)
  n, h, w = samples.shape
  codes = samples.reshape(n, -1).T  # [P, n]
  first_seen = {}
  first = np.array([first_seen.setdefault(c.tobytes(), i)
                    for i, c in enumerate(codes)])
  inst = np.full(h * w, -1)
  proto = np.full(n, background_label)
  for j in range(h * w):  # cluster 0: background prototype
    if 2 * np.sum(codes[j] != proto) <= alpha:
      inst[j] = 0
  c = 1
  while (inst == -1).any():
    unassigned = np.flatnonzero(inst == -1)
    unassigned = unassigned[np.argsort(first[unassigned], kind="stable")]
    i = unassigned[rng.integers(len(unassigned))]
    proto = codes[i]
    inst[i] = c
    for j in unassigned:
      if inst[j] == -1 and 2 * np.sum(codes[j] != proto) <= alpha:
        inst[j] = c
    c += 1
  return inst.reshape(h, w)


def naive_postprocess(inst, n=5, m=11, empty="keep", background=0):
  """Appendix H with full-image erosions, same visiting order."""
  out = inst.copy()
  half = m // 2
  for lab in sorted(set(np.unique(out).tolist()) - {background}):
    mask = out == lab
    if ndimage.binary_erosion(mask, structure=np.ones((n, n))).any():
      continue
    for r, c in zip(*np.nonzero(mask)):
      win = out[max(r - half, 0):r + half + 1, max(c - half, 0):c + half + 1]
      vals = win[(win != lab) & (win != background)]
      if vals.size:
        labels, counts = np.unique(vals, return_counts=True)
        out[r, c] = labels[np.argmax(counts)]
      elif empty == "background":
        out[r, c] = background
  return out


def _objects(shape, rects):
  obj = np.zeros(shape, np.int32)
  for k, (r0, r1, c0, c1) in enumerate(rects, start=1):
    obj[r0:r1, c0:c1] = k
  return obj


def _flip_samples(objects, num_samples, num_ids, rng, noise=0.0):
  """Each object takes an independent random id in 1..num_ids per sample."""
  out = []
  for _ in range(num_samples):
    lut = np.concatenate([[0], rng.integers(1, num_ids + 1, objects.max())])
    s = lut[objects]
    flip = rng.random(objects.shape) < noise
    s[flip] = rng.integers(0, num_ids + 1, flip.sum())
    out.append(s)
  return np.stack(out).astype(np.uint8)


def _same_partition(a, b):
  pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
  return (pairs.shape[1] == np.unique(a).size == np.unique(b).size)


_RECTS = [(1, 9, 1, 12), (2, 10, 14, 22), (12, 20, 3, 9), (13, 22, 12, 23)]


@pytest.mark.parametrize("noise,alpha,num_samples,seed", [
    (0.0, 16, 16, 0), (0.15, 16, 16, 1), (0.3, 8, 12, 2), (0.5, 20, 10, 3),
    (0.9, 6, 5, 4), (0.2, 0, 6, 5), (0.2, 200, 70, 6),
])
def test_fast_clustering_equals_naive(noise, alpha, num_samples, seed):
  rng = np.random.default_rng(seed)
  obj = _objects((24, 26), _RECTS)
  samples = _flip_samples(obj, num_samples, 15, rng, noise)
  fast = clustering.cluster_samples(samples, alpha=alpha, seed=seed)
  np.testing.assert_array_equal(fast, naive_cluster(samples, alpha, 0, seed))
  assert fast.dtype == np.int32


def test_fast_clustering_equals_naive_other_background_and_wide_labels():
  rng = np.random.default_rng(7)
  samples = rng.integers(0, 4, (8, 12, 13))
  samples[:, 3:9, 3:9] = 2
  fast = clustering.cluster_samples(samples, alpha=6, background_label=2,
                                    seed=3)
  np.testing.assert_array_equal(fast, naive_cluster(samples, 6, 2, 3))
  wide = samples.astype(np.int64) * 1000 + 7  # labels > 255: remapped.
  np.testing.assert_array_equal(
      clustering.cluster_samples(wide, alpha=6, background_label=2007,
                                 seed=3), fast)
  rng_gen = np.random.default_rng(3)
  np.testing.assert_array_equal(
      clustering.cluster_samples(samples, alpha=6, background_label=2,
                                 seed=rng_gen), fast)


def test_hash_collisions_fall_back_to_exact_unique(monkeypatch):
  rng = np.random.default_rng(12)
  samples = _flip_samples(_objects((24, 26), _RECTS), 9, 15, rng, 0.3)
  expected = clustering.cluster_samples(samples, alpha=8, seed=1)
  monkeypatch.setattr(clustering, "_hash_rows",
                      lambda w: np.zeros(w.shape[0], np.uint64))
  np.testing.assert_array_equal(
      clustering.cluster_samples(samples, alpha=8, seed=1), expected)


def test_clustering_recovers_k_objects_exactly():
  rng = np.random.default_rng(8)
  obj = _objects((24, 26), _RECTS)
  samples = _flip_samples(obj, 16, 15, rng)
  inst = clustering.instance_segmentation(samples, alpha=16, seed=0)
  assert _same_partition(inst, obj)
  np.testing.assert_array_equal(inst == 0, obj == 0)  # background = 0
  assert np.unique(inst).size == len(_RECTS) + 1


def test_collapse_to_instance_ids():
  x = np.array([[0, 13, 19], [23, 255, 20]])
  np.testing.assert_array_equal(
      clustering.collapse_to_instance_ids(x, range(19, 24)),
      [[0, 0, 1], [5, 0, 2]])
  with pytest.raises(ValueError, match="distinct"):
    clustering.collapse_to_instance_ids(x, [19, 19])


def test_cityscapes_style_pipeline_collapses_non_car_classes():
  rng = np.random.default_rng(9)
  obj = _objects((24, 26), _RECTS[:2])
  samples = _flip_samples(obj, 32, 5, rng) + 18  # car ids 19..23
  scene = rng.integers(0, 19, (32, 24, 26))  # random non-car classes
  samples = np.where(obj > 0, samples, scene)
  inst = clustering.instance_segmentation(
      samples, alpha=32, seed=0, instance_ids=range(19, 24),
      empty_neighbourhood="background")
  assert _same_partition(inst, obj)
  np.testing.assert_array_equal(inst == 0, obj == 0)


def test_postprocess_removes_planted_two_pixel_fragment():
  inst = _objects((20, 20), [(2, 12, 2, 12), (2, 12, 13, 19)])
  inst[12, 5:7] = 3  # 2-pixel fragment at the border of object 1
  out = clustering.postprocess(inst)
  expected = inst.copy()
  expected[12, 5:7] = 1
  np.testing.assert_array_equal(out, expected)
  # End to end: two pixels whose samples consistently disagree.
  rng = np.random.default_rng(10)
  obj = _objects((20, 20), [(2, 12, 2, 12)])
  samples = _flip_samples(obj, 16, 15, rng)
  samples[:, 6, 6:8] = (samples[:, 5, 5, None] % 15) + 1  # never obj 1's id
  clusters = clustering.cluster_samples(samples, alpha=16, seed=0)
  assert np.unique(clusters).size == 3
  inst = clustering.postprocess(clusters)
  assert np.unique(inst).size == 2
  assert _same_partition(inst, obj)


def test_postprocess_empty_neighbourhood_and_ties():
  inst = np.zeros((15, 15), np.int32)
  inst[7, 7:9] = 4  # isolated fragment: no valid neighbour
  np.testing.assert_array_equal(clustering.postprocess(inst), inst)
  np.testing.assert_array_equal(
      clustering.postprocess(inst, empty_neighbourhood="background"),
      np.zeros_like(inst))
  # Tie: the fragment's 11x11 box holds 10 pixels of 2 and 10 of 5.
  for top, bottom in [(2, 5), (5, 2)]:
    inst = np.zeros((17, 17), np.int32)
    inst[0:5, 0:5] = top
    inst[12:17, 0:5] = bottom
    inst[8, 2] = 9
    out = clustering.postprocess(inst)
    assert out[8, 2] == 2  # smallest label wins the tie
    np.testing.assert_array_equal(out, naive_postprocess(inst))
  # On-the-fly painting: thin clusters 2 and 5 vanish first (ascending ids)
  # and are painted with 9, the only other label in their boxes; 9 then has
  # no valid neighbour left and is kept.
  inst = np.zeros((11, 11), np.int32)
  inst[0, :3] = 5
  inst[10, :3] = 2
  inst[5, 5] = 9
  out = clustering.postprocess(inst)
  np.testing.assert_array_equal(out, np.where(inst > 0, 9, 0))
  np.testing.assert_array_equal(out, naive_postprocess(inst))


def test_fast_postprocess_equals_naive():
  rng = np.random.default_rng(11)
  for trial in range(6):
    blocks = rng.integers(0, 8, (6, 6))
    inst = np.kron(blocks, np.ones((7, 7), np.int32))[:40, :40]
    frag = rng.random(inst.shape) < 0.03
    inst[frag] = rng.integers(8, 30, frag.sum())
    empty = "keep" if trial % 2 else "background"
    np.testing.assert_array_equal(
        clustering.postprocess(inst, empty_neighbourhood=empty),
        naive_postprocess(inst, empty=empty))


def test_errors():
  with pytest.raises(ValueError, match=r"\[n, H, W\]"):
    clustering.cluster_samples(np.zeros((3, 3)), alpha=1)
  with pytest.raises(ValueError, match="empty_neighbourhood"):
    clustering.postprocess(np.zeros((3, 3), int), empty_neighbourhood="x")
  with pytest.raises(ValueError, match="odd"):
    clustering.postprocess(np.zeros((3, 3), int), box_size=10)
