# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""U-Net Ensemble on the synthetic dataset: the sPU-Net paper's baseline,
Section 3.2, Fig. 2b; Fig. 4 (GED^2 vs samples), Fig. 8b (mode frequencies);
the CPU-sized counterpart of the sPU-Net paper's comparison.

Command:

  python -m hpunet.train --config=configs/synthetic_ensemble.py \
      --workdir=/tmp/hpunet/synthetic_ensemble

Variants (M = number of members):

  python -m hpunet.train --config=configs/synthetic_ensemble.py:m1 \
      --workdir=/tmp/hpunet/synthetic_ensemble_m1
  python -m hpunet.train --config=configs/synthetic_ensemble.py:m4 \
      --workdir=/tmp/hpunet/synthetic_ensemble_m4
  python -m hpunet.train --config=configs/synthetic_ensemble.py:m8 \
      --workdir=/tmp/hpunet/synthetic_ensemble_m8

Smoke variant:

  python -m hpunet.train --config=configs/synthetic_ensemble.py:smoke \
      --workdir=/tmp/s

Evaluate and sample with the commands of every model:

  python -m hpunet.evaluate --config=configs/synthetic_ensemble.py \
      --workdir=/tmp/hpunet/synthetic_ensemble
  python -m hpunet.sample --workdir=/tmp/hpunet/synthetic_ensemble \
      --image=IMAGE.png --out=/tmp/samples

There is no IoU_rec (no posterior).

Expected cost: M x the deterministic U-Net's 5.0 GFLOP per step (batch 16): 80
GFLOP for M = 16 (about 1.3 s per step on a 2-core CPU, 45 minutes for the
run), 20 / 40 GFLOP for :m4 / :m8 (XLA cost analysis of forward + backward +
Adam, `python benchmarks/train_step.py --flops_only`; CPU time scaled from the
sPU-Net's measured 0.14 s per 8.7 GFLOP step, an estimate). M x 174,090
parameters: 2,785,440 for M = 16 (:m1 174,090, :m4 696,360, :m8 1,392,720).

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

Everything else is `synthetic_spunet.py`'s (data, schedule, durations, evals,
weight decay; 5 scales, 8 ... 32).
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
  config = config_lib.load_config("synthetic_spunet", arg)
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
