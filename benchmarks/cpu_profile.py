# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Where the CPU train step spends its time, and a sweep of XLA:CPU flags.

Two modes, each printing ONE JSON object (benchmarks/common.py layout):

- default (`"benchmark": "cpu_profile"`): compiles the train step of one
  config on the CPU devices (`train_step.prepare`: host-filled parameters, a
  fixed random batch), runs `--warmup` steps, times `--steps` unprofiled steps
  (median wall time; FLOPs from XLA's cost analysis of the compiled step, as
  in train_step.py), then runs `--profile_steps` steps under
  `jax.profiler.trace` and reads the trace back (`jax.profiler.ProfileData`).
  The XLA ops of the step run as events named after their HLO instruction
  (`ynn_fusion.206`, `transpose_copy_fusion.296`, `convolution.14`, `copy`,
  `while`, ...) on XLA's host threads (lines `tf_XLAEigen/<id>`, one per
  worker thread, and `tf_XLAPjRtCpuClient/<id>`); runtime wrappers
  (`ThunkExecutor::Execute`, `ThreadpoolListener::...`, `end: ...` markers)
  are not ops. Each op counts its EXCLUSIVE time (its duration minus the
  events nested in it on the same thread, so a `while` does not count its
  body twice). Reported: op thread-seconds per step, `cores_busy` = op
  thread-seconds / wall seconds of a step (2.0 = both cores of a 2-core
  machine computing all the time; well below the CPU count = threads idle,
  e.g. ops too small to split), the share of op time per category
  (`categorize`: convolution, transpose/copy, dot, reduction, elementwise
  fusion, other), the top ops, and an ESTIMATE of the convolutions' GFLOP/s
  (all of the step's FLOPs, nearly all convolution FLOPs, over the
  convolution thread-seconds spread over the usable CPUs).
- `--flags_sweep` (`"cpu_flags"`): the default mode (optionally without the
  profile) in one subprocess per XLA flag variant of `FLAG_VARIANTS` (XLA
  reads XLA_FLAGS when JAX starts, hence processes), appended to the
  inherited XLA_FLAGS, for each config of `--configs`: step time, GFLOP/s
  and speedup over the `default` variant (no extra flags) in ONE run, and
  the fastest variant. A variant that fails (e.g. a flag this jaxlib does
  not know) is reported with its error line.

  python benchmarks/cpu_profile.py [--config=lidc] [--batch=8] [--steps=5]
      [--profile_steps=3] [--warmup=2] [--no_profile] [--trace_dir=DIR]
  python benchmarks/cpu_profile.py --config=synthetic       # batch 16, 64x64
  python benchmarks/cpu_profile.py --flags_sweep [--configs=lidc,synthetic]
      [--variants=default,onednn] [--no_profile]
  python benchmarks/cpu_profile.py --config=synthetic --variant=smoke \
      --batch=1 --steps=1 --profile_steps=1        # tiny (tests)

Default batches: 8 for `lidc` (128x128), 16 for `synthetic` (64x64), the
config's batch otherwise. Cost on a 2-core CPU: the LIDC step compiles in
about 20 s and runs in about 2.3 s at batch 8, so the default mode should
take about a minute and the sweep about a minute per LIDC variant (estimates
from those two figures, not timed end to end).

