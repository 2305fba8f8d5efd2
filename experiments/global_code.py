# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""What a perfect global code buys the HPU-Net's decoder (synthetic/s128).

The HPU-Net codes the image-wide spot factor in its fine latent cells, not on
its 1x1 level (README, "Results on the synthetic benchmark", rounds 4-8). Is
the fine-cell code the better solution under the model's own objective, or a
local optimum that training does not leave? This script measures the two
sides of the ELBO (CE summed over pixels + beta * KL) for both solutions:

- **Code decoders**: the HPU-Net's decoding path (prior net + f_comb of
  that config, nothing else changed) with one latent, on the 1x1 grid, set
  to a known code of the grader's mode instead of a sample: `none` (zeros:
  the decoder can only hedge) and `mode` (the spot bit g and both ambiguous
  blobs' absent / thin / thick, one-hot, 8 numbers).
- **HPU-Nets trained here**: `hpunet_free`, the beta = 10 HPU-Net, and
  `hpunet_spots`, the same with its 1x1 latent set to the spot bit (+1 / -1)
  in both decoders instead of a posterior sample; the finer levels are
  free. Its KL leaves the 1x1 level out and adds ln 2, the least KL a code
  of one fair bit needs. If the ELBO preferred the fine-cell spot code,
  `hpunet_spots` would score no better than `hpunet_free`.
- Both kinds are trained as the HPU-Net runs are (the same training images,
  one grader drawn per example, mirror / rotation / scale augmentation of
  the same ranges, here with scipy; batch 8, 2000 steps, Adam 1e-3 -> 3e-4
  at step 1400, weight decay 1e-5), with the CE summed over pixels.
- **Trained HPU-Nets** (`--hpunet_runs`, workdirs `<root>/<run>/seed<k>`,
  trained by `experiments/synthetic_results.py`): their posterior
  reconstructions (latents sampled, as in training) and their KL per
  level, on the same test images and graders.
- **The least KL of a global code**: a code that tells the decoder the mode
  carries at least the entropy of the image's mode distribution (the
  mutual information bound E[KL] >= I(z; y | x) = H(mode | x)).

Everything is reported per test image (200 images x 4 graders, the CE summed
over the pixels of each region: spots, blobs, rings (thick minus thin) and
the rest), with `beta * KL + CE` at beta = 10, the HPU-Net's best-calibrated
setting (README round 6). Output: `<out>/results.json` and `results.md`.

  python experiments/global_code.py --root=<synthetic_results.py's --root> \
      [--codes=none,mode,hpunet_free,hpunet_spots] \
      [--hpunet_runs=s128_elbo_b10,s128_elbo_b10_skips,...]

