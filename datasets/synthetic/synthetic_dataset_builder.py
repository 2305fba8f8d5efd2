# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Synthetic ambiguous segmentation with an exactly known label distribution.

The built-in default dataset of `hpunet`: generated locally in seconds, no
download, no manual data. Every example is a grey-scale image whose correct
segmentation is ambiguous at three scales at once, and whose ground-truth
distribution over segmentations is known *exactly* and stored with it.

Scene (S = image size; radii scale with S):

- 3 faint spots: small discs (radius max(1.5, S/40)), +0.10 above the
  background. Annotated all together with p = 1/2 (global factor `g`).
- 2 ambiguous blobs: irregular blobs (radius U(S/16, S/10)) at brightness
  level 0, 1 or 2. Each is annotated independently with p = 0.2 / 0.5 / 0.8
  by level; if annotated, its outline is thin (as drawn) with p = 0.6 or
  thick (dilated by d = max(1, round(S/64)) px) with p = 0.4.
- 1 certain blob, the brightest: always annotated, thin.
- 1 distractor blob, darker than the background: never annotated.

- `g` is an image-global factor: whether the faint spots, spread over the whole
  image, are annotated at all. One grader marks all of them or none.
- The two ambiguous blobs vary independently of each other in the same image,
  which a single global latent cannot represent with one code per mode.
- The thin/thick outline is a local boundary variant (a 1-2 px ring).

**Modes.** Every example has exactly `M = 18` modes,
`mode = 9 * g + 3 * s1 + s2` with `g` in {0, 1} (spots annotated) and, for
ambiguous blob k (ordered by position in the image: top-left first by
(row, column) of its centre), `s_k` in {0: not annotated, 1: thin, 2: thick}.
`mode_probs[mode] = P(g) P(s1) P(s2)` with `P(g = 1) = 1/2`,
`P(s = 0) = 1 - p_k`, `P(s = 1) = 0.6 p_k`, `P(s = 2) = 0.4 p_k` and
`p_k = (0.2, 0.5, 0.8)[level_k]`. The certain blob is in every mode; the
distractor in none. All 18 masks are distinct.

**Graders.** `masks[..., j]` (j = 0..3) are four i.i.d. draws from the mode
distribution, as if four graders had annotated the image (like LIDC).

**Image.** Background 0.25 plus a random linear gradient (+-0.05); blobs at
0.45 / 0.60 / 0.75 (ambiguous levels 0 / 1 / 2), 0.95 (certain), 0.08
(distractor); spots at +0.10; Gaussian blur (sigma 0.7 px), Gaussian noise
(sigma 0.05), clipped to [0, 1] and stored as uint8.

**Determinism.** Example `i` of split `s` is generated from
`numpy.random.SeedSequence([seed, split_index(s), i])`, so it does not depend
on generation order, worker count or the other splits.

