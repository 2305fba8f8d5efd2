# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""LIDC-IDRI lesion crops with four gradings per image (TFDS builder `lidc`).

Configs:

* `crops` (default): the 180x180 crops released with the Hierarchical
  Probabilistic U-Net ("LIDCv2"), 8843 / 1993 / 1980 train / validation / test
  images split by patient. `manual_dir` holds `train.tar.gz`, `val.tar.gz` and
  `test.tar.gz` (or the same archives already extracted into `train/`, `val/`,
  `test/`), each with
      images/<patient>/z-<zpos>_c<crop>.png
      gt/<patient>/z-<zpos>_c<crop>_l<g>.png      g = 0, 1, 2, 3 (0-based)
* `pickle`: the 128x128 `data_lidc.pickle` of Hu et al. 2019 ("LIDCv1", 15 096
  images of 875 series) as distributed with stefanknegt/Probabilistic-Unet-
  Pytorch. It has no official split; this builder splits by `series_uid`:
  the unique series are ordered by `sha256(series_uid)` and the first 70% go
  to `train`, the next 15% to `validation`, the rest to `test` (each split
  gets at least one series), so no scan is in two splits and the split does
  not depend on the machine, Python's hash seed or the dict order.

Features (both configs, S = 180 or 128):
  image       Image uint8 (S, S, 1), intensities scaled to [0, 1] by the
              source dtype's maximum and stored as round(255 * x).
  masks       Tensor uint8 (S, S, 4) in {0, 1}; masks[..., g] is grader g
              (file suffix `_l<g>`), binarised with `> 0`. zlib-compressed.
  patient_id  Text, e.g. "LIDC-IDRI-0001" (`pickle`: see `_patient_id`).
  image_id    Text, "<patient>/z-<zpos>_c<crop>" (`pickle`: the dict key).
"""

import collections
import contextlib
import dataclasses
import hashlib
import io
import pickle
import re
import tarfile
from typing import Any, Mapping, Optional

from etils import epath
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

NUM_GRADERS = 4
# Split name -> archive / folder name of the public crops release.
CROPS_ARCHIVES = {
    "train": "train.tar.gz",
    "validation": "val.tar.gz",
    "test": "test.tar.gz",
}
PICKLE_FILE = "data_lidc.pickle"
# Fractions of unique series_uids per split for the `pickle` config.
PICKLE_SPLIT_FRACTIONS = (("train", 0.70), ("validation", 0.15),
                          ("test", 0.15))

_Z = r"(?P<z>[^/_]+)"
_IMAGE_RE = re.compile(
    rf"(?:^|/)images/(?P<patient>[^/]+)/z-{_Z}_c(?P<crop>\d+)\.png$")
_GT_RE = re.compile(
    rf"(?:^|/)gt/(?P<patient>[^/]+)/z-{_Z}_c(?P<crop>\d+)_l(?P<g>\d+)\.png$")
_IN_LAYOUT_DIR_RE = re.compile(r"(?:^|/)(images|gt)/")

_CROPS_LAYOUT = """\
  <manual_dir>/train.tar.gz, val.tar.gz, test.tar.gz   (as downloaded), or
  <manual_dir>/train/, val/, test/                      (the same, extracted)
