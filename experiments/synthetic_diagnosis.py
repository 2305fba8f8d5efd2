# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Reference rows and diagnosis of trained runs on the synthetic benchmark.

Called by `experiments/synthetic_results.py` (stages `oracle` and `diagnose`);
each function returns plain JSON-ready dicts.

- `oracle`: samples drawn from the TRUE mode distribution of every test
  image (n per image, as the models get), scored by the same metric code as
  `hpunet.evaluate`. It is each metric's floor (or ceiling) at that sample
  count: with 16 samples over 18 modes a perfect sampler's per-image mode
  TV is far from 0.
- `mode_tv`: mode-frequency total variation of a trained run's prior
  samples, per image and pooled over the test set, at any number of samples
  per image (256 tells a calibrated model from a lucky one).
- `diagnose`: what a trained run does inside, on the test split:
  * `soft`: per factor, the true P(foreground), the mean sampled
    P(foreground) and the fraction of argmax samples that draw it, so
    "the prior never samples the factor" can be told from "the samples hedge
    (P near 0.5) and the argmax drops it";
  * `per_level`: the variance ratio of every factor when only latent level i
    is sampled (the others at their prior mean), for every level;
  * `top_k`: the pixels that make up the top-2% cross-entropy of the
    posterior reconstructions (latents sampled from the posterior, as in
    training), by kind (label edges, spots, rings, blob interiors, the
    rest), with their mean CE, so the reconstruction floor that GECO's kappa
    is compared with can be read off;
  * `spot_codes` (hierarchical models): for each test image, its most
    likely mode without spots and the same mode with spots, encoded by the
    posterior (means): per latent level, at the cells that contain a spot,
    how far the two posterior means lie from the prior's mean, in prior
    standard deviations. A level that carries the spots has them apart; a
    prior that covers both has them on either side of 0.
