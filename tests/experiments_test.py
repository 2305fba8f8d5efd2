# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""experiments/synthetic_results.py: the run list, the tables, and that the
README shows exactly what the committed results.json files say."""

import importlib.util
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpunet import config_lib

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name="synthetic_results"):
  path = os.path.join(_REPO, "experiments", name + ".py")
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


exp = _load()


def test_runs_cover_the_issue_and_train_one_seed_of_everything_first():
  assert len(exp.RUNS["hpunet"][1]) >= 3 and len(exp.RUNS["spunet"][1]) >= 3
  assert {"global", "local", "no_topk"} <= set(exp.RUNS)
  expected = {(n, s) for n, r in exp.RUNS.items() for s in r[1]}
  assert sorted(exp.ORDER) == sorted(expected)  # each run exactly once
  first = exp.ORDER[:len(exp.RUNS)]
  assert {n for n, _ in first} == set(exp.RUNS)
  for name, (config_name, *_) in exp.RUNS.items():
    config = config_lib.load_config(config_name)
    assert config.input.name == "synthetic", name
  for name in exp.RUNS:  # every override names an existing config field
    config = config_lib.load_config(exp.RUNS[name][0])
    for flag in exp.overrides(name):
      path, value = flag[len("--config."):].split("=")
      section, key = path.split(".")
      assert key in config[section], flag
      assert str(config[section][key]) != value, f"{flag} changes nothing"
  assert exp.overrides("kappa_0.4") == ("--config.loss.kappa=0.4",)
  assert exp.overrides("hpunet") == ()
  assert exp.config_file("hpunet_long") == os.path.join(
      "configs", "synthetic.py") + ":long"
  assert config_lib.load_config("synthetic_spunet").loss.type == "elbo"
  assert config_lib.load_config("synthetic").loss.type == "geco"


def _fake(mean, runs=3):
  table = {k: {"mean": mean, "std": 0.01, "num_images": 200}
           for k, *_ in exp.METRIC_ROWS}
  for mode, _ in exp.SCALE_MODES:
    for factor, _ in exp.FACTORS:
      table[f"var_{mode}_{factor}"] = {"mean": mean, "std": 0.0,
                                       "num_images": 200}
  return {"table": table, "num_runs": runs, "num_images": 200}


def test_train_stage_runs_only_the_chosen_seeds(tmp_path, monkeypatch):
  commands = []

  def fake_run(cmd, log_path):  # what _run leaves behind, without training
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    commands.append(cmd)
    return 1.0

  monkeypatch.setattr(exp, "_run", fake_run)
  exp.main(["--root", str(tmp_path), "--stages=train", "--only=hpunet",
            "--seeds=1,2"])
  assert [c[-1] for c in commands] == ["--config.seed=1", "--config.seed=2"]
  # A seed already trained (wall_time.json written) is not trained again.
  exp.main(["--root", str(tmp_path), "--stages=train", "--only=hpunet"])
  assert [c[-1] for c in commands[2:]] == ["--config.seed=0"]
  with pytest.raises(SystemExit):
    exp.main(["--root", str(tmp_path), "--stages=train", "--seeds=one"])


def test_evaluation_removes_the_figures_of_an_earlier_one(tmp_path,
                                                         monkeypatch):
  out = tmp_path / "out"
  for stale in ("figures", "run0/figures", "run1"):
    (out / stale).mkdir(parents=True)
  (out / "diagnosis.json").write_text("{}")  # another stage's output
  monkeypatch.setattr(exp, "_run", lambda cmd, log: 1.0)
  monkeypatch.setattr(exp, "relative_workdirs", lambda out_dir, root: None)
  exp._evaluate_into("hpunet", ["w0"], str(out), str(tmp_path), "eval.log")
  assert sorted(os.listdir(out)) == ["diagnosis.json"]


def test_markdown_tables():
  results = {"hpunet": _fake(0.5), "spunet": _fake(0.25)}
  del results["spunet"]["table"]["mode_tv"]
  runs = {"hpunet": [{"seconds": 600, "kl_per_level": [0.0, 1.0, 20.0],
                      "lagmul": 6.0},
                     {"seconds": 480, "kl_per_level": [0.5, 2.0, 10.0],
                      "lagmul": 4.0}],
          "spunet": [{"seconds": 300, "kl_per_level": [3.0], "lagmul": None}]}
  text = exp.markdown_tables(results, runs)
  lines = text.splitlines()
  assert lines[0] == "| metric | HPU-Net | sPU-Net |"
  assert "| IoU_rec ↑ | 0.500 ± 0.010 | 0.250 ± 0.010 |" in lines
  assert ("| Mode-frequency total variation (per image, 16 samples) ↓ | "
          "0.500 ± 0.010 | – |") in lines
  assert "| seeds × test images | 3 × 200 | 3 × 200 |" in lines
  assert "| train minutes per run (2-core CPU) | 9.0 | 5.0 |" in lines
  assert ("| KL per latent level at the end, coarse → fine (nats) | "
          "0.25 / 1.50 / 15.00 | 3.00 |") in lines
  assert "| GECO λ at the end | 5.00 | – |" in lines
  assert ("| only the most global (1x1) | 0.500 ± 0.000 | 0.500 ± 0.000 | "
          "0.500 ± 0.000 |") in lines
  # With per-seed tables, each seed's value follows in brackets.
  results["hpunet"]["per_run_tables"] = [_fake(0.25)["table"],
                                         _fake(0.75)["table"]]
  lines = exp.markdown_tables(results, runs).splitlines()
  assert ("| all levels | 0.500 ± 0.000 (0.25, 0.75) | 0.500 ± 0.000 (0.25, "
          "0.75) | 0.500 ± 0.000 (0.25, 0.75) |") in lines


def test_comparison_table():
  """The sPU-Net paper's comparison: GED^2 at 1/4/8/16 samples per model,
  seed 0's curve where the committed evaluation predates the counts."""
  curve = lambda base: {f"ged_modes_n{n}": {"mean": base / n, "std": 0.0}
                        for n in exp.GED_COUNTS}
  hpunet = _fake(0.5)  # no curve: seed 0's comes from seed0_curve/
  dropout = _fake(0.25, runs=1)
  dropout["table"].update(curve(0.8))
  dropout["pooled"] = [{"mode_frequencies": {"total_variation": 0.6}}]
  oracle = {"by_num_samples": {"16": {
      "table": dict(_fake(0.1)["table"], **curve(0.4)),
      "pooled_mode_tv": 0.03, "num_images": 200}}}
  runs = {"hpunet": [{"seconds": 600}], "dropout_unet": [{"seconds": 120}]}
  seed0 = {"table": curve(1.6)}
  real_load = exp._load_json
  exp._load_json = lambda *parts: (seed0 if parts == (
      "hpunet", "seed0_curve", "results.json") else None)
  try:
    lines = exp.comparison_table({"hpunet": hpunet, "dropout_unet": dropout},
                                 runs, oracle).splitlines()
  finally:
    exp._load_json = real_load
  assert lines[0].startswith("| model | seeds × images | GED² modes, 1 sample ↓"
                             " | GED² modes, 4 samples ↓")
  assert lines[2] == ("| Oracle (true modes) | 200 images | 0.400 | 0.100 | "
                      "0.050 | 0.025 | 0.030 | 0.100 / 0.100 / 0.100 | – |")
  assert lines[3] == ("| HPU-Net | 3 × 200 | 1.600 (seed 0) | 0.400 (seed 0)"
                      " | 0.200 (seed 0) | 0.500 (seed 0: 0.100) | – | "
                      "0.500 / 0.500 / 0.500 | 10.0 |")
  assert lines[4] == ("| Dropout U-Net | 1 × 200 | 0.800 | 0.200 | 0.100 | "
                      "0.050 | 0.600 | 0.250 / 0.250 / 0.250 | 2.0 |")
  assert exp.comparison_table({"s128": hpunet}, runs, oracle) == ""


