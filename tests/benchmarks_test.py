# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Every script in benchmarks/ at a tiny setting: one JSON object with the
stable envelope, and figures that are consistent with each other.

The scripts run in-process (their `main(argv)`), so that JAX, TF and the
persistent compilation cache of the root conftest are shared; evaluation.py
also runs as a subprocess to cover the `python benchmarks/<name>.py` entry.
Tiny smoke configs and `fast_compiles` keep the file well under 90 s.
"""

import contextlib
import importlib
import io
import json
import math
import os
import shutil
import subprocess
import sys

import jax
import pytest

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BENCH = os.path.join(_REPO, "benchmarks")
if _BENCH not in sys.path:  # the scripts import `common` and `train_step`
  sys.path.insert(0, _BENCH)

common = importlib.import_module("common")
assert os.path.dirname(common.__file__) == _BENCH, common.__file__

_RESULTS = {}  # name -> parsed JSON, for the run_all summary test


def _script(name):
  return importlib.import_module(name)


def _run(name, argv, key=None):
  """Runs benchmarks/<name>.py's main(argv); returns the ONE printed JSON."""
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    returned = _script(name).main(argv)
  lines = [l for l in out.getvalue().splitlines() if l.strip()]
  assert len(lines) == 1, lines
  obj = json.loads(lines[0])
  assert obj == json.loads(json.dumps(returned))
  _check_envelope(obj)
  _RESULTS[key or name] = obj
  return obj


def _check_envelope(obj):
  assert tuple(obj) == common.ENVELOPE_KEYS
  assert obj["date"].endswith("+00:00")
  hw = obj["hardware"]
  assert hw["cpu_cores"] >= 1 and 1 <= hw["usable_cpus"] <= hw["cpu_cores"]
  assert obj["versions"]["numpy"] and obj["versions"]["python"]
  assert isinstance(obj["config"], dict) and isinstance(obj["results"], dict)


def _positive(x):
  return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


# ----------------------------------------------------------------------------
# Peak FLOP/s and MFU arithmetic.
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind,dtype,expected", [
    ("TPU v2", "bfloat16", 22.5e12),
    ("TPU v3", "bfloat16", 61.5e12),
    ("TPU v4", "bfloat16", 275e12),
    ("TPU v4", "float32", 275e12),
    ("TPU v5 lite", "bfloat16", 197e12),
    ("TPU v5e", "bfloat16", 197e12),
    ("TPU v5", "bfloat16", 459e12),
    ("TPU v5p", "bfloat16", 459e12),
    ("TPU v6 lite", "bfloat16", 918e12),
    ("NVIDIA A100-SXM4-40GB", "bfloat16", 312e12),
    ("NVIDIA A100 80GB PCIe", "float32", 156e12),
    ("NVIDIA H100 80GB HBM3", "bfloat16", 989.4e12),
    ("NVIDIA H100 80GB HBM3", "float32", 494.7e12),
    ("nvidia  h100 80gb hbm3", "bfloat16", 989.4e12),
    ("NVIDIA H100 PCIe", "bfloat16", 756.5e12),
    ("NVIDIA H200", "bfloat16", 989.4e12),
    # No entry: CPUs, unchecked variants, unknown dtypes.
    ("cpu", "float32", None),
    ("TPU v4 lite", "bfloat16", None),
    ("NVIDIA H100 NVL", "bfloat16", None),
    ("NVIDIA H200 NVL", "bfloat16", None),
    ("TPU v4", "float16", None),
])
def test_peak_flops(kind, dtype, expected):
  assert common.peak_flops(kind, dtype) == expected


def test_sig():
  assert common.sig(0.060123) == 0.06012
  assert common.sig(705.349) == 705.3 and common.sig(12346.0) == 12350.0
  assert common.sig(0.0) == 0.0


def test_mfu_arithmetic():
  # 1 TFLOP per step in 0.5 s on 4 devices of 1 TFLOP/s peak: 2 of 4 TFLOP/s.
  assert common.mfu(1e12, 0.5, 1e12, 4) == 0.5
  with pytest.raises(ValueError, match="step_seconds"):
    common.mfu(1e12, 0.0, 1e12, 4)
  with pytest.raises(ValueError, match="flops_per_step"):
    common.mfu(float("nan"), 1.0, 1e12, 4)


