# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""U-Net Ensemble train step: members batched (`vmap`) vs unrolled.

`baselines.UNetEnsemble` runs its M members in one step. Batched with
`jax.vmap`, every convolution of the M members becomes one grouped
convolution (feature_group_count = M); unrolled, the graph holds M ordinary
convolutions per layer. Which is faster depends on the backend's
grouped-convolution kernels; `member_loop="auto"` (the configs' setting)
takes "unroll" on CPU and "vmap" elsewhere, and this benchmark is the
evidence for that choice on the machine it runs on. (A `jax.lax.map` over
the members was also tried: on XLA:CPU a convolution inside the loop body
ran about 14x slower than the same convolution outside it.)

For one ensemble config it compiles and times the train step with each
loop on a fixed random batch (both the same function of the same
parameters; tests/baselines_test.py checks that) and reports, per loop,
compile seconds, the median step seconds and images/s, plus the ratio
vmap / unroll of the step times (> 1: "unroll" is faster).

Prints ONE JSON object (benchmarks/common.py).

  python benchmarks/ensemble_members.py [--config=synthetic_ensemble]
      [--variant=m4] [--batch=16] [--steps=3] [--loops=unroll,vmap]
"""

import argparse
import statistics
from typing import Any

import common  # benchmarks/common.py (also puts the repo on sys.path)
import jax

from hpunet import config_lib
import train_step  # benchmarks/train_step.py


def time_loop(config, loop: str, batch: int, steps: int) -> dict[str, Any]:
  """Compiles and times the train step with `member_loop=loop`."""
  config = config.copy_and_resolve_references()
  config.model.member_loop = loop
  used, _ = train_step.fit_mesh(config, batch, jax.devices())
  setup = train_step.prepare(config, batch, tuple(config.input.crop_size),
                             used)
  compiled = train_step.compile_step(setup)
  state, _, _ = train_step.run_steps(setup, setup.state, 1)  # warm-up
  _, _, times = train_step.run_steps(setup, state, steps)
  step_s = statistics.median(times)
  return {"compile_seconds": round(compiled["compile_seconds"], 2),
          "step_seconds_median": round(step_s, 6),
          "step_seconds_all": [round(t, 6) for t in times],
          "images_per_second": common.sig(batch / step_s)}


def main(argv=None) -> dict[str, Any]:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--config", default="synthetic_ensemble")
  p.add_argument("--variant", default="m4",
                 help="the config's variant (m<M> = M members).")
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--loops", default="unroll,vmap")
  args = p.parse_args(argv)
  config = config_lib.load_config(args.config, args.variant)
  if config.model.name != "unet_ensemble":
    raise SystemExit(f"--config={args.config}: model "
                     f"{config.model.name!r}, expected 'unet_ensemble'.")
  loops = args.loops.split(",")
  by_loop = {}
  for loop in loops:
    by_loop[loop] = time_loop(config, loop, args.batch, args.steps)
    common.progress({"member_loop": loop, **by_loop[loop]})
  ratio = None
  if "unroll" in by_loop and "vmap" in by_loop:
    ratio = round(by_loop["vmap"]["step_seconds_median"] /
                  by_loop["unroll"]["step_seconds_median"], 3)
  settings = {"config": args.config, "variant": args.variant,
              "num_members": int(config.model.num_members),
              "batch": args.batch, "image_size": list(config.input.crop_size),
              "steps": args.steps, "loops": loops}
  obj = common.report("ensemble_members", settings,
                      {"by_loop": by_loop,
                       "vmap_over_unroll_step_time": ratio},
                      with_jax=True)
  common.emit(obj)
  return obj


if __name__ == "__main__":
  main()
