# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""How fast can the HPU-Net's posterior read the spot bit on its 1x1 latent?

On `synthetic/s128` the HPU-Net codes the image-wide spot factor in its 8x8
latent cells, never on its 1x1 level (README, rounds 4-11), although the
objective prefers the 1x1 code (round 8). The 1x1 level of the posterior
reads the annotation through seven 2x2 average poolings, so three spots of
~32 pixels (0.6 % of a 128x128 annotation) reach it diluted, while an 8x8
cell (16x16 pixels) sees a spot as an eighth of its window.

This probe trains the posterior core of the `s128` model alone (its
encoder, decoder and 1x1 head; no prior, no `f_comb`, no finer level) to
put N(spot bit, 0.25^2) on its 1x1 latent (the KL to that target, the spot
bit +1 annotated / -1 not), on the HPU-Net runs' training batches (batch 8,
a random grader, mirror / rotation / scale augmentation; Adam 1e-3). Every
25 steps it scores the sign of the 1x1 mean against the spot bit on the
first 50 test images x 4 graders. Reported per pooling of the posterior's
encoder (`model.posterior_pooling`: "mean", the papers' average pooling,
and "max") and seed: the first step at which that accuracy reaches 0.95,
and the accuracy on all 200 test images x 4 graders at the end.

  python experiments/posterior_probe.py [--poolings=mean,max] [--seeds=0,1]

About 7 minutes per run on a 2-core CPU shared with three trainings (most
of it the 400 steps; the training and test splits load once).
"""

import argparse
import json
import math
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # this checkout's hpunet, also when not installed
sys.path.insert(0, os.path.join(REPO, "experiments"))

import haiku as hk  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
import optax  # pylint: disable=g-import-not-at-top

import global_code  # pylint: disable=g-import-not-at-top
from hpunet import model as hpu_model  # pylint: disable=g-import-not-at-top
from hpunet import networks as networks_lib  # pylint: disable=g-import-not-at-top

POOLINGS = ("mean", "max")
SEEDS = (0, 1)  # the committed rows
STEPS = 400
EVAL_EVERY = 25
EVAL_IMAGES = 50  # test images scored during training (x 4 graders)
TARGET_SCALE = 0.25
RESULTS = os.path.join(REPO, "experiments", "results", "posterior_probe")


def posterior_1x1(config, pooling: str):
  """hk.Transformed (seg one-hot, img) -> the posterior's 1x1 Gaussian."""
  _, kwargs = networks_lib.model_kwargs(config.model)
  kwargs = dict(kwargs, posterior_pooling=pooling)

  def f(seg, img):
    model = hpu_model.HierarchicalProbUNet(**kwargs)
    # pylint: disable=protected-access
    return model._posterior(model._posterior_input(seg, img),
                            mean=True).distributions[0]  # [B, 1, 1, Z_0]

  return hk.transform(f)


def target(mode):
  """N(spot bit, TARGET_SCALE^2) as a Gaussian [B, 1, 1, 1]."""
  z = global_code.spot_z(mode)
  return hpu_model.Gaussian(z, jnp.full_like(z, math.log(TARGET_SCALE)))


def run(config, pooling, seed, train_data, test_data, log=print):
  """Trains one probe; returns its row (see module docstring)."""
  net = posterior_1x1(config, pooling)
  h, w = config.input.image_size
  params = jax.jit(net.init)(jax.random.key(seed), jnp.zeros((1, h, w, 2)),
                             jnp.zeros((1, h, w, 1)))
  tx = optax.adam(1e-3)
  opt_state = tx.init(params)

  def loss_fn(params, img, seg, mode):
    q = net.apply(params, None, jax.nn.one_hot(seg, 2), img)
    return hpu_model.kl_divergence(q, target(mode)).mean()

  @jax.jit
  def step(params, opt_state, img, seg, mode):
    loss, grads = jax.value_and_grad(loss_fn)(params, img, seg, mode)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  loc = jax.jit(lambda p, img, seg: net.apply(
      p, None, jax.nn.one_hot(seg, 2), img).loc[:, 0, 0, 0])
  images, masks, grader_modes = test_data[:3]

  def accuracy(params, n):
    hits = []
    for g in range(masks.shape[-1]):
      for i0 in range(0, n, 25):
        i1 = min(i0 + 25, n)
        z = np.asarray(loc(params, jnp.asarray(images[i0:i1]),
                           jnp.asarray(masks[i0:i1, ..., g], jnp.int32)))
        hits.extend((z > 0) == (grader_modes[i0:i1, g] >= 9))
    return float(np.mean(hits))

  batches = global_code._batches(config, train_data, seed)  # pylint: disable=protected-access
  curve, losses, start = [], [], time.time()
  for t in range(1, STEPS + 1):
    img, seg, mode = next(batches)
    params, opt_state, loss = step(params, opt_state, img, seg,
                                   jnp.asarray(mode))
    losses.append(loss)
    if t % EVAL_EVERY == 0:
      acc = accuracy(params, EVAL_IMAGES)
      curve.append([t, float(np.mean(jax.device_get(losses))), acc])
      losses = []
      log(f"  {pooling}/seed{seed}: step {t}, KL to target "
          f"{curve[-1][1]:.2f}, accuracy {acc:.3f} "
          f"({time.time() - start:.0f} s)")
  reached = [t for t, _, acc in curve if acc >= 0.95]
  return {"first_step_accuracy_0.95": reached[0] if reached else None,
          "final_accuracy": accuracy(params, len(images)),
          "final_kl_to_target": curve[-1][1],
          "curve": curve, "seconds": time.time() - start}


def markdown(result) -> str:
  rows = ["| posterior pooling | seed | first step with accuracy ≥ 0.95 "
          "(50 test images) | accuracy at step "
          f"{STEPS} (200 test images × 4 graders) |", "|---|---|---|---|"]
  for name, r in sorted(result["rows"].items()):
    pooling, seed = name.split("/seed")
    first = r["first_step_accuracy_0.95"]
    rows.append(f"| {pooling} | {seed} | "
                f"{first if first is not None else f'not by {STEPS}'} | "
                f"{r['final_accuracy']:.3f} |")
  return "\n".join(rows) + "\n"


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--poolings", default=",".join(POOLINGS))
  parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
  parser.add_argument("--out", default=RESULTS)
  args = parser.parse_args()
  poolings = [p for p in args.poolings.split(",") if p]
  bad = sorted(set(poolings) - set(POOLINGS))
  if bad:
    parser.error(f"--poolings: unknown {bad}, expected some of {POOLINGS}.")
  try:
    seeds = [int(s) for s in args.seeds.split(",") if s]
  except ValueError:
    parser.error(f"--seeds={args.seeds!r}: expected comma-separated "
                 "integers, e.g. 0,1.")
  path, result = global_code.load_results(args.out)
  config = global_code.base_config()
  train_data = global_code.load_split(config, "train")
  test_data = global_code.load_split(config, "test")
  for pooling in poolings:
    for seed in seeds:
      print(f"{pooling}, seed {seed}", flush=True)
      result["rows"][f"{pooling}/seed{seed}"] = run(
          config, pooling, seed, train_data, test_data,
          log=lambda line: print(line, flush=True))
      with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
      with open(os.path.join(args.out, "results.md"), "w",
                encoding="utf-8") as f:
        f.write(markdown(result))
  print(markdown(result))


if __name__ == "__main__":
  main()
