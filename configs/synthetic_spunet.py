# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""sPU-Net on the synthetic dataset: the CPU-sized baseline for
`synthetic.py` (same data, schedule and durations; a 6-d global latent,
ELBO with beta = 1, no top-k), mirroring `lidc_spunet.py`.

Command:

  python -m hpunet.train --config=configs/synthetic_spunet.py \
      --workdir=/tmp/hpunet/synthetic_spunet

Smoke variant:

  python -m hpunet.train --config=configs/synthetic_spunet.py:smoke \
      --workdir=/tmp/s

Expected cost: 8.7 GFLOP per step (batch 16); 0.14 s per step on a 2-core CPU
(measured), about 6 minutes for the run. """

from hpunet import config_lib
import ml_collections
from ml_collections import config_dict


def get_config(arg=None):
  """Synthetic sPU-Net; arg: None or "smoke"."""
  config = config_lib.load_config("synthetic", arg)
  # --- Model: keys = ProbUNet constructor arguments.
  config.model = ml_collections.ConfigDict(dict(
      name="spunet",
      channels_per_block=(8, 16, 32, 32, 32),  # 5 scales, 64 -> 4
      convs_per_block=3,
      latent_dim=6,
      num_classes=2,
      num_fcomb_convs=3,
      fcomb_channels=16,
      resize_method="bilinear",
      # 2x2 max pooling and a global max in the posterior ("max"; not in the
      # papers) instead of the averages ("mean"): spunet.ProbUNet and the
      # README's results, round 13.
      posterior_pooling="mean",
  ))
  # --- Loss: ELBO, beta = 1.
  config.loss = ml_collections.ConfigDict(dict(
      type="elbo", kappa=config_dict.placeholder(float), beta=1.0,
      top_k_percentage=config_dict.placeholder(float),
      deterministic_top_k=False, weight_decay=1e-5,
      weight_decay_mode="all",  # sum(w^2 + b^2); objectives.py
      kl_warmup_steps=0, free_bits=0.0, kl_balancing=False,
      kl_level_weights=config_dict.placeholder(tuple)))
  if arg == "smoke":
    config.model.channels_per_block = (4, 8, 8)
    config.model.convs_per_block = 2
    config.model.latent_dim = 2
    config.model.fcomb_channels = 4
  return config
