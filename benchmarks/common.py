# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""What every benchmark reports besides its figures, and peak FLOP/s for MFU.

Each benchmark prints ONE JSON object with a stable layout, so results can be
compared over time:

  {"benchmark": <name>, "date": <UTC ISO time>, "hardware": {...},
   "versions": {...}, "config": {...}, "results": {...}}

`config` holds the settings (CLI flags and what they resolved to), `results`
the measured figures. Keys are only ever added, never renamed, so a key path
such as `results.images_per_second` means the same thing in every run of a
benchmark; compare two runs only when their `config` and `hardware` match.

`report(...)` builds the object and `emit(...)` prints it. Plain Python; JAX
is imported lazily so that benchmarks without JAX (clustering, evaluation)
do not pay for it.
"""

import datetime
import importlib.metadata
import json
import math
import os
import platform
import re
import sys
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # run as `python benchmarks/<name>.py`
  sys.path.insert(0, REPO)

_PACKAGES = ("jax", "jaxlib", "dm-haiku", "optax", "numpy", "scipy",
             "tensorflow-cpu", "tensorflow-datasets", "orbax-checkpoint")

# Keys of the envelope, in order (tests and run_all.py check them).
ENVELOPE_KEYS = ("benchmark", "date", "hardware", "versions", "config",
                 "results")


def cpu_model() -> str:
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def usable_cpus() -> int:
  """CPUs this process may run on (less than cpu_count under a cpuset)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not on Linux
    return os.cpu_count() or 1


# CPU features that matter for XLA:CPU's kernels (x86 /proc/cpuinfo
# "flags", Arm "Features"), reported in this order when present.
CPU_ISA_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f",
    "avx512dq", "avx512cd", "avx512bw", "avx512vl", "avx512_vnni",
    "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8",
    "amx_fp16", "asimd", "asimdhp", "asimddp", "sve", "sve2", "bf16",
    "i8mm", "sme")


def cpu_isa() -> list[str]:
  """The entries of CPU_ISA_FLAGS that the first CPU of /proc/cpuinfo has."""
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
          present = set(value.split())
          return [flag for flag in CPU_ISA_FLAGS if flag in present]
  except OSError:
    pass
  return []


def hardware(with_jax: bool = False) -> dict[str, Any]:
  """The host, and with `with_jax` the JAX devices the benchmark ran on.

  `cpu_isa` lists the vector-ISA flags of CPU_ISA_FLAGS the CPU has and
  `xla_flags` is the XLA_FLAGS environment variable (null if unset), so
  results of different machines or flag settings can be told apart.
  """
  info = {"cpu": cpu_model(), "cpu_cores": os.cpu_count(),
          "usable_cpus": usable_cpus(), "machine": platform.machine(),
          "cpu_isa": cpu_isa(),
          "xla_flags": os.environ.get("XLA_FLAGS") or None}
  if with_jax:
    import jax  # pylint: disable=g-import-not-at-top
    devices = jax.devices()
    info["jax_backend"] = jax.default_backend()
    info["jax_platform"] = devices[0].platform
    info["jax_devices"] = len(devices)
    info["jax_local_devices"] = jax.local_device_count()
    info["jax_process_count"] = jax.process_count()
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


