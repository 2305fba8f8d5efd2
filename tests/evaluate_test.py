# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Tests of `python -m hpunet.evaluate` (hpunet/evaluate.py)."""

import collections
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from hpunet import dataset_builders
from hpunet import config_lib
from hpunet import evaluate
from hpunet import evaluation
from hpunet import metrics as metrics_lib
from hpunet import train

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_binary_metrics_of_a_perfect_model_and_subset_b():
  rng = np.random.RandomState(0)
  graders = rng.rand(2, 8, 8, 4) > 0.5  # [B, H, W, G]
  graders[1, ..., 3] = False  # image 1: one grader marked nothing
  batch = {"masks": graders.astype(np.uint8)}
  samples = np.moveaxis(graders, -1, 1)  # samples == the 4 gradings
  out = collections.defaultdict(list)
  evaluation.binary_metrics(out, samples, samples, batch, np.array([1, 1], bool),
                           subset_b=True)
  np.testing.assert_allclose(out["ged"], [0.0, 0.0], atol=1e-12)
  np.testing.assert_allclose(out["hm_iou"], [1.0, 1.0])
  np.testing.assert_allclose(out["rec_iou"], [1.0, 1.0])
  assert out["hm_iou_subset_b"][0] == 1.0 and np.isnan(out["hm_iou_subset_b"][1])
  # Padding examples (batch_mask False) are skipped.
  out = collections.defaultdict(list)
  evaluation.binary_metrics(out, samples, samples, batch, np.array([1, 0], bool),
                           subset_b=False)
  assert len(out["ged"]) == 1 and "hm_iou_subset_b" not in out


def test_known_mode_metrics_and_mode_assignment():
  rng = np.random.RandomState(1)
  modes = rng.rand(1, 3, 8, 8) > 0.5  # [B, M, H, W]
  probs = np.array([[0.5, 0.25, 0.25]])
  # 4 samples: modes 0, 0, 1, 2 -> frequencies equal the probabilities.
  samples = modes[:, [0, 0, 1, 2]]
  batch = {"masks": np.moveaxis(samples, 1, -1).astype(np.uint8),
           "modes": modes.astype(np.uint8), "mode_probs": probs}
  out = collections.defaultdict(list)
  evaluation.binary_metrics(out, samples, samples, batch, np.array([True]),
                           subset_b=False)
  np.testing.assert_array_equal(out["_assignments"][0], [0, 0, 1, 2])
  freqs = metrics_lib.mode_frequencies(np.stack(out["_assignments"]),
                                       np.stack(out["_mode_probs"]))
  np.testing.assert_allclose(freqs.predicted, [0.5, 0.25, 0.25])
  assert freqs.total_variation == 0.0
  # The samples follow the known distribution exactly: the weighted GED is
  # zero up to the V-statistic's self-pair term.
  d = 1.0 - metrics_lib.pairwise_iou(modes[0], modes[0])
  w = probs[0]
  d_ss = d[np.ix_([0, 0, 1, 2], [0, 0, 1, 2])]
  d_sy = d[[0, 0, 1, 2]]
  ged = 2 * d_sy.mean(0) @ w - d_ss.mean() - w @ d @ w
  np.testing.assert_allclose(out["ged_modes"][0], ged, atol=1e-12)
  np.testing.assert_allclose(ged, 0.0, atol=1e-12)


def test_scale_metrics_of_samples_that_vary_only_the_global_factor():
  synthetic = dataset_builders.load_builder_module("synthetic")
  ex = synthetic.generate_example(32, synthetic.split_seed(0, "test", 0))
  modes = ex["modes"] > 0
  # Graders: modes 9 (spots, blobs absent) and 0 (nothing ambiguous).
  masks = np.stack([modes[9], modes[9], modes[0], modes[0]], -1)
  batch = {"modes": modes[None].astype(np.uint8),
           "mode_probs": ex["mode_probs"][None],
           "masks": masks[None].astype(np.uint8)}
  recs = np.moveaxis(masks, -1, 0)[None].copy()  # perfect reconstructions...
  recs[0, 1] = modes[0]  # ...except grader 1's spots, missed
  g = np.arange(8) % 2  # half the samples with spots, half without
  scale_samples = {"full": modes[None, 9 * g + 4],  # blobs thin, present
                   "only_most_local": modes[None, [4] * 8]}  # no variation
  out = collections.defaultdict(list)
  evaluation.scale_metrics(out, scale_samples, recs, batch, np.array([True]))
  assert out["rec_recall_spots"] == [pytest.approx(0.5)]  # 1 of 2 graders
  # No grader marked a blob or a ring: no recall to measure.
  assert np.isnan(out["rec_recall_blobs"][0])
  assert np.isnan(out["rec_recall_rings"][0])
  # 8 samples, p_hat = 1/2: unbiased variance 2/7 vs the true 1/4 on spot
  # pixels (blob pixels under spots aside).
  assert out["var_full_spots"][0] == pytest.approx(8 / 7, rel=0.05)
  assert out["var_full_blobs"] == [0.0] and out["var_full_rings"] == [0.0]
  for factor in ("spots", "blobs", "rings"):
    assert out[f"var_only_most_local_{factor}"] == [0.0]


