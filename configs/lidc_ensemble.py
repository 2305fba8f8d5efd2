# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""U-Net Ensemble on LIDC-IDRI crops: the sPU-Net paper's baseline, Section
3.2, Fig. 2b; Fig. 4 (GED^2 vs samples), Fig. 8b (mode frequencies); the
sPU-Net paper's LIDC setting (its Section 4.1, Fig. 4a).

Command:

  python -m hpunet.train --config=configs/lidc_ensemble.py \
      --workdir=/tmp/hpunet/lidc_ensemble

Variants (M = number of members):

  python -m hpunet.train --config=configs/lidc_ensemble.py:m1 \
      --workdir=/tmp/hpunet/lidc_ensemble_m1
  python -m hpunet.train --config=configs/lidc_ensemble.py:m4 \
      --workdir=/tmp/hpunet/lidc_ensemble_m4
  python -m hpunet.train --config=configs/lidc_ensemble.py:m8 \
      --workdir=/tmp/hpunet/lidc_ensemble_m8

Smoke variant:

  python -m hpunet.train --config=configs/lidc_ensemble.py:smoke \
      --workdir=/tmp/s

Evaluate and sample with the commands of every model:

  python -m hpunet.evaluate --config=configs/lidc_ensemble.py \
      --workdir=/tmp/hpunet/lidc_ensemble
  python -m hpunet.sample --workdir=/tmp/hpunet/lidc_ensemble \
      --image=IMAGE.png --out=/tmp/samples

There is no IoU_rec (no posterior).

Expected cost: M x the deterministic U-Net's 886 GFLOP per train step at batch
32 (213 PFLOP, 3 accelerator-hours for 240k steps): for M = 16 14.2 TFLOP per
step, 3.4 EFLOP, about 47 accelerator-hours (:m4 12, :m8 24) (XLA cost
analysis of forward + backward + Adam, `python benchmarks/train_step.py
--flops_only`; accelerator-hours assume a sustained 20 TFLOP/s per chip, a
planning figure, not a measurement). M x 11,773,602 parameters: 188.4M for M =
16 (:m4 47.1M, :m8 94.2M).

Model: M = 16 deterministic U-Nets (the sPU-Net's core and widths, each with
a 1x1 logits conv), independently initialised; `:m1` is the deterministic
U-Net, `:m4` / `:m8` the paper's smaller ensembles (the paper trains one
ensemble per number of samples). The members' parameters are stacked and
vmapped, so one step trains all of them on the same batches (one input
pipeline; diversity from the initialisation, as in deep ensembles); their
losses are summed and their gradients never mix (`hpunet/baselines.py`,
`hpunet/objectives.py`). Sample i is member i mod M.
Loss: each member's cross-entropy (`type="ce"`), no top-k; weight decay as
the sPU-Net's (over all members, i.e. each member's own).

Everything else is `lidc_spunet.py`'s (input, schedule, durations, evals,
mesh, weight decay; 5 scales, 32 ... 512).
"""

from hpunet import config_lib
import ml_collections
from ml_collections import config_dict


def get_config(arg=None):
  """U-Net Ensemble; arg: None or "m16" (M = 16), "m1", "m4", "m8"
  (M = 1 / 4 / 8) or "smoke" (M = 3).
  """
  arg = config_lib.parse_arg(arg, ('smoke', 'm1', 'm4', 'm8', 'm16'))
  if arg and arg.startswith("m"):  # M of the paper setting
    num_members, arg = int(arg[1:]), None
  else:  # 16: the paper's 16-sample comparison; 3 for smoke
    num_members = 3 if arg == "smoke" else 16
  # Input, optimizer, schedule, durations, evals and mesh: the sPU-Net's
  # (its smoke sizes for "smoke").
  config = config_lib.load_config("lidc_spunet", arg)
  core = config.model  # the sPU-Net's U-Net core: same widths

  # --- Model: keys = baselines.UNetEnsemble constructor arguments.
  config.model = ml_collections.ConfigDict(dict(
      name="unet_ensemble",
      num_members=num_members,
      channels_per_block=core.channels_per_block,
      convs_per_block=core.convs_per_block,
      num_classes=core.num_classes,
      resize_method=core.resize_method,
      # "unroll" on CPU, "vmap" on accelerators (hpunet/baselines.py).
      member_loop="auto",
  ))

  # --- Loss: cross-entropy.
  config.loss = ml_collections.ConfigDict(dict(
      type="ce", top_k_percentage=config_dict.placeholder(float),
      deterministic_top_k=False,
      weight_decay=config.loss.weight_decay))
  return config
