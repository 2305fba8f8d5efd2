"""What a user gets wrong, and what goes wrong on disk (issue 16).

- Bad input to every command (`build_dataset`, `train`, `evaluate`,
  `sample`): exit code 2, exactly one `Error:` line naming the field or flag
  and what was expected, no traceback, and nothing on disk changed. The
  commands run in-process through `cli.execute` with fresh flag values; every
  case fails before anything is compiled.
- Damaged checkpoints (a truncated data file, a deleted OCDBT manifest,
  zeroed bytes): the run falls back to the newest good checkpoint and moves
  the damaged one aside; a full disk (ENOSPC from the background save) stops
  the run with one line and exit code 4, without tmp folders.
- Interrupts and exit codes: Ctrl-C, a second Ctrl-C, a preempted run (75),
  metrics.jsonl without duplicated steps after a resume.
"""

import errno
import json
import os
import shutil
import signal
import time

from absl import flags
import numpy as np
import pytest

from hpunet import build_dataset
from hpunet import checkpointing
from hpunet import cli
from hpunet import config_lib
from hpunet import dataset_builders
from hpunet import errors
from hpunet import evaluate
from hpunet import sample
from hpunet import summary_writer
from hpunet import train

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SMOKE = os.path.join(_REPO, "configs", "synthetic.py") + ":smoke"


def _snapshot(*paths) -> dict:
  """Every file and folder under `paths` with its size and mtime."""
  out = {}
  for root in paths:
    root = str(root)
    if not os.path.exists(root):
      out[root] = None
      continue
    for dirpath, dirnames, filenames in os.walk(root):
      for name in dirnames + filenames:
        p = os.path.join(dirpath, name)
        st = os.stat(p)
        out[p] = (st.st_size if name in filenames else -1, st.st_mtime_ns)
  return out


def _run(module, argv, capsys):
  """Runs `module.main` like `python -m module argv`; (exit code, stderr)."""
  fv = flags.FlagValues()
  f = module._define_flags(fv)  # pylint: disable=protected-access
  capsys.readouterr()
  code = cli.execute(module.main, f, ["prog"] + list(argv), fv)
  return code, capsys.readouterr().err


def _assert_one_line(err: str, *expected: str) -> str:
  lines = [l for l in err.splitlines() if l.startswith("Error: ")]
  assert len(lines) == 1, err
  assert "Traceback" not in err, err
  for text in expected:
    assert text in lines[0], (text, lines[0])
  return lines[0]


def _assert_rejected(command, cases, capsys, prefix=()):
  """Each (argv, expected) case exits USER_ERROR with one matching line."""
  for argv, expected in cases:
    code, err = _run(command, list(prefix) + argv, capsys)
    assert code == errors.USER_ERROR, argv
    _assert_one_line(err, *expected)


def _copy(src, tmp_path, name="w"):
  dst = str(tmp_path / name)
  shutil.copytree(src, dst)
  return dst


def _smoke_config(data_dir, **overrides):
  """The config of conftest's `smoke_workdir` (one device, no evals)."""
  config = config_lib.load_config("synthetic", "smoke")
  config.input.data_dir = data_dir
  config.num_train_steps = 3
  config.evals = {}
  config.mesh.data = 1
  config.summary_images_every_steps = 0  # no extra compilation
  config.update(overrides)
  return config


# ----------------------------------------------------------------------------
# train: bad input.
# ----------------------------------------------------------------------------