def test_flip_metrics_against_the_32_modes():
  label = np.zeros((1, 4, 8), np.uint8)
  label[0, :, :2] = 1  # sidewalk
  label[0, :, 2:4] = 11  # person
  label[0, :, 4] = 13  # car
  label[0, :, 5] = 8  # vegetation
  label[0, :, 6] = 0  # road
  label[0, :, 7] = 255  # ignore
  modes, _ = metrics_lib.cityscapes_flip_modes(label[0])
  samples = modes[None, [0, 16, 31]]  # nothing / sidewalk / all flipped
  out = collections.defaultdict(list)
  evaluation.flip_metrics(out, samples, {"label": label}, np.array([True]))
  np.testing.assert_array_equal(out["_assignments"][0], [0, 16, 31])
  counts = out["_flip_counts"][0]
  # Sidewalk flipped in 2 of 3 samples, person in 1 of 3.
  np.testing.assert_allclose(counts.target_frequency[:2], [2 / 3, 1 / 3])
  assert np.isfinite(out["ged_modes"][0])


def test_tables_and_sampling_modes():
  runs = [{"per_image": {"rec_iou": np.array([1.0, 0.5]),
                         "ged": np.array([np.nan, np.nan])},
           "pooled": {}, "num_images": 2}]
  table = evaluate.summarize_runs(runs, num_resamples=200)
  assert set(table) == {"rec_iou"}  # all-NaN metrics are dropped
  assert table["rec_iou"]["mean"] == pytest.approx(0.75)
  assert 0.0 < table["rec_iou"]["std"] < 0.5
  two = evaluate.summarize_runs(runs + [{"per_image": {
      "rec_iou": np.array([0.25, 0.25])}, "pooled": {}, "num_images": 2}])
  assert two["rec_iou"]["mean"] == pytest.approx(0.5)  # mean of seed means
  md = evaluate.markdown_table(table, dataset="lidc/crops", model="HPU-Net")
  assert "| lidc/crops | IoU_rec | 0.750 ± " in md
  assert evaluation.per_scale_modes((1, 1, 1, 1)) == {
      "full": False,
      "only_most_global": (False, True, True, True),
      "only_most_local": (True, True, True, False)}
  assert evaluation.per_scale_modes((1,)) == {"full": False}
  # Levels without latents (the local-only ablation) are skipped.
  assert evaluation.per_scale_modes((0, 0, 1, 1)) == {
      "full": False,
      "only_most_global": (True, True, False, True),
      "only_most_local": (True, True, True, False)}
  assert evaluation.per_scale_modes((0, 0, 0, 1)) == {"full": False}
  assert evaluation.per_scale_modes((85,)) == {"full": False}


def test_image_grids_have_column_labels():
  from hpunet import images  # pylint: disable=g-import-not-at-top
  columns = [np.zeros((2, 32, 32, 3), np.uint8)] * 3
  plain = images.image_grid(columns)[0]
  labelled = images.image_grid(columns, labels=["image", "", "s0"])[0]
  strip = labelled.shape[0] - plain.shape[0]
  assert strip > 8 and labelled.shape[1:] == plain.shape[1:]
  np.testing.assert_array_equal(labelled[strip:], plain)
  bright = [(labelled[:strip, 2 + j * 34:2 + j * 34 + 32] > 200).sum()
            for j in range(3)]
  assert bright[0] > 10 and bright[1] == 0 and bright[2] > 5, bright
  with pytest.raises(ValueError, match="2 labels for 3 columns"):
    images.image_grid(columns, labels=["a", "b"])


def test_cityscapes_gt_dir_must_be_local():
  config = config_lib.load_config("synthetic", "smoke")
  with pytest.raises(ValueError, match="cityscapes_gt_dir=gs://b/gtFine/val: "
                     "the official Cityscapes evaluation reads local files"):
    evaluate.evaluate(config, ["/nonexistent"], out_dir="gs://b/eval",
                      cityscapes_gt_dir="gs://b/gtFine/val")


