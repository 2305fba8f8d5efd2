# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Pictures of inputs, labels and samples: RGB arrays, grids, PNG files.

Plain NumPy (PNG files and column labels through PIL, the mode-frequency
plot through matplotlib, both imported when used; files written through
etils.epath, so paths may be local or e.g. gs://); shared by the training
summaries, `hpunet.evaluate`, `hpunet.sample` and the notebooks.
"""

import io
from typing import Optional, Sequence

from etils import epath
import numpy as np


# A fixed, distinguishable palette for class-id maps (index 0 = background).
_PALETTE = np.array([
    [0, 0, 0], [255, 255, 255], [230, 25, 75], [60, 180, 75], [255, 225, 25],
    [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240],
    [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128],
    [220, 190, 255], [170, 110, 40], [255, 250, 200], [128, 0, 0],
    [170, 255, 195], [128, 128, 0], [255, 215, 180], [0, 0, 128],
    [128, 128, 128], [0, 0, 255], [255, 0, 0], [0, 255, 0],
], np.uint8)


def label_to_rgb(labels: np.ndarray, num_classes: int) -> np.ndarray:
  """Class ids [..., H, W] -> uint8 RGB [..., H, W, 3].

  Binary maps show foreground white on black; more classes use a palette.
  """
  labels = np.asarray(labels).astype(np.int64)
  if num_classes <= 2:
    return np.repeat((labels > 0)[..., None].astype(np.uint8) * 255, 3, -1)
  return _PALETTE[np.mod(labels, len(_PALETTE))]


def image_to_rgb(images: np.ndarray) -> np.ndarray:
  """Float [..., H, W, C] in [0, 1] (C = 1 or 3) -> uint8 RGB."""
  images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
  if images.shape[-1] == 1:
    images = np.repeat(images, 3, -1)
  return (images[..., :3] * 255.0 + 0.5).astype(np.uint8)


def image_grid(columns: list[np.ndarray], pad: int = 2,
               labels: Optional[Sequence[str]] = None) -> np.ndarray:
  """Tiles RGB columns, each [N, H, W, 3], into one [1, H', W', 3] image.

  Row i shows example i; column j shows columns[j][i] (e.g. input, ground
  truth, reconstruction, prior samples). `labels`: one title per column,
  written in a strip above it (clipped to the column's width).
  """
  n, h, w, _ = columns[0].shape
  rows, cols = n, len(columns)
  grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 64,
                 np.uint8)
  for j, col in enumerate(columns):
    if col.shape != (n, h, w, 3):
      raise ValueError(f"image_grid: column {j} has shape {col.shape}, "
                       f"expected {(n, h, w, 3)}.")
    for i in range(rows):
      y, x = pad + i * (h + pad), pad + j * (w + pad)
      grid[y:y + h, x:x + w] = col[i]
  if labels is not None:
    if len(labels) != cols:
      raise ValueError(f"image_grid: {len(labels)} labels for {cols} "
                       "columns.")
    grid = np.concatenate([_label_strip(labels, w, pad, grid.shape[1]), grid])
  return grid[None]


_LABEL_HEIGHT = 12  # pixels of the strip of column labels


def _label_strip(labels, width, pad, total_width) -> np.ndarray:
  """uint8 [_LABEL_HEIGHT, total_width, 3]: white labels over the columns."""
  from PIL import Image, ImageDraw, ImageFont  # pylint: disable=g-import-not-at-top
  font = ImageFont.load_default(size=10)
  strip = np.full((_LABEL_HEIGHT, total_width, 3), 64, np.uint8)
  for j, label in enumerate(labels):
    cell = Image.new("RGB", (width, _LABEL_HEIGHT), (64, 64, 64))
    ImageDraw.Draw(cell).text((1, 0), str(label), fill=(255, 255, 255),
                              font=font)
    x = pad + j * (width + pad)
    strip[:, x:x + width] = np.asarray(cell)
  return strip


def gray(x: np.ndarray, vmax: Optional[float] = None) -> np.ndarray:
  """[..., H, W] in [0, vmax] -> uint8 RGB (vmax: the maximum if None)."""
  x = np.asarray(x, np.float32)
  vmax = float(np.nanmax(x)) if vmax is None else vmax
  x = np.clip(x / max(vmax, 1e-8), 0.0, 1.0)
  return np.repeat((255 * x)[..., None], 3, -1).astype(np.uint8)


def samples_grid(image, gt, rec, samples, num_classes: int,
                 max_samples: int = 8) -> np.ndarray:
  """Rows = images: input | ground truth | reconstruction | samples.

  samples: [B, S, H, W] class ids; rec None (models without a posterior)
  leaves out the reconstruction column.
  """
  cols = [image_to_rgb(image), label_to_rgb(gt, num_classes)]
  labels = ["image", "gt"]
  if rec is not None:
    cols.append(label_to_rgb(rec, num_classes))
    labels.append("rec")
  num_shown = min(max_samples, samples.shape[1])
  cols += [label_to_rgb(samples[:, s], num_classes) for s in range(num_shown)]
  return image_grid(cols, labels=labels + [f"s{s}" for s in range(num_shown)])


def save_png(path: str, rgb: np.ndarray) -> None:
  """Writes uint8 RGB [H, W, 3] (or a [1, H, W, 3] grid) as a PNG."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rgb = np.asarray(rgb, np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(rgb[0] if rgb.ndim == 4 else rgb).save(buffer, format="PNG")
  write_bytes(path, buffer.getvalue())


def write_bytes(path, data: bytes) -> None:
  """Writes `data` to `path` (local or e.g. gs://), making its folder."""
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(data)


def mode_frequency_plot(path: str, expected, predicted,
                        total_variation: float, title: str) -> None:
  """Predicted mode frequency against the true mode probability (PNG)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  expected, predicted = np.asarray(expected), np.asarray(predicted)
  fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
  top = max(float(expected.max()), float(predicted.max())) * 1.1
  ax.plot([0, top], [0, top], color="0.6", lw=1, ls="--")
  ax.scatter(expected, predicted, s=18)
  ax.set_xlabel("ground-truth mode probability")
  ax.set_ylabel("predicted mode frequency")
  ax.set_title(f"{title}\nTV = {total_variation:.3f}", fontsize=9)
  ax.set_xlim(0, top)
  ax.set_ylim(0, top)
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png")
  plt.close(fig)
  write_bytes(path, buffer.getvalue())
