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

Case names carry the sample shape, so they only change with the sizes.
Prints ONE JSON object (benchmarks/common.py).

Usage: python benchmarks/clustering.py [--repeats 3]
  [--cityscapes_shape 32,512,1024] [--snemi_shape 16,256,256]
"""

import argparse
import time
from typing import Any

import common  # benchmarks/common.py (also puts the repo on sys.path)
import numpy as np
from scipy import ndimage

from hpunet import clustering


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
    # Radii 6..60 px at 512 rows (the defaults draw exactly that), scaled
    # with the height so that small test images still fit.
    ry = rng.integers(max(1, 6 * h // 512), max(2, 60 * h // 512))
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


def _shape(text: str) -> tuple[int, int, int]:
  s, h, w = (int(v) for v in text.split(","))
  return s, h, w


def main(argv=None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--cityscapes_shape", default="32,512,1024",
                      help="samples,H,W of the Cityscapes-like cases.")
  parser.add_argument("--snemi_shape", default="16,256,256",
                      help="samples,H,W of the SNEMI3D-like case.")
  args = parser.parse_args(argv)
  cs, ch, cw = _shape(args.cityscapes_shape)
  ss, sh, sw = _shape(args.snemi_shape)
  rng = np.random.default_rng(0)
  city = f"cityscapes_{cs}x{ch}x{cw}"
  cases = {
      city: dict(
          samples=cityscapes_like(rng, cs, (ch, cw)), alpha=32,
          instance_ids=list(range(19, 24)), empty_neighbourhood="background"),
      city + "_stress_speckle10pct": dict(
          samples=cityscapes_like(rng, cs, (ch, cw), speckle_p=0.1),
          alpha=32, instance_ids=list(range(19, 24)),
          empty_neighbourhood="background"),
      f"snemi3d_{ss}x{sh}x{sw}": dict(
          samples=snemi_like(rng, ss, (sh, sw)), alpha=16, instance_ids=None,
          empty_neighbourhood="keep"),
  }
  results = {}
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
    results[name] = {
        "samples_shape": list(samples.shape),
        "alpha": case["alpha"],
        "unique_codes": int(np.unique(flat.T, axis=0).shape[0]),
        "clusters": int(clusters.max()) + 1,
        "clusters_after_postprocess": int(np.unique(cleaned).size),
        "seconds_cluster": [round(t_cl, 6), round(t_cl_med, 6)],
        "seconds_postprocess": [round(t_pp, 6), round(t_pp_med, 6)],
        "seconds_total_incl_collapse": [round(t_all, 6), round(t_all_med, 6)],
    }
    common.progress({name: results[name]["seconds_cluster"]})
  settings = {
      "description": "HPU-Net Algorithm 1 (Hamming clustering of samples) "
                     "+ Appendix H post-processing",
      "repeats": args.repeats,
      "timing": f"min and median of {args.repeats} runs, seconds",
      "cityscapes_shape": [cs, ch, cw],
      "snemi_shape": [ss, sh, sw],
      "cases": list(cases),
  }
  obj = common.report("clustering", settings, results)
  common.emit(obj)
  return obj


if __name__ == "__main__":
  main()
