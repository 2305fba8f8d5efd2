# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Input pipelines: TFDS -> tf.data -> numpy batches for the trainer/evaluator.

Public API
----------
- `create_train_dataset(input_config, *, seed, start_step=0,
  process_index=None, process_count=None)`: infinite iterator of this
  process' share of every global training batch.
- `create_eval_dataset(input_config, *, split=None, process_index=None,
  process_count=None)`: finite iterator over this process' share of `split`;
  the last batch is padded, `batch_mask` is False on padding.
- `check_input_config(input_config)`: every check that needs no data.
- `num_eval_batches(input_config, *, split=None, process_count=None)`: how many
  batches `create_eval_dataset` yields (the same on every process).
- The tasks' facts (classes, features, flips, ids) live in `hpunet.tasks`.

Batches (numpy dicts; B = local batch = global batch // process_count):
- `image` float32 [B, h, w, C] in [0, 1]; `seg` int32 [B, h, w] in
  [0, num_classes); `mask` float32 [B, h, w] (1 = pixel counts in the loss; 0
  on augmentation padding, Cityscapes ignore pixels and, by default, car
  "group" pixels). `seg` is 0 wherever `mask` is 0.
- training, synthetic/LIDC only: `grader_id` int32 [B], the grader drawn.
- evaluation: `batch_mask` bool [B], `image_id` bytes [B]; synthetic/LIDC
  `masks` uint8 [B, h, w, G]; synthetic `modes` uint8 [B, M, h, w] and
  `mode_probs` float32 [B, M]; SNEMI3D `instances` int32 [B, h, w] (raw ids);
  Cityscapes `label` int32 [B, h, w] (unflipped trainIds, 255 = ignore); cars
  `car_instances` int32 [B, h, w].

`input_config` keys (ml_collections.ConfigDict)
------------------------------------------------
- `name`: task, a key of `tasks.TASKS`; selects the label logic below.
- `dataset`: TFDS name with config, e.g. `"synthetic/s128"`, `"lidc/crops"`,
  `"snemi3d"`, `"hpunet_cityscapes/cars"`, `"hpunet_cityscapes/flips"`. The builder is
  imported from `datasets/<name>/` (`hpunet.dataset_builders.load_builder_module`).
- `data_dir`: TFDS data dir (None = TFDS default / `$TFDS_DATA_DIR`).
- `train_split`, `eval_split`: TFDS split names (sub-split syntax allowed).
- `batch_size`: GLOBAL training batch; must be divisible by process_count.
- `eval_batch_size`: GLOBAL evaluation batch; divisible by process_count.
- `image_size`: (H, W) of the stored images; checked against the dataset.
- `crop_size`: (h, w) of the network input. Training samples an (augmented)
  h x w window of the H x W image; evaluation takes the centre crop
  `[(H - h) // 2 :][:h]` (LIDC 180 -> 128: `[26:154]`).
- `channels`: image channels (1 grey, 3 RGB); checked against the dataset.
- `num_classes`: must equal the task's (synthetic/LIDC 2, SNEMI3D 16,
  Cityscapes cars 24, Cityscapes flips 24); `folder`: the dataset's C
  (2 for binary masks), checked against the count stored with it
  (`tasks.get`).
- `eval_seed`: seed of the fixed random label draws in evaluation batches
  (grader for `seg`, SNEMI3D/car id mapping, Cityscapes flips).
- `car_group_pixels` (cityscapes_cars only): `"mask"` (default; car pixels
  without an instance id are left out of the loss) or `"keep"` (they keep the
  plain car class 13 in the loss).
- `prepare_if_missing`: prepare the dataset in `data_dir` if it is not there
  (default True for `synthetic`, which is generated locally in seconds; for
  multi-host runs build it beforehand with `python -m hpunet.build_dataset`).
- `num_parallel_calls`: tf.data map parallelism (-1 = AUTOTUNE).
- `prefetch`: batches to prefetch (-1 = AUTOTUNE).
- `augment` (ConfigDict; `augment.augment_off()` is the identity; the
  augmentation itself is `hpunet.augment`):
  the papers list the augmentations but give no values: the configs' values
  for Cityscapes flips follow the sPU-Net reference code (rotation +-pi/8,
  scale 0.8-1.2, elastic alpha 0-800 / sigma 25-35, gamma 0.7-1.5 with
  p = 0.3), the others are moderate choices of ours.
  - `mirror` (bool): left-right flip with p = 1/2.
  - `rotation_deg`: rotation angle ~ U(-r, r) degrees.
  - `shear_deg`: shear angle ~ U(-s, s) degrees (x += tan(angle) * y).
  - `scale_range`: (lo, hi); zoom factor log-uniform in [lo, hi] (> 1 zooms in).
  - `elastic_max_px`, `elastic_spacing_px`: elastic deformation. A coarse grid
    of i.i.d. N(0, a^2) displacement vectors, one per `elastic_spacing_px`
    pixels, is upsampled bicubically to every pixel; a ~ U(0, elastic_max_px)
    per example (like the reference code's alpha ~ U(0, 800) with sigma ~ 30,
    which gives ~0-4 px at 256 x 512). 0 = off.
  - `random_crop` (bool): the h x w window is placed uniformly inside the
    H x W image (the "randomly translated crop"); else centred.
  - `translate_px`: extra uniform translation of up to +-t px beyond that
    (introduces padding; used where crop == image size).
  - `brightness` (x += U(-b, b)), `contrast` (x = m + (x - m) U(1-c, 1+c), m
    the image mean), `saturation` (RGB: x = g + (x - g) U(1-s, 1+s), g the
    luma), `gamma_range` + `gamma_prob` (x = x^gamma, gamma ~ U(lo, hi), with
    probability p): colour augmentation, applied before the warp, then
    clipped to [0, 1].
  - `image_interpolation`: `"bilinear"` (default) or `"nearest"`. Labels are
    always resampled nearest-neighbour.

