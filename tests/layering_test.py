# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""The package's layering rules, checked on the imports of every module.

- Commands are leaves: no module of `hpunet` imports a command module, and
  only `main` (under `if __name__ == "__main__"`) runs flags.
- TensorFlow / TFDS only in the data modules (and `summary_writer`, whose
  TensorBoard records are written with `tf.summary.write`, imported lazily,
  and `convert_official`, which reads the official TF1 checkpoint).
- Haiku only in the model files.
- `losses` does not reach into `sharding`.

Imports are read with `ast` (function-level imports included), so the check
needs no import of the package.
"""

import ast
import pathlib

import pytest

_PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "hpunet"
COMMANDS = {"build_dataset", "compare", "convert_official", "evaluate",
            "model_summary", "sample"}
DATA_MODULES = {"augment", "build_dataset", "dataset_builders",
                "input_pipeline"}
TF_ALSO = {"convert_official", "summary_writer"}
MODEL_FILES = {"baselines", "model", "networks", "spunet", "unet", "unet_utils"}


def _modules() -> dict[str, ast.Module]:
  return {p.stem: ast.parse(p.read_text(encoding="utf-8"), str(p))
          for p in sorted(_PACKAGE.glob("*.py"))}


def imports(tree: ast.Module) -> set[str]:
  """Top-level names of every module imported; `hpunet.x` as `hpunet.x`."""
  names = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        parts = alias.name.split(".")
        names.add(".".join(parts[:2]) if parts[0] == "hpunet" else parts[0])
    elif isinstance(node, ast.ImportFrom) and node.module:
      parts = node.module.split(".")
      if parts[0] != "hpunet":
        names.add(parts[0])
      elif len(parts) > 1:
        names.add(".".join(parts[:2]))
      else:  # from hpunet import x
        names.update(f"hpunet.{alias.name}" for alias in node.names)
  return names


def test_the_parser_sees_every_kind_of_import():
  tree = ast.parse("import haiku as hk\nfrom hpunet import sample as s\n"
                   "def f():\n  from hpunet.evaluate import main\n"
                   "  import tensorflow.compat.v1\n")
  assert imports(tree) == {"haiku", "hpunet.sample", "hpunet.evaluate",
                           "tensorflow"}


def test_the_rules_name_existing_modules():
  modules = set(_modules())
  for group in (COMMANDS, DATA_MODULES, TF_ALSO, MODEL_FILES):
    assert group <= modules, group - modules


@pytest.mark.parametrize("name", sorted(p.stem for p in _PACKAGE.glob("*.py")))
def test_module_follows_the_layering_rules(name):
  tree = _modules()[name]
  used = imports(tree)
  commands = {f"hpunet.{c}" for c in COMMANDS} & used
  assert not commands, f"hpunet/{name}.py imports the command(s) {commands}"
  if name not in DATA_MODULES | TF_ALSO:
    tf = used & {"tensorflow", "tensorflow_datasets"}
    assert not tf, f"hpunet/{name}.py imports {tf} (data modules only)"
  if name not in MODEL_FILES:
    assert "haiku" not in used, f"hpunet/{name}.py imports Haiku"
  if name == "losses":
    assert "hpunet.sharding" not in used


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_commands_define_flags_only_when_run(name):
  tree = _modules()[name]
  functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
  assert "main" in functions
  guards = [n for n in tree.body if isinstance(n, ast.If) and
            "__main__" in ast.unparse(n.test)]
  assert len(guards) == 1, f"hpunet/{name}.py: no `if __name__` guard"
  # No flag is defined at import time: only inside functions or the guard.
  for node in tree.body:
    if isinstance(node, (ast.Assign, ast.Expr)):
      assert "DEFINE_" not in ast.unparse(node), ast.unparse(node)
