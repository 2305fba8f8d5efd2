# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Runs every benchmark, saves each JSON and prints a Markdown summary.

Each benchmark runs in its own process at its default setting (CPU-sized,
except sampling, which times the full LIDC models), or with `--accelerator`
at the full sizes; the CPU run also profiles the LIDC and synthetic train
steps (cpu_profile.py) and times them under each XLA:CPU flag variant
(`cpu_profile.py --flags_sweep`). Its JSON goes to
`<out_dir>/<name>.json` and the table (what | command | measured |
hardware) to stdout and `<out_dir>/summary.md`. The README's benchmark
table is regenerated from it. Progress and the benchmarks' stderr go to
stderr. Exits with 1 if any benchmark failed (the others still run).
The saved JSON is the benchmark's object plus a "command" key (how it ran).

  python benchmarks/run_all.py [--out_dir benchmarks/results]
      [--only train_step,clustering] [--accelerator]
  python benchmarks/run_all.py --summarize_only   # table from saved JSONs

On a 2-core CPU the whole CPU run should take roughly 30 minutes, most of
it compiling: train_step --compile_all (about 14 configs x 10-40 s),
spatial_memory (the full Cityscapes model 4 times), and the LIDC train step
(about 22 s to compile, about 2.3 s per step at batch 8) once for
cpu_profile_lidc and once per flag variant in cpu_flags (6 processes of
about a minute each), plus the synthetic step's 7 processes and the full
LIDC sampling models. This is an estimate, not timed end to end: the run
list before the CPU profile, the flag sweep and full-size sampling took
15-20 minutes, and these add about 10-15 minutes by the figures above.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any, Callable, NamedTuple

import common  # benchmarks/common.py

_HERE = os.path.dirname(os.path.abspath(__file__))
_MIB = 2**20

# CPU-only runs: where the CPU step's time goes, and XLA:CPU flag variants
# (profiled separately; the sweep only times, to stay cheap).
_CPU_RUNS = (
    ("cpu_profile_lidc", ("--config=lidc",)),
    ("cpu_profile_synthetic", ("--config=synthetic",)),
    ("cpu_flags", ("--flags_sweep", "--configs=lidc,synthetic",
                   "--no_profile")),
)

# Paper configs timed one by one with --accelerator (the LIDC ablations
# train the same network as `lidc`, so they would repeat its figures).
_ACCELERATOR_TRAIN_CONFIGS = ("lidc_spunet", "snemi3d", "snemi3d_spunet",
                              "cityscapes", "cityscapes_flips_spunet",
                              "synthetic", "synthetic_spunet")


class Benchmark(NamedTuple):
  name: str  # <out_dir>/<name>.json
  script: str
  args: tuple[str, ...]


def benchmarks(accelerator: bool, out_dir: str) -> list[Benchmark]:
  """The runs, in order (input_pipeline reuses train_step.json)."""
  runs = [Benchmark("train_step", "train_step.py", ())]
  if accelerator:
    for name in _ACCELERATOR_TRAIN_CONFIGS:
      # Cityscapes' paper batch (128, spatial 4) needs a pod slice.
      extra = ("--per_device_batch=1",) if name == "cityscapes" else ()
      runs.append(Benchmark(f"train_step_{name}", "train_step.py",
                            (f"--config={name}",) + extra))
  else:
    runs += [Benchmark(name, "cpu_profile.py", args)
             for name, args in _CPU_RUNS]
  size = ("--size=full", "--batch=8") if accelerator else ()
  step_json = os.path.join(out_dir, "train_step.json")
  runs += [
      Benchmark("train_step_compile", "train_step.py", ("--compile_all",)),
      Benchmark("train_step_flops", "train_step.py", ("--flops_only",)),
      Benchmark("spatial_memory", "spatial_memory.py", ()),
      Benchmark("sampling_hpunet", "sampling.py", ("--model=hpunet",) + size),
      Benchmark("sampling_spunet", "sampling.py", ("--model=spunet",) + size),
      Benchmark("ensemble_members", "ensemble_members.py", ()),
      Benchmark("clustering", "clustering.py", ()),
      Benchmark("evaluation", "evaluation.py", ()),
      Benchmark("input_pipeline", "input_pipeline.py",
                (f"--train_step_json={step_json}",)),
  ]
  return runs


