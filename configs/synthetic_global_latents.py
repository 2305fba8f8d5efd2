# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Ablation on the synthetic dataset: HPU-Net topology with 85 *global*
latents at the 1x1 bottom and GECO kappa = 0.15, the synthetic counterpart of
`lidc_global_latents.py` (HPU-Net paper Table 2, row 3, Appendix F).

85 = 1 + 4 + 16 + 64, the number of scalar latents of `synthetic.py`
(1x1, 2x2, 4x4, 8x8 grids), now all at 1x1. kappa is raised 3x as in the
paper's row (0.05 -> 0.15). Everything else equals `synthetic.py`.

Command (part of experiments/synthetic_results.py):

  python -m hpunet.train --config=configs/synthetic_global_latents.py \
      --workdir=/tmp/hpunet/synthetic_global

Smoke variant:

  python -m hpunet.train --config=configs/synthetic_global_latents.py:smoke \
      --workdir=/tmp/s

Expected cost: as `synthetic.py`. """

from hpunet import config_lib


def get_config(arg=None):
  config = config_lib.load_config("synthetic", arg)
  config.model.latent_dims = (85,)  # one latent level: 85 dims at 1x1
  config.loss.kappa = 0.15  # 3x, as lidc_global_latents.py over lidc.py
  return config
