# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Evaluates trained workdirs with the papers' metrics; writes tables and figures.

  python -m hpunet.evaluate --config=configs/<exp>.py --workdir=<training workdir> \
      [--num_samples=16] [--split=test] [--max_batches=N] [--out_dir=DIR] \
      [--ged_sample_counts=1,4,8,16] \
      [--cityscapes_gt_dir=$DATA/cityscapes/gtFine/val]

`--workdir` may list several runs (model seeds), comma-separated: each is
evaluated and the table reports the mean +- std over seeds x 1000 bootstrap
resamples of the test images (HPU-Net paper; `metrics.bootstrap_over_seeds`).

The metrics are those of `hpunet.evaluation` (also the trainer's periodic
validation). Per task (`config.input.name`), with `S` prior samples per image
drawn by the encoder-reuse path (`sample_n`) and reconstructions decoded from
the posterior means (`reconstruct(mean=True)`; models without a posterior,
the sPU-Net paper's baselines, have no IoU_rec and no reconstruction
recall):

| task | metrics |
|---|---|
| lidc | GED^2 (graders), Hungarian IoU (all; subset B = all 4 graders marked a lesion), IoU_rec (all 4 gradings) |
| synthetic | GED^2 against the known modes (weighted) and against the graders, Hungarian IoU, IoU_rec, mode frequencies vs the true probabilities (total variation), per-scale variance ratios and per-factor reconstruction recall (below) |
| snemi3d | IoU_rec (ids 1..15), adapted Rand error of the Hamming-clustered samples (alpha = 16) |
| cityscapes_cars | IoU_rec (car ids), adapted Rand error (alpha = 32, car pixels), AP / AP50 through the official evaluation when `--cityscapes_gt_dir` is given |
| cityscapes_flips | IoU_rec (the 10 switchable classes), GED^2 against the 32 modes (weighted, nan-mean IoU over the 10 switchable classes), mode frequencies, pixel-wise flip frequencies |

GED² against the number of samples (sPU-Net Fig. 4; tasks with a GED²:
lidc, synthetic, cityscapes_flips): `ged_n<n>` / `ged_modes_n<n>` for each
n of `--ged_sample_counts` (default 1, 4, 8, 16). max(n, --num_samples)
samples are drawn once per image and the GED² at n is that of the first n
of them: for models whose samples are i.i.d. given the image (sPU-Net,
HPU-Net, dropout U-Net, Image2Image VAE) the first n are n i.i.d. samples,
so every n's per-image value has the distribution of the paper's n fresh
samples (`metrics.ged_at_sample_counts`); for an ensemble of independently
trained members, one sample each, the first n members are an n-member
ensemble, the paper's model for n. An M-heads model is the exception: the
paper trains one model per M = n heads and its heads are trained jointly,
so read the row n = M of each M-heads model. The other metrics use the first
`--num_samples`. With 1 sample the sample-diversity term is 0. Per image:
`per_image.npz`; `python -m hpunet.compare` runs the paper's Wilcoxon
signed-rank test between two such folders.

Models without a posterior (`networks.has_posterior` False: dropout U-Net,
ensembles, M-heads) have no reconstructions: IoU_rec, the per-factor
reconstruction recall, the per-level sampling modes and the per-scale figure
are skipped, and results.md says so.

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
Table 1, and GED² against the number of samples like the sPU-Net paper's
Fig. 4), `per_image.npz` (every per-image value, [runs, images], and the
`image_id`s) and `figures/*.png` — sample grids, per-pixel std maps,
per-scale sampling (HPU-Net Fig. 3 / 15: full, only the most global, only
the most local latent level sampled), clustered instances, the per-image
GED² distribution per number of samples (`ged_vs_samples.png`, sPU-Net
Fig. 4: boxes, every image as a dot, the mean as a diamond) and the
mode-frequency vs ground-truth probability plot (sPU-Net Fig. 5; every model
on a task with known modes, at `--num_samples` samples per image). With several workdirs each run's own outputs
go to `<workdir>/eval/<split>_step<step>/` (or `<out_dir>/run<k>/`, k = the
position in `--workdir`) and the combined results.json/.md to the first
run's folder (or `--out_dir`). Scalars and figures also go to the first
run's TensorBoard under `<split>/`. Every path (workdirs, `--out_dir`) may be
local or on another filesystem such as `gs://` (written through etils.epath),
except `--cityscapes_gt_dir`: the official Cityscapes evaluation reads local
files (its prediction files go to a local temporary folder when the outputs
are not local). Library INFO lines are hidden unless `--verbosity` is given.