def command(bench: Benchmark, args=None) -> str:
  """The command line as run from the repository root (paths relative)."""
  args = bench.args if args is None else args
  text = " ".join(["python", f"benchmarks/{bench.script}", *args])
  return text.replace(common.REPO + os.sep, "")


def run_benchmark(bench: Benchmark, out_dir: str) -> dict[str, Any]:
  """Runs one benchmark in a subprocess; saves and returns its JSON.

  Raises:
    RuntimeError: if it fails or does not print one JSON object with the
      envelope keys of benchmarks/common.py.
  """
  args = list(bench.args)
  if bench.name == "input_pipeline" and not os.path.exists(
      os.path.join(out_dir, "train_step.json")):
    args = [a for a in args if not a.startswith("--train_step_json")]
  proc = subprocess.run(
      [sys.executable, os.path.join(_HERE, bench.script), *args],
      stdout=subprocess.PIPE, stderr=None, text=True, check=False,
      cwd=common.REPO)
  if proc.returncode:
    raise RuntimeError(f"{command(bench)} exited with {proc.returncode}.")
  lines = [l for l in proc.stdout.splitlines() if l.strip()]
  if len(lines) != 1:
    raise RuntimeError(f"{command(bench)} printed {len(lines)} lines on "
                       "stdout, expected one JSON object.")
  obj = json.loads(lines[0])
  missing = [k for k in common.ENVELOPE_KEYS if k not in obj]
  if missing:
    raise RuntimeError(f"{command(bench)}: JSON lacks {missing}.")
  obj["command"] = command(bench, args)
  with open(os.path.join(out_dir, bench.name + ".json"), "w",
            encoding="utf-8") as f:
    json.dump(obj, f, indent=1)
    f.write("\n")
  return obj


# ----------------------------------------------------------------------------
# Summary: one Markdown row per JSON.
# ----------------------------------------------------------------------------


def _g(x: float, digits: int = 3) -> str:
  return f"{x:.{digits}g}"


def _train_step(obj) -> tuple[str, str]:
  c, r = obj["config"], obj["results"]
  h, w = c["image_size"]
  what = (f"train step, `{c['config']}`"
          + (f":{c['variant']}" if c.get("variant") else "")
          + f", {h}×{w}, batch {c['batch']}"
          + (f" (CPU-reduced; paper {c['paper_batch']})"
             if c.get("reduced_for_cpu") else ""))
  parts = []
  for dtype, d in r["by_dtype"].items():
    mfu = (f"MFU {100 * d['mfu']:.1f}%" if d["mfu"] is not None else
           "MFU n/a (no peak FLOP/s for this device)")
    parts.append(
        f"{dtype}: {_g(d['step_seconds_median'])} s/step, "
        f"{_g(d['images_per_second'])} images/s, "
        f"{_g(d['gflop_per_step'], 4)} GFLOP/step "
        f"({_g(d['achieved_gflops_per_second'], 4)} GFLOP/s), {mfu}, "
        f"compile {_g(d['compile_seconds'])} s")
  if r.get("bfloat16_speedup_over_float32"):
    parts.append(f"bfloat16 {r['bfloat16_speedup_over_float32']:.2f}× "
                 "faster than float32")
  return what, "; ".join(parts)


