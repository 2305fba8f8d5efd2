# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Samples segmentations of one's own image from a trained model.

  python -m hpunet.sample --workdir=<trained workdir> --image=<file.png|.npy> \
      [--num_samples=16] [--mean_levels=full|only_most_global|only_most_local|1,1,1,0] \
      [--center_crop] [--seed=0] --out=<dir>

The model's config is read from `<workdir>/config.json` (written by
`hpunet.train`; `--config` overrides it) and its parameters from the latest
checkpoint. `--workdir`, `--image` and `--out` may be local or e.g. `gs://`
paths; library INFO lines are hidden unless `--verbosity` is given. Writes to
`--out`:

- `samples.npy` (int32 [S, H, W] argmax labels) and `samples/sample_XX.png`;
- `probabilities.npy` (float32 [S, H, W, K] softmax of each sample);
- `grid.png` (input | samples) and `std.png` (per-pixel std over samples of
  P(foreground), white = 0.5);
- for instance tasks (SNEMI3D, Cityscapes cars): `instances.npy` and
  `instances.png`, the Hamming-clustered instance map (HPU-Net Algorithm 1 +
  Appendix H).

The image must have the network's input size and channel count (e.g.
128x128x1 for LIDC); `--center_crop` crops a larger image (a 180x180 LIDC
tile) to it. PNGs are scaled to [0, 1] by their dtype's maximum, `.npy`
arrays must already be in [0, 1] (floats) or uint8.
"""

import io
import sys
import types
from typing import Any, Optional, Sequence, Union

from absl import app
from absl import flags
from absl import logging
from etils import epath
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np

from hpunet import cli
from hpunet import clustering
from hpunet import config_lib
from hpunet import errors
from hpunet import evaluation
from hpunet import images
from hpunet import networks as networks_lib
from hpunet import tasks as tasks_lib
from hpunet import train as train_lib
from hpunet import validation


def load_image(path: str) -> np.ndarray:
  """A PNG or .npy image (local or e.g. gs://): float32 [H, W, C] in [0, 1]."""
  if not epath.Path(path).exists():
    raise FileNotFoundError(f"Image {path} not found.")
  data = io.BytesIO(epath.Path(path).read_bytes())
  if str(path).endswith(".npy"):
    image = np.load(data)
    if image.dtype == np.uint8:
      image = image.astype(np.float32) / 255.0
    image = validation.check_image(np.asarray(image, np.float32), path)
  else:
    from PIL import Image  # pylint: disable=g-import-not-at-top
    with Image.open(data) as im:
      raw = np.asarray(im)
    if raw.dtype == np.bool_:
      raw = raw.astype(np.uint8) * 255
    if not np.issubdtype(raw.dtype, np.integer):
      raise ValueError(f"{path}: expected an integer PNG, got {raw.dtype}.")
    image = raw.astype(np.float32) / float(np.iinfo(raw.dtype).max)
  if image.ndim == 2:
    image = image[..., None]
  if image.ndim != 3:
    raise ValueError(f"{path}: expected an [H, W] or [H, W, C] image, got "
                     f"shape {image.shape}.")
  return image


def fit_image(image: np.ndarray, height: int, width: int, channels: int, *,
              center_crop: bool = False, source: str = "image") -> np.ndarray:
  """Checks (or centre-crops) `image` to the network input [H, W, C]."""
  if image.shape[-1] != channels:
    if image.shape[-1] == 4 and channels == 3:  # RGBA PNG: drop alpha
      image = image[..., :3]
    elif image.shape[-1] == 3 and channels == 1 and np.allclose(
        image[..., :1], image):  # grey stored as RGB
      image = image[..., :1]
    else:
      raise errors.UserError(f"{source} has {image.shape[-1]} channels; the "
                             f"model expects {channels}.")
  h, w = image.shape[:2]
  if (h, w) == (height, width):
    return image
  if center_crop and h >= height and w >= width:
    top, left = (h - height) // 2, (w - width) // 2
    return image[top:top + height, left:left + width]
  raise errors.UserError(
      f"{source} is {h}x{w}; the model expects {height}x{width} "
      "(config.input.crop_size)" + ("" if center_crop else
                                    "; pass --center_crop to crop a larger "
                                    "image") + ".")


def parse_mean_levels(value: Union[str, Sequence[int], bool, None],
                      latent_dims: Sequence[int]) -> Any:
  """'full' | 'only_most_global' | 'only_most_local' | '1,1,1,0' -> flags.

  `latent_dims`: the model's per-level latent sizes (`networks.latent_dims`);
  "most global" / "most local" are the outermost levels that have latents.
  """
  num_levels = len(latent_dims)
  if value in (None, "", "full", False):
    return False
  if isinstance(value, str):
    modes = evaluation.per_scale_modes(latent_dims)
    if value in modes:
      return modes[value]
    if (value in ("only_most_global", "only_most_local") and
        any(int(d) > 0 for d in latent_dims)):
      return False  # one sampling level: it is the most global and local one
    try:
      value = [int(v) for v in value.split(",")]
    except ValueError:
      raise errors.UserError(
          f"--mean_levels={value!r}: expected one of {sorted(modes)} or "
          f"{num_levels} comma-separated 0/1 flags (coarse -> fine).") from None
  flags_ = tuple(bool(v) for v in value)
  if len(flags_) != num_levels:
    raise errors.UserError(
        f"--mean_levels has {len(flags_)} flags; the model has "
        f"{num_levels} latent levels (coarse -> fine).")
  return flags_


def sample_image(config: ml_collections.ConfigDict, workdir: str,
                 image: np.ndarray, *, num_samples: int = 16,
                 mean_levels: Any = None, seed: int = 0,
                 center_crop: bool = False) -> dict[str, np.ndarray]:
  """Samples for one image [H, W, C] in [0, 1]; see the module docstring."""
  validation.check_int(num_samples, "num_samples", what="samples to draw")
  _, height, width, channels = train_lib.network_input_shape(config)
  image = fit_image(image, height, width, channels, center_crop=center_crop)
  networks = networks_lib.make_networks(config.model)
  mean = parse_mean_levels(mean_levels, networks.latent_dims)
  params, _ = train_lib.restore_params(config, workdir)

  @jax.jit
  def fn(params, rng, img):
    logits = networks.sample_n(params["model"], rng, img,
                               num_samples=num_samples, mean=mean)
    return jax.nn.softmax(logits[:, 0].astype(jnp.float32), -1)

  probs = np.asarray(fn(params, jax.random.key(seed),
                        jnp.asarray(image[None], jnp.float32)))
  out = {"image": image, "probabilities": probs,
         "samples": probs.argmax(-1).astype(np.int32)}
  task = (tasks_lib.for_input(config.input)
          if config.input.get("name") in tasks_lib.TASKS else None)
  foreground = task.foreground if task else tuple(
      range(1, networks.num_classes))
  out["std"] = probs[..., list(foreground)].sum(-1).std(0)
  if task is not None and task.alpha is not None:
    out["instances"] = clustering.instance_segmentation(
        out["samples"], alpha=task.alpha, seed=seed,
        instance_ids=task.instance_ids,
        empty_neighbourhood=task.empty_neighbourhood).astype(np.int32)
  return out


def write_outputs(out: dict[str, np.ndarray], out_dir: str,
                  num_classes: int) -> list[str]:
  """Writes the files listed in the module docstring; returns their paths.

  `out_dir` may be local or on another filesystem such as gs://.
  """
  out_dir = epath.Path(out_dir)
  (out_dir / "samples").mkdir(parents=True, exist_ok=True)
  written = []

  def save_png(name, rgb):
    path = out_dir / name
    images.save_png(path, rgb)
    written.append(str(path))

  for name in ("samples", "probabilities", "instances"):
    if name in out:
      path = out_dir / f"{name}.npy"
      buffer = io.BytesIO()
      np.save(buffer, out[name])
      path.write_bytes(buffer.getvalue())
      written.append(str(path))
  sample_rgb = images.label_to_rgb(out["samples"], num_classes)
  for s, rgb in enumerate(sample_rgb):
    save_png(f"samples/sample_{s:02d}.png", rgb)
  image_rgb = images.image_to_rgb(out["image"])
  cols = [image_rgb[None]] + [rgb[None] for rgb in sample_rgb]
  save_png("grid.png", images.image_grid(
      cols, labels=["image"] + [f"s{s}" for s in range(len(sample_rgb))])[0])
  std = np.clip(out["std"] / 0.5, 0.0, 1.0)
  save_png("std.png", np.repeat((255 * std)[..., None], 3, -1))
  if "instances" in out:
    save_png("instances.png", images.label_to_rgb(
        out["instances"] % 24, 24))
  return written


def _define_flags(fv: flags.FlagValues = flags.FLAGS
                  ) -> types.SimpleNamespace:
  """Flags exist only when run as a program: importing defines none."""
  return types.SimpleNamespace(
      workdir=flags.DEFINE_string("workdir", None, "Trained workdir.",
                                  flag_values=fv),
      image=flags.DEFINE_string("image", None, "Input image (.png or .npy).",
                                flag_values=fv),
      out=flags.DEFINE_string("out", None, "Output folder.", flag_values=fv),
      num_samples=flags.DEFINE_integer("num_samples", 16, "Samples to draw.",
                                       flag_values=fv),
      mean_levels=flags.DEFINE_string(
          "mean_levels", "full", "full | only_most_global | only_most_local, "
          "or one 0/1 flag per latent level, coarse -> fine (1 = use the "
          "conditional prior mean).", flag_values=fv),
      center_crop=flags.DEFINE_bool(
          "center_crop", False, "Centre-crop a larger image to the model's "
          "input size.", flag_values=fv),
      seed=flags.DEFINE_integer("seed", 0, "Sampling seed.", flag_values=fv),
      config=config_flags.DEFINE_config_file(
          "config", None, "Override the workdir's config.json.",
          lock_config=True, flag_values=fv),
  )


def main(argv, f: types.SimpleNamespace):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  for name in ("workdir", "image", "out"):
    if not getattr(f, name).value:
      raise app.UsageError(f"--{name} is required.")
  # Reliability hook (issue 16): every flag and the image checked first.
  validation.check_sample(f.workdir.value, f.image.value, f.out.value,
                          num_samples=f.num_samples.value)
  # Library INFO lines (orbax, absl) are noise here; --verbosity=0 shows them.
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  config: Optional[ml_collections.ConfigDict] = f.config.value
  if config is None:
    try:
      config = config_lib.load_workdir_config(f.workdir.value)
    except (OSError, ValueError) as e:
      raise errors.UserError(f"--workdir={f.workdir.value}: {e}") from None
  validation.check_model(config)
  try:
    image = load_image(f.image.value)
  except errors.UserError:
    raise
  except (OSError, ValueError) as e:  # unreadable PNG / .npy
    raise errors.UserError(f"--image={f.image.value}: {e}") from None
  out = sample_image(config, f.workdir.value, image,
                     num_samples=f.num_samples.value,
                     mean_levels=f.mean_levels.value, seed=f.seed.value,
                     center_crop=f.center_crop.value)
  written = write_outputs(out, f.out.value, int(config.model.num_classes))
  print("\n".join(written))


if __name__ == "__main__":
  sys.argv = config_lib.resolve_config_flags(sys.argv)
  cli.run(main, _define_flags)
