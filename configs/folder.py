# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""HPU-Net on your own images with K grader masks each (datasets/folder):
the LIDC model and training of the HPU-Net paper (Table 1, Appendix D.1,
`configs/lidc.py`) on a `folder/<name>` dataset.

Commands (README, "Train on your own annotations"):

  python -m hpunet.build_dataset folder/mydata --manual_dir=~/my_annotations
  python -m hpunet.train --config=configs/folder.py \
      --config.input.dataset=folder/mydata \
      --config.input.image_size='(128, 128)' \
      --config.input.crop_size='(128, 128)' --workdir=/tmp/hpunet/mydata
  python -m hpunet.sample --workdir=/tmp/hpunet/mydata --image=case.png \
      --center_crop --out=/tmp/samples

`image_size` is your images' (H, W) (`build_dataset` prints it; a mismatch
is refused before training with both sizes named), `crop_size` the network
input: random crops in training, centre crops in evaluation and sampling. It
must divide by 128 (8 scales; 2**(scales - 1)). RGB images: add
`--config.input.channels=3`. Multi-class masks (a `classes.txt` of C names,
datasets/folder): add `--config.input.num_classes=C
--config.model.num_classes=C` (`build_dataset` prints them; the dataset's C
is checked against them); GED², Hungarian IoU and IoU_rec then use
d = 1 - mean IoU over the foreground classes present. Shorter runs:
`--config.num_train_steps=N` (the learning-rate drops are at fixed steps,
see lidc.py).

Variants: `:smoke` (tiny model, 32x32 crops, 6 steps):

  python -m hpunet.train --config=configs/folder.py:smoke \
      --config.input.dataset=folder/mydata \
      --config.input.image_size='(32, 32)' --workdir=/tmp/s

and `configs/folder_spunet.py` (the sPU-Net).

Expected cost: that of lidc.py at 128^2 (705 GFLOP per train step at batch
32, 20.6M parameters), scaling with the crop area.
"""

from hpunet import config_lib


def get_config(arg=None):
  """HPU-Net on a folder dataset; arg: None (LIDC setting) or "smoke"."""
  arg = config_lib.parse_arg(arg)
  # Model, loss, optimizer, durations, evals and mesh: those of lidc.py.
  config = config_lib.load_config("lidc", arg)

  # --- Input: your dataset (K grader masks, one drawn per step).
  config.input.name = "folder"  # task: graders; C classes from the dataset
  config.input.dataset = "folder/mydata"  # --config.input.dataset=folder/<name>
  config.input.image_size = (128, 128)  # your images' (H, W)
  config.input.crop_size = (32, 32) if arg == "smoke" else (128, 128)
  config.input.channels = 1  # 3 for RGB images
  # The dataset's classes (2: binary masks). C > 2 (classes.txt): set both.
  config.input.num_classes = config.model.num_classes = 2
  return config
