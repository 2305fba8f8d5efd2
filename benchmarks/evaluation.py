# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Times GED^2 + Hungarian-matched IoU over a LIDC-sized test set.

1,992 images x 16 samples x 4 graders of 128x128 (the HPU-Net paper's LIDC
test set), evaluated in chunks of `--chunk` images as an evaluator would
(only the metric calls are timed, not the synthetic data generation).
Also times, on one chunk, the same GED computed with float32 BLAS matmuls of
the flattened masks (the alternative to `hpunet.metrics`' bit-packed
popcount inner products).
Synthetic masks: a lesion disc near the centre (radius 3-15 px) per image;
each grader / sample jitters its centre (+-3 px) and radius (+-30%), and is
empty with probability 0.25 (graders) / 0.2 (samples).

Prints ONE JSON object (benchmarks/common.py): hardware, versions, config,
seconds.

Usage: python benchmarks/evaluation.py [--images 1992] [--samples 16]
  [--graders 4] [--size 128] [--chunk 128]
"""

import argparse
import time
from typing import Any

import common  # benchmarks/common.py (also puts the repo on sys.path)
import numpy as np

from hpunet import metrics


def _lesion_masks(rng, num_images, num_masks, size, p_empty):
  base_r = rng.uniform(3, 15, (num_images, 1))
  centre = size / 2 + rng.uniform(-3, 3, (num_images, num_masks, 2))
  radius = base_r * rng.uniform(0.7, 1.3, (num_images, num_masks))
  yy, xx = np.mgrid[:size, :size].astype(np.float32)
  d2 = ((yy - centre[..., 0, None, None])**2 +
        (xx - centre[..., 1, None, None])**2)
  masks = d2 <= (radius**2)[..., None, None]
  masks &= (rng.random((num_images, num_masks)) >= p_empty)[..., None, None]
  return masks


def _matmul_ged(samples, graders):
  """GED via float32 matmuls (the rejected alternative), for comparison."""

  def dist(a, b):
    af = a.reshape(a.shape[:2] + (-1,)).astype(np.float32)
    bf = b.reshape(b.shape[:2] + (-1,)).astype(np.float32)
    inter = np.matmul(af, np.swapaxes(bf, 1, 2)).astype(np.float64)
    union = af.sum(-1)[:, :, None] + bf.sum(-1)[:, None, :] - inter
    return 1.0 - np.where(union > 0, inter / np.maximum(union, 1), 1.0)

  return metrics.ged_from_distances(dist(samples, graders),
                                    dist(samples, samples),
                                    dist(graders, graders))


def main(argv=None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--images", type=int, default=1992)
  parser.add_argument("--samples", type=int, default=16)
  parser.add_argument("--graders", type=int, default=4)
  parser.add_argument("--size", type=int, default=128)
  parser.add_argument("--chunk", type=int, default=128)
  args = parser.parse_args(argv)
  rng = np.random.default_rng(0)
  t_ged = t_hm = 0.0
  geds, hms = [], []
  for start in range(0, args.images, args.chunk):
    b = min(args.chunk, args.images - start)
    graders = _lesion_masks(rng, b, args.graders, args.size, 0.25)
    graders[:, 0] |= ~graders.any((1, 2, 3))[:, None, None]  # >= 1 lesion
    samples = _lesion_masks(rng, b, args.samples, args.size, 0.2)
    t0 = time.perf_counter()
    geds.append(metrics.ged(samples, graders))
    t1 = time.perf_counter()
    hms.append(metrics.hungarian_iou(samples, graders))
    t2 = time.perf_counter()
    t_ged += t1 - t0
    t_hm += t2 - t1
  # Baseline for the design choice: the same GED via float32 BLAS matmuls
  # of the flattened masks instead of bit-packed popcounts (subset).
  sub = min(args.chunk, args.images)
  graders = _lesion_masks(rng, sub, args.graders, args.size, 0.25)
  samples = _lesion_masks(rng, sub, args.samples, args.size, 0.2)
  t0 = time.perf_counter()
  fast = metrics.ged(samples, graders)
  t_sub_fast = time.perf_counter() - t0
  t0 = time.perf_counter()
  slow = _matmul_ged(samples, graders)
  t_sub_matmul = time.perf_counter() - t0
  np.testing.assert_allclose(fast, slow, atol=1e-9)
  geds = np.concatenate(geds)
  hms = np.concatenate(hms)
  t0 = time.perf_counter()
  boot = metrics.bootstrap(geds, num_resamples=1000, seed=0)
  t_boot = time.perf_counter() - t0
  settings = {
      "description": "LIDC-sized evaluation: GED^2 (V-statistic) + "
                     "Hungarian-matched IoU",
      "images": args.images, "samples": args.samples,
      "graders": args.graders, "size": args.size, "chunk": args.chunk,
      "timing": "metric calls only (not the synthetic data), seconds",
  }
  results = {
      "seconds_ged": round(t_ged, 6),
      "seconds_hungarian_iou": round(t_hm, 6),
      "seconds_total": round(t_ged + t_hm, 6),
      "seconds_bootstrap_1000": round(t_boot, 6),
      "baseline_subset_images": sub,
      "seconds_ged_subset_popcount": round(t_sub_fast, 6),
      "seconds_ged_subset_float32_matmul": round(t_sub_matmul, 6),
      "mean_ged": round(float(geds.mean()), 4),
      "mean_hungarian_iou": round(float(hms.mean()), 4),
      "bootstrap_ged": [round(boot.mean, 4), round(boot.std, 4)],
  }
  obj = common.report("evaluation", settings, results)
  common.emit(obj)
  return obj

if __name__ == "__main__":
  main()