def _train_step_compile(obj) -> tuple[str, str]:
  r = obj["results"]
  what = ("train-step compile time per config (lower + compile, one example "
          "per data device, crop size)")
  items = [f"{c['config']} {_g(c['compile_seconds'])} s "
           f"({_g(c['gflop_per_step'])} GFLOP, "
           f"{c['temp_bytes_per_device'] / _MIB:.0f} MiB temp)"
           for c in r["configs"]]
  return what, "; ".join(items) + f"; total {r['total_seconds']:.0f} s"


def _train_step_flops(obj) -> tuple[str, str]:
  what = "train-step FLOPs at the paper batch (lowered step)"
  items = [f"{c['config']} {c['gflop_per_step']:g} GFLOP/step "
           f"(batch {c['batch']}, {c['pflop_total']:g} PFLOP in total)"
           for c in obj["results"]["configs"]]
  return what, "; ".join(items)


def _spatial_memory(obj) -> tuple[str, str]:
  c, rows = obj["config"], obj["results"]["by_spatial"]
  h, w = c["image_size"]
  what = (f"spatial partitioning, `{c['config']}` {h}×{w}, "
          f"{c['examples_per_spatial_group']} example(s) per spatial group, "
          "per-device temp memory")
  ks = " / ".join(str(r["spatial"]) for r in rows)
  mib = " / ".join(f"{r['temp_bytes_per_device'] / _MIB:.0f}" for r in rows)
  text = f"spatial {ks}: {mib} MiB"
  if all(r["temp_vs_spatial_1"] is not None for r in rows):
    ratios = " / ".join(f"{r['temp_vs_spatial_1']:g}" for r in rows)
    ideal = " / ".join(f"{r['ideal']:g}" for r in rows)
    text += f" ({ratios} of spatial = 1; ideal {ideal})"
  return what, text


def _sampling(obj) -> tuple[str, str]:
  c, r = obj["config"], obj["results"]
  size = c["image_shape"][1]
  what = (f"sampling, {c['num_samples']} samples, encoder reuse vs full "
          f"rerun ({c['model']['name']}, {c['size']}, {size}², batch "
          f"{c['image_shape'][0]})")
  text = (f"{_g(r['reuse_samples_per_s'], 4)} vs "
          f"{_g(r['rerun_samples_per_s'], 4)} samples/s "
          f"({r['speedup']:.2f}×)")
  if "reuse_seconds_per_image" in r:  # JSONs from before lack it
    text += (f"; {c['num_samples']} samples of one image in "
             f"{_g(r['reuse_seconds_per_image'])} s with reuse")
    if r.get("reuse_achieved_gflops_per_second") is not None:
      text += f" ({_g(r['reuse_achieved_gflops_per_second'], 4)} GFLOP/s)"
  return what, text


_CATEGORY_TEXT = {"convolution": "convolution",
                  "transpose_copy": "transpose/copy", "dot": "dot",
                  "reduction": "reduction",
                  "elementwise_fusion": "elementwise fusions",
                  "other": "other"}


def _cpu_profile(obj) -> tuple[str, str]:
  c, r = obj["config"], obj["results"]
  h, w = c["image_size"]
  what = (f"CPU train-step profile, `{c['config']}`"
          + (f":{c['variant']}" if c.get("variant") else "")
          + f", {h}×{w}, batch {c['batch']}")
  text = (f"{_g(r['step_seconds_median'])} s/step, "
          f"{_g(r['achieved_gflops_per_second'], 4)} GFLOP/s")
  p = r.get("profile")
  if p:
    cats = sorted(p["by_category"].items(), key=lambda kv: -kv[1]["share"])
    shares = ", ".join(f"{_CATEGORY_TEXT.get(k, k)} {100 * v['share']:.0f}%"
                       for k, v in cats if v["share"] >= 0.005)
    text += (f"; {_g(p['cores_busy'])} of {p['usable_cpus']} cores busy "
             f"(op thread-time / wall); op time: {shares}")
    if p.get("convolution_gflops_per_second_estimate") is not None:
      text += (f"; convolutions ≈ "
               f"{_g(p['convolution_gflops_per_second_estimate'], 4)} "
               "GFLOP/s (estimate)")
  return what, text


