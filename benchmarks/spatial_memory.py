# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Per-device memory of the spatially partitioned Cityscapes train step.

Compiles the full Cityscapes-cars HPU-Net train step (configs/cityscapes.py:
512x1024, 9 scales, 2x4 bottom) on fake CPU devices with one example per
spatial group, mesh (data=1, spatial=k) for k = 1, 2, 4, 8, and reports
XLA's per-device memory analysis against the ideal 1/k, plus the collectives
in the compiled step (halo `collective-permute`s, resharding all-gathers).

  python benchmarks/spatial_memory.py                   # k = 1, 2, 4, 8
  python benchmarks/spatial_memory.py --spatial=1,4 --batch=1

Nothing is executed: only lowering, compilation and `memory_analysis()`.
Compiling the full model takes minutes per k on a 2-core CPU. Prints ONE
JSON object.
"""

import common  # benchmarks/common.py (also puts the repo on sys.path)
import argparse
import json
import os
import platform
import re
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_HERE))


def _parse():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--config", default="cityscapes")
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
  return p.parse_args()




def main():
  args = _parse()
  ks = [int(k) for k in args.spatial.split(",")]
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update("jax_num_cpu_devices", max(8, max(ks)))
  jax.config.update("jax_threefry_partitionable", True)
  import numpy as np  # pylint: disable=g-import-not-at-top
  from hpunet import config_lib  # pylint: disable=g-import-not-at-top
  from hpunet import networks as networks_lib  # pylint: disable=g-import-not-at-top
  from hpunet import sharding  # pylint: disable=g-import-not-at-top
  from hpunet import train  # pylint: disable=g-import-not-at-top

  config = config_lib.load_config(args.config)
  if args.min_rows_per_shard is None:
    args.min_rows_per_shard = int(config.mesh.min_rows_per_shard)
  h, w = (tuple(int(v) for v in args.image_size.split(","))
          if args.image_size else tuple(config.input.crop_size))
  c = int(config.input.channels)
  b = args.batch
  local = {"image": np.zeros((b, h, w, c), np.float32),
           "seg": np.zeros((b, h, w), np.int32),
           "mask": np.ones((b, h, w), np.float32)}
  results = []
  for k in ks:
    mesh_config = config.mesh.copy_and_resolve_references()
    mesh_config.data, mesh_config.spatial = 1, k
    mesh = sharding.create_mesh(mesh_config, jax.devices()[:k])
    sharding.validate_mesh(mesh, global_batch_size=b, image_shape=(h, w),
                           num_levels=len(config.model.channels_per_block),
                           min_rows_per_shard=args.min_rows_per_shard)
    constraint = (None if args.no_constraint else
                  sharding.make_activation_constraint(
                      mesh, min_rows_per_shard=args.min_rows_per_shard))
    networks = networks_lib.make_networks(config.model,
                                          activation_constraint=constraint)
    optimizer = train.create_optimizer(config)
    feed = sharding.data_feed(mesh, b)
    batch = sharding.make_global_batch(local, mesh, feed)
    rep = sharding.replicated(mesh)

    def init(rng, batch_, networks_=networks, optimizer_=optimizer):
      return train.create_train_state(config, networks_, optimizer_, rng,
                                      batch_)

    abstract = jax.eval_shape(init, jax.random.key(0), local)
    abstract = jax.tree.map(
        lambda s, rep_=rep: jax.ShapeDtypeStruct(s.shape, s.dtype,
                                                 sharding=rep_), abstract)
    step = train.make_train_step(config, networks, optimizer, mesh,
                                 jax.random.key(1),
                                 {k_: v.sharding for k_, v in batch.items()})
    t0 = time.perf_counter()
    lowered = step.fn.lower(abstract, batch)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    text = compiled.as_text()
    gathers = re.findall(r"= ([a-z0-9]+\[[0-9,]*\])[^ ]* all-gather\(", text)
    results.append({
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
    print(json.dumps(results[-1]), file=sys.stderr, flush=True)
  base = next((r["temp_bytes_per_device"] for r in results
               if r["spatial"] == 1), None)
  for r in results:
    if base:
      r["temp_vs_spatial_1"] = round(r["temp_bytes_per_device"] / base, 3)
      r["ideal"] = round(1.0 / r["spatial"], 3)
  import jaxlib  # pylint: disable=g-import-not-at-top
  out = {
      "benchmark": "spatial_memory",
      "hardware": {"platform": jax.devices()[0].platform,
                   "device_kind": jax.devices()[0].device_kind,
                   "fake_devices": jax.device_count(),
                   "cpu_count": os.cpu_count(),
                   "machine": platform.machine(),
                   "cpu_model": common.cpu_model()},
      "versions": {"python": platform.python_version(),
                   "jax": jax.__version__, "jaxlib": jaxlib.__version__},
      "config": args.config,
      "image_size": [h, w],
      "examples_per_spatial_group": b,
      "min_rows_per_shard": args.min_rows_per_shard,
      "activation_constraint": not args.no_constraint,
      "results": results,
  }
  print(json.dumps(out, indent=1))


if __name__ == "__main__":
  main()
