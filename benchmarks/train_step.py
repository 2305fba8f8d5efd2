# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Train-step throughput: images/s, step time, FLOPs, MFU, compile time.

Three modes, each printing ONE JSON object (benchmarks/common.py layout):

- default (`"benchmark": "train_step"`): compiles `hpunet.train.
  make_train_step` for one config on the local devices and times it on a
  fixed random batch (parameters are filled on the host: the init is not what
  is measured). FLOPs come from XLA's cost analysis of the compiled step (per
  device, times the devices used). MFU = achieved FLOP/s / (peak FLOP/s per
  device x devices), with the peak from `common.peak_flops` (vendor dense
  figures) or `--peak_tflops`; XLA counts every FLOP of the optimised step,
  not only the convolutions, so this is "hardware" rather than "model" FLOPs.
  On CPU the batch is reduced to 4 and only float32 runs; on accelerators
  the paper batch runs in float32 and bfloat16 (`bfloat16_speedup_over_
  float32`).
- `--compile_all` (`"train_step_compile"`): lowers and compiles (never runs)
  the train step of every config in `configs/` with one example per data
  device at the config's crop size, and reports compile time, FLOPs and
  XLA's temp memory per config. About 10-40 s per config on a 2-core CPU
  (compile time barely depends on the image size: Cityscapes at 512x1024
  compiles as fast as LIDC at 128x128, so no config is shrunk).
- `--flops_only` (`"train_step_flops"`): FLOPs of every config at its paper
  batch from the lowered (unoptimised) step; no compilation.

  python benchmarks/train_step.py [--config=lidc] [--batch=N] [--steps=5]
      [--compute_dtypes=float32,bfloat16] [--peak_tflops=T]
  python benchmarks/train_step.py --compile_all [--configs=lidc,snemi3d]
  python benchmarks/train_step.py --flops_only

`results` of the default mode: the figures of the first compute dtype at the
top level (compute_dtype, compile_seconds, lower_seconds,
step_seconds_median, step_seconds_all, images_per_second, flop_per_step,
gflop_per_step, gflop_per_device_per_step, achieved_gflops_per_second,
temp_bytes_per_device, train_step_traces, loss_finite,
peak_tflops_per_device, peak_source, mfu, mfu_note, params), the same per
dtype under `by_dtype`, plus devices and bfloat16_speedup_over_float32 (null
unless both dtypes ran). The other modes: `results.configs`, one row per
config.
"""

import argparse
import statistics
import time
from typing import Any, NamedTuple

import common  # benchmarks/common.py (also puts the repo on sys.path)
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hpunet import config_lib
from hpunet import geco
from hpunet import networks as networks_lib
from hpunet import objectives
from hpunet import sharding
from hpunet import train

CPU_BATCH = 4  # the reduced CPU batch (a full LIDC step takes ~1 s there)
_DTYPES = ("float32", "bfloat16")
# Precisions under which the "float32" peaks of common.peak_flops hold.
_DEFAULT_PRECISIONS = (None, "default", "bfloat16", "fastest")


def _parse(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--config", default="lidc",
                 help="config name (configs/<name>.py) or path.")
  p.add_argument("--variant", default=None, help="e.g. smoke")
  p.add_argument("--batch", type=int, default=None,
                 help="global batch (default: the config's; on CPU "
                 f"{CPU_BATCH}, a reduced size).")
  p.add_argument("--per_device_batch", type=int, default=None,
                 help="global batch = this x data-parallel devices (e.g. 1 "
                 "for Cityscapes on one accelerator).")
  p.add_argument("--image_size", default=None, help="H,W (default: crop).")
  p.add_argument("--steps", type=int, default=5, help="timed steps.")
  p.add_argument("--spatial", type=int, default=None,
                 help="config.mesh.spatial override.")
  p.add_argument("--compute_dtypes", default=None,
                 help="comma list; default: the config's on CPU, float32 "
                 "and bfloat16 on accelerators (first = top-level figures).")
  p.add_argument("--compute_dtype", default=None,
                 help="one dtype (same as --compute_dtypes=X).")
  p.add_argument("--peak_tflops", type=float, default=None,
                 help="peak dense TFLOP/s per device for the MFU, overriding "
                 "common.peak_flops (required for an MFU on CPU).")
  p.add_argument("--compile_all", action="store_true")
  p.add_argument("--flops_only", action="store_true")
  p.add_argument("--configs", default=None,
                 help="comma list for --compile_all/--flops_only (default: "
                 "every config in configs/).")
  return p.parse_args(argv)


# ----------------------------------------------------------------------------
# Building blocks (also used by input_pipeline.py).
# ----------------------------------------------------------------------------


class Setup(NamedTuple):
  step: train.CompiledStep
  state: Any  # TrainState of arrays, or of ShapeDtypeStructs (abstract).
  batch: dict[str, jax.Array]
  num_params: int
  num_devices: int


def _spatial_for(config: ml_collections.ConfigDict, num_devices: int
                 ) -> tuple[int, str | None]:
  """The config's spatial size if the devices allow it, else 1 (and why)."""
  spatial = int(config.mesh.spatial)
  if spatial > num_devices or num_devices % spatial:
    return 1, (f"config.mesh.spatial={spatial} does not fit {num_devices} "
               "device(s): ran with spatial=1.")
  return spatial, None


