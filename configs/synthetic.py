# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""HPU-Net on the synthetic ambiguous-segmentation dataset: THE DEFAULT.

Not a paper experiment: a CPU-sized stand-in for `lidc.py` with the same
structure (scalar latents on 1x1, 2x2, 4x4, 8x8 grids, GECO, 2% top-k),
on 64x64 images whose label distribution is known exactly (18 modes, see
datasets/synthetic), so GED^2 against the true distribution is measurable.

Command (generates the dataset on first use, ~10 s):

  python -m hpunet.train --config=configs/synthetic.py \
      --workdir=/tmp/hpunet/synthetic

Long variant (6000 steps, learning-rate drop at 4200; about 25 minutes; the
"does more training help" row of the README's results):

  python -m hpunet.train --config=configs/synthetic.py:long \
      --workdir=/tmp/hpunet/synthetic_long

128x128 variant (`synthetic/s128`: the faint spots have twice the radius,
so the image shows them; batch 8, one more scale; the "larger images" row
of the README's results):

  python -m hpunet.train --config=configs/synthetic.py:s128 \
      --workdir=/tmp/hpunet/synthetic_s128

Smoke variant (32x32, tiny model, 6 steps, under a minute):

  python -m hpunet.train --config=configs/synthetic.py:smoke --workdir=/tmp/s

Expected cost: 2.9 GFLOP per step (batch 16); on a shared 2-core CPU 0.2-0.25
s per step, 9 minutes wall for the whole run (dataset generation, compilation,
2000 steps, two evaluations, checkpoints; measured).

Expected result (measured, seed 0, `validation[:64]`, 8 samples; logged as
`val/rec_iou`, `val/ged_modes`, `val/hm_iou`): IoU_rec 0.94 / GED^2 against
the known modes 0.109 / HM-IoU 0.72 at step 1000 and 0.97 / 0.107 / 0.72 at
step 2000 (the smoke model after 60 steps: 0.0 / 1.07 / 0.00). With
kappa = 0.05 on the top-2% pixels the multiplier is still rising at the end
(1 -> ~6), the first phase of the paper's LIDC curves. The 3-seed test-split
results against the sPU-Net and the ablations: README, "Results on the
synthetic benchmark" (experiments/synthetic_results.py).
"""

from hpunet import config_lib
import ml_collections
from ml_collections import config_dict


def get_config(arg=None):
  """Synthetic HPU-Net; arg: None (default run), "long", "s128" or "smoke"."""
  arg = config_lib.parse_arg(arg, ("smoke", "long", "s128"))
  config = ml_collections.ConfigDict()

  # --- Seed.
  config.seed = 0

  # --- Input.
  config.input = ml_collections.ConfigDict(dict(
      name="synthetic",  # task: selects the label logic
      dataset="synthetic/s64",  # TFDS name/config (datasets/synthetic)
      data_dir=config_dict.placeholder(str),  # None = TFDS default
      train_split="train",
      eval_split="validation",
      eval_seed=0,
      batch_size=16,  # global, over all hosts
      eval_batch_size=16,
      image_size=(64, 64),
      crop_size=(64, 64),
      channels=1,
      num_classes=2,
      prepare_if_missing=True,  # generated locally in seconds
      num_parallel_calls=-1,
      prefetch=2,
      augment=dict(mirror=True, rotation_deg=10.0, scale_range=(0.9, 1.1)),
  ))

  # Pipeline shares that make up one global batch (None: one per process).
  # Set it to make the data stream independent of the number of hosts.
  config.data_shards = config_dict.placeholder(int)

  # --- Model: keys = HierarchicalProbUNet constructor arguments.
  config.model = ml_collections.ConfigDict(dict(
      name="hpunet",
      latent_dims=(1, 1, 1, 1),  # 1x1, 2x2, 4x4, 8x8
      channels_per_block=(8, 16, 32, 32, 32, 32, 32),  # 7 scales, 64 -> 1
      down_channels_per_block=(4, 8, 16, 16, 16, 16, 16),
      num_classes=2,
      convs_per_block=3,
      blocks_per_level=1,
      # Latent level dropout (not in the papers; 0 = off): see
      # model.HierarchicalProbUNet.train_outputs and the README's results.
      level_dropout_rate=0.0,
      level_dropout_from=1,
      # The 1x1 latent also at every finer decoder scale (not in the papers;
      # off): see model.HierarchicalProbUNet and the README's results.
      global_latent_skips=False,
      # The finer levels' posterior sees only what the coarser levels leave
      # unexplained (not in the papers; 0 = off): see
      # model.HierarchicalProbUNet and the README's results, round 9.
      residual_posterior_from=0,
      # The posterior's encoder halves the resolution by max pooling ("max";
      # not in the papers) instead of the official average pooling
      # ("mean"): see model.HierarchicalProbUNet and the README's results,
      # round 12.
      posterior_pooling="mean",
  ))

  # --- Loss.
  config.loss = ml_collections.ConfigDict(dict(
      type="geco",
      kappa=0.05,
      decay=0.99,
      rate=1e-2,
      beta=config_dict.placeholder(float),
      top_k_percentage=0.02,
      deterministic_top_k=False,
      weight_decay=1e-5,
      # Options beyond the papers, off (hpunet/objectives.py).
      kl_warmup_steps=0, free_bits=0.0, kl_balancing=False,
      # One KL factor per latent level, coarse -> fine (None = none).
      kl_level_weights=config_dict.placeholder(tuple),
      # (start, end): level_dropout_rate decays between these steps, to
      # level_dropout_final_scale times itself (0 = to no dropout).
      level_dropout_decay_steps=(0, 0), level_dropout_final_scale=0.0,
  ))

  # --- Optimizer and learning-rate schedule.
  config.optimizer = ml_collections.ConfigDict(
      dict(name="adam", b1=0.9, b2=0.999, eps=1e-8))
  config.lr_schedule = ml_collections.ConfigDict(dict(
      learning_rates=(1e-3, 3e-4),
      boundaries=(1_400,),
  ))
  config.compute_dtype = "float32"

  # --- Durations.
  config.num_train_steps = 2_000
  config.log_every_steps = 50
  config.checkpoint_every_steps = 500
  config.max_checkpoints_to_keep = 3
  config.summary_images_every_steps = 500
  config.summary_num_samples = 3
  config.prefetch = 2

  # --- Evals: IoU_rec (4 graders), GED^2 against the 18 known modes,
  # HM-IoU against the 4 graders, on a fixed subset of the validation split.
  config.evals = ml_collections.ConfigDict(dict(
      val=dict(split="validation[:64]", every_steps=1_000, batch_size=16,
               num_samples=8),
  ))

  # --- Mesh.
  config.mesh = ml_collections.ConfigDict(
      dict(data=-1, spatial=1, min_rows_per_shard=2))

  if arg == "long":  # 3x the steps, same schedule shape (~25 min on CPU)
    config.num_train_steps = 6_000
    config.lr_schedule.boundaries = (4_200,)
    config.checkpoint_every_steps = 1_000
    config.evals.val.every_steps = 2_000
  if arg == "s128":  # 128x128 images: spots of radius 3.2 px instead of 1.6
    config.input.dataset = "synthetic/s128"
    config.input.image_size = (128, 128)
    config.input.crop_size = (128, 128)
    # Half the batch keeps a step at about 2x the s64 step's FLOPs.
    config.input.batch_size = 8
    config.input.eval_batch_size = 8
    config.evals.val.batch_size = 8
    # One more scale (128 -> 1); the latent grids stay 1x1 ... 8x8.
    config.model.channels_per_block = (8, 16, 32, 32, 32, 32, 32, 32)
    config.model.down_channels_per_block = (4, 8, 16, 16, 16, 16, 16, 16)
  if arg == "smoke":
    config.input.dataset = "synthetic/s32"
    config.input.image_size = (32, 32)
    config.input.crop_size = (32, 32)
    config.input.batch_size = 4
    config.model.channels_per_block = (4, 8, 8, 8, 8, 8)  # 32 -> 1x1
    config.model.down_channels_per_block = (2, 4, 4, 4, 4, 4)
    config.model.convs_per_block = 2
    config.model.blocks_per_level = 1
    config_lib.smoke_durations(config)
  return config
