# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Prepares a TFDS dataset from the repository's `datasets/` folder (command).

  python -m hpunet.build_dataset <name>[/<config>] --manual_dir=DIR \
      [--data_dir=DIR] [--file_format=tfrecord|array_record]

See `hpunet.dataset_builders` (the library it calls) for the datasets and why
they are imported by path. Bad input (a name, a folder, a file the builder
rejects) is reported in one line with exit code 2 (`--verbose` adds the
traceback); `incomplete.*` folders of an interrupted build are removed
(`dataset_builders.remove_stale_partial_builds`).
"""

import types
from typing import Sequence

from hpunet import dataset_builders
from hpunet import errors
from hpunet import validation


def main(argv: Sequence[str], f: types.SimpleNamespace) -> None:
  if len(argv) != 2:
    raise errors.UserError(
        "Usage: python -m hpunet.build_dataset <name>[/<config>]"
        " --manual_dir=DIR [--data_dir=DIR] [--file_format=tfrecord|"
        f"array_record]. Available datasets: "
        f"{dataset_builders.available_datasets()}.")
  name = argv[1]
  # Reliability hook (issue 16): arguments checked before any work.
  validation.check_build_dataset(
      name, manual_dir=f.manual_dir.value, data_dir=f.data_dir.value,
      file_format=f.file_format.value, formats=dataset_builders.FILE_FORMATS)
  try:
    base = dataset_builders.split_dataset_name(name)
  except ValueError as e:
    raise errors.UserError(str(e)) from None
  if base not in dataset_builders.available_datasets():
    raise errors.UserError(
        f"dataset {name!r}: no builder datasets/{base}/{base}_dataset_builder"
        f".py; available: {dataset_builders.available_datasets()}.")
  try:
    builder = dataset_builders.build(name, manual_dir=f.manual_dir.value,
                                     data_dir=f.data_dir.value,
                                     file_format=f.file_format.value)
  except (FileNotFoundError, ValueError) as e:
    # Missing manual files, or input files the builder rejects (its
    # messages name the file and what was expected).
    raise errors.UserError(str(e)) from e
  print(f"Prepared {builder.info.full_name} in {builder.data_dir}:")
  for split, info in sorted(builder.info.splits.items()):
    print(f"  {split}: {info.num_examples} examples")
  module = dataset_builders.load_builder_module(argv[1])
  if hasattr(module, "next_command"):  # folder: the sizes for the config
    print("Train with:\n  " + module.next_command(builder, f.data_dir.value))


def _define_flags(fv=None) -> types.SimpleNamespace:
  from absl import flags  # pylint: disable=g-import-not-at-top
  fv = flags.FLAGS if fv is None else fv
  return types.SimpleNamespace(
      manual_dir=flags.DEFINE_string(
          "manual_dir", None, "Folder holding the manually downloaded files.",
          flag_values=fv),
      data_dir=flags.DEFINE_string(
          "data_dir", None, "TFDS data dir (default: TFDS' default).",
          flag_values=fv),
      file_format=flags.DEFINE_enum(
          "file_format", "tfrecord", list(dataset_builders.FILE_FORMATS),
          "Output file format.", flag_values=fv))


if __name__ == "__main__":
  from hpunet import cli  # pylint: disable=g-import-not-at-top
  cli.run(main, _define_flags)