Per-task label logic
--------------------
- `synthetic`, `lidc`, `folder`: one grader drawn uniformly per example per
  step (`seg = masks[..., g]`), as in both papers; `folder` masks may hold
  class ids 0..C-1 (the trainer one-hot encodes `seg` over C classes).
- `snemi3d`: the instances of each example are mapped to random ids 1..15
  (0 = background stays 0), a fresh mapping every time the example is seen.
  Ids are assigned as `perm[rank mod 15] + 1` with `perm` a random permutation
  of 0..14 and `rank` a random order of the instances: distinct ids while an
  image has <= 15 instances, and an even random reuse beyond that (the paper
  does not say whether ids are drawn with replacement).
- `cityscapes_cars`: 24 classes. Trainids 0..18 stay; every car *instance*
  (`car_instances > 0`) gets a random car id in 19..23 (same scheme, 5 ids),
  so instance pixels never carry the plain car class 13. Class 13 stays an
  output (keeps the class ids of the contract and the 19 trainIds intact);
  car pixels without an instance (Cityscapes "group" regions) are masked out
  of the loss unless `car_group_pixels="keep"`.
- `cityscapes_flips`: after augmentation, the loss mask is computed from the
  UNflipped trainIds (`label == 255` -> 0), then each of sidewalk 1 -> 19,
  person 11 -> 20, car 13 -> 21, vegetation 8 -> 22, road 0 -> 23 flips
  independently per image with p = 8/17, 7/17, 6/17, 5/17, 4/17 (`tasks.FLIPS`).

Determinism, example order, resumption
--------------------------------------
- Process p reads `tfds.even_splits(train_split, process_count)[p]` (disjoint
  shares that together are the split). Its share is held in host memory in
  encoded form (PNG bytes; roughly the on-disk size: LIDC ~0.2 GB, Cityscapes
  cars ~3 GB / process_count) and sorted by `image_id`.
- Example order: the process' share of N examples is read in epochs; epoch e
  is the permutation `numpy.random.default_rng([seed, p, e]).permutation(N)`.
  The stream of epochs is cut into local batches of B examples without gaps,
  so local batch `s` holds stream positions [s B, (s + 1) B) (a batch may
  straddle two epochs).
- Every random draw of an example (grader, id mapping, flips, geometry,
  elastic field, colour) comes from stateless TF ops (Philox) seeded by
  `fold_in(fold_in((seed, 0), step), p * B + slot)`; nothing depends on
  shuffle-buffer or iterator state.
- Hence batch `s` is a function of (seed, s, p, process_count) only, and
  `create_train_dataset(..., start_step=k)` yields exactly the batches an
  uninterrupted iterator yields from step k on, without reading the skipped
  steps.
- Evaluation reads the share in storage order; example i of the split uses
  `fold_in((eval_seed, 1), i)` for its label draws, independent of
  process_count and batch size.

Why tf.data (stateless TF ops, parallel map) rather than JAX on the device
--------------------------------------------------------------------------
- Augmentation runs on host CPU cores in parallel with the accelerator's
  training step instead of taking time and memory from it: at 512 x 1024 the
  resampling (a gather per pixel) and PNG decoding would otherwise sit on the
  critical path of every step, and under spatial partitioning a dense gather
  on device needs all-gathers.
- tf.data scales with host cores (parallel map, prefetch), decodes PNGs in
  C++ and handles the per-task label logic (unique ids, flips) with
  dynamic-shape ops, which JAX would have to pad.
- Stateless ops make every draw a function of (seed, step, position), which
  gives exact resumption without checkpointing iterator state.
- One warp per example: the crop window, rotation, shear, scale, mirroring and
  elastic displacement are composed into one sampling grid of the *output*
  size (cheaper than warping the full source) and applied with one bilinear
  gather for the image and one nearest gather for all label maps, so image and
  labels stay aligned by construction. Pixels whose nearest source pixel lies
  outside the image are padding: label 0 and mask 0 (the same as pushing a
  ones channel through the nearest-neighbour warp with a zero border).
