# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Two processes x 4 CPU devices == one process x 8 devices.

Runs `python -m hpunet.train` as two local processes joined by
`jax.distributed` (coordinator on localhost, `--coordinator_address`,
`--num_processes`, `--process_id`), each with 4 CPU devices, on a
(2 data x 4 spatial) mesh: each process feeds its half of every global batch
(`jax.make_array_from_process_local_data`) and the spatial halos run inside a
process. The same config runs in this test process on 8 fake devices with
the same global mesh; the final parameters agree to float tolerance.
`config.data_shards=2` makes the data stream independent of the number of
processes (the single process loads both pipeline shares).

The model is the sPU-Net smoke model (cheapest to compile); the mechanics
under test (data feed, global arrays, collectives, checkpointing from two
processes) do not depend on it.
"""

import os
import socket
import subprocess
import sys
import tempfile

import jax
import numpy as np
import pytest

from hpunet import checkpointing
from hpunet import config_lib
from hpunet import sharding
from hpunet import train

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_STEPS = 4
_OVERRIDES = {
    "mesh.data": 2,
    "mesh.spatial": 4,
    "data_shards": 2,
    "num_train_steps": _STEPS,
    "checkpoint_every_steps": _STEPS,
    "log_every_steps": 2,
    "summary_images_every_steps": 0,
    # Validation at the last step on 3 images: the processes hold 2 and 1
    # (+ padding) rows, so the per-image gather sees unequal lengths.
    "evals.val.every_steps": _STEPS,
    "evals.val.split": "validation[:3]",
}


def _config(data_dir):
  config = config_lib.load_config("synthetic_spunet", "smoke")
  for key, value in _OVERRIDES.items():
    section, _, field = key.rpartition(".")
    (config.get(section) if section else config)[field] = value
  config.input.data_dir = data_dir
  return config


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def data_dir():
  """synthetic/s32, shared with tests/train_test.py (generated once)."""
  path = os.environ.get(
      "HPUNET_TEST_TFDS_DIR",
      os.path.join(tempfile.gettempdir(), "hpunet_tests_tfds"))
  from hpunet import input_pipeline  # pylint: disable=g-import-not-at-top
  config = _config(path)
  next(iter(input_pipeline.create_train_dataset(
      config.input, seed=0, process_index=0, process_count=2)))
  return path


def _restore(workdir, config, mesh):
  abstract = train.abstract_train_state(config, mesh)
  ckpt = checkpointing.Checkpointer(workdir)
  try:
    state, _ = ckpt.restore(_STEPS, abstract)
  finally:
    ckpt.close()
  return jax.device_get(state)


def test_two_processes_match_one_process(tmp_path, data_dir):
  # Two processes, 4 CPU devices each.
  workdir = str(tmp_path / "two")
  port = _free_port()
  env = dict(os.environ)
  env.update({
      "JAX_PLATFORMS": "cpu",
      "JAX_NUM_CPU_DEVICES": "4",
      "JAX_COMPILATION_CACHE_DIR": jax.config.jax_compilation_cache_dir or
                                   os.path.join(_REPO, ".jax_cache"),
      "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
      "TF_CPP_MIN_LOG_LEVEL": "2",
      "JAX_DISABLE_MOST_OPTIMIZATIONS": "1",  # faster compiles, as below
  })
  env.pop("XLA_FLAGS", None)
  command = [sys.executable, "-m", "hpunet.train",
             "--config=configs/synthetic_spunet.py:smoke",
             f"--workdir={workdir}",
             f"--config.input.data_dir={data_dir}",
             f"--coordinator_address=127.0.0.1:{port}",
             "--num_processes=2"]
  command += [f"--config.{k}={v}" for k, v in _OVERRIDES.items()]
  procs = [subprocess.Popen(command + [f"--process_id={i}"], env=env,
                            cwd=_REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
           for i in range(2)]
  logs = []
  for p in procs:
    try:
      logs.append(p.communicate(timeout=600)[0])
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      raise
  for p, log in zip(procs, logs):
    assert p.returncode == 0, log[-5000:]
  assert "process 1/2, 4 local / 8 global devices" in logs[1]
  assert "this process loads 2 of 4 examples per step" in logs[0]

  # One process, 8 devices, the same global mesh and data.
  config = _config(data_dir)
  previous = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  try:
    single = train.train_and_evaluate(config, str(tmp_path / "one"))
  finally:
    jax.config.update("jax_disable_most_optimizations", previous)
  assert single.num_compilations == 1
  mesh = sharding.create_mesh(config.mesh)

  two = _restore(workdir, config, mesh)
  one = _restore(str(tmp_path / "one"), config, mesh)
  assert int(two.step) == int(one.step) == _STEPS
  np.testing.assert_allclose(two.geco_state.ma, one.geco_state.ma)
  diffs = jax.tree.map(
      lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))),
      two.params, one.params)
  assert max(jax.tree.leaves(diffs)) < 1e-6, diffs
  # Both applied 4 Adam updates, and the in-process result is what was saved.
  assert int(two.opt_state[0].count) == int(one.opt_state[0].count) == _STEPS
  jax.tree.map(np.testing.assert_array_equal, one.params,
               jax.device_get(single.state.params))
  # The periodic validation gathers every image once: the same metrics.
  from hpunet import summary_writer  # pylint: disable=g-import-not-at-top
  logged = {}
  for row in summary_writer.read_jsonl(os.path.join(workdir, "metrics.jsonl")):
    logged.update(row)
  assert single.metrics["val/num_examples"] == logged["val/num_examples"] == 3
  for key in ("val/rec_iou", "val/ged", "val/hm_iou", "val/ged_modes"):
    assert logged[key] == pytest.approx(single.metrics[key], abs=1e-5), key
