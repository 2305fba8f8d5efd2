# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Augmented input pipeline throughput vs what the train step consumes.

Prints ONE JSON object (benchmarks/common.py) with examples/s for LIDC-size
(180x180x1 -> augmented 128x128 crop) and Cityscapes-size (512x1024x3, car
instances, colour + elastic + affine) training examples, through the same
code path as `create_train_dataset` after the TFDS read (an in-memory store
of PNG-encoded examples -> decode -> labels -> one warp per example ->
batch). Synthetic content, so no dataset is needed.

Each task is compared with the train step's images/s on the same machine:
`pipeline_over_train_step` = pipeline examples/s / train-step images/s
(> 1: the pipeline keeps up). The train step is measured here with
train_step.py's functions (LIDC: `configs/lidc.py` at train_step.py's batch,
i.e. 4 on CPU and the paper's 32 on accelerators; Cityscapes:
`configs/cityscapes.py` at one example per data-parallel device, since the
paper batch of 128 needs a pod slice), or read from a train_step.py JSON
(`--train_step_json`, `--cityscapes_train_step_json`).

  python benchmarks/input_pipeline.py [--lidc_batches 30] \
      [--cityscapes_batches 10] [--num_parallel_calls -1] \
      [--train_step_json results/train_step.json] [--no_train_step]

`results.lidc` and `results.cityscapes_cars`: the pipeline figures (task,
input_hw, output_hw, channels, batch, batches_timed, examples_per_s,
ms_per_example, store_examples, store_build_s, augment), `train_step`
(source: "measured" or the JSON's path, config, batch, image_size,
compute_dtype, images_per_second, step_seconds_median, devices, device_kind,
same_machine; null with --no_train_step) and `pipeline_over_train_step`.
On a 2-core CPU the default run takes about 3-4 minutes, most of it the
Cityscapes train step (compile ~25 s, ~17 s per step at batch 1).
"""

# pylint: disable=g-import-not-at-top,protected-access
import argparse
import json
import time
from typing import Any

import common  # benchmarks/common.py; puts the repository on sys.path
import numpy as np
import tensorflow as tf

from hpunet import config_lib
from hpunet import input_pipeline as ip

# Host keys that identify "the same machine" for a train_step.py JSON.
_HOST_KEYS = ("cpu", "cpu_cores", "machine")


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


# The experiment configs whose input settings (augmentation) are measured.
_CONFIGS = {"lidc": "lidc", "cityscapes_cars": "cityscapes"}


def _measure(name, arrays, batch, num_batches, num_parallel_calls):
  """Examples/s of the training pipeline over an in-memory store."""
  cfg = config_lib.load_config(_CONFIGS[name]).input
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
      "examples_per_s": common.sig(batch * num_batches / dt),
      "ms_per_example": round(1000 * dt / (batch * num_batches), 3),
      "store_examples": store.size,
      "store_build_s": round(t_store, 2),
      "augment": dict(s.aug.to_dict()),
  }


def _from_json(path: str) -> dict[str, Any]:
  """The figures of a train_step.py JSON that the comparison needs."""
  with open(path, encoding="utf-8") as f:
    obj = json.load(f)
  if obj.get("benchmark") != "train_step":
    raise ValueError(f"{path}: expected a train_step.py JSON "
                     f"(benchmark 'train_step'), got {obj.get('benchmark')!r}.")
  r, c, hw = obj["results"], obj["config"], obj["hardware"]
  here = common.hardware()
  return {
      "source": path, "config": c["config"], "variant": c.get("variant"),
      "batch": c["batch"], "image_size": c["image_size"],
      "compute_dtype": r["compute_dtype"],
      "images_per_second": r["images_per_second"],
      "step_seconds_median": r["step_seconds_median"],
      "devices": r.get("devices"), "device_kind": hw.get("jax_device_kind"),
      "same_machine": all(hw.get(k) == here[k] for k in _HOST_KEYS),
  }


def _measure_train_step(config_name: str, *, batch: int | None,
                        per_device_batch: int | None, steps: int
                        ) -> dict[str, Any]:
  """Images/s of `config_name`'s train step, via train_step.py."""
  import jax
  import train_step  # benchmarks/train_step.py
  from hpunet import config_lib
  dtype = config_lib.load_config(config_name).compute_dtype
  settings, results = train_step.measure(
      config_name, batch=batch, per_device_batch=per_device_batch,
      steps=steps, compute_dtypes=[dtype])
  return {
      "source": "measured", "config": config_name,
      "variant": settings["variant"], "batch": settings["batch"],
      "image_size": settings["image_size"], "compute_dtype": dtype,
      "images_per_second": results["images_per_second"],
      "step_seconds_median": results["step_seconds_median"],
      "compile_seconds": results["compile_seconds"],
      "devices": results["devices"],
      "device_kind": jax.devices()[0].device_kind,
      "mesh_note": settings["mesh_note"], "same_machine": True,
  }


