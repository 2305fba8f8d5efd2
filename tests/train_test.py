# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Tests of hpunet/train.py, hpunet/checkpointing.py, hpunet/summary_writer.py.

- Pure pieces in-process: the schedule, the step's GECO/RNG bookkeeping.
- The README's main command end to end in a subprocess (synthetic smoke), and
  the same command SIGKILLed mid-way and restarted: its final state equals
  the uninterrupted run's bit for bit.
- A crash (os._exit) during an asynchronous save leaves the previous
  checkpoint as the latest complete one, restorable.
- The non-finite guard stops with a message naming the step and the last good
  checkpoint, which restores to finite parameters.

The synthetic dataset (32x32 config) is generated once per session into a
temporary TFDS data_dir. Subprocesses share the persistent compilation cache.
"""

import functools
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpunet import checkpointing
from hpunet import config_lib
from hpunet import geco
from hpunet import images
from hpunet import networks as networks_lib
from hpunet import objectives
from hpunet import sharding
from hpunet import summary_writer
from hpunet import train

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_STEPS = 60  # long enough to SIGKILL the run between two checkpoints.
_CKPT_EVERY = 10


# --- Helpers -----------------------------------------------------------------


def _env():
  cache = jax.config.jax_compilation_cache_dir or os.path.join(
      _REPO, ".jax_cache")
  env = dict(os.environ)
  env.update({
      "JAX_PLATFORMS": "cpu",
      "JAX_COMPILATION_CACHE_DIR": cache,
      "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
      "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
      "TF_CPP_MIN_LOG_LEVEL": "2",
      # Faster compiles; every run compared bit for bit uses the same flag.
      "JAX_DISABLE_MOST_OPTIMIZATIONS": "1",
      "PYTHONPATH": _REPO + os.pathsep + env.get("PYTHONPATH", ""),
  })
  env.pop("XLA_FLAGS", None)
  return env


def _readme_command(workdir, data_dir, *extra):
  return [
      sys.executable, "-m", "hpunet.train",
      "--config=configs/synthetic.py:smoke", f"--workdir={workdir}",
      f"--config.input.data_dir={data_dir}",
      f"--config.num_train_steps={_STEPS}",
      f"--config.checkpoint_every_steps={_CKPT_EVERY}",
      "--config.log_every_steps=20",
      f"--config.summary_images_every_steps={_STEPS}",
      f"--config.evals.val.every_steps={_STEPS}",
      *extra,
  ]


def _abstract_state(config):
  networks = networks_lib.make_networks(config.model)
  optimizer = train.create_optimizer(config)
  h, w = config.input.crop_size
  batch = {"image": jnp.zeros((2, h, w, config.input.channels)),
           "seg": jnp.zeros((2, h, w), jnp.int32),
           "mask": jnp.ones((2, h, w))}
  shapes = jax.eval_shape(
      lambda k: train.create_train_state(config, networks, optimizer, k,
                                         batch), jax.random.key(0))
  rep = sharding.replicated(
      sharding.create_mesh(config.mesh, jax.devices()[:1]))
  return jax.tree.map(
      lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=rep), shapes)


def _restore(workdir, config, step=None):
  ckpt = checkpointing.Checkpointer(workdir)
  try:
    step = ckpt.latest_step() if step is None else step
    state, meta = ckpt.restore(step, _abstract_state(config))
  finally:
    ckpt.close()
  return jax.device_get(state), meta


def _smoke_config(name="synthetic"):
  config = config_lib.load_config(name, "smoke")
  config.mesh.data = 1  # the first of the 8 fake devices
  return config


# The synthetic/s32 dataset, generated on first use (a few seconds) into a
# directory shared with tests/multihost_test.py and later runs.
_DATA_DIR = os.environ.get(
    "HPUNET_TEST_TFDS_DIR",
    os.path.join(tempfile.gettempdir(), "hpunet_tests_tfds"))


@pytest.fixture(scope="session")
def data_dir():
  from hpunet import input_pipeline  # pylint: disable=g-import-not-at-top
  config = _smoke_config()
  config.input.data_dir = _DATA_DIR
  next(iter(input_pipeline.create_train_dataset(
      config.input, seed=0, process_index=0, process_count=1)))
  return _DATA_DIR


# --- Pure pieces -------------------------------------------------------------


def test_learning_rate_schedules_follow_the_configs():
  lidc = train.create_learning_rate_fn(config_lib.load_config("lidc"))
  expected = {0: 1e-4, 47_999: 1e-4, 48_000: 5e-5, 96_000: 2.5e-5,
              144_000: 1e-5, 192_000: 5e-6, 239_999: 5e-6}
  for step, lr in expected.items():
    np.testing.assert_allclose(lidc(step), lr, rtol=1e-5, err_msg=str(step))
  city = train.create_learning_rate_fn(config_lib.load_config("cityscapes"))
  np.testing.assert_allclose([city(69_999), city(70_000)], [2e-4, 1e-4],
                             rtol=1e-6)
  snemi = train.create_learning_rate_fn(config_lib.load_config("snemi3d"))
  np.testing.assert_allclose(snemi(449_999), 1e-7, rtol=1e-5)
  bad = config_lib.load_config("lidc")
  bad.lr_schedule.boundaries = (10, 5, 20, 30)
  with pytest.raises(ValueError, match="strictly increasing"):
    train.create_learning_rate_fn(bad)
  bad.lr_schedule.boundaries = (10,)
  with pytest.raises(ValueError, match="5 learning_rates need 4"):
    train.create_learning_rate_fn(bad)


@pytest.fixture(scope="module")
def geco_step_setup():
  """A GECO loss on the cheap sPU-Net smoke model (the step is
  model-agnostic), with host-made parameters (no RNG kernels to compile)."""
  previous = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  config = _smoke_config("synthetic_spunet")
  config.loss.update(dict(type="geco", kappa=0.05, beta=None,
                          top_k_percentage=0.02))
  networks = networks_lib.make_networks(config.model)
  optimizer = train.create_optimizer(config)
  rng = np.random.default_rng(0)
  batch = {"image": rng.random((4, 32, 32, 1), np.float32),
           "seg": rng.integers(0, 2, (4, 32, 32)).astype(np.int32),
           "mask": np.ones((4, 32, 32), np.float32)}
  shapes = jax.eval_shape(
      lambda k: objectives.init_params(networks, k, batch, config.loss),
      jax.random.key(0))
  params = jax.tree_util.tree_map_with_path(
      lambda path, s: (np.asarray(geco.V0, np.float32)
                       if path[0].key == "lagrange_multiplier" else
                       (0.1 * rng.standard_normal(s.shape)).astype(
                           np.float32)), shapes)
  state = train.TrainState(step=jnp.int32(0), params=params,
                           opt_state=optimizer.init(params),
                           geco_state=geco.init_geco_state())

  def make_step(compute_dtype="float32"):
    return jax.jit(functools.partial(
        train.train_step, networks=networks, optimizer=optimizer,
        loss_config=config.loss, base_rng=jax.random.key(3),
        learning_rate_fn=train.create_learning_rate_fn(config),
        compute_dtype=compute_dtype))

  yield state, batch, make_step
  jax.config.update("jax_disable_most_optimizations", previous)


def test_train_step_updates_geco_lambda_and_rng_as_specified(
    geco_step_setup):
  state, batch, make_step = geco_step_setup
  step = make_step()
  history, states = [], [state]
  for _ in range(3):
    state, metrics = step(state, batch)
    states.append(state)
    history.append(jax.device_get(metrics))
  rec = [m["rec_loss_sum"] for m in history]
  # EMA: first value as is, then 0.99 * ma + 0.01 * x.
  ema = rec[0]
  np.testing.assert_allclose(history[0]["ma_rec_loss_sum"], ema, rtol=1e-6)
  for i in range(1, 3):
    ema = 0.99 * ema + 0.01 * rec[i]
    np.testing.assert_allclose(history[i]["ma_rec_loss_sum"], ema, rtol=1e-5)
  np.testing.assert_allclose(state.geco_state.ma, ema, rtol=1e-5)
  assert int(state.step) == 3
  # 2% of 4 * 32 * 32 pixels, per image.
  np.testing.assert_allclose(history[0]["num_valid_pixels"], 81 / 4)
  # Reconstruction far above kappa: lambda = softplus(v)^2 starts at 1 and
  # rises (gradient ascent on v by the same Adam: ~lr per step).
  assert history[0]["geco_constraint"] > 0
  np.testing.assert_allclose(history[0]["lagmul"], 1.0, rtol=1e-6)
  v = [float(s.params["lagrange_multiplier"]) for s in states]
  np.testing.assert_allclose(np.diff(v), 1e-3, rtol=0.05)
  assert history[2]["lagmul"] > history[1]["lagmul"] > history[0]["lagmul"]
  np.testing.assert_allclose(history[0]["learning_rate"], 1e-3, rtol=1e-6)
  # Per-step RNG is fold_in(key, step): replaying step 1 from the same state
  # gives the same result; another step number draws other noise.
  again, metrics_again = step(states[1], batch)
  np.testing.assert_array_equal(metrics_again["loss"], history[1]["loss"])
  jax.tree.map(np.testing.assert_array_equal, again.params, states[2].params)
  other = step(states[1]._replace(step=jnp.int32(7)), batch)[1]
  assert other["rec_loss_sum"] != history[1]["rec_loss_sum"]


def test_bfloat16_compute_keeps_float32_state(geco_step_setup):
  state, batch, make_step = geco_step_setup
  losses = {}
  for dtype in ("float32", "bfloat16"):
    new, metrics = make_step(dtype)(state, batch)
    assert all(x.dtype == jnp.float32
               for x in jax.tree.leaves(new.params)), dtype
    assert new.geco_state.ma.dtype == jnp.float32
    losses[dtype] = float(metrics["rec_loss_sum"])
  np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=0.05)


def test_summary_writer_writes_tensorboard_records(tmp_path):
  writer = summary_writer.SummaryWriter(str(tmp_path))
  grid = images.image_grid([
      images.image_to_rgb(np.zeros((2, 4, 4, 1))),
      images.label_to_rgb(np.ones((2, 4, 4), int), 2)])
  assert grid.shape == (1, 2 * 6 + 2, 2 * 6 + 2, 3)
  writer.write_scalars(3, {"train/loss": 1.5, "train/bad": float("nan")})
  writer.write_images(3, {"train/grid": grid})
  writer.write_text(0, "config", "hello")
  writer.close()
  records = summary_writer.read_jsonl(str(tmp_path / "metrics.jsonl"))
  assert records == [{"step": 3, "train/loss": 1.5, "train/bad": "nan"}]
  tags = _event_tags(str(tmp_path))
  assert tags["train/loss"] == ("scalars", [3])
  assert tags["train/grid"] == ("images", [3])
  assert tags["config"] == ("text", [0])


def _event_tags(workdir):
  """tag -> (plugin, steps) from the TensorBoard event files of a workdir."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tags = {}
  for path in glob.glob(os.path.join(workdir, "tensorboard", "events.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        plugin = value.metadata.plugin_data.plugin_name
        tags.setdefault(value.tag, (plugin, []))[1].append(event.step)
  return tags


# --- Checkpoints -------------------------------------------------------------


def test_crash_during_save_leaves_previous_checkpoint_restorable(tmp_path):
  workdir = str(tmp_path)
  script = textwrap.dedent(f"""
      import os, numpy as np, jax
      from hpunet import checkpointing
      ckpt = checkpointing.Checkpointer({workdir!r})
      small = {{"w": np.arange(4.0, dtype=np.float32)}}
      ckpt.save(1, small, meta={{"step": 1}})
      ckpt.wait_until_finished()
      big = {{"w": np.ones((16, 1024, 1024), np.float32)}}  # 64 MB
      ckpt.save(2, big, meta={{"step": 2}})  # asynchronous
      os._exit(3)  # crash before the save commits
  """)
  proc = subprocess.run([sys.executable, "-c", script], env=_env(),
                        cwd=_REPO, capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode == 3, proc.stderr[-3000:]
  entries = os.listdir(os.path.join(workdir, "checkpoints"))
  assert "1" in entries and "2" not in entries, entries
  assert any(e.startswith("2.") and "tmp" in e for e in entries), entries
  ckpt = checkpointing.Checkpointer(workdir)
  try:
    assert ckpt.latest_step() == 1
    abstract = {"w": jax.ShapeDtypeStruct((4,), jnp.float32)}
    state, meta = ckpt.restore(1, abstract)
  finally:
    ckpt.close()
  np.testing.assert_array_equal(state["w"], np.arange(4.0))
  assert meta == {"step": 1}
  # The unfinished step was cleaned up on start-up.
  assert not [e for e in os.listdir(os.path.join(workdir, "checkpoints"))
              if e.startswith("2")]


# --- End to end --------------------------------------------------------------


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory, data_dir):
  """The README command (smoke size), uninterrupted."""
  workdir = str(tmp_path_factory.mktemp("uninterrupted"))
  proc = subprocess.run(_readme_command(workdir, data_dir), env=_env(),
                        cwd=_REPO, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-5000:]
  return workdir, proc.stderr


def test_readme_command_runs_end_to_end(uninterrupted_run):
  workdir, log = uninterrupted_run
  assert "the train step was compiled 1 time(s)" in log
  assert f"step {_STEPS}/{_STEPS}" in log and "img/s" in log and "ETA" in log
  ckpt_steps = sorted(int(d) for d in os.listdir(
      os.path.join(workdir, "checkpoints")) if d.isdigit())
  assert ckpt_steps[-1] == _STEPS and len(ckpt_steps) == 3  # max_to_keep
  records = summary_writer.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  train_records = [r for r in records if "train/loss" in r]
  assert [r["step"] for r in train_records] == list(range(20, _STEPS + 1, 20))
  assert train_records[-1]["train/learning_rate"] == pytest.approx(3e-4)
  for key in ("train/rec_loss_mean", "train/kl_sum", "train/kl_0",
              "train/kl_3", "train/lagmul", "train/ma_rec_loss_mean",
              "train/learning_rate", "perf/images_per_sec"):
    assert all(np.isfinite(r[key]) for r in train_records), key
  # The reconstruction improved over the run.
  assert (train_records[-1]["train/rec_loss_mean"] <
          train_records[0]["train/rec_loss_mean"])
  evals = [r for r in records if "val/rec_iou" in r]
  assert [r["step"] for r in evals] == [_STEPS]
  assert evals[0]["val/num_examples"] == 4
  for key in ("val/rec_iou", "val/ged", "val/ged_modes", "val/hm_iou"):
    assert 0.0 <= evals[0][key] <= 2.0, (key, evals[0][key])
  tags = _event_tags(workdir)
  assert tags["train/loss"][0] == "scalars"
  assert tags["train/input_gt_reconstruction_samples"] == ("images",
                                                           [_STEPS])
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["model"]["name"] == "hpunet"


def test_sigkill_and_restart_reproduce_the_uninterrupted_run(
    uninterrupted_run, data_dir, tmp_path):
  reference_dir, _ = uninterrupted_run
  workdir = str(tmp_path)
  command = _readme_command(workdir, data_dir)
  proc = subprocess.Popen(command, env=_env(), cwd=_REPO,
                          stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  first = os.path.join(workdir, "checkpoints", str(_CKPT_EVERY))
  deadline = time.time() + 300
  try:
    while not os.path.exists(first) and proc.poll() is None:
      assert time.time() < deadline, "no checkpoint written"
      time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)  # mid-way: more steps to go
  finally:
    proc.wait()
  assert proc.returncode == -signal.SIGKILL
  steps = sorted(int(d) for d in os.listdir(os.path.join(
      workdir, "checkpoints")) if d.isdigit())
  assert steps and steps[-1] < _STEPS, steps
  resumed = subprocess.run(command, env=_env(), cwd=_REPO,
                           capture_output=True, text=True, timeout=600)
  assert resumed.returncode == 0, resumed.stderr[-5000:]
  assert f"Resumed from step {steps[-1]}" in resumed.stderr
  config = _smoke_config()
  want, _ = _restore(reference_dir, config, _STEPS)
  got, meta = _restore(workdir, config, _STEPS)
  assert meta["step"] == _STEPS and meta["seed"] == 0
  jax.tree.map(np.testing.assert_array_equal, got, want)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
    tmp_path, data_dir, monkeypatch, fast_compiles):
  del fast_compiles
  config = _smoke_config("synthetic_spunet")
  config.input.data_dir = data_dir
  config.num_train_steps = 8
  config.checkpoint_every_steps = 2
  config.log_every_steps = 4
  config.summary_images_every_steps = 0
  config.evals.val.every_steps = 0
  bad_step = 5  # the update that produces state step 5 sees a NaN image
  real = train._train_batches  # pylint: disable=protected-access

  def poisoned(config, feed, start_step):
    for step, batch in enumerate(real(config, feed, start_step), start_step):
      if step + 1 == bad_step:
        batch = dict(batch, image=np.full_like(batch["image"], np.nan))
      yield batch

  monkeypatch.setattr(train, "_train_batches", poisoned)
  workdir = str(tmp_path)
  with pytest.raises(FloatingPointError) as error:
    train.train_and_evaluate(config, workdir)
  message = str(error.value)
  assert f"at step {bad_step}" in message
  assert "last good checkpoint is step 4" in message
  steps = sorted(int(d) for d in os.listdir(os.path.join(
      workdir, "checkpoints")) if d.isdigit())
  assert steps == [2, 4]
  state, _ = _restore(workdir, config, 4)
  assert int(state.step) == 4
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(state))


