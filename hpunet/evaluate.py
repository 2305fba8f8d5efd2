# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Evaluates trained workdirs with the papers' metrics; writes tables and figures.

  python -m hpunet.evaluate --config=configs/<exp>.py --workdir=<training workdir> \
      [--num_samples=16] [--split=test] [--max_batches=N] [--out_dir=DIR] \
      [--cityscapes_gt_dir=$DATA/cityscapes/gtFine/val]

`--workdir` may list several runs (model seeds), comma-separated: each is
evaluated and the table reports the mean +- std over seeds x 1000 bootstrap
resamples of the test images (HPU-Net paper; data_and_metrics.md B11).

Per task (`config.input.name`), with `S` prior samples per image drawn by the
encoder-reuse path (`sample_n`) and reconstructions decoded from the
posterior means (`reconstruct(mean=True)`):

| task | metrics |
|---|---|
| lidc | GED^2 (graders), Hungarian IoU (all; subset B = all 4 graders marked a lesion), IoU_rec (all 4 gradings) |
| synthetic | GED^2 against the known modes (weighted) and against the graders, Hungarian IoU, IoU_rec, mode frequencies vs the true probabilities (total variation), per-scale variance ratios and per-factor reconstruction recall (below) |
| snemi3d | IoU_rec (ids 1..15), adapted Rand error of the Hamming-clustered samples (alpha = 16) |
| cityscapes_cars | IoU_rec (car ids), adapted Rand error (alpha = 32, car pixels), AP / AP50 through the official evaluation when `--cityscapes_gt_dir` is given |
| cityscapes_flips | GED^2 against the 32 modes (weighted, nan-mean IoU over the 10 switchable classes), mode frequencies, pixel-wise flip frequencies |

Per-scale variance ratios (synthetic; HPU-Net Fig. 3 / 15 made
quantitative): for each sampling mode (all levels / only the most global /
only the most local level sampled, the others at their means) and each factor
of variation of the synthetic data (the image-global faint spots, the two
mid-scale ambiguous blobs, their 1-2 px thick/thin rings), the sampled
per-pixel label variance over the true one inside that factor's pixels
(`metrics.variance_ratio`): 1 = the samples vary there as much as the ground
truth, 0 = not at all. Per-factor reconstruction recall (`rec_recall_*`):
the fraction of a factor's pixels that the posterior-mean reconstructions
draw where a grader marked them (`metrics.region_recall`); a factor with
high recall but no sampled variance is encoded by the posterior and missed
by the prior.

Outputs go to `<workdir>/eval/<split>_step<step>/` (or `--out_dir`):
`results.json`, `results.md` (a table shaped like the HPU-Net paper's
Table 1) and `figures/*.png` — sample grids, per-pixel std maps, per-scale
sampling (HPU-Net Fig. 3 / 15: full, only the most global, only the most
local latent level sampled), clustered instances, and the mode-frequency vs
ground-truth probability plot. With several workdirs each run's own outputs
go to `<workdir>/eval/<split>_step<step>/` (or `<out_dir>/run<k>/`, k = the
position in `--workdir`) and the combined results.json/.md to the first
run's folder (or `--out_dir`). Scalars and figures also go to the first
run's TensorBoard under `<split>/`.

