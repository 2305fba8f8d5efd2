# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Ablation of the LIDC sPU-Net: a fixed prior. sPU-Net paper, Appendix D
("Fixing the prior": instead of a function of the image, the prior is a
standard Gaussian), Fig. 11; Section 4 lists it among the ablations.

Derived from `lidc_spunet.py`; only the prior changes: p(z) = N(0, I) for
every image, so the model has no prior net and all of the image's influence
on the samples goes through the U-Net (the posterior still sees the image
and the segmentation; the KL pulls it towards N(0, I)).

Command:

  python -m hpunet.train --config=configs/lidc_spunet_fixed_prior.py \
      --workdir=/tmp/hpunet/lidc_spunet_fixed_prior

Smoke variant:

  python -m hpunet.train --config=configs/lidc_spunet_fixed_prior.py:smoke \
      --workdir=/tmp/s

Expected cost: 1.2 TFLOP per train step at batch 32 (`lidc_spunet.py`:
1.5; the prior net is not run), 19.6M parameters (27.5M less the prior net's
7.9M); sampling 9.3 GFLOP per image, 0.08 GFLOP per extra sample (XLA cost
analysis, `python -m hpunet.model_summary`).
"""

from hpunet import config_lib


def get_config(arg=None):
  """LIDC sPU-Net with a fixed N(0, I) prior; arg: None or "smoke"."""
  config = config_lib.load_config("lidc_spunet", arg)
  config.model.prior = "fixed"  # N(0, I): no prior net
  return config