def test_sigterm_checkpoints_stops_and_resumes_exactly(
    tmp_path, data_dir, monkeypatch, fast_compiles):
  del fast_compiles
  config = _smoke_config("synthetic_spunet")
  config.input.data_dir = data_dir
  config.num_train_steps = 8
  config.checkpoint_every_steps = 100  # only the preemption / final saves
  config.log_every_steps = 4
  config.summary_images_every_steps = 0
  config.evals.val.every_steps = 0
  reference = train.train_and_evaluate(config, str(tmp_path / "reference"))
  assert not reference.stopped_early

  real = train._train_batches  # pylint: disable=protected-access

  def preempt_once(config, feed, start_step):
    for step, batch in enumerate(real(config, feed, start_step), start_step):
      if step == 3 and start_step == 0:
        os.kill(os.getpid(), signal.SIGTERM)  # the "preemption notice"
      yield batch

  monkeypatch.setattr(train, "_train_batches", preempt_once)
  handler = signal.getsignal(signal.SIGTERM)
  workdir = str(tmp_path / "preempted")
  first = train.train_and_evaluate(config, workdir)
  assert first.stopped_early
  saved = int(first.state.step)
  assert 1 <= saved < config.num_train_steps
  ckpt = checkpointing.Checkpointer(workdir)
  assert ckpt.all_steps() == [saved]
  ckpt.close()
  second = train.train_and_evaluate(config, workdir)
  assert not second.stopped_early and int(second.state.step) == 8
  jax.tree.map(np.testing.assert_array_equal,
               jax.device_get(second.state),
               jax.device_get(reference.state))
  assert signal.getsignal(signal.SIGTERM) is handler  # restored