Multi-host: every process evaluates its share of the split (the eval
pipeline pads and masks); per-image values are gathered once and process 0
writes the outputs.
"""

import collections
import dataclasses
import functools
import json
import os
import types
from typing import Any, Mapping, Optional, Sequence, Union

from absl import app
from absl import flags
from absl import logging
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import ml_collections
from ml_collections import config_flags
import numpy as np

from hpunet import checkpointing
from hpunet import clustering
from hpunet import metrics as metrics_lib
from hpunet import networks as networks_lib
from hpunet import summary as summary_lib
from hpunet import summary_writer
from hpunet import train as train_lib

Array = jax.Array

# Classes whose probability the std maps show, and the stochastic classes.
CAR_IDS = (19, 20, 21, 22, 23)
SNEMI3D_IDS = tuple(range(1, 16))
_BINARY_TASKS = ("lidc", "synthetic")


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  num_samples: int  # the papers' default number of samples
  foreground: tuple[int, ...]  # classes summed for P(foreground) maps
  alpha: Optional[int] = None  # Hamming threshold of Algorithm 1
  empty_neighbourhood: str = "keep"


TASKS = {
    "lidc": TaskSpec(16, (1,)),
    "synthetic": TaskSpec(16, (1,)),
    "snemi3d": TaskSpec(16, SNEMI3D_IDS, alpha=16, empty_neighbourhood="keep"),
    "cityscapes_cars": TaskSpec(32, CAR_IDS, alpha=32,
                                empty_neighbourhood="background"),
    "cityscapes_flips": TaskSpec(16, metrics_lib.FLIP_TARGET_IDS),
}

# Rows of the Markdown table: (key, label), in the paper's order.
_TABLE_ROWS = (
    ("rec_iou", "IoU_rec"),
    ("ged", "GED² (graders)"),
    ("ged_modes", "GED² (known modes)"),
    ("hm_iou", "Hungarian-matched IoU"),
    ("hm_iou_subset_b", "Hungarian-matched IoU, subset B"),
    ("ged_subset_b", "GED², subset B"),
    ("rand_error", "Adapted Rand error"),
    ("mode_tv", "Mode-frequency total variation"),
) + tuple(
    (f"rec_recall_{factor}", f"Reconstruction recall of {factor}")
    for factor in metrics_lib.SYNTHETIC_FACTORS) + tuple(
    (f"var_{mode}_{factor}", f"Variance ratio {factor}, {label}")
    for mode, label in (("full", "all levels"),
                        ("only_most_global", "only most global level"),
                        ("only_most_local", "only most local level"))
    for factor in metrics_lib.SYNTHETIC_FACTORS) + (
    ("ap", "AP (cars)"),
    ("ap50", "AP50 (cars)"),
)


# ----------------------------------------------------------------------------
# Restoring.
# ----------------------------------------------------------------------------


def _config_mismatch(config, saved: Mapping[str, Any]) -> list[str]:
  saved_model = (saved.get("config") or {}).get("model")
  if not saved_model:
    return []
  ours = json.loads(config.model.to_json_best_effort())
  keys = sorted(set(ours) | set(saved_model))
  norm = lambda v: list(v) if isinstance(v, (list, tuple)) else v
  return [f"model.{k}: config {ours.get(k)!r} vs checkpoint "
          f"{saved_model.get(k)!r}" for k in keys
          if norm(ours.get(k)) != norm(saved_model.get(k))]


def restore_params(config: ml_collections.ConfigDict, workdir: str,
                   step: Optional[int] = None) -> tuple[Any, int]:
  """The trained parameters of `workdir` (latest step unless given).

  Returns:
    (params on this process's first local device, step).

  Raises:
    FileNotFoundError: no (complete) checkpoint in the workdir.
    ValueError: the config's model does not match the checkpoint's.
  """
  checkpointer = checkpointing.Checkpointer(workdir, async_save=False)
  try:
    steps = checkpointer.all_steps()
    if not steps:
      raise FileNotFoundError(
          f"No checkpoint in {checkpointer.directory}: train first with "
          f"`python -m hpunet.train --config=... --workdir={workdir}`.")
    if step is None:
      step = checkpointer.latest_step()
    elif step not in steps:
      raise FileNotFoundError(f"No checkpoint for step {step} in "
                              f"{checkpointer.directory} (have {steps}).")
    networks = networks_lib.make_networks(config.model)
    _, height, width, channels = summary_lib.network_input_shape(config)
    batch = {
        "image": jax.ShapeDtypeStruct((1, height, width, channels),
                                      jnp.float32),
        "seg": jax.ShapeDtypeStruct((1, height, width), jnp.int32),
        "mask": jax.ShapeDtypeStruct((1, height, width), jnp.float32),
    }
    optimizer = train_lib.create_optimizer(config)
    abstract = jax.eval_shape(
        functools.partial(train_lib.create_train_state, config, networks,
                          optimizer), jax.random.key(0), batch)
    mesh = Mesh(np.asarray(jax.devices()).reshape(-1, 1), ("data", "spatial"))
    rep = NamedSharding(mesh, P())
    abstract = jax.tree.map(
        lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=rep),
        abstract)
    try:
      state, meta = checkpointer.restore(step, abstract)
    except (ValueError, KeyError, TypeError) as e:
      raise ValueError(
          f"The checkpoint at step {step} in {checkpointer.directory} does not "
          f"match config.model ({e}).") from e
    mismatch = _config_mismatch(config, meta)
    if mismatch:
      raise ValueError("The config does not match the checkpoint in "
                       f"{checkpointer.directory}: " + "; ".join(mismatch))
  finally:
    checkpointer.close()
  params = jax.tree.map(lambda x: x.addressable_data(0), state.params)
  return params, int(step)


# ----------------------------------------------------------------------------
# Device computations.
# ----------------------------------------------------------------------------


def make_sample_fn(networks: networks_lib.Networks, num_samples: int,
                   foreground: Sequence[int], mean=False):
  """Jitted: argmax samples [S, B, H, W] and P(foreground) mean/std [B, H, W].

  P(foreground) sums the softmax over `foreground` classes; its mean over
  samples is the object score of the Cityscapes AP, its std the per-pixel
  std map of the figures.
  """
  fg = jnp.asarray(foreground)

  @jax.jit
  def fn(params, rng, image):
    logits = networks.sample_n(params["model"], rng, image,
                               num_samples=num_samples, mean=mean)
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    p_fg = jnp.sum(probs[..., fg], axis=-1)  # [S, B, H, W]
    labels = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return labels, jnp.mean(p_fg, 0), jnp.std(p_fg, 0)

  return fn


def make_reconstruct_fn(networks: networks_lib.Networks):
  """Jitted: argmax of the posterior-mean reconstruction of `seg`."""

  @jax.jit
  def fn(params, rng, image, seg):
    logits = networks.reconstruct(
        params["model"], rng,
        seg=jax.nn.one_hot(seg, networks.num_classes, dtype=image.dtype),
        img=image, mean=True)
    return jnp.argmax(logits, -1).astype(jnp.int32)

  return fn


# ----------------------------------------------------------------------------
# Per-task metrics on one batch (host, numpy).
# ----------------------------------------------------------------------------


def _binary_metrics(out, samples, recs, batch, valid, *, subset_b: bool):
  """LIDC / synthetic: samples [B, S, H, W] bool, recs [B, G, H, W] bool."""
  valid = np.asarray(valid, bool)
  if not valid.any():  # an all-padding batch (multi-host tail)
    return
  graders = np.moveaxis(np.asarray(batch["masks"]) > 0, -1, 1)  # [B, G, H, W]
  has_modes = "modes" in batch
  modes = np.asarray(batch["modes"])[valid] > 0 if has_modes else None
  probs = (np.asarray(batch["mode_probs"], np.float64)[valid] if has_modes
           else None)
  values = metrics_lib.binary_batch_metrics(
      samples[valid], recs[valid], graders[valid], modes, probs,
      subset_b=subset_b)
  for key, per_image in values.items():
    out[key].extend(float(v) for v in per_image)
  if has_modes:
    out["_assignments"].extend(metrics_lib.assign_modes(samples[valid], modes))
    out["_mode_probs"].extend(probs)


def _instance_metrics(out, task, spec, labels, recs, batch, valid, seed,
                      car_prob=None, ap_dir=None):
  """SNEMI3D / Cityscapes cars: IoU_rec, Rand error of clustered samples."""
  ids = SNEMI3D_IDS if task == "snemi3d" else CAR_IDS
  instances_gt = np.asarray(batch["instances" if task == "snemi3d" else
                                  "car_instances"])
  ignore = (np.asarray(batch["label"]) == 255 if "label" in batch else None)
  clustered = []
  for b in np.flatnonzero(valid):
    out["rec_iou"].append(float(metrics_lib.reconstruction_iou(
        recs[b], np.asarray(batch["seg"][b]), class_ids=ids,
        ignore_mask=None if ignore is None else ignore[b])))
    inst = clustering.instance_segmentation(
        labels[b], alpha=spec.alpha, seed=seed + b,
        instance_ids=ids if task == "cityscapes_cars" else None,
        empty_neighbourhood=spec.empty_neighbourhood)
    clustered.append(inst)
    out["rand_error"].append(float(metrics_lib.adapted_rand_error(
        inst, instances_gt[b])))
    if ap_dir is not None:
      from hpunet import cityscapes_eval  # pylint: disable=g-import-not-at-top
      image_id = batch["image_id"][b]
      image_id = image_id.decode() if isinstance(image_id, bytes) else image_id
      cityscapes_eval.write_prediction(
          ap_dir, str(image_id), inst,
          cityscapes_eval.instance_scores(inst, car_prob[b]))
      out["_image_ids"].append(str(image_id))
  return clustered


def _flip_metrics(out, labels, batch, valid):
  """Cityscapes flips: GED against the 32 modes, assignments, flip counts."""
  label = np.asarray(batch["label"])  # unflipped trainIds, 255 = ignore
  for b in np.flatnonzero(valid):
    modes, probs = metrics_lib.cityscapes_flip_modes(label[b])
    ignore = label[b] == 255
    out["ged_modes"].append(float(metrics_lib.ged_multiclass(
        labels[b], modes, probs, ignore_mask=ignore)))
    out["_assignments"].append(metrics_lib.assign_modes(
        labels[b], modes, class_ids=metrics_lib.FLIP_CLASS_IDS,
        ignore_mask=ignore))
    out["_mode_probs"].append(probs)
    out["_flip_counts"].append(metrics_lib.flip_pixel_counts(labels[b],
                                                             label[b]))


# ----------------------------------------------------------------------------
# Figures (PNG, numpy + PIL; the plot with matplotlib).
# ----------------------------------------------------------------------------


def _save_png(path: str, rgb: np.ndarray) -> None:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  os.makedirs(os.path.dirname(path), exist_ok=True)
  rgb = np.asarray(rgb, np.uint8)
  Image.fromarray(rgb[0] if rgb.ndim == 4 else rgb).save(path)


def _gray(x: np.ndarray, vmax: Optional[float] = None) -> np.ndarray:
  """[..., H, W] in [0, vmax] -> uint8 RGB."""
  x = np.asarray(x, np.float32)
  vmax = float(np.nanmax(x)) if vmax is None else vmax
  x = np.clip(x / max(vmax, 1e-8), 0.0, 1.0)
  return np.repeat((255 * x)[..., None], 3, -1).astype(np.uint8)


def _samples_grid(image, gt, rec, samples, num_classes, max_samples=8):
  """Rows = images: input | ground truth | reconstruction | samples."""
  cols = [summary_writer.image_to_rgb(image),
          summary_writer.label_to_rgb(gt, num_classes),
          summary_writer.label_to_rgb(rec, num_classes)]
  cols += [summary_writer.label_to_rgb(samples[:, s], num_classes)
           for s in range(min(max_samples, samples.shape[1]))]
  return summary_writer.image_grid(cols)


def _mode_frequency_plot(path: str, freqs: metrics_lib.ModeFrequencies,
                         title: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
  top = max(float(freqs.expected.max()), float(freqs.predicted.max())) * 1.1
  ax.plot([0, top], [0, top], color="0.6", lw=1, ls="--")
  ax.scatter(freqs.expected, freqs.predicted, s=18)
  ax.set_xlabel("ground-truth mode probability")
  ax.set_ylabel("predicted mode frequency")
  ax.set_title(f"{title}\nTV = {freqs.total_variation:.3f}", fontsize=9)
  ax.set_xlim(0, top)
  ax.set_ylim(0, top)
  fig.tight_layout()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fig.savefig(path)
  plt.close(fig)


def per_scale_modes(latent_dims: Union[int, Sequence[int]]) -> dict[str, Any]:
  """The colab's sampling modes as `mean` flags, coarse -> fine.

  Args:
    latent_dims: the number of latent levels, or the per-level latent sizes
      (`networks.latent_dims`); levels of size 0 sample nothing, so "most
      global" and "most local" are the first and last levels with latents.

  Returns:
    name -> `mean` flags: "full" (sample every level) and, with at least two
    sampling levels, "only_most_global" / "only_most_local" (every other
    level at its mean).
  """
  dims = ((1,) * latent_dims if isinstance(latent_dims, int)
          else tuple(int(d) for d in latent_dims))
  active = [i for i, d in enumerate(dims) if d > 0]
  if len(active) < 2:
    return {"full": False}
  only = lambda j: tuple(i != j for i in range(len(dims)))
  return {
      "full": False,
      "only_most_global": only(active[0]),
      "only_most_local": only(active[-1]),
  }


def _scale_metrics(out, scale_samples, recs, batch, valid):
  """Synthetic, per factor: sampled / true label variance for each sampling
  mode, and the recall of the reconstructions where graders marked it.

  scale_samples: mode name -> bool samples [B, S, H, W]; recs: bool
  reconstructions of the graders' masks [B, G, H, W].
  """
  modes = np.asarray(batch["modes"]) > 0  # [B, M, H, W]
  probs = np.asarray(batch["mode_probs"], np.float64)  # [B, M]
  p_true = np.einsum("bm,bmhw->bhw", probs, modes)
  regions = metrics_lib.synthetic_factor_regions(modes)
  graders = np.moveaxis(np.asarray(batch["masks"]) > 0, -1, 1)
  for factor in metrics_lib.SYNTHETIC_FACTORS:
    recall = metrics_lib.region_recall(recs, graders, regions[factor])
    out[f"rec_recall_{factor}"].extend(
        float(r) for r in np.asarray(recall)[valid])
  for name, samples in scale_samples.items():
    for factor in metrics_lib.SYNTHETIC_FACTORS:
      ratio = metrics_lib.variance_ratio(samples, p_true, regions[factor])
      out[f"var_{name}_{factor}"].extend(
          float(r) for r in np.asarray(ratio)[valid])


# ----------------------------------------------------------------------------
# The evaluation of one run.
# ----------------------------------------------------------------------------


def _gather(values: np.ndarray) -> np.ndarray:
  """Concatenates a per-process array over processes (same shape on all)."""
  if jax.process_count() == 1:
    return values
  return np.asarray(multihost_utils.process_allgather(values, tiled=True))


def evaluate_run(config: ml_collections.ConfigDict, workdir: str, *,
                 split: str = "test", num_samples: Optional[int] = None,
                 max_batches: Optional[int] = None, seed: int = 0,
                 figures_dir: Optional[str] = None,
                 cityscapes_gt_dir: Optional[str] = None,
                 ap_dir: Optional[str] = None) -> dict[str, Any]:
  """Per-image metric values of one trained run (see module docstring).

  Returns:
    dict with `step`, `num_images`, `per_image` (name -> float array over the
    evaluated images, NaN where a metric does not apply) and `pooled`
    (mode frequencies, flip frequencies, AP).
  """
  from hpunet import input_pipeline  # pylint: disable=g-import-not-at-top
  task = config.input.name
  if task not in TASKS:
    raise ValueError(f"config.input.name {task!r} has no evaluation; expected"
                     f" one of {sorted(TASKS)}.")
  spec = TASKS[task]
  num_samples = int(num_samples or spec.num_samples)
  params, step = restore_params(config, workdir)
  networks = networks_lib.make_networks(config.model)
  sample_fn = make_sample_fn(networks, num_samples, spec.foreground)
  reconstruct_fn = make_reconstruct_fn(networks)
  rng = jax.random.fold_in(jax.random.key(seed), step)
  if task == "cityscapes_cars" and cityscapes_gt_dir and ap_dir is None:
    raise ValueError("Cityscapes AP needs a results folder (ap_dir).")
  # Synthetic: the per-scale sampling modes other than "full" (HPU-Net).
  scale_fns = {} if task != "synthetic" else {
      name: make_sample_fn(networks, num_samples, spec.foreground, mean=mean)
      for name, mean in per_scale_modes(networks.latent_dims).items()
      if name != "full"}

  out = collections.defaultdict(list)
  figures = {}
  batches = input_pipeline.create_eval_dataset(config.input, split=split)
  for i, batch in enumerate(batches):
    if max_batches is not None and i >= max_batches:
      break
    valid = np.asarray(batch.get("batch_mask",
                                 np.ones(len(batch["image"]), bool)), bool)
    image = jnp.asarray(batch["image"], jnp.float32)
    batch_rng = jax.random.fold_in(rng, i)
    labels, p_mean, p_std = jax.device_get(
        sample_fn(params, jax.random.fold_in(batch_rng, 0), image))
    labels = np.moveaxis(labels, 0, 1)  # [B, S, H, W]
    if task in _BINARY_TASKS:
      masks = np.asarray(batch["masks"])
      recs = np.stack([
          np.asarray(reconstruct_fn(
              params, jax.random.fold_in(batch_rng, 1 + g), image,
              jnp.asarray(masks[..., g] > 0, jnp.int32)))
          for g in range(masks.shape[-1])], 1)  # [B, G, H, W]
      _binary_metrics(out, labels > 0, recs > 0, batch, valid,
                      subset_b=task == "lidc")
      if "modes" in batch:
        scale_samples = {"full": labels > 0}
        for j, (name, fn) in enumerate(scale_fns.items()):
          scale_labels, _, _ = jax.device_get(
              fn(params, jax.random.fold_in(batch_rng, 100 + j), image))
          scale_samples[name] = np.moveaxis(scale_labels, 0, 1) > 0
        _scale_metrics(out, scale_samples, recs > 0, batch, valid)
      gt_fig, rec_fig = masks[..., 0] > 0, recs[:, 0]
    else:
      recs = np.asarray(reconstruct_fn(params, jax.random.fold_in(batch_rng, 1),
                                       image, jnp.asarray(batch["seg"])))
      gt_fig, rec_fig = np.asarray(batch["seg"]), recs
      if task == "cityscapes_flips":
        _flip_metrics(out, labels, batch, valid)
      else:
        clustered = _instance_metrics(
            out, task, spec, labels, recs, batch, valid, seed + 1000 * i,
            car_prob=p_mean, ap_dir=ap_dir if cityscapes_gt_dir else None)
        if i == 0 and clustered:
          figures["instances"] = summary_writer.image_grid([
              summary_writer.image_to_rgb(np.asarray(batch["image"])[valid][:4]),
              summary_writer.label_to_rgb(np.stack(clustered[:4]) % 24, 24)])
    out["_valid"].append(valid)
    if i == 0:
      n = min(4, int(valid.sum()))
      figures["samples"] = _samples_grid(
          np.asarray(batch["image"])[:n], np.asarray(gt_fig)[:n],
          np.asarray(rec_fig)[:n], labels[:n], networks.num_classes)
      figures["std"] = summary_writer.image_grid([
          summary_writer.image_to_rgb(np.asarray(batch["image"])[:n]),
          _gray(p_mean[:n], 1.0), _gray(p_std[:n], 0.5)])
      figures["per_scale"] = _per_scale_figure(
          networks, params, batch_rng, image[:n], num_samples, spec)

  per_image = {k: _gather(np.asarray(v, np.float64)) for k, v in out.items()
               if not k.startswith("_")}
  pooled: dict[str, Any] = {}
  if out.get("_assignments"):
    assignments = _gather(np.stack(out["_assignments"]))
    probs = _gather(np.stack(out["_mode_probs"]))
    freqs = metrics_lib.mode_frequencies(assignments, probs)
    pooled["mode_frequencies"] = {
        "predicted": freqs.predicted.tolist(),
        "expected": freqs.expected.tolist(),
        "total_variation": freqs.total_variation,
        "num_assigned": freqs.num_assigned}
    # Per-image TV, for the bootstrap.
    per_tv = [metrics_lib.mode_frequencies(a, p).total_variation
              for a, p in zip(assignments, probs)]
    per_image["mode_tv"] = np.asarray(per_tv, np.float64)
    if figures_dir and jax.process_index() == 0:
      _mode_frequency_plot(os.path.join(figures_dir, "mode_frequencies.png"),
                           freqs, f"{task}, {num_samples} samples / image")
  if out.get("_flip_counts"):
    counts = functools.reduce(lambda a, b: a + b, out["_flip_counts"])
    gathered = [_gather(np.asarray(x)[None]).sum(0)
                for x in (counts.gt, counts.as_source, counts.as_target)]
    counts = metrics_lib.FlipPixelCounts(*gathered)
    pooled["flip_frequencies"] = {
        "classes": list(metrics_lib.FLIP_SOURCE_IDS),
        "predicted": counts.target_frequency.tolist(),
        "expected": list(metrics_lib.FLIP_PROBS)}
  if task == "cityscapes_cars" and cityscapes_gt_dir:
    from hpunet import cityscapes_eval  # pylint: disable=g-import-not-at-top
    if jax.process_index() == 0:
      ap = cityscapes_eval.evaluate_car_ap(cityscapes_gt_dir, ap_dir,
                                           image_ids=out["_image_ids"])
      pooled["ap"], pooled["ap50"] = ap.ap, ap.ap50
  if figures_dir and jax.process_index() == 0:
    for name, rgb in figures.items():
      _save_png(os.path.join(figures_dir, f"{name}.png"), rgb)
  return {"step": step, "num_samples": num_samples,
          "num_images": int(len(next(iter(per_image.values()))))
                        if per_image else 0,
          "per_image": per_image, "pooled": pooled, "figures": figures}


def _per_scale_figure(networks, params, rng, image, num_samples, spec):
  """Rows: images; per mode (full / only most global / only most local):
  the per-pixel std of P(foreground) over samples and two samples."""
  modes = per_scale_modes(networks.latent_dims)
  columns = [summary_writer.image_to_rgb(np.asarray(image))]
  for j, mean in enumerate(modes.values()):
    fn = make_sample_fn(networks, num_samples, spec.foreground, mean=mean)
    labels, _, p_std = jax.device_get(fn(params, jax.random.fold_in(rng, 100 + j),
                                         image))
    columns.append(_gray(p_std, 0.5))
    columns += [summary_writer.label_to_rgb(labels[s], networks.num_classes)
                for s in range(min(2, labels.shape[0]))]
  return summary_writer.image_grid(columns)


# ----------------------------------------------------------------------------
# Several runs, reporting.
# ----------------------------------------------------------------------------


def summarize_runs(runs: Sequence[dict[str, Any]], *, num_resamples=1000,
                   seed=0) -> dict[str, Any]:
  """mean +- std over seeds x bootstrap resamples for every per-image metric."""
  keys = sorted(set().union(*(r["per_image"] for r in runs)))
  table = {}
  for key in keys:
    values = [r["per_image"][key] for r in runs if key in r["per_image"]]
    if all(np.isnan(v).all() for v in values):
      continue
    if len(values) == 1:
      res = metrics_lib.bootstrap(values[0], num_resamples, seed)
    else:
      res = metrics_lib.bootstrap_over_seeds(values, num_resamples, seed)
    table[key] = {"mean": float(res.mean), "std": float(res.std),
                  "num_images": int(res.num_images)}
  for key in ("ap", "ap50"):
    vals = [r["pooled"][key] for r in runs if key in r["pooled"]]
    if vals:
      table[key] = {"mean": float(np.mean(vals)), "std": float(np.std(vals)),
                    "num_images": runs[0]["num_images"]}
  return table


def markdown_table(table: Mapping[str, Any], *, dataset: str,
                   model: str) -> str:
  lines = [f"| dataset | metric | {model} |", "|---|---|---|"]
  for key, label in _TABLE_ROWS:
    if key in table:
      t = table[key]
      lines.append(f"| {dataset} | {label} | {t['mean']:.3f} ± {t['std']:.3f} |")
  return "\n".join(lines) + "\n"


def evaluate(config: ml_collections.ConfigDict, workdirs: Sequence[str], *,
             split: str = "test", num_samples: Optional[int] = None,
             max_batches: Optional[int] = None, out_dir: Optional[str] = None,
             cityscapes_gt_dir: Optional[str] = None,
             seed: int = 0) -> dict[str, Any]:
  """Evaluates one or several runs and writes results.json/.md and figures.

  Returns:
    The `results.json` content.
  """
  workdirs = list(workdirs)
  runs = []
  for w, workdir in enumerate(workdirs):
    if out_dir:  # everything under out_dir, per run in run<k>/ if several
      run_dir = out_dir if len(workdirs) == 1 else os.path.join(
          out_dir, f"run{w}")
    else:
      latest = checkpointing.Checkpointer(workdir, async_save=False)
      step = latest.latest_step()
      latest.close()
      run_dir = os.path.join(workdir, "eval", f"{split}_step{step}")
    ap_dir = (os.path.join(run_dir, "cityscapes_results")
              if cityscapes_gt_dir else None)
    run = evaluate_run(
        config, workdir, split=split, num_samples=num_samples,
        max_batches=max_batches, seed=seed,
        figures_dir=os.path.join(run_dir, "figures"),
        cityscapes_gt_dir=cityscapes_gt_dir, ap_dir=ap_dir)
    run["out_dir"] = run_dir
    runs.append(run)
    if jax.process_index() == 0 and len(workdirs) > 1:
      _write(run_dir, config, [run], split, workdir)
    logging.info("Evaluated %s (%d/%d) at step %d.", workdir, w + 1,
                 len(workdirs), run["step"])
  final_dir = out_dir or runs[0]["out_dir"]
  results = None
  if jax.process_index() == 0:
    results = _write(final_dir, config, runs, split, ",".join(workdirs))
    writer = summary_writer.SummaryWriter(workdirs[0])
    scalars = {f"{split}/{k}": v["mean"] for k, v in results["table"].items()}
    writer.write_scalars(runs[0]["step"], scalars)
    writer.write_images(runs[0]["step"], {
        f"{split}/{k}": v for k, v in runs[0]["figures"].items()})
    writer.close()
  return results


def _figure_paths(run_dir: str, out_dir: str) -> list[str]:
  """The PNGs of a run, relative to the folder holding results.json."""
  figures_dir = os.path.join(run_dir, "figures")
  if not os.path.isdir(figures_dir):
    return []
  return sorted(os.path.relpath(os.path.join(figures_dir, f), out_dir)
                for f in os.listdir(figures_dir) if f.endswith(".png"))


def _write(out_dir, config, runs, split, workdirs) -> dict[str, Any]:
  table = summarize_runs(runs)
  results = {
      "task": config.input.name,
      "dataset": config.input.get("dataset"),
      "model": config.model.name,
      "split": split,
      "workdirs": workdirs,
      "steps": [r["step"] for r in runs],
      "num_runs": len(runs),
      "num_samples": runs[0]["num_samples"],
      "num_images": runs[0]["num_images"],
      "table": table,
      "pooled": [r["pooled"] for r in runs],
      "figures": _figure_paths(runs[0]["out_dir"], out_dir),
      "statistics": ("mean ± std over bootstrap resamples (1000) of the test "
                     "images" + (", pooled over runs (seeds)" if len(runs) > 1
                                 else "")),
  }
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
  model = {"hpunet": "HPU-Net", "spunet": "sPU-Net"}[config.model.name]
  with open(os.path.join(out_dir, "results.md"), "w") as f:
    f.write(markdown_table(table, dataset=str(config.input.get("dataset")),
                           model=model))
  return results


# ----------------------------------------------------------------------------
# main: flags only.
# ----------------------------------------------------------------------------

def _define_flags() -> types.SimpleNamespace:
  """Flags exist only when run as a program: importing defines none."""
  return types.SimpleNamespace(
      config=config_flags.DEFINE_config_file(
          "config", None, "Experiment config (configs/<exp>.py[:arg]).",
          lock_config=True),
      workdir=flags.DEFINE_string(
          "workdir", None, "Training workdir; several (seeds) comma-separated."),
      num_samples=flags.DEFINE_integer(
          "num_samples", None, "Prior samples per image (default: the task's, "
          "16, or 32 for Cityscapes cars)."),
      split=flags.DEFINE_string("split", "test", "TFDS split to evaluate."),
      max_batches=flags.DEFINE_integer("max_batches", None,
                                       "Evaluate only this many batches."),
      out_dir=flags.DEFINE_string(
          "out_dir", None,
          "Output folder (default <workdir>/eval/<split>_step<N>)."),
      cityscapes_gt_dir=flags.DEFINE_string(
          "cityscapes_gt_dir", None, "gtFine/val folder for the official "
          "Cityscapes AP (cityscapes_cars only)."),
      seed=flags.DEFINE_integer("seed", 0, "Sampling seed."),
  )


def main(argv, f: types.SimpleNamespace):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if f.config.value is None or not f.workdir.value:
    raise app.UsageError("--config and --workdir are required.")
  results = evaluate(
      f.config.value, [w for w in f.workdir.value.split(",") if w],
      split=f.split.value, num_samples=f.num_samples.value,
      max_batches=f.max_batches.value, out_dir=f.out_dir.value,
      cityscapes_gt_dir=f.cityscapes_gt_dir.value, seed=f.seed.value)
  if results is not None:
    print(json.dumps(results["table"], indent=2))


if __name__ == "__main__":
  app.run(functools.partial(main, f=_define_flags()))
