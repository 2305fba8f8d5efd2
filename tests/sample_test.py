# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Tests of `python -m hpunet.sample` (hpunet/sample.py)."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from hpunet import config_lib
from hpunet import sample

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _image(tmp_path, size=32, name="img.npy"):
  path = str(tmp_path / name)
  np.save(path, np.random.RandomState(0).rand(size, size, 1).astype(np.float32))
  return path


def test_sampling_semantics(smoke_workdir, tmp_path):
  config = config_lib.load_workdir_config(smoke_workdir)
  image = sample.load_image(_image(tmp_path))
  full = sample.sample_image(config, smoke_workdir, image, num_samples=6)
  assert full["samples"].shape == (6, 32, 32)
  np.testing.assert_allclose(full["probabilities"].sum(-1), 1.0, atol=1e-5)
  np.testing.assert_array_equal(full["samples"],
                                full["probabilities"].argmax(-1))
  assert full["std"].max() > 0  # independent samples differ
  # Every level at its (conditional) prior mean: all samples are identical.
  means = sample.sample_image(config, smoke_workdir, image, num_samples=3,
                              mean_levels="1,1,1,1")
  np.testing.assert_allclose(means["probabilities"][0],
                             means["probabilities"][2], atol=1e-6)
  assert means["std"].max() < 1e-5
  again = sample.sample_image(config, smoke_workdir, image, num_samples=6)
  np.testing.assert_array_equal(again["probabilities"], full["probabilities"])


def test_parse_mean_levels_and_image_errors(tmp_path):
  dims = (1, 1, 1, 1)
  assert sample.parse_mean_levels("full", dims) is False
  assert sample.parse_mean_levels("only_most_local", dims) == (True, True, True,
                                                              False)
  assert sample.parse_mean_levels("0,1,1,1", dims) == (False, True, True, True)
  # Levels without latents are skipped: the most global one is level 2.
  assert sample.parse_mean_levels("only_most_global", (0, 0, 1, 1)) == (
      True, True, False, True)
  # One sampling level is both the most global and the most local one.
  assert sample.parse_mean_levels("only_most_global", (0, 0, 0, 1)) is False
  with pytest.raises(ValueError, match="4 latent levels"):
    sample.parse_mean_levels("1,0", dims)
  with pytest.raises(ValueError, match="expected one of"):
    sample.parse_mean_levels("local", dims)
  image = np.zeros((40, 40, 1), np.float32)
  with pytest.raises(ValueError, match="40x40; the model expects 32x32"):
    sample.fit_image(image, 32, 32, 1)
  assert sample.fit_image(image, 32, 32, 1, center_crop=True).shape == (32, 32,
                                                                        1)
  with pytest.raises(ValueError, match="has 2 channels; the model expects 1"):
    sample.fit_image(np.zeros((32, 32, 2)), 32, 32, 1)
  np.save(tmp_path / "bad.npy", np.full((8, 8), 3.0))
  with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
    sample.load_image(str(tmp_path / "bad.npy"))
  with pytest.raises(FileNotFoundError, match="config.json"):
    config_lib.load_workdir_config(str(tmp_path))


def test_sample_command_writes_files(smoke_workdir, tmp_path):
  out_dir = tmp_path / "out"
  proc = subprocess.run(
      [sys.executable, "-m", "hpunet.sample", f"--workdir={smoke_workdir}",
       f"--image={_image(tmp_path)}", "--num_samples=4",
       "--mean_levels=only_most_global", f"--out={out_dir}"],
      cwd=_REPO, check=True, capture_output=True, text=True, timeout=300)
  # No library INFO lines (absl format `I<mmdd> <time> <thread> <file>.py:N]`).
  info = re.findall(r"^I\d{4} .*\.py:\d+\].*$", proc.stderr, re.M)
  assert not info, info
  samples = np.load(out_dir / "samples.npy")
  probs = np.load(out_dir / "probabilities.npy")
  assert samples.shape == (4, 32, 32) and probs.shape == (4, 32, 32, 2)
  np.testing.assert_array_equal(samples, probs.argmax(-1))
  for name in ("grid.png", "std.png", "samples/sample_03.png"):
    assert (out_dir / name).stat().st_size > 50
  # A workdir without a checkpoint is refused clearly.
  config = config_lib.load_workdir_config(smoke_workdir)
  with pytest.raises(FileNotFoundError, match="No checkpoint in"):
    sample.sample_image(config, str(tmp_path),
                        sample.load_image(_image(tmp_path)))