def test_restore_errors(tmp_path):
  config = config_lib.load_config("synthetic", "smoke")
  with pytest.raises(FileNotFoundError, match="No checkpoint in"):
    train.restore_params(config, str(tmp_path))


def test_evaluate_command_on_a_briefly_trained_model(smoke_workdir, tmp_path,
                                                    synthetic_data_dir):
  """Train a few steps (shared fixture), then the CLI end to end."""
  out_dir = tmp_path / "eval"
  proc = subprocess.run(
      [sys.executable, "-m", "hpunet.evaluate",
       "--config=configs/synthetic.py:smoke", f"--workdir={smoke_workdir}",
       f"--config.input.data_dir={synthetic_data_dir}",
       "--num_samples=4", "--max_batches=2", "--split=test",
       f"--out_dir={out_dir}"],
      cwd=_REPO, check=True, capture_output=True, text=True, timeout=600)
  # No library INFO lines (absl format `I<mmdd> <time> <thread> <file>.py:N]`).
  info = re.findall(r"^I\d{4} .*\.py:\d+\].*$", proc.stderr, re.M)
  assert not info, info
  results = json.loads((out_dir / "results.json").read_text())
  assert results["task"] == "synthetic" and results["num_images"] == 8
  table = results["table"]
  for key in ("rec_iou", "hm_iou"):
    assert 0.0 <= table[key]["mean"] <= 1.0
  for key in ("ged", "ged_modes"):
    assert 0.0 <= table[key]["mean"] <= 2.0
  assert 0.0 <= table["mode_tv"]["mean"] <= 1.0
  # Per-scale variance ratios: every sampling mode x factor, non-negative.
  for mode in ("full", "only_most_global", "only_most_local"):
    for factor in ("spots", "blobs", "rings"):
      assert table[f"var_{mode}_{factor}"]["mean"] >= 0.0, (mode, factor)
  freqs = results["pooled"][0]["mode_frequencies"]
  assert len(freqs["expected"]) == 18
  assert sum(freqs["predicted"]) == pytest.approx(1.0)
  assert set(results["figures"]) == {
      "figures/ged_vs_samples.png", "figures/mode_frequencies.png",
      "figures/per_scale.png", "figures/samples.png", "figures/std.png"}
  # GED² at 1, 4, 8, 16 samples; --num_samples=4 is the table's GED².
  assert set(results["ged_vs_samples"]["ged_modes"]) == {"1", "4", "8", "16"}
  assert results["ged_vs_samples"]["ged"]["4"]["mean"] == pytest.approx(
      table["ged"]["mean"])
  for f in results["figures"]:
    assert (out_dir / f).stat().st_size > 100
  assert "| synthetic/s32 | IoU_rec |" in (out_dir / "results.md").read_text()
  # A config whose model differs from the checkpoint is refused clearly.
  config = config_lib.load_config("synthetic", "smoke")
  config.model.channels_per_block = (4, 8, 8, 8, 8, 16)
  with pytest.raises(ValueError, match="does not match"):
    train.restore_params(config, str(smoke_workdir))


def test_several_workdirs_write_per_run_folders_under_out_dir(
    smoke_workdir, ram_dir, synthetic_data_dir):
  """Seeds x runs: run<k>/ per workdir, the combined table at the top; the
  out_dir on a non-local filesystem (`ram://`, handled like gs://)."""
  from etils import epath  # pylint: disable=g-import-not-at-top
  config = config_lib.load_config("synthetic", "smoke")
  config.input.data_dir = synthetic_data_dir
  out_dir = epath.Path(ram_dir) / "combined"
  results = evaluate.evaluate(config, [str(smoke_workdir)] * 2,
                              split="test", num_samples=2, max_batches=1,
                              out_dir=str(out_dir))
  assert json.loads((out_dir / "results.json").read_text()) == json.loads(
      json.dumps(results))
  assert "| synthetic/s32 | IoU_rec |" in (out_dir / "results.md").read_text()
  assert results["num_runs"] == 2 and results["num_images"] == 4
  for k in (0, 1):
    single = json.loads((out_dir / f"run{k}" / "results.json").read_text())
    assert single["num_runs"] == 1
    # Same checkpoint, same sampling seed: identical per-run tables.
    assert single["table"]["rec_iou"]["mean"] == pytest.approx(
        results["table"]["rec_iou"]["mean"])
  assert all(f.startswith("run0/figures/") for f in results["figures"])
  for f in results["figures"]:
    assert (out_dir / f).is_file()


