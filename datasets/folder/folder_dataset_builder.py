# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Your own data: a folder of images with K grader masks each (TFDS `folder`).

    python -m hpunet.build_dataset folder/<name> --manual_dir=<dir>

Layout of `<dir>` (a local folder or gs://...):

    <dir>/train/images/<id>.png          one image per example
    <dir>/train/masks/<id>_<k>.png       k = 0 .. K-1: one mask per grader
    <dir>/validation/...                 the same
    <dir>/test/...                       the same (optional)
    <dir>/classes.txt                    optional: multi-class masks

- Images: 8- or 16-bit grayscale, or RGB(A) PNGs (alpha dropped); every
  image of the dataset has the same size (any size) and channel count.
  Intensities are scaled to [0, 1] by the file's maximum value (255 or
  65535) and stored as round(255 * x).
- Masks: single-channel PNGs of the image's size; every image has the same
  number K >= 1 of masks, numbered from 0 without gaps.
  Without `classes.txt` they are binary, values {0, 1} or {0, 255}
  (foreground = non-zero in a "1"-mode PNG), and the dataset has C = 2
  classes.
  With `classes.txt` (one class name per line, the background first: C >= 2
  lines) they hold class ids 0..C-1 (8/16-bit grayscale or palette PNGs,
  the palette index being the id); a value >= C stops the build naming the
  file and the values. C is given by the file, not guessed from the masks,
  so that a stray value is an error rather than an extra class.
- `<name>` (the TFDS config, lowercase letters, digits and `_`) names the
  dataset: `folder/<name>` in `--config.input.dataset`. The size, channels
  and K are read from the files when it is built and stored with it; C and
  the class names are stored in its metadata (`info.metadata["num_classes"]`,
  `["class_names"]`), which the input pipeline checks against
  `config.input.num_classes`.

Every file is checked before anything is written: a wrong size, channel
count, mask count or value stops the build with one line naming the file.

Features:
  image     Image uint8 (H, W, C).
  masks     Tensor uint8 (H, W, K), class ids 0..C-1 ({0, 1} for binary
            masks); masks[..., k] is `<id>_<k>.png`.
  image_id  Text, "<split>/<id>".