def test_mfu_fields():
  train_step = _script("train_step")
  cpu = train_step.mfu_fields("cpu", "float32", 2e9, 0.1, 2, None)
  assert cpu["mfu"] is None and cpu["peak_tflops_per_device"] is None
  assert "'cpu'" in cpu["mfu_note"] and "--peak_tflops" in cpu["mfu_note"]
  # A given peak: 2 GFLOP / 0.1 s = 20 GFLOP/s over 2 x 10 GFLOP/s = 1.
  given = train_step.mfu_fields("cpu", "float32", 2e9, 0.1, 2, 0.01)
  assert given["mfu"] == pytest.approx(1.0, rel=1e-12)
  assert given["peak_source"] == "--peak_tflops" and given["mfu_note"] is None
  tpu = train_step.mfu_fields("TPU v4", "bfloat16", 275e12, 2.0, 1, None)
  assert tpu["mfu"] == 0.5 and tpu["peak_tflops_per_device"] == 275
  assert tpu["peak_source"] == "common.peak_flops"
  with jax.default_matmul_precision("highest"):  # float32 peaks do not hold
    high = train_step.mfu_fields("TPU v4", "float32", 275e12, 2.0, 1, None)
  assert high["mfu"] is None and "precision" in high["mfu_note"]


# ----------------------------------------------------------------------------
# train_step.py: timing, --compile_all, --flops_only.
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def train_step_json(fast_compiles, tmp_path_factory):
  del fast_compiles
  obj = _run("train_step", [
      "--config=lidc_spunet", "--variant=smoke", "--batch=2", "--steps=2",
      "--compute_dtypes=float32,bfloat16", "--peak_tflops=0.001"])
  path = str(tmp_path_factory.mktemp("bench") / "train_step.json")
  with open(path, "w", encoding="utf-8") as f:
    json.dump(obj, f)
  return obj, path


def test_train_step(train_step_json):
  obj, _ = train_step_json
  c, r = obj["config"], obj["results"]
  assert obj["benchmark"] == "train_step"
  assert c["batch"] == 2 and c["compute_dtypes"] == ["float32", "bfloat16"]
  assert r["devices"] == c["mesh"]["data"] * c["mesh"]["spatial"]
  assert r["params"] > 0 and set(r["by_dtype"]) == {"float32", "bfloat16"}
  for dtype, d in r["by_dtype"].items():
    assert d["compute_dtype"] == dtype
    for key in ("compile_seconds", "step_seconds_median", "images_per_second",
                "flop_per_step", "achieved_gflops_per_second",
                "temp_bytes_per_device"):
      assert _positive(d[key]), (dtype, key, d[key])
    assert len(d["step_seconds_all"]) == 2
    assert d["step_seconds_median"] == pytest.approx(
        sum(d["step_seconds_all"]) / 2, abs=1e-4)
    assert d["images_per_second"] == pytest.approx(
        2 / d["step_seconds_median"], rel=1e-3)
    assert d["gflop_per_step"] == pytest.approx(d["flop_per_step"] / 1e9,
                                                rel=1e-3)
    assert d["loss_finite"] and d["train_step_traces"] == 1
    # MFU against the fake 1 GFLOP/s peak, exactly as documented.
    assert d["peak_tflops_per_device"] == 0.001
    assert d["mfu"] == common.mfu(d["flop_per_step"], d["step_seconds_median"],
                                  1e9, r["devices"])
    assert d["mfu"] == pytest.approx(
        d["flop_per_step"] / d["step_seconds_median"] / (1e9 * r["devices"]),
        rel=1e-12)
  # Top level = the first dtype; the speedup is the ratio of step times.
  assert r["step_seconds_median"] == r["by_dtype"]["float32"][
      "step_seconds_median"]
  assert r["bfloat16_speedup_over_float32"] == round(
      r["by_dtype"]["float32"]["step_seconds_median"] /
      r["by_dtype"]["bfloat16"]["step_seconds_median"], 3)