Configs (`synthetic/<name>`): `s128` (default; 128 x 128, 2000 / 200 / 200),
`s64` (64 x 64, 2000 / 200 / 200), `s32` (32 x 32, 512 / 64 / 64; tiny, for
tests and CPU smoke runs), `s128_visible` (`s128` with the spots at +0.30
instead of +0.10: the same examples, annotations and modes, only the spots
brighter; a control experiment, see the README's results). Generating
`s128` takes about 10 s on one core.

Build (no manual data needed):

  python -m hpunet.build_dataset synthetic/s128 --data_dir=~/tensorflow_datasets

`hpunet.input_pipeline` also prepares it on first use.
"""

import dataclasses
import math
from typing import Any, Dict, Iterator, Tuple

import numpy as np
from scipy import ndimage
import tensorflow_datasets as tfds

NUM_GRADERS = 4
NUM_MODES = 18
SPLITS = ("train", "validation", "test")

# Annotation probabilities (the exact ground-truth distribution).
P_SPOTS = 0.5                      # global factor g
P_PRESENT = (0.2, 0.5, 0.8)        # ambiguous blob annotated, by level
P_THICK = 0.4                      # thick outline given annotated

# Intensities in [0, 1].
_BACKGROUND = 0.25
LEVEL_INTENSITY = (0.45, 0.60, 0.75)
_CERTAIN_INTENSITY = 0.95
_DISTRACTOR_INTENSITY = 0.08
_SPOT_CONTRAST = 0.10
_NOISE_STD = 0.05
_BLUR_SIGMA = 0.7


@dataclasses.dataclass
class SyntheticConfig(tfds.core.BuilderConfig):
  """Image size, split sizes and seed of one synthetic variant."""
  size: int = 128
  num_train: int = 2000
  num_validation: int = 200
  num_test: int = 200
  seed: int = 0
  spot_contrast: float = 0.10  # the spots' brightness above the background


def mode_probabilities(levels) -> np.ndarray:
  """Exact probabilities of the 18 modes for ambiguous-blob `levels`.

  Args:
    levels: two ints in {0, 1, 2}, the brightness levels of the two ambiguous
      blobs (in mode order).

  Returns:
    float64 [18], indexed by `9 * g + 3 * s1 + s2`, summing to 1.
  """
  per_blob = []
  for level in levels:
    p = P_PRESENT[level]
    per_blob.append(np.array([1.0 - p, (1.0 - P_THICK) * p, P_THICK * p]))
  p_g = np.array([1.0 - P_SPOTS, P_SPOTS])
  probs = (p_g[:, None, None] * per_blob[0][None, :, None]
           * per_blob[1][None, None, :])
  return probs.reshape(-1)


def _disk(radius: int) -> np.ndarray:
  r = np.arange(-radius, radius + 1)
  return (r[:, None] ** 2 + r[None, :] ** 2) <= radius ** 2 + 0.5


def _blob_mask(size, centre, radius, harmonics) -> np.ndarray:
  """Star-shaped blob: |x - c| <= r(theta), r with low harmonics."""
  reach = radius * (1.0 + sum(a for _, a, _ in harmonics)) + 1.0
  y0, x0 = (max(0, int(np.floor(c - reach))) for c in centre)
  y1, x1 = (min(size, int(np.ceil(c + reach)) + 1) for c in centre)
  yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
  dy, dx = yy - centre[0], xx - centre[1]
  theta = np.arctan2(dy, dx)
  r = np.full_like(theta, radius)
  for k, amplitude, phase in harmonics:
    r = r + radius * amplitude * np.cos(k * theta + phase)
  mask = np.zeros((size, size), bool)
  mask[y0:y1, x0:x1] = (dy ** 2 + dx ** 2) <= r ** 2
  return mask


def _place(rng, size, radii, gap, margin, candidates=64, restarts=200):
  """Non-overlapping centres for circles of `radii` (rejection sampling)."""
  radii = np.asarray(radii, np.float64)
  for _ in range(restarts):
    centres = np.zeros((0, 2))
    for i, r in enumerate(radii):
      lo, hi = r + margin, size - 1 - r - margin
      cand = rng.uniform(lo, hi, size=(candidates, 2))
      dist = np.linalg.norm(cand[:, None] - centres[None], axis=-1)
      ok = np.all(dist >= r + radii[None, :i] + gap, axis=1)
      if not ok.any():
        break
      centres = np.concatenate([centres, cand[np.argmax(ok)][None]])
    if len(centres) == len(radii):
      return list(centres)
  raise RuntimeError(f"Could not place {len(radii)} objects in {size}x{size}.")


def dilation_radius(size: int) -> int:
  """Thick outlines are dilated by this many pixels (2 at 128, 1 at <= 64)."""
  return max(1, int(round(size / 64)))


def generate_example(size: int, seed_sequence,
                     spot_contrast: float = _SPOT_CONTRAST) -> Dict[str, Any]:
  """Generates one example.

  Args:
    size: image side S.
    seed_sequence: a `numpy.random.SeedSequence` (or anything
      `np.random.default_rng` accepts); the example is a function of it.
    spot_contrast: the spots' brightness above the background. It changes
      the image only: the random draws, and so the masks, modes and
      probabilities, are those of the default contrast.

  Returns:
    dict with `image` uint8 [S, S, 1], `masks` uint8 [S, S, 4] (grader draws),
    `modes` uint8 [18, S, S], `mode_probs` float32 [18], and for tests and
    analysis `levels` (the two ambiguous blobs' levels) and `grader_modes`
    int [4] (the mode index each grader drew).
  """
  rng = np.random.default_rng(seed_sequence)
  d = dilation_radius(size)
  blob_r = rng.uniform(size / 16, size / 10, size=4)  # amb, amb, certain, distr
  spot_r = np.full(3, max(1.5, size / 40))
  radii = list(blob_r * 1.25) + list(spot_r)          # 1.25: harmonics bound
  centres = _place(rng, size, radii, gap=2 * d + 2, margin=d + 1)

  def harmonics():
    return [(2, rng.uniform(0.0, 0.15), rng.uniform(0, 2 * np.pi)),
            (3, rng.uniform(0.0, 0.10), rng.uniform(0, 2 * np.pi))]

  blobs = [_blob_mask(size, centres[i], blob_r[i], harmonics())
           for i in range(4)]
  spots = np.zeros((size, size), bool)
  for i in range(4, 7):
    spots |= _blob_mask(size, centres[i], spot_r[i - 4], [])
  # Ambiguous blobs in mode order: by (row, column) of their centres.
  order = sorted(range(2), key=lambda i: tuple(centres[i]))
  amb = [blobs[i] for i in order]
  levels = [int(v) for v in rng.integers(0, 3, size=2)]
  certain, distractor = blobs[2], blobs[3]

  # Image.
  yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
  grad = rng.uniform(-0.05, 0.05, size=2)
  image = _BACKGROUND + grad[0] * yy + grad[1] * xx
  image = image + spot_contrast * spots
  for mask, level in zip(amb, levels):
    image = np.where(mask, LEVEL_INTENSITY[level], image)
  image = np.where(certain, _CERTAIN_INTENSITY, image)
  image = np.where(distractor, _DISTRACTOR_INTENSITY, image)
  image = ndimage.gaussian_filter(image, _BLUR_SIGMA)
  image = image + rng.normal(0.0, _NOISE_STD, size=image.shape)
  image = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)

  # Modes.
  disk = _disk(d)
  variants = [[np.zeros_like(m), m, ndimage.binary_dilation(m, disk)]
              for m in amb]
  modes = np.zeros((NUM_MODES, size, size), np.uint8)
  for g in range(2):
    for s1 in range(3):
      for s2 in range(3):
        m = certain | variants[0][s1] | variants[1][s2]
        if g:
          m = m | spots
        modes[9 * g + 3 * s1 + s2] = m
  probs64 = mode_probabilities(levels)
  probs64 = probs64 / probs64.sum()
  grader_modes = rng.choice(NUM_MODES, size=NUM_GRADERS, p=probs64)
  masks = np.moveaxis(modes[grader_modes], 0, -1)  # [S, S, 4]
  return {
      "image": image[..., None],
      "masks": np.ascontiguousarray(masks),
      "modes": modes,
      "mode_probs": probs64.astype(np.float32),
      "levels": levels,
      "grader_modes": grader_modes,
  }


def split_seed(seed: int, split: str, index: int) -> np.random.SeedSequence:
  """The seed of example `index` of `split` (see module docstring)."""
  return np.random.SeedSequence([seed, SPLITS.index(split), index])


class Builder(tfds.core.GeneratorBasedBuilder):
  """Synthetic multi-scale ambiguous segmentation (see module docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      SyntheticConfig(name="s128", size=128,
                      description="128x128, 2000/200/200 (default)."),
      SyntheticConfig(name="s64", size=64, description="64x64, 2000/200/200."),
      SyntheticConfig(name="s32", size=32, num_train=512, num_validation=64,
                      num_test=64,
                      description="32x32, 512/64/64: tests, CPU smoke runs."),
      SyntheticConfig(name="s128_visible", size=128, spot_contrast=0.30,
                      description="s128 with the spots at +0.30 (not +0.10): "
                      "the same examples, annotations and modes; a control "
                      "experiment for where the HPU-Net codes the spots."),
  ]
  DEFAULT_CONFIG_NAME = "s128"

  def _info(self) -> tfds.core.DatasetInfo:
    s = self.builder_config.size
    zlib = tfds.features.Encoding.ZLIB
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(s, s, 1)),
            "masks": tfds.features.Tensor(
                shape=(s, s, NUM_GRADERS), dtype=np.uint8, encoding=zlib),
            "modes": tfds.features.Tensor(
                shape=(NUM_MODES, s, s), dtype=np.uint8, encoding=zlib),
            "mode_probs": tfds.features.Tensor(
                shape=(NUM_MODES,), dtype=np.float32),
            "image_id": tfds.features.Text(),
        }),
        supervised_keys=None,
        homepage="https://arxiv.org/abs/1905.13077",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    cfg = self.builder_config
    sizes = {"train": cfg.num_train, "validation": cfg.num_validation,
             "test": cfg.num_test}
    return {split: self._generate_examples(split, n)
            for split, n in sizes.items()}

  def _generate_examples(
      self, split: str, num_examples: int
  ) -> Iterator[Tuple[int, Dict[str, Any]]]:
    cfg = self.builder_config
    width = max(5, int(math.log10(max(num_examples, 1))) + 1)
    for i in range(num_examples):
      ex = generate_example(cfg.size, split_seed(cfg.seed, split, i),
                            spot_contrast=cfg.spot_contrast)
      yield i, {
          "image": ex["image"],
          "masks": ex["masks"],
          "modes": ex["modes"],
          "mode_probs": ex["mode_probs"],
          "image_id": f"{split}_{i:0{width}d}",
      }
