# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Prepares a TFDS dataset from the repository's `datasets/` folder (command).

  python -m hpunet.build_dataset <name>[/<config>] --manual_dir=DIR \
      [--data_dir=DIR] [--file_format=tfrecord|array_record]

See `hpunet.dataset_builders` (the library it calls) for the datasets and why
they are imported by path.
"""

from typing import Sequence

from hpunet import dataset_builders


def main(argv: Sequence[str]) -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flag_values = flags.FLAGS
  if len(argv) != 2:
    raise SystemExit(
        "Usage: python -m hpunet.build_dataset <name>[/<config>]"
        " --manual_dir=DIR [--data_dir=DIR] [--file_format=tfrecord|"
        f"array_record]. Available datasets: "
        f"{dataset_builders.available_datasets()}.")
  builder = dataset_builders.build(argv[1], manual_dir=flag_values.manual_dir,
                                   data_dir=flag_values.data_dir,
                                   file_format=flag_values.file_format)
  print(f"Prepared {builder.info.full_name} in {builder.data_dir}:")
  for split, info in sorted(builder.info.splits.items()):
    print(f"  {split}: {info.num_examples} examples")


def _define_flags() -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("manual_dir", None,
                      "Folder holding the manually downloaded files.")
  flags.DEFINE_string("data_dir", None,
                      "TFDS data dir (default: TFDS' default).")
  flags.DEFINE_enum("file_format", "tfrecord",
                    list(dataset_builders.FILE_FORMATS), "Output file format.")


if __name__ == "__main__":
  from absl import app  # pylint: disable=g-import-not-at-top
  _define_flags()
  app.run(main)
