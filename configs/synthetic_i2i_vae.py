# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""The Image2Image VAE baseline on the synthetic dataset: the CPU-sized
counterpart of `lidc_i2i_vae.py` (sPU-Net paper, Section 3, Fig. 2d).

The sPU-Net of `synthetic_spunet.py` with the three ablations of the sPU-Net
paper, Appendix D, combined: a fixed N(0, I) prior, a posterior that sees
the segmentation only, z concatenated to the image at the U-Net's input;
cross-entropy + KL. As on LIDC (the paper's Appendix H; the synthetic task
is binary like LIDC): 3 latents, beta = 10.

Command:

  python -m hpunet.train --config=configs/synthetic_i2i_vae.py \
      --workdir=/tmp/hpunet/synthetic_i2i_vae

Smoke variant:

  python -m hpunet.train --config=configs/synthetic_i2i_vae.py:smoke \
      --workdir=/tmp/s

Expected cost: 6.9 GFLOP per train step at batch 16, 261k parameters; every
sample is a full U-Net pass (0.11 GFLOP per 64^2 image); XLA cost analysis,
`python -m hpunet.model_summary`.
"""

from hpunet import config_lib


def get_config(arg=None):
  """Synthetic Image2Image VAE; arg: None or "smoke"."""
  config = config_lib.load_config("synthetic_spunet", arg)
  config.model.prior = "fixed"  # N(0, I)
  config.model.posterior_sees_image = False  # q(z | seg)
  config.model.inject_latents = "input"  # concat(img, z) -> U-Net
  config.model.latent_dim = 3  # as lidc_i2i_vae.py
  config.loss.beta = 10.0  # as lidc_i2i_vae.py
  return config
