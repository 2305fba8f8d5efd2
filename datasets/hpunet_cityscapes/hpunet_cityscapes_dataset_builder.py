# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Cityscapes fine annotations with trainIds and car instances
(`hpunet_cityscapes`).

For the two tasks of the HPU-Net and Probabilistic U-Net papers. TFDS' own
catalogue `cityscapes` builder (raw labelIds, no instance ids) keeps its name
and its folder (`~/tensorflow_datasets/cityscapes/`): this one is named
`hpunet_cityscapes`, so both can be registered in one process and prepared
side by side.

Configs:

* `cars` (512x1024, HPU-Net car-instance task):
    image          Image uint8 (512, 1024, 3), PIL bilinear down-sampling.
    label          Tensor uint8 (512, 1024): trainIds 0..18, 255 = ignore.
                   Car *group* pixels (instanceIds value 26: cars annotated as
                   a crowd, without an instance) are also 255 here: they are
                   cars whose instance is unknown, so they fit neither "car
                   instance k" nor "not a car".
    car_instances  Tensor int32 (512, 1024): 0 = no car instance, k + 1 for
                   the pixel value 26000 + k of `*_gtFine_instanceIds.png`
                   (unique within the image).
    image_id       Text "<city>_<seq>_<frame>", e.g. "aachen_000000_000019".
* `flips` (256x512, Probabilistic U-Net stochastic-flip task):
    image, label (trainIds, 255 = ignore; car groups keep trainId 13),
    image_id.

Labels are resized with nearest neighbour, the PIL convention: output pixel
(i, j) takes the source pixel (floor((i + 0.5) * s), floor((j + 0.5) * s))
for the down-sampling factor s (2 for `cars`, 4 for `flips`). labelId ->
trainId uses a 256-entry table: the 19 evaluated classes map to 0..18 and every
other id, including `license plate` (id -1, 255 as uint8), to 255.

Splits (the protocol of both papers):
  train       the 15 official train cities other than the three below (2701).
  validation  darmstadt, monchengladbach, ulm (from official train; 274).
  test        the official val split: frankfurt, lindau, munster (500).
