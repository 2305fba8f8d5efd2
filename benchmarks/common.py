# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""What every benchmark reports besides its figures: hardware and versions.

Each benchmark prints ONE JSON object with a stable layout, so results can be
compared over time:

  {"benchmark": <name>, "hardware": {...}, "versions": {...},
   "config": {...}, "results": {...}}

`report(...)` builds it. Plain Python; JAX is imported lazily so that
benchmarks without JAX (clustering, metrics) do not pay for it.
"""

import datetime
import importlib.metadata
import json
import os
import platform
import sys
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # run as `python benchmarks/<name>.py`
  sys.path.insert(0, REPO)

_PACKAGES = ("jax", "jaxlib", "dm-haiku", "optax", "numpy", "scipy",
             "tensorflow-cpu", "tensorflow-datasets", "orbax-checkpoint")


def cpu_model() -> str:
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def hardware(with_jax: bool = False) -> dict[str, Any]:
  info = {"cpu": cpu_model(), "cpu_cores": os.cpu_count(),
          "machine": platform.machine()}
  if with_jax:
    import jax  # pylint: disable=g-import-not-at-top
    devices = jax.devices()
    info["jax_backend"] = jax.default_backend()
    info["jax_devices"] = len(devices)
    info["jax_device_kind"] = devices[0].device_kind
  return info


def versions() -> dict[str, str]:
  out = {"python": platform.python_version()}
  for name in _PACKAGES:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      pass
  return out


def report(name: str, config: dict[str, Any], results: dict[str, Any], *,
           with_jax: bool = False) -> dict[str, Any]:
  return {
      "benchmark": name,
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
      "hardware": hardware(with_jax),
      "versions": versions(),
      "config": config,
      "results": results,
  }


def emit(obj: dict[str, Any]) -> None:
  print(json.dumps(obj, sort_keys=False))
