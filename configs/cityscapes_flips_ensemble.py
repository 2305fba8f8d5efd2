# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""U-Net Ensemble on the Cityscapes stochastic-flip task at 256x512: the
sPU-Net paper's baseline, Section 3.2, Fig. 2b; Fig. 4 (GED^2 vs samples),
Fig. 8b (mode frequencies); the sPU-Net paper's Cityscapes setting (its
Section 4.2, Fig. 4b, Table 2).

Command:

  python -m hpunet.train --config=configs/cityscapes_flips_ensemble.py \
      --workdir=/tmp/hpunet/cityscapes_flips_ensemble

Variants (M = number of members):

  python -m hpunet.train --config=configs/cityscapes_flips_ensemble.py:m1 \
      --workdir=/tmp/hpunet/cityscapes_flips_ensemble_m1
  python -m hpunet.train --config=configs/cityscapes_flips_ensemble.py:m4 \
      --workdir=/tmp/hpunet/cityscapes_flips_ensemble_m4
  python -m hpunet.train --config=configs/cityscapes_flips_ensemble.py:m8 \
      --workdir=/tmp/hpunet/cityscapes_flips_ensemble_m8

Smoke variant:

  python -m hpunet.train --config=configs/cityscapes_flips_ensemble.py:smoke \
      --workdir=/tmp/s

Evaluate and sample with the commands of every model:

  python -m hpunet.evaluate --config=configs/cityscapes_flips_ensemble.py \
      --workdir=/tmp/hpunet/cityscapes_flips_ensemble
  python -m hpunet.sample --workdir=/tmp/hpunet/cityscapes_flips_ensemble \
      --image=IMAGE.png --out=/tmp/samples

There is no IoU_rec (no posterior).

Expected cost: M x the deterministic U-Net's 4.5 TFLOP per train step at batch
16 (1.07 EFLOP, 15 accelerator-hours for 240k steps): for M = 16 71 TFLOP per
step, 17 EFLOP, about 240 accelerator-hours (:m4 60, :m8 120) (XLA cost
analysis of forward + backward + Adam, `python benchmarks/train_step.py
--flops_only`; accelerator-hours assume a sustained 20 TFLOP/s per chip, a
planning figure, not a measurement). M x 47,168,952 parameters: 755M for M =
16 (:m4 189M, :m8 377M); with Adam's two slots about 8.4 GiB of float32 state
before activations, so the default needs a large accelerator or a data mesh
over several.

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

Everything else is `cityscapes_flips_spunet.py`'s (input, schedule, durations,
evals, mesh, weight decay; 6 scales, 32 ... 1024).
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
  config = config_lib.load_config("cityscapes_flips_spunet", arg)
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