_TRAIN_CASES = [
    (["--config.num_train_steps=-5"], ["config.num_train_steps=-5",
                                       "integer >= 1"]),
    (["--config.log_every_steps=0"], ["config.log_every_steps=0"]),
    (["--config.checkpoint_every_steps=0"],
     ["config.checkpoint_every_steps=0"]),
    (["--config.input.batch_size=0"], ["config.input.batch_size=0"]),
    (["--config.mesh.data=-1"],  # 8 test devices, batch 4
     ["config.input.batch_size=4", "divisible", "data axis (8"]),
    (["--config.mesh.data=2", "--config.evals.val.batch_size=3"],
     ["config.evals.val.batch_size=3", "multiple of the mesh's data devices"]),
    (["--config.evals.val.num_samples=0"],
     ["config.evals.val.num_samples=0"]),
    (["--config.compute_dtype=float16"], ["config.compute_dtype='float16'",
                                          "bfloat16"]),
    (["--config.summary_num_samples=0"], ["config.summary_num_samples=0"]),
    (["--config.lr_schedule.learning_rates=(0.001,-1.0)"],
     ["config.lr_schedule.learning_rates[1]=-1.0"]),
    (["--config.model.num_classes=3"], ["config.model.num_classes=3",
                                        "config.input.num_classes=2"]),
    (["--config.input.crop_size=(48,48)"], ["config.input.crop_size=(48, 48)",
                                            "at most"]),
    (["--config.input.crop_size=(16,16)", "--config.input.image_size=(16,16)"],
     ["config.input.crop_size=(16, 16)", "multiple of", "= 32"]),
    (["--config.loss.type=mse"], ["config.loss.type='mse'", "geco"]),
    (["--config.loss.kappa=-1.0"], ["config.loss.kappa=-1.0"]),
    (["--config.loss.kl_warmup_steps=-5"], ["config.loss.kl_warmup_steps=-5",
                                           "integer >= 0"]),
    (["--config.loss.free_bits=-0.5"], ["config.loss.free_bits=-0.5"]),
    (["--config.loss.kl_balancing=True"], ["config.loss.kl_balancing=True",
                                          "kl_warmup_steps > 0"]),
    (["--config.model.level_dropout_rate=1.0"],
     ["config.model.level_dropout_rate=1.0", "below 1"]),
    (["--config.model.level_dropout_rate=0.5",
      "--config.model.level_dropout_from=0"],
     ["config.model.level_dropout_from=0", "[1, 3]"]),
    (["--config.model.global_latent_skips=True",
      "--config.model.latent_dims=(0,1,1,1)"],
     ["config.model.global_latent_skips=True",
      "config.model.latent_dims=(0, 1, 1, 1)", "> 0"]),
    (["--config.model.residual_posterior_from=4"],
     ["config.model.residual_posterior_from=4", "[1, 3]"]),
    (["--config.model.posterior_pooling=avg"],
     ["config.model.posterior_pooling='avg'", "'mean'", "'max'"]),
    (["--config.loss.level_dropout_decay_steps=(500,100)"],
     ["config.loss.level_dropout_decay_steps=(500, 100)", "start < end"]),
    (["--config.model.level_dropout_rate=0.5",
      "--config.loss.level_dropout_final_scale=0.2"],
     ["config.loss.level_dropout_final_scale=0.2", "decay_steps is off"]),
    (["--config.model.level_dropout_rate=0.5",
      "--config.loss.level_dropout_decay_steps=(0,100)",
      "--config.loss.level_dropout_final_scale=1.5"],
     ["config.loss.level_dropout_final_scale=1.5", "[0, 1]"]),
    (["--config.loss.kl_level_weights=(1.0,1.0,4.0)"],
     ["config.loss.kl_level_weights=(1.0, 1.0, 4.0)", "expected 4 factors"]),
    (["--config.loss.kl_level_weights=(1.0,1.0,0.0,4.0)"],
     ["config.loss.kl_level_weights=(1.0, 1.0, 0.0, 4.0)", "factors > 0"]),
    (["--config.loss.level_dropout_decay_steps=(0,100)"],
     ["config.loss.level_dropout_decay_steps=(0, 100)",
      "level_dropout_rate", "rate > 0"]),
    (["--config.foo=1"], ["--config.foo=1", "no field 'foo'"]),
    (["--config.log_every_steps=x"], ["--config.log_every_steps=x"]),
]


@pytest.mark.parametrize("extra,expected", _TRAIN_CASES,
                         ids=[c[0][-1] for c in _TRAIN_CASES])