"""

import collections
import dataclasses
import io
import re
from typing import Optional

from etils import epath
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

SPLITS = ("train", "validation", "test")
REQUIRED_SPLITS = ("train", "validation")
_CONFIG_NAME_RE = re.compile(r"^[a-z0-9_]+$")
_IMAGE_RE = re.compile(r"^(?P<id>.+)\.png$")
_MASK_RE = re.compile(r"^(?P<id>.+)_(?P<k>\d+)\.png$")
CLASSES_FILE = "classes.txt"
_MAX_CLASSES = 256  # masks are stored as uint8

LAYOUT = """\
  <manual_dir>/train/images/<id>.png      one image per example (any size, all
                                          the same; grayscale or RGB)
  <manual_dir>/train/masks/<id>_<k>.png   k = 0 .. K-1, one mask per grader:
                                          binary ({0, 1} or {0, 255}), or
                                          class ids 0..C-1 with classes.txt
  <manual_dir>/validation/...             the same
  <manual_dir>/test/...                   the same (optional)
  <manual_dir>/classes.txt                optional: C class names, one a
                                          line, the background first"""


@dataclasses.dataclass(eq=False)
class FolderConfig(tfds.core.BuilderConfig):
  """Made from the files by `make_builder` (see the module docstring)."""
  image_size: tuple[int, int] = (0, 0)  # (H, W)
  channels: int = 1
  num_graders: int = 0
  # The names of classes.txt (C = len); () = binary masks, C = 2.
  class_names: tuple[str, ...] = ()

  @property
  def num_classes(self) -> int:
    return len(self.class_names) or 2


@dataclasses.dataclass
class _Example:
  split: str
  image_id: str
  image: epath.Path
  masks: list[epath.Path]


def _open(path: epath.Path) -> Image.Image:
  """Opens a PNG lazily (the header only) with a one-line error."""
  try:
    image = Image.open(io.BytesIO(path.read_bytes()))
  except Exception as e:  # PIL raises many exception types.
    raise ValueError(f"{path}: not a readable PNG file ({e}).") from None
  if image.format != "PNG":
    raise ValueError(f"{path}: expected a PNG file, got {image.format}.")
  return image


def _channels(image: Image.Image, path) -> int:
  if image.mode in ("L", "I", "I;16", "I;16B", "I;16L", "LA", "1"):
    return 1
  if image.mode in ("RGB", "RGBA"):
    return 3
  raise ValueError(f"{path}: PIL mode {image.mode}; expected a grayscale "
                   "(8/16-bit) or RGB(A) PNG.")


def index_split(root: epath.Path, split: str) -> list[_Example]:
  """The examples of one split, with every file pairing checked."""
  images_dir, masks_dir = root / split / "images", root / split / "masks"
  for folder in (images_dir, masks_dir):
    if not folder.is_dir():
      raise FileNotFoundError(f"{folder} does not exist. Expected:\n{LAYOUT}")
  images = {}
  for path in sorted(images_dir.iterdir()):
    match = _IMAGE_RE.match(path.name)
    if not match:
      raise ValueError(f"{path}: expected images named <id>.png.")
    images[match["id"]] = path
  masks = collections.defaultdict(dict)
  for path in sorted(masks_dir.iterdir()):
    match = _MASK_RE.match(path.name)
    if not match:
      raise ValueError(f"{path}: expected masks named <id>_<k>.png "
                       "(k = 0 .. K-1, one per grader).")
    if match["id"] not in images:
      raise ValueError(f"{path}: no image {images_dir / (match['id'] + '.png')}"
                       " for this mask.")
    masks[match["id"]][int(match["k"])] = path
  if not images:
    raise ValueError(f"{images_dir} holds no <id>.png images.")
  examples = []
  for image_id, image in images.items():
    ks = sorted(masks.get(image_id, {}))
    if ks != list(range(len(ks))) or not ks:
      raise ValueError(
          f"{image}: its masks are {[f'{image_id}_{k}.png' for k in ks]}; "
          f"expected {image_id}_0.png .. {image_id}_<K-1>.png in {masks_dir}.")
    examples.append(_Example(split, f"{split}/{image_id}", image,
                             [masks[image_id][k] for k in ks]))
  return examples


def read_classes(root: epath.Path) -> tuple[str, ...]:
  """The class names of `root/classes.txt`; () without the file (binary)."""
  path = root / CLASSES_FILE
  if not path.exists():
    return ()
  names = tuple(line.strip() for line in path.read_text().splitlines())
  while names and not names[-1]:
    names = names[:-1]
  if len(names) < 2 or len(names) > _MAX_CLASSES or not all(names):
    empty = "" if all(names) else ", one of them empty"
    raise ValueError(
        f"{path}: {len(names)} line(s){empty}; expected one class name per "
        f"line, the background first, 2 to {_MAX_CLASSES} classes.")
  return names


def scan(manual_dir, name: str, *, check_values: bool = True
         ) -> tuple[FolderConfig, dict]:
  """Indexes `manual_dir` and reads the dataset's shape from its files.

  With `check_values`, every mask is decoded and its values checked too, so
  that a bad file stops the build before TFDS creates any folder.

  Returns:
    (the config, {split: [examples]}).

  Raises:
    FileNotFoundError / ValueError: one line naming the file.
  """
  root = epath.Path(manual_dir)
  if not root.is_dir():
    raise FileNotFoundError(f"--manual_dir={manual_dir} does not exist. "
                            f"Expected:\n{LAYOUT}")
  class_names = read_classes(root)
  splits = {}
  for split in SPLITS:
    if split in REQUIRED_SPLITS or (root / split).exists():
      splits[split] = index_split(root, split)
  first = splits["train"][0]
  first_image = _open(first.image)
  width, height = first_image.size
  channels = _channels(first_image, first.image)
  num_graders = len(first.masks)
  for examples in splits.values():
    for ex in examples:
      image = _open(ex.image)
      if image.size != (width, height):
        raise ValueError(
            f"{ex.image}: {image.size[0]}x{image.size[1]} (width x height); "
            f"expected {width}x{height} like {first.image} (all images of a "
            "dataset have one size).")
      if _channels(image, ex.image) != channels:
        raise ValueError(
            f"{ex.image}: {_channels(image, ex.image)} channel(s) (PIL mode "
            f"{image.mode}); expected {channels} like {first.image}.")
      if len(ex.masks) != num_graders:
        raise ValueError(
            f"{ex.image}: {len(ex.masks)} mask(s); expected {num_graders} "
            f"(one per grader) like {first.image}.")
      for mask_path in ex.masks:
        mask = _open(mask_path)
        if mask.size != (width, height):
          raise ValueError(
              f"{mask_path}: {mask.size[0]}x{mask.size[1]} (width x height); "
              f"expected {width}x{height}, the size of its image.")
        if check_values:
          _mask_array(mask_path, class_names)
  kind = (f"grader masks of {len(class_names)} classes" if class_names
          else "binary grader masks")
  config = FolderConfig(
      name=name, image_size=(height, width), channels=channels,
      num_graders=num_graders, class_names=class_names,
      description=(f"{height}x{width}x{channels} images with {num_graders} "
                   f"{kind} each, from {manual_dir}."))
  return config, splits


def _image_array(path: epath.Path, channels: int) -> np.ndarray:
  image = _open(path)
  image.load()
  if image.mode.startswith("I"):
    values = np.asarray(image).astype(np.int64)
    if values.min() < 0 or values.max() > 65535:
      raise ValueError(f"{path}: 16-bit values outside [0, 65535].")
    gray = np.round(values * (255.0 / 65535.0)).astype(np.uint8)
    return gray[..., None]
  if image.mode == "1":
    return (np.asarray(image).astype(np.uint8) * 255)[..., None]
  if channels == 1:
    return np.asarray(image.convert("L"))[..., None]
  return np.asarray(image.convert("RGB"))


def _mask_array(path: epath.Path, class_names: tuple[str, ...] = ()
                ) -> np.ndarray:
  """uint8 [H, W]: {0, 1} (binary, no `class_names`) or class ids 0..C-1."""
  mask = _open(path)
  mask.load()
  values = np.asarray(mask)
  expected = (f"class ids 0..{len(class_names) - 1} (the {len(class_names)} "
              f"classes of {CLASSES_FILE})" if class_names else
              "values {0, 1} or {0, 255}")
  if values.ndim != 2:
    raise ValueError(f"{path}: a {mask.mode} mask; expected a single-channel "
                     f"PNG with {expected}.")
  found = np.unique(values).tolist()
  if mask.mode == "1":
    return values.astype(np.uint8)
  if class_names:
    bad = [v for v in found if not 0 <= v < len(class_names)]
    if bad:
      raise ValueError(f"{path}: mask values {bad[:8]} (of {found[:8]}); "
                       f"expected {expected}.")
    return values.astype(np.uint8)
  for ones in (1, 255):
    if set(found) <= {0, ones}:
      return (values == ones).astype(np.uint8)
  raise ValueError(
      f"{path}: mask values {found[:8]}; expected a binary mask with "
      f"{expected} (multi-class masks: list the classes in "
      f"<manual_dir>/{CLASSES_FILE}).")


class Builder(tfds.core.GeneratorBasedBuilder):
  """Images with K grader masks each, from a folder (see module doc)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  # The config is made from the files (`make_builder`), not listed here; a
  # prepared `folder/<name>` is read back from its stored dataset info.
  BUILDER_CONFIGS = []
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Put your images and masks into manual_dir:
{LAYOUT}
and build with `python -m hpunet.build_dataset folder/<name> --manual_dir=DIR`.
"""

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    if cfg is None or not cfg.num_graders:
      raise ValueError("The `folder` dataset is made from its files: build it "
                       "with `python -m hpunet.build_dataset folder/<name> "
                       "--manual_dir=DIR`.")
    height, width = cfg.image_size
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(height, width, cfg.channels)),
            "masks": tfds.features.Tensor(
                shape=(height, width, cfg.num_graders), dtype=np.uint8,
                encoding=tfds.features.Encoding.ZLIB),
            "image_id": tfds.features.Text(),
        }),
        # Read back by `num_classes` (and the input pipeline) from the
        # prepared dataset's metadata.json.
        metadata=tfds.core.MetadataDict(
            num_classes=cfg.num_classes,
            class_names=list(cfg.class_names) or ["background", "foreground"]),
    )

  def _split_generators(self, dl_manager):
    # The files were checked by `make_builder` before TFDS made any folder.
    _, splits = scan(dl_manager.manual_dir, self.builder_config.name,
                     check_values=False)
    return {split: self._generate_examples(examples)
            for split, examples in splits.items()}

  def _generate_examples(self, examples):
    channels = self.builder_config.channels
    class_names = self.builder_config.class_names
    for ex in examples:
      masks = np.stack([_mask_array(p, class_names) for p in ex.masks],
                       axis=-1)
      yield ex.image_id, {"image": _image_array(ex.image, channels),
                          "masks": masks, "image_id": ex.image_id}


def make_builder(name: str, *, data_dir: Optional[str],
                 manual_dir: Optional[str]) -> tfds.core.DatasetBuilder:
  """`folder/<name>`: the prepared dataset, else a builder for `manual_dir`.

  Called by `hpunet.dataset_builders.build` (the builder's config, sizes
  included, is read from the files).
  """
  _, _, config_name = name.partition("/")
  config_name = config_name.split(":")[0]
  if not _CONFIG_NAME_RE.match(config_name):
    raise ValueError(
        f"Dataset name {name!r}: expected folder/<name> with <name> in "
        "lowercase letters, digits and '_' (it names your dataset).")
  try:  # A prepared dataset is read from its stored info.
    builder = tfds.builder(f"folder/{config_name}", data_dir=data_dir)
    if builder.is_prepared():
      return builder
  except (tfds.core.registered.DatasetNotFoundError, ValueError):
    pass
  if manual_dir is None:
    raise FileNotFoundError(
        f"Dataset {name!r} needs --manual_dir. "
        f"{Builder.MANUAL_DOWNLOAD_INSTRUCTIONS}")
  config, _ = scan(manual_dir, config_name)
  return Builder(config=config, data_dir=data_dir)


def num_classes(builder) -> int:
  """C of a prepared `folder/<name>` (2 for one built before classes.txt)."""
  return int((builder.info.metadata or {}).get("num_classes", 2))


def next_command(builder, data_dir: Optional[str]) -> str:
  """The `hpunet.train` command for a prepared `folder/<name>` dataset."""
  height, width, channels = builder.info.features["image"].shape
  classes = num_classes(builder)
  # configs/folder.py: 8 scales, so crops divide by 2**7.
  crop = (height // 128 * 128, width // 128 * 128)
  line = (f"python -m hpunet.train --config=configs/folder.py "
          f"--config.input.dataset={builder.info.full_name.rsplit('/', 1)[0]} "
          f"--config.input.image_size='({height}, {width})' ")
  if min(crop) == 0:
    note = (f"\n(the {height}x{width} images are smaller than the 128x128 "
            "crops of the LIDC model: pad them or use a model with fewer "
            "scales, config.model.channels_per_block)")
    crop = (128, 128)
  else:
    note = ""
  line += f"--config.input.crop_size='({crop[0]}, {crop[1]})' "
  if channels != 1:
    line += f"--config.input.channels={channels} "
  if classes != 2:  # the input and the model: the dataset's C classes
    line += (f"--config.input.num_classes={classes} "
             f"--config.model.num_classes={classes} ")
  if data_dir:
    line += f"--config.input.data_dir={data_dir} "
  return line + "--workdir=<workdir>" + note

