# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Train-step throughput: images/s, step time, FLOPs, compile time, memory.

Compiles `hpunet.train.make_train_step` for a config on the local devices and
times it on a fixed random batch (parameters are made on the host: the init
is not what is measured). FLOPs come from XLA's cost analysis of the
compiled step (per device; multiplied by the device count for the step).

  # CPU (reduced by default): the full LIDC HPU-Net, 128x128, batch 4
  python benchmarks/train_step.py --config=lidc
  # an accelerator: the paper setting
  python benchmarks/train_step.py --config=lidc
  # FLOPs of every paper config at its paper batch (lowering only, no
  # compilation, no execution):
  python benchmarks/train_step.py --flops_only

Prints ONE JSON object (hardware, versions, config, figures).
"""

import common  # benchmarks/common.py (also puts the repo on sys.path)
import argparse
import json
import os
import platform
import statistics
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_HERE))

_CPU_BATCH = 4
_PAPER_CONFIGS = ("lidc", "snemi3d", "cityscapes", "lidc_spunet",
                  "snemi3d_spunet", "cityscapes_flips_spunet", "synthetic",
                  "synthetic_spunet", "lidc_global_latents",
                  "lidc_local_latents", "lidc_no_topk")


def _parse():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--config", default="lidc")
  p.add_argument("--variant", default=None, help="e.g. smoke")
  p.add_argument("--batch", type=int, default=None,
                 help="global batch (default: the config's; on CPU "
                 f"{_CPU_BATCH}, a reduced size).")
  p.add_argument("--image_size", default=None, help="H,W (default: crop).")
  p.add_argument("--steps", type=int, default=5)
  p.add_argument("--spatial", type=int, default=None,
                 help="config.mesh.spatial override.")
  p.add_argument("--compute_dtype", default=None)
  p.add_argument("--flops_only", action="store_true")
  return p.parse_args()


def _versions():
  import jax  # pylint: disable=g-import-not-at-top
  import jaxlib  # pylint: disable=g-import-not-at-top
  import haiku  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  return {"python": platform.python_version(), "jax": jax.__version__,
          "jaxlib": jaxlib.__version__, "dm-haiku": haiku.__version__,
          "optax": optax.__version__, "numpy": np.__version__}


def _hardware():
  import jax  # pylint: disable=g-import-not-at-top
  d = jax.devices()[0]
  return {"platform": d.platform, "device_kind": d.device_kind,
          "device_count": jax.device_count(),
          "process_count": jax.process_count(),
          "cpu_count": os.cpu_count(), "machine": platform.machine(),
          "cpu_model": common.cpu_model()}


def _setup(config, batch_size, image_size, devices):
  """(step, state, batch, mesh) with host-made parameters."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from hpunet import geco  # pylint: disable=g-import-not-at-top
  from hpunet import networks as networks_lib  # pylint: disable=g-import-not-at-top
  from hpunet import objectives  # pylint: disable=g-import-not-at-top
  from hpunet import sharding  # pylint: disable=g-import-not-at-top
  from hpunet import train  # pylint: disable=g-import-not-at-top
  mesh = sharding.create_mesh(config.mesh, devices)
  h, w = image_size
  sharding.validate_mesh(
      mesh, global_batch_size=batch_size, image_shape=(h, w),
      num_levels=len(config.model.channels_per_block),
      min_rows_per_shard=config.mesh.min_rows_per_shard)
  networks = networks_lib.make_networks(
      config.model, activation_constraint=sharding.make_activation_constraint(
          mesh, min_rows_per_shard=config.mesh.min_rows_per_shard))
  optimizer = train.create_optimizer(config)
  rng = np.random.default_rng(0)
  local = {
      "image": rng.random((batch_size, h, w, config.input.channels),
                          np.float32),
      "seg": rng.integers(0, config.model.num_classes,
                          (batch_size, h, w)).astype(np.int32),
      "mask": np.ones((batch_size, h, w), np.float32)}
  params = objectives.init_params_on_host(networks, local, config.loss)
  num_params = sum(int(np.prod(x.shape))
                   for x in jax.tree.leaves(params["model"]))
  state = train.TrainState(step=np.int32(0), params=params,
                           opt_state=optimizer.init(params),
                           geco_state=geco.init_geco_state())
  state = jax.device_put(state, sharding.replicated(mesh))
  feed = sharding.data_feed(mesh, batch_size)
  batch = sharding.make_global_batch(local, mesh, feed)
  step = train.make_train_step(config, networks, optimizer, mesh,
                               jax.random.key(1),
                               {k: v.sharding for k, v in batch.items()})
  return step, state, batch, mesh, num_params


