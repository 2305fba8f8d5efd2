"""Test-wide JAX settings, applied before any test initialises a backend.

- 8 fake CPU devices, so the few tests that need a ('data', 'spatial') mesh
  have one; single-device computations still run on device 0 only.
- The persistent compilation cache, because Haiku inits compile one threefry
  kernel per parameter shape.
- Partitionable threefry explicitly, so results do not depend on the JAX
  version's default.
"""

import os

import jax
import pytest

_CACHE_DIR = os.environ.get(
    "HPUNET_JAX_CACHE",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), ".jax_cache"))

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_threefry_partitionable", True)
jax.config.update("jax_compilation_cache_dir", _CACHE_DIR)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

try:  # absl flags are never parsed under pytest; mark them so.
  from absl import flags
  flags.FLAGS.mark_as_parsed()
except ImportError:  # pragma: no cover
  pass


@pytest.fixture(scope="module")
def fast_compiles():
  """Skips most XLA optimisations: smoke steps compile several times faster."""
  previous = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", previous)


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory):
  """A TFDS data_dir holding the tiny `synthetic/s32` dataset (built once)."""
  from hpunet import dataset_builders  # pylint: disable=g-import-not-at-top
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  dataset_builders.build("synthetic/s32", manual_dir=None, data_dir=data_dir)
  return data_dir


@pytest.fixture(scope="session")
def smoke_workdir(tmp_path_factory, synthetic_data_dir):
  """A workdir of `configs/synthetic.py:smoke` trained for a few steps."""
  from hpunet import config_lib  # pylint: disable=g-import-not-at-top
  from hpunet import train  # pylint: disable=g-import-not-at-top
  config = config_lib.load_config("synthetic", "smoke")
  config.input.data_dir = synthetic_data_dir
  config.num_train_steps = 3
  config.evals = {}
  config.mesh.data = 1  # one device: the 8 fake ones are for mesh tests

  workdir = str(tmp_path_factory.mktemp("smoke_workdir"))
  train.train_and_evaluate(config, workdir)
  return workdir


@pytest.fixture
def ram_dir(monkeypatch, tmp_path):
  """A folder on a non-local filesystem: TensorFlow's in-memory `ram://`,
  reached through etils.epath exactly like `gs://` (same tf.io.gfile
  backend). os.path / open() cannot see it, so a path handled with them
  fails or lands in a local `./ram:` folder (the test's cwd, checked empty)."""
  import uuid  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from etils.epath import backend, gpath, register  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(gpath, "_URI_PREFIXES", gpath._URI_PREFIXES + ("ram://",))
  monkeypatch.setattr(gpath, "_URI_SCHEMES", gpath._URI_SCHEMES | {"ram"})
  monkeypatch.setitem(gpath._URI_MAP_ROOT, "ram://", "/ram/")
  monkeypatch.setitem(gpath._PREFIX_TO_BACKEND, "ram", backend.tf_backend)
  monkeypatch.setitem(register._URI_PREFIXES_TO_CLS, "ram://",
                      gpath.PosixGPath)
  cwd = tmp_path / "cwd"
  cwd.mkdir()
  monkeypatch.chdir(cwd)
  root = f"ram://hpunet_test_{uuid.uuid4().hex}"
  yield root
  assert not os.listdir(cwd), f"local files written: {os.listdir(cwd)}"
  if tf.io.gfile.exists(root):
    tf.io.gfile.rmtree(root)