def test_final_train_metrics(tmp_path):
  from hpunet import summary_writer  # pylint: disable=g-import-not-at-top
  writer = summary_writer.SummaryWriter(str(tmp_path), tensorboard=False)
  writer.write_scalars(10, {"train/kl_sum": 3.0, "train/kl_0": 1.0,
                            "train/kl_1": 2.0, "train/lagmul": 2.5})
  writer.write_scalars(20, {"train/kl_sum": 5.0, "train/kl_0": 1.5,
                            "train/kl_1": 3.5, "train/lagmul": 3.0})
  writer.write_scalars(20, {"test/rec_iou": 0.9})  # not a training record
  writer.close()
  assert exp.final_train_metrics(str(tmp_path)) == {
      "step": 20, "kl_per_level": [1.5, 3.5], "lagmul": 3.0}
  # A model without latents or GECO (the baselines): no levels, no lambda.
  baseline = tmp_path / "baseline"
  writer = summary_writer.SummaryWriter(str(baseline), tensorboard=False)
  writer.write_scalars(30, {"train/loss": 1.0, "train/rec_loss_sum": 1.0})
  writer.close()
  assert exp.final_train_metrics(str(baseline)) == {
      "step": 30, "kl_per_level": [], "lagmul": None}


def test_replace_between_markers():
  text = f"a\n{exp.BEGIN}\nold\n{exp.END}\nb\n"
  assert exp.replace_between_markers(text, "new\n") == (
      f"a\n{exp.BEGIN}\nnew\n{exp.END}\nb\n")
  with pytest.raises(ValueError, match="exactly one"):
    exp.replace_between_markers("no markers", "x")