def test_train_step_compile_all(fast_compiles):
  del fast_compiles
  obj = _run("train_step", ["--compile_all", "--variant=smoke",
                            "--configs=lidc_spunet,synthetic_spunet"],
             key="train_step_compile")
  assert obj["benchmark"] == "train_step_compile"
  rows = obj["results"]["configs"]
  assert [row["config"] for row in rows] == ["lidc_spunet", "synthetic_spunet"]
  for row in rows:
    assert row["batch"] == row["mesh"]["data"]  # one example per data device
    assert row["image_is_crop"] and row["image_size"] == [32, 32]
    for key in ("compile_seconds", "gflop_per_step", "temp_bytes_per_device",
                "params"):
      assert _positive(row[key]), (row["config"], key)
    assert row["gflop_per_example"] == pytest.approx(
        row["gflop_per_step"] / row["batch"], rel=1e-3)
  assert obj["results"]["total_seconds"] >= 0


def test_train_step_flops_only():
  obj = _run("train_step", ["--flops_only", "--variant=smoke",
                            "--configs=lidc_spunet"], key="train_step_flops")
  (row,) = obj["results"]["configs"]
  assert row["config"] == "lidc_spunet" and row["batch"] == 4
  assert _positive(row["gflop_per_step"]) and row["train_steps"] == 6
  assert row["gflop_per_example"] == pytest.approx(row["gflop_per_step"] / 4,
                                                   rel=1e-3)
  assert row["pflop_total"] == pytest.approx(
      row["gflop_per_step"] * 6 / 1e6, rel=1e-3)


# ----------------------------------------------------------------------------
# The other scripts.
# ----------------------------------------------------------------------------


def test_spatial_memory(fast_compiles):
  del fast_compiles
  obj = _run("spatial_memory", ["--config=cityscapes_flips_spunet:smoke",
                                "--spatial=1,2"])
  one, two = obj["results"]["by_spatial"]
  assert (one["spatial"], two["spatial"]) == (1, 2)
  assert one["temp_vs_spatial_1"] == 1.0 and two["ideal"] == 0.5
  assert 0.3 < two["temp_vs_spatial_1"] < 1.0  # the split saves memory
  assert one["collective_permutes"] == 0 < two["collective_permutes"]  # halos
  assert _positive(one["temp_bytes_per_device"])
  assert obj["config"]["platform"] == "cpu"


def test_sampling(fast_compiles):
  del fast_compiles
  obj = _run("sampling", ["--model=spunet", "--size=tiny",
                          "--num_samples=2", "--repeats=1"])
  r = obj["results"]
  assert obj["config"]["image_shape"] == [1, 32, 32, 1]
  assert _positive(r["reuse_seconds"]) and _positive(r["rerun_seconds"])
  assert r["reuse_samples_per_s"] == pytest.approx(2 / r["reuse_seconds"])
  assert r["speedup"] == pytest.approx(r["rerun_seconds"] / r["reuse_seconds"])
  # Batch 1: the per-image time is the call's; FLOPs from XLA's analysis.
  assert r["reuse_seconds_per_image"] == r["reuse_seconds"]
  assert r["rerun_seconds_per_image"] == r["rerun_seconds"]
  assert _positive(r["reuse_gflop_per_call"])
  assert _positive(r["rerun_gflop_per_sample"])
  assert r["reuse_achieved_gflops_per_second"] == pytest.approx(
      r["reuse_gflop_per_call"] / r["reuse_seconds"], rel=1e-3)
  assert r["reuse_compile_seconds"] >= 0


def test_ensemble_members(fast_compiles):
  del fast_compiles
  obj = _run("ensemble_members", ["--variant=smoke", "--batch=2",
                                  "--steps=1"])
  c, r = obj["config"], obj["results"]
  assert c["num_members"] == 3 and c["loops"] == ["unroll", "vmap"]
  assert c["image_size"] == [32, 32]
  for loop in ("unroll", "vmap"):
    v = r["by_loop"][loop]
    assert len(v["step_seconds_all"]) == 1 and _positive(
        v["step_seconds_median"])
    assert v["images_per_second"] == pytest.approx(
        2 / v["step_seconds_median"], rel=1e-3)
  assert r["vmap_over_unroll_step_time"] == pytest.approx(
      r["by_loop"]["vmap"]["step_seconds_median"] /
      r["by_loop"]["unroll"]["step_seconds_median"], rel=1e-2)


