# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Loading experiment configs (`configs/<name>.py`) by name or path.

Config files are plain Python modules with `get_config(arg=None)` in the
checkout's `configs/` (installed with the package as `hpunet/_configs`, so
names resolve from any directory); they are loaded by path, so derived configs (the LIDC ablations, for
example) load their base with `load_config("lidc", arg)` and override a few
fields instead of copying it. Tests use `config_names()` to build every one.

Also holds the small helpers the config files share. Plain Python:
ml_collections only.
"""

import importlib.util
import json
import os
from typing import Sequence

from etils import epath
import ml_collections



def _config_dir() -> str:
  """The checkout's `configs/`, else the copy installed with the package."""
  here = os.path.dirname(os.path.abspath(__file__))
  checkout = os.path.join(os.path.dirname(here), "configs")
  if os.path.isfile(os.path.join(checkout, "synthetic.py")):
    return checkout
  return os.path.join(here, "_configs")


CONFIG_DIR = _config_dir()


def config_path(name_or_path: str) -> str:
  """'lidc' -> <configs>/lidc.py; paths are returned unchanged."""
  if name_or_path.endswith(".py") or os.sep in name_or_path:
    return name_or_path
  return os.path.join(CONFIG_DIR, name_or_path + ".py")


def resolve_config_flags(argv: Sequence[str]) -> list[str]:
  """`--config=lidc[:arg]` -> `--config=<configs>/lidc.py[:arg]`.

  Lets the commands take a config name from any directory; paths (anything
  with a `/` or ending in `.py`) are left unchanged.
  """
  out = []
  for arg in argv:
    if arg.startswith("--config="):
      value = arg[len("--config="):]
      name, sep, variant = value.partition(":")
      if name and not (name.endswith(".py") or os.sep in name or
                       "/" in name) and os.path.exists(config_path(name)):
        arg = f"--config={config_path(name)}{sep}{variant}"
    out.append(arg)
  return out


def load_config(name_or_path: str,
                arg: str | None = None) -> ml_collections.ConfigDict:
  """Calls `get_config(arg)` of a config file.

  Args:
    name_or_path: a config name such as "lidc" (looked up in `configs/`), or
      a path; "name:arg" is accepted as in `--config=configs/x.py:arg`.
    arg: the variant (e.g. "smoke"), if not given after a colon.

  Returns:
    The ConfigDict.
  """
  if ":" in os.path.basename(name_or_path):
    name_or_path, arg = name_or_path.rsplit(":", 1)
  path = config_path(name_or_path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"No config file {path}.")
  module_name = "hpunet_configs_" + os.path.splitext(
      os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(module_name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg is not None else module.get_config()


def load_workdir_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run was trained with (`<workdir>/config.json`)."""
  path = epath.Path(workdir) / "config.json"  # local or e.g. gs://
  if not path.exists():
    raise FileNotFoundError(
        f"{path} not found: is {workdir} a training workdir of "
        "`python -m hpunet.train`? Pass --config to give the config instead.")
  return ml_collections.ConfigDict(json.loads(path.read_text()))


def config_names() -> list[str]:
  """Every experiment config in `configs/` (files with `get_config`)."""
  names = []
  for filename in sorted(os.listdir(CONFIG_DIR)):
    if filename.endswith(".py") and not filename.startswith("_"):
      with open(os.path.join(CONFIG_DIR, filename), encoding="utf-8") as f:
        if "def get_config(" in f.read():
          names.append(filename[:-3])
  return names


def parse_arg(arg: str | None, allowed: Sequence[str] = ("smoke",)
              ) -> str | None:
  """Validates a config variant argument (None = the paper setting)."""
  if arg in (None, ""):
    return None
  if arg not in allowed:
    raise ValueError(f"Unknown config variant {arg!r}; expected one of "
                     f"{tuple(allowed)} (or none for the paper setting).")
  return arg


def smoke_durations(config: ml_collections.ConfigDict) -> None:
  """Durations of a smoke run: a few steps, everything exercised once."""
  config.input.eval_batch_size = config.input.batch_size
  config.num_train_steps = 6
  config.log_every_steps = 2
  config.checkpoint_every_steps = 3
  config.summary_images_every_steps = 6
  # Keep the number of drops; the first one happens inside the smoke run.
  config.lr_schedule.boundaries = tuple(
      range(4, 4 + len(config.lr_schedule.boundaries)))
  for eval_config in config.evals.values():
    eval_config.every_steps = 6
    eval_config.split = eval_config.split.split("[")[0] + "[:4]"
    eval_config.batch_size = 4
    eval_config.num_samples = 2