def test_readme_shows_the_committed_results():
  results, runs, oracle, diagnoses = exp.load_all()
  assert set(results) == set(exp.RUNS), "results missing for some runs"
  assert oracle is not None, "the oracle rows are missing"
  assert set(diagnoses) == set(exp.DIAGNOSED), "diagnoses missing"
  for name, r in results.items():
    assert r["num_runs"] == len(exp.RUNS[name][1]) and r["split"] == "test"
    for fig in r["figures"]:
      assert os.path.isfile(os.path.join(exp.RESULTS, name, fig)), fig
  for name in exp.ORACLES:
    assert os.path.isfile(os.path.join(exp.RESULTS, name, "results.json")), (
        f"the {name} rows are missing")
  body = exp.readme_tables(results, runs, oracle, diagnoses)
  with open(os.path.join(_REPO, "README.md"), encoding="utf-8") as f:
    readme = f.read()
  assert exp.replace_between_markers(readme, body) == readme
  with open(os.path.join(exp.RESULTS, "table.md"), encoding="utf-8") as f:
    assert f.read() == body


def test_label_edges_are_the_pixels_next_to_the_other_label():
  diagnosis = _load("synthetic_diagnosis")
  mask = np.zeros((5, 5), bool)
  mask[1:3, 1:3] = True
  edges = diagnosis._edges(mask)
  # The 2x2 square is all edge; so are its 4-neighbours outside.
  assert edges[1:3, 1:3].all()
  assert edges[0, 1] and edges[3, 2] and edges[1, 0] and edges[2, 3]
  assert not edges[0, 0] and not edges[4, 4] and not edges[3, 3]
  assert edges.sum() == 4 + 8


def test_oracle_is_the_metrics_floor(synthetic_data_dir):
  diagnosis = _load("synthetic_diagnosis")
  config = config_lib.load_config("synthetic", "smoke")
  config.input.data_dir = synthetic_data_dir
  result = diagnosis.oracle(config, 16, seed=0)
  mean = result["mean"]
  assert mean["rec_iou"] == 1.0  # the graders' own masks
  # Samples from the true distribution vary exactly as the truth, up to
  # sampling noise: every factor's variance ratio is near 1.
  for factor in ("spots", "blobs", "rings"):
    assert 0.8 < mean[f"var_full_{factor}"] < 1.2, (factor, mean)
  # 64 images x 16 draws over 18 modes: the pooled frequencies are close to
  # the expected ones, each image's own 16 draws are not.
  assert result["pooled_mode_tv"] < 0.08
  assert mean["mode_tv"] > 0.25
  # GED^2 against the modes is small but not 0 (16 samples).
  assert 0.0 < mean["ged_modes"] < 0.1
  assert len(result["per_image"]["ged"]) == 64


def test_diagnose_a_trained_run(smoke_workdir, synthetic_data_dir):
  diagnosis = _load("synthetic_diagnosis")
  config = config_lib.load_config("synthetic", "smoke")
  config.input.data_dir = synthetic_data_dir
  result = diagnosis.diagnose(config, smoke_workdir, num_samples=4,
                              max_batches=1)
  shares = [v["share_of_top_k"] for v in result["top_k"]["by_kind"].values()]
  assert abs(sum(shares) - 1.0) < 1e-6
  pixels = [v["share_of_pixels"] for v in result["top_k"]["by_kind"].values()]
  assert abs(sum(pixels) - 1.0) < 1e-6
  top_k = result["top_k"]
  assert top_k["mean_ce_top_k"] >= top_k["mean_ce_stochastic_top_k"] - 1e-6
  assert top_k["mean_ce_top_k"] >= top_k["mean_ce_all"]
  for factor in ("spots", "blobs", "rings"):
    assert 0.0 <= result["soft"][f"{factor}/p_sampled"] <= 1.0
  # The smoke model has latents on several levels: one row per level.
  assert any(k.startswith("only_level_") for k in result["per_level"])
  assert any(k.endswith("/distance") for k in result["spot_codes"])


