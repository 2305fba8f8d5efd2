# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""The facts of each task, in one place: `TASKS[config.input.name]`.

A task is what the input pipeline makes of a dataset (classes, label maps,
features) and what evaluating a model on it means (samples per image, the
classes of IoU_rec and of P(foreground), the clustering of instances).
Plain Python: imported by the data modules and by the evaluation alike.

Label logic per `kind` (the input pipeline dispatches on it):
- "graders" (synthetic, LIDC, your own `folder` data): masks of several
  graders; training draws one grader per example. Binary, except `folder`
  datasets with C > 2 classes (class ids 0..C-1, 0 = background; the count
  is `config.input.num_classes`, see `get`).
- "instances" (SNEMI3D): instance ids mapped to 15 random ids 1..15.
- "cars" (Cityscapes cars): the 19 trainIds, cars replaced by 5 random car
  ids 19..23.
- "flips" (Cityscapes flips): the 19 trainIds with the five stochastic class
  flips of the sPU-Net paper applied (`FLIPS`).
"""

import dataclasses
from typing import Optional

# Cityscapes: 19 trainIds, 255 = ignore; trainId 13 is "car".
NUM_TRAIN_IDS = 19
IGNORE_ID = 255
CAR_TRAIN_ID = 13
# The five car instance ids of the cars task (after the 19 trainIds).
CAR_IDS = (19, 20, 21, 22, 23)
# (trainId, p(flip), new id) of the sPU-Net paper's stochastic class flips, in
# mode-bit order, most significant first: sidewalk, person, car, vegetation,
# road.
FLIPS = ((1, 8 / 17, 19), (11, 7 / 17, 20), (13, 6 / 17, 21),
         (8, 5 / 17, 22), (0, 4 / 17, 23))
FLIP_SOURCE_IDS = tuple(f[0] for f in FLIPS)
FLIP_PROBS = tuple(f[1] for f in FLIPS)
FLIP_TARGET_IDS = tuple(f[2] for f in FLIPS)
# The 10 classes a flip can switch between (the modes' IoU is over these).
FLIP_CLASS_IDS = FLIP_SOURCE_IDS + FLIP_TARGET_IDS
# SNEMI3D: instances get ids 1..15 (0 = membrane / background).
NUM_SNEMI3D_IDS = 15
SNEMI3D_IDS = tuple(range(1, NUM_SNEMI3D_IDS + 1))


@dataclasses.dataclass(frozen=True)
class Task:
  """Everything that differs between tasks (see the module docstring)."""
  name: str
  kind: str  # "graders" | "instances" | "cars" | "flips"
  num_classes: int
  channels: int  # image channels
  train_features: tuple[str, ...]  # TFDS features the training reads
  eval_features: tuple[str, ...]  # ... and the evaluation
  num_samples: int  # the papers' number of samples per image at evaluation
  foreground: tuple[int, ...]  # classes summed for P(foreground) maps
  rec_class_ids: tuple[int, ...]  # classes whose IoU_rec is (nan-)averaged
  ignore_id: Optional[int] = None  # label value of unlabelled pixels
  # Instances: the ground-truth feature, Algorithm 1's Hamming threshold,
  # the ids the samples are collapsed to (None = every class) and what a
  # pixel with no neighbours becomes.
  instances_feature: Optional[str] = None
  alpha: Optional[int] = None
  instance_ids: Optional[tuple[int, ...]] = None
  empty_neighbourhood: str = "keep"
  subset_b: bool = False  # report the HPU-Net paper's LIDC subset B
  # The dataset knows its modes (synthetic): mode calibration and the
  # per-scale variance ratios are measured.
  known_modes: bool = False
  prepare_if_missing: bool = False  # small enough to build on first use
  # The class count is the dataset's (`folder`): `get(..., num_classes=C)`.
  classes_from_dataset: bool = False

  @property
  def has_graders(self) -> bool:
    return self.kind == "graders"


_GRADERS = ("image", "masks", "image_id")
TASKS = {
    "synthetic": Task(
        "synthetic", "graders", num_classes=2, channels=1,
        train_features=_GRADERS,
        eval_features=("image", "masks", "modes", "mode_probs", "image_id"),
        num_samples=16, foreground=(1,), rec_class_ids=(1,),
        known_modes=True, prepare_if_missing=True),
    "lidc": Task(
        "lidc", "graders", num_classes=2, channels=1,
        train_features=_GRADERS, eval_features=_GRADERS, num_samples=16,
        foreground=(1,), rec_class_ids=(1,), subset_b=True),
    # Your own images with K grader masks (datasets/folder): binary here,
    # C classes through `get(..., num_classes=C)`; the image channels come
    # from config.input.channels.
    "folder": Task(
        "folder", "graders", num_classes=2, channels=1,
        train_features=_GRADERS, eval_features=_GRADERS, num_samples=16,
        foreground=(1,), rec_class_ids=(1,), classes_from_dataset=True),
    "snemi3d": Task(
        "snemi3d", "instances", num_classes=NUM_SNEMI3D_IDS + 1, channels=1,
        train_features=("image", "instances", "image_id"),
        eval_features=("image", "instances", "image_id"), num_samples=16,
        foreground=SNEMI3D_IDS, rec_class_ids=SNEMI3D_IDS,
        instances_feature="instances", alpha=16),
    "cityscapes_cars": Task(
        "cityscapes_cars", "cars", num_classes=NUM_TRAIN_IDS + len(CAR_IDS),
        channels=3,
        train_features=("image", "label", "car_instances", "image_id"),
        eval_features=("image", "label", "car_instances", "image_id"),
        num_samples=32, foreground=CAR_IDS, rec_class_ids=CAR_IDS,
        ignore_id=IGNORE_ID, instances_feature="car_instances", alpha=32,
        instance_ids=CAR_IDS, empty_neighbourhood="background"),
    "cityscapes_flips": Task(
        "cityscapes_flips", "flips", num_classes=NUM_TRAIN_IDS + len(FLIPS),
        channels=3, train_features=("image", "label", "image_id"),
        eval_features=("image", "label", "image_id"), num_samples=16,
        foreground=FLIP_TARGET_IDS, rec_class_ids=FLIP_CLASS_IDS,
        ignore_id=IGNORE_ID),
}


def get(name: Optional[str], field: str = "config.input.name", *,
        num_classes: Optional[int] = None) -> Task:
  """The task called `name`; a clear error naming `field` otherwise.

  Args:
    name: a key of `TASKS`.
    field: the config field `name` came from (for the error).
    num_classes: `config.input.num_classes`; None = the task's. A task whose
      classes come from the dataset (`folder`) takes any C >= 2: its classes
      are 0..C-1 with 0 the background, so P(foreground) and IoU_rec are over
      1..C-1 (C = 2 is the binary task itself). Any other task must be given
      its own count.
  """
  if name not in TASKS:
    raise ValueError(f"{field}={name!r} is not a known task; expected one of "
                     f"{tuple(TASKS)}.")
  task = TASKS[name]
  if num_classes is None or num_classes == task.num_classes:
    return task
  if not task.classes_from_dataset:
    raise ValueError(f"config.input.num_classes={num_classes!r}: task "
                     f"{name!r} has {task.num_classes} classes.")
  if not isinstance(num_classes, int) or num_classes < 2:
    raise ValueError(f"config.input.num_classes={num_classes!r}: expected "
                     "the dataset's number of classes, an integer >= 2.")
  classes = tuple(range(1, num_classes))
  return dataclasses.replace(task, num_classes=num_classes,
                             foreground=classes, rec_class_ids=classes)


def for_input(input_config) -> Task:
  """The task of a `config.input` section (its `name` and `num_classes`)."""
  return get(input_config.get("name"), "config.input.name",
             num_classes=input_config.get("num_classes"))