About 15 minutes per code decoder and 20 per HPU-Net on an idle 2-core CPU
(measured with 4-6 jobs sharing it: 30 and 50-60 minutes), and 2 minutes
per HPU-Net seed evaluated.
"""

import argparse
import collections
import json
import math
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # this checkout's hpunet, also when not installed
sys.path.insert(0, os.path.join(REPO, "experiments"))

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
import optax  # pylint: disable=g-import-not-at-top
from scipy import ndimage  # pylint: disable=g-import-not-at-top

from hpunet import input_pipeline  # pylint: disable=g-import-not-at-top
from hpunet import losses  # pylint: disable=g-import-not-at-top
from hpunet import metrics as metrics_lib  # pylint: disable=g-import-not-at-top
from hpunet import networks as networks_lib  # pylint: disable=g-import-not-at-top
from hpunet import train as train_lib  # pylint: disable=g-import-not-at-top

CODES = ("none", "mode")
# Full HPU-Nets trained by this script's loop: `hpunet_free` as the beta = 10
# runs, `hpunet_spots` with its 1x1 latent set to the spot bit (+1 / -1).
HPUNETS = ("hpunet_free", "hpunet_spots")
SEEDS = {"none": (0,), "mode": (0,), "hpunet_free": (0, 1),
         "hpunet_spots": (0, 1)}  # the committed rows
CODE_DIM = 8  # g one-hot (2) + s1 one-hot (3) + s2 one-hot (3)
REGIONS = ("spots", "blobs", "rings", "rest")
BETA = 10.0
RESULTS = os.path.join(REPO, "experiments", "results", "global_code")


# The trained runs (synthetic_results.RUNS) whose objective the table shows:
# the best-calibrated recipe, with the skips, the coarse-first recipes
# (round 7; round 9 with the residual posterior; round 10 with a level
# dropout floor, with and without it), round 11's KL price per level
# (with a scalar and a 4-d 1x1 latent), round 12's max-pooling posterior
# and round 13's price on its 8x8 level.
EVALUATED_RUNS = ("s128_elbo_b10", "s128_elbo_b10_skips", "s128_coarse_first",
                  "s128_residual", "s128_residual_floor",
                  "s128_coarse_first_floor", "s128_scale_price",
                  "s128_scale_price_z4", "s128_max_pool",
                  "s128_max_pool_fine_price")


def base_config():
  """The config of the beta = 10 HPU-Nets (`synthetic_no_topk.py:s128`,
  ELBO with beta = 10: the `s128_elbo_b10` runs)."""
  import synthetic_results  # pylint: disable=g-import-not-at-top
  return synthetic_results.load_config("s128_elbo_b10")


def code_of(mode_index: np.ndarray, code: str) -> np.ndarray:
  """Mode indices [N] (9 g + 3 s1 + s2) -> codes [N, CODE_DIM] float32."""
  g, s1, s2 = mode_index // 9, (mode_index // 3) % 3, mode_index % 3
  out = np.zeros((len(mode_index), CODE_DIM), np.float32)
  if code == "none":
    return out
  out[np.arange(len(g)), g] = 1.0
  out[np.arange(len(g)), 2 + s1] = 1.0
  out[np.arange(len(g)), 5 + s2] = 1.0
  return out


def load_split(config, split: str):
  """All examples of `split` (no augmentation): images [N, H, W, 1], grader
  masks [N, H, W, G], the graders' mode indices [N, G], the factor regions
  (dict of bool [N, H, W]) and the mode probabilities [N, 18]."""
  images, masks, grader_modes, probs = [], [], [], []
  regions = collections.defaultdict(list)
  for batch in input_pipeline.create_eval_dataset(config.input, split=split):
    valid = np.asarray(batch["batch_mask"], bool)
    modes = np.asarray(batch["modes"])[valid] > 0  # [B, 18, H, W]
    m = np.asarray(batch["masks"])[valid] > 0  # [B, H, W, G]
    # The mode each grader drew: the one mask equal to theirs.
    same = (modes[:, :, None] == np.moveaxis(m, -1, 1)[:, None]).all((-2, -1))
    if not (same.sum(1) == 1).all():
      raise RuntimeError("a grader mask that matches no single mode")
    grader_modes.append(same.argmax(1))  # [B, G]
    for k, v in metrics_lib.synthetic_factor_regions(modes).items():
      regions[k].append(v)
    images.append(np.asarray(batch["image"], np.float32)[valid])
    masks.append(m)
    probs.append(np.asarray(batch["mode_probs"], np.float64)[valid])
  return (np.concatenate(images), np.concatenate(masks),
          np.concatenate(grader_modes),
          {k: np.concatenate(v) for k, v in regions.items()},
          np.concatenate(probs))


def augment(rng, image, mask, aug):
  """One example's mirror, rotation and scale about the centre (bilinear
  image, nearest mask, edge values beyond the border)."""
  h, w = image.shape[:2]
  if aug.mirror and rng.random() < 0.5:
    image, mask = image[:, ::-1], mask[:, ::-1]
  angle = math.radians(rng.uniform(-aug.rotation_deg, aug.rotation_deg))
  scale = rng.uniform(*aug.scale_range)
  c, s = math.cos(angle) / scale, math.sin(angle) / scale
  matrix = np.array([[c, -s], [s, c]])
  centre = np.array([(h - 1) / 2, (w - 1) / 2])
  offset = centre - matrix @ centre
  image = ndimage.affine_transform(image[..., 0], matrix, offset, order=1,
                                   mode="nearest")[..., None]
  mask = ndimage.affine_transform(mask.astype(np.uint8), matrix, offset,
                                  order=0, mode="nearest")
  return image, mask


def code_networks(config, code: str):
  """The HPU-Net with its only latent on the 1x1 grid (CODE_DIM numbers)."""
  model = config.model.to_dict()
  model["latent_dims"] = (CODE_DIM,) + (0,) * (len(model["latent_dims"]) - 1)
  return networks_lib.make_networks(model)


def _batches(config, train_data, seed):
  """Yields (image, seg, grader mode) batches as the HPU-Net runs get them:
  a random example and grader each, mirror / rotation / scale."""
  images, masks, grader_modes, _, _ = train_data
  n, num_graders = grader_modes.shape
  batch = int(config.input.batch_size)
  rng = np.random.default_rng(seed)
  aug = config.input.augment
  while True:
    idx = rng.integers(0, n, batch)
    graders = rng.integers(0, num_graders, batch)
    img_b, seg_b = zip(*(augment(rng, images[i], masks[i, ..., g], aug)
                         for i, g in zip(idx, graders)))
    yield (jnp.asarray(np.stack(img_b)), jnp.asarray(np.stack(seg_b),
                                                     jnp.int32),
           grader_modes[idx, graders])


def _fit(config, name, loss_fn, params, train_data, seed, log):
  """Adam with the configs' schedule on `loss_fn(params, rng, img, seg,
  mode) -> (loss, CE)`; returns (params, seconds)."""
  tx = train_lib.create_optimizer(config)
  opt_state = tx.init(params)
  weight_decay = float(config.loss.weight_decay)

  def total(params, rng, img, seg, mode):
    loss, rec = loss_fn(params, rng, img, seg, mode)
    l2 = sum(jnp.sum(jnp.square(p)) for p in jax.tree.leaves(params))
    return loss + weight_decay * l2, rec

  @jax.jit
  def step(params, opt_state, rng, img, seg, mode):
    (_, rec), grads = jax.value_and_grad(total, has_aux=True)(
        params, rng, img, seg, mode)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, rec

  key = jax.random.key(seed)
  start, recent = time.time(), []
  batches = _batches(config, train_data, seed)
  for t in range(int(config.num_train_steps)):
    img, seg, mode = next(batches)
    params, opt_state, rec = step(params, opt_state, jax.random.fold_in(
        key, t), img, seg, jnp.asarray(mode))
    recent.append(rec)  # read back only when logged: no sync per step
    if (t + 1) % 250 == 0:
      ce = float(np.mean(jax.device_get(recent)))
      log(f"  {name}: step {t + 1}, train CE {ce:.1f} "
          f"nats/image ({time.time() - start:.0f} s)")
      recent = []
  return params, time.time() - start


def _init(networks, config, seed):
  h, w = config.input.image_size
  return jax.jit(lambda k: networks.init(
      k, seg=jnp.zeros((1, h, w, 2)), img=jnp.zeros((1, h, w, 1))))(
          jax.random.key(seed))


def spot_z(mode):
  """The spot bit as the 1x1 latent: +1 annotated, -1 not. [B, 1, 1, 1]"""
  return (2.0 * (mode // 9) - 1.0).astype(jnp.float32)[:, None, None, None]


def _posterior_z(name, mode, levels):
  if name != "hpunet_spots":
    return None
  return (spot_z(mode),) + (None,) * (levels - 1)


def train_code_decoder(config, code: str, train_data, *, seed: int = 0,
                       log=print):
  """Trains a code decoder (module docstring); returns (networks, params,
  seconds)."""
  networks = code_networks(config, code)
  levels = len(networks.latent_dims)
  table = jnp.asarray(code_of(np.arange(18), code))  # mode -> code

  def loss_fn(params, rng, img, seg, mode):
    del rng
    z_q = (table[mode][:, None, None, :],) + (None,) * (levels - 1)
    logits = networks.sample(params, None, img, z_q=z_q).logits
    rec = losses.softmax_cross_entropy(
        logits, jax.nn.one_hot(seg, 2)).sum((1, 2)).mean()
    return rec, rec

  params, seconds = _fit(config, code, loss_fn, _init(networks, config, seed),
                         train_data, seed, log)
  return networks, params, seconds


def train_hpunet(config, name: str, train_data, *, seed: int = 0,
                 log=print):
  """`hpunet_free` / `hpunet_spots` (HPUNETS): the ELBO with beta =
  config.loss.beta; for `hpunet_spots` the 1x1 level's KL is left out (its
  latent is given, not drawn from the posterior)."""
  networks = networks_lib.make_networks(config.model)
  levels = len(networks.latent_dims)
  beta = float(config.loss.beta)
  first = 1 if name == "hpunet_spots" else 0

  def loss_fn(params, rng, img, seg, mode):
    one_hot = jax.nn.one_hot(seg, 2)
    out = networks.train_outputs(params, rng, seg=one_hot, img=img,
                                 posterior_z=_posterior_z(name, mode, levels))
    rec = losses.softmax_cross_entropy(out.logits, one_hot).sum((1, 2)).mean()
    kl = sum(k.mean() for k in out.kl[first:])
    return rec + beta * kl, rec

  params, seconds = _fit(config, name, loss_fn, _init(networks, config, seed),
                         train_data, seed, log)
  return networks, params, seconds


def _region_sums(ce, regions, i0, i1):
  """CE [n, H, W] -> dict region -> per-image sums [n]."""
  out = {}
  rest = np.ones(ce.shape, bool)
  for name in REGIONS[:-1]:
    r = regions[name][i0:i1]
    out[name] = (ce * r).sum((-2, -1))
    rest &= ~r
  out["rest"] = (ce * rest).sum((-2, -1))
  return out


def evaluate_code_decoder(networks, params, code, test_data, chunk=20):
  """Per test image, mean over its graders: CE per region (nats)."""
  images, masks, grader_modes, regions, _ = test_data
  levels = len(networks.latent_dims)

  @jax.jit
  def ce_fn(params, img, seg, z):
    z_q = (z[:, None, None, :],) + (None,) * (levels - 1)
    logits = networks.sample(params, None, img, z_q=z_q).logits
    return losses.softmax_cross_entropy(logits, jax.nn.one_hot(seg, 2))

  sums = collections.defaultdict(list)
  for i0 in range(0, len(images), chunk):
    i1 = min(i0 + chunk, len(images))
    per_grader = collections.defaultdict(list)
    for g in range(masks.shape[-1]):
      ce = np.asarray(ce_fn(params, jnp.asarray(images[i0:i1]),
                            jnp.asarray(masks[i0:i1, ..., g], jnp.int32),
                            jnp.asarray(code_of(grader_modes[i0:i1, g],
                                                code))))
      for k, v in _region_sums(ce, regions, i0, i1).items():
        per_grader[k].append(v)
    for k, v in per_grader.items():
      sums[k].extend(np.mean(v, axis=0).tolist())
  return sums


def evaluate_posterior(networks, params, test_data, *, name="",
                       seed=0, chunk=20, level_dropout_scale=None):
  """Per test image, mean over its graders: the CE per region of posterior
  reconstructions (latents sampled, as in training) and the KL per level
  (`hpunet_spots`: the 1x1 latent is the spot bit, its KL left out).
  `level_dropout_scale`: the factor of the latent level dropout rate (0:
  every level from the posterior; None: the model's constant rate)."""
  images, masks, grader_modes, regions, _ = test_data
  levels = len(networks.latent_dims)

  @jax.jit
  def fn(params, rng, img, seg, mode):
    one_hot = jax.nn.one_hot(seg, 2)
    out = networks.train_outputs(params, rng, seg=one_hot, img=img,
                                 posterior_z=_posterior_z(name, mode, levels),
                                 level_dropout_scale=level_dropout_scale)
    return (losses.softmax_cross_entropy(out.logits, one_hot),
            jnp.stack(out.kl, -1))  # [B, H, W], [B, levels]

  rng = jax.random.key(seed)
  sums = collections.defaultdict(list)
  first = 1 if name == "hpunet_spots" else 0
  for i0 in range(0, len(images), chunk):
    i1 = min(i0 + chunk, len(images))
    per_grader = collections.defaultdict(list)
    for g in range(masks.shape[-1]):
      ce, kl = fn(params, jax.random.fold_in(rng, 100 * i0 + g),
                  jnp.asarray(images[i0:i1]),
                  jnp.asarray(masks[i0:i1, ..., g], jnp.int32),
                  jnp.asarray(grader_modes[i0:i1, g]))
      for k, v in _region_sums(np.asarray(ce), regions, i0, i1).items():
        per_grader[k].append(v)
      for level in range(first, kl.shape[-1]):
        per_grader[f"kl_{level}"].append(np.asarray(kl[:, level]))
    for k, v in per_grader.items():
      sums[k].extend(np.mean(v, axis=0).tolist())
  return sums


def evaluate_hpunet(config, workdir, test_data, *, seed=0):
  """`evaluate_posterior` of a trained run's workdir; (sums, step)."""
  params, step = train_lib.restore_params(config, workdir)
  networks = networks_lib.make_networks(config.model)
  # Level dropout is a training device: the model's ELBO decodes every
  # example through the full posterior, whatever rate the run trained at.
  return evaluate_posterior(networks, params["model"], test_data, seed=seed,
                            level_dropout_scale=jnp.float32(0.0)), step


def summarise(sums, kl_bound=0.0):
  """Means over the test images. `kl`: the KL per level summed plus
  `kl_bound`, the least KL of a given code (module docstring)."""
  mean = {k: float(np.mean(v)) for k, v in sums.items()}
  mean["ce_total"] = sum(mean[r] for r in REGIONS)
  mean["kl"] = float(kl_bound) + sum(
      mean[k] for k in mean if k.startswith("kl_"))
  mean["objective_beta10"] = mean["ce_total"] + BETA * mean["kl"]
  return mean


LABELS = {
    "none": "decoder given nothing (hedges every ambiguous factor)",
    "mode": "decoder given the mode (spot bit, both blobs)",
    "hpunet_free": "HPU-Net, trained here",
    "hpunet_spots": "HPU-Net, trained here, 1x1 latent = the spot bit",
}


def label(name: str) -> str:
  """A row's label: `<variant or run>/seed<k>`."""
  run, _, seed = name.partition("/")
  seed = seed.replace("seed", "seed ")
  if run in CODES:
    return f"{LABELS[run]}, {seed}"
  if run in HPUNETS:
    return f"{LABELS[run]}, {seed} (posterior samples)"
  return f"HPU-Net `{run}`, {seed} (posterior samples)"


def markdown(result) -> str:
  """The results table: per test image, nats; KL of a code decoder = the
  least KL of its code (module docstring)."""
  keys = REGIONS + ("ce_total",)
  rows = ["| decoder | CE spots | CE blobs | CE rings | CE rest | CE total | "
          "KL | CE + 10 KL |", "|" + "---|" * 8]
  for name, r in result["rows"].items():
    rows.append(f"| {label(name)} | " +
                " | ".join(f"{r[k]:.1f}" for k in keys) +
                f" | {r['kl']:.2f} | {r['objective_beta10']:.1f} |")
  return "\n".join(rows) + "\n"


def load_results(out):
  """(`<out>/results.json`, its rows so far or none): a run adds rows to
  what earlier runs wrote."""
  os.makedirs(out, exist_ok=True)
  path = os.path.join(out, "results.json")
  if not os.path.exists(path):
    return path, {"rows": {}}
  with open(path, encoding="utf-8") as f:
    return path, json.load(f)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--root", default=os.path.join(
      tempfile.gettempdir(), "hpunet", "experiments"),
                      help="Runs of experiments/synthetic_results.py.")
  parser.add_argument("--codes", default=",".join(CODES + HPUNETS),
                      help="Code decoders and HPU-Nets to train.")
  parser.add_argument("--hpunet_runs",
                      default=",".join(EVALUATED_RUNS),
                      help="Experiments (synthetic_results.RUNS) whose seeds"
                           " to evaluate; '' for none.")
  parser.add_argument("--out", default=RESULTS)
  parser.add_argument("--seeds", default="",
                      help="Comma-separated seeds of the --codes runs "
                      "(default: SEEDS, the committed rows).")
  args = parser.parse_args()
  codes = [c for c in args.codes.split(",") if c]
  bad = sorted(set(codes) - set(CODES + HPUNETS))
  if bad:
    parser.error(f"--codes: unknown {bad}, expected some of "
                 f"{CODES + HPUNETS}.")
  try:
    seeds = [int(s) for s in args.seeds.split(",") if s]
  except ValueError:
    parser.error(f"--seeds={args.seeds!r}: expected comma-separated "
                 "integers, e.g. 0,1.")
  runs = [r for r in args.hpunet_runs.split(",") if r]
  import synthetic_results  # pylint: disable=g-import-not-at-top
  unknown = [r for r in runs if r not in synthetic_results.RUNS]
  if unknown:
    parser.error(f"--hpunet_runs: {unknown} not in synthetic_results.RUNS.")
  path, result = load_results(args.out)
  config = base_config()
  test_data = load_split(config, "test")
  probs = test_data[4]
  entropy = -np.sum(np.where(probs > 0, probs * np.log(np.maximum(
      probs, 1e-30)), 0.0), axis=1)  # [N] nats
  result["mode_entropy_nats"] = float(entropy.mean())
  bounds = {"none": 0.0, "mode": float(entropy.mean())}

  def save():
    with open(path, "w", encoding="utf-8") as f:
      json.dump(result, f, indent=1)
    with open(os.path.join(args.out, "results.md"), "w",
              encoding="utf-8") as f:
      f.write(markdown(result))

  if codes:
    train_data = load_split(config, "train")
    for code, seed in [(c, s) for c in codes for s in seeds or SEEDS[c]]:
      print(f"{code}, seed {seed}: training", flush=True)
      log = lambda line: print(line, flush=True)
      if code in HPUNETS:
        networks, params, seconds = train_hpunet(
            config, code, train_data, seed=seed, log=log)
        sums = evaluate_posterior(networks, params, test_data, name=code,
                                  seed=seed)
        row = summarise(sums, math.log(2.0) if code == "hpunet_spots" else 0.0)
      else:
        networks, params, seconds = train_code_decoder(
            config, code, train_data, seed=seed, log=log)
        sums = evaluate_code_decoder(networks, params, code, test_data)
        row = summarise(sums, bounds[code])
      result["rows"][f"{code}/seed{seed}"] = dict(row, train_seconds=seconds)
      save()
  for run in runs:
    run_config = synthetic_results.load_config(run)
    for seed in synthetic_results.RUNS[run][1]:
      workdir = os.path.join(args.root, run, f"seed{seed}")
      sums, step = evaluate_hpunet(run_config, workdir, test_data)
      result["rows"][f"{run}/seed{seed}"] = summarise(sums)
      result["rows"][f"{run}/seed{seed}"]["step"] = step
      print(f"{run}/seed{seed}: {result['rows'][f'{run}/seed{seed}']}",
            flush=True)
      save()
  save()
  print(markdown(result))


if __name__ == "__main__":
  main()
