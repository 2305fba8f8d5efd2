# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""HPU-Net on Cityscapes car instances at 512x1024: HPU-Net paper Table 1
(Cityscapes rows), Appendix D.3. Trained with spatial partitioning.

Command (after building the dataset, see datasets/hpunet_cityscapes), on an
accelerator slice of N chips (data = N / 4, spatial = 4; see "Memory" below
for how many examples a 4-chip group can hold):

  HPUNET_JAX_INIT=1 python -m hpunet.train --config=configs/cityscapes.py \
      --workdir=gs://BUCKET/hpunet/cityscapes

Smoke variant (tiny model, 32x64, 6 steps; spatial=1 so that it runs on one
device, add --config.mesh.spatial=2 with >= 2 devices):

  python -m hpunet.train --config=configs/cityscapes.py:smoke --workdir=/tmp/s

Expected result (paper): IoU_rec 0.62, adapted Rand error 0.13, AP50 46.8.

Expected cost: 114 TFLOP per train step at batch 128 (892 GFLOP per 512x1024
example), 11.4 EFLOP for 100k steps, about 160 accelerator-hours (XLA cost
analysis of forward + backward + Adam, `python
benchmarks/train_step.py --flops_only`; accelerator-hours assume a sustained
20 TFLOP/s per chip, a planning figure, not a measurement). 29.5M parameters.
Memory (float32, XLA's per-device temp memory, benchmarks/spatial_memory.py):
4.3 GiB per example unpartitioned, 1.2 GiB per example per device with
spatial = 4 (0.28x), and linear in the examples per 4-chip group: batch 128
on 128 chips (4 examples per group) needs about 5 GiB per chip.

Model: 9 scales 512x1024 -> 2x4 bottom, widths 32 doubled until the 4th
down-sampling (cap 256), 4 scalar latent scales on 2x4, 4x8, 8x16, 16x32
grids, 2 res-blocks per scale. 24 classes = 19 trainIds + 5 random car ids
(the car class is kept beside the car ids).

Spatial partitioning (config.mesh.spatial = 4): every batch is split on N over
'data' and on H over 'spatial'. Feature maps that split evenly with at least
config.mesh.min_rows_per_shard = 2 rows per shard (heights 512 ... 8) stay
split; the 4x8 and 2x4 levels are resharded to P('data') (replicated over
'spatial') by the activation constraint (see hpunet/sharding.py). The
batch-global top-k is exact (same pixels as unpartitioned).

Learning rate (paper): 2e-4, halved after 70k of 100k steps.
"""

from hpunet import config_lib
import ml_collections
from ml_collections import config_dict


def get_config(arg=None):
  """Cityscapes-cars HPU-Net; arg: None (paper) or "smoke"."""
  arg = config_lib.parse_arg(arg)
  config = ml_collections.ConfigDict()

  # --- Seed.
  config.seed = 0

  # --- Input (batch_size is global).
  config.input = ml_collections.ConfigDict(dict(
      name='cityscapes_cars',  # task: selects the label logic
      dataset='hpunet_cityscapes/cars',  # TFDS name/config (datasets/)
      data_dir=config_dict.placeholder(str),  # None = TFDS default
      train_split="train",
      eval_split="validation",
      eval_seed=0,
      batch_size=128,  # global, over all hosts
      eval_batch_size=128,
      image_size=(512, 1024),  # stored size
      crop_size=(512, 1024),  # network input
      channels=3,
      num_classes=24,
      car_group_pixels="mask",  # car pixels without instance: no loss
      prepare_if_missing=False,
      num_parallel_calls=-1,
      prefetch=2,
      augment=dict(
          mirror=True,
          rotation_deg=10.0,
          shear_deg=5.0,
          scale_range=(0.8, 1.2),
          elastic_max_px=8.0,
          elastic_spacing_px=128.0,
          translate_px=32.0,
          brightness=0.1,
          contrast=0.1,
          saturation=0.1,
          gamma_range=(0.7, 1.5),
          gamma_prob=0.3,
      ),
  ))

  # Pipeline shares that make up one global batch (None: one per process).
  # Set it to make the data stream independent of the number of hosts.
  config.data_shards = config_dict.placeholder(int)

  # --- Model.
  config.model = ml_collections.ConfigDict(dict(
      name="hpunet",
      latent_dims=(1, 1, 1, 1),
      channels_per_block=(32, 64, 128, 256, 256, 256, 256, 256, 256),
      down_channels_per_block=(16, 32, 64, 128, 128, 128, 128, 128, 128),
      num_classes=24,
      convs_per_block=3,
      blocks_per_level=2,
  ))

  # --- Loss.
  config.loss = ml_collections.ConfigDict(dict(
      type="geco",
      kappa=0.77,
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
      learning_rates=(2e-4, 1e-4),
      boundaries=(70_000,),
  ))
  config.compute_dtype = "float32"

  # --- Durations.
  config.num_train_steps = 100_000
  config.log_every_steps = 100
  config.checkpoint_every_steps = 2_000
  config.max_checkpoints_to_keep = 3
  config.summary_images_every_steps = 5_000
  config.summary_num_samples = 3
  config.prefetch = 2

  # --- Evals: IoU_rec over the 5 car ids, ignore pixels excluded.
  config.evals = ml_collections.ConfigDict(dict(
      val=dict(split="validation[:128]", every_steps=10_000,
               batch_size=128, num_samples=4,
               class_ids=(19, 20, 21, 22, 23)),
  ))

  # --- Mesh: spatial partitioning over 4 devices per example group.
  config.mesh = ml_collections.ConfigDict(
      dict(data=-1, spatial=4, min_rows_per_shard=2))

  if arg == "smoke":
    config.input.batch_size = 4
    config.input.crop_size = (32, 64)
    config.model.channels_per_block = (4, 8, 8, 8, 8)  # 32x64 -> 2x4
    config.model.down_channels_per_block = (2, 4, 4, 4, 4)
    config.model.convs_per_block = 2
    config.model.blocks_per_level = 1
    config.mesh.spatial = 1
    config_lib.smoke_durations(config)
  return config
