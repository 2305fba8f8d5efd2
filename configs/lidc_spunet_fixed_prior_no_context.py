# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Ablation of the LIDC sPU-Net: a fixed prior and a posterior that does not
see the image. sPU-Net paper, Appendix D ("Fixing the prior, and not using
the context (input image) in the posterior"), Fig. 11.

Derived from `lidc_spunet.py`: p(z) = N(0, I) (no prior net) and
q(z | segmentation) reads the one-hot segmentation alone; the image reaches
the samples through the U-Net only.

Command:

  python -m hpunet.train --config=configs/lidc_spunet_fixed_prior_no_context.py \
      --workdir=/tmp/hpunet/lidc_spunet_fixed_prior_no_context

Smoke variant:

  python -m hpunet.train --config=configs/lidc_spunet_fixed_prior_no_context.py:smoke \
      --workdir=/tmp/s

Expected cost: that of `lidc_spunet_fixed_prior.py`: 1.2 TFLOP per train
step at batch 32, 19.6M parameters (the posterior's first conv loses the
image channel); XLA cost analysis, `python -m hpunet.model_summary`.
"""

from hpunet import config_lib


def get_config(arg=None):
  """LIDC sPU-Net, fixed prior, segmentation-only posterior."""
  config = config_lib.load_config("lidc_spunet", arg)
  config.model.prior = "fixed"  # N(0, I): no prior net
  config.model.posterior_sees_image = False  # q(z | seg)
  return config