def test_train_rejects_bad_config(extra, expected, tmp_path, capsys,
                                  synthetic_data_dir):
  workdir = tmp_path / "w"
  before = _snapshot(tmp_path, synthetic_data_dir)
  code, err = _run(train, [f"--config={_SMOKE}", f"--workdir={workdir}",
                           "--config.mesh.data=1",
                           f"--config.input.data_dir={synthetic_data_dir}"]
                   + extra, capsys)
  assert code == errors.USER_ERROR
  _assert_one_line(err, *expected)
  assert _snapshot(tmp_path, synthetic_data_dir) == before
  assert not workdir.exists()


def test_train_rejects_bad_config_files_and_paths(tmp_path, capsys):
  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  cases = [
      ([f"--config={tmp_path}/nope.py", f"--workdir={tmp_path}/w"],
       ["nope.py: no such config file", "configs/synthetic.py:smoke"]),
      ([f"--config={_SMOKE.replace(':smoke', ':bogus')}",
        f"--workdir={tmp_path}/w"], ["Unknown config variant 'bogus'"]),
      ([f"--config={_SMOKE}"], ["--workdir is required"]),
      ([f"--config={_SMOKE}", f"--workdir={a_file}", "--config.mesh.data=1"],
       [f"--workdir={a_file}: is a file; expected a folder"]),
      ([f"--config={_SMOKE}", f"--workdir={tmp_path}/w", "--config.mesh.data=1",
        f"--config.input.data_dir={a_file}"],
       ["config.input.data_dir=", "is a file"]),
      ([f"--config={_SMOKE}", f"--workdir={tmp_path}/w", "--config.mesh.data=1",
        f"--config.input.data_dir={tmp_path}/missing",
        "--config.input.prepare_if_missing=False"],
       ["config.input.data_dir=", "no such folder", "build_dataset"]),
      ([f"--config={_SMOKE}", f"--workdir={tmp_path}/w", "--no_such_flag=1"],
       ["no_such_flag"]),
  ]
  before = _snapshot(tmp_path)
  _assert_rejected(train, cases, capsys)
  assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("extra,expected", [
    (["--config.model.convs_per_block=3"],
     ["model.convs_per_block: 2 -> 3", "Use a new --workdir"]),
    (["--config.seed=1"], ["seed: 0 -> 1"]),
    (["--config.input.dataset=synthetic/s64"],
     ['input.dataset: "synthetic/s32" -> "synthetic/s64"']),
])
def test_train_refuses_a_changed_resume_and_writes_nothing(
    extra, expected, tmp_path, capsys, smoke_workdir, synthetic_data_dir):
  workdir = _copy(smoke_workdir, tmp_path)
  before = _snapshot(workdir)
  code, err = _run(train, [f"--config={_SMOKE}", f"--workdir={workdir}",
                           "--config.mesh.data=1", "--config.evals={}",
                           f"--config.input.data_dir={synthetic_data_dir}"]
                   + extra, capsys)
  assert code == errors.USER_ERROR
  _assert_one_line(err, "Cannot resume the checkpoint at step 3", *expected)
  assert _snapshot(workdir) == before  # config.json included


# ----------------------------------------------------------------------------
# evaluate and sample: bad input; read-only.
# ----------------------------------------------------------------------------