def main(argv=None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--lidc_batches", type=int, default=30)
  parser.add_argument("--cityscapes_batches", type=int, default=10)
  parser.add_argument("--num_parallel_calls", type=int, default=-1)
  parser.add_argument("--lidc_batch", type=int, default=32,
                      help="pipeline batch (the paper's LIDC batch).")
  parser.add_argument("--cityscapes_batch", type=int, default=8,
                      help="pipeline batch for Cityscapes-size examples.")
  parser.add_argument("--lidc_store", type=int, default=256,
                      help="synthetic LIDC-size examples in the store.")
  parser.add_argument("--cityscapes_store", type=int, default=48,
                      help="synthetic Cityscapes-size examples in the store.")
  parser.add_argument("--train_step_json", default=None,
                      help="train_step.py JSON for the LIDC comparison "
                      "(instead of measuring the step here).")
  parser.add_argument("--cityscapes_train_step_json", default=None,
                      help="the same for the Cityscapes comparison.")
  parser.add_argument("--lidc_train_config", default="lidc",
                      help="config measured for LIDC ('name[:variant]').")
  parser.add_argument("--cityscapes_train_config", default="cityscapes",
                      help="config measured for Cityscapes.")
  parser.add_argument("--lidc_train_batch", type=int, default=None,
                      help="default: train_step.py's (4 on CPU, else the "
                      "config's).")
  parser.add_argument("--cityscapes_train_per_device_batch", type=int,
                      default=1)
  parser.add_argument("--train_steps", type=int, default=2,
                      help="timed train steps per config.")
  parser.add_argument("--no_train_step", action="store_true",
                      help="pipeline only: no train-step comparison.")
  args = parser.parse_args(argv)
  tf.config.set_visible_devices([], "GPU")  # the train step owns the GPU
  rng = np.random.default_rng(0)
  results = {
      "lidc": _measure("lidc", _lidc_arrays(rng, args.lidc_store),
                       args.lidc_batch, args.lidc_batches,
                       args.num_parallel_calls),
      "cityscapes_cars": _measure(
          "cityscapes_cars", _cityscapes_arrays(rng, args.cityscapes_store),
          args.cityscapes_batch, args.cityscapes_batches,
          args.num_parallel_calls),
  }
  for task in results.values():
    common.progress({task["task"]: task["examples_per_s"]})
  consumers = {
      "lidc": (args.train_step_json, args.lidc_train_config,
               dict(batch=args.lidc_train_batch, per_device_batch=None)),
      "cityscapes_cars": (
          args.cityscapes_train_step_json, args.cityscapes_train_config,
          dict(batch=None,
               per_device_batch=args.cityscapes_train_per_device_batch)),
  }
  for task, (path, config_name, batch_args) in consumers.items():
    if args.no_train_step and not path:
      step = None
    elif path:
      step = _from_json(path)
    else:
      step = _measure_train_step(config_name, steps=args.train_steps,
                                 **batch_args)
      common.progress({task: {"train_step_images_per_s":
                              step["images_per_second"]}})
    results[task]["train_step"] = step
    results[task]["pipeline_over_train_step"] = (
        None if step is None else common.sig(
            results[task]["examples_per_s"] / step["images_per_second"]))
  config = {
      "num_parallel_calls": args.num_parallel_calls,
      "usable_cpus": common.usable_cpus(),
      "lidc_store": args.lidc_store, "cityscapes_store": args.cityscapes_store,
      "train_step_comparison": not args.no_train_step,
      "train_steps": args.train_steps,
      "note": "training path after the TFDS read; synthetic content;"
              " examples/s after 2 warm-up batches. pipeline_over_train_step"
              " = pipeline examples/s / train-step images/s (> 1: the"
              " pipeline keeps up); null with --no_train_step. The"
              " Cityscapes step runs one example per data-parallel device"
              " (the paper's batch of 128 with spatial=4 needs a pod"
              " slice). On a CPU-only machine both were measured alone: in"
              " training they share the cores, so there the ratio is"
              " optimistic.",
  }
  obj = common.report("input_pipeline", config, results,
                      with_jax=not args.no_train_step)
  common.emit(obj)
  return obj


if __name__ == "__main__":
  main()
