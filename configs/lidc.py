# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""HPU-Net on LIDC-IDRI crops: HPU-Net paper Table 1 (LIDC rows), Table 2
(first row), Fig. 7 (training curves), Appendix D.1.

Command (after building the dataset, see datasets/lidc):

  python -m hpunet.train --config=configs/lidc.py --workdir=/tmp/hpunet/lidc

Smoke variant (tiny model, 32x32 crops, 6 steps; any laptop, ~1 minute):

  python -m hpunet.train --config=configs/lidc.py:smoke --workdir=/tmp/s

Expected result (paper, 10 seeds): IoU_rec 0.97, GED^2 0.27, HM-IoU 0.53 on
the test set (`evals.val` tracks the validation subset during training).

Expected cost: 705 GFLOP per train step at batch 32 (22 GFLOP per 128^2
example), 169 PFLOP for 240k steps, about 2.3 accelerator-hours (XLA cost
analysis of forward + backward + Adam, `python benchmarks/train_step.py
--flops_only`; accelerator-hours assume a sustained 20 TFLOP/s per chip, a
planning figure, not a measurement). 20.6M parameters. On a 2-core CPU the
step takes 1.1 s at batch 4 (measured): not feasible there.

Learning rate (the paper: "1e-4, lowered to 0.5e-5 in 4 steps over 240k
iterations"; boundaries not given): 4 drops at evenly spaced boundaries
48k / 96k / 144k / 192k (five equal segments), values 1e-4, 5e-5, 2.5e-5,
1e-5, 5e-6 (roughly halving; the last equals the paper's 0.5e-5).
"""

from hpunet import config_lib
import ml_collections
from ml_collections import config_dict


def get_config(arg=None):
  """LIDC HPU-Net; arg: None (paper) or "smoke"."""
  arg = config_lib.parse_arg(arg)
  config = ml_collections.ConfigDict()

  # --- Seed. Also seeds the input pipeline (deterministic in (seed, step)).
  config.seed = 0

  # --- Input (batch_size is global, over all hosts).
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

  # --- Model: keys = HierarchicalProbUNet constructor arguments.
  config.model = ml_collections.ConfigDict(dict(
      name="hpunet",
      latent_dims=(1, 1, 1, 1),  # 1x1, 2x2, 4x4, 8x8 scalar latents (85)
      channels_per_block=(24, 48, 96, 192, 192, 192, 192, 192),  # 8 scales
      down_channels_per_block=(12, 24, 48, 96, 96, 96, 96, 96),
      num_classes=2,
      convs_per_block=3,
      blocks_per_level=3,
  ))

  # --- Loss: GECO with a batch-global stochastic top-k of 2%.
  config.loss = ml_collections.ConfigDict(dict(
      type="geco",
      kappa=0.05,  # per selected pixel
      decay=0.99,
      rate=1e-2,
      beta=config_dict.placeholder(float),
      top_k_percentage=0.02,
      deterministic_top_k=False,
      weight_decay=1e-5,
      # Options beyond the papers, off (hpunet/objectives.py).
      kl_warmup_steps=0, free_bits=0.0, kl_balancing=False,
      kl_level_weights=config_dict.placeholder(tuple),
  ))

  # --- Optimizer and learning-rate schedule.
  config.optimizer = ml_collections.ConfigDict(
      dict(name="adam", b1=0.9, b2=0.999, eps=1e-8))
  config.lr_schedule = ml_collections.ConfigDict(dict(
      learning_rates=(1e-4, 5e-5, 2.5e-5, 1e-5, 5e-6),
      boundaries=(48_000, 96_000, 144_000, 192_000),
  ))
  config.compute_dtype = "float32"  # "bfloat16" on TPU: params stay f32.

  # --- Durations.
  config.num_train_steps = 240_000
  config.log_every_steps = 100
  config.checkpoint_every_steps = 5_000
  config.max_checkpoints_to_keep = 3
  config.summary_images_every_steps = 5_000
  config.summary_num_samples = 3
  config.prefetch = 2

  # --- Evals: IoU_rec (all 4 graders), GED^2 and HM-IoU on a fixed subset.
  config.evals = ml_collections.ConfigDict(dict(
      val=dict(split="validation[:512]", every_steps=10_000,
               batch_size=32, num_samples=16),
  ))

  # --- Mesh ('data', 'spatial'): data parallel only.
  config.mesh = ml_collections.ConfigDict(
      dict(data=-1, spatial=1, min_rows_per_shard=2))

  if arg == "smoke":
    config.input.batch_size = 4
    config.input.crop_size = (32, 32)
    config.model.channels_per_block = (4, 8, 8, 8, 8, 8)  # 32 -> 1x1
    config.model.down_channels_per_block = (2, 4, 4, 4, 4, 4)
    config.model.convs_per_block = 2
    config.model.blocks_per_level = 1
    config_lib.smoke_durations(config)
  return config