`results` of the default mode: compile_seconds, lower_seconds,
step_seconds_median, step_seconds_all, images_per_second, flop_per_step,
gflop_per_step, achieved_gflops_per_second, params, devices, loss_finite,
and `profile` (null with --no_profile): profiled_steps,
profiled_step_seconds, op_thread_seconds_per_step, usable_cpus,
op_threads, cores_busy, cores_busy_profiled, threads, by_category
({category: {seconds_per_step, share}}), top_ops, top_op_kinds,
convolution_thread_seconds_per_step, convolution_gflops_per_second_estimate,
convolution_estimate_note. `results` of --flags_sweep: variants
({name: flags}) and by_config.<config>: batch, image_size, by_variant.<name>
(ok, xla_flags, step_seconds_median, achieved_gflops_per_second,
speedup_over_default, ... or error), best_variant,
best_speedup_over_default, default_step_seconds_spread.
"""

import argparse
import collections
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Iterable, Sequence

import common  # benchmarks/common.py (also puts the repo on sys.path)
import jax
import jax.numpy as jnp
import train_step  # benchmarks/train_step.py

from hpunet import config_lib

# Default batch per config name without a variant (else the config's own).
DEFAULT_BATCHES = {"lidc": 8, "synthetic": 16}

# XLA:CPU flag variants of --flags_sweep, appended to the inherited
# XLA_FLAGS; all of these flags exist in jaxlib 0.10.2 (a flag that a
# jaxlib does not know makes its variant fail, reported, not fatal).
FLAG_VARIANTS = {
    "default": "",
    "onednn": "--xla_cpu_use_onednn=true",
    "xnnpack": "--xla_cpu_use_xnnpack=true",
    # An empty list of YNNPACK fusion types: convolutions and dots go to
    # XLA's own emitters / Eigen instead of YNNPACK.
    "ynnpack_off": "--xla_cpu_experimental_ynn_fusion_type=",
    "single_thread_eigen": "--xla_cpu_multi_thread_eigen=false",
    "concurrency_scheduler":
        "--xla_cpu_enable_concurrency_optimized_scheduler=true",
}

CATEGORIES = ("convolution", "transpose_copy", "dot", "reduction",
              "elementwise_fusion", "other")
_CONV_PREFIXES = ("ynn_fusion", "convolution", "conv_general_dilated",
                  "xnn_fusion", "onednn")
# An HLO instruction name: no spaces, "::", "$" or parentheses (those are
# runtime wrappers, markers such as "end: copy" and Python tracer events).
_OP_NAME = re.compile(r"[A-Za-z_][\w.\-]*\Z")
_TOP = 15


def _parse(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--config", default="lidc",
                 help="config name (configs/<name>.py) or path.")
  p.add_argument("--variant", default=None, help="e.g. smoke")
  p.add_argument("--batch", type=int, default=None,
                 help=f"global batch (default: {DEFAULT_BATCHES}, else the "
                 "config's).")
  p.add_argument("--image_size", default=None, help="H,W (default: crop).")
  p.add_argument("--warmup", type=int, default=2,
                 help="untimed steps after the compile.")
  p.add_argument("--steps", type=int, default=5, help="timed steps.")
  p.add_argument("--profile_steps", type=int, default=3,
                 help="steps under the profiler.")
  p.add_argument("--no_profile", action="store_true",
                 help="time only (results.profile = null).")
  p.add_argument("--trace_dir", default=None,
                 help="keep the trace there (TensorBoard / Perfetto); "
                 "default: a temporary folder, deleted.")
  p.add_argument("--flags_sweep", action="store_true",
                 help="one subprocess per variant of FLAG_VARIANTS.")
  p.add_argument("--configs", default="lidc,synthetic",
                 help="comma list for --flags_sweep.")
  p.add_argument("--variants", default=None,
                 help="comma list of FLAG_VARIANTS names for --flags_sweep "
                 "(default: all).")
  p.add_argument("--variant_timeout_s", type=float, default=3600,
                 help="--flags_sweep: a variant running longer fails.")
  return p.parse_args(argv)


# ----------------------------------------------------------------------------
# Reading the trace (pure functions).
# ----------------------------------------------------------------------------


def categorize(op_name: str) -> str:
  """The category of an XLA:CPU op, from its HLO instruction name."""
  name = op_name.lower()
  if name.startswith(_CONV_PREFIXES) or "convolution" in name:
    return "convolution"
  if "transpose" in name or "copy" in name or "reverse" in name:
    return "transpose_copy"
  if re.search(r"(^|_)dot([._\-]|$)", name):
    return "dot"
  if "reduce" in name:
    return "reduction"
  if "fusion" in name:
    return "elementwise_fusion"
  return "other"


def op_kind(op_name: str) -> str:
  """The op name without its numeric suffix (`ynn_fusion.206`: `ynn_fusion`)."""
  return re.sub(r"\.\d+$", "", op_name)


def is_op(name: str) -> bool:
  """Whether a trace event is an XLA op (not a wrapper, marker or Python)."""
  return bool(_OP_NAME.match(name))


def exclusive_times(events: Sequence[tuple[str, int, int]]
                    ) -> list[tuple[str, float]]:
  """(name, start_ns, duration_ns) events of ONE thread -> (name, self ns).

  An event's self time is its duration minus that of the events directly
  nested in it (events on one thread nest or follow each other).
  """
  order = sorted(range(len(events)),
                 key=lambda i: (events[i][1], -events[i][2]))
  own = [float(e[2]) for e in events]
  stack = []  # indices of the open events, innermost last
  for i in order:
    _, start, duration = events[i]
    end = start + duration
    while stack and end > events[stack[-1]][1] + events[stack[-1]][2]:
      stack.pop()  # ended before this event does: not its parent
    if stack:
      own[stack[-1]] -= duration
    stack.append(i)
  return [(e[0], max(t, 0.0)) for e, t in zip(events, own)]


def summarize_trace(lines: Iterable[tuple[str, Sequence[tuple[str, int, int]]]],
                    *, steps: int, step_seconds: float,
                    profiled_step_seconds: float, flop_per_step: float,
                    usable_cpus: int) -> dict[str, Any]:
  """The `profile` block of the results from the trace's thread lines.

  Args:
    lines: (thread line name, [(event name, start_ns, duration_ns)]) for the
      host threads; the line named "python" (Python tracer) is skipped.
    steps: steps the trace holds (figures are per step).
    step_seconds: unprofiled wall time of a step.
    profiled_step_seconds: mean wall time of a step under the profiler.
    flop_per_step: XLA's FLOPs of the step (NaN if unknown).
    usable_cpus: CPUs the process may run on.
  """
  per_op = collections.Counter()
  calls = collections.Counter()
  per_thread = collections.Counter()
  for line_name, events in lines:
    if line_name == "python":
      continue
    for name, ns in exclusive_times(events):
      if not is_op(name):
        continue
      per_op[name] += ns
      calls[name] += 1
      per_thread[line_name] += ns
  total_ns = sum(per_op.values())
  op_s = total_ns / 1e9 / steps

  def share(ns):
    return common.sig(ns / total_ns) if total_ns else 0.0

  def per_step(ns):
    return common.sig(ns / 1e9 / steps)

  by_cat = collections.Counter()
  kinds = collections.Counter()
  kind_calls = collections.Counter()
  for name, ns in per_op.items():
    by_cat[categorize(name)] += ns
    kinds[op_kind(name)] += ns
    kind_calls[op_kind(name)] += calls[name]
  top_ops = [{"op": name, "category": categorize(name),
              "seconds_per_step": per_step(ns), "share": share(ns),
              "calls_per_step": common.sig(calls[name] / steps)}
             for name, ns in per_op.most_common(_TOP)]
  top_kinds = [{"op_kind": kind, "category": categorize(kind),
                "seconds_per_step": per_step(ns), "share": share(ns),
                "calls_per_step": common.sig(kind_calls[kind] / steps)}
               for kind, ns in kinds.most_common(_TOP)]
  conv_s = by_cat["convolution"] / 1e9 / steps
  conv_gflops = None
  if conv_s > 0 and flop_per_step == flop_per_step:  # not NaN
    conv_gflops = common.sig(flop_per_step / (conv_s / usable_cpus) / 1e9)
  return {
      "profiled_steps": steps,
      "profiled_step_seconds": common.sig(profiled_step_seconds),
      "op_thread_seconds_per_step": common.sig(op_s),
      "usable_cpus": usable_cpus,
      "op_threads": len(per_thread),
      "cores_busy": common.sig(op_s / step_seconds),
      "cores_busy_profiled": common.sig(op_s / profiled_step_seconds),
      "threads": [{"thread": name.split("/")[0],
                   "op_seconds_per_step": per_step(ns)}
                  for name, ns in per_thread.most_common()],
      "by_category": {c: {"seconds_per_step": per_step(by_cat[c]),
                          "share": share(by_cat[c])} for c in CATEGORIES},
      "top_ops": top_ops,
      "top_op_kinds": top_kinds,
      "convolution_thread_seconds_per_step": common.sig(conv_s),
      "convolution_gflops_per_second_estimate": conv_gflops,
      "convolution_estimate_note": (
          "ESTIMATE: all of the step's XLA FLOPs (convolutions and the "
          "rest) over the convolution ops' thread-seconds divided by the "
          "usable CPUs, i.e. the rate if every FLOP were a convolution FLOP "
          "and the convolutions kept every CPU busy; profiled op times "
          "include the tracer's overhead."),
  }


def _trace_lines(trace_dir: str):
  """(line name, events) of the host-CPU plane(s) of the newest trace."""
  files = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"),
                    recursive=True)
  if not files:
    raise RuntimeError(f"no *.xplane.pb under {trace_dir}.")
  data = jax.profiler.ProfileData.from_file(max(files, key=os.path.getmtime))
  out = []
  for plane in data.planes:
    if not plane.name.startswith("/host:"):
      continue
    for line in plane.lines:
      out.append((line.name, [(e.name, int(e.start_ns), int(e.duration_ns))
                              for e in line.events]))
  return out


# ----------------------------------------------------------------------------
# Default mode: time and profile one config's step.
# ----------------------------------------------------------------------------


def measure(config_name: str, *, variant: str | None = None,
            batch: int | None = None,
            image_size: tuple[int, int] | None = None, warmup: int = 2,
            steps: int = 5, profile_steps: int = 3, profile: bool = True,
            trace_dir: str | None = None
            ) -> tuple[dict[str, Any], dict[str, Any]]:
  """Times (and profiles) one config's CPU train step: (config, results)."""
  if steps < 1 or (profile and profile_steps < 1):
    raise ValueError("--steps and --profile_steps must be >= 1.")
  config = config_lib.load_config(config_name, variant)
  plain = variant is None and ":" not in os.path.basename(config_name)
  base = os.path.splitext(os.path.basename(config_name))[0]
  batch_size = batch or (DEFAULT_BATCHES.get(base) if plain else None) or int(
      config.input.batch_size)
  image_size = tuple(image_size or config.input.crop_size)
  used, mesh_note = train_step.fit_mesh(config, batch_size, jax.devices("cpu"))
  setup = train_step.prepare(config, batch_size, image_size, used)
  c = train_step.compile_step(setup)
  state, _, _ = train_step.run_steps(setup, setup.state, max(warmup, 1))
  state, metrics, times = train_step.run_steps(setup, state, steps)
  step_s = statistics.median(times)
  flop_per_step = c["flops_per_device"] * len(used)
  results = {
      "compile_seconds": round(c["compile_seconds"], 2),
      "lower_seconds": round(c["lower_seconds"], 2),
      "step_seconds_median": round(step_s, 6),
      "step_seconds_all": [round(t, 6) for t in times],
      "images_per_second": common.sig(batch_size / step_s),
      "flop_per_step": flop_per_step,
      "gflop_per_step": common.sig(flop_per_step / 1e9),
      "achieved_gflops_per_second": common.sig(flop_per_step / step_s / 1e9),
      "params": setup.num_params,
      "devices": len(used),
      "loss_finite": bool(jnp.isfinite(metrics["loss"])),
      "profile": None,
  }
  common.progress({"config": config_name, "step_seconds_median": step_s})
  if profile:
    folder = trace_dir or tempfile.mkdtemp(prefix="hpunet_cpu_profile_")
    try:
      options = jax.profiler.ProfileOptions()
      options.python_tracer_level = 0  # Python events only add overhead
      with jax.profiler.trace(folder, profiler_options=options):
        state, metrics, profiled = train_step.run_steps(
            setup, state, profile_steps)
      profiled_s = sum(profiled) / len(profiled)  # as the op times: a mean
      results["profile"] = summarize_trace(
          _trace_lines(folder), steps=profile_steps, step_seconds=step_s,
          profiled_step_seconds=profiled_s, flop_per_step=flop_per_step,
          usable_cpus=common.usable_cpus())
    finally:
      if trace_dir is None:
        shutil.rmtree(folder, ignore_errors=True)
  settings = {
      "mode": "profile", "config": config_name, "variant": variant,
      "batch": batch_size, "paper_batch": int(config.input.batch_size),
      "image_size": [int(v) for v in image_size],
      "mesh": {"data": int(config.mesh.data),
               "spatial": int(config.mesh.spatial)},
      "mesh_note": mesh_note, "compute_dtype": config.compute_dtype,
      "warmup": max(warmup, 1), "steps": steps,
      "profile": profile, "profile_steps": profile_steps if profile else 0,
      "trace_dir": trace_dir, "platform": "cpu",
      "xla_flags": os.environ.get("XLA_FLAGS") or None,
      "compilation_cache": jax.config.jax_compilation_cache_dir,
  }
  return settings, results


