# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Ablation of the synthetic sPU-Net: a fixed prior and a posterior that
does not see the image. sPU-Net paper, Appendix D ("Fixing the prior, and
not using the context (input image) in the posterior"), Fig. 11; the
CPU-sized counterpart of `lidc_spunet_fixed_prior_no_context.py`.

Derived from `synthetic_spunet.py`: p(z) = N(0, I) (no prior net) and
q(z | segmentation) reads the one-hot segmentation alone.

Command:

  python -m hpunet.train --config=configs/synthetic_spunet_fixed_prior_no_context.py \
      --workdir=/tmp/hpunet/synthetic_spunet_fixed_prior_no_context

Smoke variant:

  python -m hpunet.train --config=configs/synthetic_spunet_fixed_prior_no_context.py:smoke \
      --workdir=/tmp/s

Expected cost: that of `synthetic_spunet_fixed_prior.py`: 6.9 GFLOP per
train step at batch 16, 261k parameters (XLA cost analysis,
`python -m hpunet.model_summary`).
"""

from hpunet import config_lib


def get_config(arg=None):
  """Synthetic sPU-Net, fixed prior, segmentation-only posterior."""
  config = config_lib.load_config("synthetic_spunet", arg)
  config.model.prior = "fixed"  # N(0, I): no prior net
  config.model.posterior_sees_image = False  # q(z | seg)
  return config