def test_trainer_validation_and_evaluate_compute_the_same_metrics():
  """train.validate (periodic validation over the mesh) and hpunet.evaluate
  share evaluation.evaluate_batches: equal values on the same batch."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax.sharding import Mesh  # pylint: disable=g-import-not-at-top
  from hpunet import sharding  # pylint: disable=g-import-not-at-top
  from hpunet import tasks  # pylint: disable=g-import-not-at-top
  rng = np.random.RandomState(3)
  b, s, g, m, h, w = 4, 3, 4, 5, 8, 8
  modes = (rng.rand(b, m, h, w) > 0.6).astype(np.uint8)
  probs = rng.dirichlet(np.ones(m), size=b).astype(np.float32)
  masks = np.moveaxis(modes[:, :g], 1, -1)  # graders = the first modes
  samples = rng.rand(s, b, h, w) > 0.5  # a fixed "model"
  batch = {"image": rng.rand(b, h, w, 1).astype(np.float32),
           "seg": masks[..., 0].astype(np.int32),
           "mask": np.ones((b, h, w), np.float32),
           "masks": masks, "modes": modes, "mode_probs": probs,
           "batch_mask": np.array([True, True, True, False])}
  # Fakes of the jitted predictions: reconstruct sets one pixel, samples are
  # fixed.
  def reconstruct(params, key, image, seg):
    del params, key, image
    return jax.numpy.asarray(seg).at[:, 0, 0].set(1)
  def sample(params, key, image):
    del params, key, image
    zeros = jax.numpy.zeros((b, h, w))
    return jax.numpy.asarray(samples.astype(np.int32)), zeros, zeros
  predictor = evaluation.Predictor(
      task=tasks.TASKS["synthetic"], num_samples=s, num_classes=2,
      sample=sample, reconstruct=reconstruct, scales={})
  mesh = Mesh(np.asarray(jax.devices()[:1]).reshape(1, 1), ("data", "spatial"))
  trainer = train.validate(
      {}, predictor, batches=iter([batch]), mesh=mesh,
      feed=sharding.data_feed(mesh, b), rng=jax.random.key(0))
  offline, _ = evaluation.finish(evaluation.evaluate_batches(
      predictor, {}, [batch], rng=jax.random.key(0)))
  out = collections.defaultdict(list)
  recs = np.moveaxis(masks > 0, -1, 1).copy()
  recs[:, :, 0, 0] = True
  evaluation.binary_metrics(out, np.moveaxis(samples, 0, 1), recs, batch,
                            batch["batch_mask"], subset_b=False)
  assert trainer["num_examples"] == 3
  for key in ("rec_iou", "ged", "ged_modes", "hm_iou"):
    assert len(out[key]) == 3
    assert trainer[key] == pytest.approx(np.mean(out[key]), abs=1e-9), key
    np.testing.assert_allclose(offline[key], out[key], atol=1e-12)
  assert 0.0 <= trainer["mode_tv"] <= 1.0


def _networks_without_posterior():
  """A stand-in for the baselines (dropout U-Net, ensembles, M-heads): no
  posterior, no latents; samples threshold the image at random levels."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from hpunet import networks as networks_lib  # pylint: disable=g-import-not-at-top

  def sample_n(params, rng, img, *, num_samples, mean=False):
    del mean  # nothing to hold at a mean
    level = jax.random.uniform(rng, (num_samples, img.shape[0], 1, 1))
    fg = img[None, ..., 0] - params["threshold"] - 0.5 * level
    return jnp.stack([jnp.zeros_like(fg), 20.0 * fg], -1)  # [S, B, H, W, 2]

  return networks_lib.Networks(
      init=None, train_outputs=None, reconstruct=None, reconstruct_full=None,
      sample=None, sample_n=sample_n, sample_n_full=None, latent_dims=(),
      num_classes=2, model_name="fake_baseline", has_posterior=False)


