# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""TFDS builders from the repository's top-level `datasets/` folder: import and
prepare them (the library behind `python -m hpunet.build_dataset`).

Usage (from the repository root):

  python -m hpunet.build_dataset lidc --manual_dir=~/data/lidc_crops \
      --data_dir=~/tensorflow_datasets
  python -m hpunet.build_dataset lidc/pickle --manual_dir=~/data/lidc_pickle
  python -m hpunet.build_dataset snemi3d --manual_dir=~/data/snemi3d
  python -m hpunet.build_dataset hpunet_cityscapes/cars --manual_dir=~/data/cityscapes
  python -m hpunet.build_dataset hpunet_cityscapes/flips \
      --manual_dir=~/data/cityscapes --file_format=array_record
  python -m hpunet.build_dataset folder/mydata --manual_dir=~/my_annotations

Why not `tfds build`: the CLI imports `apache_beam` and `mlcroissant` at
start-up, and installing them downgrades protobuf, pyarrow and pillow.

Why import by path: the builders live in `datasets/<name>/` at the repository
root and are deliberately *not* an installed package, because a package named
`datasets` would shadow Hugging Face's `datasets`. `load_builder_module` imports
`datasets/<name>/<name>_dataset_builder.py` as
`_hpunet_datasets.<name>.<name>_dataset_builder`; that registers its `Builder`
with TFDS under `<name>`.
Code that reads a prepared dataset with `tfds.builder(...)`/`tfds.load(...)`
calls `load_builder_module(name)` first.

TFDS writes every dataset into a `*.incomplete*` temporary directory and renames
it only after all splits were written, so a build that fails (bad input, an
interrupted run) leaves no dataset directory behind that looks complete. The
next `build` removes such `incomplete.*` folders of an interrupted build
(`remove_stale_partial_builds`, logged); one modified in the last
`STALE_AFTER_SECONDS` may belong to a build still running and is only
reported.
"""

import hashlib
import importlib
import os
import pathlib
import re
import shutil
import sys
import time
import types
from typing import Optional

from absl import logging
from etils import epath
import tensorflow_datasets as tfds

# The private top-level package name under which builder modules are imported.
_PACKAGE = "_hpunet_datasets"
_BUILDER_SUFFIX = "_dataset_builder"
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
FILE_FORMATS = ("tfrecord", "array_record")
STALE_AFTER_SECONDS = 600.0


def default_datasets_dir() -> pathlib.Path:
  """Returns the folder of the TFDS builders.

  The checkout's top-level `datasets/`, else the copy installed with the
  package (`hpunet/_datasets`); the environment variable `HPUNET_DATASETS_DIR`
  overrides both.
  """
  override = os.environ.get("HPUNET_DATASETS_DIR")
  if override:
    return pathlib.Path(override).expanduser().resolve()
  here = pathlib.Path(__file__).resolve().parent
  checkout = here.parent / "datasets"
  if (checkout / "synthetic").is_dir():
    return checkout
  return here / "_datasets"  # the copy installed with the package


def available_datasets(datasets_dir=None) -> list[str]:
  """Names `<n>` that have a `datasets/<n>/<n>_dataset_builder.py`."""
  root = pathlib.Path(datasets_dir or default_datasets_dir())
  if not root.is_dir():
    return []
  return sorted(
      p.name for p in root.iterdir()
      if (p / f"{p.name}{_BUILDER_SUFFIX}.py").is_file())


def split_dataset_name(name: str) -> str:
  """`"lidc/pickle:1.0.0"` -> `"lidc"` (the builder folder name)."""
  base = re.split(r"[/:]", name, maxsplit=1)[0]
  if not _NAME_RE.match(base):
    raise ValueError(
        f"Invalid dataset name {name!r}: expected '<name>[/<config>]' where"
        " <name> is a folder in datasets/ (lowercase letters, digits, '_').")
  return base


def _package_name(datasets_dir: pathlib.Path) -> str:
  """`_hpunet_datasets` for the repository's folder, a hashed name otherwise."""
  if datasets_dir == default_datasets_dir():
    return _PACKAGE
  digest = hashlib.sha1(str(datasets_dir).encode()).hexdigest()[:10]
  return f"{_PACKAGE}_{digest}"


