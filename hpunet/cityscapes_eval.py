# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Cityscapes car AP / AP50 through the official instance evaluation.

The evaluation itself is `cityscapesscripts.evaluation.
evalInstanceLevelSemanticLabeling` (mcordts/cityscapesScripts 2.3.0, the
optional `eval` extra). This module writes predictions in its format, runs its
matching and AP code on a gtFine folder, and reads the **car row** (AP over IoU
thresholds 0.50:0.05:0.95 and AP at 0.5), not the 8-class mean.

Installation (the `eval` extra): cityscapesscripts' metadata requires the
obsolete `typing` backport and matplotlib, none of which the instance
evaluation imports, so install it without dependencies plus what it does need:

  pip install -c constraints.txt -e ".[eval]"   # pyquaternion, pillow
  pip install -c constraints.txt --no-deps cityscapesscripts==2.3.0

NumPy >= 2.4 shim: cityscapesscripts 2.3.0 calls `np.in1d`, removed in NumPy
2.4. Before importing it, and only if the attribute is missing, this module
sets `np.in1d = lambda a, b, **k: np.isin(np.ravel(a), b, **k)` (the removed
function's semantics: flatten, then test membership). This adds the attribute
to the global `numpy` module for the whole process.

Isolation from the script's globals: the official `evaluateImgLists` writes
`matches.json` into the current directory and caches `gtInstances.json` next
to its installed file (stale if the GT changes). `evaluate_car_ap` instead
calls the same official steps (`setInstanceLabels`, `getGtInstances`,
`matchGtWithPreds`, `evaluateMatches`, `computeAverages`) on a private copy of
its settings, with the GT cache in a temporary file and no JSON output.

Predictions (`write_prediction`): one `<image_id>_pred.txt` per image in the
results folder with lines `masks/<image_id>_<k>.png 26 <score>` (26 = car
labelId, not the trainId); masks are binary PNGs at 1024x2048, nearest-
upsampled from the half-resolution instance map.

Object score (our choice; the paper says "the softmax scores of the
stochastic car-id classes averaged over samples and the instance's pixels"):
per pixel and sample, the softmax probabilities of all car-id classes are
*summed* (= P(car) under that sample), then averaged over the samples and
over the instance's pixels: `car_probability` then `instance_scores`.
"""

import contextlib
import copy
import glob
import io
import os
import re
import tempfile
from typing import Dict, Iterable, NamedTuple, Optional, Sequence

import numpy as np

CAR_LABEL_ID = 26
FULL_RESOLUTION = (1024, 2048)
_GT_SUFFIX = "_gtFine_instanceIds.png"
_INSTALL_HINT = (
    "Cityscapes AP needs the optional `eval` extra: pip install -c "
    "constraints.txt -e '.[eval]' && pip install -c constraints.txt "
    "--no-deps cityscapesscripts==2.3.0")


class CarAP(NamedTuple):
  ap: float  # car AP averaged over IoU thresholds 0.50:0.05:0.95.
  ap50: float  # car AP at IoU > 0.5.
  num_images: int


def _install_numpy_shim():
  if not hasattr(np, "in1d"):
    np.in1d = lambda a, b, **k: np.isin(np.ravel(a), b, **k)


def import_instance_evaluation():
  """Imports the official instance-level evaluation module (lazily)."""
  _install_numpy_shim()
  try:
    # pylint: disable=g-import-not-at-top
    from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling
  except ImportError as e:
    raise ImportError(f"{_INSTALL_HINT} ({e}).") from e
  return evalInstanceLevelSemanticLabeling


def _image():
  try:
    from PIL import Image  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"{_INSTALL_HINT} (pillow missing: {e}).") from e
  return Image


def car_probability(logits, car_class_ids: Sequence[int]):
  """Per-pixel P(car): softmax summed over car ids, mean over samples.

  Args:
    logits: float `[n, H, W, K]` sample logits.
    car_class_ids: the stochastic car-id classes (channels of K).

  Returns:
    float32 `[H, W]`.
  """
  logits = np.asarray(logits, np.float32)
  z = logits - logits.max(-1, keepdims=True)
  e = np.exp(z)
  p_car = e[..., list(car_class_ids)].sum(-1) / e.sum(-1)
  return p_car.mean(0)


def instance_scores(instances, car_prob) -> Dict[int, float]:
  """Mean of `car_prob` `[H, W]` over each instance (ids >= 1) of `[H, W]`."""
  instances = np.asarray(instances).reshape(-1).astype(np.int64)
  car_prob = np.asarray(car_prob, np.float64).reshape(-1)
  if instances.shape != car_prob.shape:
    raise ValueError("instance_scores: instances and car_prob must have the "
                     "same [H, W] shape.")
  sums = np.bincount(instances, weights=car_prob)
  counts = np.bincount(instances)
  return {int(k): float(sums[k] / counts[k])
          for k in np.flatnonzero(counts) if k != 0}


def upsample_nearest(label_map, size=FULL_RESOLUTION):
  """Nearest-neighbour resize of `[h, w]` to `size` (exact 2x = repeat)."""
  label_map = np.asarray(label_map)
  h, w = label_map.shape
  rows = (np.arange(size[0]) * h) // size[0]
  cols = (np.arange(size[1]) * w) // size[1]
  return label_map[rows[:, None], cols[None, :]]


def write_prediction(results_dir: str, image_id: str, instances,
                     scores: Dict[int, float], *,
                     full_size=FULL_RESOLUTION,
                     label_id: int = CAR_LABEL_ID) -> str:
  """Writes one image's predictions in the official results format.

  Args:
    results_dir: results root (created if missing).
    image_id: `<city>_<seq>_<frame>`, e.g. "frankfurt_000000_000294".
    instances: int `[h, w]` instance map (0 = background), any resolution;
      nearest-upsampled to `full_size`.
    scores: confidence per instance id (e.g. `instance_scores`); instances
      without a score are not written.
    full_size: GT resolution (1024, 2048).
    label_id: Cityscapes labelId of the class (26 = car).

  Returns:
    Path of the written `.txt` (empty if no instance).
  """
  if not re.fullmatch(r"[^_/\s]+_\d+_\d+", image_id):
    raise ValueError(f"write_prediction: image_id must be "
                     f"'<city>_<seq>_<frame>', got {image_id!r}.")
  image = _image()
  mask_dir = os.path.join(results_dir, "masks")
  os.makedirs(mask_dir, exist_ok=True)
  full = upsample_nearest(instances, full_size)
  lines = []
  for inst_id in sorted(scores):
    mask = full == inst_id
    if not mask.any():
      continue
    name = f"{image_id}_{inst_id}.png"
    image.fromarray(mask.astype(np.uint8) * 255).save(
        os.path.join(mask_dir, name))
    lines.append(f"masks/{name} {label_id} {scores[inst_id]:.6f}\n")
  path = os.path.join(results_dir, f"{image_id}_pred.txt")
  with open(path, "w", encoding="utf-8") as f:
    f.writelines(lines)
  return path


def gt_files(gt_folder: str, image_ids: Optional[Iterable[str]] = None):
  """Sorted `*_gtFine_instanceIds.png` under `gt_folder` (recursive)."""
  files = sorted(glob.glob(os.path.join(gt_folder, "**", "*" + _GT_SUFFIX),
                           recursive=True))
  if image_ids is not None:
    wanted = set(image_ids)
    files = [f for f in files
             if os.path.basename(f)[:-len(_GT_SUFFIX)] in wanted]
  if not files:
    raise FileNotFoundError(f"No *{_GT_SUFFIX} files under {gt_folder!r}"
                            + (" for the given image ids" if image_ids else
                               "") + ".")
  return files


def evaluate_car_ap(gt_folder: str, results_dir: str, *,
                    image_ids: Optional[Iterable[str]] = None,
                    gt_instances_file: Optional[str] = None) -> CarAP:
  """Official Cityscapes instance evaluation; returns the car AP and AP50.

  Args:
    gt_folder: folder holding `<city>_<seq>_<frame>_gtFine_instanceIds.png`
      files (searched recursively, e.g. gtFine/val).
    results_dir: folder written by `write_prediction`; every GT image needs a
      `<image_id>_pred.txt` (an empty file = no predictions).
    image_ids: optional subset of image ids to evaluate.
    gt_instances_file: where to cache the GT instance dictionary; default a
      temporary file, so the official script's cache is never stale.

  Returns:
    `CarAP` with values in [0, 1] (NaN if the GT has no car instance).
  """
  ev = import_instance_evaluation()
  gts = gt_files(gt_folder, image_ids)
  results_dir = os.path.abspath(results_dir)
  preds = []
  for gt in gts:
    image_id = os.path.basename(gt)[:-len(_GT_SUFFIX)]
    pred = os.path.join(results_dir, f"{image_id}_pred.txt")
    if not os.path.isfile(pred):
      raise FileNotFoundError(f"evaluate_car_ap: no prediction file {pred!r} "
                              f"for ground truth {gt!r}.")
    preds.append(pred)
  args = copy.copy(ev.args)
  args.predictionPath = results_dir
  args.predictionWalk = None
  args.JSONOutput = False
  args.quiet = True
  args.colorized = False
  args.csv = False
  args.distanceAvailable = False
  with contextlib.ExitStack() as stack:
    if gt_instances_file is None:
      tmp = stack.enter_context(tempfile.TemporaryDirectory())
      gt_instances_file = os.path.join(tmp, "gtInstances.json")
    args.gtInstancesFile = gt_instances_file
    out = io.StringIO()
    try:
      with contextlib.redirect_stdout(out):
        ev.setInstanceLabels(args)
        gt_instances = ev.getGtInstances(gts, args)
        matches = ev.matchGtWithPreds(preds, gts, gt_instances, args)
        aps = ev.evaluateMatches(matches, args)
        averages = ev.computeAverages(aps, args)
    except SystemExit as e:  # the script's printError calls sys.exit.
      raise RuntimeError("Cityscapes evaluation failed: "
                         f"{out.getvalue().strip()[-2000:]}") from e
  car = averages["classes"]["car"]
  return CarAP(float(car["ap"]), float(car["ap50%"]), len(gts))