def test_global_code_decoders_get_the_graders_mode():
  gc = _load("global_code")
  modes = np.array([0, 9, 13, 17])  # 9 g + 3 s1 + s2
  np.testing.assert_array_equal(gc.code_of(modes, "none"), np.zeros((4, 8)))
  np.testing.assert_array_equal(gc.code_of(modes, "mode"), [
      [1, 0, 1, 0, 0, 1, 0, 0],  # g 0, s1 0, s2 0
      [0, 1, 1, 0, 0, 1, 0, 0],  # g 1, s1 0, s2 0
      [0, 1, 0, 1, 0, 0, 1, 0],  # g 1, s1 1, s2 1
      [0, 1, 0, 0, 1, 0, 0, 1]])  # g 1, s1 2, s2 2
  np.testing.assert_array_equal(gc.spot_z(jnp.asarray(modes))[:, 0, 0, 0],
                                [-1, 1, 1, 1])
  config = gc.base_config()
  assert config.model.latent_dims == (1, 1, 1, 1)
  assert (config.loss.type, config.loss.beta) == ("elbo", 10.0)
  assert gc.code_networks(config, "mode").latent_dims == (8, 0, 0, 0)
  # The augmentation keeps the labels binary, and without a transform it is
  # the identity.
  rng = np.random.default_rng(0)
  image = rng.random((16, 16, 1)).astype(np.float32)
  mask = rng.random((16, 16)) > 0.5
  off = config.input.augment.copy_and_resolve_references()
  off.mirror, off.rotation_deg, off.scale_range = False, 0.0, (1.0, 1.0)
  same_image, same_mask = gc.augment(rng, image, mask, off)
  np.testing.assert_allclose(same_image, image, atol=1e-6)
  np.testing.assert_array_equal(same_mask, mask)
  _, warped = gc.augment(rng, image, mask, config.input.augment)
  assert set(np.unique(warped)) <= {0, 1} and warped.shape == mask.shape


def test_readme_shows_the_committed_global_code_table():
  gc = _load("global_code")
  with open(os.path.join(gc.RESULTS, "results.json"), encoding="utf-8") as f:
    result = json.load(f)
  assert {f"{name}/seed{s}" for name, seeds in gc.SEEDS.items()
          for s in seeds} <= set(result["rows"])
  hedging = result["rows"]["none/seed0"]["ce_total"]
  for run in gc.EVALUATED_RUNS:
    for seed in exp.RUNS[run][1]:
      row = result["rows"][f"{run}/seed{seed}"]
      # Scored through the full posterior (a decayed level dropout is off at
      # the end): far below a decoder that can only hedge.
      assert row["ce_total"] < 0.5 * hedging
  for row in result["rows"].values():
    assert row["ce_total"] == pytest.approx(
        sum(row[r] for r in gc.REGIONS))
    assert row["objective_beta10"] == pytest.approx(
        row["ce_total"] + 10 * row["kl"])
  table = gc.markdown(result)
  with open(os.path.join(gc.RESULTS, "results.md"), encoding="utf-8") as f:
    assert f.read() == table
  with open(os.path.join(_REPO, "README.md"), encoding="utf-8") as f:
    assert table in f.read()


def test_readme_shows_the_committed_posterior_probe_table():
  probe = _load("posterior_probe")
  with open(os.path.join(probe.RESULTS, "results.json"),
            encoding="utf-8") as f:
    result = json.load(f)
  assert {f"{p}/seed{s}" for p in probe.POOLINGS
          for s in probe.SEEDS} <= set(result["rows"])
  for row in result["rows"].values():
    steps = [t for t, _, _ in row["curve"]]
    assert steps == list(range(probe.EVAL_EVERY, probe.STEPS + 1,
                               probe.EVAL_EVERY))
    reached = [t for t, _, acc in row["curve"] if acc >= 0.95]
    assert row["first_step_accuracy_0.95"] == (reached[0] if reached
                                               else None)
    assert 0.0 <= row["final_accuracy"] <= 1.0
  table = probe.markdown(result)
  with open(os.path.join(probe.RESULTS, "results.md"), encoding="utf-8") as f:
    assert f.read() == table
  with open(os.path.join(_REPO, "README.md"), encoding="utf-8") as f:
    assert table in f.read()
  # The probe reads the s128 HPU-Net's posterior, one 1x1 Gaussian per
  # example, with either pooling (traced, not compiled).
  config = probe.global_code.base_config()
  h, w = config.input.image_size
  for pooling in probe.POOLINGS:
    net = probe.posterior_1x1(config, pooling)
    seg = jnp.zeros((2, h, w, 2))
    img = jnp.zeros((2, h, w, 1))
    params = jax.eval_shape(net.init, jax.random.key(0), seg, img)
    q = jax.eval_shape(net.apply, params, None, seg, img)
    assert q.loc.shape == q.log_scale.shape == (2, 1, 1, 1)
