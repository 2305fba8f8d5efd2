# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Instance maps from label samples: HPU-Net Algorithm 1 and Appendix H.

`cluster_samples` is the Hamming-distance greedy clustering (Algorithm 1) of
`n` argmax label samples `[n, H, W]`; `postprocess` is the erosion-based
clean-up (Appendix H); `instance_segmentation` chains both.

Algorithm 1, as implemented
  * The Hamming distance between the one-hot codes of two pixels is
    2 x (number of samples whose labels differ), so label stacks are compared
    directly; a pixel joins a cluster iff that distance is <= `alpha`.
  * Cluster 0 is the background: its prototype is `background_label` in every
    sample. It is created first even if it ends up empty.
  * Then, while pixels are unassigned, a prototype is drawn uniformly at random
    among the unassigned pixels, gets the next cluster id, and every
    unassigned pixel within `alpha` of it joins.
  * The random draw, fixed so that results are reproducible and independent
    of the implementation: `u = rng.integers(num_unassigned)` with
    `rng = np.random.default_rng(seed)`, then the u-th unassigned pixel in the
    order (first raster occurrence of the pixel's code, raster index). As
    every pixel of a code is assigned together, this is a uniform draw over
    unassigned pixels.
  * For Cityscapes, first collapse all non-car classes to background with
    `collapse_to_instance_ids` (the paper does not spell this out).

Speed: pixels are deduplicated by their code (the stack of n labels) with a
64-bit hash verified for collisions; each unique code is bit-packed into
`bits x ceil(n/64)` uint64 words (one bit-plane per label bit), so one
prototype's distances to all remaining codes are a few XOR/OR and one popcount
per word. Cost per cluster is O(#unassigned unique codes), not O(HW).

Appendix H post-processing (`postprocess`), visiting order fixed here:
  * Clusters are visited in ascending id (1, 2, ...; cluster 0 = background
    is never eroded). Each is tested on the *current* map: it survives iff its
    binary erosion with an n x n square (scipy.ndimage.binary_erosion, outside
    the image counts as not-in-cluster) is non-empty.
  * The pixels of a vanished cluster are repainted in raster order, on the
    fly (later pixels see earlier repaints), with the majority label in the
    m x m box centred on the pixel (clipped at the image border), ignoring the
    cluster's own label and the background; ties go to the smallest label.
  * With no valid neighbour: `empty_neighbourhood="keep"` keeps the pixel's
    label (SNEMI3D), `"background"` paints the background label (Cityscapes).
  * A cluster that grows by repainting after its own visit is not revisited.
"""

from typing import Optional, Sequence, Union

import numpy as np
from scipy import ndimage

SeedLike = Union[int, np.random.Generator]

_HASH_MULTIPLIERS = np.array([
    0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
    0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53,
    0x94D049BB133111EB, 0xBF58476D1CE4E5B9
], dtype=np.uint64)


def _rng(seed: SeedLike) -> np.random.Generator:
  if isinstance(seed, np.random.Generator):
    return seed
  return np.random.default_rng(seed)


def collapse_to_instance_ids(samples, instance_ids: Sequence[int]):
  """Maps `instance_ids[k]` -> k + 1 and every other label -> 0 (background).

  For Cityscapes cars, pass the car-id classes: all non-car classes (road,
  building, ... and the ignore label) collapse into one background label, so
  the background prototype of Algorithm 1 is meaningful.

  Args:
    samples: int label maps, any shape.
    instance_ids: the stochastic instance/car ids to keep (at most 255).

  Returns:
    uint8 array of the same shape.
  """
  samples = np.asarray(samples)
  ids = np.asarray(instance_ids, np.int64).reshape(-1)
  if ids.size > 255 or len(set(ids.tolist())) != ids.size:
    raise ValueError(f"collapse_to_instance_ids: need <= 255 distinct ids, "
                     f"got {instance_ids}.")
  out = np.zeros(samples.shape, np.uint8)
  for k, i in enumerate(ids):
    out[samples == i] = k + 1
  return out


def _hash_rows(w):
  """64-bit mixing hash of each row of a uint64 array [P, words]."""
  h = np.zeros(w.shape[0], np.uint64)
  for k in range(w.shape[1]):
    x = (w[:, k] ^ np.uint64(k + 1)) * _HASH_MULTIPLIERS[
        k % len(_HASH_MULTIPLIERS)]
    x ^= x >> np.uint64(31)
    h = (h ^ x) * np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(29)
  return h


def _unique_codes(flat):
  """Unique rows of `flat` [P, n] (uint8), ordered by first occurrence.

  Returns (codes [K, n], counts [K], inverse [P]).
  """
  num_pixels, n = flat.shape
  words = -(-n // 8)
  padded = np.zeros((num_pixels, words * 8), np.uint8)
  padded[:, :n] = flat
  w = padded.view(np.uint64)  # [P, words]
  _, first, inverse = np.unique(_hash_rows(w), return_index=True,
                                return_inverse=True)
  if not np.array_equal(w, w[first[inverse]]):  # hash collision: exact path
    _, first, inverse = np.unique(w, axis=0, return_index=True,
                                  return_inverse=True)
  inverse = inverse.reshape(-1)
  # Reorder unique codes by first raster occurrence.
  order = np.argsort(first, kind="stable")
  rank = np.empty_like(order)
  rank[order] = np.arange(order.size)
  inverse = rank[inverse]
  counts = np.bincount(inverse, minlength=order.size)
  return flat[first[order]], counts, inverse


def _bit_planes(codes, num_bits):
  """Packs codes [K, n] (labels < 2**num_bits) to [K, num_bits, ceil(n/64)]."""
  k, n = codes.shape
  words = -(-n // 64)
  planes = np.zeros((k, num_bits, words * 64), np.uint8)
  for b in range(num_bits):
    planes[:, b, :n] = (codes >> b) & 1
  packed = np.packbits(planes, axis=-1, bitorder="little")
  return np.ascontiguousarray(packed).view(np.uint64)


def _num_differing(planes, proto):
  """Number of samples whose labels differ from `proto`, for each code."""
  diff = planes[:, 0, :] ^ proto[0]
  for b in range(1, planes.shape[1]):
    diff |= planes[:, b, :] ^ proto[b]
  return np.bitwise_count(diff).sum(-1, dtype=np.int64)


def cluster_samples(samples, *, alpha: int, background_label: int = 0,
                    seed: SeedLike = 0):
  """Hamming-distance greedy clustering (HPU-Net Algorithm 1).

  Args:
    samples: int `[n, H, W]` argmax label samples (non-negative labels).
    alpha: Hamming threshold on one-hot codes (16 for SNEMI3D with 16
      samples, 32 for Cityscapes with 32); joins iff 2 * #differing <= alpha.
    background_label: label of the background prototype (cluster 0).
    seed: int or `np.random.Generator` for the prototype draws.

  Returns:
    int32 `[H, W]` instance map; 0 = background cluster, 1.. in creation
    order.
  """
  samples = np.asarray(samples)
  if samples.ndim != 3:
    raise ValueError(f"cluster_samples: expected samples [n, H, W], got "
                     f"{samples.shape}.")
  if alpha < 0:
    raise ValueError(f"cluster_samples: alpha must be >= 0, got {alpha}.")
  if samples.size and (samples.min() < 0):
    raise ValueError("cluster_samples: labels must be non-negative.")
  rng = _rng(seed)
  n, height, width = samples.shape
  max_label = max(int(samples.max()) if samples.size else 0,
                  int(background_label))
  if max_label < 256:
    flat = np.ascontiguousarray(samples.reshape(n, -1).T.astype(np.uint8))
  else:  # wide labels: remap to compact ids first.
    values, compact = np.unique(
        np.concatenate([samples.reshape(-1), [background_label]]),
        return_inverse=True)
    if values.size > 256:
      raise ValueError("cluster_samples: more than 256 distinct labels.")
    background_label = int(compact[-1])
    flat = np.ascontiguousarray(
        compact[:-1].reshape(n, -1).T.astype(np.uint8))
    max_label = values.size - 1
  codes, counts, inverse = _unique_codes(flat)
  num_bits = max(1, int(max_label).bit_length())
  planes = _bit_planes(codes, num_bits)
  bg_code = np.full((1, n), background_label, np.uint8)
  bg_planes = _bit_planes(bg_code, num_bits)[0]

  code_cluster = np.full(codes.shape[0], -1, np.int32)
  # Cluster 0: background prototype.
  join = 2 * _num_differing(planes, bg_planes) <= alpha
  code_cluster[join] = 0
  # Unassigned codes, kept compact and in first-occurrence order.
  keep = ~join
  rem_ids, rem_planes, rem_counts = (
      np.flatnonzero(keep), planes[keep], counts[keep])
  cluster = 1
  while rem_ids.size:
    cum = np.cumsum(rem_counts)
    u = rng.integers(int(cum[-1]))
    proto = rem_planes[np.searchsorted(cum, u, side="right")].copy()
    join = 2 * _num_differing(rem_planes, proto) <= alpha
    code_cluster[rem_ids[join]] = cluster
    keep = ~join
    rem_ids, rem_planes, rem_counts = (
        rem_ids[keep], rem_planes[keep], rem_counts[keep])
    cluster += 1
  return code_cluster[inverse].reshape(height, width)


def _majority(window, own, background):
  vals = window.reshape(-1)
  vals = vals[(vals != own) & (vals != background)]
  if vals.size == 0:
    return None
  labels, counts = np.unique(vals, return_counts=True)
  return labels[np.argmax(counts)]  # ties: smallest label (sorted).


def postprocess(instances, *, erosion_size: int = 5, box_size: int = 11,
                empty_neighbourhood: str = "keep", background_label: int = 0):
  """HPU-Net Appendix H clean-up of an instance map (order in module doc).

  Args:
    instances: int `[H, W]` instance map from `cluster_samples`.
    erosion_size: n of the n x n erosion element (5).
    box_size: odd m of the m x m majority box (11).
    empty_neighbourhood: "keep" (SNEMI3D) or "background" (Cityscapes).
    background_label: the background cluster id (0).

  Returns:
    int32 `[H, W]` cleaned instance map (ids are not renumbered).
  """
  if empty_neighbourhood not in ("keep", "background"):
    raise ValueError("postprocess: empty_neighbourhood must be 'keep' or "
                     f"'background', got {empty_neighbourhood!r}.")
  if box_size % 2 != 1 or box_size < 1:
    raise ValueError(f"postprocess: box_size must be odd, got {box_size}.")
  out = np.array(instances, dtype=np.int32, copy=True)
  if out.ndim != 2:
    raise ValueError(f"postprocess: expected [H, W], got {out.shape}.")
  height, width = out.shape
  if out.min(initial=0) < 0:
    raise ValueError("postprocess: instance ids must be non-negative.")
  structure = np.ones((erosion_size, erosion_size), bool)
  half = box_size // 2
  # Bounding boxes [r0, r1, c0, c1) per id, kept up to date while painting.
  boxes = {}
  for lab, sl in enumerate(ndimage.find_objects(out), start=1):
    if sl is not None:
      boxes[lab] = [sl[0].start, sl[0].stop, sl[1].start, sl[1].stop]
  boxes.pop(background_label, None)
  for lab in sorted(boxes):
    r0, r1, c0, c1 = boxes[lab]
    mask = out[r0:r1, c0:c1] == lab
    if not mask.any():
      continue
    if (r1 - r0 >= erosion_size and c1 - c0 >= erosion_size and
        ndimage.binary_erosion(mask, structure=structure).any()):
      continue
    rows, cols = np.nonzero(mask)
    for r, c in zip(rows + r0, cols + c0):
      window = out[max(r - half, 0):r + half + 1, max(c - half, 0):c + half + 1]
      new = _majority(window, lab, background_label)
      if new is None:
        if empty_neighbourhood == "keep":
          continue
        new = background_label
      out[r, c] = new
      box = boxes.get(int(new))
      if box is not None:
        box[0], box[1] = min(box[0], r), max(box[1], r + 1)
        box[2], box[3] = min(box[2], c), max(box[3], c + 1)
  return out


def instance_segmentation(samples, *, alpha: int, seed: SeedLike = 0,
                          instance_ids: Optional[Sequence[int]] = None,
                          background_label: int = 0, erosion_size: int = 5,
                          box_size: int = 11,
                          empty_neighbourhood: str = "keep"):
  """Algorithm 1 + Appendix H on argmax samples `[n, H, W]`.

  SNEMI3D: `alpha=16`, 16 samples, `empty_neighbourhood="keep"`.
  Cityscapes cars: `alpha=32`, 32 samples, `instance_ids` = the car-id
  classes (everything else collapses to background 0),
  `empty_neighbourhood="background"`.
  """
  if instance_ids is not None:
    samples = collapse_to_instance_ids(samples, instance_ids)
    background_label = 0
  clusters = cluster_samples(samples, alpha=alpha,
                             background_label=background_label, seed=seed)
  return postprocess(clusters, erosion_size=erosion_size, box_size=box_size,
                     empty_neighbourhood=empty_neighbourhood,
                     background_label=0)
