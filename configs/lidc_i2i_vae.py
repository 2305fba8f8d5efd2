# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""The Image2Image VAE baseline on LIDC: sPU-Net paper, Section 3 and
Fig. 2d (results in Fig. 4a, Appendix F Fig. 17; training details
Appendix H).

The U-Net of the sPU-Net with the latents of a bicycleGAN-style VAE:
- the prior is fixed, N(0, I), not conditioned on the image;
- the posterior sees the segmentation only, not the image;
- z is broadcast and concatenated to the image at the U-Net's input;
- trained with cross-entropy + KL (the ELBO), no adversarial loss.
That is the sPU-Net with the three ablations of the sPU-Net paper,
Appendix D, combined (`lidc_spunet_fixed_prior_no_context.py` plus
`lidc_spunet_latents_at_input.py`).

Appendix H: "A KL weight of beta = 10 with a latent space of 3 dimensions
gave best validation results for the baseline Image2Image VAE" on LIDC;
so beta = 10 and 3 latents here. Everything else (U-Net, data, schedule,
weight decay, 240k steps) is `lidc_spunet.py`'s.

Command:

  python -m hpunet.train --config=configs/lidc_i2i_vae.py \
      --workdir=/tmp/hpunet/lidc_i2i_vae

Smoke variant:

  python -m hpunet.train --config=configs/lidc_i2i_vae.py:smoke \
      --workdir=/tmp/s

Expected cost: 1.2 TFLOP per train step at batch 32, 19.6M parameters;
every sample is a full U-Net pass (9.4 GFLOP per 128^2 image); XLA cost
analysis, `python -m hpunet.model_summary`.
"""

from hpunet import config_lib


def get_config(arg=None):
  """LIDC Image2Image VAE; arg: None (paper) or "smoke"."""
  config = config_lib.load_config("lidc_spunet", arg)
  config.model.prior = "fixed"  # N(0, I)
  config.model.posterior_sees_image = False  # q(z | seg)
  config.model.inject_latents = "input"  # concat(img, z) -> U-Net
  config.model.latent_dim = 3  # Appendix H
  config.loss.beta = 10.0  # Appendix H
  return config