def data_devices(config: ml_collections.ConfigDict, devices) -> int:
  """Size of the data axis when all `devices` are used."""
  return len(devices) // _spatial_for(config, len(devices))[0]


def fit_mesh(config: ml_collections.ConfigDict, batch_size: int,
             devices) -> tuple[list[Any], str | None]:
  """Sets config.mesh for `batch_size` on (a prefix of) `devices`.

  Keeps the config's spatial size when the devices allow it, else uses 1; a
  batch that the data axis does not divide runs on fewer devices.

  Returns:
    (devices used, a note on what was changed, or None).
  """
  n = len(devices)
  spatial, note = _spatial_for(config, n)
  while n > spatial and batch_size % (n // spatial):
    n //= 2  # a small batch on many devices: use fewer devices
  config.mesh.spatial = spatial
  config.mesh.data = n // spatial
  return list(devices[:n]), note


def prepare(config: ml_collections.ConfigDict, batch_size: int,
            image_size: tuple[int, int], devices, *,
            abstract_state: bool = False) -> Setup:
  """The jitted step, a state (host-filled or abstract) and a random batch."""
  mesh = sharding.create_mesh(config.mesh, devices)
  h, w = image_size
  min_rows = int(config.mesh.min_rows_per_shard)
  sharding.validate_mesh(
      mesh, global_batch_size=batch_size, image_shape=(h, w),
      num_levels=len(config.model.channels_per_block),
      min_rows_per_shard=min_rows)
  networks = networks_lib.make_networks(
      config.model, activation_constraint=sharding.make_activation_constraint(
          mesh, min_rows_per_shard=min_rows))
  optimizer = train.create_optimizer(config)
  rng = np.random.default_rng(0)
  local = {
      "image": rng.random((batch_size, h, w, config.input.channels),
                          np.float32),
      "seg": rng.integers(0, config.model.num_classes,
                          (batch_size, h, w)).astype(np.int32),
      "mask": np.ones((batch_size, h, w), np.float32)}
  rep = sharding.replicated(mesh)
  if abstract_state:  # compile only: shapes suffice, nothing is filled
    state = train.abstract_train_state(config, mesh, networks=networks,
                                       optimizer=optimizer)
  else:
    params = objectives.init_params_on_host(networks, local, config.loss)
    state = train.TrainState(step=np.int32(0), params=params,
                             opt_state=optimizer.init(params),
                             geco_state=geco.init_geco_state())
    state = jax.device_put(state, rep)
  num_params = sum(int(np.prod(x.shape))
                   for x in jax.tree.leaves(state.params["model"]))
  feed = sharding.data_feed(mesh, batch_size)
  batch = sharding.make_global_batch(local, mesh, feed,
                                     min_rows_per_shard=min_rows)
  step = train.make_train_step(config, networks, optimizer, mesh,
                               jax.random.key(1),
                               {k: v.sharding for k, v in batch.items()})
  return Setup(step, state, batch, num_params, len(devices))


def _cost_flops(cost) -> float:
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float((cost or {}).get("flops", float("nan")))


def compile_step(setup: Setup) -> dict[str, Any]:
  """Lowers and compiles; returns timings, per-device FLOPs and memory."""
  t0 = time.perf_counter()
  lowered = setup.step.fn.lower(setup.state, setup.batch)
  t1 = time.perf_counter()
  compiled = lowered.compile()
  t2 = time.perf_counter()
  mem = compiled.memory_analysis()
  return {"lower_seconds": t1 - t0, "compile_seconds": t2 - t1,
          "flops_per_device": _cost_flops(compiled.cost_analysis()),
          "temp_bytes_per_device": int(mem.temp_size_in_bytes)}


def mfu_fields(device_kind: str, dtype: str, flop_per_step: float,
               step_seconds: float, num_devices: int,
               peak_tflops: float | None) -> dict[str, Any]:
  """peak_tflops_per_device, peak_source, mfu, and mfu_note when it is null."""
  precision = jax.config.jax_default_matmul_precision
  peak, source, note = None, None, None
  if peak_tflops is not None:
    peak, source = peak_tflops * 1e12, "--peak_tflops"
  elif dtype == "float32" and precision not in _DEFAULT_PRECISIONS:
    note = (f"jax_default_matmul_precision={precision!r}: the float32 peaks "
            "in common.peak_flops assume the default precision; pass "
            "--peak_tflops.")
  else:
    peak = common.peak_flops(device_kind, dtype)
    source = "common.peak_flops" if peak is not None else None
    if peak is None:
      note = (f"no {dtype} peak FLOP/s for device kind {device_kind!r} in "
              "common.peak_flops (a CPU's peak depends on its cores, clock "
              "and SIMD width, which JAX does not report); pass "
              "--peak_tflops.")
  mfu = None
  if peak is not None:
    if np.isfinite(flop_per_step):
      mfu = common.mfu(flop_per_step, step_seconds, peak, num_devices)
    else:
      note = "XLA's cost analysis reported no FLOPs for the step."
  return {"peak_tflops_per_device": None if peak is None else peak / 1e12,
          "peak_source": source, "mfu": mfu, "mfu_note": note}


def run_steps(setup: Setup, state, n: int):
  """Runs `n` steps on the fixed batch: (state, last metrics, seconds each)."""
  times, metrics = [], None
  for _ in range(n):
    t = time.perf_counter()
    state, metrics = setup.step.fn(state, setup.batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t)
  return state, metrics, times


def time_dtype(config: ml_collections.ConfigDict, dtype: str,
               batch_size: int, image_size: tuple[int, int], devices, *,
               steps: int, peak_tflops: float | None) -> dict[str, Any]:
  """Compiles and times the step in one compute dtype; figures as a dict."""
  config = config.copy_and_resolve_references()
  config.compute_dtype = dtype
  setup = prepare(config, batch_size, image_size, devices)
  c = compile_step(setup)
  state = setup.state
  state, _, _ = run_steps(setup, state, 1)  # warm-up (compiled)
  state, metrics, times = run_steps(setup, state, steps)
  n = setup.num_devices
  step_s = round(statistics.median(times), 6)
  flop_per_step = c["flops_per_device"] * n
  out = {
      "compute_dtype": dtype,
      "compile_seconds": round(c["compile_seconds"], 2),
      "lower_seconds": round(c["lower_seconds"], 2),
      "step_seconds_median": step_s,
      "step_seconds_all": [round(t, 6) for t in times],
      "images_per_second": common.sig(batch_size / step_s),
      "flop_per_step": flop_per_step,
      "gflop_per_step": common.sig(flop_per_step / 1e9),
      "gflop_per_device_per_step": common.sig(c["flops_per_device"] / 1e9),
      "achieved_gflops_per_second": common.sig(flop_per_step / step_s / 1e9),
      "temp_bytes_per_device": c["temp_bytes_per_device"],
      "train_step_traces": setup.step.traces(),
      "loss_finite": bool(jnp.isfinite(metrics["loss"])),
  }
  out.update(mfu_fields(jax.devices()[0].device_kind, dtype, flop_per_step,
                        step_s, n, peak_tflops))
  out["params"] = setup.num_params
  return out


def measure(config_name: str, *, variant: str | None = None,
            batch: int | None = None, per_device_batch: int | None = None,
            image_size: tuple[int, int] | None = None, steps: int = 5,
            spatial: int | None = None,
            compute_dtypes: list[str] | None = None,
            peak_tflops: float | None = None
            ) -> tuple[dict[str, Any], dict[str, Any]]:
  """Times one config's train step: (config, results) for `common.report`."""
  config = config_lib.load_config(config_name, variant)
  if spatial is not None:
    config.mesh.spatial = spatial
  devices = jax.devices()
  on_cpu = devices[0].platform == "cpu"
  image_size = tuple(image_size or config.input.crop_size)
  if per_device_batch:
    batch = per_device_batch * data_devices(config, devices)
  reduced = batch is None and on_cpu
  batch_size = batch or (CPU_BATCH if reduced else config.input.batch_size)
  if not compute_dtypes:
    compute_dtypes = [config.compute_dtype] + (
        [] if on_cpu else [d for d in _DTYPES if d != config.compute_dtype])
  for d in compute_dtypes:
    if d not in _DTYPES:
      raise ValueError(f"--compute_dtypes: {d!r} is not one of {_DTYPES}.")
  used, mesh_note = fit_mesh(config, batch_size, devices)
  by_dtype = {}
  for dtype in compute_dtypes:
    by_dtype[dtype] = time_dtype(config, dtype, batch_size, image_size, used,
                                 steps=steps, peak_tflops=peak_tflops)
    common.progress({"compute_dtype": dtype,
                     "step_seconds_median":
                         by_dtype[dtype]["step_seconds_median"]})
  first = by_dtype[compute_dtypes[0]]
  speedup = None
  if "float32" in by_dtype and "bfloat16" in by_dtype:
    speedup = round(by_dtype["float32"]["step_seconds_median"] /
                    by_dtype["bfloat16"]["step_seconds_median"], 3)
  settings = {
      "config": config_name, "variant": variant,
      "batch": batch_size, "paper_batch": int(config.input.batch_size),
      "reduced_for_cpu": reduced, "image_size": list(image_size),
      "mesh": {"data": int(config.mesh.data),
               "spatial": int(config.mesh.spatial)},
      "mesh_note": mesh_note,
      "compute_dtypes": list(compute_dtypes), "steps": steps,
      "peak_tflops": peak_tflops,
      "compilation_cache": jax.config.jax_compilation_cache_dir,
      "default_matmul_precision": jax.config.jax_default_matmul_precision,
  }
  results = dict(first)  # top level: the first dtype (stable key paths)
  results.update({"devices": len(used), "by_dtype": by_dtype,
                  "bfloat16_speedup_over_float32": speedup})
  return settings, results


# ----------------------------------------------------------------------------
# Modes over every config.
# ----------------------------------------------------------------------------


def _config_list(arg: str | None) -> list[str]:
  return arg.split(",") if arg else config_lib.config_names()


def compile_all(names: list[str], variant: str | None
                ) -> tuple[dict[str, Any], dict[str, Any]]:
  """Lowers and compiles (never runs) each config's step.

  One example per data-parallel device, at the config's crop size.
  """
  devices = jax.devices()
  out = []
  t_start = time.perf_counter()
  for name in names:
    config = config_lib.load_config(name, variant)
    crop = tuple(int(v) for v in config.input.crop_size)
    batch_size = data_devices(config, devices)
    used, mesh_note = fit_mesh(config, batch_size, devices)
    setup = prepare(config, batch_size, crop, used, abstract_state=True)
    c = compile_step(setup)
    flop_step = c["flops_per_device"] * len(used)
    out.append({
        "config": name, "batch": batch_size,
        "paper_batch": int(config.input.batch_size),
        "image_size": list(crop), "image_is_crop": True,
        "mesh": {"data": int(config.mesh.data),
                 "spatial": int(config.mesh.spatial)},
        "mesh_note": mesh_note, "compute_dtype": config.compute_dtype,
        "params": setup.num_params,
        "lower_seconds": round(c["lower_seconds"], 2),
        "compile_seconds": round(c["compile_seconds"], 2),
        "gflop_per_step": common.sig(flop_step / 1e9),
        "gflop_per_example": common.sig(flop_step / 1e9 / batch_size),
        "temp_bytes_per_device": c["temp_bytes_per_device"],
    })
    common.progress(out[-1])
  settings = {
      "mode": "compile_all", "variant": variant, "configs": names,
      "note": "lower + compile only (nothing runs); one example per "
              "data-parallel device at the config's crop size (no config "
              "is shrunk: compile time barely depends on the image size); "
              "FLOPs and temp memory from XLA's analysis of the compiled "
              "step.",
      "compilation_cache": jax.config.jax_compilation_cache_dir,
  }
  total = time.perf_counter() - t_start
  return settings, {"configs": out, "total_seconds": round(total, 1)}


def flops_only(names: list[str], variant: str | None
               ) -> tuple[dict[str, Any], dict[str, Any]]:
  """XLA cost analysis of the lowered step at each config's paper batch."""
  out = []
  for name in names:
    config = config_lib.load_config(name, variant)
    networks = networks_lib.make_networks(config.model)
    optimizer = train.create_optimizer(config)
    b = int(config.input.batch_size)
    h, w = (int(v) for v in config.input.crop_size)
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
    flops = _cost_flops(step.lower(state, batch).cost_analysis())
    num_params = sum(int(x.size) for x in jax.tree.leaves(
        state.params["model"]))
    steps = int(config.num_train_steps)
    out.append({
        "config": name, "batch": b, "image_size": [h, w],
        "params": num_params,
        "gflop_per_step": common.sig(flops / 1e9),
        "gflop_per_example": common.sig(flops / 1e9 / b),
        "train_steps": steps,
        "pflop_total": common.sig(flops * steps / 1e15),
        "lower_seconds": round(time.perf_counter() - t0, 1)})
    common.progress(out[-1])
  settings = {"mode": "flops_only", "variant": variant, "configs": names,
              "note": "XLA cost analysis of the lowered (unoptimised) train "
                      "step at the paper batch; forward + backward + Adam."}
  return settings, {"configs": out}


def main(argv=None) -> dict[str, Any]:
  args = _parse(argv)
  jax.config.update("jax_threefry_partitionable", True)
  if args.compile_all or args.flops_only:
    fn, name = ((compile_all, "train_step_compile") if args.compile_all else
                (flops_only, "train_step_flops"))
    settings, results = fn(_config_list(args.configs), args.variant)
  else:
    dtypes = (args.compute_dtypes.split(",") if args.compute_dtypes else
              [args.compute_dtype] if args.compute_dtype else None)
    image_size = (tuple(int(v) for v in args.image_size.split(","))
                  if args.image_size else None)
    settings, results = measure(
        args.config, variant=args.variant, batch=args.batch,
        per_device_batch=args.per_device_batch, image_size=image_size,
        steps=args.steps, spatial=args.spatial, compute_dtypes=dtypes,
        peak_tflops=args.peak_tflops)
    name = "train_step"
  obj = common.report(name, settings, results, with_jax=True)
  common.emit(obj)
  return obj


if __name__ == "__main__":
  main()
