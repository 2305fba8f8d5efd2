# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Evaluating a model on batches: predictions and per-image metrics per task.

One evaluator for the training loop's periodic validation
(`train.train_and_evaluate`), `python -m hpunet.evaluate`,
`python -m hpunet.sample` and the notebooks.

- Predictions (device, jitted): `make_sample_fn` (argmax samples through the
  encoder-reuse path `sample_n`, and the mean/std of P(foreground)),
  `make_reconstruct_fn` (argmax of the posterior-mean reconstruction) and
  `per_scale_modes(latent_dims)` (the `mean` flags of the per-scale sampling
  modes). `make_predictor` bundles them for a task and `predict` runs them on
  one batch.
- Per-image metrics (host, numpy), by task kind (`tasks.Task.kind`):

| task | metrics |
|---|---|
| graders (lidc, synthetic, folder) | GED^2 (graders), Hungarian IoU (all; LIDC subset B = all 4 graders marked a lesion), IoU_rec (every grading reconstructed); synthetic: GED^2 against the known modes (weighted), mode assignments, per-factor variance ratios per sampling mode and reconstruction recall; folder with C > 2 classes: the same three with d = 1 - mean IoU over the foreground classes present, and IoU_rec per class |
| instances (snemi3d), cars (cityscapes_cars) | IoU_rec (the task's instance ids), adapted Rand error of the Hamming-clustered samples (Algorithm 1 with the task's alpha); cars: the official AP inputs when asked |
| flips (cityscapes_flips) | IoU_rec (the 10 switchable classes), GED^2 against the 32 modes (weighted), mode assignments, pixel-wise flip counts |

