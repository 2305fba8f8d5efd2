# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Ablation: only the most local latent scale (the 8x8 grid) of the LIDC
HPU-Net. HPU-Net paper Table 2, row 2 (IoU_rec 0.97, GED^2 0.34, HM-IoU
0.45), Appendix F.

Derived from `lidc.py`: the same topology and decoder levels; latent
levels 1x1, 2x2 and 4x4 carry no latent (latent_dims 0).

Command:

  python -m hpunet.train --config=configs/lidc_local_latents.py \
      --workdir=/tmp/hpunet/lidc_local

Smoke variant:

  python -m hpunet.train --config=configs/lidc_local_latents.py:smoke \
      --workdir=/tmp/s

Expected cost: as `lidc.py`. """

from hpunet import config_lib


def get_config(arg=None):
  config = config_lib.load_config("lidc", arg)
  config.model.latent_dims = (0, 0, 0, 1)  # only the 8x8 level
  return config
