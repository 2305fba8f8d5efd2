# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Compares two evaluated models: the sPU-Net paper's Wilcoxon test.

  python -m hpunet.compare --a=<results folder> --b=<results folder> \
      [--a_name=sPU-Net] [--b_name=Dropout] [--out_dir=DIR]

Both folders are outputs of `python -m hpunet.evaluate` on the same task and
split (they hold `per_image.npz`). For every GED kind (graders, known modes)
and number of samples both were evaluated at (default 1, 4, 8, 16), the
per-image GED² of the two models are paired by image id and compared with
the Wilcoxon signed-rank test (two-sided, `scipy.stats.wilcoxon`): the table
gives both means, the median difference a − b, the statistic, the p-value,
the number of images and the better model (lower GED² on the signed ranks).
It is printed, and with `--out_dir` written as comparison.md / .json. See
`hpunet.comparison`.
"""

import sys
import types

from absl import app
from absl import flags

from hpunet import cli
from hpunet import comparison
from hpunet import errors


def _define_flags(fv: flags.FlagValues = flags.FLAGS
                  ) -> types.SimpleNamespace:
  """Flags exist only when run as a program: importing defines none."""
  return types.SimpleNamespace(
      a=flags.DEFINE_string("a", None, "Results folder of model A.",
                            flag_values=fv),
      b=flags.DEFINE_string("b", None, "Results folder of model B.",
                            flag_values=fv),
      a_name=flags.DEFINE_string("a_name", "A", "Model A's name in the table.",
                                 flag_values=fv),
      b_name=flags.DEFINE_string("b_name", "B", "Model B's name in the table.",
                                 flag_values=fv),
      out_dir=flags.DEFINE_string(
          "out_dir", None, "Also write comparison.md / .json there.",
          flag_values=fv),
  )


def main(argv, f: types.SimpleNamespace):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not f.a.value or not f.b.value:
    raise errors.UserError("--a and --b are required: the two results "
                           "folders of `python -m hpunet.evaluate`.")
  names = (f.a_name.value, f.b_name.value)
  if names[0] == names[1]:
    raise errors.UserError(f"--a_name={names[0]} and --b_name={names[1]}: "
                           "expected two different names.")
  a, b = comparison.load(f.a.value), comparison.load(f.b.value)
  rows = comparison.compare(a, b, names=names)
  if f.out_dir.value:
    print(comparison.write(f.out_dir.value, a, b, rows, names))
  else:
    print(comparison.markdown(rows, names=names))


if __name__ == "__main__":
  cli.run(main, _define_flags)
