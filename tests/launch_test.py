# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Tests of the Cloud TPU launch scripts (launch/*.sh); no gcloud, no network.

Each script runs in a subprocess with a clean environment and a fake `gcloud`
first on PATH:

- with `--dry_run` the fake (and a fake `git`) fail the test when called, and
  the printed "+ " lines are parsed with shlex and compared word for word;
- without `--dry_run` the fake gcloud records its arguments and emulates a
  small slice: `ssh --worker=all --command=C` runs `bash -c C` once per worker
  with HOME set to that worker's folder, `scp` copies into those folders and
  `describe` prints a state. This runs the remote command lines for real
  (untar, pid checks, nohup/setsid, log streaming, exit codes) against a fake
  venv python.
"""

import json
import os
import pathlib
import shlex
import shutil
import stat
import subprocess
import sys
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch"
SCRIPTS = ("create_tpu.sh", "setup_tpu.sh", "run_tpu.sh", "logs_tpu.sh",
           "delete_tpu.sh", "ssh_all.sh")
BASE = {"NAME": "hpunet-test", "ZONE": "us-central2-b", "PROJECT": "my-proj"}
SCOPE = ["--zone=us-central2-b", "--project=my-proj"]
SSH = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "hpunet-test"] + SCOPE
RUN_ENV = dict(BASE, GCS_BUCKET="my-bucket", CONFIG="configs/cityscapes.py")
TRAIN = ("~/hpunet_venv/bin/python -m hpunet.train"
         " --config=configs/cityscapes.py"
         " --workdir=gs://my-bucket/hpunet/cityscapes")
TIMEOUT_S = 60

_FAKE_GCLOUD = """#!{python}
import json, os, shutil, subprocess, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as f:
  f.write(json.dumps(["gcloud"] + args) + "\\n")
if os.environ.get("FAKE_MODE") == "forbid":
  sys.stderr.write("fake gcloud ran under --dry_run: %r\\n" % (args,))
  sys.exit(97)
root = os.environ["FAKE_WORKERS"]
n = int(os.environ.get("FAKE_NUM_WORKERS", "2"))
worker = [a.split("=", 1)[1] for a in args if a.startswith("--worker=")]
homes = [os.path.join(root, "worker%d" % i) for i in
         (range(n) if worker == ["all"] else [int(w) for w in worker])]
positional = [a for a in args if not a.startswith("-")]
if args[:4] == ["compute", "tpus", "tpu-vm", "ssh"]:
  command = [a for a in args if a.startswith("--command=")][0][10:]
  codes = [subprocess.call(["bash", "-c", command], cwd=home,
                           env=dict(os.environ, HOME=home)) for home in homes]
  sys.exit(max(codes))
if args[:4] == ["compute", "tpus", "tpu-vm", "scp"]:
  src, dst = positional[4], positional[5].split(":", 1)[1]
  for home in homes:
    shutil.copy(src, os.path.join(home, dst))
if "describe" in args:
  print(os.environ.get("FAKE_STATE", "READY"))
"""

_FAKE_GIT = """#!/bin/sh
echo "git $*" >> "$FAKE_LOG"
echo "fake git called under --dry_run" >&2
exit 97
"""

# The venv python of a fake worker: records the call, plays the trainer.
_FAKE_VENV_PYTHON = """#!/usr/bin/env bash
echo "fake python on $(basename "$HOME"): $*"
echo "env: HPUNET_JAX_INIT=${HPUNET_JAX_INIT:-}" \\
  "TFDS_DATA_DIR=${TFDS_DATA_DIR:-}"