# ----------------------------------------------------------------------------
# --flags_sweep: the default mode once per XLA flag variant.
# ----------------------------------------------------------------------------


def _error_line(stderr: str) -> str:
  """The line of a failed run's stderr that says why (else its last line)."""
  lines = [l.strip() for l in stderr.splitlines() if l.strip()]
  for line in reversed(lines):
    if re.search(r"unknown flag|error|fatal|check failed|abort", line,
                 re.IGNORECASE):
      return line[:500]
  return lines[-1][:500] if lines else "(no output on stderr)"


def run_variant(name: str, flags: str, argv: list[str], *,
                timeout_s: float) -> dict[str, Any]:
  """The default mode in a subprocess with `flags` added to XLA_FLAGS."""
  env = dict(os.environ)
  xla_flags = " ".join(f for f in (env.get("XLA_FLAGS", ""), flags) if f)
  if xla_flags:
    env["XLA_FLAGS"] = xla_flags
  else:
    env.pop("XLA_FLAGS", None)
  cmd = [sys.executable, os.path.abspath(__file__), *argv]
  entry = {"variant": name, "flags": flags, "xla_flags": xla_flags or None,
           "ok": False}
  t0 = time.perf_counter()
  try:
    proc = subprocess.run(cmd, env=env, cwd=common.REPO, text=True,
                          capture_output=True, timeout=timeout_s, check=False)
  except subprocess.TimeoutExpired:
    entry["error"] = f"timed out after {timeout_s:g} s"
    return entry
  entry["wall_seconds"] = round(time.perf_counter() - t0, 1)
  lines = [l for l in proc.stdout.splitlines() if l.strip()]
  if proc.returncode or len(lines) != 1:
    sys.stderr.write(proc.stderr)
    entry["returncode"] = proc.returncode
    entry["error"] = (_error_line(proc.stderr) if proc.returncode else
                      f"printed {len(lines)} lines on stdout, expected one "
                      "JSON object")
    return entry
  obj = json.loads(lines[0])
  r = obj["results"]
  entry.update({
      "ok": True,
      "compile_seconds": r["compile_seconds"],
      "step_seconds_median": r["step_seconds_median"],
      "step_seconds_all": r["step_seconds_all"],
      "images_per_second": r["images_per_second"],
      "gflop_per_step": r["gflop_per_step"],
      "achieved_gflops_per_second": r["achieved_gflops_per_second"],
      "loss_finite": r["loss_finite"],
      "speedup_over_default": None,
      "batch": obj["config"]["batch"],
      "image_size": obj["config"]["image_size"],
  })
  p = r["profile"]
  if p is not None:
    entry["cores_busy"] = p["cores_busy"]
    entry["op_thread_seconds_per_step"] = p["op_thread_seconds_per_step"]
    entry["category_shares"] = {c: v["share"]
                                for c, v in p["by_category"].items()}
  return entry