Multi-host: every process evaluates its share of the split (the eval
pipeline pads and masks); per-image values are gathered once and process 0
writes the outputs.
"""

import io
import json
import os
import sys
import tempfile
import types
from typing import Any, Mapping, Optional, Sequence

from absl import app
from absl import flags
from absl import logging
from etils import epath
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np

from hpunet import checkpointing
from hpunet import cli
from hpunet import comparison
from hpunet import config_lib
from hpunet import errors
from hpunet import evaluation
from hpunet import images
from hpunet import metrics as metrics_lib
from hpunet import networks as networks_lib
from hpunet import summary_writer
from hpunet import tasks as tasks_lib
from hpunet import train as train_lib
from hpunet import validation

GED_SAMPLE_COUNTS = evaluation.GED_SAMPLE_COUNTS
_GED_LABELS = {"ged": "GED² (graders)", "ged_modes": "GED² (known modes)"}
_MODEL_LABELS = {"hpunet": "HPU-Net", "spunet": "sPU-Net",
                 "dropout_unet": "Dropout U-Net",
                 "unet_ensemble": "U-Net Ensemble", "mheads": "M-Heads"}
# Written in results.md for models without a posterior.
_NO_POSTERIOR_NOTE = (
    "Not computed: this model has no posterior (`networks.has_posterior` is "
    "False), so it has no reconstructions (IoU_rec, per-factor "
    "reconstruction recall) and no latent levels to sample one at a time "
    "(variance ratios of only the most global / most local level, the "
    "per-scale figure).")

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
# The evaluation of one run.
# ----------------------------------------------------------------------------


def model_label(model_name: str) -> str:
  """The paper's name of a model (`config.model.name` if it has none)."""
  return _MODEL_LABELS.get(model_name, model_name)