def _cpu_flags(obj) -> tuple[str, str]:
  what = ("XLA:CPU flag variants of the train step (one process each; "
          "speedup over no extra flags)")
  parts = []
  for name, cfg in obj["results"]["by_config"].items():
    items = []
    for variant, v in cfg["by_variant"].items():
      if not v["ok"]:
        items.append(f"{variant} failed")
      elif variant == "default" or v["speedup_over_default"] is None:
        items.append(f"{variant} {_g(v['step_seconds_median'])} s/step "
                     f"({_g(v['achieved_gflops_per_second'], 4)} GFLOP/s)")
      else:
        items.append(f"{variant} {v['speedup_over_default']:.2f}×")
    head = f"`{name}`" + (f" batch {cfg['batch']}" if cfg["batch"] else "")
    best = (f"; best {cfg['best_variant']}" if cfg["best_variant"] else
            "; no variant ran")
    parts.append(f"{head}: {', '.join(items)}{best}")
  return what, "; ".join(parts)


def _ensemble_members(obj) -> tuple[str, str]:
  c, r = obj["config"], obj["results"]
  h, w = c["image_size"]
  what = (f"U-Net Ensemble train step, `{c['config']}`, M = "
          f"{c['num_members']}, {h}×{w}, batch {c['batch']}: members "
          "batched (vmap) vs unrolled")
  items = [f"{loop} {_g(v['step_seconds_median'])} s/step"
           for loop, v in r["by_loop"].items()]
  text = ", ".join(items)
  if r.get("vmap_over_unroll_step_time") is not None:
    text += f" (vmap / unroll = {r['vmap_over_unroll_step_time']:.3g})"
  return what, text


def _clustering(obj) -> tuple[str, str]:
  what = "Hamming clustering + post-processing (best of repeats)"
  items = [f"{name}: {_g(v['seconds_cluster'][0])} s + "
           f"{_g(v['seconds_postprocess'][0])} s"
           for name, v in obj["results"].items()]
  return what, "; ".join(items)


def _evaluation(obj) -> tuple[str, str]:
  c, r = obj["config"], obj["results"]
  what = (f"evaluation, {c['images']} images × {c['samples']} samples × "
          f"{c['graders']} graders, {c['size']}²")
  return what, (f"GED² {_g(r['seconds_ged'])} s + Hungarian IoU "
                f"{_g(r['seconds_hungarian_iou'])} s = "
                f"{_g(r['seconds_total'])} s; bootstrap (1000) "
                f"{_g(r['seconds_bootstrap_1000'])} s")


def _input_pipeline(obj) -> tuple[str, str]:
  what = (f"augmented input pipeline ({obj['config']['usable_cpus']} CPUs) "
          "vs train-step consumption")
  items = []
  for name, t in obj["results"].items():
    text = f"{name} {_g(t['examples_per_s'], 4)} examples/s"
    step = t.get("train_step")
    if step:
      text += (f" = {_g(t['pipeline_over_train_step'])}× the train step's "
               f"{_g(step['images_per_second'])} images/s "
               f"(`{step['config']}`, batch {step['batch']})")
    items.append(text)
  return what, "; ".join(items)


_SUMMARIES: dict[str, Callable[[dict], tuple[str, str]]] = {
    "train_step": _train_step,
    "train_step_compile": _train_step_compile,
    "train_step_flops": _train_step_flops,
    "spatial_memory": _spatial_memory,
    "sampling": _sampling,
    "cpu_profile": _cpu_profile,
    "cpu_flags": _cpu_flags,
    "ensemble_members": _ensemble_members,
    "clustering": _clustering,
    "evaluation": _evaluation,
    "input_pipeline": _input_pipeline,
}


# The vector-ISA flags of `hardware.cpu_isa` the hardware cell shows.
_ISA_SHOWN = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile",
              "asimd", "sve", "sve2", "bf16")


