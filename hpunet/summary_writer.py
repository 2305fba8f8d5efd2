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
  easy to read back in tests and notebooks. A resumed run first drops the
  lines a killed run wrote after its last checkpoint
  (`drop_records_after`), so no step appears twice.

Only process 0 writes (`enabled=jax.process_index() == 0` by the caller).
Images are made by `hpunet.images`.
"""

import json
import os
from typing import Any, Mapping

from etils import epath
import numpy as np

from hpunet import images


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
        value = images.image_to_rgb(value)
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


def drop_records_after(path: str, step: int) -> int:
  """Removes the `metrics.jsonl` lines of steps > `step`; returns how many.

  The file is rewritten through a temporary file and a rename, so a crash
  leaves either the old or the new content. A torn last line (a kill during
  a write) is dropped too.
  """
  path = epath.Path(path)
  if not path.exists():
    return 0
  kept, dropped = [], 0
  for line in path.read_text().splitlines():
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      dropped += 1
      continue
    if int(record.get("step", 0)) > step:
      dropped += 1
    else:
      kept.append(line)
  if dropped:
    tmp = path.parent / (path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    tmp.replace(path)
  return dropped