exit "${FAKE_TRAIN_RC:-0}"
"""


def _write_exe(path, text):
  path.write_text(text)
  path.chmod(path.stat().st_mode | stat.S_IXUSR)


class Launcher:
  """Runs launch scripts against fake gcloud / git and fake workers."""

  def __init__(self, tmp_path):
    self.tmp = tmp_path
    self.log = tmp_path / "calls.jsonl"
    self.workers = tmp_path / "workers"
    self.bin_forbid = tmp_path / "bin_forbid"
    self.bin_emulate = tmp_path / "bin_emulate"
    for d in (self.workers, self.bin_forbid, self.bin_emulate,
              tmp_path / "home", tmp_path / "tmp"):
      d.mkdir()
    gcloud = _FAKE_GCLOUD.format(python=sys.executable)
    _write_exe(self.bin_forbid / "gcloud", gcloud)
    _write_exe(self.bin_forbid / "git", _FAKE_GIT)
    _write_exe(self.bin_emulate / "gcloud", gcloud)

  def add_workers(self, n=2):
    for i in range(n):
      venv_bin = self.workers / f"worker{i}" / "hpunet_venv" / "bin"
      venv_bin.mkdir(parents=True)
      _write_exe(venv_bin / "python", _FAKE_VENV_PYTHON)
    return [self.workers / f"worker{i}" for i in range(n)]

  def run(self, script, env, *args, dry_run=True):
    fake_bin = self.bin_forbid if dry_run else self.bin_emulate
    full_env = {
        "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(self.tmp / "home"),
        "TMPDIR": str(self.tmp / "tmp"),
        "LC_ALL": "C",
        "FAKE_LOG": str(self.log),
        "FAKE_MODE": "forbid" if dry_run else "emulate",
        "FAKE_WORKERS": str(self.workers),
        "POLL_SECONDS": "0",
    }
    full_env.update(env)
    cmd = ["bash", str(LAUNCH / script)]
    cmd += (["--dry_run"] if dry_run else []) + list(args)
    return subprocess.run(cmd, env=full_env, cwd=self.tmp, capture_output=True,
                          text=True, timeout=TIMEOUT_S, check=False)

  def calls(self):
    if not self.log.exists():
      return []
    return [json.loads(line) for line in self.log.read_text().splitlines()]

  def dry_run(self, script, env, *args):
    """Runs with --dry_run; returns the printed commands as argv lists."""
    result = self.run(script, env, *args)
    assert result.returncode == 0, result.stderr
    assert not self.log.exists(), f"--dry_run ran: {self.log.read_text()}"
    lines = result.stdout.splitlines()
    assert lines and all(line.startswith("+ ") for line in lines), lines
    return [shlex.split(line[2:]) for line in lines]


@pytest.fixture(name="launcher")
def _launcher(tmp_path):
  return Launcher(tmp_path)


def _remote(argv):
  """The --command of a `gcloud ... ssh` argv, checked to parse in bash."""
  assert argv[-1].startswith("--command="), argv
  command = argv[-1][len("--command="):]
  check = subprocess.run(["bash", "-n", "-c", command], capture_output=True,
                         text=True, check=False)
  assert check.returncode == 0, (command, check.stderr)
  return command


# --- create_tpu.sh ----------------------------------------------------------


def test_create_plain_dry_run(launcher):
  cmds = launcher.dry_run("create_tpu.sh",
                          dict(BASE, ACCELERATOR_TYPE="v4-32"))
  assert cmds == [
      ["gcloud", "compute", "tpus", "tpu-vm", "create", "hpunet-test", *SCOPE,
       "--accelerator-type=v4-32", "--version=tpu-ubuntu2204-base"],
      ["gcloud", "compute", "tpus", "tpu-vm", "describe", "hpunet-test",
       *SCOPE, "--format=value(state)"],
  ]


@pytest.mark.parametrize("env, flag", [
    ({"SPOT": "1"}, "--spot"),
    ({"PREEMPTIBLE": "true"}, "--preemptible"),
])
def test_create_plain_spot_or_preemptible(launcher, env, flag):
  cmds = launcher.dry_run(
      "create_tpu.sh", dict(BASE, ACCELERATOR_TYPE="v4-8",
                            RUNTIME_VERSION="v2-alpha-tpuv4", **env))
  assert cmds[0] == [
      "gcloud", "compute", "tpus", "tpu-vm", "create", "hpunet-test", *SCOPE,
      "--accelerator-type=v4-8", "--version=v2-alpha-tpuv4", flag]


def test_create_queued_spot_dry_run(launcher):
  cmds = launcher.dry_run("create_tpu.sh", dict(
      BASE, ACCELERATOR_TYPE="v5litepod-16", QUEUED="1", SPOT="1"))
  assert cmds == [
      ["gcloud", "compute", "tpus", "queued-resources", "create",
       "hpunet-test", *SCOPE, "--node-id=hpunet-test",
       "--accelerator-type=v5litepod-16",
       "--runtime-version=v2-alpha-tpuv5-lite", "--spot"],
      ["gcloud", "compute", "tpus", "queued-resources", "describe",
       "hpunet-test", *SCOPE, "--format=value(state.state)"],
  ]


def test_create_queued_best_effort_uses_alpha(launcher):
  cmds = launcher.dry_run("create_tpu.sh", dict(
      BASE, ACCELERATOR_TYPE="v4-128", QUEUED="yes", PREEMPTIBLE="1"))
  assert cmds[0] == [
      "gcloud", "alpha", "compute", "tpus", "queued-resources", "create",
      "hpunet-test", *SCOPE, "--node-id=hpunet-test",
      "--accelerator-type=v4-128", "--runtime-version=tpu-ubuntu2204-base",
      "--best-effort"]


@pytest.mark.parametrize("accelerator, runtime", [
    ("v5p-32", "v2-alpha-tpuv5"), ("v6e-8", "v2-alpha-tpuv6e")])
def test_create_default_runtime_versions(launcher, accelerator, runtime):
  cmds = launcher.dry_run("create_tpu.sh",
                          dict(BASE, ACCELERATOR_TYPE=accelerator))
  assert f"--version={runtime}" in cmds[0]


@pytest.mark.parametrize("queued, state, describe", [
    ("0", "READY", "--format=value(state)"),
    ("1", "ACTIVE", "--format=value(state.state)"),
])
def test_create_runs_the_printed_commands(launcher, queued, state, describe):
  env = dict(BASE, ACCELERATOR_TYPE="v4-8", QUEUED=queued, FAKE_STATE=state)
  printed = launcher.dry_run("create_tpu.sh", env)
  result = launcher.run("create_tpu.sh", env, dry_run=False)
  assert result.returncode == 0, result.stderr
  assert launcher.calls() == printed
  assert printed[1][-1] == describe
  assert f"hpunet-test: {state}" in result.stderr


def test_create_fails_on_a_failed_queued_resource(launcher):
  result = launcher.run("create_tpu.sh", dict(
      BASE, ACCELERATOR_TYPE="v4-8", QUEUED="1", FAKE_STATE="FAILED"),
                        dry_run=False)
  assert result.returncode == 1
  assert "hpunet-test is in state FAILED" in result.stderr
  assert "launch/delete_tpu.sh" in result.stderr


# --- setup_tpu.sh -----------------------------------------------------------

PIP_INSTALL = ("~/hpunet_venv/bin/python -m pip install --quiet"
               " -c constraints.txt -e '.[data]' 'jax[tpu]==0.10.2'")


def test_setup_tarball_dry_run(launcher):
  cmds = launcher.dry_run("setup_tpu.sh", BASE)
  tarball = str(launcher.tmp / "tmp" / "hpunet-src-hpunet-test.tar.gz")
  assert cmds[:3] == [
      ["git", "-C", str(REPO), "archive", "--format=tar.gz",
       f"--output={tarball}", "HEAD"],
      ["gcloud", "compute", "tpus", "tpu-vm", "scp", tarball,
       "hpunet-test:hpunet-src.tar.gz", *SCOPE, "--worker=all"],
      ["rm", "-f", tarball],
  ]
  assert len(cmds) == 4 and cmds[3][:-1] == SSH + ["--worker=all"]
  steps = _remote(cmds[3]).split("; ")
  assert steps[0] == "set -euo pipefail"
  assert "tar -xzf ~/hpunet-src.tar.gz -C ~/hpunet.new" in steps
  assert "mv ~/hpunet.new ~/hpunet" in steps
  assert ("~/.local/bin/uv venv --seed --python 3.11 ~/hpunet_venv; fi"
          in "; ".join(steps))
  assert steps.index("cd ~/hpunet") < steps.index(PIP_INSTALL)


def test_setup_git_clone_dry_run(launcher):
  cmds = launcher.dry_run("setup_tpu.sh", dict(
      BASE, REPO_URL="https://github.com/me/hpunet.git", REPO_REF="v1.0",
      PYTHON_VERSION="3.12", SSH_FLAGS="--tunnel-through-iap"))
  assert len(cmds) == 1  # no tarball, no scp
  assert cmds[0][:-1] == SSH + ["--worker=all", "--tunnel-through-iap"]
  remote = _remote(cmds[0])
  assert ("git clone --quiet https://github.com/me/hpunet.git ~/hpunet"
          in remote)
  assert "ref=v1.0; " in remote
  assert "--python 3.12 ~/hpunet_venv" in remote
  assert PIP_INSTALL in remote


def test_setup_installs_on_every_worker(launcher):
  if shutil.which("git") is None:
    pytest.skip("git is not installed")
  workers = launcher.add_workers(2)
  (workers[1] / "hpunet").mkdir()
  (workers[1] / "hpunet" / "stale.py").write_text("old code")
  printed = launcher.dry_run("setup_tpu.sh", BASE)
  launcher.log.unlink(missing_ok=True)
  result = launcher.run("setup_tpu.sh", BASE, dry_run=False)
  assert result.returncode == 0, result.stderr
  assert launcher.calls() == [c for c in printed if c[0] == "gcloud"]
  head_constraints = subprocess.run(
      ["git", "-C", str(REPO), "show", "HEAD:constraints.txt"],
      capture_output=True, text=True, check=True).stdout
  for worker in workers:
    assert (worker / "hpunet" / "constraints.txt").read_text() == (
        head_constraints)
    assert not (worker / "hpunet-src.tar.gz").exists()
    assert f"fake python on {worker.name}: -m pip install --quiet -c " \
           "constraints.txt -e .[data] jax[tpu]==0.10.2" in result.stdout
  assert not (workers[1] / "hpunet" / "stale.py").exists()
  assert not list((launcher.tmp / "tmp").iterdir())  # tarball removed
  # Idempotent: a second run succeeds the same way.
  again = launcher.run("setup_tpu.sh", BASE, dry_run=False)
  assert again.returncode == 0, again.stderr


def test_setup_clones_then_fetches_repo_url(launcher):
  if shutil.which("git") is None:
    pytest.skip("git is not installed")
  head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"],
                        capture_output=True, text=True,
                        check=True).stdout.strip()
  (worker,) = launcher.add_workers(1)
  env = dict(BASE, FAKE_NUM_WORKERS="1", REPO_URL=str(REPO), REPO_REF=head)
  for _ in range(2):  # clone, then fetch + checkout
    result = launcher.run("setup_tpu.sh", env, dry_run=False)
    assert result.returncode == 0, result.stderr
    assert launcher.calls()[-1][:5] == SSH[:5]
    checked_out = subprocess.run(
        ["git", "-C", str(worker / "hpunet"), "rev-parse", "HEAD"],
        capture_output=True, text=True, check=True).stdout.strip()
    assert checked_out == head
  assert len(launcher.calls()) == 2  # one ssh per run, no scp


# --- run_tpu.sh -------------------------------------------------------------


def test_run_dry_run(launcher):
  cmds = launcher.dry_run("run_tpu.sh", RUN_ENV)
  assert len(cmds) == 1 and cmds[0][:-1] == SSH + ["--worker=all"]
  steps = _remote(cmds[0]).split("; ")
  assert ("export HPUNET_JAX_INIT=1"
          " TFDS_DATA_DIR=gs://my-bucket/tensorflow_datasets"
          " PYTHONUNBUFFERED=1") in steps
  assert f'nohup setsid {TRAIN} >>"$log" 2>&1 </dev/null & pid=$!' in steps
  assert 'echo "$pid" >~/hpunet_logs/train.pid' in steps
  assert steps[-2:] == ['tail -n +1 -F --pid="$pid" "$log"', 'wait "$pid"']
  assert steps.index("cd ~/hpunet") < steps.index(
      "export HPUNET_JAX_INIT=1"
      " TFDS_DATA_DIR=gs://my-bucket/tensorflow_datasets PYTHONUNBUFFERED=1")


def test_run_matches_the_trainers_multihost_gate():
  """run_tpu.sh sets the variable hpunet/train.py reads."""
  train_source = (REPO / "hpunet" / "train.py").read_text()
  assert 'os.environ.get("HPUNET_JAX_INIT")' in train_source
  assert "jax.distributed.initialize(" in train_source


def test_run_detached_explicit_dirs_and_extra_args(launcher):
  cmds = launcher.dry_run(
      "run_tpu.sh",
      dict(BASE, CONFIG="configs/cityscapes.py:smoke", DETACH="1",
           WORKDIR="gs://other-bucket/runs/cs1/",
           TFDS_DATA_DIR="gs://data-bucket/tfds",
           EXTRA_ARGS="--config.num_train_steps=20 --config.seed=3",
           REMOTE_ENV="LIBTPU_INIT_ARGS=--xla_tpu_x=true"),
      "--", "--config.input.batch_size=8", "--config.name=a b")
  steps = _remote(cmds[0]).split("; ")
  train = ("~/hpunet_venv/bin/python -m hpunet.train"
           " --config=configs/cityscapes.py:smoke"
           " --workdir=gs://other-bucket/runs/cs1"
           " --config.num_train_steps=20 --config.seed=3"
           " --config.input.batch_size=8 '--config.name=a b'")
  assert f'nohup setsid {train} >>"$log" 2>&1 </dev/null & pid=$!' in steps
  assert ("export HPUNET_JAX_INIT=1 TFDS_DATA_DIR=gs://data-bucket/tfds"
          " PYTHONUNBUFFERED=1 LIBTPU_INIT_ARGS=--xla_tpu_x=true") in steps
  assert not any(step.startswith(("tail", "wait")) for step in steps)


def test_run_default_workdir_names_the_config_arg(launcher):
  cmds = launcher.dry_run("run_tpu.sh",
                          dict(RUN_ENV, CONFIG="configs/synthetic.py:smoke"))
  assert ("--workdir=gs://my-bucket/hpunet/synthetic_smoke"
          in _remote(cmds[0]))


def test_run_trains_on_every_worker_and_streams_logs(launcher):
  workers = launcher.add_workers(2)
  for worker in workers:
    (worker / "hpunet").mkdir()
  printed = launcher.dry_run("run_tpu.sh", RUN_ENV)
  result = launcher.run("run_tpu.sh", RUN_ENV, dry_run=False)
  assert result.returncode == 0, result.stderr
  assert launcher.calls() == printed
  args = TRAIN.split(" ", 1)[1]
  for worker in workers:
    assert f"fake python on {worker.name}: {args}" in result.stdout
    log = (worker / "hpunet_logs" / "train.log").read_text()
    assert f"fake python on {worker.name}: {args}" in log
    assert ("env: HPUNET_JAX_INIT=1"
            " TFDS_DATA_DIR=gs://my-bucket/tensorflow_datasets") in log
    assert (worker / "hpunet_logs" / "train.pid").read_text().strip().isdigit()


def test_run_returns_the_trainers_exit_code(launcher):
  for worker in launcher.add_workers(1):
    (worker / "hpunet").mkdir()
  result = launcher.run(
      "run_tpu.sh", dict(RUN_ENV, FAKE_NUM_WORKERS="1", FAKE_TRAIN_RC="3"),
      dry_run=False)
  assert result.returncode == 3


def test_run_detached_returns_and_logs(launcher):
  (worker,) = launcher.add_workers(1)
  (worker / "hpunet").mkdir()
  env = dict(RUN_ENV, FAKE_NUM_WORKERS="1", DETACH="1")
  result = launcher.run("run_tpu.sh", env, dry_run=False)
  assert result.returncode == 0, result.stderr
  assert "started hpunet.train (pid" in result.stdout
  log = worker / "hpunet_logs" / "train.log"
  deadline = time.monotonic() + 10
  while "env: HPUNET_JAX_INIT=1" not in log.read_text():
    assert time.monotonic() < deadline, log.read_text()
    time.sleep(0.05)


def test_run_before_setup_fails_clearly(launcher):
  (launcher.workers / "worker0").mkdir()
  result = launcher.run("run_tpu.sh", dict(RUN_ENV, FAKE_NUM_WORKERS="1"),
                        dry_run=False)
  assert result.returncode == 1
  assert ("hpunet is not installed: run launch/setup_tpu.sh first."
          in result.stderr)


def test_run_log_header_keeps_extra_args_literal(launcher):
  (worker,) = launcher.add_workers(1)
  (worker / "hpunet").mkdir()
  result = launcher.run(
      "run_tpu.sh", dict(RUN_ENV, FAKE_NUM_WORKERS="1",
                         EXTRA_ARGS="--config.note=\"$HOME x\""),
      dry_run=False)
  assert result.returncode == 0, result.stderr
  log = (worker / "hpunet_logs" / "train.log").read_text()
  assert log.splitlines()[0].endswith(f": {TRAIN} --config.note=\"$HOME x\"")
  # The worker's shell expanded EXTRA_ARGS in the real command line.
  assert f"--config.note={worker} x" in result.stdout


@pytest.mark.parametrize("script", ["run_tpu.sh", "setup_tpu.sh"])
def test_refuses_while_a_run_is_alive(launcher, script):
  (worker,) = launcher.add_workers(1)
  (worker / "hpunet").mkdir()
  (worker / "hpunet_logs").mkdir()
  trainer = subprocess.Popen(["bash", "-c", "exec -a hpunet.train sleep 60"])
  try:
    (worker / "hpunet_logs" / "train.pid").write_text(f"{trainer.pid}\n")
    result = launcher.run(script, dict(RUN_ENV, FAKE_NUM_WORKERS="1"),
                          dry_run=False)
  finally:
    trainer.kill()
    trainer.wait()
  assert result.returncode == 1
  assert f"hpunet.train is still running (pid {trainer.pid})" in result.stderr


# --- logs_tpu.sh, ssh_all.sh, delete_tpu.sh ---------------------------------


def test_logs_dry_run(launcher):
  assert launcher.dry_run("logs_tpu.sh", BASE) == [
      SSH + ["--worker=0", "--command=tail -n 100 -F ~/hpunet_logs/train.log"]]
  assert launcher.dry_run(
      "logs_tpu.sh", dict(BASE, WORKER="all", TAIL_LINES="5", FOLLOW="0")) == [
          SSH + ["--worker=all", "--command=tail -n 5 ~/hpunet_logs/train.log"]]


def test_ssh_all_dry_run(launcher):
  stop = "kill -TERM $(cat ~/hpunet_logs/train.pid)"
  assert launcher.dry_run("ssh_all.sh", BASE, stop) == [
      SSH + ["--worker=all", f"--command={stop}"]]
  assert launcher.dry_run("ssh_all.sh", BASE, "--", "ls", "-la") == [
      SSH + ["--worker=all", "--command=ls -la"]]


def test_ssh_all_runs_on_every_worker(launcher):
  launcher.add_workers(3)
  result = launcher.run("ssh_all.sh", dict(BASE, FAKE_NUM_WORKERS="3"),
                        "basename $HOME", dry_run=False)
  assert result.returncode == 0, result.stderr
  assert result.stdout.split() == ["worker0", "worker1", "worker2"]


@pytest.mark.parametrize("queued, expected", [
    ("0", ["gcloud", "compute", "tpus", "tpu-vm", "delete", "hpunet-test",
           *SCOPE, "--quiet"]),
    ("1", ["gcloud", "compute", "tpus", "queued-resources", "delete",
           "hpunet-test", *SCOPE, "--force", "--quiet"]),
])
def test_delete(launcher, queued, expected):
  env = dict(BASE, QUEUED=queued)
  assert launcher.dry_run("delete_tpu.sh", env) == [expected]
  result = launcher.run("delete_tpu.sh", env, dry_run=False)
  assert result.returncode == 0, result.stderr
  assert launcher.calls() == [expected]


def test_project_is_optional(launcher):
  env = {"NAME": "hpunet-test", "ZONE": "europe-west4-a"}
  assert launcher.dry_run("delete_tpu.sh", env) == [
      ["gcloud", "compute", "tpus", "tpu-vm", "delete", "hpunet-test",
       "--zone=europe-west4-a", "--quiet"]]


# --- Errors -----------------------------------------------------------------

_REQUIRED = [
    ("create_tpu.sh", dict(BASE, ACCELERATOR_TYPE="v4-8"), (), "NAME"),
    ("create_tpu.sh", dict(BASE, ACCELERATOR_TYPE="v4-8"), (), "ZONE"),
    ("create_tpu.sh", dict(BASE, ACCELERATOR_TYPE="v4-8"), (),
     "ACCELERATOR_TYPE"),
    ("setup_tpu.sh", BASE, (), "NAME"),
    ("run_tpu.sh", RUN_ENV, (), "NAME"),
    ("run_tpu.sh", RUN_ENV, (), "ZONE"),
    ("run_tpu.sh", RUN_ENV, (), "CONFIG"),
    ("run_tpu.sh", RUN_ENV, (), "GCS_BUCKET"),
    ("logs_tpu.sh", BASE, (), "ZONE"),
    ("delete_tpu.sh", BASE, (), "NAME"),
    ("ssh_all.sh", BASE, ("hostname",), "ZONE"),
]


@pytest.mark.parametrize("script, env, args, missing", _REQUIRED)
def test_missing_variable_fails_naming_it(launcher, script, env, args,
                                          missing):
  env = {k: v for k, v in env.items() if k != missing}
  result = launcher.run(script, env, *args)
  assert result.returncode == 1
  assert result.stdout == ""
  assert not launcher.log.exists()
  (line,) = result.stderr.splitlines()
  assert line.startswith(f"ERROR: launch/{script}: environment variable ")
  if missing == "GCS_BUCKET":  # then WORKDIR is the first one missing.
    assert "WORKDIR is not set (and neither is GCS_BUCKET" in line
    assert "e.g. WORKDIR=gs://my-bucket/hpunet/cityscapes" in line
  else:
    assert f"variable {missing} is not set: " in line
    assert f"e.g. {missing}=" in line


_INVALID = [
    ("create_tpu.sh", dict(BASE, ACCELERATOR_TYPE="tpu-v4"), (),
     "ACCELERATOR_TYPE='tpu-v4' is not valid: expected <generation>-<size>"),
    ("create_tpu.sh", dict(BASE, ACCELERATOR_TYPE="v4-8", ZONE="us-central2"),
     (), "ZONE='us-central2' is not valid"),
    ("create_tpu.sh", dict(BASE, ACCELERATOR_TYPE="v4-8", NAME="My_TPU"), (),
     "NAME='My_TPU' is not valid"),
    ("create_tpu.sh", dict(BASE, ACCELERATOR_TYPE="v4-8", SPOT="1",
                           PREEMPTIBLE="1"), (),
     "SPOT=1 and PREEMPTIBLE=1 are exclusive"),
    ("create_tpu.sh", dict(BASE, ACCELERATOR_TYPE="v4-8", QUEUED="maybe"), (),
     "QUEUED='maybe' is not a boolean: expected QUEUED=1 or QUEUED=0"),
    ("create_tpu.sh", dict(BASE, ACCELERATOR_TYPE="v9-8"), (),
     "environment variable RUNTIME_VERSION is not set and there is no default"
     " for ACCELERATOR_TYPE=v9-8"),
    ("run_tpu.sh", dict(RUN_ENV, WORKDIR="/tmp/run"), (),
     "WORKDIR='/tmp/run' is not valid: expected a gs:// path"),
    ("run_tpu.sh", dict(RUN_ENV, TFDS_DATA_DIR="~/tensorflow_datasets"), (),
     "TFDS_DATA_DIR='~/tensorflow_datasets' is not valid: expected a gs://"),
    ("run_tpu.sh", dict(RUN_ENV, CONFIG="configs/nope.py"), (),
     "CONFIG='configs/nope.py': no file configs/nope.py"),
    ("run_tpu.sh", dict(RUN_ENV, CONFIG=str(REPO / "configs/lidc.py")), (),
     "must be relative to the repository root"),
    ("run_tpu.sh", dict(RUN_ENV, GCS_BUCKET="My Bucket"), (),
     "GCS_BUCKET='My Bucket' is not a bucket name"),
    ("setup_tpu.sh", dict(BASE, PYTHON_VERSION="3.10"), (),
     "PYTHON_VERSION=3.10 is too old"),
    ("setup_tpu.sh", dict(BASE, REPO_REF="main"), (),
     "REPO_REF='main' is set but REPO_URL is not"),
    ("setup_tpu.sh", dict(BASE, REPO_URL="https://x.org/h.git",
                          REPO_REF="a b"), (), "REPO_REF='a b' is not valid"),
    ("logs_tpu.sh", dict(BASE, WORKER="first"), (), "WORKER='first' is not"),
    ("ssh_all.sh", BASE, (), "no command given"),
    ("delete_tpu.sh", BASE, ("--dryrun",), "unknown flag '--dryrun'"),
    ("delete_tpu.sh", BASE, ("now",), "unexpected arguments: now"),
]


@pytest.mark.parametrize("script, env, args, message", _INVALID)
def test_invalid_settings_fail_clearly(launcher, script, env, args, message):
  result = launcher.run(script, env, *args)
  assert result.returncode == 1
  assert result.stdout == ""
  assert not launcher.log.exists()
  assert result.stderr.startswith(f"ERROR: launch/{script}: ")
  assert message in result.stderr


def test_real_mode_without_gcloud_fails_clearly(launcher):
  bare_bin = launcher.tmp / "bare_bin"  # the tools the scripts use, no gcloud
  bare_bin.mkdir()
  for tool in ("dirname", "basename", "tr", "sed"):
    (bare_bin / tool).symlink_to(shutil.which(tool))
  result = subprocess.run(
      [shutil.which("bash"), str(LAUNCH / "delete_tpu.sh")],
      env={"PATH": str(bare_bin), **BASE}, capture_output=True, text=True,
      timeout=TIMEOUT_S, check=False)
  assert result.returncode == 1
  assert result.stderr.startswith(
      "ERROR: launch/delete_tpu.sh: gcloud not found on PATH")


# --- The scripts themselves -------------------------------------------------


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_and_executable(launcher, script):
  assert os.access(LAUNCH / script, os.X_OK)
  result = launcher.run(script, {}, "--help", dry_run=False)
  assert result.returncode == 0
  assert result.stdout.startswith(f"Usage: launch/{script} [--dry_run]")
  assert "--dry_run prints every command" in result.stdout


def test_shellcheck_clean():
  shellcheck = shutil.which("shellcheck")
  if shellcheck is None:
    pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
  result = subprocess.run(
      [shellcheck, "-x", *(f"launch/{s}" for s in SCRIPTS), "launch/common.sh"],
      cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
  assert result.returncode == 0, result.stdout


def test_run_restarts_a_preempted_trainer_only(launcher):
  """RESTARTS=N reruns the trainer on exit code 75 (preempted), N times."""
  (worker,) = launcher.add_workers(1)
  (worker / "hpunet").mkdir()
  env = dict(RUN_ENV, FAKE_NUM_WORKERS="1", RESTARTS="2")
  result = launcher.run("run_tpu.sh", dict(env, FAKE_TRAIN_RC="75"),
                        dry_run=False)
  assert result.returncode == 75, result.stderr
  log = (worker / "hpunet_logs" / "train.log").read_text()
  assert log.count("fake python on worker0:") == 3  # 1 run + 2 restarts
  assert "restart 2 of 2." in log
  time.sleep(1.1)  # a new log file name (it has the time in seconds)
  result = launcher.run("run_tpu.sh", dict(env, FAKE_TRAIN_RC="2"),
                        dry_run=False)
  assert result.returncode == 2, result.stderr
  log = (worker / "hpunet_logs" / "train.log").read_text()
  assert log.count("fake python on worker0:") == 1  # bad input: no restart
  bad = launcher.run("run_tpu.sh", dict(RUN_ENV, RESTARTS="x"))
  assert bad.returncode != 0 and "RESTARTS='x' is not valid" in bad.stderr
