# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Per-device memory of the spatially partitioned Cityscapes train step.

Compiles the full Cityscapes-cars HPU-Net train step (configs/cityscapes.py:
512x1024, 9 scales, 2x4 bottom) on fake CPU devices with one example per
spatial group, mesh (data=1, spatial=k) for k = 1, 2, 4, 8, and reports
XLA's per-device memory analysis against the ideal 1/k, plus the collectives
in the compiled step (halo `collective-permute`s, resharding all-gathers).

  python benchmarks/spatial_memory.py                   # k = 1, 2, 4, 8
  python benchmarks/spatial_memory.py --spatial=1,4 --batch=1
  python benchmarks/spatial_memory.py --config=cityscapes:smoke --spatial=1,2

Nothing is executed: only lowering, compilation and `memory_analysis()`, on
CPU devices (`--platform`) whatever the machine has, so the layout is the
same everywhere; fake CPU devices are created when JAX has not started yet.
Compiling the full model takes about 30 s to minutes per k on a 2-core CPU.
Prints ONE JSON object (benchmarks/common.py); per-k lines go to stderr.
"""

import argparse
import re
import time
from typing import Any

import common  # benchmarks/common.py (also puts the repo on sys.path)
import jax
import numpy as np

from hpunet import config_lib
from hpunet import networks as networks_lib
from hpunet import sharding
from hpunet import train


def _parse(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--config", default="cityscapes",
                 help="config name or path; 'name:variant' accepted.")
  p.add_argument("--spatial", default="1,2,4,8")
  p.add_argument("--batch", type=int, default=1,
                 help="examples per spatial group (global batch = batch).")
  p.add_argument("--min_rows_per_shard", type=int, default=None,
                 help="default: the config's mesh.min_rows_per_shard.")
  p.add_argument("--image_size", default=None,
                 help="H,W override (default: the config's crop size).")
  p.add_argument("--no_constraint", action="store_true",
                 help="Compile without the coarse-level activation constraint "
                 "(for comparison only).")
  p.add_argument("--platform", default="cpu",
                 help="JAX platform whose devices form the meshes.")
  return p.parse_args(argv)


def _cpu_devices(count: int) -> None:
  """Asks for `count` CPU devices unless JAX already has enough (pytest)."""
  if jax.config.jax_num_cpu_devices < count:
    # Raises if a backend is already up; nothing to do about that here.
    jax.config.update("jax_num_cpu_devices", count)


def measure(config_name: str, ks: list[int], *, batch: int,
            min_rows_per_shard: int | None, image_size, no_constraint: bool,
            platform: str) -> tuple[dict[str, Any], dict[str, Any]]:
  """Compiles the step for each spatial size k; (config, results)."""
  config = config_lib.load_config(config_name)
  if min_rows_per_shard is None:
    min_rows_per_shard = int(config.mesh.min_rows_per_shard)
  h, w = (tuple(image_size) if image_size else
          tuple(int(v) for v in config.input.crop_size))
  c = int(config.input.channels)
  b = batch
  local = {"image": np.zeros((b, h, w, c), np.float32),
           "seg": np.zeros((b, h, w), np.int32),
           "mask": np.ones((b, h, w), np.float32)}
  devices = jax.devices(platform)
  if max(ks) > len(devices):
    raise ValueError(f"--spatial={max(ks)} needs that many {platform} "
                     f"devices; JAX has {len(devices)}.")
  rows = []
  for k in ks:
    mesh_config = config.mesh.copy_and_resolve_references()
    mesh_config.data, mesh_config.spatial = 1, k
    mesh = sharding.create_mesh(mesh_config, devices[:k])
    sharding.validate_mesh(mesh, global_batch_size=b, image_shape=(h, w),
                           num_levels=len(config.model.channels_per_block),
                           min_rows_per_shard=min_rows_per_shard)
    constraint = (None if no_constraint else
                  sharding.make_activation_constraint(
                      mesh, min_rows_per_shard=min_rows_per_shard))
    networks = networks_lib.make_networks(config.model,
                                          activation_constraint=constraint)
    optimizer = train.create_optimizer(config)
    feed = sharding.data_feed(mesh, b)
    batch_arrays = sharding.make_global_batch(
        local, mesh, feed, min_rows_per_shard=min_rows_per_shard)
    abstract = train.abstract_train_state(config, mesh, networks=networks,
                                          optimizer=optimizer)
    step = train.make_train_step(
        config, networks, optimizer, mesh, jax.random.key(1),
        {k_: v.sharding for k_, v in batch_arrays.items()})
    t0 = time.perf_counter()
    lowered = step.fn.lower(abstract, batch_arrays)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    text = compiled.as_text()
    gathers = re.findall(r"= ([a-z0-9]+\[[0-9,]*\])[^ ]* all-gather\(", text)
    rows.append({
        "spatial": k,
        "compile_seconds": round(compile_s, 1),
        "temp_bytes_per_device": int(mem.temp_size_in_bytes),
        "argument_bytes_per_device": int(mem.argument_size_in_bytes),
        "output_bytes_per_device": int(mem.output_size_in_bytes),
        "collective_permutes": len(re.findall(r" collective-permute\(", text)),
        "all_gathers": gathers,
        "all_reduces": len(re.findall(r" all-reduce\(", text)),
        "all_to_alls": len(re.findall(r" all-to-all\(", text)),
    })
    common.progress(rows[-1])
  base = next((r["temp_bytes_per_device"] for r in rows
               if r["spatial"] == 1), None)
  for r in rows:  # ratios only exist when spatial = 1 was compiled
    r["temp_vs_spatial_1"] = (round(r["temp_bytes_per_device"] / base, 3)
                              if base else None)
    r["ideal"] = round(1.0 / r["spatial"], 3)
  settings = {
      "config": config_name,
      "image_size": [h, w],
      "examples_per_spatial_group": b,
      "min_rows_per_shard": min_rows_per_shard,
      "activation_constraint": not no_constraint,
      "spatial": ks,
      "platform": platform,
      "note": "lower + compile only; XLA memory_analysis() per device of "
              "the compiled train step, mesh (data=1, spatial=k).",
  }
  return settings, {"by_spatial": rows}


def main(argv=None) -> dict[str, Any]:
  args = _parse(argv)
  ks = [int(k) for k in args.spatial.split(",")]
  if args.platform == "cpu":
    _cpu_devices(max(8, max(ks)))
  jax.config.update("jax_threefry_partitionable", True)
  image_size = (tuple(int(v) for v in args.image_size.split(","))
                if args.image_size else None)
  settings, results = measure(
      args.config, ks, batch=args.batch,
      min_rows_per_shard=args.min_rows_per_shard, image_size=image_size,
      no_constraint=args.no_constraint, platform=args.platform)
  obj = common.report("spatial_memory", settings, results, with_jax=True)
  common.emit(obj)
  return obj


if __name__ == "__main__":
  main()