"""

import collections
from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hpunet import train as train_lib
from hpunet import input_pipeline
from hpunet import losses
from hpunet import metrics as metrics_lib
from hpunet import networks as networks_lib

FACTORS = metrics_lib.SYNTHETIC_FACTORS  # ("spots", "blobs", "rings")


def _test_batches(config: ml_collections.ConfigDict, split: str):
  """(valid, batch) of the test split, padding rows dropped."""
  for batch in input_pipeline.create_eval_dataset(config.input, split=split):
    valid = np.asarray(batch.get("batch_mask",
                                 np.ones(len(batch["image"]), bool)), bool)
    if valid.any():
      yield valid, batch


def _modes(batch, valid):
  modes = np.asarray(batch["modes"])[valid] > 0  # [B, 18, H, W]
  probs = np.asarray(batch["mode_probs"], np.float64)[valid]  # [B, 18]
  graders = np.moveaxis(np.asarray(batch["masks"]) > 0, -1, 1)[valid]
  return modes, probs, graders


def _per_image_metrics(out, samples, recs, modes, probs, graders,
                       ged_sample_counts=()):
  """The metrics of `hpunet.evaluate` for binary samples [B, n, H, W]."""
  for k, v in metrics_lib.binary_batch_metrics(
      samples, recs, graders, modes, probs,
      ged_sample_counts=ged_sample_counts).items():
    out[k].extend(v.tolist())
  assignments = metrics_lib.assign_modes(samples, modes)  # [B, n]
  out["_assignments"].extend(assignments)
  out["_probs"].extend(probs)
  for a, p in zip(assignments, probs):
    out["mode_tv"].append(metrics_lib.mode_frequencies(a, p).total_variation)
  p_true = np.einsum("bm,bmhw->bhw", probs, modes)
  regions = metrics_lib.synthetic_factor_regions(modes)
  for factor in FACTORS:
    out[f"var_full_{factor}"].extend(np.asarray(metrics_lib.variance_ratio(
        samples, p_true, regions[factor])).tolist())


def _finish(out) -> dict[str, Any]:
  freqs = metrics_lib.mode_frequencies(np.stack(out.pop("_assignments")),
                                       np.stack(out.pop("_probs")))
  per_image = {k: np.asarray(v, np.float64) for k, v in out.items()}
  return {"per_image": {k: v.tolist() for k, v in per_image.items()},
          "mean": {k: float(np.nanmean(v)) for k, v in per_image.items()},
          "pooled_mode_tv": freqs.total_variation,
          "pooled_mode_frequencies": {"predicted": freqs.predicted.tolist(),
                                      "expected": freqs.expected.tolist()}}


def oracle(config: ml_collections.ConfigDict, num_samples: int, *,
           split: str = "test", seed: int = 0,
           ged_sample_counts=()) -> dict[str, Any]:
  """Metrics of samples drawn from the true mode distribution.

  The reconstructions are the graders' own masks (IoU_rec = 1 by
  construction); every other metric is a real floor at `num_samples`.
  `ged_sample_counts` adds `ged_n<n>` / `ged_modes_n<n>` of the first n
  draws, as `hpunet.evaluate` does for a model.
  """
  rng = np.random.default_rng(seed)
  out = collections.defaultdict(list)
  for valid, batch in _test_batches(config, split):
    modes, probs, graders = _modes(batch, valid)
    idx = np.stack([rng.choice(len(p), size=num_samples, p=p / p.sum())
                    for p in probs])  # [B, n]
    samples = np.take_along_axis(modes, idx[:, :, None, None], axis=1)
    _per_image_metrics(out, samples, graders, modes, probs, graders,
                       ged_sample_counts)
  result = _finish(out)
  result["num_samples"] = num_samples
  return result


def _restore(config, workdir):
  params, step = train_lib.restore_params(config, workdir)
  return networks_lib.make_networks(config.model), params, step


def mode_tv(config: ml_collections.ConfigDict, workdir: str,
            num_samples: int, *, split: str = "test", seed: int = 0,
            chunk: int = 64) -> dict[str, Any]:
  """Mode-frequency TV of a run's prior samples (per image and pooled)."""
  networks, params, step = _restore(config, workdir)

  @jax.jit
  def sample(params, rng, image):
    logits = networks.sample_n(params["model"], rng, image,
                               num_samples=chunk, mean=False)
    return jnp.argmax(logits, -1) > 0  # [chunk, B, H, W]

  rng = jax.random.fold_in(jax.random.key(seed), step)
  assignments, probs_all, tvs = [], [], []
  for i, (valid, batch) in enumerate(_test_batches(config, split)):
    modes, probs, _ = _modes(batch, valid)
    image = jnp.asarray(batch["image"], jnp.float32)
    parts = []
    for c in range(-(-num_samples // chunk)):
      s = np.asarray(sample(params, jax.random.fold_in(rng, 1000 * i + c),
                            image))
      parts.append(np.moveaxis(s, 0, 1)[valid])
    samples = np.concatenate(parts, 1)[:, :num_samples]
    a = metrics_lib.assign_modes(samples, modes)
    assignments.append(a)
    probs_all.append(probs)
    tvs.extend(metrics_lib.mode_frequencies(x, p).total_variation
               for x, p in zip(a, probs))
  freqs = metrics_lib.mode_frequencies(np.concatenate(assignments),
                                       np.concatenate(probs_all))
  return {"num_samples": num_samples, "step": step,
          "mode_tv_per_image": float(np.mean(tvs)),
          "mode_tv_pooled": freqs.total_variation,
          "predicted": freqs.predicted.tolist(),
          "expected": freqs.expected.tolist()}


def _edges(mask):
  """Label-edge pixels: a 4-neighbour has the other label. [..., H, W]."""
  m = np.asarray(mask, bool)
  edge = np.zeros_like(m)
  edge[..., 1:, :] |= m[..., 1:, :] != m[..., :-1, :]
  edge[..., :-1, :] |= m[..., 1:, :] != m[..., :-1, :]
  edge[..., :, 1:] |= m[..., :, 1:] != m[..., :, :-1]
  edge[..., :, :-1] |= m[..., :, 1:] != m[..., :, :-1]
  return edge


def _spot_codes(codes, posterior_codes, params, image, modes, probs, valid):
  """Appends, per level, the prior-standardised posterior means with and
  without spots at the cells that hold a spot (see module docstring)."""
  rows = np.arange(len(probs))
  m0 = np.argmax(probs[:, :9], axis=1)  # most likely mode without spots
  off, on = modes[rows, m0], modes[rows, m0 + 9]
  spots = on & ~off  # [B, H, W]
  full = lambda x: np.zeros((len(valid),) + x.shape[1:], x.dtype)
  results = []
  for seg in (off, on):
    padded = full(seg)
    padded[valid] = seg
    posterior, prior = jax.device_get(posterior_codes(
        params, image, jnp.asarray(padded, jnp.int32)))
    results.append((posterior, prior))
  (q_off, p_off), (q_on, _) = results
  size = spots.shape[-1]
  for level, (a, b, p) in enumerate(zip(q_on, q_off, p_off)):
    if a is None:
      continue
    h = a.loc.shape[1]
    cells = spots.reshape(len(spots), h, size // h, h, size // h).any((2, 4))
    if not cells.any():
      continue
    scale = np.exp(p.log_scale[valid])
    z_on = ((a.loc[valid] - p.loc[valid]) / scale)[cells]  # [cells, Z]
    z_off = ((b.loc[valid] - p.loc[valid]) / scale)[cells]
    codes[f"level_{level}/on"].append(float(np.mean(z_on)))
    codes[f"level_{level}/off"].append(float(np.mean(z_off)))
    codes[f"level_{level}/distance"].append(
        float(np.mean(np.abs(z_on - z_off))))


def diagnose(config: ml_collections.ConfigDict, workdir: str, *,
             num_samples: int = 16, split: str = "test", seed: int = 0,
             top_k_percentage: float = 0.02,
             max_batches: Optional[int] = None) -> dict[str, Any]:
  """`soft`, `per_level` and `top_k` of a trained run (module docstring)."""
  networks, params, step = _restore(config, workdir)
  levels = [i for i, d in enumerate(networks.latent_dims) if d > 0]
  flags = {"full": False}
  if len(levels) > 1:
    flags.update({f"only_level_{i}": tuple(j != i for j in range(
        len(networks.latent_dims))) for i in levels})

  def make_sampler(mean):
    @jax.jit
    def fn(params, rng, image):
      logits = networks.sample_n(params["model"], rng, image,
                                 num_samples=num_samples, mean=mean)
      p_fg = jax.nn.softmax(logits.astype(jnp.float32), -1)[..., 1]
      return p_fg  # [S, B, H, W]
    return fn

  samplers = {name: make_sampler(mean) for name, mean in flags.items()}

  @jax.jit
  def posterior_ce(params, rng, image, seg):
    one_hot = jax.nn.one_hot(seg, networks.num_classes, dtype=image.dtype)
    logits = networks.reconstruct(params["model"], rng, seg=one_hot,
                                  img=image, mean=False)
    return losses.softmax_cross_entropy(logits, one_hot)  # [B, H, W]

  @jax.jit
  def posterior_codes(params, image, seg):
    one_hot = jax.nn.one_hot(seg, networks.num_classes, dtype=image.dtype)
    out = networks.reconstruct_full(params["model"], jax.random.key(0),
                                    seg=one_hot, img=image, mean=True)
    return out.posterior, out.prior

  rng = jax.random.fold_in(jax.random.key(seed), step)
  codes = collections.defaultdict(list)
  soft = collections.defaultdict(list)
  per_level = collections.defaultdict(list)
  ce_all, kinds_all = [], []
  for i, (valid, batch) in enumerate(_test_batches(config, split)):
    if max_batches is not None and i >= max_batches:
      break
    modes, probs, graders = _modes(batch, valid)
    image = jnp.asarray(batch["image"], jnp.float32)
    p_true = np.einsum("bm,bmhw->bhw", probs, modes)
    regions = metrics_lib.synthetic_factor_regions(modes)
    for j, (name, fn) in enumerate(samplers.items()):
      p_fg = np.moveaxis(np.asarray(fn(params, jax.random.fold_in(
          rng, 100 * i + j), image)), 0, 1)[valid]  # [B, S, H, W]
      for factor in FACTORS:
        r = regions[factor]
        per_level[f"{name}/{factor}"].extend(np.asarray(
            metrics_lib.variance_ratio(p_fg > 0.5, p_true, r)).tolist())
        if name == "full":
          n = np.maximum(r.sum((-2, -1)), 1)
          soft[f"{factor}/p_true"].extend(
              ((p_true * r).sum((-2, -1)) / n).tolist())
          soft[f"{factor}/p_sampled"].extend(
              ((p_fg.mean(1) * r).sum((-2, -1)) / n).tolist())
          soft[f"{factor}/argmax_rate"].extend(
              (((p_fg > 0.5).mean(1) * r).sum((-2, -1)) / n).tolist())
          soft[f"{factor}/hedged"].extend(  # samples with 0.2 < P < 0.8
              ((((p_fg > 0.2) & (p_fg < 0.8)).mean(1) * r).sum((-2, -1))
               / n).tolist())
    if len(levels) > 1:
      _spot_codes(codes, posterior_codes, params, image, modes, probs, valid)
    # Posterior reconstructions of every grader, latents sampled.
    masks = np.asarray(batch["masks"]) > 0  # [B, H, W, G]
    for g in range(masks.shape[-1]):
      ce = np.asarray(posterior_ce(
          params, jax.random.fold_in(rng, 10_000 + 100 * i + g), image,
          jnp.asarray(masks[..., g], jnp.int32)))[valid]
      label = masks[..., g][valid]
      kind = np.full(label.shape, 4, np.int8)  # 4: the rest
      kind[regions["blobs"]] = 3
      kind[regions["rings"]] = 2
      kind[regions["spots"]] = 1
      kind[_edges(label)] = 0  # edges of this grader's mask take precedence
      ce_all.append(ce)
      kinds_all.append(kind)
  ce = np.concatenate(ce_all).reshape(-1)
  kind = np.concatenate(kinds_all).reshape(-1)
  # Deterministic top-k over all reconstructed pixels (per batch of 16
  # images in training; over the whole test set here: the same fraction).
  k = max(1, int(top_k_percentage * ce.size))
  top = np.argpartition(-ce, k - 1)[:k]
  # The training loss's stochastic top-k: k pixels drawn without
  # replacement with probability proportional to their CE (Gumbel top-k).
  gumbel = np.random.default_rng(seed).gumbel(size=ce.size)
  drawn = np.argpartition(-(np.log(np.maximum(ce, 1e-30)) + gumbel), k - 1)[:k]
  names = ("label_edges", "spots", "rings", "blob_interiors", "rest")
  top_k = {"top_k_percentage": top_k_percentage,
           "mean_ce_top_k": float(ce[top].mean()),
           "mean_ce_stochastic_top_k": float(ce[drawn].mean()),
           "mean_ce_all": float(ce.mean()), "by_kind": {}}
  for j, name in enumerate(names):
    in_kind = kind == j
    top_k["by_kind"][name] = {
        "share_of_top_k": float(np.mean(kind[top] == j)),
        "share_of_stochastic_top_k": float(np.mean(kind[drawn] == j)),
        "share_of_pixels": float(np.mean(in_kind)),
        "mean_ce": float(ce[in_kind].mean()) if in_kind.any() else None,
        "mean_ce_in_top_k": (float(ce[top][kind[top] == j].mean())
                             if np.any(kind[top] == j) else None)}
  # The CE the top-k would reach if every non-edge pixel were perfect.
  top_k["mean_ce_top_k_edges_only"] = float(
      np.sort(np.where(kind == 0, ce, 0.0))[-k:].mean())
  mean = lambda v: float(np.nanmean(np.asarray(v, np.float64)))
  return {"step": step, "num_samples": num_samples,
          "soft": {k: mean(v) for k, v in soft.items()},
          "per_level": {k: mean(v) for k, v in per_level.items()},
          "spot_codes": {k: mean(v) for k, v in codes.items()},
          "top_k": top_k}
