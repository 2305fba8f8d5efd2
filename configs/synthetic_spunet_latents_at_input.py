# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Ablation of the synthetic sPU-Net: latents injected at the beginning of
the U-Net. sPU-Net paper, Appendix D ("Injecting the latent features at the
beginning of the U-Net"), Fig. 11; the CPU-sized counterpart of
`lidc_spunet_latents_at_input.py`.

Derived from `synthetic_spunet.py`: z is broadcast and concatenated to the
image before the U-Net's first conv; f_comb maps the U-Net's last feature
map alone to the logits. Prior and posterior are the learned ones.

Command:

  python -m hpunet.train --config=configs/synthetic_spunet_latents_at_input.py \
      --workdir=/tmp/hpunet/synthetic_spunet_latents_at_input

Smoke variant:

  python -m hpunet.train --config=configs/synthetic_spunet_latents_at_input.py:smoke \
      --workdir=/tmp/s

Expected cost: training as `synthetic_spunet.py` (8.8 GFLOP per step at
batch 16, 347k parameters); each extra sample is a full U-Net pass, 0.11
GFLOP per 64^2 image instead of 0.004 (XLA cost analysis,
`python -m hpunet.model_summary`).
"""

from hpunet import config_lib


def get_config(arg=None):
  """Synthetic sPU-Net with z fed at the U-Net's input."""
  config = config_lib.load_config("synthetic_spunet", arg)
  config.model.inject_latents = "input"  # concat(img, z) -> U-Net
  return config
