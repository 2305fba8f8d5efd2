# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Throughput of the augmented training input pipeline (host CPU only).

Prints ONE JSON object: hardware, versions, config and examples/s for
LIDC-size (180x180x1 -> augmented 128x128 crop) and Cityscapes-size
(512x1024x3, car instances, colour + elastic + affine) training examples,
through the same code path as `create_train_dataset` after the TFDS read
(an in-memory store of PNG-encoded examples -> decode -> labels -> one warp
per example -> batch). Synthetic content, so no dataset is needed.

  python benchmarks/input_pipeline.py [--lidc_batches 30] \
      [--cityscapes_batches 10] [--num_parallel_calls -1]
"""

# pylint: disable=g-import-not-at-top,wrong-import-position,protected-access
import argparse
import os
import time

import common  # benchmarks/common.py; puts the repository on sys.path
import numpy as np
import tensorflow as tf

from hpunet import input_pipeline as ip


def _smooth(rng, n, h, w, c, cells):
  """Smooth random images in [0, 255] (bicubic upsampled noise + noise)."""
  coarse = rng.uniform(0, 255, (n, h // cells + 2, w // cells + 2, c))
  up = tf.image.resize(coarse.astype(np.float32), (h, w), "bicubic").numpy()
  up += rng.normal(0, 6, up.shape)
  return np.clip(up, 0, 255).astype(np.uint8)


def _regions(rng, n, h, w, values, count):
  out = np.zeros((n, h, w), np.int32)
  for i in range(n):
    for _ in range(count):
      y, x = rng.integers(0, h), rng.integers(0, w)
      out[i, y:y + rng.integers(h // 16, h // 3),
          x:x + rng.integers(w // 16, w // 3)] = rng.choice(values)
  return out


def _lidc_arrays(rng, n):
  masks = np.stack([_regions(rng, n, 180, 180, [1], 2) for _ in range(4)], -1)
  return {"image": _smooth(rng, n, 180, 180, 1, 16),
          "masks": masks.astype(np.uint8),
          "image_id": np.array([b"lidc%04d" % i for i in range(n)])}


def _cityscapes_arrays(rng, n):
  label = _regions(rng, n, 512, 1024, list(range(19)) + [255], 30)
  inst = _regions(rng, n, 512, 1024, list(range(26001, 26011)), 8)
  label[inst > 0] = 13
  return {"image": _smooth(rng, n, 512, 1024, 3, 32),
          "label": label.astype(np.uint8), "car_instances": inst,
          "image_id": np.array([b"city%04d" % i for i in range(n)])}


def _measure(name, arrays, batch, num_batches, num_parallel_calls):
  cfg = ip.default_input_config(name)
  cfg.num_parallel_calls = num_parallel_calls
  cfg.prefetch = 2
  s = ip._Settings(cfg)
  t0 = time.perf_counter()
  store = ip._store_from_arrays(arrays, s)
  t_store = time.perf_counter() - t0
  ds = ip._train_dataset_from_store(
      store, s, seed=0, start_step=0, local_batch=batch, process_index=0)
  it = ds.as_numpy_iterator()
  for _ in range(2):  # warm-up: tracing, thread pools, prefetch fill
    next(it)
  t0 = time.perf_counter()
  for _ in range(num_batches):
    b = next(it)
  dt = time.perf_counter() - t0
  return {
      "task": name,
      "input_hw": list(s.image_size),
      "output_hw": list(b["image"].shape[1:3]),
      "channels": int(b["image"].shape[-1]),
      "batch": batch,
      "batches_timed": num_batches,
      "examples_per_s": round(batch * num_batches / dt, 2),
      "ms_per_example": round(1000 * dt / (batch * num_batches), 3),
      "store_examples": store.size,
      "store_build_s": round(t_store, 2),
      "augment": dict(s.aug.to_dict()),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--lidc_batches", type=int, default=30)
  parser.add_argument("--cityscapes_batches", type=int, default=10)
  parser.add_argument("--num_parallel_calls", type=int, default=-1)
  args = parser.parse_args()
  tf.config.set_visible_devices([], "GPU")
  rng = np.random.default_rng(0)
  results = {
      "lidc": _measure("lidc", _lidc_arrays(rng, 256), 32, args.lidc_batches,
                       args.num_parallel_calls),
      "cityscapes_cars": _measure(
          "cityscapes_cars", _cityscapes_arrays(rng, 48), 8,
          args.cityscapes_batches, args.num_parallel_calls),
  }
  config = {"num_parallel_calls": args.num_parallel_calls,
            "usable_cpus": len(os.sched_getaffinity(0)),
            "note": "training path after the TFDS read; synthetic content;"
                    " examples/s after 2 warm-up batches"}
  common.emit(common.report("input_pipeline", config, results))


if __name__ == "__main__":
  main()
