# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Stateless data augmentation in TensorFlow: one sampling grid per example.

Every draw comes from a stateless Philox seed, so an example's augmentation
is a function of (seed, step, position) only (see `input_pipeline`).

- `augment_off()`: the `input_config.augment` settings with everything off
  (the warp is then the identity / the deterministic centre crop);
  `settings(augment_config)` validates a config's section against it.
- `sampling_grid(seed, src_hw, out_hw, aug)`: the source coordinates of every
  output pixel (crop window, translation, mirroring, elastic field,
  rotation, shear, zoom composed into one map).
- `warp_nearest` (labels, with the validity mask) and `warp_bilinear`
  (images) resample with that grid.
- `to_float_with_colour(image, seed, aug)`: uint8 -> [0, 1] float with the
  colour augmentation (brightness, contrast, gamma, saturation).

The keys of `augment` are documented in `input_pipeline`'s docstring.
"""

import math
from typing import Any, Optional

import ml_collections
import tensorflow as tf

ALG = "philox"


def augment_off() -> ml_collections.ConfigDict:
  """An `augment` config with every augmentation disabled (identity warp)."""
  return ml_collections.ConfigDict({
      "mirror": False,
      "rotation_deg": 0.0,
      "shear_deg": 0.0,
      "scale_range": (1.0, 1.0),
      "elastic_max_px": 0.0,
      "elastic_spacing_px": 32.0,
      "random_crop": False,
      "translate_px": 0.0,
      "brightness": 0.0,
      "contrast": 0.0,
      "saturation": 0.0,
      "gamma_range": (1.0, 1.0),
      "gamma_prob": 0.0,
      "image_interpolation": "bilinear",
  })


def settings(given: Optional[Any]) -> ml_collections.ConfigDict:
  """`augment_off()` updated with `given`; checks keys and values.

  Raises:
    ValueError: naming the `input_config.augment` field.
  """
  aug = augment_off()
  if given is not None:
    unknown = set(given.keys()) - set(aug.keys())
    if unknown:
      raise ValueError(
          f"input_config.augment has unknown keys {sorted(unknown)};"
          f" known: {sorted(aug.keys())}.")
    aug.update(given)
  lo, hi = (float(v) for v in aug.scale_range)
  if not 0 < lo <= hi:
    raise ValueError(
        f"input_config.augment.scale_range={aug.scale_range!r}; expected"
        " 0 < lo <= hi.")
  if aug.image_interpolation not in ("bilinear", "nearest"):
    raise ValueError(
        "input_config.augment.image_interpolation="
        f"{aug.image_interpolation!r}; expected 'bilinear' or 'nearest'.")
  if float(aug.elastic_spacing_px) <= 0:
    raise ValueError("input_config.augment.elastic_spacing_px must be > 0.")
  return aug


def uniform(seed, shape=(), lo=0.0, hi=1.0) -> tf.Tensor:
  return tf.random.stateless_uniform(shape, seed, minval=lo, maxval=hi,
                                     alg=ALG)


def sampling_grid(seed, src_hw, out_hw, aug):
  """Source coordinates (ys, xs) float32 [h, w] of every output pixel.

  Output pixel u (centred coordinates) samples the source at
  `A (mirror(u) + elastic(u)) + centre`, A = rotation . shear / zoom, and
  centre = the crop window's centre plus the random translation. With all
  augmentation off this is the centre crop, with integer coordinates.
  """
  (big_h, big_w), (h, w) = src_hw, out_hw
  k = tf.unstack(tf.random.experimental.stateless_split(seed, 7, ALG))
  uy = tf.range(h, dtype=tf.float32) - (h - 1) / 2
  ux = tf.range(w, dtype=tf.float32) - (w - 1) / 2
  uy, ux = tf.meshgrid(uy, ux, indexing="ij")
  if aug.mirror:
    ux = tf.where(uniform(k[0]) < 0.5, -ux, ux)
  if float(aug.elastic_max_px) > 0:
    spacing = float(aug.elastic_spacing_px)
    gh, gw = (max(2, int(math.ceil(n / spacing)) + 1) for n in (h, w))
    amp = uniform(k[1]) * float(aug.elastic_max_px)
    grid = tf.random.stateless_normal((gh, gw, 2), k[6], alg=ALG)
    field = tf.image.resize(grid * amp, (h, w), method="bicubic")
    uy, ux = uy + field[..., 0], ux + field[..., 1]
  angle = uniform(k[2], (), -1.0, 1.0) * math.radians(
      float(aug.rotation_deg))
  shear = tf.tan(uniform(k[3], (), -1.0, 1.0) * math.radians(
      float(aug.shear_deg)))
  lo, hi = (math.log(float(v)) for v in aug.scale_range)
  inv_zoom = tf.exp(-uniform(k[4], (), lo, hi)) if hi > lo else tf.constant(
      math.exp(-lo))
  cos, sin = tf.cos(angle), tf.sin(angle)
  # Shear x by y, then rotate, then zoom.
  sx = ux + shear * uy
  ry = cos * uy - sin * sx
  rx = sin * uy + cos * sx
  ty = tf.constant(0.0)
  tx = tf.constant(0.0)
  my = float(aug.translate_px) + ((big_h - h) / 2 if aug.random_crop else 0)
  mx = float(aug.translate_px) + ((big_w - w) / 2 if aug.random_crop else 0)
  ts = uniform(k[5], (2,), -1.0, 1.0)
  if my > 0:
    ty = ts[0] * my
  if mx > 0:
    tx = ts[1] * mx
  cy = (big_h - h) // 2 + (h - 1) / 2 + ty
  cx = (big_w - w) // 2 + (w - 1) / 2 + tx
  return ry * inv_zoom + cy, rx * inv_zoom + cx


def warp_nearest(x: tf.Tensor, ys, xs):
  """Nearest-neighbour resampling of int32 x [H, W, L]; zero outside.

  A ones channel is pushed through the same warp with a zero border; it is
  the validity mask (False where the warp sampled outside the image).

  Returns:
    (values int32 [h, w, L], valid bool [h, w]).
  """
  big_h, big_w, num = x.shape
  x = tf.concat([x, tf.ones_like(x[..., :1])], axis=-1)
  x = tf.pad(x, [[1, 1], [1, 1], [0, 0]])                 # zero border
  yi = tf.clip_by_value(tf.cast(tf.floor(ys + 0.5), tf.int32) + 1, 0,
                        big_h + 1)
  xi = tf.clip_by_value(tf.cast(tf.floor(xs + 0.5), tf.int32) + 1, 0,
                        big_w + 1)
  out = tf.gather(tf.reshape(x, [-1, num + 1]), yi * (big_w + 2) + xi)
  return out[..., :num], out[..., num] > 0


def warp_bilinear(x: tf.Tensor, ys, xs) -> tf.Tensor:
  """Bilinear resampling of float x [H, W, C]; zero outside the image.

  One gather per output pixel: the image is zero-padded by 2 and its 2 x 2
  neighbourhoods are laid out as [H + 3, W + 3, 4 C] first; coordinates
  further outside are clipped onto the zero padding.
  """
  big_h, big_w, c = x.shape
  h, w = ys.shape
  p = tf.pad(x, [[2, 2], [2, 2], [0, 0]])
  cells = tf.concat([p[:-1, :-1], p[:-1, 1:], p[1:, :-1], p[1:, 1:]], -1)
  y0, x0 = tf.floor(ys), tf.floor(xs)
  fy, fx = (ys - y0)[..., None], (xs - x0)[..., None]
  yi = tf.clip_by_value(tf.cast(y0, tf.int32) + 2, 0, big_h + 2)
  xi = tf.clip_by_value(tf.cast(x0, tf.int32) + 2, 0, big_w + 2)
  v = tf.gather(tf.reshape(cells, [-1, 4 * c]), yi * (big_w + 3) + xi)
  v = tf.reshape(v, [h, w, 4, c])
  top = v[:, :, 0] + fx * (v[:, :, 1] - v[:, :, 0])
  bottom = v[:, :, 2] + fx * (v[:, :, 3] - v[:, :, 2])
  return top + fy * (bottom - top)


def to_float_with_colour(image: tf.Tensor, seed, aug) -> tf.Tensor:
  """uint8 [H, W, C] -> float32 in [0, 1], with colour augmentation.

  Brightness (x + b), contrast (m + (x - m) c, m the image mean) and gamma
  (x^g with probability p) act per value, so they are folded into one
  256-entry lookup table, clipped to [0, 1] before the gamma (one gather per
  pixel instead of a `pow`); saturation (RGB only) then mixes the channels
  with the luma and clips again. All off -> x / 255.
  """
  k = tf.unstack(tf.random.experimental.stateless_split(seed, 5, ALG))
  lut = tf.range(256, dtype=tf.float32) / 255.0
  changed = False
  shift = 0.0
  if float(aug.brightness) > 0:
    b = float(aug.brightness)
    shift = uniform(k[0], (), -b, b)
    lut = lut + shift
    changed = True
  if float(aug.contrast) > 0:
    c = float(aug.contrast)
    mean = tf.reduce_mean(tf.cast(image, tf.float32)) / 255.0 + shift
    lut = mean + (lut - mean) * uniform(k[1], (), 1 - c, 1 + c)
    changed = True
  lut = tf.clip_by_value(lut, 0.0, 1.0)
  lo, hi = (float(v) for v in aug.gamma_range)
  if float(aug.gamma_prob) > 0 and (lo, hi) != (1.0, 1.0):
    gamma = uniform(k[3], (), lo, hi)
    apply = uniform(k[4]) < float(aug.gamma_prob)
    lut = tf.where(apply, tf.pow(lut, gamma), lut)
    changed = True
  if changed:
    out = tf.gather(lut, tf.cast(image, tf.int32))
  else:
    out = tf.cast(image, tf.float32) / 255.0
  if float(aug.saturation) > 0 and image.shape[-1] == 3:
    sat = float(aug.saturation)
    luma = tf.reduce_sum(out * tf.constant([0.299, 0.587, 0.114]), -1,
                         keepdims=True)
    out = luma + (out - luma) * uniform(k[2], (), 1 - sat, 1 + sat)
    out = tf.clip_by_value(out, 0.0, 1.0)
  return out