def test_evaluate_rejects_bad_flags_and_creates_nothing(
    tmp_path, capsys, smoke_workdir, synthetic_data_dir):
  workdir = _copy(smoke_workdir, tmp_path)
  empty = tmp_path / "empty"
  empty.mkdir()
  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  base = [f"--config={_SMOKE}", f"--config.input.data_dir={synthetic_data_dir}"]
  cases = [
      ([f"--workdir={workdir}", "--num_samples=0"], ["--num_samples=0"]),
      ([f"--workdir={workdir}", "--num_samples=-2"],
       ["--num_samples=-2", "integer >= 1"]),
      ([f"--workdir={tmp_path}/mistyped"],
       ["mistyped: no such folder", "training workdir"]),
      ([f"--workdir={empty}"], ["no checkpoint in", "train first"]),
      ([f"--workdir={workdir}", "--max_batches=0"], ["--max_batches=0"]),
      ([f"--workdir={workdir}", f"--out_dir={a_file}"],
       ["--out_dir=", "is a file"]),
      ([f"--workdir={workdir}", "--split="], ["--split=''"]),
      ([f"--workdir={workdir}", f"--cityscapes_gt_dir={tmp_path}/gt"],
       ["--cityscapes_gt_dir=", "no such folder"]),
      ([f"--workdir={workdir}", "--config.model.convs_per_block=3"],
       ["does not match the checkpoint", "model.convs_per_block"]),
  ]
  before = _snapshot(tmp_path)
  _assert_rejected(evaluate, cases, capsys, prefix=base)
  code, err = _run(evaluate, [f"--workdir={workdir}"], capsys)
  assert code == errors.USER_ERROR
  _assert_one_line(err, "--config and --workdir are required")
  assert _snapshot(tmp_path) == before
  assert not (tmp_path / "mistyped").exists()
  assert not (empty / "checkpoints").exists()


def test_sample_rejects_bad_input_and_writes_nothing(tmp_path, capsys,
                                                     smoke_workdir):
  workdir = _copy(smoke_workdir, tmp_path)
  no_config = _copy(smoke_workdir, tmp_path, "no_config")
  os.remove(os.path.join(no_config, "config.json"))
  good = tmp_path / "good.npy"
  np.save(good, np.full((32, 32), 0.5, np.float32))
  nan = tmp_path / "nan.npy"
  np.save(nan, np.full((32, 32), np.nan, np.float32))
  inf = tmp_path / "inf.npy"
  np.save(inf, np.where(np.eye(32) > 0, np.inf, 0.5).astype(np.float32))
  big = tmp_path / "big.npy"
  np.save(big, np.full((32, 32), 2.0, np.float32))
  wrong_size = tmp_path / "wrong_size.npy"
  np.save(wrong_size, np.full((40, 40), 0.5, np.float32))
  text = tmp_path / "image.txt"
  text.write_text("x")
  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  out = tmp_path / "out"
  cases = [
      ([f"--workdir={workdir}", f"--image={good}", f"--out={out}",
        "--num_samples=0"], ["--num_samples=0", "integer >= 1"]),
      ([f"--workdir={workdir}", f"--image={tmp_path}/missing.png",
        f"--out={out}"], ["missing.png: no such file"]),
      ([f"--workdir={workdir}", f"--image={nan}", f"--out={out}"],
       ["nan.npy", "1024 of 1024 values are NaN or infinite"]),
      ([f"--workdir={workdir}", f"--image={inf}", f"--out={out}"],
       ["inf.npy", "32 of 1024 values are NaN or infinite"]),
      ([f"--workdir={workdir}", f"--image={big}", f"--out={out}"],
       ["big.npy", "[0, 1]"]),
      ([f"--workdir={workdir}", f"--image={text}", f"--out={out}"],
       ["image.txt: expected a .png or .npy file"]),
      ([f"--workdir={workdir}", f"--image={good}", f"--out={a_file}"],
       ["--out=", "is a file"]),
      ([f"--workdir={tmp_path}/nowhere", f"--image={good}", f"--out={out}"],
       ["--workdir=", "no such folder"]),
      ([f"--workdir={workdir}", f"--image={good}", f"--out={out}",
        "--mean_levels=bogus"], ["--mean_levels='bogus'"]),
      ([f"--workdir={workdir}", f"--image={wrong_size}", f"--out={out}"],
       ["40x40; the model expects 32x32"]),
      ([f"--workdir={no_config}", f"--image={good}", f"--out={out}"],
       ["config.json not found"]),
      ([f"--workdir={workdir}", f"--out={out}"], ["--image is required"]),
  ]
  before = _snapshot(tmp_path)
  _assert_rejected(sample, cases, capsys)
  assert _snapshot(tmp_path) == before
  assert not out.exists()