def test_profile_steps_flag_and_next_commands():
  from hpunet import errors  # pylint: disable=g-import-not-at-top
  assert train.parse_profile_steps(None) is None
  assert train.parse_profile_steps(["3", "5"]) == (3, 5)
  for bad in (["5", "3"], ["-1", "2"], ["a", "b"], ["1"]):
    with pytest.raises(errors.UserError, match="--profile_steps"):
      train.parse_profile_steps(bad)
  text = train.next_commands("configs/synthetic.py", "/w")
  assert "python -m hpunet.evaluate --config=configs/synthetic.py --workdir=/w" in text
  assert "python -m hpunet.sample --workdir=/w" in text
  assert "tensorboard --logdir=/w/tensorboard" in text


def test_pace_averages_every_timed_interval():
  pace = train._Pace()

  class Timer:
    def __init__(self, steps, seconds):
      self.steps, self._seconds = steps, seconds

    def elapsed(self):
      return self._seconds

  pace.add(Timer(10, 1.0))
  pace.add(Timer(10, 3.0))  # a slow interval moves the ETA, not to 3x
  pace.add(Timer(0, 5.0))  # an interval without steps is skipped
  assert pace.eta(100) == pytest.approx(20.0)


def test_summary_image_grid_has_column_labels():
  """The TensorBoard grid: a band of column titles above the plain grid."""
  rng = np.random.default_rng(0)
  image = rng.random((2, 32, 32, 1)).astype(np.float32)
  seg = rng.integers(0, 2, (2, 32, 32))
  rec = rng.integers(0, 2, (2, 32, 32))
  samples = rng.integers(0, 2, (3, 2, 32, 32))
  fn = lambda params, rng, image, seg, mask=None: (image, seg, rec, samples)
  grid = train.image_summary(fn, None, None, {"image": image, "seg": seg},
                             num_classes=2)
  columns = [images.image_to_rgb(image), images.label_to_rgb(seg, 2),
             images.label_to_rgb(rec, 2)] + [
                 images.label_to_rgb(s, 2) for s in samples]
  plain = images.image_grid(columns)
  band = grid.shape[1] - plain.shape[1]
  assert grid.shape == (1, 2 * 34 + 2 + band, 6 * 34 + 2, 3) and band == 12
  np.testing.assert_array_equal(grid[:, band:], plain)
  # White title pixels over each of the 6 columns, none in the gaps.
  strip = grid[0, :band]
  for j in range(6):
    assert (strip[:, 2 + j * 34:2 + j * 34 + 32] > 200).any(), j
  assert (strip[:, :2] == 64).all() and (strip[:, 34:36] == 64).all()
  np.testing.assert_array_equal(
      grid, images.image_grid(columns, labels=[
          "image", "label", "reconstruction", "sample 1", "sample 2",
          "sample 3"]))