def evaluate_run(config: ml_collections.ConfigDict, workdir: str, *,
                 split: str = "test", num_samples: Optional[int] = None,
                 max_batches: Optional[int] = None, seed: int = 0,
                 figures_dir: Optional[str] = None,
                 cityscapes_gt_dir: Optional[str] = None,
                 ap_dir: Optional[str] = None,
                 ged_sample_counts: Sequence[int] = GED_SAMPLE_COUNTS
                 ) -> dict[str, Any]:
  """Per-image metric values of one trained run (see module docstring).

  Returns:
    dict with `step`, `num_images`, `per_image` (name -> float array over the
    evaluated images, NaN where a metric does not apply), `image_ids` (the
    images' ids in that order, or None), `pooled` (mode frequencies, flip
    frequencies, AP), `has_posterior` and `figures`.
  """
  from hpunet import input_pipeline  # pylint: disable=g-import-not-at-top
  task = tasks_lib.for_input(config.input)
  if task.kind == "cars" and cityscapes_gt_dir and ap_dir is None:
    raise ValueError("Cityscapes AP needs a results folder (ap_dir).")
  params, step = train_lib.restore_params(config, workdir)
  networks = networks_lib.make_networks(config.model)
  has_posterior = getattr(networks, "has_posterior", True)
  # Synthetic (known modes): also the per-scale sampling modes (HPU-Net).
  predictor = evaluation.make_predictor(
      networks, task, num_samples, per_scale=task.known_modes,
      ged_sample_counts=ged_sample_counts if task.kind in ("graders", "flips")
      else ())
  num_samples = predictor.num_samples
  label = f"{task.name}, {model_label(config.model.name)}"
  rng = jax.random.fold_in(jax.random.key(seed), step)
  figures = {}

  def on_batch(i, batch, pred, valid, clustered):
    if i != 0:
      return
    n = min(4, int(valid.sum()))
    image = np.asarray(batch["image"])
    if task.has_graders:
      gt_fig = np.asarray(batch["masks"])[..., 0]
      rec_fig = None if pred.recs is None else pred.recs[:, 0]
    else:
      gt_fig, rec_fig = np.asarray(batch["seg"]), pred.recs
    if clustered:
      figures["instances"] = images.image_grid([
          images.image_to_rgb(image[valid][:4]),
          images.label_to_rgb(np.stack(clustered[:4]) % 24, 24)],
          labels=["image", "instances"])
    figures["samples"] = images.samples_grid(
        image[:n], np.asarray(gt_fig)[:n],
        None if rec_fig is None else np.asarray(rec_fig)[:n],
        pred.labels[:n, :num_samples], networks.num_classes)
    figures["std"] = images.image_grid([
        images.image_to_rgb(image[:n]), images.gray(pred.p_mean[:n], 1.0),
        images.gray(pred.p_std[:n], 0.5)], labels=["image", "mean", "std"])
    if has_posterior:  # latent levels to hold at their means
      figures["per_scale"] = _per_scale_figure(
          networks, params, jax.random.fold_in(rng, i),
          jnp.asarray(image[:n], jnp.float32), num_samples, task)

  out = evaluation.evaluate_batches(
      predictor, params,
      input_pipeline.create_eval_dataset(config.input, split=split),
      rng=rng, max_batches=max_batches, seed=seed,
      ap_dir=ap_dir if cityscapes_gt_dir else None, on_batch=on_batch)
  per_image, pooled = evaluation.finish(out)
  image_ids = evaluation.gather_image_ids(out)
  if ("mode_frequencies" in pooled and figures_dir and
      jax.process_index() == 0):
    freqs = pooled["mode_frequencies"]
    images.mode_frequency_plot(
        os.path.join(figures_dir, "mode_frequencies.png"), freqs["expected"],
        freqs["predicted"], freqs["total_variation"],
        f"{label}, {num_samples} samples / image")
  curves = ged_curves(per_image)
  if curves and figures_dir and jax.process_index() == 0:
    images.ged_distribution_plot(
        os.path.join(figures_dir, "ged_vs_samples.png"),
        {_GED_LABELS[k]: v for k, v in curves.items()}, label)
  if task.kind == "cars" and cityscapes_gt_dir:
    from hpunet import cityscapes_eval  # pylint: disable=g-import-not-at-top
    if jax.process_index() == 0:
      ap = cityscapes_eval.evaluate_car_ap(cityscapes_gt_dir, ap_dir,
                                           image_ids=out["_image_ids"])
      pooled["ap"], pooled["ap50"] = ap.ap, ap.ap50
  if figures_dir and jax.process_index() == 0:
    for name, rgb in figures.items():
      images.save_png(os.path.join(figures_dir, f"{name}.png"), rgb)
  return {"step": step, "num_samples": num_samples,
          "num_images": int(len(next(iter(per_image.values()))))
                        if per_image else 0,
          "per_image": per_image, "image_ids": image_ids, "pooled": pooled,
          "figures": figures, "has_posterior": has_posterior,
          "ged_sample_counts": list(predictor.ged_sample_counts)}


def ged_curves(per_image: Mapping[str, np.ndarray]
               ) -> dict[str, dict[int, np.ndarray]]:
  """GED kind ("ged", "ged_modes") -> n -> per-image GED^2 of n samples."""
  curves: dict[str, dict[int, np.ndarray]] = {}
  for key, values in per_image.items():
    match = comparison.GED_AT_N.fullmatch(key)
    if match:
      curves.setdefault(match.group(1), {})[int(match.group(2))] = values
  return {k: dict(sorted(v.items())) for k, v in sorted(curves.items())}


def _per_scale_figure(networks, params, rng, image, num_samples, task):
  """Rows: images; per mode (full / only most global / only most local):
  the per-pixel std of P(foreground) over samples and two samples."""
  modes = evaluation.per_scale_modes(networks.latent_dims)
  columns = [images.image_to_rgb(np.asarray(image))]
  labels = ["image"]
  for j, (mode, mean) in enumerate(modes.items()):
    fn = evaluation.make_sample_fn(networks, num_samples, task.foreground,
                                   mean=mean)
    samples, _, p_std = jax.device_get(
        fn(params, jax.random.fold_in(rng, 100 + j), image))
    columns.append(images.gray(p_std, 0.5))
    columns += [images.label_to_rgb(samples[s], networks.num_classes)
                for s in range(min(2, samples.shape[0]))]
    short = {"full": "all", "only_most_global": "glob",
             "only_most_local": "loc"}.get(mode, mode)
    labels += [f"{short} std"] + [f"{short} s{s}" for s in range(
        min(2, samples.shape[0]))]
  return images.image_grid(columns, labels=labels)


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


