# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Times Algorithm 1 + Appendix H (`hpunet.clustering`) on realistic inputs.

Prints ONE JSON object: hardware, versions, config and seconds for
  * Cityscapes cars: 32 samples @ 512x1024, 24 classes (19 trainIds + 5 car
    ids), alpha=32, non-car classes collapsed, empty neighbourhood ->
    background;
  * SNEMI3D: 16 samples @ 256x256, 16 classes (0 = membrane/background,
    15 instance ids), alpha=16, empty neighbourhood -> keep.

Synthetic samples are piecewise-constant instance maps (cars = ellipses on a
piecewise-constant street scene; neurites = Voronoi cells separated by 0
membranes) where every object takes an independent random id per sample, plus
per-sample noise: boundary pixels (within 2 px of an object edge) take a
neighbouring label with probability 0.3, each object is missed (labelled
background) in 3% of the samples, and 0.5% of all pixels per sample take a
random instance id (speckle, which makes many pixel codes unique; the
"stress" case uses 10%).

Usage: python benchmarks/clustering.py [--repeats 3]
"""

import common  # benchmarks/common.py (also puts the repo on sys.path)
import argparse
import json
import os
import platform
import sys
import time

import numpy as np
from scipy import ndimage

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hpunet import clustering  # pylint: disable=g-import-not-at-top




def _noisy_samples(objects, background, ids, num_samples, rng,
                   flip_p=0.3, miss_p=0.03, speckle_p=0.005):
  """Samples where object k (objects == k, k >= 1) takes a random id each."""
  num_obj = int(objects.max())
  edge = (ndimage.morphological_gradient(objects, size=(5, 5)) > 0)
  edge_idx = np.flatnonzero(edge)
  shifts = np.array([(-2, 0), (2, 0), (0, -2), (0, 2)])
  h, w = objects.shape
  er, ec = np.unravel_index(edge_idx, objects.shape)
  out = np.empty((num_samples,) + objects.shape, np.uint8)
  for s in range(num_samples):
    lut = np.concatenate([[0], rng.choice(ids, size=num_obj)])
    missed = np.concatenate([[False], rng.random(num_obj) < miss_p])
    sample = np.where(objects > 0, lut[objects], background)
    sample = np.where(missed[objects], background, sample)
    # Boundary noise: copy the label 2 px away in a random direction.
    flip = rng.random(edge_idx.size) < flip_p
    d = shifts[rng.integers(4, size=edge_idx.size)]
    rr = np.clip(er + d[:, 0], 0, h - 1)
    cc = np.clip(ec + d[:, 1], 0, w - 1)
    flat = sample.reshape(-1)
    flat[edge_idx[flip]] = sample[rr[flip], cc[flip]]
    # Speckle: isolated pixels take a random label.
    speckle = rng.random(flat.size) < speckle_p
    flat[speckle] = rng.choice(ids, size=int(speckle.sum()))
    out[s] = sample
  return out


def cityscapes_like(rng, num_samples=32, shape=(512, 1024), num_cars=20,
                    speckle_p=0.005):
  h, w = shape
  # Street scene: horizontal bands of trainIds (sky, building, ..., road).
  band_ids = np.array([10, 2, 8, 1, 0])
  rows = np.minimum((np.arange(h) * len(band_ids)) // h, len(band_ids) - 1)
  background = np.broadcast_to(band_ids[rows][:, None], shape).astype(np.uint8)
  objects = np.zeros(shape, np.int32)
  yy, xx = np.mgrid[:h, :w]
  for k in range(1, num_cars + 1):
    ry = rng.integers(6, 60)
    rx = int(ry * rng.uniform(1.5, 2.5))
    cy = rng.integers(h // 2, h - ry)
    cx = rng.integers(rx, w - rx)
    objects[((yy - cy) / ry)**2 + ((xx - cx) / rx)**2 <= 1] = k
  return _noisy_samples(objects, background, np.arange(19, 24), num_samples,
                        rng, speckle_p=speckle_p)


def snemi_like(rng, num_samples=16, shape=(256, 256), num_cells=40):
  h, w = shape
  seeds = np.stack([rng.integers(0, h, num_cells),
                    rng.integers(0, w, num_cells)], 1)
  yy, xx = np.mgrid[:h, :w]
  dist = ((yy[..., None] - seeds[:, 0])**2 + (xx[..., None] - seeds[:, 1])**2)
  cells = np.argmin(dist, -1).astype(np.int32) + 1
  membrane = ndimage.morphological_gradient(cells, size=(3, 3)) > 0
  objects = np.where(membrane, 0, cells)
  background = np.zeros(shape, np.uint8)
  return _noisy_samples(objects, background, np.arange(1, 16), num_samples,
                        rng)


def _time(fn, repeats):
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    result = fn()
    times.append(time.perf_counter() - t0)
  return min(times), float(np.median(times)), result


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  report = {
      "benchmark": "clustering (HPU-Net Algorithm 1 + Appendix H)",
      "hardware": {"cpu_model": common.cpu_model(), "cores": os.cpu_count(),
                   "machine": platform.machine()},
      "versions": {"python": platform.python_version(),
                   "numpy": np.__version__,
                   "scipy": __import__("scipy").__version__},
      "timing": f"min and median of {args.repeats} runs, seconds",
  }
  cases = {
      "cityscapes_32x512x1024": dict(
          samples=cityscapes_like(rng), alpha=32,
          instance_ids=list(range(19, 24)), empty_neighbourhood="background"),
      "cityscapes_32x512x1024_stress_speckle10pct": dict(
          samples=cityscapes_like(rng, speckle_p=0.1), alpha=32,
          instance_ids=list(range(19, 24)), empty_neighbourhood="background"),
      "snemi3d_16x256x256": dict(
          samples=snemi_like(rng), alpha=16, instance_ids=None,
          empty_neighbourhood="keep"),
  }
  for name, case in cases.items():
    samples = case["samples"]
    ids = case["instance_ids"]
    collapsed = (samples if ids is None else
                 clustering.collapse_to_instance_ids(samples, ids))
    t_cl, t_cl_med, clusters = _time(
        lambda: clustering.cluster_samples(collapsed, alpha=case["alpha"],
                                           seed=0), args.repeats)
    t_pp, t_pp_med, cleaned = _time(
        lambda: clustering.postprocess(
            clusters, empty_neighbourhood=case["empty_neighbourhood"]),
        args.repeats)
    t_all, t_all_med, _ = _time(
        lambda: clustering.instance_segmentation(
            samples, alpha=case["alpha"], seed=0, instance_ids=ids,
            empty_neighbourhood=case["empty_neighbourhood"]), args.repeats)
    flat = collapsed.reshape(collapsed.shape[0], -1)
    report[name] = {
        "samples_shape": list(samples.shape),
        "alpha": case["alpha"],
        "unique_codes": int(np.unique(flat.T, axis=0).shape[0]),
        "clusters": int(clusters.max()) + 1,
        "clusters_after_postprocess": int(np.unique(cleaned).size),
        "seconds_cluster": [round(t_cl, 4), round(t_cl_med, 4)],
        "seconds_postprocess": [round(t_pp, 4), round(t_pp_med, 4)],
        "seconds_total_incl_collapse": [round(t_all, 4), round(t_all_med, 4)],
    }
  print(json.dumps(report))


if __name__ == "__main__":
  main()
