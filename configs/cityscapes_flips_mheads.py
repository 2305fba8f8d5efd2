# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""M-Heads on the Cityscapes stochastic-flip task at 256x512: the sPU-Net
paper's baseline, Section 3.2, Fig. 2c; Fig. 4 (GED^2 vs samples), Fig. 9a
(mode frequencies), Fig. 16; the sPU-Net paper's Cityscapes setting (its
Section 4.2, Fig. 4b, Table 2).

Command:

  python -m hpunet.train --config=configs/cityscapes_flips_mheads.py \
      --workdir=/tmp/hpunet/cityscapes_flips_mheads

Variants (M = number of heads):

  python -m hpunet.train --config=configs/cityscapes_flips_mheads.py:m4 \
      --workdir=/tmp/hpunet/cityscapes_flips_mheads_m4
  python -m hpunet.train --config=configs/cityscapes_flips_mheads.py:m8 \
      --workdir=/tmp/hpunet/cityscapes_flips_mheads_m8

Smoke variant:

  python -m hpunet.train --config=configs/cityscapes_flips_mheads.py:smoke \
      --workdir=/tmp/s

Evaluate and sample with the commands of every model:

  python -m hpunet.evaluate --config=configs/cityscapes_flips_mheads.py \
      --workdir=/tmp/hpunet/cityscapes_flips_mheads
  python -m hpunet.sample --workdir=/tmp/hpunet/cityscapes_flips_mheads \
      --image=IMAGE.png --out=/tmp/samples

There is no IoU_rec (no posterior).

Expected cost: 4.6 TFLOP per train step at batch 16, 1.11 EFLOP for 240k
steps, about 15 accelerator-hours (XLA cost analysis of forward + backward +
Adam, `python benchmarks/train_step.py --flops_only`; accelerator-hours assume
a sustained 20 TFLOP/s per chip, a planning figure, not a measurement).
47,168,160 + M x 792 parameters: 47,180,832 for M = 16 (:m4 47,171,328, :m8
47,174,496).

Model: the sPU-Net's U-Net core (same widths) and M = 16 1x1 output heads
(one conv with 16 x K outputs); `:m4` / `:m8` the paper's 4- and 8-head
models. Sample i is head i mod M (`hpunet/baselines.py`).
Loss: the adaptive M-heads loss (`type="mheads"`): per image, the head with
the lowest cross-entropy weighted 1 - epsilon, every other head
epsilon / (M - 1), epsilon = 0.05 (the paper's); no top-k; weight decay as
the sPU-Net's.

Everything else is `cityscapes_flips_spunet.py`'s (input, schedule, durations,
evals, mesh, weight decay; 6 scales, 32 ... 1024).
"""

from hpunet import config_lib
import ml_collections
from ml_collections import config_dict


def get_config(arg=None):
  """M-Heads; arg: None or "m16" (M = 16), "m4", "m8"
  (M = 4 / 8) or "smoke" (M = 3).
  """
  arg = config_lib.parse_arg(arg, ('smoke', 'm4', 'm8', 'm16'))
  if arg and arg.startswith("m"):  # M of the paper setting
    num_heads, arg = int(arg[1:]), None
  else:  # 16: the paper's 16-sample comparison; 3 for smoke
    num_heads = 3 if arg == "smoke" else 16
  # Input, optimizer, schedule, durations, evals and mesh: the sPU-Net's
  # (its smoke sizes for "smoke").
  config = config_lib.load_config("cityscapes_flips_spunet", arg)
  core = config.model  # the sPU-Net's U-Net core: same widths

  # --- Model: keys = baselines.MHeadsUNet constructor arguments.
  config.model = ml_collections.ConfigDict(dict(
      name="mheads",
      num_heads=num_heads,
      channels_per_block=core.channels_per_block,
      convs_per_block=core.convs_per_block,
      num_classes=core.num_classes,
      resize_method=core.resize_method,
  ))

  # --- Loss: the adaptive M-heads loss, epsilon = 0.05.
  config.loss = ml_collections.ConfigDict(dict(
      type="mheads", epsilon=0.05,
      top_k_percentage=config_dict.placeholder(float),
      deterministic_top_k=False,
      weight_decay=config.loss.weight_decay))
  return config