def test_clustering():
  obj = _run("clustering", ["--repeats=1", "--cityscapes_shape=4,64,128",
                            "--snemi_shape=4,64,64"])
  r = obj["results"]
  assert list(r) == ["cityscapes_4x64x128",
                     "cityscapes_4x64x128_stress_speckle10pct",
                     "snemi3d_4x64x64"]
  for case in r.values():
    assert 1 <= case["clusters"] <= case["unique_codes"]
    assert case["clusters_after_postprocess"] >= 1
    for key in ("seconds_cluster", "seconds_postprocess",
                "seconds_total_incl_collapse"):
      best, median = case[key]
      assert 0 <= best <= median
    assert case["seconds_total_incl_collapse"][0] > 0


def test_evaluation_cli():
  proc = subprocess.run(
      [sys.executable, os.path.join(_BENCH, "evaluation.py"), "--images=8",
       "--samples=2", "--chunk=4"],
      capture_output=True, text=True, check=True, cwd=_REPO)
  lines = proc.stdout.strip().splitlines()
  assert len(lines) == 1, proc.stdout
  obj = json.loads(lines[0])
  _check_envelope(obj)
  _RESULTS["evaluation"] = obj
  r = obj["results"]
  assert obj["benchmark"] == "evaluation" and obj["config"]["images"] == 8
  assert 0 <= r["mean_ged"] <= 2 and 0 <= r["mean_hungarian_iou"] <= 1
  assert r["seconds_total"] == pytest.approx(
      r["seconds_ged"] + r["seconds_hungarian_iou"], abs=2e-6)
  assert r["seconds_total"] > 0 and r["baseline_subset_images"] == 4
  assert r["bootstrap_ged"][0] == pytest.approx(r["mean_ged"], abs=1e-4)


def test_input_pipeline(train_step_json):
  step_obj, path = train_step_json
  obj = _run("input_pipeline", [
      "--lidc_batches=1", "--cityscapes_batches=1", "--lidc_store=8",
      "--lidc_batch=4", "--cityscapes_store=2", "--cityscapes_batch=1",
      f"--train_step_json={path}",
      "--cityscapes_train_config=cityscapes_flips_spunet:smoke",
      "--train_steps=1"])
  lidc, city = obj["results"]["lidc"], obj["results"]["cityscapes_cars"]
  assert lidc["output_hw"] == [128, 128] and city["output_hw"] == [512, 1024]
  assert lidc["train_step"]["source"] == path
  assert lidc["train_step"]["same_machine"]
  assert lidc["train_step"]["images_per_second"] == step_obj["results"][
      "images_per_second"]
  assert city["train_step"]["source"] == "measured"
  assert city["train_step"]["config"] == "cityscapes_flips_spunet:smoke"
  for task in (lidc, city):
    assert _positive(task["examples_per_s"])
    assert _positive(task["train_step"]["images_per_second"])
    assert task["pipeline_over_train_step"] == common.sig(
        task["examples_per_s"] / task["train_step"]["images_per_second"])


def test_input_pipeline_rejects_other_json(tmp_path):
  path = tmp_path / "x.json"
  path.write_text(json.dumps({"benchmark": "sampling"}))
  with pytest.raises(ValueError, match="expected a train_step.py JSON"):
    _script("input_pipeline")._from_json(str(path))


# ----------------------------------------------------------------------------
# cpu_profile.py: reading the trace, the profile at a tiny size, the sweep.
# ----------------------------------------------------------------------------


def test_cpu_profile_categorize():
  cpu_profile = _script("cpu_profile")
  expected = {
      "ynn_fusion.206": "convolution", "convolution.14": "convolution",
      "convolution_add_fusion.3": "convolution",
      "xnn_fusion.2": "convolution", "onednn_conv.1": "convolution",
      "transpose_copy_fusion.296": "transpose_copy", "copy": "transpose_copy",
      "copy.1197": "transpose_copy", "reverse.7": "transpose_copy",
      "dot.4": "dot", "dot_add_fusion.2": "dot",
      "wrapped_reduce-window": "reduction", "reduce.12": "reduction",
      "add_maximum_fusion.40": "elementwise_fusion",
      "compare_select_fusion": "elementwise_fusion",
      "while": "other", "wrapped_add.12": "other", "custom-call.3": "other",
  }
  assert {n: cpu_profile.categorize(n) for n in expected} == expected
  assert set(expected.values()) == set(cpu_profile.CATEGORIES)
  assert cpu_profile.op_kind("ynn_fusion.206") == "ynn_fusion"
  for name in ("ThunkExecutor::Execute", "end: copy.1197",
               "ThreadpoolListener::Record", "$builtins isinstance",
               "PjitFunction(counted)", "Wait for donation holds"):
    assert not cpu_profile.is_op(name), name
  assert cpu_profile.is_op("wrapped_reduce-window")


