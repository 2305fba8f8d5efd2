# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Ablation: HPU-Net topology with 85 *global* latents at the 1x1 bottom,
GECO kappa = 0.15. HPU-Net paper Table 2, row 3 (IoU_rec 0.94, GED^2 0.40,
HM-IoU 0.37), Appendix F.

Derived from `lidc.py`; everything else (data, schedule, top-k) is equal.

Command:

  python -m hpunet.train --config=configs/lidc_global_latents.py \
      --workdir=/tmp/hpunet/lidc_global

Smoke variant:

  python -m hpunet.train --config=configs/lidc_global_latents.py:smoke \
      --workdir=/tmp/s

Expected cost: as `lidc.py` (the latent heads are a negligible part). """

from hpunet import config_lib


def get_config(arg=None):
  config = config_lib.load_config("lidc", arg)
  config.model.latent_dims = (85,)  # one latent level: 85 dims at 1x1
  config.loss.kappa = 0.15  # needed for a comparable IoU_rec (paper)
  return config