def test_sample_reads_and_writes_a_non_local_filesystem(smoke_workdir,
                                                        tmp_path, ram_dir):
  """--workdir's config.json, --image and --out on `ram://` (as on gs://)."""
  import io  # pylint: disable=g-import-not-at-top
  from etils import epath  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  root = epath.Path(ram_dir)
  (root / "run").mkdir(parents=True)
  (root / "run" / "config.json").write_bytes(
      epath.Path(smoke_workdir, "config.json").read_bytes())
  assert (config_lib.load_workdir_config(f"{ram_dir}/run").to_dict() ==
          config_lib.load_workdir_config(smoke_workdir).to_dict())
  local = sample.load_image(_image(tmp_path, size=8))
  (root / "img.npy").write_bytes(open(_image(tmp_path, size=8), "rb").read())
  np.testing.assert_array_equal(sample.load_image(f"{ram_dir}/img.npy"), local)
  png = io.BytesIO()
  Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4).save(
      png, format="PNG")
  (root / "img.png").write_bytes(png.getvalue())
  np.testing.assert_allclose(sample.load_image(f"{ram_dir}/img.png")[..., 0],
                             np.arange(64).reshape(8, 8) * 4 / 255.0)
  with pytest.raises(FileNotFoundError, match="not found"):
    sample.load_image(f"{ram_dir}/missing.png")
  probs = np.random.RandomState(1).dirichlet([1.0, 1.0], (3, 8, 8))
  out = {"image": local, "probabilities": probs.astype(np.float32),
         "samples": probs.argmax(-1).astype(np.int32),
         "std": probs[..., 1].std(0)}
  written = sample.write_outputs(out, f"{ram_dir}/out", num_classes=2)
  assert f"{ram_dir}/out/samples/sample_02.png" in written
  for path in written:
    assert tf.io.gfile.exists(path), path
  samples = np.load(io.BytesIO((root / "out" / "samples.npy").read_bytes()))
  np.testing.assert_array_equal(samples, out["samples"])
  # The same bytes as written to a local folder.
  local_written = sample.write_outputs(out, str(tmp_path / "out"), 2)
  # 2 .npy, 3 sample PNGs, grid.png, std.png
  assert len(local_written) == len(written) == 2 + 3 + 2
  for path in local_written:
    relative = os.path.relpath(path, tmp_path / "out")
    assert (root / "out" / relative).read_bytes() == open(path, "rb").read()


def test_per_scale_sampling_of_a_local_latents_only_model(tmp_path):
  """The only latent level of a local-latents-only model is sampled, not set
  to its mean, when sampling "only the most global level" (it is that level)."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax.sharding import Mesh  # pylint: disable=g-import-not-at-top
  from hpunet import checkpointing  # pylint: disable=g-import-not-at-top
  from hpunet import networks as networks_lib  # pylint: disable=g-import-not-at-top
  from hpunet import sharding  # pylint: disable=g-import-not-at-top
  from hpunet import train  # pylint: disable=g-import-not-at-top
  config = config_lib.load_config("synthetic_local_latents", "smoke")
  config.mesh.data = 1
  assert tuple(config.model.latent_dims) == (0, 0, 0, 1)
  mesh = Mesh(np.asarray(jax.devices()[:1]).reshape(1, 1), sharding.MESH_AXES)
  networks = networks_lib.make_networks(config.model)
  state = train.make_init_fn(config, networks, train.create_optimizer(config),
                             mesh)(jax.random.key(0))
  workdir = str(tmp_path / "local")
  checkpointer = checkpointing.Checkpointer(workdir, async_save=False)
  train._save(checkpointer, 1, state, config)  # pylint: disable=protected-access
  checkpointer.close()
  image = sample.load_image(_image(tmp_path))
  for mode in ("only_most_global", "only_most_local", "full"):
    out = sample.sample_image(config, workdir, image, num_samples=3,
                              mean_levels=mode)
    assert np.abs(out["probabilities"][0] - out["probabilities"][1]).max() > 1e-4