def test_cpu_profile_summarize_trace():
  cpu_profile = _script("cpu_profile")
  ms = 1_000_000
  # Two steps on two worker threads; a wrapper spans thread A, a `while`
  # nests its body op (self time 2 ms, not 6), markers have no duration.
  thread_a = [("ThunkExecutor::Execute", 0, 20 * ms),
              ("ynn_fusion.1", 1 * ms, 8 * ms),
              ("end: ynn_fusion.1", 9 * ms, 0),
              ("while", 10 * ms, 6 * ms),
              ("add_maximum_fusion.2", 11 * ms, 4 * ms),
              ("ynn_fusion.1", 30 * ms, 8 * ms)]
  thread_b = [("transpose_copy_fusion.3", 0, 4 * ms),
              ("ThreadpoolListener::Record", 5 * ms, 1 * ms),
              ("dot.4", 6 * ms, 2 * ms)]
  python = [("ynn_fusion.1", 0, 100 * ms)]  # ignored: the Python line
  p = cpu_profile.summarize_trace(
      [("tf_XLAEigen/1", thread_a), ("tf_XLAEigen/2", thread_b),
       ("python", python)],
      steps=2, step_seconds=0.02, profiled_step_seconds=0.025,
      flop_per_step=1e9, usable_cpus=2)
  # Ops: 16 (conv) + 2 (while) + 4 (fusion) + 4 (transpose) + 2 (dot) ms.
  assert p["op_thread_seconds_per_step"] == pytest.approx(0.014)
  assert p["cores_busy"] == pytest.approx(0.014 / 0.02)
  assert p["cores_busy_profiled"] == pytest.approx(0.014 / 0.025)
  assert p["op_threads"] == 2 and p["usable_cpus"] == 2
  assert p["threads"] == [
      {"thread": "tf_XLAEigen", "op_seconds_per_step": 0.011},
      {"thread": "tf_XLAEigen", "op_seconds_per_step": 0.003}]
  cats = p["by_category"]
  assert list(cats) == list(cpu_profile.CATEGORIES)
  assert cats["convolution"] == {"seconds_per_step": 0.008,
                                 "share": pytest.approx(16 / 28, rel=1e-3)}
  assert cats["other"]["seconds_per_step"] == 0.001  # the while's own time
  assert cats["reduction"] == {"seconds_per_step": 0.0, "share": 0.0}
  assert sum(c["share"] for c in cats.values()) == pytest.approx(1, rel=1e-3)
  assert p["top_ops"][0] == {"op": "ynn_fusion.1", "category": "convolution",
                             "seconds_per_step": 0.008,
                             "share": pytest.approx(16 / 28, rel=1e-3),
                             "calls_per_step": 1.0}
  assert [o["op"] for o in p["top_ops"]] == [
      "ynn_fusion.1", "add_maximum_fusion.2", "transpose_copy_fusion.3",
      "while", "dot.4"]
  assert p["top_op_kinds"][0]["op_kind"] == "ynn_fusion"
  # 1 GFLOP over 8 ms of convolution thread-time on 2 CPUs (4 ms of wall).
  assert p["convolution_thread_seconds_per_step"] == 0.008
  assert p["convolution_gflops_per_second_estimate"] == pytest.approx(250)
  assert "ESTIMATE" in p["convolution_estimate_note"]
  nan = cpu_profile.summarize_trace(
      [("tf_XLAEigen/1", thread_a)], steps=1, step_seconds=1.0,
      profiled_step_seconds=1.0, flop_per_step=float("nan"), usable_cpus=2)
  assert nan["convolution_gflops_per_second_estimate"] is None