- Measured (`benchmarks/input_pipeline.py`, 2 idle AMD EPYC vCPUs, TF 2.21;
  `benchmarks/results/input_pipeline.json`): LIDC-size (180^2 -> augmented
  128^2 crop) ~930 examples/s; Cityscapes-size (512 x 1024 x 3, colour +
  elastic + affine, car ids) ~24 examples/s (~80 ms of CPU per example).
  The map is embarrassingly parallel, so a 16-core host should give roughly
  8x that, well above what one accelerator consumes at that resolution.
"""

from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from hpunet import augment
from hpunet import dataset_builders
from hpunet import tasks

_ALG = augment.ALG
# The keys an `input_config` may have (see the module docstring).
INPUT_KEYS = frozenset({
    "name", "dataset", "data_dir", "train_split", "eval_split", "eval_seed",
    "batch_size", "eval_batch_size", "image_size", "crop_size", "channels",
    "num_classes", "car_group_pixels", "prepare_if_missing",
    "num_parallel_calls", "prefetch", "augment"})
_TRAIN_TAG, _EVAL_TAG = 0, 1
_NUM_SUBSEEDS = 6  # 0 grader, 1 geometry, 3 colour, 4 label maps; 2, 5 spare


# ----------------------------------------------------------------------------
# Configs.
# ----------------------------------------------------------------------------


def _pair(value, field: str) -> Tuple[int, int]:
  try:
    pair = tuple(int(v) for v in value)
  except TypeError:
    pair = (int(value), int(value))
  if len(pair) != 2 or min(pair) <= 0:
    raise ValueError(
        f"input_config.{field}={value!r}; expected two positive ints (H, W).")
  return pair


class _Settings:
  """Validated, plain-Python view of an input_config."""

  def __init__(self, cfg: ml_collections.ConfigDict):
    unknown = set(cfg.keys()) - INPUT_KEYS
    if unknown:
      raise ValueError(f"input_config has unknown keys {sorted(unknown)}; "
                       f"known: {sorted(INPUT_KEYS)}.")
    self.name = cfg.get("name")
    self.task = tasks.get(self.name, "input_config.name",
                          num_classes=cfg.get("num_classes"))
    self.image_size = _pair(cfg.image_size, "image_size")
    self.crop_size = _pair(cfg.get("crop_size", cfg.image_size), "crop_size")
    if any(c > s for c, s in zip(self.crop_size, self.image_size)):
      raise ValueError(
          f"input_config.crop_size={self.crop_size} is larger than"
          f" input_config.image_size={self.image_size}.")
    self.channels = int(cfg.get("channels", self.task.channels))
    self.num_classes = int(cfg.get("num_classes", self.task.num_classes))
    if self.num_classes != self.task.num_classes:
      raise ValueError(
          f"input_config.num_classes={self.num_classes}, but task"
          f" {self.name!r} produces {self.task.num_classes} classes.")
    self.eval_seed = int(cfg.get("eval_seed", 0))
    self.car_group_pixels = cfg.get("car_group_pixels", "mask")
    if self.car_group_pixels not in ("mask", "keep"):
      raise ValueError(
          f"input_config.car_group_pixels={self.car_group_pixels!r}; expected"
          " 'mask' or 'keep'.")
    npc = int(cfg.get("num_parallel_calls", -1))
    self.num_parallel_calls = tf.data.AUTOTUNE if npc < 0 else npc
    pf = int(cfg.get("prefetch", 2))
    self.prefetch = tf.data.AUTOTUNE if pf < 0 else pf
    self.aug = augment.settings(cfg.get("augment", None))


def check_input_config(input_config: ml_collections.ConfigDict) -> None:
  """Checks an `input_config` without reading any data.

  Raises:
    ValueError: naming the `input_config` field, its value and what was
      expected (unknown keys, task, sizes, classes, augmentation).
  """
  _Settings(input_config)


def _process(process_index, process_count) -> Tuple[int, int]:
  """Fills in `jax.process_index()/process_count()` where None."""
  if process_count is None:
    import jax  # pylint: disable=g-import-not-at-top
    process_count = jax.process_count()
  if process_index is None:
    import jax  # pylint: disable=g-import-not-at-top,reimported
    process_index = jax.process_index() if process_count > 1 else 0
  if not 0 <= process_index < process_count:
    raise ValueError(
        f"process_index={process_index} not in [0, {process_count}).")
  return int(process_index), int(process_count)


def _local_batch(global_batch, process_count, field) -> int:
  global_batch = int(global_batch)
  if global_batch <= 0 or global_batch % process_count:
    raise ValueError(
        f"input_config.{field}={global_batch} must be a positive multiple of"
        f" process_count={process_count}.")
  return global_batch // process_count


def _hide_accelerators_from_tf() -> None:
  """Keeps TF (tf.data) off GPUs/TPUs: they belong to JAX."""
  for kind in ("GPU", "TPU"):
    try:
      tf.config.set_visible_devices([], kind)
    except (RuntimeError, ValueError):  # Already initialised / no such type.
      pass


# ----------------------------------------------------------------------------
# TFDS access.
# ----------------------------------------------------------------------------


def _open_builder(cfg: ml_collections.ConfigDict):
  """Registers the builder from datasets/ and returns the TFDS builder."""
  dataset = cfg.get("dataset")
  if not dataset:
    raise ValueError("input_config.dataset is empty; expected a TFDS name"
                     " such as 'synthetic/s128'.")
  dataset_builders.load_builder_module(dataset)
  data_dir = dataset_builders.expand_path(cfg.get("data_dir"))
  builder = tfds.builder(dataset, data_dir=data_dir)
  if not builder.is_prepared():
    if cfg.get("prepare_if_missing", False):
      builder = dataset_builders.download_and_prepare(
          builder, reopen=lambda: tfds.builder(dataset, data_dir=data_dir),
          download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    else:
      raise FileNotFoundError(
          f"input_config.dataset={dataset!r} is not prepared in"
          f" input_config.data_dir={data_dir!r} ({builder.data_dir}). Build"
          f" it with: python -m hpunet.build_dataset {dataset}"
          " --manual_dir=... --data_dir=...")
  stored = (builder.info.metadata or {}).get("num_classes")
  configured = tasks.for_input(cfg).num_classes
  if stored is not None and int(stored) != configured:
    # `folder` datasets store their class count (classes.txt).
    raise ValueError(
        f"input_config.num_classes={configured}, but the dataset {dataset!r}"
        f" has {stored} classes (stored when it was built): pass"
        f" --config.input.num_classes={stored}"
        f" --config.model.num_classes={stored}.")
  file_format = getattr(builder.info, "file_format", None)
  if file_format is not None and str(getattr(file_format, "value",
                                             file_format)) != "tfrecord":
    raise ValueError(
        f"input_config.dataset={dataset!r} was prepared as {file_format};"
        " the input pipeline reads it with tf.data and needs"
        " --file_format=tfrecord.")
  return builder


def _builder_specs(builder, names) -> Dict[str, Tuple[Tuple[int, ...], Any]]:
  """name -> (shape, numpy dtype) of the decoded features `names`."""
  features = builder.info.features
  missing = [n for n in names if n not in features]
  if missing:
    raise ValueError(
        f"Dataset {builder.info.full_name} lacks features {missing} needed by"
        f" this task; it has {sorted(features.keys())}.")
  return {n: (tuple(features[n].shape), np.dtype(features[n].np_dtype))
          for n in names}


def _check_specs(specs, s: _Settings) -> None:
  """Static checks of decoded feature shapes/dtypes against the config."""
  h, w = s.image_size
  img_shape = tuple(specs["image"][0])
  if img_shape[:2] != (h, w):
    raise ValueError(
        f"input_config.image_size={s.image_size}, but the dataset's 'image'"
        f" feature has shape {img_shape}.")
  if len(img_shape) != 3 or img_shape[2] != s.channels:
    raise ValueError(
        f"input_config.channels={s.channels}, but the dataset's 'image'"
        f" feature has shape {img_shape}.")
  for name, (shape, _) in specs.items():
    if name in ("image", "image_id", "mode_probs", "modes"):
      continue
    if tuple(shape[:2]) != (h, w):
      raise ValueError(
          f"Feature {name!r} has shape {tuple(shape)}; expected ({h}, {w},"
          " ...) to match input_config.image_size.")
  if "modes" in specs and tuple(specs["modes"][0][1:]) != (h, w):
    raise ValueError(f"Feature 'modes' has shape {specs['modes'][0]};"
                     f" expected (M, {h}, {w}).")


def _split_sizes(n: int, count: int) -> List[int]:
  """Sizes of `tfds.even_splits(split, count)` for a split of n examples."""
  return [n // count + (1 if i < n % count else 0) for i in range(count)]


# ----------------------------------------------------------------------------
# The in-memory store of encoded training examples.
# ----------------------------------------------------------------------------


class _Store:
  """The process' share of the training split, PNG-encoded, in host memory.

  `columns[name]` is a list of N bytes objects; `specs[name]` the decoded
  (shape, numpy dtype). Integer label maps are PNG-encoded (lossless);
  32-bit ints as two 16-bit channels.
  """

  def __init__(self, columns: Dict[str, List[bytes]], specs):
    self.columns = columns
    self.specs = specs
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
      raise ValueError(f"Inconsistent column lengths {lengths}.")
    self.size = lengths.pop()
    if self.size == 0:
      raise ValueError("The training split (this process' share) is empty.")


def _encode_feature(x: tf.Tensor, dtype) -> tf.Tensor:
  """Encodes one decoded feature as PNG bytes (strings pass through)."""
  if x.dtype == tf.string:
    return x
  dtype = np.dtype(dtype)
  if dtype in (np.uint8, np.uint16):
    x = tf.cast(x, tf.as_dtype(dtype))
    return tf.io.encode_png(x if x.shape.rank == 3 else x[..., None])
  if dtype.kind in "iu":
    x = tf.bitcast(tf.cast(x, tf.int32), tf.uint16)  # [H, W, 2]
    return tf.io.encode_png(x)
  raise ValueError(f"Cannot store a feature of dtype {dtype} in the input"
                   " pipeline's training store.")


def _decode_feature(b: tf.Tensor, shape, dtype) -> tf.Tensor:
  """Inverse of `_encode_feature`; returns uint8 images and int32 labels."""
  dtype = np.dtype(dtype)
  if dtype == np.uint8 and len(shape) == 3:  # image or stacked masks
    x = tf.io.decode_image(b, channels=shape[2], dtype=tf.uint8,
                           expand_animations=False)
    return tf.ensure_shape(x, shape)
  if dtype in (np.uint8, np.uint16):
    x = tf.io.decode_png(b, channels=1, dtype=tf.as_dtype(dtype))[..., 0]
    return tf.cast(tf.ensure_shape(x, shape), tf.int32)
  x = tf.io.decode_png(b, channels=0, dtype=tf.uint16)
  x = tf.bitcast(tf.ensure_shape(x, tuple(shape) + (2,)), tf.int32)
  return x


def _store_from_dataset(ds: tf.data.Dataset, specs, s: _Settings) -> _Store:
  """Encodes a tf.data.Dataset of examples into a `_Store`."""
  names = sorted(specs)

  def encode(ex):
    return {n: _encode_feature(ex[n], specs[n][1]) for n in names}

  columns = {n: [] for n in names}
  encoded = ds.map(_no_autograph(encode),
                   num_parallel_calls=s.num_parallel_calls,
                   deterministic=True).batch(64)
  for chunk in encoded.as_numpy_iterator():
    for n in names:
      columns[n].extend(chunk[n].tolist())
  ids = columns.get("image_id")
  if ids and len(set(ids)) == len(ids):  # Order independent of file layout.
    order = sorted(range(len(ids)), key=ids.__getitem__)
    columns = {n: [c[i] for i in order] for n, c in columns.items()}
  return _Store(columns, specs)


def _store_from_arrays(arrays: Mapping[str, np.ndarray],
                       s: _Settings) -> _Store:
  """A `_Store` from in-memory numpy arrays (leading axis = examples)."""
  specs = {n: (tuple(np.shape(a)[1:]), np.asarray(a).dtype if n != "image_id"
               else np.dtype(object)) for n, a in arrays.items()}
  _check_specs(specs, s)
  ds = tf.data.Dataset.from_tensor_slices(dict(arrays))
  return _store_from_dataset(ds, specs, s)


def _load_train_store(builder, split: str, s: _Settings) -> _Store:
  names = s.task.train_features
  specs = _builder_specs(builder, names)
  _check_specs(specs, s)
  # Keep the image PNG/JPEG bytes as they are; leave unused features encoded.
  decoders = _skip_unused(builder, names)
  decoders["image"] = tfds.decode.SkipDecoding()
  ds = builder.as_dataset(split=split, shuffle_files=False, decoders=decoders)
  ds = ds.map(lambda ex: {n: ex[n] for n in names})
  return _store_from_dataset(ds, specs, s)


def _skip_unused(builder, names) -> Dict[str, Any]:
  """TFDS decoders that leave every feature not in `names` undecoded."""
  return {n: tfds.decode.SkipDecoding() for n in builder.info.features
          if n not in names}


# ----------------------------------------------------------------------------
# Random helpers (stateless).
# ----------------------------------------------------------------------------


def _no_autograph(fn):
  # The map functions use Python control flow on static values only.
  return tf.autograph.experimental.do_not_convert(fn)


def _base_seed(seed: int, tag: int) -> tf.Tensor:
  seed = int(seed)
  if not 0 <= seed < 2 ** 63:
    raise ValueError(f"seed={seed} must be in [0, 2**63).")
  return tf.constant([seed, tag], tf.int64)


def _fold_in(seed: tf.Tensor, data) -> tf.Tensor:
  return tf.random.experimental.stateless_fold_in(
      seed, tf.cast(data, tf.int64), alg=_ALG)


def _random_ids(instances: tf.Tensor, seed: tf.Tensor, num_ids: int):
  """Maps instance ids != 0 to random ids in 1..num_ids; 0 stays 0.

  Ids are `perm[rank mod num_ids] + 1`: distinct while there are at most
  `num_ids` instances, reused evenly (and randomly) beyond that.
  """
  s1, s2 = tf.unstack(tf.random.experimental.stateless_split(seed, 2, _ALG))
  flat = tf.reshape(instances, [-1])
  uniq, idx = tf.unique(flat)
  keys = augment.uniform(s1, tf.shape(uniq))
  keys = tf.where(uniq == 0, 2.0, keys)          # background ranks last
  rank = tf.argsort(tf.argsort(keys))
  perm = tf.argsort(augment.uniform(s2, (num_ids,)))
  ids = tf.gather(perm, rank % num_ids) + 1
  ids = tf.where(uniq == 0, 0, ids)
  return tf.reshape(tf.gather(ids, idx), tf.shape(instances))


def _flip_labels(label: tf.Tensor, seed: tf.Tensor):
  """Applies the five stochastic class flips (`tasks.FLIPS`) to trainIds."""
  draws = augment.uniform(seed, (len(tasks.FLIPS),))
  out = label
  for i, (cls, p, new) in enumerate(tasks.FLIPS):
    out = tf.where((label == cls) & (draws[i] < p), new, out)
  return out


# ----------------------------------------------------------------------------
# Per-example processing.
# ----------------------------------------------------------------------------


def _validate(ex: Dict[str, tf.Tensor], num_classes: int = 2
              ) -> List[tf.Operation]:
  """In-graph value checks, naming the offending feature."""
  checks = []
  if "masks" in ex:
    checks.append(tf.debugging.assert_less_equal(
        tf.reduce_max(tf.cast(ex["masks"], tf.int32)), num_classes - 1,
        message=("Feature `masks` must be binary (values 0/1)"
                 if num_classes == 2 else
                 f"Feature `masks` must hold class ids 0..{num_classes - 1}")))
  if "label" in ex:
    lab = tf.cast(ex["label"], tf.int32)
    ok = tf.reduce_all((lab >= 0) &
                       ((lab < tasks.NUM_TRAIN_IDS) |
                                     (lab == tasks.IGNORE_ID)))
    checks.append(tf.debugging.Assert(ok, [
        "Feature `label` must hold Cityscapes trainIds 0..18 or 255 (ignore);"
        " found values", tf.reduce_min(lab), tf.reduce_max(lab)]))
  for name in ("instances", "car_instances"):
    if name in ex:
      checks.append(tf.debugging.assert_non_negative(
          tf.cast(ex[name], tf.int32),
          message=f"Feature `{name}` must hold instance ids >= 0"))
  return checks


def _task_labels(s: _Settings, labels: Dict[str, tf.Tensor], valid,
                 seed) -> Dict[str, tf.Tensor]:
  """seg/mask from (cropped or warped) int32 label maps.

  Args:
    s: settings.
    labels: int32 [h, w] maps: `seg` (chosen grader, synthetic/LIDC),
      `instances`, `label`, `car_instances`.
    valid: bool [h, w], False on warp padding.
    seed: label seed.

  Returns:
    dict with `seg` int32 [h, w] and `mask` float32 [h, w].
  """
  kind = s.task.kind
  if kind == "graders":
    seg, mask = labels["seg"], valid
  elif kind == "instances":
    seg = _random_ids(labels["instances"], seed, tasks.NUM_SNEMI3D_IDS)
    mask = valid
  elif kind == "cars":
    lab, inst = labels["label"], labels["car_instances"]
    mask = valid & (lab != tasks.IGNORE_ID)
    if s.car_group_pixels == "mask":
      mask &= ~((lab == tasks.CAR_TRAIN_ID) & (inst == 0))
    car = _random_ids(inst, seed, len(tasks.CAR_IDS)) + (tasks.CAR_IDS[0] - 1)
    seg = tf.where(inst > 0, car, lab)
  else:  # flips: mask from the UNflipped labels, then flip.
    lab = labels["label"]
    mask = valid & (lab != tasks.IGNORE_ID)
    seg = _flip_labels(lab, seed)
  seg = tf.where(mask, seg, 0)
  return {"seg": tf.cast(seg, tf.int32), "mask": tf.cast(mask, tf.float32)}


def _label_maps(task: tasks.Task, ex, grader) -> Dict[str, tf.Tensor]:
  """int32 [H, W] source label maps for the task."""
  if task.has_graders:
    masks = tf.cast(ex["masks"], tf.int32)
    return {"seg": tf.gather(masks, grader, axis=-1)}
  keys = [k for k in ("label", "instances", "car_instances")
          if k in task.train_features]
  return {k: tf.cast(ex[k], tf.int32) for k in keys}


def _make_train_fn(s: _Settings, specs):
  """(step, slot, encoded example, seed) -> training example dict."""
  aug = s.aug
  num_graders = specs["masks"][0][2] if "masks" in specs else 0

  def fn(seed, encoded):
    ex = {n: _decode_feature(encoded[n], *specs[n])
          for n in encoded if n != "image_id"}
    k = tf.unstack(tf.random.experimental.stateless_split(
        seed, _NUM_SUBSEEDS, _ALG))
    with tf.control_dependencies(_validate(ex, s.num_classes)):
      image = augment.to_float_with_colour(ex["image"], k[3], aug)
    out = {}
    grader = None
    if num_graders:
      grader = tf.random.stateless_uniform((), k[0], 0, num_graders,
                                           dtype=tf.int32, alg=_ALG)
      out["grader_id"] = grader
    labels = _label_maps(s.task, ex, grader)
    ys, xs = augment.sampling_grid(k[1], s.image_size, s.crop_size, aug)
    keys = sorted(labels)
    stacked = tf.stack([labels[n] for n in keys], axis=-1)
    warped, valid = augment.warp_nearest(stacked, ys, xs)
    warped = {n: warped[..., i] for i, n in enumerate(keys)}
    if aug.image_interpolation == "nearest":
      out["image"] = augment.warp_nearest(image, ys, xs)[0]
    else:
      out["image"] = augment.warp_bilinear(image, ys, xs)
    out.update(_task_labels(s, warped, valid, k[4]))
    return out

  return fn


def _make_eval_fn(s: _Settings, specs):
  """(index, decoded example) -> evaluation example dict (centre crop)."""
  (big_h, big_w), (h, w) = s.image_size, s.crop_size
  oy, ox = (big_h - h) // 2, (big_w - w) // 2
  num_graders = specs["masks"][0][2] if "masks" in specs else 0
  base = _base_seed(s.eval_seed, _EVAL_TAG)

  def crop(x, axis=0):
    return x[oy:oy + h, ox:ox + w] if axis == 0 else x[:, oy:oy + h,
                                                         ox:ox + w]

  def fn(index, ex):
    seed = _fold_in(base, index)
    k = tf.unstack(tf.random.experimental.stateless_split(
        seed, _NUM_SUBSEEDS, _ALG))
    with tf.control_dependencies(_validate(ex, s.num_classes)):
      image = tf.cast(crop(ex["image"]), tf.float32) / 255.0
    image = tf.ensure_shape(image, (h, w, s.channels))
    out = {"image": image, "image_id": ex["image_id"],
           "batch_mask": tf.constant(True)}
    grader = None
    if num_graders:
      grader = tf.random.stateless_uniform((), k[0], 0, num_graders,
                                           dtype=tf.int32, alg=_ALG)
      out["masks"] = tf.cast(crop(ex["masks"]), tf.uint8)
    labels = {n: crop(v) for n, v in _label_maps(s.task, ex, grader).items()}
    out.update(_task_labels(s, labels, tf.ones((h, w), tf.bool), k[4]))
    if "modes" in ex:  # synthetic: the known modes and their probabilities.
      out["modes"] = tf.cast(crop(ex["modes"], axis=1), tf.uint8)
      out["mode_probs"] = tf.cast(ex["mode_probs"], tf.float32)
    for key in ("instances", "label", "car_instances"):
      if key in labels:
        out[key] = labels[key]
    return out

  return fn


# ----------------------------------------------------------------------------
# Datasets.
# ----------------------------------------------------------------------------


def _train_dataset_from_store(store: _Store, s: _Settings, *, seed: int,
                              start_step: int, local_batch: int,
                              process_index: int) -> tf.data.Dataset:
  """Batched training tf.data.Dataset over a `_Store` (see module doc)."""
  if start_step < 0:
    raise ValueError(f"start_step={start_step} must be >= 0.")
  n, names = store.size, sorted(store.columns)
  columns = store.columns
  seed = int(seed)
  base = _base_seed(seed, _TRAIN_TAG)

  def positions():
    pos = start_step * local_batch
    while True:
      epoch, offset = divmod(pos, n)
      perm = np.random.default_rng([seed, process_index, epoch]).permutation(n)
      for i in perm[offset:]:
        step, slot = divmod(pos, local_batch)
        yield (step, process_index * local_batch + slot,
               tuple(columns[c][i] for c in names))
        pos += 1

  signature = (tf.TensorSpec((), tf.int64), tf.TensorSpec((), tf.int64),
               tuple(tf.TensorSpec((), tf.string) for _ in names))
  ds = tf.data.Dataset.from_generator(positions, output_signature=signature)
  example_fn = _make_train_fn(s, store.specs)

  def fn(step, slot, encoded):
    ex_seed = _fold_in(_fold_in(base, step), slot)
    return example_fn(ex_seed, dict(zip(names, encoded)))

  ds = ds.map(_no_autograph(fn), num_parallel_calls=s.num_parallel_calls,
              deterministic=True)
  ds = ds.batch(local_batch, drop_remainder=True)
  return ds.prefetch(s.prefetch)


def _eval_dataset_from_examples(ds: tf.data.Dataset, s: _Settings, specs, *,
                                first_index: int, num_local: int,
                                num_batches: int,
                                local_batch: int) -> tf.data.Dataset:
  """Centre-cropped, padded, batched evaluation dataset."""
  fn = _make_eval_fn(s, specs)
  ds = ds.enumerate(start=first_index).map(
      _no_autograph(fn), num_parallel_calls=s.num_parallel_calls,
      deterministic=True)
  pad = num_batches * local_batch - num_local
  if pad < 0:
    raise ValueError(f"num_batches={num_batches} too small.")
  if pad:
    zeros = tf.nest.map_structure(
        lambda spec: tf.zeros(spec.shape, spec.dtype), ds.element_spec)
    zeros["batch_mask"] = tf.constant(False)
    ds = ds.concatenate(tf.data.Dataset.from_tensors(zeros).repeat(pad))
  ds = ds.batch(local_batch, drop_remainder=True)
  return ds.prefetch(s.prefetch)


def create_train_dataset(
    input_config: ml_collections.ConfigDict,
    *,
    seed: int,
    start_step: int = 0,
    process_index: Optional[int] = None,
    process_count: Optional[int] = None,
) -> Iterator[Dict[str, np.ndarray]]:
  """Infinite iterator over this process' share of the training batches.

  Args:
    input_config: see the module docstring.
    seed: run seed; with the step it determines every batch.
    start_step: first step to yield (resumption): the result equals an
      uninterrupted iterator from step `start_step` on.
    process_index: this process (default `jax.process_index()`).
    process_count: number of processes (default `jax.process_count()`).

  Returns:
    Iterator of numpy dicts with `image` [B, h, w, C] float32, `seg` [B, h, w]
    int32, `mask` [B, h, w] float32 (+ `grader_id` [B] int32 for
    synthetic/LIDC), B = input_config.batch_size // process_count.

  Raises:
    ValueError: unknown task, bad sizes/batch sizes, dataset/config mismatch.
    FileNotFoundError: the dataset is not prepared in `data_dir`.
  """
  _hide_accelerators_from_tf()
  s = _Settings(input_config)
  process_index, process_count = _process(process_index, process_count)
  local_batch = _local_batch(input_config.batch_size, process_count,
                             "batch_size")
  builder = _open_builder(input_config)
  split = tfds.even_splits(input_config.train_split, process_count)[
      process_index]
  store = _load_train_store(builder, split, s)
  ds = _train_dataset_from_store(store, s, seed=seed, start_step=start_step,
                                 local_batch=local_batch,
                                 process_index=process_index)
  return iter(ds.as_numpy_iterator())


def _eval_layout(builder, split, process_index, process_count, local_batch):
  n = builder.info.splits[split].num_examples
  sizes = _split_sizes(n, process_count)
  num_batches = -(-max(sizes) // local_batch)
  return sizes, num_batches


def num_eval_batches(input_config: ml_collections.ConfigDict, *,
                     split: Optional[str] = None,
                     process_count: Optional[int] = None) -> int:
  """Number of batches `create_eval_dataset` yields on every process."""
  _, process_count = _process(None, process_count)
  local_batch = _local_batch(input_config.eval_batch_size, process_count,
                             "eval_batch_size")
  builder = _open_builder(input_config)
  split = split or input_config.eval_split
  return _eval_layout(builder, split, 0, process_count, local_batch)[1]


def create_eval_dataset(
    input_config: ml_collections.ConfigDict,
    *,
    split: Optional[str] = None,
    process_index: Optional[int] = None,
    process_count: Optional[int] = None,
) -> Iterator[Dict[str, np.ndarray]]:
  """Finite iterator over this process' share of `split`, padded batches.

  Every process yields the same number of batches (`num_eval_batches`); the
  padding examples are all-zero with `batch_mask` False, so every example of
  the split is counted exactly once over all processes.

  Args:
    input_config: see the module docstring.
    split: TFDS split (default `input_config.eval_split`).
    process_index: this process (default `jax.process_index()`).
    process_count: number of processes (default `jax.process_count()`).

  Returns:
    Iterator of numpy dicts (see the module docstring for the keys), batch
    size `input_config.eval_batch_size // process_count`.

  Raises:
    ValueError, FileNotFoundError: as `create_train_dataset`.
  """
  _hide_accelerators_from_tf()
  s = _Settings(input_config)
  process_index, process_count = _process(process_index, process_count)
  local_batch = _local_batch(input_config.eval_batch_size, process_count,
                             "eval_batch_size")
  builder = _open_builder(input_config)
  split = split or input_config.eval_split
  names = s.task.eval_features
  specs = _builder_specs(builder, names)
  _check_specs(specs, s)
  sizes, num_batches = _eval_layout(builder, split, process_index,
                                    process_count, local_batch)
  local_split = tfds.even_splits(split, process_count)[process_index]
  ds = builder.as_dataset(split=local_split, shuffle_files=False,
                          decoders=_skip_unused(builder, names))
  ds = ds.map(lambda ex: {n: ex[n] for n in names})
  ds = _eval_dataset_from_examples(
      ds, s, specs, first_index=sum(sizes[:process_index]),
      num_local=sizes[process_index], num_batches=num_batches,
      local_batch=local_batch)
  return iter(ds.as_numpy_iterator())