def test_ged_vs_samples_plots_and_a_model_without_posterior(
    monkeypatch, tmp_path, synthetic_data_dir, capsys):
  """hpunet.evaluate on a model with `has_posterior` False: GED² at 1, 4, 8,
  16 samples from one draw, per-image values, the Fig. 4 and mode-frequency
  plots, no reconstruction metrics (said in results.md); then
  hpunet.compare between it and a copy made worse."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from hpunet import cli  # pylint: disable=g-import-not-at-top
  from hpunet import compare  # pylint: disable=g-import-not-at-top
  from hpunet import comparison  # pylint: disable=g-import-not-at-top
  config = config_lib.load_config("synthetic", "smoke")
  config.input.data_dir = synthetic_data_dir
  config.model.name = "fake_baseline"
  params = {"model": {"threshold": jnp.float32(0.2)}}
  monkeypatch.setattr(evaluate.train_lib, "restore_params",
                      lambda config, workdir: (params, 7))
  monkeypatch.setattr(evaluate.networks_lib, "make_networks",
                      lambda model_config: _networks_without_posterior())
  out_dir = tmp_path / "a"
  results = evaluate.evaluate(config, [str(tmp_path / "workdir")],
                              num_samples=4, max_batches=1,
                              out_dir=str(out_dir))
  assert results["has_posterior"] is False
  table = results["table"]
  assert not any(k.startswith("rec_") or "only_most" in k for k in table)
  assert "var_full_spots" in table  # the samples' own variance still is
  curves = results["ged_vs_samples"]
  assert set(curves) == {"ged", "ged_modes"}
  assert set(curves["ged"]) == {"1", "4", "8", "16"}
  data = np.load(out_dir / "per_image.npz")
  n = results["num_images"]
  assert data["ged_n1"].shape == (1, n) and data["image_id"].shape == (n,)
  # --num_samples=4: 16 samples drawn once, GED² (and the table) of the
  # first 4 is GED² at n = 4.
  np.testing.assert_allclose(data["ged"], data["ged_n4"], atol=1e-12)
  np.testing.assert_allclose(data["ged_modes"], data["ged_modes_n4"],
                             atol=1e-12)
  assert not np.allclose(data["ged_n1"], data["ged_n16"])
  assert len(set(data["image_id"])) == n
  md = (out_dir / "results.md").read_text()
  assert "| GED² (graders), fake_baseline | " in md
  assert "| 1 sample | 4 samples | 8 samples | 16 samples |" in md
  assert "no posterior (`networks.has_posterior` is False)" in md
  assert "IoU_rec" not in md.split("Not computed")[0]
  assert set(results["figures"]) == {
      "figures/ged_vs_samples.png", "figures/mode_frequencies.png",
      "figures/samples.png", "figures/std.png"}
  for f in results["figures"]:
    assert (out_dir / f).stat().st_size > 1000, f
  freqs = results["pooled"][0]["mode_frequencies"]
  assert freqs["num_assigned"] == 4 * n  # --num_samples per image

  # Model B: model A's per-image GED² plus 0.1 on every image but one.
  worse = tmp_path / "b"
  worse.mkdir()
  (worse / "results.json").write_text((out_dir / "results.json").read_text())
  arrays = dict(data)
  for key in arrays:
    if key.startswith("ged"):
      arrays[key] = arrays[key] + np.where(np.arange(n) == 0, -0.01, 0.1)
  np.savez(worse / "per_image.npz", **arrays)
  fv = flags.FlagValues()
  f = compare._define_flags(fv)  # pylint: disable=protected-access
  capsys.readouterr()
  code = cli.execute(compare.main, f, [
      "prog", f"--a={out_dir}", f"--b={worse}", "--a_name=fake",
      "--b_name=worse", f"--out_dir={tmp_path / 'cmp'}"], fv)
  assert code == 0, capsys.readouterr().err
  report = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
  rows = {(r["metric"], r["num_samples"]): r for r in report["rows"]}
  assert set(rows) == {(k, m) for k in ("ged", "ged_modes")
                       for m in (1, 4, 8, 16)}
  from scipy import stats  # pylint: disable=g-import-not-at-top
  for (kind, m), row in rows.items():
    a, b = data[f"{kind}_n{m}"][0], arrays[f"{kind}_n{m}"][0]
    ref = stats.wilcoxon(a, b)
    assert row["statistic"] == pytest.approx(ref.statistic)
    assert row["p_value"] == pytest.approx(ref.pvalue)
    assert row["num_images"] == n and row["better"] == "fake"
    assert row["median_difference"] == pytest.approx(-0.1)
  assert "| GED² (graders) | 16 |" in capsys.readouterr().out
  # Pairing is by image id: B's images in another order change nothing.
  order = np.arange(n)[::-1]
  np.savez(worse / "per_image.npz",
           **{k: (v[order] if k == "image_id" else v[:, order])
              for k, v in arrays.items()})
  again = comparison.compare(comparison.load(str(out_dir)),
                             comparison.load(str(worse)))
  assert [r["p_value"] for r in again] == pytest.approx(
      [r["p_value"] for r in report["rows"]])
  # A folder that is not an evaluation: one line.
  code = cli.execute(compare.main, f, [
      "prog", f"--a={out_dir}", f"--b={tmp_path}"], fv)
  err = capsys.readouterr().err
  assert code == 2 and "no per_image.npz and results.json there" in err
