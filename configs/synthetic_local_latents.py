# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Ablation on the synthetic dataset: HPU-Net with only the most local latent
level (scalar latents on the 8x8 grid), the synthetic counterpart of
`lidc_local_latents.py` (HPU-Net paper Table 2, "local latents only").

The 1x1, 2x2 and 4x4 levels keep their decoder path but sample nothing
(`latent_dims` 0). Everything else equals `synthetic.py`.

Command (part of experiments/synthetic_results.py):

  python -m hpunet.train --config=configs/synthetic_local_latents.py \
      --workdir=/tmp/hpunet/synthetic_local

Smoke variant:

  python -m hpunet.train --config=configs/synthetic_local_latents.py:smoke \
      --workdir=/tmp/s

Expected cost: as `synthetic.py`. """

from hpunet import config_lib


def get_config(arg=None):
  config = config_lib.load_config("synthetic", arg)
  config.model.latent_dims = (0, 0, 0, 1)  # only the 8x8 level
  return config
