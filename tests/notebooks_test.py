# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Executes the Colab notebooks in `notebooks/` in their reduced (SMOKE) mode.

Each notebook runs top to bottom in a fresh `python3` kernel of the current
interpreter (nbclient). The parameters are injected papermill-style: a cell
inserted right after the cell tagged `parameters` sets `SMOKE = True` and
temporary folders. A cell appended at the end prints the values the tests
check (the notebook's own variables) as one JSON line.

The kernels use the persistent compilation cache folder of conftest.py with
XLA flags that compile faster (the smoke models run only a few steps), so
later notebooks reuse the samplers the first one compiled. Every notebook must
finish within its own deadline (`_TIMEOUT_S`, for the whole notebook).
"""

import ast
import glob
import json
import math
import os
import re
import shutil
import sys
import time

import nbclient
import nbformat
from nbformat import v4
import pytest

from hpunet import config_lib

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_NOTEBOOKS = os.path.join(_REPO, "notebooks")
_NAMES = ("quickstart", "lidc", "instances")
# Whole-notebook deadlines (seconds), generous for a loaded 2-core machine.
_TIMEOUT_S = {"quickstart": 120, "lidc": 180, "instances": 180}
_MARKER = "NOTEBOOK_VALUES="


def _kernel_env():
  env = dict(os.environ)
  env.update(
      JAX_PLATFORMS="cpu",
      JAX_COMPILATION_CACHE_DIR=os.environ.get(
          "HPUNET_JAX_CACHE", os.path.join(_REPO, ".jax_cache")),
      JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
      JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
      JAX_THREEFRY_PARTITIONABLE="1",
      TF_CPP_MIN_LOG_LEVEL="2",
      MPLBACKEND="module://matplotlib_inline.backend_inline",
      PYTHONUNBUFFERED="1",
      # Compile faster: the smoke models run a few steps, compiling dominates.
      XLA_FLAGS=" ".join([os.environ.get("XLA_FLAGS", ""),
                          "--xla_backend_optimization_level=0",
                          "--xla_llvm_disable_expensive_passes=true"]).strip(),
  )
  return env


def _parameters_index(nb, name):
  for i, cell in enumerate(nb.cells):
    if "parameters" in cell.get("metadata", {}).get("tags", []):
      return i
  raise AssertionError(f"notebooks/{name}.ipynb has no cell tagged "
                       "'parameters'.")


def _run(name, params, values, cwd):
  """Executes notebooks/<name>.ipynb; returns (the printed values, the nb)."""
  nb = nbformat.read(os.path.join(_NOTEBOOKS, f"{name}.ipynb"), as_version=4)
  index = _parameters_index(nb, name)
  injected = v4.new_code_cell("# Injected by tests/notebooks_test.py\n" +
                              "\n".join(f"{k} = {v!r}"
                                        for k, v in params.items()))
  injected.metadata["tags"] = ["injected-parameters"]
  nb.cells.insert(index + 1, injected)
  items = ", ".join(f"{k!r}: {expr}" for k, expr in values.items())
  nb.cells.append(v4.new_code_cell(
      "import json as _json\n"
      f"print({_MARKER!r} + _json.dumps({{{items}}}, default=float))"))
  deadline = time.monotonic() + _TIMEOUT_S[name]
  client = nbclient.NotebookClient(
      nb, kernel_name="python3", resources={"metadata": {"path": str(cwd)}},
      # The deadline holds for the whole notebook, not per cell.
      timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
      startup_timeout=120)
  try:
    client.execute(env=_kernel_env())
  finally:  # Kept beside the outputs, to read when a test fails.
    nbformat.write(nb, os.path.join(str(cwd), f"{name}.executed.ipynb"))
  for output in nb.cells[-1].get("outputs", []):
    text = output.get("text", "")
    if output.get("output_type") == "stream" and _MARKER in text:
      line = next(l for l in text.splitlines() if l.startswith(_MARKER))
      return json.loads(line[len(_MARKER):]), nb
  raise AssertionError(f"{name}: the values cell printed nothing: "
                       f"{nb.cells[-1].get('outputs')}")


def _assert_in_range(table, key, low, high):
  assert key in table, f"metric {key!r} missing from {sorted(table)}"
  mean = table[key]["mean"]
  assert math.isfinite(mean) and low <= mean <= high, (key, table[key])


def _install_cell(nb):
  return next(c.source for c in nb.cells
              if c.cell_type == "code" and "HPUNET_SOURCE = " in c.source)


def _install_helpers(name):
  """The install cell's imports and functions, run without installing."""
  nb = nbformat.read(os.path.join(_NOTEBOOKS, f"{name}.ipynb"), as_version=4)
  tree = ast.parse(_install_cell(nb))
  tree.body = [node for node in tree.body if isinstance(
      node, (ast.Import, ast.ImportFrom, ast.FunctionDef))]
  namespace = {}
  exec(compile(tree, f"{name}.ipynb:install", "exec"), namespace)  # pylint: disable=exec-used
  return namespace


@pytest.mark.parametrize("name", _NAMES)
def test_committed_notebook_is_clean(name):
  """Valid nbformat 4, outputs cleared, how to open it, install + parameters."""
  path = os.path.join(_NOTEBOOKS, f"{name}.ipynb")
  nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
  nbformat.validate(nb)
  assert nb.nbformat == 4
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert all(not c.outputs and c.execution_count is None for c in code), (
      f"{path}: clear the outputs before committing.")
  with open(path, encoding="utf-8") as f:
    assert not re.search(r"<(org|owner|user)>", f.read()), (
        f"{path}: a placeholder in a URL.")
  assert "Open in Colab" in nb.cells[0].source and (
      f"notebooks/{name}.ipynb" in nb.cells[0].source), (
          f"{path}: the first cell must say how to open it in Colab.")
  params = nb.cells[_parameters_index(nb, name)].source
  for line in ("SMOKE = False", "WORKDIR = None", "DATA_DIR = None",
               "TRAIN_STEPS = "):
    assert line in params, f"{path}: parameters cell lacks {line!r}"
  install = _install_cell(nb)
  assert 'HPUNET_SOURCE = ""  # @param {type:"string"}' in install
  assert 'find_spec("hpunet") is None' in install
  assert "!" not in "".join(l.lstrip()[:1] for l in install.splitlines())
  # The same install cell in every notebook.
  first = nbformat.read(os.path.join(_NOTEBOOKS, f"{_NAMES[0]}.ipynb"),
                        as_version=4)
  assert install == _install_cell(first)


def test_install_cell_fails_clearly_without_a_source(tmp_path):
  helpers = _install_helpers("quickstart")
  for unset in ("", None):
    with pytest.raises(ValueError, match=r"^HPUNET_SOURCE is not set: enter "
                       r"the repository's git URL"):
      helpers["fetch_source"](unset, str(tmp_path / "hpunet"))
  with pytest.raises(FileNotFoundError, match="does not exist"):
    helpers["fetch_source"](str(tmp_path / "missing"), str(tmp_path / "x"))


def test_install_cell_unpacks_an_uploaded_archive(tmp_path):
  helpers = _install_helpers("lidc")
  src = tmp_path / "src" / "hpunet-main"
  src.mkdir(parents=True)
  (src / "setup.py").write_text("")
  (src / "constraints.txt").write_text(
      "jax==0.10.2\njaxlib==0.10.2\ntensorflow-cpu==2.21.0\n"
      "protobuf==6.31.1\ntensorflow-datasets==4.9.10\n")
  archive = shutil.make_archive(str(tmp_path / "upload"), "gztar",
                                tmp_path / "src")
  checkout = helpers["fetch_source"](archive, str(tmp_path / "dest"))
  assert checkout == str(tmp_path / "dest" / "hpunet-main")


@pytest.mark.parametrize("accelerator,jax_req", [
    ("gpu", "jax[cuda12]==0.10.2"), ("tpu", "jax[tpu]==0.10.2"),
    ("cpu", "jax==0.10.2")])
def test_install_cell_pip_arguments(tmp_path, accelerator, jax_req):
  helpers = _install_helpers("instances")
  (tmp_path / "constraints.txt").write_text(
      "# tested versions\njax==0.10.2\njaxlib==0.10.2\n"
      "tensorflow-cpu==2.21.0 ; platform_machine == 'x86_64'\n"
      "protobuf==6.31.1\ntensorflow-datasets==4.9.10\n")
  # Colab: its TensorFlow and installed packages stay (tested pins only for
  # JAX and what is missing); no tensorflow-cpu, no `data` extra.
  args = helpers["pip_install_args"](
      str(tmp_path), accelerator, True,
      installed={"jax", "jaxlib", "tensorflow", "protobuf"})
  assert args[:3] == ["-c", str(tmp_path / ".colab_constraints.txt"), jax_req]
  assert f"{tmp_path}[eval]" in args and "tensorflow-datasets" in args
  assert not any("tensorflow-cpu" in a or "[data" in a for a in args)
  kept = (tmp_path / ".colab_constraints.txt").read_text().split()
  assert kept == ["jax==0.10.2", "jaxlib==0.10.2",
                  "tensorflow-datasets==4.9.10"]
  # A fresh environment: the tested pins and the data extra.
  args = helpers["pip_install_args"](str(tmp_path), accelerator, False)
  assert args == ["-c", str(tmp_path / "constraints.txt"), jax_req, "-e",
                  f"{tmp_path}[data,eval]"]


def test_install_cell_detects_the_runtime(monkeypatch):
  helpers = _install_helpers("quickstart")
  monkeypatch.setenv("PATH", "")  # no nvidia-smi
  monkeypatch.delenv("COLAB_TPU_ADDR", raising=False)
  monkeypatch.delenv("TPU_NAME", raising=False)
  if not glob.glob("/dev/accel*"):
    assert helpers["runtime_accelerator"]() == "cpu"
  monkeypatch.setenv("COLAB_TPU_ADDR", "10.0.0.2:8470")
  assert helpers["runtime_accelerator"]() == "tpu"


def test_lidc_download_fails_clearly_without_network(tmp_path):
  """The LIDC download helper, pointed at a closed local port."""
  nb = nbformat.read(os.path.join(_NOTEBOOKS, "lidc.ipynb"), as_version=4)
  cell = next(c.source for c in nb.cells
              if c.cell_type == "code" and "def download(" in c.source)
  tree = ast.parse(cell)
  tree.body = [n for n in tree.body if isinstance(n, ast.FunctionDef)
               and n.name == "download"]
  namespace = {}
  exec("import shutil, urllib.request\nfrom etils import epath",  # pylint: disable=exec-used
       namespace)
  exec(compile(tree, "lidc.ipynb:download", "exec"), namespace)  # pylint: disable=exec-used
  target = tmp_path / "train.tar.gz"
  with pytest.raises(RuntimeError, match=r"^Could not download "
                     r"http://127\.0\.0\.1:9/train\.tar\.gz .*no network "
                     rf"access.*copy it to {re.escape(str(tmp_path))}"):
    namespace["download"]("http://127.0.0.1:9/train.tar.gz", target)
  assert not target.exists()


def test_quickstart_restores_a_checkpoint(smoke_workdir, synthetic_data_dir,
                                          tmp_path):
  workdir = tmp_path / "out"
  values, _ = _run(
      "quickstart",
      dict(SMOKE=True, CHECKPOINT=str(smoke_workdir), WORKDIR=str(workdir),
           DATA_DIR=synthetic_data_dir, NUM_SAMPLES=4, EVAL_BATCHES=1),
      dict(table="metrics_table", step="step", labels_shape="labels.shape",
           std_max="float(p_std.max())", rec_iou="rec_iou.tolist()",
           modes="list(per_scale)", outputs="sorted(os.listdir(OUT_DIR))"),
      tmp_path)
  config = config_lib.load_workdir_config(str(smoke_workdir))
  batch = int(config.input.eval_batch_size)
  height, width = config.input.crop_size
  table = values["table"]
  _assert_in_range(table, "ged", 0.0, 2.0)
  _assert_in_range(table, "ged_modes", 0.0, 2.0)
  _assert_in_range(table, "hm_iou", 0.0, 1.0)
  _assert_in_range(table, "rec_iou", 0.0, 1.0)
  assert table["ged"]["num_images"] == batch  # EVAL_BATCHES=1
  # The fixture's newest checkpoint was restored.
  steps = [int(d) for d in os.listdir(os.path.join(smoke_workdir,
                                                   "checkpoints"))
           if d.isdigit()]
  assert values["step"] == max(steps)
  assert values["labels_shape"] == [4, batch, height, width]  # [S, B, H, W]
  assert 0.0 <= values["std_max"] <= 0.5  # std of a probability
  assert all(0.0 <= v <= 1.0 for v in values["rec_iou"])
  assert values["modes"] == ["full", "only_most_global", "only_most_local"]
  for name in ("training_curves.png", "reconstructions.png", "samples_0.png",
               "std.png", "per_scale.png", "eval"):
    assert name in values["outputs"], (name, values["outputs"])
  results = json.loads((workdir / "notebook" / "eval" /
                        "results.json").read_text())
  assert results["table"] == table and results["task"] == "synthetic"
  assert (workdir / "notebook" / "eval" / "results.md").read_text().count(
      "GED²") >= 2


def test_lidc_builds_trains_and_evaluates(tmp_path):
  workdir = tmp_path / "lidc_run"
  values, _ = _run(
      "lidc",
      dict(SMOKE=True, WORKDIR=str(workdir), DATA_DIR=str(tmp_path / "tfds"),
           TRAIN_STEPS=2, NUM_SAMPLES=4),
      dict(table="metrics_table", splits="split_sizes", step="step",
           shown="len(shown)", num_images="results['num_images']"),
      tmp_path)
  # The dummy archives: 5 / 2 / 2 images.
  assert values["splits"] == {"train": 5, "validation": 2, "test": 2}
  assert values["step"] == 2
  assert values["num_images"] == 2 and values["shown"] == 2
  table = values["table"]
  _assert_in_range(table, "ged", 0.0, 2.0)
  _assert_in_range(table, "hm_iou", 0.0, 1.0)
  _assert_in_range(table, "rec_iou", 0.0, 1.0)
  out = workdir / "notebook"
  for name in ("data.png", "samples_vs_graders.png", "per_scale.png",
               "eval/results.json", "eval/results.md"):
    assert (out / name).is_file(), name
  assert (workdir / "checkpoints" / "2").is_dir()


def test_instances_clusters_samples_into_instances(tmp_path):
  workdir = tmp_path / "snemi3d_run"
  values, _ = _run(
      "instances",
      dict(SMOKE=True, WORKDIR=str(workdir), DATA_DIR=str(tmp_path / "tfds"),
           TRAIN_STEPS=2, EVAL_BATCHES=1),
      dict(table="metrics_table", splits="split_sizes", step="step",
           num_samples="num_samples", labels_shape="labels.shape",
           num_instances="num_instances", rand_errors="rand_errors",
           map_shape="instance_map.shape",
           gt_instances="len(np.unique(gt[valid[0]])[1:])"),
      tmp_path)
  assert values["splits"] == {"train": 1280, "validation": 160, "test": 160}
  assert values["step"] == 2
  assert values["num_samples"] == 16  # the paper's for SNEMI3D
  assert values["labels_shape"] == [4, 16, 32, 32]  # [B, S, H, W]
  assert values["map_shape"] == [32, 32]
  assert all(n >= 1 for n in values["num_instances"]), values
  assert values["gt_instances"] >= 2  # the centre crop spans block borders
  assert all(0.0 <= e <= 1.0 for e in values["rand_errors"]), values
  table = values["table"]
  _assert_in_range(table, "rand_error", 0.0, 1.0)
  _assert_in_range(table, "rec_iou", 0.0, 1.0)
  assert table["rand_error"]["num_images"] == 4
  assert (workdir / "notebook" / "instances.png").is_file()
  assert (workdir / "notebook" / "eval" / "results.json").is_file()


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-v"]))