def ged_vs_samples(table: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
  """GED kind -> {n: table entry} of `summarize_runs`' `<kind>_n<n>` rows."""
  out: dict[str, dict[str, Any]] = {}
  for key, entry in table.items():
    match = comparison.GED_AT_N.fullmatch(key)
    if match:
      out.setdefault(match.group(1), {})[int(match.group(2))] = entry
  return {k: {str(n): v[n] for n in sorted(v)} for k, v in sorted(out.items())}


def ged_markdown_table(curves: Mapping[str, Mapping[str, Any]], *,
                       model: str) -> str:
  """The sPU-Net paper's Fig. 4 as a table: GED² (mean ± std) per #samples."""
  counts = sorted({int(n) for c in curves.values() for n in c})
  lines = ["| metric | " + " | ".join(
      f"{n} sample" + ("s" if n != 1 else "") for n in counts) + " |",
           "|---|" + "---|" * len(counts)]
  for kind, per_n in curves.items():
    cells = [f"{per_n[str(n)]['mean']:.3f} ± {per_n[str(n)]['std']:.3f}"
             if str(n) in per_n else "" for n in counts]
    lines.append(f"| {_GED_LABELS[kind]}, {model} | " + " | ".join(cells)
                 + " |")
  return "\n".join(lines) + "\n"


PER_IMAGE_FILE = comparison.PER_IMAGE_FILE


def per_image_arrays(runs: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
  """The per-image values of the runs for `per_image.npz`.

  metric -> float64 [runs, images] (NaN where a metric does not apply);
  `image_id` -> str [images] when the split has ids. Every run must have
  evaluated the same images in the same order (same split, same
  `--max_batches`).
  """
  ids = [r.get("image_ids") for r in runs]
  if any(i != ids[0] for i in ids[1:]):
    raise ValueError("The runs evaluated different images; per-image values "
                     "cannot be stacked.")
  keys = sorted(set().union(*(r["per_image"] for r in runs)))
  num = runs[0]["num_images"]
  arrays = {k: np.stack([np.asarray(r["per_image"].get(
      k, np.full(num, np.nan)), np.float64) for r in runs]) for k in keys}
  if ids[0] is not None:
    arrays["image_id"] = np.asarray(ids[0], dtype=str)
  return arrays


def evaluate(config: ml_collections.ConfigDict, workdirs: Sequence[str], *,
             split: str = "test", num_samples: Optional[int] = None,
             max_batches: Optional[int] = None, out_dir: Optional[str] = None,
             cityscapes_gt_dir: Optional[str] = None,
             seed: int = 0,
             ged_sample_counts: Sequence[int] = GED_SAMPLE_COUNTS
             ) -> dict[str, Any]:
  """Evaluates one or several runs and writes results.json/.md,
  per_image.npz and figures.

  Returns:
    The `results.json` content.
  """
  if cityscapes_gt_dir and "://" in str(cityscapes_gt_dir):
    raise errors.UserError(
        f"--cityscapes_gt_dir={cityscapes_gt_dir}: the official Cityscapes "
        "evaluation reads local files only; copy gtFine/val to a local folder "
        "(e.g. gsutil -m cp -r) and pass that.")
  workdirs = list(workdirs)
  runs = []
  for w, workdir in enumerate(workdirs):
    if out_dir:  # everything under out_dir, per run in run<k>/ if several
      run_dir = out_dir if len(workdirs) == 1 else os.path.join(
          out_dir, f"run{w}")
    else:
      latest = checkpointing.Checkpointer(workdir, async_save=False,
                                          read_only=True)
      step = latest.latest_step()
      latest.close()
      run_dir = os.path.join(workdir, "eval", f"{split}_step{step}")
    ap_dir = None
    if cityscapes_gt_dir:  # files for the official evaluation: local only
      ap_dir = (os.path.join(run_dir, "cityscapes_results")
                if "://" not in str(run_dir) else
                tempfile.mkdtemp(prefix="hpunet_cityscapes_results_"))
    run = evaluate_run(
        config, workdir, split=split, num_samples=num_samples,
        max_batches=max_batches, seed=seed,
        figures_dir=os.path.join(run_dir, "figures"),
        cityscapes_gt_dir=cityscapes_gt_dir, ap_dir=ap_dir,
        ged_sample_counts=ged_sample_counts)
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
  figures_dir = epath.Path(run_dir) / "figures"
  if not figures_dir.is_dir():
    return []
  # relpath only compares the strings (also for gs:// paths).
  return sorted(os.path.relpath(str(figures_dir / f.name), str(out_dir))
                for f in figures_dir.iterdir() if f.name.endswith(".png"))


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
      "has_posterior": bool(runs[0].get("has_posterior", True)),
      # GED² of the first n of the samples drawn once per image (Fig. 4).
      "ged_vs_samples": ged_vs_samples(table),
      "per_image_file": PER_IMAGE_FILE,
  }
  out_dir = epath.Path(out_dir)  # local or e.g. gs://
  out_dir.mkdir(parents=True, exist_ok=True)
  (out_dir / "results.json").write_text(json.dumps(results, indent=2))
  model = model_label(config.model.name)
  text = markdown_table(table, dataset=str(config.input.get("dataset")),
                        model=model)
  if results["ged_vs_samples"]:
    text += ("\nGED² against the number of samples per image (sPU-Net "
             "Fig. 4; the first n of the samples drawn once per image):\n\n"
             + ged_markdown_table(results["ged_vs_samples"], model=model))
  if not results["has_posterior"]:
    text += "\n" + _NO_POSTERIOR_NOTE + "\n"
  (out_dir / "results.md").write_text(text)
  buffer = io.BytesIO()  # np.savez needs a seekable file: not gs://
  np.savez_compressed(buffer, **per_image_arrays(runs))
  (out_dir / PER_IMAGE_FILE).write_bytes(buffer.getvalue())
  return results


# ----------------------------------------------------------------------------
# main: flags only.
# ----------------------------------------------------------------------------

def _define_flags(fv: flags.FlagValues = flags.FLAGS
                  ) -> types.SimpleNamespace:
  """Flags exist only when run as a program: importing defines none."""
  return types.SimpleNamespace(
      config=config_flags.DEFINE_config_file(
          "config", None, "Experiment config (configs/<exp>.py[:arg]).",
          lock_config=True, flag_values=fv),
      workdir=flags.DEFINE_string(
          "workdir", None, "Training workdir; several (seeds) comma-separated.",
          flag_values=fv),
      num_samples=flags.DEFINE_integer(
          "num_samples", None, "Prior samples per image (default: the task's, "
          "16, or 32 for Cityscapes cars).", flag_values=fv),
      split=flags.DEFINE_string("split", "test", "TFDS split to evaluate.",
                                flag_values=fv),
      max_batches=flags.DEFINE_integer("max_batches", None,
                                       "Evaluate only this many batches.",
                                       flag_values=fv),
      out_dir=flags.DEFINE_string(
          "out_dir", None,
          "Output folder (default <workdir>/eval/<split>_step<N>).",
          flag_values=fv),
      cityscapes_gt_dir=flags.DEFINE_string(
          "cityscapes_gt_dir", None, "gtFine/val folder for the official "
          "Cityscapes AP (cityscapes_cars only).", flag_values=fv),
      seed=flags.DEFINE_integer("seed", 0, "Sampling seed.", flag_values=fv),
      ged_sample_counts=flags.DEFINE_list(
          "ged_sample_counts", [str(n) for n in GED_SAMPLE_COUNTS],
          "Also report GED² of the first n samples for each n (sPU-Net "
          "Fig. 4); the samples are drawn once per image, "
          "max(n, --num_samples) of them. Empty: none.", flag_values=fv),
  )


def main(argv, f: types.SimpleNamespace):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if f.config.value is None or not f.workdir.value:
    raise app.UsageError("--config and --workdir are required.")
  workdirs = [w for w in f.workdir.value.split(",") if w]
  # Reliability hook (issue 16): every flag checked before any work.
  validation.check_evaluate(
      f.config.value, workdirs, split=f.split.value,
      num_samples=f.num_samples.value, max_batches=f.max_batches.value,
      out_dir=f.out_dir.value, cityscapes_gt_dir=f.cityscapes_gt_dir.value,
      ged_sample_counts=f.ged_sample_counts.value)
  # Library INFO lines (orbax, absl) are noise here; --verbosity=0 shows them.
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  results = evaluate(
      f.config.value, workdirs,
      split=f.split.value, num_samples=f.num_samples.value,
      max_batches=f.max_batches.value, out_dir=f.out_dir.value,
      cityscapes_gt_dir=f.cityscapes_gt_dir.value, seed=f.seed.value,
      ged_sample_counts=[int(n) for n in f.ged_sample_counts.value])
  if results is not None:
    print(json.dumps(results["table"], indent=2))


if __name__ == "__main__":
  sys.argv = config_lib.resolve_config_flags(sys.argv)
  cli.run(main, _define_flags)
