# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Comparing two evaluated models image by image (sPU-Net Sec. 4, Fig. 4).

`python -m hpunet.evaluate` writes every model's per-image values to
`<results folder>/per_image.npz` (metric -> float64 [runs, images], and the
images' `image_id`s). `compare` pairs two such folders by image id and runs
the paper's Wilcoxon signed-rank test (`metrics.wilcoxon_signed_rank`) on
the per-image GED^2 of every number of samples both were evaluated at
(`ged_n<n>` against the graders, `ged_modes_n<n>` against the known modes).
With several runs (seeds) in a folder, an image's value is its mean over the
runs. `python -m hpunet.compare` is the command.

Plain NumPy; the folders may be local or e.g. gs:// (etils.epath).
"""

import io
import json
import re
from typing import Any, NamedTuple, Optional, Sequence

from etils import epath
import numpy as np

from hpunet import errors
from hpunet import metrics as metrics_lib

PER_IMAGE_FILE = "per_image.npz"
# Per-image keys of GED^2 at n samples: (kind, n).
GED_AT_N = re.compile(r"(ged|ged_modes)_n(\d+)")
_KIND_LABELS = {"ged": "GED² (graders)", "ged_modes": "GED² (known modes)"}


class EvaluatedModel(NamedTuple):
  """One results folder of `hpunet.evaluate`."""
  path: str
  model: str  # `config.model.name`
  task: str
  split: str
  per_image: dict[str, np.ndarray]  # metric -> float64 [images], run mean
  image_ids: Optional[np.ndarray]  # str [images], or None


def load(results_dir: str) -> EvaluatedModel:
  """Reads `results.json` and `per_image.npz` of a results folder."""
  folder = epath.Path(results_dir)
  npz, meta = folder / PER_IMAGE_FILE, folder / "results.json"
  if not npz.is_file() or not meta.is_file():
    raise errors.UserError(
        f"{results_dir}: no {PER_IMAGE_FILE} and results.json there "
        "(expected the output folder of `python -m hpunet.evaluate`).")
  results = json.loads(meta.read_text())
  with np.load(io.BytesIO(npz.read_bytes()), allow_pickle=False) as data:
    arrays = {k: data[k] for k in data.files}
  ids = arrays.pop("image_id", None)
  per_image = {}
  for key, values in arrays.items():
    values = np.asarray(values, np.float64).reshape(-1, values.shape[-1])
    finite = np.isfinite(values)
    count = finite.sum(0)
    total = np.where(finite, values, 0.0).sum(0)
    per_image[key] = np.where(count > 0, total / np.maximum(count, 1),
                              np.nan)  # mean over runs, NaN where none
  return EvaluatedModel(str(results_dir), str(results.get("model")),
                        str(results.get("task")), str(results.get("split")),
                        per_image, ids)


def _paired(a: EvaluatedModel, b: EvaluatedModel, key: str):
  """The two models' values of `key` on their common images."""
  va, vb = a.per_image[key], b.per_image[key]
  if a.image_ids is None or b.image_ids is None:
    if va.size != vb.size:
      raise errors.UserError(
          f"{a.path} has {va.size} images and {b.path} {vb.size}, without "
          "image ids to pair them: evaluate both on the same split with the "
          "same --max_batches.")
    return va, vb
  index_b = {str(i): j for j, i in enumerate(b.image_ids)}
  rows = [(j, index_b[str(i)]) for j, i in enumerate(a.image_ids)
          if str(i) in index_b]
  if not rows:
    raise errors.UserError(f"{a.path} and {b.path} share no image (compare "
                           "models evaluated on the same split).")
  ja, jb = np.asarray(rows).T
  return va[ja], vb[jb]


def compared_metrics(a: EvaluatedModel, b: EvaluatedModel
                     ) -> list[tuple[str, int]]:
  """(GED kind, n) evaluated for both models, in the table's order."""
  found = []
  for key in set(a.per_image) & set(b.per_image):
    match = GED_AT_N.fullmatch(key)
    if match:
      found.append((match.group(1), int(match.group(2))))
  return sorted(found)


def compare(a: EvaluatedModel, b: EvaluatedModel, *,
            names: Sequence[str] = ("A", "B")) -> list[dict[str, Any]]:
  """The Wilcoxon signed-rank test of a vs b per GED kind and #samples.

  Returns:
    One row per (kind, n): `metric`, `num_samples`, `mean_a`, `mean_b`,
    the `metrics.WilcoxonResult` fields (differences are a - b; lower GED^2
    is better) and `better` (the better model's name, or "neither").
  """
  if a.task != b.task:
    raise errors.UserError(f"{a.path} is a {a.task!r} evaluation and {b.path} "
                           f"a {b.task!r} one: compare models of one task.")
  pairs = compared_metrics(a, b)
  if not pairs:
    raise errors.UserError(
        f"{a.path} and {b.path} have no GED² at a common number of samples "
        "(evaluate both with the same --ged_sample_counts, e.g. 1,4,8,16).")
  rows = []
  for kind, n in pairs:
    va, vb = _paired(a, b, f"{kind}_n{n}")
    result = metrics_lib.wilcoxon_signed_rank(va, vb, lower_is_better=True)
    keep = np.isfinite(va) & np.isfinite(vb)
    row = {"metric": kind, "num_samples": n,
           "mean_a": float(va[keep].mean()), "mean_b": float(vb[keep].mean())}
    row.update(result._asdict())
    row["better"] = {"a": names[0], "b": names[1]}.get(result.better,
                                                      "neither")
    rows.append(row)
  return rows


def markdown(rows: Sequence[dict[str, Any]], *, names: Sequence[str]) -> str:
  """The comparison as a Markdown table (one row per GED kind and n)."""
  a, b = names
  lines = [f"| metric | # samples | {a} | {b} | median {a} − {b} | W | p | "
           "images | better |", "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(
        f"| {_KIND_LABELS.get(r['metric'], r['metric'])} | "
        f"{r['num_samples']} | {r['mean_a']:.4f} | {r['mean_b']:.4f} | "
        f"{r['median_difference']:+.4f} | {r['statistic']:.1f} | "
        f"{r['p_value']:.3g} | {r['num_images']} | {r['better']} |")
  return "\n".join(lines) + "\n"


def write(out_dir: str, a: EvaluatedModel, b: EvaluatedModel,
          rows: Sequence[dict[str, Any]], names: Sequence[str]) -> str:
  """Writes comparison.json / comparison.md to `out_dir`; returns the table."""
  folder = epath.Path(out_dir)
  folder.mkdir(parents=True, exist_ok=True)
  table = markdown(rows, names=names)
  text = (f"{names[0]}: {a.model} ({a.path})\n\n{names[1]}: {b.model} "
          f"({b.path})\n\nWilcoxon signed-rank test (two-sided) of the "
          "per-image GED², paired by image; lower is better.\n\n" + table)
  (folder / "comparison.md").write_text(text)
  (folder / "comparison.json").write_text(json.dumps({
      "a": {"name": names[0], "path": a.path, "model": a.model},
      "b": {"name": names[1], "path": b.path, "model": b.model},
      "task": a.task, "split": a.split,
      "test": "Wilcoxon signed-rank, two-sided (scipy.stats.wilcoxon), "
              "paired by image; differences a - b",
      "rows": list(rows)}, indent=2))
  return text
