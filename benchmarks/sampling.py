# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Samples/s with the encoder-reuse path vs rerunning the network per sample.

Both papers note that only the part of the network that depends on z has to
be rerun per sample: for the HPU-Net the prior's latent levels and `f_comb`
(the prior encoder runs once), for the sPU-Net only `f_comb` (the U-Net and
the prior run once). This measures that claim:

- `reuse`: one jitted `sample_n(img, num_samples=S)` call per batch;
- `rerun`: S calls of the jitted full `sample(img)` (encoder included), the
  way a naive loop draws S samples.

Prints one JSON object (see benchmarks/common.py). The default size is the
papers' full LIDC model at 128x128 (`--size=full`), so
`results.reuse_seconds_per_image` is the time to draw 16 samples of one LIDC
image; `--size=reduced` is the same topology at 1/4 width and 64x64 (what
this script measured by default before), `--size=tiny` is for tests. On an
accelerator add `--batch=8`. Times are the best of `--repeats` calls after a
warm-up; FLOPs come from XLA's cost analysis of the compiled functions.

  python benchmarks/sampling.py [--model=hpunet|spunet]
      [--size=full|reduced|tiny] [--num_samples=16] [--batch=1] [--repeats=3]

`results`: reuse_seconds, rerun_seconds (one batch, all samples),
reuse_samples_per_s, rerun_samples_per_s, speedup (rerun / reuse),
reuse_seconds_per_image and rerun_seconds_per_image (the S samples of ONE
image: the seconds over the batch), reuse_compile_seconds (lower + compile
of `sample_n`), reuse_gflop_per_call (one `sample_n` call),
reuse_achieved_gflops_per_second, rerun_gflop_per_sample (one full `sample`
call); FLOP figures are null when XLA reports none.
"""

import argparse
import functools
import math
import time
from typing import Any

import common  # pylint: disable=g-bad-import-order
import jax
import jax.numpy as jnp

from hpunet import networks as networks_lib

# Full = the papers' LIDC models; reduced = the same topology at 1/4 width
# and 64x64 (still 7 / 4 scales), so a 2-core CPU measures it in seconds;
# tiny = a few channels and scales at 32x32, only to exercise the script.
_MODELS = {
    ("hpunet", "full"): (dict(name="hpunet"), 128),
    ("hpunet", "reduced"): (dict(
        name="hpunet", channels_per_block=(6, 12, 24, 48, 48, 48, 48),
        latent_dims=(1, 1, 1, 1)), 64),
    ("spunet", "full"): (dict(name="spunet"), 128),
    ("spunet", "reduced"): (dict(
        name="spunet", channels_per_block=(8, 16, 32, 64, 128)), 64),
    ("hpunet", "tiny"): (dict(
        name="hpunet", channels_per_block=(4, 8, 8), latent_dims=(1, 1),
        convs_per_block=1, blocks_per_level=1), 32),
    ("spunet", "tiny"): (dict(
        name="spunet", channels_per_block=(4, 8, 8), convs_per_block=1), 32),
}


def _time(fn, repeats):
  jax.block_until_ready(fn())  # warm up (and compile, if not yet)
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    best = min(best, time.perf_counter() - start)
  return best


def _flops(compiled) -> float:
  """XLA's FLOPs of a compiled function (NaN if it reports none)."""
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float((cost or {}).get("flops", float("nan")))


def _gflop(flops: float) -> float | None:
  return common.sig(flops / 1e9) if math.isfinite(flops) else None


def main(argv=None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", default="hpunet", choices=("hpunet", "spunet"))
  parser.add_argument("--size", default="full",
                      choices=("full", "reduced", "tiny"))
  parser.add_argument("--num_samples", type=int, default=16)
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args(argv)

  model_config, size = _MODELS[(args.model, args.size)]
  networks = networks_lib.make_networks(model_config)
  img = jax.random.uniform(jax.random.key(0), (args.batch, size, size, 1))
  seg = jax.nn.one_hot(jnp.zeros(img.shape[:3], jnp.int32),
                       networks.num_classes)
  params = jax.jit(networks.init)(jax.random.key(1), seg=seg, img=img)

  sample_n = jax.jit(functools.partial(networks.sample_n,
                                       num_samples=args.num_samples))
  sample = jax.jit(lambda p, r, x: networks.sample(p, r, x).logits)
  keys = jax.random.split(jax.random.key(2), args.num_samples)

  start = time.perf_counter()
  reuse = sample_n.lower(params, keys[0], img).compile()
  compile_s = time.perf_counter() - start
  reuse_flops = _flops(reuse)
  rerun = sample.lower(params, keys[0], img).compile()
  rerun_flops = _flops(rerun)

  t_reuse = _time(lambda: reuse(params, keys[0], img), args.repeats)
  t_rerun = _time(lambda: [rerun(params, k, img) for k in keys],
                  args.repeats)
  total = args.batch * args.num_samples
  obj = common.report(
      "sampling",
      config={"model": model_config, "size": args.size,
              "image_shape": list(img.shape),
              "num_samples": args.num_samples, "repeats": args.repeats},
      results={
          "reuse_seconds": t_reuse,
          "rerun_seconds": t_rerun,
          "reuse_samples_per_s": total / t_reuse,
          "rerun_samples_per_s": total / t_rerun,
          "speedup": t_rerun / t_reuse,
          "reuse_seconds_per_image": t_reuse / args.batch,
          "rerun_seconds_per_image": t_rerun / args.batch,
          "reuse_compile_seconds": round(compile_s, 2),
          "reuse_gflop_per_call": _gflop(reuse_flops),
          "reuse_achieved_gflops_per_second": _gflop(reuse_flops / t_reuse),
          "rerun_gflop_per_sample": _gflop(rerun_flops),
      },
      with_jax=True)
  common.emit(obj)
  return obj


if __name__ == "__main__":
  main()