def test_cpu_profile(fast_compiles):
  del fast_compiles
  obj = _run("cpu_profile", [
      "--config=synthetic", "--variant=smoke", "--batch=1", "--warmup=1",
      "--steps=2", "--profile_steps=1"])
  c, r = obj["config"], obj["results"]
  assert obj["benchmark"] == "cpu_profile"
  assert c["batch"] == 1 and c["image_size"] == [32, 32] and c["profile"]
  assert obj["hardware"]["jax_platform"] == "cpu"
  assert isinstance(obj["hardware"]["cpu_isa"], list)
  assert "xla_flags" in obj["hardware"]
  for key in ("compile_seconds", "step_seconds_median", "flop_per_step",
              "achieved_gflops_per_second", "params"):
    assert _positive(r[key]), key
  assert len(r["step_seconds_all"]) == 2 and r["loss_finite"]
  assert r["achieved_gflops_per_second"] == pytest.approx(
      r["flop_per_step"] / r["step_seconds_median"] / 1e9, rel=1e-3)
  p = r["profile"]
  assert p["profiled_steps"] == 1 and _positive(p["profiled_step_seconds"])
  assert _positive(p["op_thread_seconds_per_step"]) and p["op_threads"] >= 1
  assert p["cores_busy"] == pytest.approx(
      p["op_thread_seconds_per_step"] / r["step_seconds_median"], rel=1e-3)
  assert list(p["by_category"]) == list(_script("cpu_profile").CATEGORIES)
  assert sum(v["share"] for v in p["by_category"].values()) == pytest.approx(
      1, rel=1e-2)
  assert p["by_category"]["convolution"]["share"] > 0  # a conv net
  assert 1 <= len(p["top_ops"]) <= 15
  assert p["top_ops"][0]["seconds_per_step"] >= p["top_ops"][-1][
      "seconds_per_step"]


def test_cpu_flags_speedups(monkeypatch):
  """Speedups over the default and the best variant, from fake runs."""
  cpu_profile = _script("cpu_profile")
  steps = {"default": 2.0, "onednn": 2.5, "xnnpack": 1.6}
  argvs = []

  def fake_run(name, flags, argv, timeout_s):
    argvs.append(argv)
    assert flags == cpu_profile.FLAG_VARIANTS[name] and timeout_s == 9
    if name == "ynnpack_off":
      return {"variant": name, "flags": flags, "xla_flags": flags,
              "ok": False, "error": "boom"}
    s = steps[name]
    return {"variant": name, "flags": flags, "xla_flags": flags or None,
            "ok": True, "step_seconds_median": s,
            "step_seconds_all": [s * 0.9, s, s * 1.1],
            "achieved_gflops_per_second": 10 / s,
            "speedup_over_default": None, "batch": 8,
            "image_size": [128, 128]}

  monkeypatch.setattr(cpu_profile, "run_variant", fake_run)
  _, r = cpu_profile.flags_sweep(
      ["lidc"], ["default", "onednn", "xnnpack", "ynnpack_off"],
      variant=None, batch=None, image_size=None, warmup=1, steps=3,
      profile_steps=1, profile=False, timeout_s=9)
  assert argvs[0] == ["--config=lidc", "--warmup=1", "--steps=3",
                      "--profile_steps=1", "--no_profile"]
  lidc = r["by_config"]["lidc"]
  rows = lidc["by_variant"]
  assert rows["default"]["speedup_over_default"] == 1.0
  assert rows["onednn"]["speedup_over_default"] == 0.8
  assert rows["xnnpack"]["speedup_over_default"] == 1.25
  assert lidc["best_variant"] == "xnnpack"
  assert lidc["best_speedup_over_default"] == 1.25
  assert lidc["default_step_seconds_spread"] == pytest.approx(0.2)
  assert lidc["batch"] == 8 and not rows["ynnpack_off"]["ok"]
  with pytest.raises(ValueError, match="unknown"):
    cpu_profile.flags_sweep(["lidc"], ["nope"], variant=None, batch=None,
                            image_size=None, warmup=1, steps=1,
                            profile_steps=1, profile=False, timeout_s=9)


