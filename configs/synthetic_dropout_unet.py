# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Dropout U-Net on the synthetic dataset: the sPU-Net paper's baseline,
Section 3.2, Fig. 2a; Fig. 4 (GED^2 vs samples), Fig. 8a (mode frequencies);
the CPU-sized counterpart of the sPU-Net paper's comparison.

Command:

  python -m hpunet.train --config=configs/synthetic_dropout_unet.py \
      --workdir=/tmp/hpunet/synthetic_dropout_unet

Smoke variant:

  python -m hpunet.train --config=configs/synthetic_dropout_unet.py:smoke \
      --workdir=/tmp/s

Evaluate and sample with the commands of every model:

  python -m hpunet.evaluate --config=configs/synthetic_dropout_unet.py \
      --workdir=/tmp/hpunet/synthetic_dropout_unet
  python -m hpunet.sample --workdir=/tmp/hpunet/synthetic_dropout_unet \
      --image=IMAGE.png --out=/tmp/samples

There is no IoU_rec (no posterior).

Expected cost: 5.0 GFLOP per step (batch 16), about 0.08 s per step on a
2-core CPU, 3 minutes for the run (XLA cost analysis of forward + backward +
Adam, `python benchmarks/train_step.py --flops_only`; CPU time scaled from the
sPU-Net's measured 0.14 s per 8.7 GFLOP step, an estimate). 174,090 parameters
(U-Net core 174,072 + 1x1 head 18).

Model: the sPU-Net's U-Net core (same widths) and a 1x1 logits conv;
dropout p = 0.5 on the activations entering the three inner-most encoder and
decoder blocks, during training and when sampling (each sample is one
dropout mask; `hpunet/baselines.py`).
Loss: cross-entropy (`type="ce"`), no top-k; weight decay as the sPU-Net's.

Everything else is `synthetic_spunet.py`'s (data, schedule, durations, evals,
weight decay; 5 scales, 8 ... 32).
"""

from hpunet import config_lib
import ml_collections
from ml_collections import config_dict


def get_config(arg=None):
  """Dropout U-Net; arg: None (paper) or "smoke"."""
  arg = config_lib.parse_arg(arg, ('smoke',))
  # Input, optimizer, schedule, durations, evals and mesh: the sPU-Net's
  # (its smoke sizes for "smoke").
  config = config_lib.load_config("synthetic_spunet", arg)
  core = config.model  # the sPU-Net's U-Net core: same widths

  # --- Model: keys = baselines.DropoutUNet constructor arguments.
  config.model = ml_collections.ConfigDict(dict(
      name="dropout_unet",
      channels_per_block=core.channels_per_block,
      convs_per_block=core.convs_per_block,
      num_classes=core.num_classes,
      dropout_rate=0.5,
      num_dropout_blocks=3,
      resize_method=core.resize_method,
  ))

  # --- Loss: cross-entropy.
  config.loss = ml_collections.ConfigDict(dict(
      type="ce", top_k_percentage=config_dict.placeholder(float),
      deterministic_top_k=False,
      weight_decay=config.loss.weight_decay))
  return config
