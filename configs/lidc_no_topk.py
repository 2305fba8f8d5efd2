# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Ablation: the LIDC HPU-Net without the top-k reconstruction loss (plain
masked cross-entropy summed per image), GECO kappa = 0.05. HPU-Net paper
Table 2, row 4 (IoU_rec 0.94, GED^2 0.27, HM-IoU 0.54), Appendix F.

Derived from `lidc.py`.

Command:

  python -m hpunet.train --config=configs/lidc_no_topk.py \
      --workdir=/tmp/hpunet/lidc_no_topk

Smoke variant:

  python -m hpunet.train --config=configs/lidc_no_topk.py:smoke --workdir=/tmp/s

Expected cost: as `lidc.py`. """

from hpunet import config_lib


def get_config(arg=None):
  config = config_lib.load_config("lidc", arg)
  config.loss.top_k_percentage = None
  return config