def _flops_only():
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from hpunet import config_lib  # pylint: disable=g-import-not-at-top
  from hpunet import networks as networks_lib  # pylint: disable=g-import-not-at-top
  from hpunet import train  # pylint: disable=g-import-not-at-top
  out = []
  for name in _PAPER_CONFIGS:
    config = config_lib.load_config(name)
    networks = networks_lib.make_networks(config.model)
    optimizer = train.create_optimizer(config)
    b = config.input.batch_size
    h, w = config.input.crop_size
    batch = {"image": jax.ShapeDtypeStruct((b, h, w, config.input.channels),
                                           jnp.float32),
             "seg": jax.ShapeDtypeStruct((b, h, w), jnp.int32),
             "mask": jax.ShapeDtypeStruct((b, h, w), jnp.float32)}
    state = jax.eval_shape(
        lambda k, bt, n=networks, o=optimizer, c=config:
        train.create_train_state(c, n, o, k, bt), jax.random.key(0), batch)
    step = jax.jit(lambda s, bt, n=networks, o=optimizer, c=config:
                   train.train_step(
                       s, bt, networks=n, optimizer=o, loss_config=c.loss,
                       base_rng=jax.random.key(1),
                       learning_rate_fn=train.create_learning_rate_fn(c)))
    t0 = time.perf_counter()
    cost = step.lower(state, batch).cost_analysis()
    num_params = sum(int(x.size) for x in jax.tree.leaves(
        state.params["model"]))
    flops = float(cost.get("flops", float("nan")))
    steps = config.num_train_steps
    out.append({
        "config": name, "batch": b, "image_size": [h, w],
        "params": num_params,
        "gflop_per_step": round(flops / 1e9, 1),
        "gflop_per_example": round(flops / 1e9 / b, 2),
        "train_steps": steps,
        "pflop_total": round(flops * steps / 1e15, 1),
        "lower_seconds": round(time.perf_counter() - t0, 1)})
    print(json.dumps(out[-1]), file=sys.stderr, flush=True)
  return out




def main():
  args = _parse()
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update("jax_threefry_partitionable", True)
  result = {"benchmark": "train_step", "hardware": _hardware(),
            "versions": _versions()}
  if args.flops_only:
    result["note"] = ("XLA cost analysis of the lowered (unoptimised) train "
                      "step at the paper batch; forward + backward + Adam.")
    result["configs"] = _flops_only()
    print(json.dumps(result, indent=1))
    return
  from hpunet import config_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.load_config(args.config, args.variant)
  if args.spatial is not None:
    config.mesh.spatial = args.spatial
  if args.compute_dtype:
    config.compute_dtype = args.compute_dtype
  reduced = args.batch is None and jax.devices()[0].platform == "cpu"
  batch_size = args.batch or (_CPU_BATCH if reduced else
                              config.input.batch_size)
  image_size = (tuple(int(v) for v in args.image_size.split(","))
                if args.image_size else tuple(config.input.crop_size))
  devices = jax.devices()
  n = len(devices)
  while batch_size % (n // config.mesh.spatial) and n > config.mesh.spatial:
    n //= 2  # a reduced batch on many devices: use fewer devices
  config.mesh.data = n // config.mesh.spatial
  step, state, batch, _, num_params = _setup(config, batch_size, image_size,
                                             devices[:n])
  t0 = time.perf_counter()
  compiled = step.fn.lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops_device = float(cost.get("flops", float("nan")))
  mem = compiled.memory_analysis()
  state, metrics = step.fn(state, batch)  # warm-up (compiled above: cached)
  jax.block_until_ready(metrics)
  times = []
  for _ in range(args.steps):
    t = time.perf_counter()
    state, metrics = step.fn(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t)
  step_s = statistics.median(times)
  result.update({
      "config": args.config, "variant": args.variant,
      "batch": batch_size, "paper_batch": config.input.batch_size,
      "reduced_for_cpu": reduced, "image_size": list(image_size),
      "mesh": {"data": config.mesh.data, "spatial": config.mesh.spatial},
      "compute_dtype": config.compute_dtype,
      "params": num_params,
      "compile_seconds": round(compile_s, 2),
      "step_seconds_median": round(step_s, 4),
      "step_seconds_all": [round(t, 4) for t in times],
      "images_per_second": round(batch_size / step_s, 2),
      "gflop_per_step": round(flops_device * n / 1e9, 2),
      "gflop_per_device_per_step": round(flops_device / 1e9, 2),
      "achieved_gflops_per_second": round(flops_device * n / step_s / 1e9, 2),
      "temp_bytes_per_device": int(mem.temp_size_in_bytes),
      "train_step_traces": step.traces(),
      "loss_finite": bool(jax.numpy.isfinite(metrics["loss"])),
  })
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  main()