def _ensure_package(datasets_dir: pathlib.Path) -> str:
  """Registers a package rooted at `datasets_dir`; returns its name."""
  name = _package_name(datasets_dir)
  if name not in sys.modules:
    package = types.ModuleType(name)
    package.__doc__ = f"TFDS builders imported by path from {datasets_dir}."
    package.__path__ = [str(datasets_dir)]
    package.__package__ = name
    # TFDS finds a builder's README.md / CITATIONS.bib next to its module via
    # the top package's `__file__`; only its parent folder is used.
    package.__file__ = str(datasets_dir / "__init__.py")
    sys.modules[name] = package
  return name


def load_builder_module(name: str, datasets_dir=None) -> types.ModuleType:
  """Imports `datasets/<name>/<name>_dataset_builder.py` and returns it.

  Importing the module registers its `Builder` class with TFDS under `<name>`
  (TFDS derives the name from the `*_dataset_builder` module name), so that
  `tfds.builder("<name>/<config>", data_dir=...)` and `tfds.load(...)` work
  afterwards. Repeated calls return the same module object (registering a
  builder twice is an error in TFDS).

  The module is imported as `_hpunet_datasets.<name>.<name>_dataset_builder`
  (another `datasets_dir` gets its own hashed package name), so a builder may
  use relative imports of helpers in its own folder. TFDS keeps one builder per
  name per process: loading a second `<name>` from another folder fails.

  Args:
    name: dataset name, optionally with config and version
      (`"lidc"`, `"lidc/pickle"`, `"lidc/pickle:1.0.0"`).
    datasets_dir: folder holding the builder folders; defaults to the
      repository's `datasets/` (see `default_datasets_dir`).

  Returns:
    The imported builder module (its `Builder` attribute is the TFDS class).

  Raises:
    FileNotFoundError: no builder file for `name`; lists the available ones.
  """
  base = split_dataset_name(name)
  root = pathlib.Path(datasets_dir or default_datasets_dir()).resolve()
  module_name = f"{_package_name(root)}.{base}.{base}{_BUILDER_SUFFIX}"
  if module_name in sys.modules:
    return sys.modules[module_name]
  path = root / base / f"{base}{_BUILDER_SUFFIX}.py"
  if not path.is_file():
    raise FileNotFoundError(
        f"No TFDS builder for dataset {base!r}: expected the file {path}."
        f" Available datasets in {root}: {available_datasets(root) or 'none'}.")
  _ensure_package(root)
  try:
    module = importlib.import_module(module_name)
  except ValueError as e:
    if "already registered" not in str(e):
      raise
    raise ValueError(
        f"Cannot register {path}: another TFDS builder named {base!r} was"
        " already imported in this process (e.g. a builder of TFDS' own"
        " catalogue with the same name)."
        f" Call hpunet.dataset_builders.load_builder_module({base!r}) before any"
        f" tfds.builder/tfds.load of {base!r}.") from e
  if not hasattr(module, "Builder"):
    raise AttributeError(f"{path} defines no class named `Builder`.")
  return module


