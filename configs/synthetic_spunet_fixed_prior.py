# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Ablation of the synthetic sPU-Net: a fixed prior. sPU-Net paper,
Appendix D ("Fixing the prior": instead of a function of the image, the
prior is a standard Gaussian), Fig. 11; the CPU-sized counterpart of
`lidc_spunet_fixed_prior.py`.

Derived from `synthetic_spunet.py`; only the prior changes: p(z) = N(0, I)
for every image, so the model has no prior net (the posterior still sees the
image and the segmentation).

Command:

  python -m hpunet.train --config=configs/synthetic_spunet_fixed_prior.py \
      --workdir=/tmp/hpunet/synthetic_spunet_fixed_prior

Smoke variant:

  python -m hpunet.train --config=configs/synthetic_spunet_fixed_prior.py:smoke --workdir=/tmp/s

Expected cost: 6.9 GFLOP per train step at batch 16 (`synthetic_spunet.py`:
8.7), 261k parameters (347k less the prior net's 86k); XLA cost analysis,
`python -m hpunet.model_summary`.
"""

from hpunet import config_lib


def get_config(arg=None):
  """Synthetic sPU-Net with a fixed N(0, I) prior; arg: None or "smoke"."""
  config = config_lib.load_config("synthetic_spunet", arg)
  config.model.prior = "fixed"  # N(0, I): no prior net
  return config