def flags_sweep(configs: list[str], variants: list[str], *,
                variant: str | None, batch: int | None,
                image_size: str | None, warmup: int, steps: int,
                profile_steps: int, profile: bool, timeout_s: float
                ) -> tuple[dict[str, Any], dict[str, Any]]:
  """Runs every flag variant for every config; (config, results)."""
  unknown = [v for v in variants if v not in FLAG_VARIANTS]
  if unknown:
    raise ValueError(f"--variants: unknown {unknown}; choose from "
                     f"{list(FLAG_VARIANTS)}.")
  by_config = {}
  for config_name in configs:
    argv = [f"--config={config_name}", f"--warmup={warmup}",
            f"--steps={steps}", f"--profile_steps={profile_steps}"]
    argv += [f"--variant={variant}"] if variant else []
    argv += [f"--batch={batch}"] if batch else []
    argv += [f"--image_size={image_size}"] if image_size else []
    argv += [] if profile else ["--no_profile"]
    rows = {}
    for name in variants:
      common.progress(f"-- {config_name} / {name}: "
                      f"XLA_FLAGS += {FLAG_VARIANTS[name]!r}")
      rows[name] = run_variant(name, FLAG_VARIANTS[name], argv,
                               timeout_s=timeout_s)
      common.progress({k: rows[name].get(k) for k in (
          "variant", "ok", "step_seconds_median", "error")})
    default = rows.get("default")
    base_s = (default["step_seconds_median"]
              if default and default["ok"] else None)
    for row in rows.values():
      if row["ok"] and base_s:
        row["speedup_over_default"] = round(
            base_s / row["step_seconds_median"], 3)
    ok = [r for r in rows.values() if r["ok"]]
    best = min(ok, key=lambda r: r["step_seconds_median"]) if ok else None
    spread = None
    if base_s:
      times = default["step_seconds_all"]
      spread = round((max(times) - min(times)) / base_s, 3)
    first = ok[0] if ok else {}
    by_config[config_name] = {
        "batch": first.get("batch"), "image_size": first.get("image_size"),
        "by_variant": rows,
        "best_variant": best["variant"] if best else None,
        "best_speedup_over_default":
            best["speedup_over_default"] if best else None,
        # (max - min) / median of the default's step times: speedups
        # within this are noise.
        "default_step_seconds_spread": spread,
    }
  settings = {
      "mode": "flags_sweep", "configs": configs, "variant": variant,
      "batch": batch, "image_size": image_size, "variants": variants,
      "warmup": warmup, "steps": steps, "profile": profile,
      "profile_steps": profile_steps if profile else 0,
      "base_xla_flags": os.environ.get("XLA_FLAGS") or None,
      "note": "one subprocess per (config, variant); the variant's flags "
              "are appended to the inherited XLA_FLAGS; speedup_over_default "
              "= default step seconds / variant step seconds (> 1: faster).",
  }
  results = {"variants": {v: FLAG_VARIANTS[v] for v in variants},
             "by_config": by_config}
  return settings, results


def main(argv=None) -> dict[str, Any]:
  args = _parse(argv)
  jax.config.update("jax_threefry_partitionable", True)
  if args.flags_sweep:
    variants = (args.variants.split(",") if args.variants else
                list(FLAG_VARIANTS))
    settings, results = flags_sweep(
        args.configs.split(","), variants, variant=args.variant,
        batch=args.batch, image_size=args.image_size, warmup=args.warmup,
        steps=args.steps, profile_steps=args.profile_steps,
        profile=not args.no_profile, timeout_s=args.variant_timeout_s)
    obj = common.report("cpu_flags", settings, results)
  else:
    image_size = (tuple(int(v) for v in args.image_size.split(","))
                  if args.image_size else None)
    settings, results = measure(
        args.config, variant=args.variant, batch=args.batch,
        image_size=image_size, warmup=args.warmup, steps=args.steps,
        profile_steps=args.profile_steps, profile=not args.no_profile,
        trace_dir=args.trace_dir)
    obj = common.report("cpu_profile", settings, results, with_jax=True)
  common.emit(obj)
  return obj


if __name__ == "__main__":
  main()