# ----------------------------------------------------------------------------
# build_dataset: bad input, stale partial builds.
# ----------------------------------------------------------------------------


def test_build_dataset_rejects_bad_input(tmp_path, capsys):
  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  data_dir = tmp_path / "tfds"
  data_dir.mkdir()
  cases = [
      (["nope", f"--data_dir={data_dir}"], ["'nope'", "available"]),
      (["Bad!", f"--data_dir={data_dir}"], ["Invalid dataset name 'Bad!'"]),
      (["lidc", f"--manual_dir={tmp_path}/missing", f"--data_dir={data_dir}"],
       ["missing for dataset 'lidc' does not exist or is empty",
        "val.tar.gz"]),
      (["synthetic/s32", f"--data_dir={a_file}"],
       ["--data_dir=", "is a file"]),
      (["lidc", f"--data_dir={data_dir}"], ["needs --manual_dir"]),
      ([f"--data_dir={data_dir}"], ["Usage: python -m hpunet.build_dataset"]),
      (["lidc", "--file_format=parquet"], ["--file_format", "parquet"]),
  ]
  for argv, expected in cases:
    before = _snapshot(tmp_path)
    code, err = _run(build_dataset, argv, capsys)
    assert code == errors.USER_ERROR, argv
    _assert_one_line(err, *expected)
    assert _snapshot(tmp_path) == before, argv


def test_build_removes_stale_partial_builds(tmp_path):
  dataset_dir = tmp_path / "synthetic" / "s32" / "1.0.0"
  stale = tmp_path / "synthetic" / "s32" / "incomplete.ABC123_1.0.0"
  fresh = tmp_path / "synthetic" / "s32" / "incomplete.DEF456_1.0.0"
  for d in (stale, fresh):
    d.mkdir(parents=True)
    (d / "synthetic-train.tfrecord-00000-of-00001").write_bytes(b"x" * 10)
  old = time.time() - 3600
  os.utime(stale / "synthetic-train.tfrecord-00000-of-00001", (old, old))
  os.utime(stale, (old, old))
  removed = dataset_builders.remove_stale_partial_builds(str(dataset_dir))
  assert removed == [str(stale)]
  assert not stale.exists() and fresh.exists()  # may be a running build


# ----------------------------------------------------------------------------
# Damaged checkpoints and a full disk.
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory, smoke_workdir, synthetic_data_dir):
  """`smoke_workdir` trained on to step 6: checkpoints 3 and 6."""
  workdir = _copy(smoke_workdir, tmp_path_factory.mktemp("two"))
  train.train_and_evaluate(
      _smoke_config(synthetic_data_dir, num_train_steps=6), workdir)
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3", "6"]
  return workdir


def _data_files(step_dir):
  """The OCDBT files of a checkpoint's state that restores read, largest
  first (after a save, orbax merges the per-process data into `state/d/`)."""
  root = os.path.join(step_dir, "state", "d")
  files = [os.path.join(root, f) for f in os.listdir(root)]
  return sorted(files, key=os.path.getsize, reverse=True)


def _abstract(config):
  from hpunet import sharding  # pylint: disable=g-import-not-at-top
  return train.abstract_train_state(config, sharding.create_mesh(config.mesh))


