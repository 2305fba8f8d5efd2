# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Ablation on the synthetic dataset: HPU-Net without top-k, i.e. the
reconstruction term is the mean cross-entropy over all pixels, the synthetic
counterpart of `lidc_no_topk.py` (HPU-Net paper Table 2, "no top-k").

GECO's kappa = 0.05 is kept: it then bounds the mean CE over all pixels
rather than over the hardest 2%. Everything else equals `synthetic.py`.

Command (part of experiments/synthetic_results.py):

  python -m hpunet.train --config=configs/synthetic_no_topk.py \
      --workdir=/tmp/hpunet/synthetic_no_topk

Smoke variant:

  python -m hpunet.train --config=configs/synthetic_no_topk.py:smoke \
      --workdir=/tmp/s

Expected cost: as `synthetic.py`. """

from hpunet import config_lib


def get_config(arg=None):
  config = config_lib.load_config("synthetic", arg)
  config.loss.top_k_percentage = None
  return config
