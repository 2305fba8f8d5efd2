# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""sPU-Net (Probabilistic U-Net) on LIDC-IDRI crops: the sPU-Net
re-implementation of the HPU-Net paper, Table 1 (LIDC sPU-Net column),
Appendix D.1; the sPU-Net paper's LIDC setting (its Section 4, Fig. 3).

Command:

  python -m hpunet.train --config=configs/lidc_spunet.py \
      --workdir=/tmp/hpunet/lidc_spunet

Smoke variant:

  python -m hpunet.train --config=configs/lidc_spunet.py:smoke --workdir=/tmp/s

Expected result (HPU-Net paper): IoU_rec 0.75, GED^2 0.32 (sPU-Net paper:
0.29), HM-IoU 0.50.

Expected cost: 1.5 TFLOP per train step at batch 32 (48 GFLOP per 128^2
example), 371 PFLOP for 240k steps, about 5 accelerator-hours (XLA cost
analysis of forward + backward + Adam, `python benchmarks/train_step.py
--flops_only`; accelerator-hours assume a sustained 20 TFLOP/s per chip, a
planning figure, not a measurement). 27.5M parameters.

Model: 5 scales, base 32 doubled per scale (32 ... 512), three 3x3 convs per
scale, separate prior / posterior nets mirroring the encoder, 6 global
latents, three final 1x1 convs (f_comb), bilinear up-sampling.
Loss: ELBO with beta = 1, no top-k (plain masked cross-entropy, summed per
image).

Learning rate: the sPU-Net paper's "1e-4, lowered to 1e-6 in 5 steps" over
240k (the HPU-Net paper prints "0.5e-5 -> 1e-6", which conflicts; we follow
the original paper). Boundaries not given: evenly spaced 40k ... 200k, each
drop 10^-0.4 (about 2.5x): 1e-4, 4e-5, 1.6e-5, 6.3e-6, 2.5e-6, 1e-6.
"""

from hpunet import config_lib
import ml_collections
from ml_collections import config_dict


def get_config(arg=None):
  """LIDC sPU-Net; arg: None (paper) or "smoke"."""
  arg = config_lib.parse_arg(arg)
  config = ml_collections.ConfigDict()

  # --- Seed.
  config.seed = 0

  # --- Input.
  config.input = ml_collections.ConfigDict(dict(
      name='lidc',  # task: selects the label logic
      dataset='lidc/crops',  # TFDS name/config (datasets/)
      data_dir=config_dict.placeholder(str),  # None = TFDS default
      train_split="train",
      eval_split="validation",
      eval_seed=0,
      batch_size=32,  # global, over all hosts
      eval_batch_size=32,
      image_size=(180, 180),  # stored size
      crop_size=(128, 128),  # network input
      channels=1,
      num_classes=2,
      prepare_if_missing=False,
      num_parallel_calls=-1,
      prefetch=2,
      augment=dict(
          mirror=True,
          rotation_deg=15.0,
          shear_deg=5.0,
          scale_range=(0.9, 1.1),
          elastic_max_px=3.0,
          elastic_spacing_px=32.0,
          random_crop=True,
      ),
  ))

  # Pipeline shares that make up one global batch (None: one per process).
  # Set it to make the data stream independent of the number of hosts.
  config.data_shards = config_dict.placeholder(int)

  # --- Model: keys = ProbUNet constructor arguments.
  config.model = ml_collections.ConfigDict(dict(
      name="spunet",
      channels_per_block=(32, 64, 128, 256, 512),
      convs_per_block=3,
      latent_dim=6,
      num_classes=2,
      num_fcomb_convs=3,
      fcomb_channels=32,
      resize_method="bilinear",
  ))

  # --- Loss: ELBO, beta = 1.
  config.loss = ml_collections.ConfigDict(dict(
      type="elbo",
      kappa=config_dict.placeholder(float),
      beta=1.0,
      top_k_percentage=config_dict.placeholder(float),
      deterministic_top_k=False,
      weight_decay=1e-5,
  ))

  # --- Optimizer and learning-rate schedule.
  config.optimizer = ml_collections.ConfigDict(
      dict(name="adam", b1=0.9, b2=0.999, eps=1e-8))
  config.lr_schedule = ml_collections.ConfigDict(dict(
      learning_rates=(1e-4, 4e-5, 1.6e-5, 6.3e-6, 2.5e-6, 1e-6),
      boundaries=(40_000, 80_000, 120_000, 160_000, 200_000),
  ))
  config.compute_dtype = "float32"

  # --- Durations.
  config.num_train_steps = 240_000
  config.log_every_steps = 100
  config.checkpoint_every_steps = 5_000
  config.max_checkpoints_to_keep = 3
  config.summary_images_every_steps = 5_000
  config.summary_num_samples = 3
  config.prefetch = 2

  # --- Evals.
  config.evals = ml_collections.ConfigDict(dict(
      val=dict(split="validation[:512]", every_steps=10_000,
               batch_size=32, num_samples=16),
  ))

  # --- Mesh.
  config.mesh = ml_collections.ConfigDict(
      dict(data=-1, spatial=1, min_rows_per_shard=2))

  if arg == "smoke":
    config.input.batch_size = 4
    config.input.crop_size = (32, 32)
    config.model.channels_per_block = (4, 8, 8)
    config.model.convs_per_block = 2
    config.model.latent_dim = 2
    config.model.fcomb_channels = 4
    config_lib.smoke_durations(config)
  return config
