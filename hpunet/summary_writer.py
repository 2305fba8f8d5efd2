# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""TensorBoard event files plus a JSON-lines metrics file.

`SummaryWriter(workdir)` writes
- TensorBoard events under `<workdir>/tensorboard/` with the low-level
  `tf.summary.write` (the only TensorFlow use outside the data code; imported
  lazily on first write, so importing this module, and a run with
  `tensorboard=False`, never loads TensorFlow). The high-level
  `tf.summary.scalar/image/text` delegate to the `tensorboard` package, which
  is not a dependency; this module writes the same records itself: the
  `scalars` / `images` / `text` plugin metadata with the matching data class,
  images as TensorBoard's [width, height, png...] string tensors;
- `<workdir>/metrics.jsonl`: one JSON object per write, `{"step": s, ...}`,
  easy to read back in tests and notebooks.

Only process 0 writes (`enabled=jax.process_index() == 0` by the caller).
Image helpers (`label_to_rgb`, `image_grid`) are plain NumPy.
"""

import json
import os
from typing import Any, Mapping

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


def image_grid(columns: list[np.ndarray], pad: int = 2) -> np.ndarray:
  """Tiles RGB columns, each [N, H, W, 3], into one [1, H', W', 3] image.

  Row i shows example i; column j shows columns[j][i] (e.g. input, ground
  truth, reconstruction, prior samples).
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
  return grid[None]


def _to_python(value: Any) -> Any:
  value = np.asarray(value)
  if value.ndim == 0:
    value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
      return str(value)  # JSON has no NaN/inf.
    return value
  return value.tolist()


class SummaryWriter:
  """Scalars and images to TensorBoard events and `metrics.jsonl`."""

  def __init__(self, workdir: str, *, enabled: bool = True,
               tensorboard: bool = True):
    self._enabled = enabled
    self._tensorboard = tensorboard
    self._logdir = os.path.join(workdir, "tensorboard")
    self._jsonl_path = os.path.join(workdir, "metrics.jsonl")
    self._tf = None
    self._writer = None
    self._jsonl = None
    if enabled:
      epath.Path(workdir).mkdir(parents=True, exist_ok=True)
      # epath: also gs:// workdirs (TPU pods).
      self._jsonl = epath.Path(self._jsonl_path).open("a")

  @property
  def jsonl_path(self) -> str:
    return self._jsonl_path

  def _tf_writer(self):
    if self._writer is None:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      tf.config.set_visible_devices([], "GPU")  # Keep TF off accelerators.
      self._tf = tf
      self._writer = tf.summary.create_file_writer(self._logdir)
    return self._tf, self._writer

  def _write(self, step: int, tag: str, tensor, plugin: str,
             data_class: int) -> None:
    from tensorflow.core.framework import summary_pb2  # pylint: disable=g-import-not-at-top
    tf, writer = self._tf_writer()
    metadata = summary_pb2.SummaryMetadata(data_class=data_class)
    metadata.plugin_data.plugin_name = plugin
    with writer.as_default():
      tf.summary.write(tag, tensor, step=int(step),
                       metadata=metadata.SerializeToString())

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    if not self._enabled:
      return
    record = {"step": int(step)}
    record.update({k: _to_python(v) for k, v in scalars.items()})
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    if self._tensorboard:
      from tensorflow.core.framework import summary_pb2  # pylint: disable=g-import-not-at-top
      for key, value in scalars.items():
        self._write(step, key, np.float32(np.asarray(value)), "scalars",
                    summary_pb2.DATA_CLASS_SCALAR)

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """images: name -> uint8 [N, H, W, 3] (or float in [0, 1])."""
    if not self._enabled or not self._tensorboard:
      return
    from tensorflow.core.framework import summary_pb2  # pylint: disable=g-import-not-at-top
    tf, _ = self._tf_writer()
    for key, value in images.items():
      value = np.asarray(value)
      if value.dtype != np.uint8:
        value = image_to_rgb(value)
      h, w = value.shape[1:3]
      pngs = [tf.io.encode_png(v).numpy() for v in value]
      tensor = np.array([str(w).encode(), str(h).encode()] + pngs,
                        dtype=object)
      self._write(step, key, tf.constant(tensor, tf.string), "images",
                  summary_pb2.DATA_CLASS_BLOB_SEQUENCE)

  def write_text(self, step: int, name: str, text: str) -> None:
    if not self._enabled or not self._tensorboard:
      return
    from tensorflow.core.framework import summary_pb2  # pylint: disable=g-import-not-at-top
    tf, _ = self._tf_writer()
    self._write(step, name, tf.constant(text, tf.string), "text",
                summary_pb2.DATA_CLASS_TENSOR)

  def flush(self) -> None:
    if self._writer is not None:
      self._writer.flush()
    if self._jsonl is not None:
      self._jsonl.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.flush()
      self._writer.close()
      self._writer = None
    if self._jsonl is not None:
      self._jsonl.close()
      self._jsonl = None


def read_jsonl(path: str) -> list[dict[str, Any]]:
  """Reads back a `metrics.jsonl` file."""
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]