def test_cpu_flags_bad_flag(monkeypatch):
  """A flag variant that XLA refuses is an error entry, not a crash."""
  cpu_profile = _script("cpu_profile")
  bad = "--xla_cpu_this_flag_does_not_exist=1"
  monkeypatch.setattr(cpu_profile, "FLAG_VARIANTS", {"default": "",
                                                     "bad": bad})
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  obj = _run("cpu_profile", [
      "--flags_sweep", "--configs=synthetic", "--variant=smoke",
      "--variants=bad", "--batch=1", "--steps=1", "--no_profile"],
      key="cpu_flags")
  assert obj["benchmark"] == "cpu_flags"
  assert obj["results"]["variants"] == {"bad": bad}
  cfg = obj["results"]["by_config"]["synthetic"]
  row = cfg["by_variant"]["bad"]
  assert not row["ok"] and row["xla_flags"] == bad
  assert row["returncode"] != 0
  assert "xla_cpu_this_flag_does_not_exist" in row["error"]
  assert cfg["best_variant"] is None and cfg["batch"] is None


# ----------------------------------------------------------------------------
# run_all.py (last: summarises what the tests above produced).
# ----------------------------------------------------------------------------


def test_run_all(tmp_path):
  run_all = _script("run_all")
  names = [b.name for b in run_all.benchmarks(False, str(tmp_path))]
  assert names[0] == "train_step" and names[-1] == "input_pipeline"
  assert {"cpu_profile_lidc", "cpu_profile_synthetic", "cpu_flags"} <= set(
      names)
  accelerator = run_all.benchmarks(True, str(tmp_path))
  assert not [b for b in accelerator if b.script == "cpu_profile.py"]
  # sampling times the full LIDC models by default, on CPU too.
  (hpunet,) = [b for b in run_all.benchmarks(False, str(tmp_path))
               if b.name == "sampling_hpunet"]
  assert hpunet.args == ("--model=hpunet",)
  bench = run_all.Benchmark("evaluation", "evaluation.py",
                            ("--images=8", "--samples=2", "--chunk=4"))
  obj = run_all.run_benchmark(bench, str(tmp_path))
  with open(tmp_path / "evaluation.json", encoding="utf-8") as f:
    assert json.load(f) == obj
  assert obj["command"] == ("python benchmarks/evaluation.py --images=8 "
                            "--samples=2 --chunk=4")
  assert run_all.main(["--out_dir", str(tmp_path), "--summarize_only",
                       "--only", "evaluation"]) == 0
  table = (tmp_path / "summary.md").read_text().splitlines()
  assert table[0] == "| what | command | measured | hardware |"
  assert len([l for l in table if l.startswith("| evaluation")]) == 1
  # Every JSON the tests above produced summarises to one 4-cell row.
  for name, result in _RESULTS.items():
    row = run_all.summary_row(result)
    assert row.count(" | ") == 3, (name, row)
    assert "None" not in row and "nan" not in row, (name, row)


def test_readme_shows_the_committed_benchmark_summary(tmp_path):
  """The README's benchmark table is benchmarks/results/summary.md, as
  run_all.py wrote it from the committed JSON."""
  results_dir = os.path.join(_BENCH, "results")
  with open(os.path.join(results_dir, "summary.md"), encoding="utf-8") as f:
    summary = f.read()
  with open(os.path.join(_REPO, "README.md"), encoding="utf-8") as f:
    assert summary.rstrip("\n") in f.read()
  # ...and summary.md is what run_all.py makes of the committed JSON.
  copy = tmp_path / "results"
  shutil.copytree(results_dir, copy)
  with contextlib.redirect_stdout(io.StringIO()):
    _script("run_all").main(["--summarize_only", f"--out_dir={copy}"])
  assert (copy / "summary.md").read_text(encoding="utf-8") == summary
  for name in ("train_step", "train_step_compile", "spatial_memory",
               "sampling_hpunet", "clustering", "evaluation", "input_pipeline"):
    with open(os.path.join(results_dir, name + ".json"), encoding="utf-8") as f:
      obj = json.load(f)
    assert tuple(obj)[:len(common.ENVELOPE_KEYS)] == common.ENVELOPE_KEYS
    assert obj["command"].startswith("python benchmarks/"), name
