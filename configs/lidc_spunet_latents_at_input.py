# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Ablation of the LIDC sPU-Net: latents injected at the beginning of the
U-Net. sPU-Net paper, Appendix D ("Injecting the latent features at the
beginning of the U-Net": z is concatenated to the input image and propagated
through the U-Net), Fig. 11.

Derived from `lidc_spunet.py`: z [B, 1, 1, 6] is broadcast to 6 channels and
concatenated to the image before the U-Net's first conv; f_comb (three 1x1
convs) maps the U-Net's last feature map alone to the logits. Prior and
posterior are the learned ones.

Command:

  python -m hpunet.train --config=configs/lidc_spunet_latents_at_input.py \
      --workdir=/tmp/hpunet/lidc_spunet_latents_at_input

Smoke variant:

  python -m hpunet.train --config=configs/lidc_spunet_latents_at_input.py:smoke --workdir=/tmp/s

Expected cost: training as `lidc_spunet.py` (1.55 TFLOP per step at batch
32, 27.5M parameters). Sampling costs a full U-Net pass per sample, since
every z changes the whole U-Net: 9.4 GFLOP per extra sample of a 128^2 image
instead of 0.08 GFLOP (XLA cost analysis, `python -m hpunet.model_summary`).
"""

from hpunet import config_lib


def get_config(arg=None):
  """LIDC sPU-Net with z fed at the U-Net's input; arg: None or "smoke"."""
  config = config_lib.load_config("lidc_spunet", arg)
  config.model.inject_latents = "input"  # concat(img, z) -> U-Net
  return config
