# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""The Image2Image VAE baseline on the Cityscapes stochastic-flip task:
sPU-Net paper, Section 3 and Fig. 2d (results in Fig. 4b and Fig. 9b;
training details Appendix H).

The sPU-Net of `cityscapes_flips_spunet.py` with the three ablations of the
sPU-Net paper, Appendix D, combined: a fixed N(0, I) prior, a posterior that
sees the segmentation only (ignore pixels as no class), z broadcast and
concatenated to the image at the U-Net's input; cross-entropy + KL.
Appendix H: "A KL weight of beta = 1 and 3D latents gave best validation
results for the Image2Image VAE" on Cityscapes; so beta = 1, 3 latents.
Everything else (the 6-scale U-Net, data, schedule) is
`cityscapes_flips_spunet.py`'s.

Command (after building hpunet_cityscapes/flips, see datasets/hpunet_cityscapes):

  python -m hpunet.train --config=configs/cityscapes_flips_i2i_vae.py \
      --workdir=/tmp/hpunet/cityscapes_flips_i2i_vae

Smoke variant:

  python -m hpunet.train --config=configs/cityscapes_flips_i2i_vae.py:smoke \
      --workdir=/tmp/s

Expected cost: 6.2 TFLOP per train step at batch 16 (the sPU-Net: 7.8; no
prior net), 78.6M parameters; every sample is a full U-Net pass, 94 GFLOP
per 256x512 image instead of the sPU-Net's 0.8 GFLOP per extra sample (XLA
cost analysis, `python -m hpunet.model_summary`).
"""

from hpunet import config_lib


def get_config(arg=None):
  """Cityscapes-flips Image2Image VAE; arg: None (paper) or "smoke"."""
  config = config_lib.load_config("cityscapes_flips_spunet", arg)
  config.model.prior = "fixed"  # N(0, I)
  config.model.posterior_sees_image = False  # q(z | seg)
  config.model.inject_latents = "input"  # concat(img, z) -> U-Net
  config.model.latent_dim = 3  # Appendix H
  config.loss.beta = 1.0  # Appendix H
  return config