The official test split (no public labels) is not used.
"""

import dataclasses
import io
import re
import zipfile

from etils import epath
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

IMAGES_ZIP = "leftImg8bit_trainvaltest.zip"
LABELS_ZIP = "gtFine_trainvaltest.zip"
FULL_SIZE = (1024, 2048)  # (height, width)
VALIDATION_CITIES = frozenset({"darmstadt", "monchengladbach", "ulm"})
CAR_LABEL_ID = 26
MAX_LABEL_ID = 33
LICENSE_PLATE_UINT8 = 255  # labelId -1 stored in a uint8 image.
IGNORE = 255

# labelId -> trainId of the 19 evaluated classes (cityscapesScripts labels.py).
EVALUATED_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26,
                       27, 28, 31, 32, 33)


def make_train_id_table() -> np.ndarray:
  """A 256-entry uint8 labelId -> trainId table; unevaluated ids -> 255."""
  table = np.full(256, IGNORE, np.uint8)
  table[list(EVALUATED_LABEL_IDS)] = np.arange(len(EVALUATED_LABEL_IDS))
  return table


TRAIN_ID_TABLE = make_train_id_table()

_IMAGE_RE = re.compile(
    r"(?:^|/)leftImg8bit/(?P<split>train|val|test)/(?P<city>[^/]+)/"
    r"(?P<id>[^/]+_\d+_\d+)_leftImg8bit\.png$")
_LABEL_RE = re.compile(
    r"(?:^|/)gtFine/(?P<split>train|val|test)/(?P<city>[^/]+)/"
    r"(?P<id>[^/]+_\d+_\d+)_gtFine_(?P<kind>labelIds|instanceIds)\.png$")

_LAYOUT = f"""\
  <manual_dir>/{IMAGES_ZIP} with
      leftImg8bit/{{train,val}}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
  <manual_dir>/{LABELS_ZIP} with
      gtFine/{{train,val}}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png
      gtFine/{{train,val}}/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png
  (or both zips extracted: <manual_dir>/leftImg8bit/, <manual_dir>/gtFine/)"""


@dataclasses.dataclass(eq=False)
class CityscapesConfig(tfds.core.BuilderConfig):
  """`size`: (height, width) stored; `car_instances`: add that feature."""
  size: tuple[int, int] = (512, 1024)
  car_instances: bool = False


def nearest_indices(out_size: int, in_size: int) -> np.ndarray:
  """Source indices of PIL-style nearest-neighbour resizing."""
  return np.floor((np.arange(out_size) + 0.5) * (in_size / out_size)).astype(
      np.int64)


def resize_nearest(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  rows = nearest_indices(size[0], array.shape[0])
  cols = nearest_indices(size[1], array.shape[1])
  return array[rows[:, None], cols[None, :]]


class _ZipSource:
  """Members of one Cityscapes zip, read without extracting."""

  def __init__(self, path: epath.Path):
    self.path = path
    self._file = None
    self._zip = None

  def names(self) -> list[str]:
    with self.path.open("rb") as f:
      try:
        with zipfile.ZipFile(f) as archive:
          return [i.filename for i in archive.infolist() if not i.is_dir()]
      except zipfile.BadZipFile as e:
        raise ValueError(f"{self.path}: not a readable zip file ({e}).") from e

  def read(self, name: str) -> bytes:
    if self._zip is None:
      self._file = self.path.open("rb")
      self._zip = zipfile.ZipFile(self._file)
    return self._zip.read(name)

  def close(self):
    if self._zip is not None:
      self._zip.close()
      self._file.close()
      self._zip = self._file = None

  def describe(self, name: str) -> str:
    return f"{self.path}: {name}"

  def __str__(self):
    return str(self.path)


class _DirSource:
  """The same files, extracted into `root`."""

  def __init__(self, root: epath.Path, top: str):
    self.root = root
    self._top = top

  def names(self) -> list[str]:
    # The layout is exactly <top>/<split>/<city>/<file>.png.
    return [p.relative_to(self.root).as_posix()
            for p in (self.root / self._top).glob("*/*/*.png")]

  def read(self, name: str) -> bytes:
    return (self.root / name).read_bytes()

  def close(self):
    pass

  def describe(self, name: str) -> str:
    return str(self.root / name)

  def __str__(self):
    return str(self.root / self._top)


def find_sources(manual_dir: epath.Path):
  """Returns (images source, labels source); errors if either is missing."""
  sources, missing = [], []
  for zip_name, top in ((IMAGES_ZIP, "leftImg8bit"), (LABELS_ZIP, "gtFine")):
    if (manual_dir / zip_name).exists():
      sources.append(_ZipSource(manual_dir / zip_name))
    elif (manual_dir / top).is_dir():
      sources.append(_DirSource(manual_dir, top))
    else:
      missing.append(f"{zip_name} (or an extracted {top}/ folder)")
  if missing:
    raise FileNotFoundError(
        f"Cityscapes: missing {', '.join(missing)} in manual_dir {manual_dir}."
        f" Expected:\n{_LAYOUT}\n{Builder.MANUAL_DOWNLOAD_INSTRUCTIONS}")
  return tuple(sources)


def split_of(official_split: str, city: str):
  """Our split for an official (split, city); None for the official test."""
  if official_split == "train":
    return "validation" if city in VALIDATION_CITIES else "train"
  if official_split == "val":
    return "test"
  return None


def index_files(image_names, label_names, images_src, labels_src,
                need_instances: bool):
  """{split: [(image_id, image name, labelIds name, instanceIds name)]}.

  Raises:
    ValueError: an image without its label file(s), or a split with no
      images.
  """
  labels = {}
  for name in label_names:
    if match := _LABEL_RE.search(name):
      labels[(match["split"], match["city"], match["id"], match["kind"])] = name
  out = {"train": [], "validation": [], "test": []}
  for name in image_names:
    match = _IMAGE_RE.search(name)
    if not match:
      continue
    split = split_of(match["split"], match["city"])
    if split is None:
      continue
    key = (match["split"], match["city"], match["id"])
    kinds = ("labelIds", "instanceIds") if need_instances else ("labelIds",)
    found = []
    for kind in kinds:
      label = labels.get(key + (kind,))
      if label is None:
        raise ValueError(
            f"{images_src.describe(name)} has no label file: expected"
            f" gtFine/{match['split']}/{match['city']}/{match['id']}_gtFine_"
            f"{kind}.png in {labels_src}.")
      found.append(label)
    if not need_instances:
      found.append(None)
    out[split].append((match["id"], name, *found))
  for split, items in out.items():
    if not items:
      where = ("leftImg8bit/val/{frankfurt,lindau,munster}" if split == "test"
               else "leftImg8bit/train/<city>")
      raise ValueError(
          f"Cityscapes: no images for split {split!r} (expected {where}/*"
          f"_leftImg8bit.png) in {images_src}."
          f" Expected:\n{_LAYOUT}")
    items.sort()
  return out


def _decode_png(data: bytes, name: str) -> Image.Image:
  try:
    image = Image.open(io.BytesIO(data))
    image.load()
  except Exception as e:  # PIL raises many exception types.
    raise ValueError(f"{name}: not a readable PNG file ({e}).") from e
  if image.size != (FULL_SIZE[1], FULL_SIZE[0]):
    raise ValueError(
        f"{name}: image is {image.size[0]}x{image.size[1]} (width x height),"
        f" expected {FULL_SIZE[1]}x{FULL_SIZE[0]}.")
  return image


def decode_label_ids(data: bytes, name: str) -> np.ndarray:
  image = _decode_png(data, name)
  if image.mode != "L":
    raise ValueError(f"{name}: expected an 8-bit labelIds PNG (PIL mode L),"
                     f" got mode {image.mode}.")
  ids = np.asarray(image)
  bad = (ids > MAX_LABEL_ID) & (ids != LICENSE_PLATE_UINT8)
  if bad.any():
    raise ValueError(
        f"{name}: label values {sorted(np.unique(ids[bad]).tolist())[:10]} out"
        f" of range; expected Cityscapes labelIds 0..{MAX_LABEL_ID} (or 255 for"
        " license plate). Is this a trainId or colour image?")
  return ids


def decode_instance_ids(data: bytes, name: str) -> np.ndarray:
  image = _decode_png(data, name)
  if image.mode not in ("I", "I;16", "I;16B", "I;16L", "L"):
    raise ValueError(f"{name}: expected a 16-bit instanceIds PNG, got PIL"
                     f" mode {image.mode}.")
  return np.asarray(image).astype(np.int32)


class Builder(tfds.core.GeneratorBasedBuilder):
  """Cityscapes trainIds (+ car instance ids) at half or quarter resolution."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      CityscapesConfig(
          name="cars", size=(512, 1024), car_instances=True,
          description="512x1024, trainIds and car instance ids (HPU-Net)."),
      CityscapesConfig(
          name="flips", size=(256, 512), car_instances=False,
          description="256x512, trainIds for the label-flip task (sPU-Net)."),
  ]
  DEFAULT_CONFIG_NAME = "cars"
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Register at https://www.cityscapes-dataset.com/, download
leftImg8bit_trainvaltest.zip (11 GB) and gtFine_trainvaltest.zip (241 MB)
(packageID=3 and packageID=1 on the download page) and put both zips,
unextracted, into manual_dir:
{_LAYOUT}
"""

  def _info(self) -> tfds.core.DatasetInfo:
    height, width = self.builder_config.size
    features = {
        "image": tfds.features.Image(shape=(height, width, 3)),
        "label": tfds.features.Tensor(
            shape=(height, width), dtype=np.uint8,
            encoding=tfds.features.Encoding.ZLIB),
        "image_id": tfds.features.Text(),
    }
    if self.builder_config.car_instances:
      features["car_instances"] = tfds.features.Tensor(
          shape=(height, width), dtype=np.int32,
          encoding=tfds.features.Encoding.ZLIB)
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(features),
        homepage="https://www.cityscapes-dataset.com/",
    )

  def _split_generators(self, dl_manager):
    manual_dir = epath.Path(dl_manager.manual_dir)
    images_src, labels_src = find_sources(manual_dir)
    index = index_files(images_src.names(), labels_src.names(), images_src,
                        labels_src, self.builder_config.car_instances)
    return {split: self._generate_examples(images_src, labels_src, items)
            for split, items in index.items()}

  def _generate_examples(self, images_src, labels_src, items):
    height, width = self.builder_config.size
    try:
      for image_id, image_name, label_name, instance_name in items:
        described = images_src.describe(image_name)
        image = _decode_png(images_src.read(image_name), described)
        if image.mode != "RGB":
          raise ValueError(f"{described}: expected an RGB image, got PIL mode"
                           f" {image.mode}.")
        image = image.resize((width, height), Image.Resampling.BILINEAR)
        label_ids = decode_label_ids(labels_src.read(label_name),
                                     labels_src.describe(label_name))
        train_ids = TRAIN_ID_TABLE[label_ids]
        example = {"image": image, "image_id": image_id}
        if instance_name is not None:
          instance_ids = decode_instance_ids(
              labels_src.read(instance_name),
              labels_src.describe(instance_name))
          train_ids[instance_ids == CAR_LABEL_ID] = IGNORE  # Car groups.
          is_car = instance_ids // 1000 == CAR_LABEL_ID
          cars = np.where(is_car, instance_ids % 1000 + 1, 0).astype(np.int32)
          example["car_instances"] = resize_nearest(cars, (height, width))
        example["label"] = resize_nearest(train_ids, (height, width))
        yield image_id, example
    finally:
      images_src.close()
      labels_src.close()