each holding
  images/<patient>/z-<zpos>_c<crop>.png   (images/LIDC-IDRI-0001/z-105.0_c0.png)
  gt/<patient>/z-<zpos>_c<crop>_l<g>.png  g = 0, 1, 2, 3 (one per grader)"""

_PICKLE_LAYOUT = f"""\
  <manual_dir>/{PICKLE_FILE}   a pickled dict {{key: {{'image': float 128x128 in
  [0, 1], 'masks': list of 4 uint8 128x128, 'series_uid': str}}}}"""


@dataclasses.dataclass(eq=False)
class LidcConfig(tfds.core.BuilderConfig):
  """`image_size`: side of the stored square images."""
  image_size: int = 180


def _decode_png(data: bytes, name: str) -> Image.Image:
  try:
    image = Image.open(io.BytesIO(data))
    image.load()
  except Exception as e:  # PIL raises many exception types.
    raise ValueError(f"{name}: not a readable PNG file ({e}).") from e
  if image.format != "PNG":
    raise ValueError(f"{name}: expected a PNG file, got {image.format}.")
  return image


def _check_size(image: Image.Image, size: int, name: str) -> None:
  if image.size != (size, size):
    raise ValueError(
        f"{name}: image is {image.size[0]}x{image.size[1]} (width x height),"
        f" expected {size}x{size}.")


def _grayscale_to_unit_uint8(image: Image.Image, name: str) -> np.ndarray:
  """Scales a grayscale PNG to [0, 1] by its dtype max, stored as uint8."""
  mode = image.mode
  if mode in ("RGB", "RGBA"):
    rgb = np.asarray(image)[..., :3]
    if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and
            np.array_equal(rgb[..., 0], rgb[..., 2])):
      raise ValueError(
          f"{name}: expected a single-channel grayscale PNG, got a colour"
          f" {mode} image.")
    return rgb[..., 0].copy()
  if mode == "LA":
    return np.asarray(image)[..., 0].copy()
  if mode == "L":
    return np.asarray(image).copy()
  if mode == "1":
    return np.asarray(image).astype(np.uint8) * 255
  if mode.startswith("I;16") or mode == "I":
    # 16-bit PNGs decode as "I;16*" or, in some Pillow versions, as "I".
    values = np.asarray(image).astype(np.int64)
    if values.min() < 0 or values.max() > 65535:
      raise ValueError(f"{name}: 16-bit values outside [0, 65535].")
    return np.round(values * (255.0 / 65535.0)).astype(np.uint8)
  raise ValueError(
      f"{name}: expected a grayscale PNG (8 or 16 bit), got PIL mode {mode}.")


def _binary_mask(image: Image.Image) -> np.ndarray:
  values = np.asarray(image)
  if values.ndim == 3:
    values = values.any(axis=-1)
  return (values > 0).astype(np.uint8)


def _encode_png(gray: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  image = Image.fromarray(np.ascontiguousarray(gray, np.uint8))  # Mode "L".
  image.save(buffer, format="PNG")
  return buffer.getvalue()


# ----------------------------------------------------------------------------
# `crops` config: tar.gz archives or extracted folders.
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class _Case:
  """The files of one crop: its image and one mask per grader."""
  patient: str
  z: str
  crop: str
  image: Optional[str] = None
  graders: dict[int, str] = dataclasses.field(default_factory=dict)

  @property
  def image_id(self) -> str:
    return f"{self.patient}/z-{self.z}_c{self.crop}"

  def sort_key(self):
    return (self.patient, float(self.z), int(self.crop), self.z)


def index_crop_files(names, source: str) -> list[_Case]:
  """Groups file names by (patient, zpos, crop), validated and sorted.

  Args:
    names: relative POSIX paths of all files in one split's archive/folder.
    source: the archive/folder, used in error messages.

  Returns:
    The cases sorted by (patient, float(zpos), int(crop)).

  Raises:
    ValueError: a PNG in images/ or gt/ with an unexpected name, a grader index
      outside 0..3, a duplicate, a mask without an image, an image with a
      missing grader mask, or no images at all.
  """
  cases: dict[tuple[str, str, str], _Case] = {}

  def case_for(match):
    key = (match["patient"], match["z"], match["crop"])
    if key not in cases:
      try:
        float(match["z"])
      except ValueError:
        raise ValueError(
            f"{source}: {match.string}: z position {match['z']!r} is not a"
            " number; expected z-<zpos>_c<crop>.") from None
      cases[key] = _Case(*key)
    return cases[key]

  for name in names:
    if not name.endswith(".png"):
      continue
    if match := _IMAGE_RE.search(name):
      case = case_for(match)
      if case.image is not None:
        raise ValueError(
            f"{source}: duplicate image for {case.image_id}: {case.image} and"
            f" {name}.")
      case.image = name
    elif match := _GT_RE.search(name):
      grader = int(match["g"])
      if not 0 <= grader < NUM_GRADERS:
        raise ValueError(
            f"{source}: {name}: grader index {grader} is outside 0.."
            f"{NUM_GRADERS - 1}; the release names grader masks _l0.._l3"
            " (0-based).")
      case = case_for(match)
      if grader in case.graders:
        raise ValueError(
            f"{source}: duplicate grader {grader} mask for {case.image_id}:"
            f" {case.graders[grader]} and {name}.")
      case.graders[grader] = name
    elif _IN_LAYOUT_DIR_RE.search(name):
      raise ValueError(
          f"{source}: unexpected file {name}; expected the layout\n"
          f"{_CROPS_LAYOUT}")
  if not cases:
    raise ValueError(
        f"{source}: found no images/<patient>/z-<zpos>_c<crop>.png files;"
        f" expected the layout\n{_CROPS_LAYOUT}")
  for case in cases.values():
    if case.image is None:
      any_mask = next(iter(case.graders.values()))
      raise ValueError(
          f"{source}: {any_mask} has no image; expected"
          f" images/{case.patient}/z-{case.z}_c{case.crop}.png.")
    missing = sorted(set(range(NUM_GRADERS)) - set(case.graders))
    if missing:
      expected = ", ".join(
          f"gt/{case.patient}/z-{case.z}_c{case.crop}_l{g}.png"
          for g in missing)
      raise ValueError(
          f"{source}: grader masks missing for {case.image}: expected"
          f" {expected} (one mask per grader _l0.._l3).")
  return sorted(cases.values(), key=_Case.sort_key)


class _TarSplit:
  """One split as a `.tar.gz`, read as a stream (gzip cannot seek)."""

  def __init__(self, path: epath.Path):
    self.path = path

  @contextlib.contextmanager
  def _open(self):
    with self.path.open("rb") as f:
      try:
        archive = tarfile.open(fileobj=f, mode="r|*")
      except tarfile.TarError as e:
        raise ValueError(
            f"{self.path}: not a readable tar archive ({e}).") from e
      with archive:
        yield archive

  def names(self) -> list[str]:
    try:
      with self._open() as archive:
        return [m.name for m in archive if m.isfile()]
    except (tarfile.TarError, EOFError, OSError) as e:
      raise ValueError(
          f"{self.path}: corrupt or truncated archive ({e}).") from e

  def iter_case_bytes(self, cases):
    """Yields (case, image bytes, [grader bytes]) in archive order.

    A case is emitted as soon as its five members were read, so memory holds
    only cases whose files are spread through the archive.
    """
    wanted = {}
    for case in cases:
      wanted[case.image] = case
      for name in case.graders.values():
        wanted[name] = case
    pending = collections.defaultdict(dict)
    try:
      with self._open() as archive:
        for member in archive:
          case = wanted.get(member.name)
          if case is None or not member.isfile():
            continue
          files = pending[case.image_id]
          files[member.name] = archive.extractfile(member).read()
          if len(files) == 1 + NUM_GRADERS:
            del pending[case.image_id]
            yield case, files[case.image], [
                files[case.graders[g]] for g in range(NUM_GRADERS)]
    except (tarfile.TarError, EOFError, OSError) as e:
      raise ValueError(
          f"{self.path}: corrupt or truncated archive ({e}).") from e
    if pending:  # Only possible if the archive changed between the passes.
      raise ValueError(f"{self.path}: incomplete cases {sorted(pending)[:5]}.")

  def __str__(self):
    return str(self.path)


class _DirSplit:
  """One split as an extracted folder holding images/ and gt/."""

  def __init__(self, root: epath.Path):
    self.root = root

  def names(self) -> list[str]:
    names = []
    for sub in ("images", "gt"):
      base = self.root / sub
      if base.exists():
        # The layout is exactly <sub>/<patient>/<file>.png.
        names.extend(
            p.relative_to(self.root).as_posix() for p in base.glob("*/*.png"))
    return names

  def iter_case_bytes(self, cases):
    for case in cases:
      yield case, (self.root / case.image).read_bytes(), [
          (self.root / case.graders[g]).read_bytes()
          for g in range(NUM_GRADERS)]

  def __str__(self):
    return str(self.root)


def find_crop_splits(manual_dir: epath.Path):
  """Maps split name -> `_TarSplit` or `_DirSplit`; errors if any is missing."""
  splits, missing = {}, []
  for split, archive in CROPS_ARCHIVES.items():
    folder = archive[:-len(".tar.gz")]
    candidates = [manual_dir / folder, manual_dir / folder / folder]
    if (manual_dir / archive).exists():
      splits[split] = _TarSplit(manual_dir / archive)
    elif found := [c for c in candidates if (c / "images").is_dir()]:
      splits[split] = _DirSplit(found[0])
    else:
      missing.append(f"{archive} (or extracted {folder}/images, {folder}/gt)")
  if missing:
    raise FileNotFoundError(
        f"LIDC crops: missing {', '.join(missing)} in manual_dir {manual_dir}."
        f" Expected:\n{_CROPS_LAYOUT}\n{Builder.MANUAL_DOWNLOAD_INSTRUCTIONS}")
  return splits


# ----------------------------------------------------------------------------
# `pickle` config.
# ----------------------------------------------------------------------------

# Globals a plain pickle of dicts, strings and numpy arrays may reference.
_SAFE_GLOBALS = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # Python 2 pickles of byte strings.
})


class _SafeUnpickler(pickle.Unpickler):
  """Refuses to import anything but numpy array reconstruction helpers."""

  def __init__(self, file, source):
    super().__init__(file, encoding="latin1")  # latin1: Python 2 pickles.
    self._source = source

  def find_class(self, module, name):
    if module.startswith("numpy.core"):  # NumPy 1.x pickles.
      module = "numpy._core" + module[len("numpy.core"):]
    if (module, name) not in _SAFE_GLOBALS:
      raise pickle.UnpicklingError(
          f"{self._source}: refusing to load global {module}.{name}; expected"
          " only dicts, lists, strings and numpy arrays.")
    return super().find_class(module, name)


def load_pickle(path: epath.Path) -> Mapping[str, Any]:
  """Loads `data_lidc.pickle` by streaming it (no single >2 GB read).

  The widely copied loader reads the file in 2 GB chunks into one bytearray
  because a single `read()` of more than 2 GB fails on some platforms. The
  unpickler below instead pulls the file through a buffered stream, which
  avoids both the large read and a second in-memory copy of the file.
  """
  try:
    with path.open("rb") as raw:
      buffered = io.BufferedReader(raw, buffer_size=1 << 24)
      data = _SafeUnpickler(buffered, path).load()
  except (EOFError, pickle.UnpicklingError, ValueError, TypeError,
          AttributeError, ImportError) as e:
    raise ValueError(
        f"{path}: cannot read the pickle ({type(e).__name__}: {e}). Expected"
        f" the complete file:\n{_PICKLE_LAYOUT}") from e
  if not isinstance(data, Mapping):
    raise ValueError(
        f"{path}: expected a pickled dict of records, got"
        f" {type(data).__name__}.")
  return data


def _patient_id(key: str, series_uid: str) -> str:
  """The patient id in the key if there is one, else the series_uid.

  The pickle records the scan (series_uid), not the patient. LIDC has 1018
  scans of 1010 patients, so a series-level split can put a handful of
  patients' second scans in another split.
  """
  match = re.search(r"LIDC-IDRI-\d{4}", key)
  return match.group(0) if match else series_uid


def split_series(series_uids) -> dict[str, str]:
  """Deterministic series_uid -> split map (see the module docstring)."""
  unique = sorted(set(series_uids),
                  key=lambda s: (hashlib.sha256(s.encode()).hexdigest(), s))
  n = len(unique)
  if n < len(PICKLE_SPLIT_FRACTIONS):
    raise ValueError(
        f"{PICKLE_FILE}: found {n} distinct series_uid(s); need at least"
        f" {len(PICKLE_SPLIT_FRACTIONS)} for a train/validation/test split.")
  counts = [max(1, round(frac * n)) for _, frac in PICKLE_SPLIT_FRACTIONS[1:]]
  counts.insert(0, n - sum(counts))
  out, start = {}, 0
  for (split, _), count in zip(PICKLE_SPLIT_FRACTIONS, counts):
    for uid in unique[start:start + count]:
      out[uid] = split
    start += count
  return out


def _unit_float_to_uint8(image, size: int, name: str) -> np.ndarray:
  image = np.asarray(image)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  if image.shape != (size, size):
    raise ValueError(f"{name}: 'image' has shape {image.shape}, expected"
                     f" ({size}, {size}).")
  if np.issubdtype(image.dtype, np.integer):
    scaled = image.astype(np.float64) / np.iinfo(image.dtype).max
  elif np.issubdtype(image.dtype, np.floating):
    scaled = image.astype(np.float64)
    if not np.all(np.isfinite(scaled)):
      raise ValueError(f"{name}: 'image' contains NaN or infinite values.")
    low, high = scaled.min(), scaled.max()
    if low < -1e-3 or high > 1 + 1e-3:
      raise ValueError(
          f"{name}: float 'image' has values in [{low:.4g}, {high:.4g}],"
          " expected [0, 1].")
  else:
    raise ValueError(f"{name}: 'image' has dtype {image.dtype}, expected a"
                     " float in [0, 1] or an integer type.")
  return np.round(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def _pickle_masks(masks, size: int, name: str) -> np.ndarray:
  if isinstance(masks, np.ndarray) and masks.ndim == 3:
    masks = list(masks)
  if not isinstance(masks, (list, tuple)) or len(masks) != NUM_GRADERS:
    raise ValueError(f"{name}: 'masks' must be a list of {NUM_GRADERS} arrays,"
                     f" got {type(masks).__name__} of length"
                     f" {len(masks) if hasattr(masks, '__len__') else '?'}.")
  out = []
  for g, mask in enumerate(masks):
    mask = np.asarray(mask)
    if mask.shape != (size, size):
      raise ValueError(f"{name}: masks[{g}] has shape {mask.shape}, expected"
                       f" ({size}, {size}).")
    out.append((mask > 0).astype(np.uint8))
  return np.stack(out, axis=-1)


# ----------------------------------------------------------------------------
# The builder.
# ----------------------------------------------------------------------------


class Builder(tfds.core.GeneratorBasedBuilder):
  """LIDC-IDRI crops with 4 gradings (HPU-Net crops, or the LIDCv1 pickle)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      LidcConfig(
          name="crops", image_size=180,
          description="HPU-Net 180x180 crops, official patient split."),
      LidcConfig(
          name="pickle", image_size=128,
          description="data_lidc.pickle 128x128, seeded split by series_uid."),
  ]
  DEFAULT_CONFIG_NAME = "crops"
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Config `crops` (default): download train.tar.gz, val.tar.gz and test.tar.gz from
gs://hpunet-data/lidc_crops/ (e.g. `gsutil -m cp
gs://hpunet-data/lidc_crops/*.tar.gz <manual_dir>/`; see
deepmind-research/hierarchical_probabilistic_unet) and put them, or their
extracted train/, val/, test/ folders, into manual_dir:
{_CROPS_LAYOUT}
Config `pickle`: download data_lidc.pickle (linked from the README of
stefanknegt/Probabilistic-Unet-Pytorch) into manual_dir:
{_PICKLE_LAYOUT}
"""

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.image_size
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(size, size, 1)),
            "masks": tfds.features.Tensor(
                shape=(size, size, NUM_GRADERS), dtype=np.uint8,
                encoding=tfds.features.Encoding.ZLIB),
            "patient_id": tfds.features.Text(),
            "image_id": tfds.features.Text(),
        }),
        homepage="https://github.com/google-deepmind/deepmind-research/tree/"
        "master/hierarchical_probabilistic_unet",
    )

  def _split_generators(self, dl_manager):
    manual_dir = epath.Path(dl_manager.manual_dir)
    if self.builder_config.name == "pickle":
      return self._pickle_split_generators(manual_dir)
    splits = find_crop_splits(manual_dir)
    # Index (and validate) every split before anything is written.
    indexed = {split: (source, index_crop_files(source.names(), str(source)))
               for split, source in splits.items()}
    return {split: self._generate_examples(source, cases)
            for split, (source, cases) in indexed.items()}

  def _generate_examples(self, source, items):
    """Yields (key, example); `items`: crop cases or pickle records."""
    if self.builder_config.name == "pickle":
      return self._generate_pickle(source, items)
    return self._generate_crops(source, items)

  def _generate_crops(self, source, cases):
    size = self.builder_config.image_size
    for case, image_bytes, grader_bytes in source.iter_case_bytes(cases):
      image = _decode_png(image_bytes, f"{source}: {case.image}")
      _check_size(image, size, f"{source}: {case.image}")
      gray = _grayscale_to_unit_uint8(image, f"{source}: {case.image}")
      masks = []
      for g, data in enumerate(grader_bytes):
        name = f"{source}: {case.graders[g]}"
        mask = _decode_png(data, name)
        _check_size(mask, size, name)
        masks.append(_binary_mask(mask))
      yield case.image_id, {
          "image": _encode_png(gray),
          "masks": np.stack(masks, axis=-1),
          "patient_id": case.patient,
          "image_id": case.image_id,
      }

  def _pickle_split_generators(self, manual_dir: epath.Path):
    path = manual_dir / PICKLE_FILE
    if not path.exists():
      raise FileNotFoundError(
          f"LIDC pickle: missing {PICKLE_FILE} in manual_dir {manual_dir}."
          f" Expected:\n{_PICKLE_LAYOUT}")
    data = load_pickle(path)
    records = []
    for key, record in data.items():
      name = f"{path}: record {key!r}"
      if not isinstance(record, Mapping) or not {
          "image", "masks", "series_uid"} <= set(record):
        got = (sorted(record) if isinstance(record, Mapping)
               else type(record).__name__)
        raise ValueError(
            f"{name}: expected a dict with keys 'image', 'masks',"
            f" 'series_uid', got {got}.")
      records.append((str(key), record))
    if not records:
      raise ValueError(f"{path}: the pickle holds no records.")
    records.sort(key=lambda kv: kv[0])
    assignment = split_series(str(r["series_uid"]) for _, r in records)
    by_split = collections.defaultdict(list)
    for key, record in records:
      by_split[assignment[str(record["series_uid"])]].append((key, record))
    return {split: self._generate_examples(path, by_split[split])
            for split, _ in PICKLE_SPLIT_FRACTIONS}

  def _generate_pickle(self, path, records):
    size = self.builder_config.image_size
    for key, record in records:
      name = f"{path}: record {key!r}"
      image = _unit_float_to_uint8(record["image"], size, name)
      series_uid = str(record["series_uid"])
      yield key, {
          "image": _encode_png(image),
          "masks": _pickle_masks(record["masks"], size, name),
          "patient_id": _patient_id(key, series_uid),
          "image_id": key,
      }