def hardware_text(hw: dict[str, Any], config: dict[str, Any]) -> str:
  """The accelerator if the benchmark ran on one, and the host CPU."""
  host = f"{hw['cpu']}, {hw.get('usable_cpus', hw['cpu_cores'])} CPUs"
  isa = [f for f in _ISA_SHOWN if f in (hw.get("cpu_isa") or ())]
  if isa:  # JSONs from before lack cpu_isa
    host += " (" + " ".join(isa) + ")"
  if hw.get("xla_flags"):
    host += f", XLA_FLAGS=`{hw['xla_flags']}`"
  platform = config.get("platform") or hw.get("jax_platform") or "cpu"
  if platform == "cpu":  # spatial_memory always compiles for CPU devices
    return host
  return f"{hw['jax_devices']}× {hw['jax_device_kind']} ({host})"


def summary_row(obj: dict[str, Any], default_command: str | None = None
                ) -> str:
  """One table row; `default_command` for JSONs saved by hand."""
  what, measured = _SUMMARIES[obj["benchmark"]](obj)
  cmd = obj.get("command") or default_command or obj["benchmark"]
  cells = [what, f"`{cmd}`", measured,
           hardware_text(obj["hardware"], obj["config"])]
  return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def summary_table(objs: list[dict[str, Any]],
                  commands: list[str] | None = None) -> str:
  lines = ["| what | command | measured | hardware |", "|---|---|---|---|"]
  commands = commands or [None] * len(objs)
  lines += [summary_row(o, c) for o, c in zip(objs, commands)]
  versions = sorted({f"jax {o['versions'].get('jax')}" for o in objs
                     if o["versions"].get("jax")})
  dates = sorted(o["date"][:10] for o in objs)
  if dates:
    lines.append("")
    lines.append(f"Measured {dates[0]}"
                 + (f" to {dates[-1]}" if dates[-1] != dates[0] else "")
                 + (f", {', '.join(versions)}" if versions else "") + ".")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out_dir", default=os.path.join(_HERE, "results"))
  parser.add_argument("--only", default=None,
                      help="comma list of result names (e.g. train_step).")
  parser.add_argument("--accelerator", action="store_true",
                      help="full sizes, and every paper config's step.")
  parser.add_argument("--summarize_only", action="store_true",
                      help="no runs: the table from <out_dir>/*.json.")
  args = parser.parse_args(argv)
  os.makedirs(args.out_dir, exist_ok=True)
  runs = benchmarks(args.accelerator, args.out_dir)
  if args.only:
    wanted = set(args.only.split(","))
    unknown = wanted - {b.name for b in runs}
    if unknown:
      raise SystemExit(f"--only: unknown {sorted(unknown)}; choose from "
                       f"{[b.name for b in runs]}.")
    runs = [b for b in runs if b.name in wanted]
  failed = []
  if not args.summarize_only:
    for bench in runs:
      common.progress(f"== {bench.name}: {command(bench)}")
      t0 = time.perf_counter()
      try:
        run_benchmark(bench, args.out_dir)
      except (RuntimeError, ValueError) as e:
        failed.append(bench.name)
        common.progress(f"!! {bench.name} FAILED: {e}")
      common.progress(f"== {bench.name}: {time.perf_counter() - t0:.0f} s")
  objs, commands = [], []
  for bench in runs:  # saved results, in run order, including older ones
    path = os.path.join(args.out_dir, bench.name + ".json")
    if os.path.exists(path) and bench.name not in failed:
      with open(path, encoding="utf-8") as f:
        objs.append(json.load(f))
      commands.append(command(bench))
  table = summary_table(objs, commands)
  with open(os.path.join(args.out_dir, "summary.md"), "w",
            encoding="utf-8") as f:
    f.write(table + "\n")
  print(table)
  if failed:
    common.progress(f"failed: {failed}")
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
