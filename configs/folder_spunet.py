# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""sPU-Net on your own images with K grader masks each (datasets/folder):
the LIDC sPU-Net of the HPU-Net paper (Table 1, Appendix D.1,
`configs/lidc_spunet.py`) on a `folder/<name>` dataset, with the input of
`configs/folder.py`.

Command (after `python -m hpunet.build_dataset folder/mydata ...`):

  python -m hpunet.train --config=configs/folder_spunet.py \
      --config.input.dataset=folder/mydata \
      --config.input.image_size='(128, 128)' \
      --config.input.crop_size='(128, 128)' --workdir=/tmp/hpunet/mydata_spunet

The crop must divide by 16 (5 scales). Smoke variant:

  python -m hpunet.train --config=configs/folder_spunet.py:smoke \
      --config.input.dataset=folder/mydata \
      --config.input.image_size='(32, 32)' --workdir=/tmp/s

Expected cost: that of lidc_spunet.py at 128^2 (1.5 TFLOP per train step at
batch 32, 27.5M parameters), scaling with the crop area.
"""

from hpunet import config_lib


def get_config(arg=None):
  """sPU-Net on a folder dataset; arg: None (LIDC setting) or "smoke"."""
  arg = config_lib.parse_arg(arg)
  config = config_lib.load_config("folder", arg)
  # Model, loss and learning-rate schedule: those of lidc_spunet.py.
  spunet = config_lib.load_config("lidc_spunet", arg)
  config.model = spunet.model
  config.loss = spunet.loss
  config.lr_schedule = spunet.lr_schedule
  return config