- `evaluate_batches` runs both over an iterator of batches; `finish` gathers
  the per-image values of every process once (one row per image, padding
  dropped) and pools mode and flip frequencies; `gather_image_ids` their
  image ids (to pair two models' values image by image).

GED^2 against the number of samples (sPU-Net Fig. 4): with
`ged_sample_counts` (`hpunet.evaluate`: 1, 4, 8, 16) the predictor draws
max(counts, num_samples) samples per image once and reports `ged_n<n>` /
`ged_modes_n<n>`, the GED^2 of the first n of them (see
`metrics.ged_at_sample_counts` for why this is the paper's protocol); the
other metrics use the first `num_samples`. The trainer's validation passes
no counts (its `num_samples` only), which keeps it as cheap as before.

Models without a posterior (`networks.has_posterior` False: dropout U-Net,
ensembles, M-heads) have no reconstructions: their predictor's `reconstruct`
is None, and IoU_rec, the per-factor reconstruction recall and the
per-latent-level sampling modes are not computed for them.

Multi-host: every process computes the metrics of its own rows (`batch_mask`
marks padding); `finish` gathers them, keeping one copy of rows that several
processes load (processes sharing a feed of a spatially split mesh).
"""

import collections
import dataclasses
import functools
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Optional, Sequence

import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np

from hpunet import clustering
from hpunet import metrics as metrics_lib
from hpunet import tasks as tasks_lib
from hpunet import validation

Array = jax.Array


# ----------------------------------------------------------------------------
# Predictions (device).
# ----------------------------------------------------------------------------


def per_scale_modes(latent_dims: Sequence[int]) -> dict[str, Any]:
  """The sampling modes of HPU-Net Fig. 3 / 15 as `mean` flags, coarse -> fine.

  Args:
    latent_dims: the per-level latent sizes (`networks.latent_dims`); levels
      of size 0 sample nothing, so "most global" and "most local" are the
      first and last levels with latents.

  Returns:
    name -> `mean` flags: "full" (sample every level) and, with at least two
    sampling levels, "only_most_global" / "only_most_local" (every other
    level at its mean).
  """
  if isinstance(latent_dims, int):
    raise TypeError("per_scale_modes takes the per-level latent sizes "
                    "(networks.latent_dims), not a number of levels.")
  dims = tuple(int(d) for d in latent_dims)
  active = [i for i, d in enumerate(dims) if d > 0]
  if len(active) < 2:
    return {"full": False}
  only = lambda j: tuple(i != j for i in range(len(dims)))
  return {
      "full": False,
      "only_most_global": only(active[0]),
      "only_most_local": only(active[-1]),
  }


def make_sample_fn(networks, num_samples: int, foreground: Sequence[int],
                   mean: Any = False, out_shardings: Any = None,
                   num_moments: Optional[int] = None):
  """Jitted: argmax samples [S, B, H, W] and P(foreground) mean/std [B, H, W].

  P(foreground) sums the softmax over `foreground` classes; its mean over
  samples is the object score of the Cityscapes AP, its std the per-pixel
  std map of the figures. `mean`: `sample_n`'s per-level mean flags.
  `num_moments`: the mean/std are over the first this many samples (default
  all `num_samples`).
  """
  fg = jnp.asarray(foreground)
  num_moments = num_samples if num_moments is None else num_moments

  @functools.partial(jax.jit, out_shardings=out_shardings)
  def fn(params, rng, image):
    logits = networks.sample_n(params["model"], rng, image,
                               num_samples=num_samples, mean=mean)
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    p_fg = jnp.sum(probs[:num_moments][..., fg], axis=-1)  # [S', B, H, W]
    labels = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return labels, jnp.mean(p_fg, 0), jnp.std(p_fg, 0)

  return fn


def make_reconstruct_fn(networks, out_shardings: Any = None):
  """Jitted: argmax [B, H, W] of the posterior-mean reconstruction of `seg`."""

  @functools.partial(jax.jit, out_shardings=out_shardings)
  def fn(params, rng, image, seg, mask=None):
    # `mask` (1 = labelled) matters to models whose posterior takes
    # unlabelled pixels as no class (`Networks.one_hot_seg`).
    logits = networks.reconstruct(
        params["model"], rng,
        seg=networks.one_hot_seg(seg, mask, image.dtype),
        img=image, mean=True)
    return jnp.argmax(logits, -1).astype(jnp.int32)

  return fn


# The sample counts of the sPU-Net paper's Fig. 4 (GED^2 vs samples).
GED_SAMPLE_COUNTS = (1, 4, 8, 16)


@dataclasses.dataclass(frozen=True)
class Predictor:
  """The jitted prediction functions of one model on one task."""
  task: tasks_lib.Task
  # Samples per image of the metrics (GED^2, Hungarian IoU, mode
  # frequencies, Rand error...).
  num_samples: int
  num_classes: int
  # (params, rng, image) -> samples [num_drawn, B, H, W], p_mean, p_std.
  sample: Callable[..., Any]
  # None for models without a posterior (`networks.has_posterior` False):
  # no reconstruction metrics.
  reconstruct: Optional[Callable[..., Any]]
  # Per-scale sampling modes other than "full" (synthetic evaluation).
  scales: Mapping[str, Callable[..., Any]]
  # Compute the per-scale metrics (variance ratios, recall) at all.
  per_scale: bool = False
  # Also GED^2 of the first n samples for each n (`ged_n<n>`; Fig. 4).
  ged_sample_counts: tuple[int, ...] = ()

  @property
  def num_drawn(self) -> int:
    """Samples drawn per image: enough for every count, drawn once."""
    return max((self.num_samples,) + tuple(self.ged_sample_counts))

  @property
  def has_posterior(self) -> bool:
    return self.reconstruct is not None


def make_predictor(networks, task: tasks_lib.Task,
                   num_samples: Optional[int] = None, *,
                   per_scale: bool = False,
                   ged_sample_counts: Sequence[int] = (),
                   out_shardings: Any = None) -> Predictor:
  """Sampling and reconstruction functions for `task`.

  Args:
    networks: from `networks.make_networks`.
    task: a `tasks.Task`.
    num_samples: samples per image (default: the task's).
    per_scale: also sample each per-scale mode of `per_scale_modes` (only
      used on batches with known modes: the synthetic task; not for models
      without a posterior, which have no latent levels to hold at their
      means).
    ged_sample_counts: also report GED^2 of the first n samples for each n
      (e.g. `GED_SAMPLE_COUNTS`); max(num_samples, counts) samples are
      drawn once per image and the other metrics use the first
      `num_samples`. Empty (the trainer's validation): only `num_samples`.
    out_shardings: of the outputs (the trainer replicates them over its
      mesh); None = where jit puts them.
  """
  num_samples = validation.check_int(
      task.num_samples if num_samples is None else num_samples,
      "num_samples", what="prior samples per image")
  counts = tuple(sorted({validation.check_int(
      n, "ged_sample_counts", what="samples per image of a GED^2")
                         for n in ged_sample_counts}))
  has_posterior = getattr(networks, "has_posterior", True)
  scales = {}
  if per_scale and has_posterior:
    scales = {name: make_sample_fn(networks, num_samples, task.foreground,
                                   mean=mean, out_shardings=out_shardings)
              for name, mean in per_scale_modes(networks.latent_dims).items()
              if name != "full"}
  num_drawn = max((num_samples,) + counts)
  return Predictor(
      task=task, num_samples=num_samples, num_classes=networks.num_classes,
      sample=make_sample_fn(networks, num_drawn, task.foreground,
                            out_shardings=out_shardings,
                            num_moments=num_samples),
      reconstruct=(make_reconstruct_fn(networks, out_shardings=out_shardings)
                   if has_posterior else None),
      scales=scales, per_scale=per_scale, ged_sample_counts=counts)


class Predictions(NamedTuple):
  """One batch's predictions as numpy arrays (B = the batch's rows)."""
  labels: np.ndarray  # int32 [B, num_drawn, H, W] argmax samples
  p_mean: np.ndarray  # float32 [B, H, W] mean over samples of P(foreground)
  p_std: np.ndarray  # float32 [B, H, W] its std
  # int32 [B, G, H, W] (graders) or [B, H, W]; None without a posterior.
  recs: Optional[np.ndarray]
  # Per-scale mode -> [B, S, H, W]; None unless the predictor's per_scale.
  scale_labels: Optional[Mapping[str, np.ndarray]]


def _host(x: Array) -> np.ndarray:
  return np.asarray(jax.device_get(x))


def predict(predictor: Predictor, params, rng: Array,
            inputs: Mapping[str, Array], *,
            rows: slice = slice(None)) -> Predictions:
  """Samples and reconstructions of one batch.

  Args:
    predictor: from `make_predictor`.
    params: the trained parameters (`{"model": ...}`).
    rng: this batch's key: samples use `fold_in(rng, 0)`, the reconstruction
      of grading g `fold_in(rng, 1 + g)` (`fold_in(rng, 1)` of `seg` without
      graders), per-scale mode j `fold_in(rng, 100 + j)`.
    inputs: device arrays `image` [B, H, W, C] and `masks` [B, H, W, G]
      (graders) or `seg` [B, H, W] (with its `mask` [B, H, W], optional).
    rows: the rows of the outputs to keep (this process's rows of a global
      batch).
  """
  image = inputs["image"]
  labels, p_mean, p_std = (_host(x)[..., rows, :, :] if x.ndim == 4 else
                           _host(x)[rows]
                           for x in predictor.sample(
                               params, jax.random.fold_in(rng, 0), image))
  if not predictor.has_posterior:
    recs = None
  elif predictor.task.has_graders:
    masks = inputs["masks"]
    # Binary: any non-zero value is foreground; C > 2 classes: class ids.
    gradings = masks > 0 if predictor.num_classes == 2 else masks
    recs = np.stack([
        _host(predictor.reconstruct(
            params, jax.random.fold_in(rng, 1 + g), image,
            gradings[..., g].astype(jnp.int32)))[rows]
        for g in range(masks.shape[-1])], 1)  # [B, G, H, W]
  else:
    recs = _host(predictor.reconstruct(params, jax.random.fold_in(rng, 1),
                                       image, inputs["seg"],
                                       inputs.get("mask")))[rows]
  scale_labels = {} if predictor.per_scale else None
  for j, (name, fn) in enumerate(predictor.scales.items()):
    scale, _, _ = fn(params, jax.random.fold_in(rng, 100 + j), image)
    scale_labels[name] = np.moveaxis(_host(scale)[:, rows], 0, 1)
  return Predictions(labels=np.moveaxis(labels, 0, 1), p_mean=p_mean,
                     p_std=p_std, recs=recs, scale_labels=scale_labels)


# ----------------------------------------------------------------------------
# Per-image metrics of one batch (host, numpy).
# ----------------------------------------------------------------------------


def binary_metrics(out, samples, recs, batch, valid, *, subset_b: bool,
                   num_samples: Optional[int] = None,
                   ged_sample_counts: Sequence[int] = ()):
  """Graders tasks: samples [B, S, H, W] bool, recs [B, G, H, W] bool or
  None (no posterior). The first `num_samples` samples (default all) give
  the metrics; `ged_sample_counts` adds `ged[_modes]_n<n>` (see
  `metrics.binary_batch_metrics`)."""
  valid = np.asarray(valid, bool)
  if not valid.any():  # an all-padding batch (multi-host tail)
    return
  graders = np.moveaxis(np.asarray(batch["masks"]) > 0, -1, 1)  # [B, G, H, W]
  has_modes = "modes" in batch
  modes = np.asarray(batch["modes"])[valid] > 0 if has_modes else None
  probs = (np.asarray(batch["mode_probs"], np.float64)[valid] if has_modes
           else None)
  num = samples.shape[1] if num_samples is None else num_samples
  values = metrics_lib.binary_batch_metrics(
      samples[valid], None if recs is None else recs[valid], graders[valid],
      modes, probs, subset_b=subset_b, num_samples=num,
      ged_sample_counts=ged_sample_counts)
  for key, per_image in values.items():
    out[key].extend(float(v) for v in per_image)
  if has_modes:
    out["_assignments"].extend(
        metrics_lib.assign_modes(samples[valid][:, :num], modes))
    out["_mode_probs"].extend(probs)


def multiclass_grader_metrics(out, task: tasks_lib.Task, samples, recs, batch,
                              valid):
  """Graders tasks with C > 2 classes (`folder`): samples [B, S, H, W] and
  recs [B, G, H, W] class ids (`metrics.multiclass_batch_metrics`)."""
  valid = np.asarray(valid, bool)
  if not valid.any():  # an all-padding batch (multi-host tail)
    return
  if recs is None:
    raise ValueError("Multi-class grader metrics need a model with a "
                     "posterior (IoU_rec); this model has none.")
  graders = np.moveaxis(np.asarray(batch["masks"]), -1, 1)  # [B, G, H, W]
  values = metrics_lib.multiclass_batch_metrics(
      samples[valid], recs[valid], graders[valid],
      class_ids=task.rec_class_ids)
  for key, per_image in values.items():
    out[key].extend(float(v) for v in per_image)


def scale_metrics(out, scale_samples, recs, batch, valid):
  """Synthetic, per factor: sampled / true label variance for each sampling
  mode, and the recall of the reconstructions where graders marked it.

  scale_samples: mode name -> bool samples [B, S, H, W]; recs: bool
  reconstructions of the graders' masks [B, G, H, W], or None (no
  posterior: no recall).
  """
  valid = np.asarray(valid, bool)
  modes = np.asarray(batch["modes"]) > 0  # [B, M, H, W]
  probs = np.asarray(batch["mode_probs"], np.float64)  # [B, M]
  p_true = np.einsum("bm,bmhw->bhw", probs, modes)
  regions = metrics_lib.synthetic_factor_regions(modes)
  graders = np.moveaxis(np.asarray(batch["masks"]) > 0, -1, 1)
  for factor in metrics_lib.SYNTHETIC_FACTORS:
    if recs is None:
      break
    recall = metrics_lib.region_recall(recs, graders, regions[factor])
    out[f"rec_recall_{factor}"].extend(
        float(r) for r in np.asarray(recall)[valid])
  for name, samples in scale_samples.items():
    for factor in metrics_lib.SYNTHETIC_FACTORS:
      ratio = metrics_lib.variance_ratio(samples, p_true, regions[factor])
      out[f"var_{name}_{factor}"].extend(
          float(r) for r in np.asarray(ratio)[valid])


def _ignore_mask(task: tasks_lib.Task, batch) -> Optional[np.ndarray]:
  if task.ignore_id is None or "label" not in batch:
    return None
  return np.asarray(batch["label"]) == task.ignore_id


def rec_iou_metrics(out, task: tasks_lib.Task, recs, batch, valid,
                    class_ids: Optional[Sequence[int]] = None):
  """IoU_rec of the reconstructions of `seg` (tasks without graders):
  nan-mean over `class_ids` (default the task's), ignore pixels excluded."""
  ids = tuple(class_ids or task.rec_class_ids)
  ignore = _ignore_mask(task, batch)
  seg = np.asarray(batch["seg"])
  for b in np.flatnonzero(valid):
    out["rec_iou"].append(float(metrics_lib.reconstruction_iou(
        recs[b], seg[b], class_ids=ids,
        ignore_mask=None if ignore is None else ignore[b])))


def instance_metrics(out, task: tasks_lib.Task, labels, batch, valid, seed,
                     car_prob=None, ap_dir=None) -> list[np.ndarray]:
  """SNEMI3D / Cityscapes cars: Rand error of the clustered samples.

  Returns the clustered instance maps of the valid rows.
  """
  instances_gt = np.asarray(batch[task.instances_feature])
  clustered = []
  for b in np.flatnonzero(valid):
    inst = clustering.instance_segmentation(
        labels[b], alpha=task.alpha, seed=seed + b,
        instance_ids=task.instance_ids,
        empty_neighbourhood=task.empty_neighbourhood)
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


def flip_metrics(out, labels, batch, valid, *,
                 num_samples: Optional[int] = None,
                 ged_sample_counts: Sequence[int] = ()):
  """Cityscapes flips: GED against the 32 modes, assignments, flip counts.

  labels: [B, S, H, W]; the first `num_samples` (default all) give the
  metrics; `ged_sample_counts` adds `ged_modes_n<n>`.
  """
  label = np.asarray(batch["label"])  # unflipped trainIds, 255 = ignore
  num = labels.shape[1] if num_samples is None else num_samples
  counts = tuple(ged_sample_counts)
  for b in np.flatnonzero(valid):
    modes, probs = metrics_lib.cityscapes_flip_modes(label[b])
    ignore = label[b] == tasks_lib.IGNORE_ID
    geds = metrics_lib.ged_at_sample_counts(
        *metrics_lib.ged_multiclass_distances(labels[b], modes,
                                              ignore_mask=ignore),
        (num,) + counts, probs)
    out["ged_modes"].append(float(geds[num]))
    for n in counts:
      out[f"ged_modes_n{n}"].append(float(geds[n]))
    samples = labels[b, :num]
    out["_assignments"].append(metrics_lib.assign_modes(
        samples, modes, class_ids=tasks_lib.FLIP_CLASS_IDS,
        ignore_mask=ignore))
    out["_mode_probs"].append(probs)
    out["_flip_counts"].append(metrics_lib.flip_pixel_counts(samples,
                                                             label[b]))


def batch_metrics(out, task: tasks_lib.Task, pred: Predictions, batch, valid,
                  *, seed: int = 0, instances: bool = True,
                  class_ids: Optional[Sequence[int]] = None,
                  ap_dir: Optional[str] = None,
                  num_samples: Optional[int] = None,
                  ged_sample_counts: Sequence[int] = ()) -> list[np.ndarray]:
  """Appends the per-image metrics of one batch to `out` (name -> list).

  Args:
    out: a `collections.defaultdict(list)`; keys starting with "_" hold
      pooled quantities (mode assignments, flip counts, image ids).
    task: the `tasks.Task`.
    pred: `predict`'s output for the batch.
    batch: the host batch (numpy), its rows aligned with `pred`.
    valid: bool [B], False on padding rows.
    seed: seed of the clustering of instance samples.
    instances: cluster the samples of instance tasks (the Rand error).
    class_ids: IoU_rec classes of tasks without graders (default the task's).
    ap_dir: write the Cityscapes AP inputs there (cars).
    num_samples: the metrics use the first this many of `pred.labels`
      (default all).
    ged_sample_counts: GED^2 of the first n samples too, for each n (tasks
      with a GED: graders, flips).

  Returns:
    The clustered instance maps (instance tasks; else empty).
  """
  valid = np.asarray(valid, bool)
  num = pred.labels.shape[1] if num_samples is None else int(num_samples)
  labels = pred.labels[:, :num]
  recs = pred.recs  # None: no posterior, no reconstruction metrics
  if task.has_graders and task.num_classes > 2:
    multiclass_grader_metrics(out, task, labels, recs, batch, valid)
    return []
  if task.has_graders:
    binary_metrics(out, pred.labels > 0, None if recs is None else recs > 0,
                   batch, valid, subset_b=task.subset_b, num_samples=num,
                   ged_sample_counts=ged_sample_counts)
    if "modes" in batch and pred.scale_labels is not None and valid.any():
      scale_samples = {"full": labels > 0}
      scale_samples.update({k: v > 0 for k, v in pred.scale_labels.items()})
      scale_metrics(out, scale_samples, None if recs is None else recs > 0,
                    batch, valid)
    return []
  if recs is not None:
    rec_iou_metrics(out, task, recs, batch, valid, class_ids)
  if task.kind == "flips":
    flip_metrics(out, pred.labels, batch, valid, num_samples=num,
                 ged_sample_counts=ged_sample_counts)
    return []
  if not instances:
    return []
  return instance_metrics(out, task, labels, batch, valid, seed,
                          car_prob=pred.p_mean, ap_dir=ap_dir)


# ----------------------------------------------------------------------------
# Many batches, all processes.
# ----------------------------------------------------------------------------


def gather_rows(values: np.ndarray, feed_index: Optional[int] = None
                ) -> np.ndarray:
  """Concatenates per-process rows over processes, in process order.

  Processes may hold different numbers of rows (the padded tail of a split):
  the rows are padded to a common length for the gather and cut back after.
  With `feed_index`, processes that load the same rows (the same feed) count
  once: the first process of each feed contributes, in feed order.
  """
  if jax.process_count() == 1:
    return values
  values = np.asarray(values)
  lengths = np.asarray(multihost_utils.process_allgather(
      np.int32(len(values)))).reshape(-1)
  padded = np.zeros((int(lengths.max()),) + values.shape[1:], values.dtype)
  padded[:len(values)] = values
  gathered = np.asarray(multihost_utils.process_allgather(padded))  # [P, ...]
  processes = range(len(lengths))
  if feed_index is not None:
    feeds = np.asarray(multihost_utils.process_allgather(
        np.int32(feed_index))).reshape(-1)
    processes = [int(np.flatnonzero(feeds == f)[0]) for f in np.unique(feeds)]
  return np.concatenate([gathered[p][:lengths[p]] for p in processes])


def finish(out: Mapping[str, list], *, feed_index: Optional[int] = None
           ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """(per_image, pooled) over every process from `batch_metrics`' `out`.

  per_image: name -> float64 [N] over the images of the split (NaN where a
  metric does not apply), with `mode_tv`, the per-image total variation of
  the mode frequencies, where there are known modes. pooled: the mode
  frequencies and flip frequencies over all images.
  """
  gather = functools.partial(gather_rows, feed_index=feed_index)
  per_image = {k: gather(np.asarray(v, np.float64)) for k, v in out.items()
               if not k.startswith("_")}
  pooled: dict[str, Any] = {}
  if out.get("_assignments"):
    assignments = gather(np.stack(out["_assignments"]))
    probs = gather(np.stack(out["_mode_probs"]))
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
  if out.get("_flip_counts"):
    counts = functools.reduce(lambda a, b: a + b, out["_flip_counts"])
    gathered = [gather(np.asarray(x)[None]).sum(0)
                for x in (counts.gt, counts.as_source, counts.as_target)]
    counts = metrics_lib.FlipPixelCounts(*gathered)
    pooled["flip_frequencies"] = {
        "classes": list(tasks_lib.FLIP_SOURCE_IDS),
        "predicted": counts.target_frequency.tolist(),
        "expected": list(tasks_lib.FLIP_PROBS)}
  return per_image, pooled


def host_inputs(batch: Mapping[str, np.ndarray]) -> dict[str, Array]:
  """The device inputs of `predict` from a host batch, on the default device."""
  keys = ("image", "masks", "seg", "mask")
  return {k: jnp.asarray(batch[k], jnp.float32 if k == "image" else None)
          for k in keys if k in batch}


def evaluate_batches(predictor: Predictor, params, batches: Iterable[Any], *,
                     rng: Array, to_device: Callable[[Any], Any] = None,
                     max_batches: Optional[int] = None, seed: int = 0,
                     instances: bool = True,
                     class_ids: Optional[Sequence[int]] = None,
                     ap_dir: Optional[str] = None,
                     on_batch: Optional[Callable[..., None]] = None,
                     ) -> collections.defaultdict:
  """`predict` + `batch_metrics` over batches; returns `out` for `finish`.

  Args:
    predictor: from `make_predictor`.
    params: the parameters `predictor`'s functions take.
    batches: host batches (numpy dicts with `batch_mask` on padded ones).
    rng: batch i uses `fold_in(rng, i)` (see `predict`).
    to_device: host batch -> (device inputs, rows of the outputs that are
      this batch's); default: the whole batch on the default device.
    max_batches: stop after this many batches.
    seed: clustering seed; batch i clusters with `seed + 1000 i`.
    instances, class_ids, ap_dir: see `batch_metrics`.
    on_batch: called as `on_batch(i, batch, pred, valid, clustered)` (figures).
  """
  if to_device is None:
    to_device = lambda b: (host_inputs(b), slice(None))
  out = collections.defaultdict(list)
  for i, batch in enumerate(batches):
    if max_batches is not None and i >= max_batches:
      break
    valid = np.asarray(batch.get("batch_mask",
                                 np.ones(len(batch["image"]), bool)), bool)
    inputs, rows = to_device(batch)
    pred = predict(predictor, params, jax.random.fold_in(rng, i), inputs,
                   rows=rows)
    clustered = batch_metrics(out, predictor.task, pred, batch, valid,
                              seed=seed + 1000 * i, instances=instances,
                              class_ids=class_ids, ap_dir=ap_dir,
                              num_samples=predictor.num_samples,
                              ged_sample_counts=predictor.ged_sample_counts)
    out["_valid"].append(valid)
    if "image_id" in batch:  # pairs the images of two models (comparison)
      out["_ids"].extend(
          _decode(x) for x in np.asarray(batch["image_id"])[valid])
    if on_batch is not None:
      on_batch(i, batch, pred, valid, clustered)
  out.pop("_valid", None)
  return out


def _decode(image_id) -> str:
  return image_id.decode() if isinstance(image_id, bytes) else str(image_id)


_ID_BYTES = 256  # fixed width of the gathered ids (longer ones are cut)


def gather_image_ids(out: Mapping[str, list], *,
                     feed_index: Optional[int] = None) -> Optional[list[str]]:
  """The image ids of `evaluate_batches`' rows over every process, in the
  order of `finish`'s per-image values; None when the batches had none."""
  if "_ids" not in out:
    return None
  ids = out["_ids"]
  encoded = np.zeros((len(ids), _ID_BYTES), np.uint8)  # numeric for gather
  for i, image_id in enumerate(ids):
    raw = image_id.encode()[:_ID_BYTES]
    encoded[i, :len(raw)] = np.frombuffer(raw, np.uint8)
  encoded = gather_rows(encoded, feed_index)
  return [bytes(row).rstrip(b"\0").decode(errors="replace")
          for row in encoded]


def mean_metrics(per_image: Mapping[str, np.ndarray]) -> dict[str, float]:
  """nan-mean of every per-image metric, and `num_examples`."""
  out = {}
  sizes = [len(v) for v in per_image.values()]
  out["num_examples"] = float(max(sizes)) if sizes else 0.0
  for key, values in per_image.items():
    finite = values[~np.isnan(values)]
    out[key] = float(finite.mean()) if finite.size else float("nan")
  return out