def build(name: str,
          manual_dir=None,
          data_dir=None,
          file_format: str = "tfrecord",
          datasets_dir=None):
  """Prepares `name` (e.g. `"lidc"`, `"hpunet_cityscapes/cars"`) with TFDS.

  Args:
    name: `<name>[/<config>][:<version>]`.
    manual_dir: folder holding the manually downloaded files (local or e.g.
      gs://); required by all builders that define
      `MANUAL_DOWNLOAD_INSTRUCTIONS`.
    data_dir: TFDS data dir; `None` uses TFDS' default (`~/tensorflow_datasets`
      or `$TFDS_DATA_DIR`).
    file_format: `"tfrecord"` or `"array_record"` (the latter is needed for
      `tfds.data_source` random access).
    datasets_dir: builder folder root; defaults to the repository's
      `datasets/`.

  A builder module may define `make_builder(name, data_dir=, manual_dir=)`
  when its config is read from the files (`folder`: sizes and grader count).

  Returns:
    The prepared `tfds.core.DatasetBuilder` (returned at once if `data_dir`
    already holds the prepared dataset).

  Raises:
    FileNotFoundError: missing builder, or `manual_dir` missing/empty (the
      message repeats the builder's manual download instructions).
    ValueError: bad `file_format`, or bad input files (raised by the builder,
      naming the file and what was expected).
  """
  if file_format not in FILE_FORMATS:
    raise ValueError(
        f"file_format={file_format!r}; expected one of {FILE_FORMATS}.")
  module = load_builder_module(name, datasets_dir)

  def open_builder():
    if hasattr(module, "make_builder"):
      # Builders whose config is read from the files (`folder`: the sizes).
      return module.make_builder(name, data_dir=expand_path(data_dir),
                                 manual_dir=expand_path(manual_dir))
    return tfds.builder(name, data_dir=expand_path(data_dir))

  builder = open_builder()
  if builder.is_prepared():  # Nothing to do (and no manual_dir needed).
    return builder
  remove_stale_partial_builds(builder.data_dir)
  instructions = getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None)
  if manual_dir is not None:
    manual_dir = expand_path(manual_dir)
  if instructions:
    if manual_dir is None:
      raise FileNotFoundError(
          f"Dataset {name!r} needs --manual_dir. {instructions}")
    folder = epath.Path(manual_dir)  # local or e.g. gs://
    if not folder.is_dir() or not any(folder.iterdir()):
      raise FileNotFoundError(
          f"Manual directory {manual_dir} for dataset {name!r} does not exist"
          f" or is empty. {instructions}")
  return download_and_prepare(
      builder, reopen=open_builder,
      download_config=tfds.download.DownloadConfig(
          manual_dir=manual_dir, try_download_gcs=False),
      file_format=file_format)


def download_and_prepare(builder, *, reopen, **kwargs):
  """`builder.download_and_prepare(**kwargs)`, when another process may be
  building the same dataset into the same `data_dir`.

  Several training runs started at once on a fresh machine each build the
  dataset they find missing. TFDS writes each build into its own
  `incomplete.*` folder and renames it into place at the end; every build but
  the first then fails that rename with FileExistsError (and removes its own
  folder). The dataset in place is then complete (TFDS renames only whole
  builds), so this returns `reopen()`, a builder that reads it.

  Args:
    builder: the unprepared `tfds.core.DatasetBuilder`.
    reopen: makes a new builder of the same dataset (the failed one holds
      the in-memory info of its own build).
    **kwargs: for `builder.download_and_prepare`.

  Returns:
    The prepared builder.
  """
  try:
    builder.download_and_prepare(**kwargs)
  except FileExistsError:
    info = epath.Path(builder.data_dir) / "dataset_info.json"
    if not info.exists():
      raise
    logging.info("%s was built by another process meanwhile; using it.",
                 builder.data_dir)
    builder = reopen()
    if not builder.is_prepared():
      raise
  return builder


def remove_stale_partial_builds(dataset_dir, *,
                                stale_after: float = STALE_AFTER_SECONDS,
                                now: Optional[float] = None) -> list[str]:
  """Removes `incomplete.*` siblings of `dataset_dir` left by a killed build.

  Args:
    dataset_dir: the builder's `<data_dir>/<name>/<config>/<version>`.
    stale_after: a folder with a file modified more recently may belong to
      a build still running: it is reported, not removed.
    now: the current time (tests).

  Returns:
    The removed folders (each is also logged).
  """
  parent = os.path.dirname(os.fspath(dataset_dir).rstrip("/"))
  if "://" in parent or not os.path.isdir(parent):
    return []
  now = time.time() if now is None else now
  removed = []
  for name in sorted(os.listdir(parent)):
    path = os.path.join(parent, name)
    if not name.startswith("incomplete.") or not os.path.isdir(path):
      continue
    newest = os.path.getmtime(path)
    for root, _, files in os.walk(path):
      for f in files:
        try:
          newest = max(newest, os.path.getmtime(os.path.join(root, f)))
        except OSError:
          pass
    if now - newest < stale_after:
      logging.warning("Leaving %s: modified %.0f s ago, another build may be "
                      "writing it.", path, now - newest)
      continue
    shutil.rmtree(path)
    logging.warning("Removed %s, the partial output of an interrupted build.",
                    path)
    removed.append(path)
  return removed


def expand_path(path) -> Optional[str]:
  """Local paths made absolute; URLs such as gs://bucket/dir left unchanged."""
  if path is None:
    return None
  path = os.fspath(path)
  if "://" in path:
    return path
  return os.path.abspath(os.path.expanduser(path))