def _finite(obj: Any) -> Any:
  """NaN/inf -> None: JSON has no such numbers (null = not measurable)."""
  if isinstance(obj, float) and not math.isfinite(obj):
    return None
  if isinstance(obj, dict):
    return {k: _finite(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_finite(v) for v in obj]
  return obj


def emit(obj: dict[str, Any]) -> None:
  """Prints the report as one line of strict JSON on stdout."""
  print(json.dumps(_finite(obj), sort_keys=False, allow_nan=False),
        flush=True)


def sig(x: float, digits: int = 4) -> float:
  """Rounds to significant digits (a fixed number of decimals would turn
  0.0601 images/s into 0.06)."""
  if not math.isfinite(x) or x == 0:
    return x
  return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def progress(obj: Any) -> None:
  """Per-item progress on stderr, so stdout stays ONE JSON object."""
  text = obj if isinstance(obj, str) else json.dumps(obj)
  print(text, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------
# Peak dense FLOP/s per JAX device, for model FLOP utilisation (MFU).
# ----------------------------------------------------------------------------

# (pattern on the lower-cased `jax.Device.device_kind`, {dtype: FLOP/s}),
# first match wins. Dense figures (no structured sparsity), per JAX DEVICE:
# on TPU v2/v3 every TensorCore is its own JAX device (2 per chip), so those
# entries are half the per-chip figure; TPU v4/v5p (megacore) and the
# single-core v5e/v6e have one device per chip.
#
# "float32" is the peak of the units that JAX's DEFAULT matmul/conv
# precision uses for float32 operands (docs.jax.dev "Matmul precision": bf16
# passes on TPU, TF32 tensor cores on NVIDIA Ampere and later), because that
# is how the float32 train step runs. With `jax_default_matmul_precision`
# raised, the float32 entries do not apply (train_step.py then reports no
# MFU). Vendors publish no float32 figure for TPUs other than this.
#
# Sources (vendor spec sheets):
# - TPU v2: Cloud TPU v2 device (4 chips, 8 TensorCores) = 180 TFLOP/s bf16
#   (Google Cloud TPU announcement and docs) -> 22.5 per TensorCore.
# - TPU v3: cloud.google.com/tpu/docs/v3, 123 TFLOP/s bf16 per chip
#   (2 TensorCores) -> 61.5 per TensorCore.
# - TPU v4: cloud.google.com/tpu/docs/v4, 275 TFLOP/s bf16 per chip.
# - TPU v5e (device kind "TPU v5 lite"): cloud.google.com/tpu/docs/v5e,
#   197 TFLOP/s bf16 per chip.
# - TPU v5p (device kind "TPU v5"): cloud.google.com/tpu/docs/v5p,
#   459 TFLOP/s bf16 per chip.
# - TPU v6e (device kind "TPU v6 lite"): cloud.google.com/tpu/docs/v6e,
#   918 TFLOP/s bf16 per chip.
# - NVIDIA A100 (SXM4 and PCIe, 40/80 GB): A100 datasheet, BF16 tensor
#   312 TFLOP/s, TF32 tensor 156 TFLOP/s (dense).
# - NVIDIA H100 SXM5 (device kind "NVIDIA H100 80GB HBM3"): H100 datasheet /
#   Hopper whitepaper, BF16 tensor 989.4, TF32 tensor 494.7 TFLOP/s (dense;
#   the datasheet's 1,979 / 989 are with sparsity).
# - NVIDIA H100 PCIe: H100 datasheet, BF16 1,513 / TF32 756 with sparsity
#   -> 756.5 / 378 dense.
# - NVIDIA H200 (SXM, device kind "NVIDIA H200"): H200 datasheet, same
#   tensor throughput as H100 SXM (BF16 1,979 / TF32 989 with sparsity).
# H100 NVL, H200 NVL, GH200 and TPUs after v6e have no entry (not checked);
# pass --peak_tflops for them.
_PEAK_FLOPS = (
    (r"tpu v2", {"bfloat16": 22.5e12, "float32": 22.5e12}),
    (r"tpu v3", {"bfloat16": 61.5e12, "float32": 61.5e12}),
    (r"tpu v4", {"bfloat16": 275e12, "float32": 275e12}),
    (r"tpu v5 ?lite|tpu v5e", {"bfloat16": 197e12, "float32": 197e12}),
    (r"tpu v5p?", {"bfloat16": 459e12, "float32": 459e12}),
    (r"tpu v6 ?lite|tpu v6e", {"bfloat16": 918e12, "float32": 918e12}),
    (r"nvidia a100[- ].*", {"bfloat16": 312e12, "float32": 156e12}),
    (r"nvidia h100 (80gb hbm3|sxm.*)",
     {"bfloat16": 989.4e12, "float32": 494.7e12}),
    (r"nvidia h100 pcie", {"bfloat16": 756.5e12, "float32": 378e12}),
    (r"nvidia h200", {"bfloat16": 989.4e12, "float32": 494.7e12}),
)


def peak_flops(device_kind: str, dtype: str) -> float | None:
  """Peak dense FLOP/s of ONE JAX device of this kind, or None if unknown.

  Args:
    device_kind: `jax.Device.device_kind`, e.g. "TPU v4", "TPU v5 lite",
      "NVIDIA H100 80GB HBM3" (matched case-insensitively, whole string).
    dtype: the compute dtype, "bfloat16" or "float32" (see `_PEAK_FLOPS`
      for what float32 means).

  Returns:
    FLOP/s, or None for devices (every CPU) and dtypes without an entry.
  """
  kind = " ".join(device_kind.lower().split())
  for pattern, peaks in _PEAK_FLOPS:
    if re.fullmatch(pattern, kind):
      return peaks.get(dtype)
  return None


def mfu(flops_per_step: float, step_seconds: float,
        peak_flops_per_device: float, num_devices: int) -> float:
  """Achieved FLOP/s over the peak of all devices that ran the step.

  Args:
    flops_per_step: FLOPs of one step summed over all devices.
    step_seconds: wall time of one step.
    peak_flops_per_device: from `peak_flops` (or given by the user).
    num_devices: devices the step ran on.
  """
  if not (step_seconds > 0 and peak_flops_per_device > 0 and num_devices > 0):
    raise ValueError(
        f"mfu needs positive step_seconds ({step_seconds}), "
        f"peak_flops_per_device ({peak_flops_per_device}) and num_devices "
        f"({num_devices}).")
  if not math.isfinite(flops_per_step):
    raise ValueError(f"mfu: flops_per_step is {flops_per_step}.")
  return flops_per_step / step_seconds / (peak_flops_per_device * num_devices)