def test_truncated_newest_checkpoint_falls_back_and_the_run_continues(
    tmp_path, two_checkpoints, synthetic_data_dir):
  workdir = _copy(two_checkpoints, tmp_path)
  data = _data_files(os.path.join(workdir, "checkpoints", "6"))
  assert data
  with open(data[0], "r+b") as f:
    f.truncate(os.path.getsize(data[0]) // 2)
  # A killed run had logged a step after the last checkpoint.
  with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
    f.write(json.dumps({"step": 7, "train/loss": 1.0}) + "\n")
  result = train.train_and_evaluate(
      _smoke_config(synthetic_data_dir, num_train_steps=6), workdir)
  assert int(result.state.step) == 6
  moved = os.path.join(workdir, checkpointing.DAMAGED_DIR, "step_6")
  assert os.path.isdir(moved)  # kept for inspection, not deleted
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3", "6"]
  steps = [r["step"] for r in summary_writer.read_jsonl(
      os.path.join(workdir, "metrics.jsonl")) if "train/loss" in r]
  assert steps == sorted(set(steps)) and 7 not in steps, steps


@pytest.mark.parametrize("damage", ["delete_manifest", "zero_bytes",
                                    "wrong_bytes"])
def test_damaged_newest_checkpoint_is_detected_and_moved_aside(
    damage, tmp_path, two_checkpoints, synthetic_data_dir):
  workdir = _copy(two_checkpoints, tmp_path)
  step_dir = os.path.join(workdir, "checkpoints", "6")
  if damage == "delete_manifest":
    manifests = [os.path.join(d, f) for d, _, fs in os.walk(step_dir)
                 for f in fs if f == "manifest.ocdbt"]
    assert manifests
    for m in manifests:
      os.remove(m)
  elif damage == "zero_bytes":  # in the largest data file
    path = _data_files(step_dir)[0]
    with open(path, "r+b") as f:
      f.seek(os.path.getsize(path) // 5)
      f.write(b"\0" * 64)
  else:  # files that read fine but hold other values: only the CRC tells
    shutil.rmtree(os.path.join(step_dir, "state"))
    shutil.copytree(os.path.join(workdir, "checkpoints", "3", "state"),
                    os.path.join(step_dir, "state"))
  config = _smoke_config(synthetic_data_dir)
  checkpointer = checkpointing.Checkpointer(workdir)
  try:
    state, meta, step = checkpointer.restore_newest(_abstract(config))
    assert step == 3 and int(state.step) == 3 and meta["step"] == 3
    assert checkpointer.all_steps() == [3]
  finally:
    checkpointer.close()
  assert os.path.isdir(os.path.join(workdir, checkpointing.DAMAGED_DIR,
                                    "step_6"))


def test_no_restorable_checkpoint_is_one_line_and_moves_nothing(
    tmp_path, two_checkpoints, synthetic_data_dir):
  workdir = _copy(two_checkpoints, tmp_path)
  for step in ("3", "6"):
    for path in _data_files(os.path.join(workdir, "checkpoints", step)):
      os.truncate(path, 0)
  before = _snapshot(workdir)
  checkpointer = checkpointing.Checkpointer(workdir)
  try:
    with pytest.raises(errors.UserError, match="No checkpoint in .* restores "
                       r"\(the newest, step 6") as info:
      checkpointer.restore_newest(_abstract(_smoke_config(synthetic_data_dir)))
  finally:
    checkpointer.close()
  assert "\n" not in str(info.value)
  assert _snapshot(workdir) == before


def test_a_full_disk_stops_the_run_at_once_in_one_line(
    tmp_path, capsys, monkeypatch, smoke_workdir, synthetic_data_dir):
  # pylint: disable-next=g-import-not-at-top
  from orbax.checkpoint._src.handlers import json_checkpoint_handler

  async def no_space(self, x, directory):
    del self, x, directory
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(json_checkpoint_handler.JsonCheckpointHandler,
                      "_save_fn", no_space)
  workdir = _copy(smoke_workdir, tmp_path)
  code, err = _run(train, [
      f"--config={_SMOKE}", f"--workdir={workdir}", "--config.mesh.data=1",
      "--config.evals={}", "--config.summary_images_every_steps=0",
      f"--config.input.data_dir={synthetic_data_dir}",
      "--config.num_train_steps=30"], capsys)
  assert code == errors.SAVE_FAILED
  _assert_one_line(err, "Could not write the checkpoint of step 6",
                   "No space left on device",
                   "the newest intact checkpoint is step 3")
  names = os.listdir(os.path.join(workdir, "checkpoints"))
  assert sorted(n for n in names if n.isdigit()) == ["3"]
  assert not [n for n in names if "tmp" in n], names
  # Stopped at once: far from step 30.
  steps = [r["step"] for r in summary_writer.read_jsonl(
      os.path.join(workdir, "metrics.jsonl"))]
  assert max(steps) < 30


# ----------------------------------------------------------------------------
# Interrupts, exit codes, the CLI wrapper.
# ----------------------------------------------------------------------------


def test_ctrl_c_asks_for_a_checkpoint_and_a_second_one_stops_at_once():
  previous = signal.getsignal(signal.SIGINT)
  watcher = checkpointing.PreemptionWatcher()
  try:
    assert not watcher.reached(1)
    os.kill(os.getpid(), signal.SIGINT)
    assert watcher.reached(1)
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)
      time.sleep(1)
  finally:
    watcher.close()
  assert signal.getsignal(signal.SIGINT) is previous


def test_exit_codes(monkeypatch, capsys, tmp_path):
  def stopped(config, workdir, **kwargs):
    del config, workdir, kwargs
    return train.TrainResult(state=None, metrics={}, num_compilations=1,
                             stopped_early=True)

  monkeypatch.setattr(train, "train_and_evaluate", stopped)
  code, _ = _run(train, [f"--config={_SMOKE}", f"--workdir={tmp_path}"],
                 capsys)
  assert code == errors.PREEMPTED == 75

  def interrupted(argv, f):
    raise KeyboardInterrupt

  def diverged(argv, f):
    raise FloatingPointError("Non-finite loss at step 5; stopping.")

  def bug(argv, f):
    raise RuntimeError("a bug")

  def user(argv, f):
    raise errors.UserError("--x=1: expected 2.")

  fv = flags.FlagValues()
  assert cli.execute(interrupted, None, ["p"], fv) == errors.INTERRUPTED
  assert cli.execute(diverged, None, ["p"], fv) == errors.NON_FINITE
  capsys.readouterr()
  with pytest.raises(RuntimeError):  # a bug keeps its traceback
    cli.execute(bug, None, ["p"], fv)
  assert cli.execute(user, None, ["p"], fv) == errors.USER_ERROR
  assert "Traceback" not in capsys.readouterr().err
  fv = flags.FlagValues()
  assert cli.execute(user, None, ["p", "--verbose"], fv) == errors.USER_ERROR
  err = capsys.readouterr().err
  assert "Traceback" in err and err.strip().endswith("--x=1: expected 2.")


def test_drop_records_after(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text("".join(json.dumps({"step": s}) + "\n"
                          for s in (2, 3, 4, 5)) + '{"step": 6, "tr')
  assert summary_writer.drop_records_after(str(path), 3) == 3
  assert [r["step"] for r in summary_writer.read_jsonl(str(path))] == [2, 3]
  assert summary_writer.drop_records_after(str(path), 3) == 0


def test_read_only_commands_report_a_damaged_checkpoint_in_one_line(
    tmp_path, capsys, two_checkpoints, synthetic_data_dir):
  workdir = _copy(two_checkpoints, tmp_path)
  path = _data_files(os.path.join(workdir, "checkpoints", "6"))[0]
  os.truncate(path, os.path.getsize(path) // 2)
  image = tmp_path / "image.npy"
  np.save(image, np.full((32, 32), 0.5, np.float32))
  before = _snapshot(workdir)
  code, err = _run(evaluate, [
      f"--config={_SMOKE}", f"--config.input.data_dir={synthetic_data_dir}",
      f"--workdir={workdir}", f"--out_dir={tmp_path}/eval"], capsys)
  assert code == errors.USER_ERROR
  _assert_one_line(err, "The checkpoint at step 6", "is damaged",
                   "moves it aside")
  code, err = _run(sample, [f"--workdir={workdir}", f"--image={image}",
                            f"--out={tmp_path}/samples"], capsys)
  assert code == errors.USER_ERROR
  _assert_one_line(err, "The checkpoint at step 6", "is damaged")
  assert _snapshot(workdir) == before  # read-only: nothing moved
  assert not (tmp_path / "samples").exists()
  assert not (tmp_path / "eval").exists()
