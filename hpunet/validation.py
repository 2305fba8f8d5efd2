# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""One validation pass over everything a user can get wrong, before any work.

Every command calls its `check_*` function first, before it creates a folder,
reads data or compiles anything:

- `check_train(config, workdir)`: durations and intervals (> 0), batch sizes
  (divisible by the mesh's data devices), the mesh, image and model shapes,
  the loss, optimizer and schedule, dtypes, the data and work folders.
- `check_evaluate(...)`, `check_sample(...)`: the flags of the read-only
  commands (`num_samples >= 1`, the workdir holds checkpoints, output paths
  are folders) and the model part of the config.
- `check_image(image, source)`: finite values in [0, 1].
- `check_build_dataset(...)`: the dataset name, format and folders.
- `resume_mismatch(config, saved_config)`: the per-field difference between
  a config and the one a checkpoint was written with, for the fields that a
  resumed run cannot change (model, seed, task, input shape, loss type).

Each problem is one `errors.UserError` line naming the field (or flag), the
value and what was expected. Local paths are checked on disk; `gs://` paths
are left to the storage layer (checking them would need a network call).

Plain Python / NumPy (the mesh check builds a `jax.sharding.Mesh`, which
compiles nothing).
"""

from collections.abc import Iterable, Mapping, Sequence
import json
import math
import os
from typing import Any

import numpy as np

from hpunet import tasks
from hpunet.errors import UserError

COMPUTE_DTYPES = ("float32", "bfloat16")
LOSS_TYPES = ("geco", "elbo", "ce", "mheads")
# losses.WEIGHT_DECAY_MODES (this module imports no JAX at the top).
WEIGHT_DECAY_MODES = ("all", "spunet_reference")
# Fields a resumed run must keep: they fix the state's shapes, the RNG and
# data stream, or the task the checkpoint was trained on.
RESUME_FIELDS = ("model", "seed", "input.name", "input.dataset",
                 "input.crop_size", "input.channels", "loss.type")


def _is_int(value: Any) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_int(value: Any, field: str, *, minimum: int = 1,
              what: str = "") -> int:
  """`value` as an int >= minimum, or a UserError naming `field`."""
  if not _is_int(value) or value < minimum:
    raise UserError(f"{field}={value!r}: expected an integer >= {minimum}"
                    + (f" ({what})" if what else "") + ".")
  return int(value)


def check_number(value: Any, field: str, *, low: float | None = None,
                 high: float | None = None, low_open: bool = False,
                 what: str = "") -> float:
  """A finite number in [low, high] ((low, high] with low_open)."""
  ok = (isinstance(value, (int, float, np.number)) and
        not isinstance(value, bool) and math.isfinite(value))
  if ok and low is not None:
    ok = value > low if low_open else value >= low
  if ok and high is not None:
    ok = value <= high
  if not ok:
    lo = "(" if low_open else "["
    rng = (f"in {lo}{low if low is not None else '-inf'}, "
           f"{high if high is not None else 'inf'}]")
    raise UserError(f"{field}={value!r}: expected a finite number {rng}"
                    + (f" ({what})" if what else "") + ".")
  return float(value)


# ----------------------------------------------------------------------------
# Paths.
# ----------------------------------------------------------------------------


def _is_url(path: str) -> bool:
  return "://" in path


def check_output_dir(path: Any, field: str) -> None:
  """A folder that exists and is writable, or can be created."""
  if not isinstance(path, str) or not path:
    raise UserError(f"{field}={path!r}: expected a folder path.")
  if _is_url(path):
    return
  p = os.path.abspath(os.path.expanduser(path))
  if os.path.exists(p):
    if not os.path.isdir(p):
      raise UserError(f"{field}={path}: is a file; expected a folder.")
    if not os.access(p, os.W_OK | os.X_OK):
      raise UserError(f"{field}={path}: the folder is not writable.")
    return
  parent = os.path.dirname(p)
  while parent and not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise UserError(f"{field}={path}: {parent} is a file; expected a folder.")
  if not os.access(parent, os.W_OK | os.X_OK):
    raise UserError(f"{field}={path}: cannot create it ({parent} is not "
                    "writable).")


def check_existing_dir(path: Any, field: str, what: str = "") -> str:
  """A folder that must exist already (read-only use)."""
  if not isinstance(path, str) or not path:
    raise UserError(f"{field}={path!r}: expected a folder path.")
  if _is_url(path):
    return path
  p = os.path.expanduser(path)
  if not os.path.exists(p):
    raise UserError(f"{field}={path}: no such folder"
                    + (f" (expected {what})" if what else "") + ".")
  if not os.path.isdir(p):
    raise UserError(f"{field}={path}: is a file; expected a folder"
                    + (f" ({what})" if what else "") + ".")
  return path


def check_existing_file(path: Any, field: str,
                        suffixes: Sequence[str] = ()) -> str:
  if not isinstance(path, str) or not path:
    raise UserError(f"{field}={path!r}: expected a file path.")
  if suffixes and not path.lower().endswith(tuple(suffixes)):
    raise UserError(f"{field}={path}: expected a {' or '.join(suffixes)} "
                    "file.")
  if _is_url(path):
    return path
  if not os.path.exists(path):
    raise UserError(f"{field}={path}: no such file.")
  if os.path.isdir(path):
    raise UserError(f"{field}={path}: is a folder; expected a file.")
  return path


def _has_checkpoint(workdir: str) -> bool:
  """Whether `<workdir>/checkpoints/` holds a committed step (local only)."""
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    return False
  return any(name.isdigit() and
             os.path.isdir(os.path.join(directory, name))
             for name in os.listdir(directory))


def check_trained_workdir(workdir: Any, field: str = "--workdir") -> str:
  """A training workdir holding at least one checkpoint (never created)."""
  check_existing_dir(workdir, field, "a training workdir of hpunet.train")
  if not _is_url(workdir) and not _has_checkpoint(workdir):
    raise UserError(
        f"{field}={workdir}: no checkpoint in {workdir}/checkpoints; train "
        f"first with `python -m hpunet.train --config=... "
        f"--workdir={workdir}`.")
  return workdir


# ----------------------------------------------------------------------------
# Config sections.
# ----------------------------------------------------------------------------


def _check_size(value: Any, field: str) -> tuple[int, int]:
  if (not isinstance(value, (tuple, list)) or len(value) != 2 or
      not all(_is_int(v) and v > 0 for v in value)):
    raise UserError(f"{field}={value!r}: expected (height, width), two "
                    "integers > 0.")
  return int(value[0]), int(value[1])


def input_size(config) -> tuple[int, int]:
  """The network input (H, W): `crop_size`, else `image_size`."""
  inp = config.input
  size = inp.get("crop_size") or inp.get("image_size")
  field = "config.input.crop_size" if inp.get("crop_size") else (
      "config.input.image_size")
  if size is None:
    raise UserError("config.input.crop_size=None: expected (height, width), "
                    "the network input size.")
  return _check_size(size, field)


def check_model(config) -> None:
  """Model, input shape and loss: what restoring or sampling needs."""
  from hpunet import networks as networks_lib  # pylint: disable=g-import-not-at-top
  if config.get("model") is None:
    raise UserError("config.model is missing: expected the model section.")
  try:
    networks_lib.model_kwargs(config.model)
  except ValueError as e:
    raise UserError(str(e)) from None
  h, w = input_size(config)
  image_size = config.input.get("image_size")
  if config.input.get("crop_size") and image_size:
    ih, iw = _check_size(image_size, "config.input.image_size")
    if h > ih or w > iw:
      raise UserError(
          f"config.input.crop_size={tuple(config.input.crop_size)}: expected "
          f"at most config.input.image_size={(ih, iw)}.")
  channels = config.input.get("channels")
  if channels is not None:
    check_int(channels, "config.input.channels", what="image channels")
  num_classes = check_int(config.model.get("num_classes"),
                          "config.model.num_classes", minimum=2)
  in_classes = config.input.get("num_classes")
  if in_classes is not None and in_classes != num_classes:
    raise UserError(
        f"config.model.num_classes={num_classes}: expected "
        f"config.input.num_classes={in_classes}.")
  if config.input.get("name") in tasks.TASKS:
    try:  # fixed by the task, or (`folder`) the dataset's C >= 2
      tasks.get(config.input.name, num_classes=num_classes)
    except ValueError as e:
      raise UserError(str(e)) from None
  channels_per_block = config.model.get("channels_per_block")
  if (not isinstance(channels_per_block, (tuple, list)) or
      not channels_per_block or
      not all(_is_int(c) and c > 0 for c in channels_per_block)):
    raise UserError(f"config.model.channels_per_block={channels_per_block!r}:"
                    " expected a non-empty tuple of integers > 0.")
  down = 2**(len(channels_per_block) - 1)
  if h % down or w % down:
    raise UserError(
        f"config.input.crop_size={(h, w)}: expected a multiple of "
        f"2**(len(config.model.channels_per_block) - 1) = {down} for a "
        f"{len(channels_per_block)}-scale U-Net.")
  rate = config.model.get("level_dropout_rate")
  if rate:  # latent level dropout (model.py), off when absent or 0
    check_number(rate, "config.model.level_dropout_rate", low=0, high=1,
                 what="a probability per example, below 1")
    if rate >= 1:
      raise UserError(f"config.model.level_dropout_rate={rate!r}: expected a "
                      "probability below 1 (1 would never use the posterior's"
                      " fine levels).")
    levels = len(config.model.get("latent_dims") or ())
    start = config.model.get("level_dropout_from", 1)
    if not _is_int(start) or not 1 <= start < levels:
      raise UserError(
          f"config.model.level_dropout_from={start!r}: expected an integer "
          f"in [1, {levels - 1}] (the first of the {levels} latent levels, "
          "coarse -> fine, that is dropped).")
  if config.model.get("global_latent_skips"):  # model.py option, off if absent
    dims = tuple(config.model.get("latent_dims") or ())
    if not dims or not dims[0]:
      raise UserError(
          "config.model.global_latent_skips=True: expected a latent on the "
          f"most global level, but config.model.latent_dims={dims!r} has "
          "none there (its first entry must be > 0).")
  start = config.model.get("residual_posterior_from")
  if start:  # model.py option, off when absent or 0
    levels = len(config.model.get("latent_dims") or ())
    if not _is_int(start) or not 1 <= start < levels:
      raise UserError(
          f"config.model.residual_posterior_from={start!r}: expected 0 (off)"
          f" or an integer in [1, {levels - 1}] (the first of the {levels} "
          "latent levels, coarse -> fine, whose posterior sees the residual).")
  from hpunet import model as hpu_model  # pylint: disable=g-import-not-at-top
  pooling = config.model.get("posterior_pooling", "mean")
  if pooling not in hpu_model.POOLING:  # model.py option, "mean" if absent
    raise UserError(
        f"config.model.posterior_pooling={pooling!r}: expected one of "
        f"{sorted(hpu_model.POOLING)} ('mean': the papers' average pooling).")
  try:  # The constructor's own argument checks (no parameters are made).
    networks_lib.make_networks(config.model)
  except ValueError as e:
    raise UserError(str(e)) from None
  _check_unlabelled_pixels(config)
  _check_loss(config)


def _check_unlabelled_pixels(config) -> None:
  """On tasks with ignore labels the sPU-Net posterior must not see class 0
  (Cityscapes: road) where the label is unknown."""
  task = tasks.TASKS.get(config.input.get("name"))
  if (config.model.get("name") != "spunet" or task is None or
      task.ignore_id is None):
    return
  value = config.model.get("unlabelled_pixels", "class_0")
  if value != "no_class":
    raise UserError(
        f"config.model.unlabelled_pixels={value!r}: expected 'no_class' for "
        f"task {task.name!r}, whose ignore pixels would otherwise look like "
        "class 0 to the posterior.")


def _check_loss(config) -> None:
  loss = config.get("loss")
  if loss is None:
    raise UserError("config.loss is missing: expected the loss section.")
  kind = loss.get("type")
  if kind not in LOSS_TYPES:
    raise UserError(f"config.loss.type={kind!r}: expected one of "
                    f"{LOSS_TYPES}.")
  model_name = (config.get("model") or {}).get("name")
  if model_name is not None:
    from hpunet import networks as networks_lib  # pylint: disable=g-import-not-at-top
    allowed = networks_lib.loss_types(model_name)
    if kind not in allowed:
      raise UserError(f"config.loss.type={kind!r}: expected one of {allowed} "
                      f"for config.model.name={model_name!r}.")
  if kind in ("ce", "mheads"):  # models without a posterior: no KL term
    if kind == "mheads":
      eps = loss.get("epsilon")
      if not (isinstance(eps, (int, float, np.number)) and
              not isinstance(eps, bool) and math.isfinite(eps) and
              0 <= eps < 1):
        raise UserError(
            f"config.loss.epsilon={eps!r}: expected a number in [0, 1) (the "
            "weight the non-best heads share; 0.05 in the paper).")
      if loss.get("top_k_percentage") is not None:
        raise UserError(
            f"config.loss.top_k_percentage={loss.top_k_percentage!r}: "
            "expected None for the M-heads loss.")
    for key in ("kl_warmup_steps", "free_bits", "kl_balancing"):
      if loss.get(key):
        raise UserError(f"config.loss.{key}={loss.get(key)!r}: expected 0 / "
                        f"False: the {kind!r} loss has no KL term.")
  elif kind == "geco":
    check_number(loss.get("kappa"), "config.loss.kappa", low=0,
                 low_open=True, what="GECO's per-pixel reconstruction target")
    if loss.get("decay") is not None:
      check_number(loss.decay, "config.loss.decay", low=0, high=1)
    if loss.get("rate") is not None:
      check_number(loss.rate, "config.loss.rate", low=0, low_open=True)
  else:
    check_number(loss.get("beta"), "config.loss.beta", low=0,
                 what="the ELBO's KL weight")
  if loss.get("top_k_percentage") is not None:
    check_number(loss.top_k_percentage, "config.loss.top_k_percentage",
                 low=0, high=1, low_open=True)
  if loss.get("weight_decay") is not None:
    check_number(loss.weight_decay, "config.loss.weight_decay", low=0)
  mode = loss.get("weight_decay_mode", "all")
  if mode not in WEIGHT_DECAY_MODES:
    raise UserError(f"config.loss.weight_decay_mode={mode!r}: expected one "
                    f"of {WEIGHT_DECAY_MODES}.")
  # The KL options beyond the papers (objectives.py), off when absent.
  warmup = loss.get("kl_warmup_steps") or 0
  if isinstance(warmup, bool) or not isinstance(warmup, (int, np.integer)) \
      or warmup < 0:
    raise UserError(f"config.loss.kl_warmup_steps={warmup!r}: expected an "
                    "integer >= 0 (0 = no KL warm-up).")
  if loss.get("free_bits") is not None:
    check_number(loss.free_bits, "config.loss.free_bits", low=0,
                 what="nats per latent level, 0 = off")
  weights = loss.get("kl_level_weights")
  if weights:  # objectives.py option, off when absent or ()
    if (not isinstance(weights, (tuple, list)) or
        not all(isinstance(w, (int, float, np.integer, np.floating)) and
                not isinstance(w, bool) and w > 0 for w in weights)):
      raise UserError(f"config.loss.kl_level_weights={weights!r}: expected a "
                      "tuple of factors > 0, one per latent level (coarse -> "
                      "fine), or () for none.")
    from hpunet import networks as networks_lib  # pylint: disable=g-import-not-at-top
    levels = sum(1 for d in networks_lib.make_networks(config.model).latent_dims
                 if d > 0)
    if len(weights) != levels:
      raise UserError(f"config.loss.kl_level_weights={tuple(weights)!r}: "
                      f"expected {levels} factors, one per latent level of "
                      "the model (coarse -> fine).")
  decay = loss.get("level_dropout_decay_steps")
  is_pair = (isinstance(decay, (tuple, list)) and len(decay) == 2 and
             all(_is_int(x) for x in decay))
  if decay is not None and not (is_pair and tuple(decay) == (0, 0)):
    if not (is_pair and 0 <= decay[0] < decay[1]):
      raise UserError(
          f"config.loss.level_dropout_decay_steps={decay!r}: expected "
          "(start, end), integers with 0 <= start < end ((0, 0) = off).")
    if not config.model.get("level_dropout_rate"):
      raise UserError(
          f"config.loss.level_dropout_decay_steps={tuple(decay)!r} schedules"
          " the latent level dropout, but config.model.level_dropout_rate is"
          f" {config.model.get('level_dropout_rate')!r}: expected a rate > 0.")
  final = loss.get("level_dropout_final_scale")
  if final is not None:
    check_number(final, "config.loss.level_dropout_final_scale", low=0,
                 high=1, what="the rate's factor after the decay, 0 = off")
    if final and (decay is None or tuple(decay) == (0, 0)):
      raise UserError(
          f"config.loss.level_dropout_final_scale={final!r} is the factor "
          "after the level dropout decay, but config.loss."
          "level_dropout_decay_steps is off: expected (start, end) with "
          "start < end.")
  if loss.get("kl_balancing") and not warmup:
    raise UserError("config.loss.kl_balancing=True needs "
                    "config.loss.kl_warmup_steps > 0: as in NVAE, the "
                    "balancing acts during the KL warm-up only.")


def _check_optimizer(config) -> None:
  opt = config.get("optimizer")
  if opt is not None and opt.get("name") != "adam":
    raise UserError(f"config.optimizer.name={opt.get('name')!r}: expected "
                    "'adam'.")
  sched = config.get("lr_schedule")
  if sched is None:
    raise UserError("config.lr_schedule is missing: expected learning_rates "
                    "and boundaries.")
  rates = tuple(sched.learning_rates)
  bounds = tuple(sched.boundaries)
  for i, r in enumerate(rates):
    check_number(r, f"config.lr_schedule.learning_rates[{i}]", low=0,
                 low_open=True)
  if len(rates) != len(bounds) + 1:
    raise UserError(
        f"config.lr_schedule.boundaries={bounds}: expected "
        f"{len(rates) - 1} step(s), one fewer than the {len(rates)} "
        "learning_rates.")
  if (not all(_is_int(b) for b in bounds) or list(bounds) != sorted(
      set(bounds)) or (bounds and bounds[0] <= 0)):
    raise UserError(f"config.lr_schedule.boundaries={bounds}: expected "
                    "strictly increasing integer steps > 0.")


def _check_durations(config) -> None:
  check_int(config.get("num_train_steps"), "config.num_train_steps",
            what="training steps")
  check_int(config.get("log_every_steps"), "config.log_every_steps",
            what="steps between logged metrics")
  check_int(config.get("checkpoint_every_steps"),
            "config.checkpoint_every_steps",
            what="steps between checkpoints")
  if config.get("max_checkpoints_to_keep") is not None:
    check_int(config.max_checkpoints_to_keep,
              "config.max_checkpoints_to_keep")
  check_int(config.get("summary_images_every_steps", 0),
            "config.summary_images_every_steps", minimum=0,
            what="0 = no image summaries")
  check_int(config.get("summary_num_samples", 3),
            "config.summary_num_samples")
  check_int(config.get("prefetch", 2), "config.prefetch",
            what="batches transferred ahead")
  if not _is_int(config.get("seed")):
    raise UserError(f"config.seed={config.get('seed')!r}: expected an "
                    "integer.")
  dtype = config.get("compute_dtype", "float32")
  if dtype not in COMPUTE_DTYPES:
    raise UserError(f"config.compute_dtype={dtype!r}: expected one of "
                    f"{COMPUTE_DTYPES}.")


def _check_mesh_and_batches(config) -> None:
  """The mesh and every batch size against it (no compilation)."""
  import jax  # pylint: disable=g-import-not-at-top
  from hpunet import sharding  # pylint: disable=g-import-not-at-top
  mesh_config = config.get("mesh")
  if mesh_config is None:
    raise UserError("config.mesh is missing: expected data and spatial.")
  data = mesh_config.get("data")
  if not _is_int(data) or (data < 1 and data != -1):
    raise UserError(f"config.mesh.data={data!r}: expected an integer >= 1, "
                    "or -1 for all remaining devices.")
  check_int(mesh_config.get("spatial"), "config.mesh.spatial")
  min_rows = check_int(mesh_config.get("min_rows_per_shard", 2),
                       "config.mesh.min_rows_per_shard")
  batch = check_int(config.input.get("batch_size"),
                    "config.input.batch_size", what="the global batch")
  if config.input.get("eval_batch_size") is not None:
    check_int(config.input.eval_batch_size, "config.input.eval_batch_size")
  try:
    mesh = sharding.create_mesh(mesh_config)
    sharding.validate_mesh(
        mesh, global_batch_size=batch, image_shape=input_size(config),
        num_levels=len(config.model.channels_per_block),
        min_rows_per_shard=min_rows)
  except ValueError as e:
    raise UserError(str(e)) from None
  data_devices = sharding.data_size(mesh)
  shards = config.get("data_shards")
  if shards is not None:
    check_int(shards, "config.data_shards")
    if shards % jax.process_count():
      raise UserError(
          f"config.data_shards={shards}: expected a multiple of the number "
          f"of processes ({jax.process_count()}).")
  for name, ev in (config.get("evals") or {}).items():
    field = f"config.evals.{name}"
    check_int(ev.get("every_steps"), f"{field}.every_steps", minimum=0,
              what="0 = never")
    size = check_int(ev.get("batch_size"), f"{field}.batch_size")
    if size % data_devices:
      raise UserError(
          f"{field}.batch_size={size}: expected a multiple of the mesh's "
          f"data devices ({data_devices}).")
    check_int(ev.get("num_samples"), f"{field}.num_samples",
              what="prior samples per image")
    if not isinstance(ev.get("split"), str) or not ev.get("split"):
      raise UserError(f"{field}.split={ev.get('split')!r}: expected a TFDS "
                      "split, e.g. 'validation[:64]'.")


def _check_data_dir(config) -> None:
  data_dir = config.input.get("data_dir")
  if data_dir is None:
    return
  if not isinstance(data_dir, str) or not data_dir:
    raise UserError(f"config.input.data_dir={data_dir!r}: expected a folder "
                    "path (or None for TFDS' default).")
  if _is_url(data_dir):
    return
  path = os.path.expanduser(data_dir)
  if os.path.exists(path) and not os.path.isdir(path):
    raise UserError(f"config.input.data_dir={data_dir}: is a file; expected "
                    "a TFDS data folder.")
  if not os.path.exists(path):
    if config.input.get("prepare_if_missing", False):
      check_output_dir(data_dir, "config.input.data_dir")
    else:
      raise UserError(
          f"config.input.data_dir={data_dir}: no such folder; build the "
          "dataset there first with `python -m hpunet.build_dataset "
          f"{config.input.get('dataset')} --data_dir={data_dir}`.")


def check_train(config, workdir: Any) -> None:
  """Everything `train_and_evaluate(config, workdir)` can be given wrong."""
  if not isinstance(workdir, str) or not workdir:
    raise UserError(f"--workdir={workdir!r}: expected a folder path.")
  check_output_dir(workdir, "--workdir")
  if not _is_url(workdir) and os.path.isdir(os.path.join(workdir,
                                                         "checkpoints")):
    check_output_dir(os.path.join(workdir, "checkpoints"),
                     "--workdir (its checkpoints/)")
  _check_durations(config)
  check_model(config)
  _check_optimizer(config)
  _check_mesh_and_batches(config)
  _check_data_dir(config)


def check_evaluate(config, workdirs: Sequence[str], *, split: Any,
                   num_samples: Any, max_batches: Any, out_dir: Any,
                   cityscapes_gt_dir: Any,
                   ged_sample_counts: Sequence[Any] = ()) -> None:
  """The flags of `hpunet.evaluate` (before anything is read or created)."""
  for n in ged_sample_counts:  # strings from the comma-separated flag
    text = str(n).strip()
    if not text.isdigit() or int(text) < 1:
      given = ",".join(map(str, ged_sample_counts))
      raise UserError(f"--ged_sample_counts={given}: {n!r} is not a whole "
                      "number >= 1 (samples per image, e.g. 1,4,8,16).")
  if not workdirs:
    raise UserError("--workdir='': expected one or more comma-separated "
                    "training workdirs.")
  for workdir in workdirs:
    check_trained_workdir(workdir)
  if num_samples is not None:
    check_int(num_samples, "--num_samples", what="prior samples per image")
  if max_batches is not None:
    check_int(max_batches, "--max_batches")
  if not isinstance(split, str) or not split:
    raise UserError(f"--split={split!r}: expected a TFDS split, e.g. 'test'.")
  if out_dir:
    check_output_dir(out_dir, "--out_dir")
  if cityscapes_gt_dir:
    check_existing_dir(cityscapes_gt_dir, "--cityscapes_gt_dir",
                       "the Cityscapes gtFine/val folder")
  check_model(config)


def check_sample(workdir: Any, image: Any, out: Any, *,
                 num_samples: Any) -> None:
  """The flags of `hpunet.sample` (before anything is read or created)."""
  check_trained_workdir(workdir)
  check_existing_file(image, "--image", (".png", ".npy"))
  check_int(num_samples, "--num_samples", what="samples to draw")
  check_output_dir(out, "--out")


def check_image(image: np.ndarray, source: str) -> np.ndarray:
  """A float image with finite values in [0, 1]."""
  bad = ~np.isfinite(image)
  if bad.any():
    raise UserError(f"{source}: {int(bad.sum())} of {image.size} values are "
                    "NaN or infinite; expected finite values in [0, 1].")
  if image.size and (image.min() < 0 or image.max() > 1):
    raise UserError(f"{source}: float images must be in [0, 1], got "
                    f"[{image.min():.3g}, {image.max():.3g}] (or use uint8).")
  return image


def check_build_dataset(name: Any, *, manual_dir: Any, data_dir: Any,
                        file_format: Any, formats: Iterable[str]) -> None:
  """The arguments of `hpunet.build_dataset`."""
  formats = tuple(formats)
  if file_format not in formats:
    raise UserError(f"--file_format={file_format!r}: expected one of "
                    f"{formats}.")
  # --manual_dir is checked by `build_dataset.build`, whose message repeats
  # the builder's download instructions.
  del manual_dir
  if data_dir is not None:
    check_output_dir(data_dir, "--data_dir")
  if not isinstance(name, str) or not name:
    raise UserError(f"dataset name {name!r}: expected <name>[/<config>].")


# ----------------------------------------------------------------------------
# Resuming.
# ----------------------------------------------------------------------------


def _flatten(tree: Any, prefix: str) -> dict[str, Any]:
  if isinstance(tree, Mapping):
    out = {}
    for k, v in tree.items():
      out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out
  if isinstance(tree, tuple):
    tree = list(tree)
  return {prefix: tree}


def resume_mismatch(config, saved_config: Mapping[str, Any] | None,
                    fields: Sequence[str] = RESUME_FIELDS) -> list[str]:
  """`field: checkpoint -> config` for each resume field that differs."""
  if not saved_config:
    return []
  ours = json.loads(config.to_json_best_effort())
  # A model argument one side omits is the constructor's default (older
  # workdirs' configs lack the newer options).
  from hpunet import networks as networks_lib  # pylint: disable=g-import-not-at-top
  defaults = _flatten(networks_lib.constructor_defaults(
      _get_json(ours, "model.name")), "model")
  diffs = []
  for field in fields:
    mine = _flatten(_get_json(ours, field), field)
    theirs = _flatten(_get_json(saved_config, field), field)
    for key in sorted(set(mine) | set(theirs)):
      if mine.get(key, defaults.get(key)) != theirs.get(key, defaults.get(key)):
        diffs.append(f"{key}: {json.dumps(theirs.get(key))} -> "
                     f"{json.dumps(mine.get(key))}")
  return diffs


def _get_json(tree: Mapping[str, Any], dotted: str) -> Any:
  node: Any = tree
  for part in dotted.split("."):
    if not isinstance(node, Mapping):
      return None
    node = node.get(part)
  return node


def check_resume(config, saved_config: Mapping[str, Any] | None, *,
                 directory: str, step: int) -> None:
  """Refuses to resume a checkpoint written under different fixed fields."""
  diffs = resume_mismatch(config, saved_config)
  if diffs:
    raise UserError(
        f"Cannot resume the checkpoint at step {step} in {directory}: the "
        "config differs from the checkpoint's (checkpoint -> config) in "
        + "; ".join(diffs) + ". Use a new --workdir, or the checkpoint's "
        "values.")
