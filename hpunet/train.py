# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Training and evaluation of HPU-Net / sPU-Net.

Entry point (the README's main command; `synthetic` is the default config):

  python -m hpunet.train --config=configs/synthetic.py --workdir=/tmp/hpunet

  # a tiny smoke run:
  python -m hpunet.train --config=configs/synthetic.py:smoke \
      --workdir=/tmp/hpunet_smoke --config.num_train_steps=20

Multi-host (e.g. a TPU pod slice): set `HPUNET_JAX_INIT=1` (the launch script
does) so that `jax.distributed.initialize()` reads the cluster environment, or
pass `--coordinator_address`, `--num_processes` and `--process_id`.

`main` only parses flags, initialises multi-host JAX and calls
`train_and_evaluate(config, workdir)`; everything below is importable and never
reads flags.

Public API:
- `TrainState(step, params, opt_state, geco_state)`: the whole training state,
  one pytree, checkpointed as is.
- `create_learning_rate_fn(config)`, `create_optimizer(config)`.
- `create_train_state(config, networks, optimizer, rng, batch)`;
  `network_input_shape(config)`, `batch_structs(config)`: shapes from the
  config; `abstract_train_state(config, mesh)`: the state as
  ShapeDtypeStructs (the one place that builds it).
- `restore_params(config, workdir)`: a trained run's parameters.
- `check_config(config, mesh)`: every check that needs no data, run before
  anything is written, loaded or compiled.
- `train_step(state, batch, *, networks, optimizer, loss_config, base_rng,
  learning_rate_fn, compute_dtype)` -> (state, metrics): pure; compiled by
  `make_train_step(...)` with explicit shardings and a donated state.
- `validate(...)`: the per-image metrics of `hpunet.evaluation` on a fixed
  validation subset, averaged.
- `train_and_evaluate(config, workdir)` -> `TrainResult`.

Per-step randomness is `fold_in(train_key, step)` with `train_key` derived from
`config.seed`; the input pipeline is deterministic in (seed, step). Together
with the GECO state inside `TrainState`, a resumed run reproduces the
uninterrupted one bit for bit.
"""

import collections
from collections.abc import Callable, Iterator, Mapping
import functools
import json
import logging as std_logging
import math
import os
import sys
import time
import types
from typing import Any, NamedTuple, Optional

from absl import app
from absl import flags
from absl import logging
from etils import epath
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding
import ml_collections
from ml_collections import config_flags
import numpy as np
import optax

from hpunet import checkpointing
from hpunet import cli
from hpunet import config_lib
from hpunet import errors
from hpunet import evaluation
from hpunet import geco
from hpunet import images
from hpunet import networks as networks_lib
from hpunet import objectives
from hpunet import sharding
from hpunet import summary_writer as summary_lib
from hpunet import tasks
from hpunet import validation

Array = jax.Array
Batch = Mapping[str, Array]
PyTree = Any

_TRAIN_KEYS = ("image", "seg", "mask")


class TrainState(NamedTuple):
  """Everything that changes during training (checkpointed as one pytree)."""
  step: Array  # int32 scalar: number of updates applied.
  params: PyTree  # {"model": Haiku params, ["lagrange_multiplier": v]}
  opt_state: PyTree  # Adam state over `params` (the multiplier included).
  geco_state: geco.GecoState  # the EMA of the reconstruction loss.


class TrainResult(NamedTuple):
  state: TrainState
  metrics: dict[str, float]  # last logged training metrics (+ eval ones).
  num_compilations: int  # times the train step was traced (1 = no recompile).
  stopped_early: bool  # True after a preemption (SIGTERM/Ctrl-C) checkpoint.


# ----------------------------------------------------------------------------
# Optimizer.
# ----------------------------------------------------------------------------


def create_learning_rate_fn(config: ml_collections.ConfigDict
                            ) -> optax.Schedule:
  """The papers' piecewise-constant schedule from `config.lr_schedule`.

  `learning_rates` has one more entry than `boundaries`: learning_rates[i]
  applies from step boundaries[i-1] (inclusive) to boundaries[i] (exclusive).
  """
  values = tuple(float(v) for v in config.lr_schedule.learning_rates)
  boundaries = tuple(int(b) for b in config.lr_schedule.boundaries)
  if len(values) != len(boundaries) + 1:
    raise ValueError(
        f"config.lr_schedule: {len(values)} learning_rates need "
        f"{len(values) - 1} boundaries, got {len(boundaries)}.")
  if list(boundaries) != sorted(set(boundaries)) or (boundaries and
                                                     boundaries[0] <= 0):
    raise ValueError("config.lr_schedule.boundaries must be positive and "
                     f"strictly increasing, got {boundaries}.")
  if min(values) <= 0:
    raise ValueError(
        f"config.lr_schedule.learning_rates must be > 0, got {values}.")
  scales = {b: values[i + 1] / values[i] for i, b in enumerate(boundaries)}
  return optax.piecewise_constant_schedule(values[0], scales)


def create_optimizer(config: ml_collections.ConfigDict
                     ) -> optax.GradientTransformation:
  """Adam (the papers' "default settings") over the network *and* GECO's v.

  Weight decay is not here: it is a coupled L2 term inside the objective.
  """
  opt = config.optimizer
  if opt.name != "adam":
    raise ValueError(f"config.optimizer.name must be 'adam', got {opt.name!r}.")
  return optax.adam(create_learning_rate_fn(config), b1=opt.b1, b2=opt.b2,
                    eps=opt.eps)


# ----------------------------------------------------------------------------
# State and steps (pure).
# ----------------------------------------------------------------------------


def create_train_state(config: ml_collections.ConfigDict,
                       networks: networks_lib.Networks,
                       optimizer: optax.GradientTransformation, rng: Array,
                       batch: Batch) -> TrainState:
  """Initial state; pure and jittable (jit it with `out_shardings`)."""
  params = objectives.init_params(networks, rng, batch, config.loss)
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      opt_state=optimizer.init(params),
      geco_state=geco.init_geco_state())


def network_input_shape(config) -> tuple[int, int, int, int]:
  """(global batch, H, W, C) of the network input of a config."""
  inp = config.input
  size = inp.get("crop_size") or inp.get("image_size")
  channels = inp.get("channels") or inp.get("num_channels") or 1
  if size is None:
    raise ValueError("config.input needs `crop_size` or `image_size` (the "
                     "network input size, (H, W)).")
  return (int(inp.batch_size), int(size[0]), int(size[1]), int(channels))


def batch_structs(config, num_rows: int = 1) -> dict[str, jax.ShapeDtypeStruct]:
  """Shapes of the training batch entries, from the config (no data read)."""
  _, height, width, channels = network_input_shape(config)
  return {
      "image": jax.ShapeDtypeStruct((num_rows, height, width, channels),
                                    jnp.float32),
      "seg": jax.ShapeDtypeStruct((num_rows, height, width), jnp.int32),
      "mask": jax.ShapeDtypeStruct((num_rows, height, width), jnp.float32),
  }


def make_init_fn(config: ml_collections.ConfigDict,
                 networks: networks_lib.Networks,
                 optimizer: optax.GradientTransformation,
                 mesh: Mesh) -> Callable[[Array], TrainState]:
  """Jitted `rng -> initial TrainState`, replicated over `mesh`.

  The parameters depend only on the shapes of the inputs, so the init traces
  the network on zeros of the config's input size (one row per data shard)
  instead of a real batch.
  """
  structs = batch_structs(config, sharding.data_size(mesh))

  def init(rng):
    batch = {k: jnp.zeros(v.shape, v.dtype) for k, v in structs.items()}
    return create_train_state(config, networks, optimizer, rng, batch)

  return jax.jit(init, out_shardings=sharding.replicated(mesh))


def abstract_train_state(config: ml_collections.ConfigDict, mesh: Mesh, *,
                         networks: networks_lib.Networks | None = None,
                         optimizer: optax.GradientTransformation | None = None
                         ) -> TrainState:
  """The `TrainState` of a config as ShapeDtypeStructs replicated on `mesh`.

  The one place that builds the abstract state: what a checkpoint is restored
  into (training, `restore_params`) and what the benchmarks lower.
  """
  networks = networks or networks_lib.make_networks(config.model)
  optimizer = optimizer or create_optimizer(config)
  shapes = jax.eval_shape(make_init_fn(config, networks, optimizer, mesh),
                          jax.random.key(0))
  rep = sharding.replicated(mesh)
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=rep), shapes)


def _cast_floats(tree: PyTree, dtype) -> PyTree:
  return jax.tree.map(
      lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating)
      else x, tree)


def train_step(state: TrainState, batch: Batch, *,
               networks: networks_lib.Networks,
               optimizer: optax.GradientTransformation,
               loss_config: Mapping[str, Any], base_rng: Array,
               learning_rate_fn: optax.Schedule,
               compute_dtype: str = "float32"
               ) -> tuple[TrainState, dict[str, Array]]:
  """One optimisation step.

  Args:
    state: the current `TrainState`.
    batch: `image` [B, H, W, C] float, `seg` [B, H, W] int, `mask` [B, H, W].
    networks: from `networks.make_networks`.
    optimizer: from `create_optimizer`.
    loss_config: `config.loss`.
    base_rng: the training key; this step uses `fold_in(base_rng, step)`.
    learning_rate_fn: for the `learning_rate` summary.
    compute_dtype: "float32" or "bfloat16". With bfloat16 the network
      parameters and inputs are cast inside the loss function; parameters,
      optimizer and GECO state stay float32.

  Returns:
    (new_state, metrics): metrics is a flat dict of float32 scalars.
  """
  rng = jax.random.fold_in(base_rng, state.step)
  batch = {k: batch[k] for k in _TRAIN_KEYS if k in batch}

  def loss_fn(params):
    if compute_dtype != "float32":
      dtype = jnp.dtype(compute_dtype)
      params = dict(params, model=_cast_floats(params["model"], dtype))
      inputs = dict(batch, image=batch["image"].astype(dtype))
    else:
      inputs = batch
    return objectives.objective(params, state.geco_state, rng, inputs,
                                networks=networks, loss_config=loss_config,
                                step=state.step)

  grads, (geco_state, metrics) = jax.grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = dict(metrics)
  metrics["grad_norm"] = optax.tree.norm(grads["model"])
  metrics["param_norm"] = optax.tree.norm(params["model"])
  metrics["learning_rate"] = learning_rate_fn(state.step)
  metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
  new_state = TrainState(step=state.step + 1, params=params,
                         opt_state=opt_state, geco_state=geco_state)
  return new_state, metrics


class CompiledStep(NamedTuple):
  fn: Callable[[TrainState, Batch], tuple[TrainState, dict[str, Array]]]
  traces: Callable[[], int]  # how often it was traced so far.


def make_train_step(config: ml_collections.ConfigDict,
                    networks: networks_lib.Networks,
                    optimizer: optax.GradientTransformation, mesh: Mesh,
                    base_rng: Array,
                    batch_shardings: Mapping[str, NamedSharding]
                    ) -> CompiledStep:
  """`train_step` jitted over the mesh: replicated state, donated."""
  counter = [0]
  step = functools.partial(
      train_step, networks=networks, optimizer=optimizer,
      loss_config=config.loss, base_rng=base_rng,
      learning_rate_fn=create_learning_rate_fn(config),
      compute_dtype=config.get("compute_dtype", "float32"))

  def counted(state, batch):
    counter[0] += 1
    return step(state, batch)

  rep = sharding.replicated(mesh)
  shardings = {k: batch_shardings[k] for k in _TRAIN_KEYS
               if k in batch_shardings}
  fn = jax.jit(counted, in_shardings=(rep, shardings),
               out_shardings=(rep, rep), donate_argnums=(0,))
  return CompiledStep(fn=fn, traces=lambda: counter[0])


# ----------------------------------------------------------------------------
# Input.
# ----------------------------------------------------------------------------


def _train_batches(config, feed: sharding.DataFeed, start_step: int
                   ) -> Iterator[dict[str, np.ndarray]]:
  """This process's rows of every global batch, from step `start_step` on.

  The global batch is the concatenation of `config.data_shards` pipeline
  shares (default: one per distinct process feed). Setting it makes the data
  stream, and so the run, independent of the number of processes: each
  process loads `data_shards / feed_count` consecutive shares.
  """
  from hpunet import input_pipeline  # pylint: disable=g-import-not-at-top
  shards = int(config.get("data_shards") or feed.feed_count)
  if shards % feed.feed_count:
    raise ValueError(
        f"config.data_shards={shards} must be a multiple of the number of "
        f"processes feeding distinct data ({feed.feed_count}).")
  per_feed = shards // feed.feed_count
  iterators = [
      input_pipeline.create_train_dataset(
          config.input, seed=config.seed, start_step=start_step,
          process_index=feed.feed_index * per_feed + j, process_count=shards)
      for j in range(per_feed)
  ]
  if per_feed == 1:
    return iter(iterators[0])

  def concat():
    for parts in zip(*iterators):
      yield {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

  return concat()


def _eval_batches(config, eval_config, feed: sharding.DataFeed
                  ) -> Iterator[dict[str, np.ndarray]]:
  """This process's share of the (fixed, padded) evaluation subset."""
  from hpunet import input_pipeline  # pylint: disable=g-import-not-at-top
  input_config = ml_collections.ConfigDict(config.input.to_dict())
  input_config.eval_batch_size = eval_config.batch_size
  return iter(input_pipeline.create_eval_dataset(
      input_config, split=eval_config.split,
      process_index=feed.feed_index, process_count=feed.feed_count))


def prefetch_to_device(iterator: Iterator[Any], size: int,
                       put: Callable[[Any], Any]) -> Iterator[Any]:
  """Keeps `size` batches already transferred (device_put is asynchronous)."""
  queue = collections.deque()
  for _ in range(size):
    try:
      queue.append(put(next(iterator)))
    except StopIteration:
      break
  while queue:
    yield queue.popleft()
    try:
      queue.append(put(next(iterator)))
    except StopIteration:
      pass


# ----------------------------------------------------------------------------
# Summaries and evaluation.
# ----------------------------------------------------------------------------


def make_image_summary_fn(networks: networks_lib.Networks, mesh: Mesh, *,
                          num_images: int, num_samples: int
                          ) -> Callable[..., Any]:
  """Jitted: inputs, labels and argmax maps of reconstructions and samples.

  Takes the first `num_images` examples of a (sharded) training batch and
  returns replicated arrays, readable on every process. The reconstruction
  is None for models without a posterior.
  """

  def fn(params, rng, image, seg, mask=None):
    image, seg = image[:num_images], seg[:num_images]
    mask = None if mask is None else mask[:num_images]
    rec_rng, sample_rng = jax.random.split(rng)
    rec = None
    if networks.has_posterior:
      rec = jnp.argmax(networks.reconstruct(
          params["model"], rec_rng,
          seg=networks.one_hot_seg(seg, mask, image.dtype), img=image,
          mean=True), -1)
    samples = networks.sample_n(params["model"], sample_rng, image,
                                num_samples=num_samples)
    return image, seg, rec, jnp.argmax(samples, -1)

  rep = sharding.replicated(mesh)
  return jax.jit(fn, out_shardings=rep)


def image_summary(fn, params, rng, batch: Batch, *,
                  num_classes: int) -> np.ndarray:
  """One grid: rows = examples; input | ground truth | reconstruction (the
  posterior mean; models with a posterior only) | prior samples, under a
  band of column titles."""
  image, seg, rec, samples = jax.device_get(
      fn(params, rng, batch["image"], batch["seg"], batch.get("mask")))
  columns = [images.image_to_rgb(image),
             images.label_to_rgb(seg, num_classes)]
  if rec is not None:
    columns.append(images.label_to_rgb(rec, num_classes))
  columns += [images.label_to_rgb(s, num_classes) for s in samples]
  return images.image_grid(columns, labels=[
      "image", "label"] + (["reconstruction"] if rec is not None else []) + [
          f"sample {i + 1}" for i in range(len(samples))])


def validate(params: PyTree, predictor: evaluation.Predictor, *,
             batches: Iterator[Mapping[str, Any]], mesh: Mesh,
             feed: sharding.DataFeed, rng: Array,
             class_ids=None, min_rows_per_shard: int = 1) -> dict[str, float]:
  """Periodic validation: `evaluation`'s per-image metrics, nan-averaged.

  The same metrics as `python -m hpunet.evaluate` (see `evaluation`): each
  batch is sampled and reconstructed over the mesh, every process computes the
  metrics of the rows it loaded and the per-image values are gathered once.
  Padding examples (`batch_mask` False) are dropped.
  """
  rows = slice(feed.feed_index * feed.local_batch_size,
               (feed.feed_index + 1) * feed.local_batch_size)

  def to_device(local):
    inputs = {k: local[k] for k in ("image", "masks", "seg", "mask")
              if k in local}
    return sharding.make_global_batch(
        inputs, mesh, feed, min_rows_per_shard=min_rows_per_shard), rows

  out = evaluation.evaluate_batches(predictor, params, batches, rng=rng,
                                    to_device=to_device, class_ids=class_ids)
  per_image, _ = evaluation.finish(out, feed_index=feed.feed_index)
  return evaluation.mean_metrics(per_image)


# ----------------------------------------------------------------------------
# Restoring a trained run.
# ----------------------------------------------------------------------------


def _config_mismatch(config, saved: Mapping[str, Any]) -> list[str]:
  saved_model = (saved.get("config") or {}).get("model")
  if not saved_model:
    return []
  ours = json.loads(config.model.to_json_best_effort())
  keys = sorted(set(ours) | set(saved_model))
  # An argument one side omits is the constructor's default.
  defaults = networks_lib.constructor_defaults(ours.get("name"))
  norm = lambda v: list(v) if isinstance(v, (list, tuple)) else v
  value = lambda d, k: norm(d.get(k, defaults.get(k)))
  return [f"model.{k}: config {ours.get(k)!r} vs checkpoint "
          f"{saved_model.get(k)!r}" for k in keys
          if value(ours, k) != value(saved_model, k)]


def restore_params(config: ml_collections.ConfigDict, workdir: str,
                   step: int | None = None) -> tuple[Any, int]:
  """The trained parameters of `workdir` (latest step unless given).

  Returns:
    (params on this process's first local device, step).

  Raises:
    FileNotFoundError: no (complete) checkpoint in the workdir.
    errors.UserError: (a ValueError) the config's model does not match the
      checkpoint's, or the checkpoint is damaged (one line each).
  """
  # Read-only: a mistyped workdir is never created (issue 16).
  checkpointer = checkpointing.Checkpointer(workdir, async_save=False,
                                            read_only=True)
  try:
    steps = checkpointer.all_steps()
    if not steps:
      raise FileNotFoundError(
          f"No checkpoint in {checkpointer.directory}: train first with "
          f"`python -m hpunet.train --config=... --workdir={workdir}`.")
    if step is None:
      step = checkpointer.latest_step()
    elif step not in steps:
      raise FileNotFoundError(f"No checkpoint for step {step} in "
                              f"{checkpointer.directory} (have {steps}).")
    mesh = Mesh(np.asarray(jax.devices()).reshape(-1, 1), sharding.MESH_AXES)
    abstract = abstract_train_state(config, mesh)
    # The model fields first (from the small JSON item), so a changed
    # config is reported as such, and a failure after it is damage.
    try:
      meta = checkpointer.read_meta(step)
    except Exception:  # pylint: disable=broad-except
      meta = {}  # unreadable: the state restore below reports it
    mismatch = _config_mismatch(config, meta)
    if mismatch:
      raise errors.UserError(
          "The config does not match the checkpoint in "
          f"{checkpointer.directory}: " + "; ".join(mismatch))
    try:
      state, meta = checkpointer.restore(step, abstract)
    except (ValueError, KeyError, TypeError) as e:
      if meta:  # same model fields: the files are damaged.
        raise errors.UserError(
            f"The checkpoint at step {step} in {checkpointer.directory} is "
            f"damaged ({' '.join(str(e).split())[:200]}); `python -m "
            "hpunet.train` on this workdir moves it aside and resumes from "
            "the previous one.") from e
      raise errors.UserError(
          f"The checkpoint at step {step} in {checkpointer.directory} does not "
          f"match config.model ({' '.join(str(e).split())[:200]}).") from e
  finally:
    checkpointer.close()
  params = jax.tree.map(lambda x: x.addressable_data(0), state.params)
  return params, int(step)


# ----------------------------------------------------------------------------
# The loop.
# ----------------------------------------------------------------------------


def _format_duration(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def _check_finite(step: int, metrics: Mapping[str, float],
                  checkpointer: checkpointing.Checkpointer) -> None:
  bad = [k for k in ("loss", "rec_loss_sum", "kl_sum", "lagmul", "grad_norm")
         if k in metrics and not math.isfinite(metrics[k])]
  if bad:
    checkpointer.wait_until_finished()
    last = checkpointer.latest_step()
    where = (f"the last good checkpoint is step {last} in "
             f"{checkpointer.directory} (intact; restarting resumes from it)"
             if last is not None else "no checkpoint was written yet")
    raise FloatingPointError(
        f"Non-finite {', '.join(bad)} at step {step} (values: "
        f"{ {k: metrics[k] for k in bad} }); stopping. {where}.")


def _model_levels(config) -> int:
  return len(config.model.channels_per_block)


def _save(checkpointer, step, state, config):
  meta = {"step": int(step), "seed": int(config.seed),
          "config": json.loads(config.to_json_best_effort())}
  if checkpointer.save(step, state, meta=meta):
    logging.info("Saving checkpoint at step %d.", step)


def check_config(config: ml_collections.ConfigDict, mesh: Mesh) -> None:
  """Every check of a config that needs no data, before anything is built.

  Raises:
    ValueError: naming the config field, its value and what was expected.
  """
  from hpunet import input_pipeline  # pylint: disable=g-import-not-at-top
  input_pipeline.check_input_config(config.input)
  create_optimizer(config)  # the optimizer and the learning-rate schedule
  _, height, width, _ = network_input_shape(config)
  min_rows = int(config.mesh.get("min_rows_per_shard", 2))
  sharding.validate_mesh(
      mesh, global_batch_size=config.input.batch_size,
      image_shape=(height, width), num_levels=_model_levels(config),
      min_rows_per_shard=min_rows)
  feed = sharding.data_feed(mesh, config.input.batch_size)
  shards = int(config.get("data_shards") or feed.feed_count)
  if shards % feed.feed_count:
    raise ValueError(
        f"config.data_shards={shards} must be a multiple of the number of "
        f"processes feeding distinct data ({feed.feed_count}).")
  for name, eval_config in config.get("evals", {}).items():
    if eval_config.batch_size % sharding.data_size(mesh):
      raise ValueError(
          f"config.evals.{name}.batch_size={eval_config.batch_size} must be "
          f"divisible by the mesh's data axis ({sharding.data_size(mesh)}).")


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str, *,
                       profile_steps: Optional[tuple[int, int]] = None
                       ) -> TrainResult:
  """Trains (resuming from `workdir` if possible) and evaluates periodically.

  Args:
    config: an experiment config (`configs/*.py`).
    workdir: holds `checkpoints/`, `tensorboard/`, `metrics.jsonl` and
      `config.json`.
    profile_steps: (start, end): trace the steps start..end-1 with
      `jax.profiler` into `<workdir>/profile` (None: no trace).

  Returns:
    A `TrainResult`.

  Raises:
    FloatingPointError: on a non-finite loss, naming the step and the last
      good checkpoint.
    errors.UserError: (a ValueError) on an inconsistent config / mesh /
      batch, or a checkpoint written under a different model, seed or task;
      raised before anything is written to `workdir`.
    errors.CheckpointSaveError: a checkpoint could not be written.
  """
  # ---- Reliability hook (issue 16): every check before any work.
  validation.check_train(config, workdir)
  jax.config.update("jax_threefry_partitionable", True)
  is_chief = jax.process_index() == 0
  # ---- Every check of the config, before anything is written, loaded or
  # compiled.
  mesh = sharding.create_mesh(config.mesh)
  check_config(config, mesh)
  min_rows = int(config.mesh.get("min_rows_per_shard", 2))
  feed = sharding.data_feed(mesh, config.input.batch_size)
  logging.info("Mesh %s over %d devices (%d processes); this process loads "
               "%d of %d examples per step.", dict(mesh.shape), mesh.size,
               jax.process_count(), feed.local_batch_size,
               config.input.batch_size)

  # ---- Model, optimizer, state (shapes from the config), checkpoints.
  networks = networks_lib.make_networks(
      config.model,
      activation_constraint=sharding.make_activation_constraint(
          mesh, min_rows_per_shard=min_rows))
  optimizer = create_optimizer(config)
  init_rng, train_rng, eval_rng = jax.random.split(
      jax.random.key(config.seed), 3)
  checkpointer = checkpointing.Checkpointer(
      workdir, max_to_keep=config.max_checkpoints_to_keep)
  # ---- Reliability hook (issue 16): resume from the newest checkpoint that
  # reads and verifies (damaged newer ones are moved aside), after checking
  # that it was written under the same model / seed / task; only then is
  # anything written to the workdir.
  try:
    restored = checkpointer.restore_newest(
        abstract_train_state(config, mesh, networks=networks,
                             optimizer=optimizer),
        check_meta=lambda meta, step: validation.check_resume(
            config, meta.get("config"), directory=checkpointer.directory,
            step=step))
  except BaseException:
    checkpointer.close()
    raise
  start_step = restored[2] if restored else 0
  if is_chief:
    # epath: local folders and gs:// workdirs alike (TPU pods write to GCS).
    (epath.Path(workdir) / "config.json").write_text(
        config.to_json_best_effort(indent=2))
    # Steps logged after the restored checkpoint by a killed run are
    # logged again: drop the old lines.
    summary_lib.drop_records_after(
        os.path.join(workdir, "metrics.jsonl"), start_step)
  init_fn = make_init_fn(config, networks, optimizer, mesh)
  if restored:
    state = restored[0]
    logging.info("Resumed from step %d.", start_step)
  else:
    state = init_fn(init_rng)
  if int(jax.device_get(state.step)) != start_step:
    raise ValueError(f"Checkpoint step {int(state.step)} != {start_step}.")
  if is_chief:
    counts = networks_lib.component_param_counts(state.params["model"])
    logging.info("Parameters per component: %s", counts)

  # ---- Data.
  def put(local):  # Only what the step reads travels to the devices.
    local = {k: local[k] for k in _TRAIN_KEYS if k in local}
    return sharding.make_global_batch(local, mesh, feed,
                                      min_rows_per_shard=min_rows)

  train_iter = _train_batches(config, feed, start_step)
  batch_shardings = sharding.batch_shardings(
      mesh, batch_structs(config, config.input.batch_size),
      min_rows_per_shard=min_rows)
  step_fn = make_train_step(config, networks, optimizer, mesh, train_rng,
                            batch_shardings)
  writer = summary_lib.SummaryWriter(
      workdir, enabled=is_chief,
      tensorboard=bool(config.get("tensorboard", True)))
  if is_chief and start_step == 0:
    writer.write_text(0, "config", "```\n" + str(config) + "\n```")
  task = tasks.for_input(config.input)
  predictors = {}  # eval name -> evaluation.Predictor, made on first use.
  image_fn = None
  preemption = checkpointing.PreemptionWatcher()

  num_steps = int(config.num_train_steps)
  global_batch = int(config.input.batch_size)
  batches = prefetch_to_device(train_iter, int(config.get("prefetch", 2)),
                               put)

  history = collections.defaultdict(list)
  last_metrics: dict[str, float] = {}
  pending = None  # (step, metrics on device) of the last dispatched step.
  timer = _StepTimer()
  pace = _Pace()  # the ETA: all timed steps so far, not the last interval
  profiler = _ProfilerRange(profile_steps, os.path.join(workdir, "profile"))
  compile_time = None
  stopped_early = False
  step = start_step
  if step < num_steps:
    logging.info("Compiling the train step (the first step includes it: "
                 "seconds on an accelerator, about a minute or two on a "
                 "CPU)...")
  try:
    while step < num_steps:
      batch = next(batches)
      checkpointer.raise_if_save_failed()  # issue 16: a full disk, at once.
      profiler.before(step)
      t0 = time.perf_counter()
      state, metrics = step_fn.fn(state, batch)
      if compile_time is None:
        jax.block_until_ready(metrics)
        compile_time = time.perf_counter() - t0
        logging.info("First step (incl. compilation) took %.1fs.",
                     compile_time)
        timer.restart(steps=-1)  # the first step is compilation
      step += 1
      timer.steps += 1
      profiler.after(step, metrics)
      # Check the previous step's metrics while this one runs (one-step lag:
      # no host sync on the critical path).
      if pending is not None:
        _record(pending, history, checkpointer)
      pending = (step, metrics)

      is_last = step == num_steps
      preempted = preemption.reached(step)
      log_due = step % config.log_every_steps == 0 or is_last
      checkpoint_due = (step % config.checkpoint_every_steps == 0 or is_last
                        or preempted)
      if log_due or checkpoint_due:
        _record(pending, history, checkpointer)
        pending = None
      if log_due:
        means = {k: float(np.mean(v)) for k, v in history.items()}
        history.clear()
        steps_per_sec = timer.steps_per_sec()
        scalars = {f"train/{k}": v for k, v in means.items()}
        scalars["perf/steps_per_sec"] = steps_per_sec
        scalars["perf/images_per_sec"] = steps_per_sec * global_batch
        if compile_time is not None:
          scalars["perf/first_step_seconds"] = compile_time
        writer.write_scalars(step, scalars)
        last_metrics.update(scalars)
        pace.add(timer)
        eta = pace.eta(num_steps - step)
        # GECO's multiplier only where there is one (not for the ELBO), the
        # KL only for models with a posterior.
        lagmul = (f" lagmul {means['lagmul']:.4g}" if "lagmul" in means
                  else "")
        kl = f" kl {means['kl_sum']:.4g}" if "kl_sum" in means else ""
        logging.info(
            "step %d/%d | loss %.4g rec/px %.4g%s%s | "
            "%.1f img/s %.3f s/step | lr %.3g | ETA %s", step, num_steps,
            means.get("loss", float("nan")),
            means.get("rec_loss_mean", float("nan")), kl, lagmul,
            steps_per_sec * global_batch,
            1.0 / steps_per_sec if steps_per_sec else float("nan"),
            means.get("learning_rate", float("nan")), _format_duration(eta))
        timer.restart()
      if _due(step, config.get("summary_images_every_steps", 0), is_last):
        if image_fn is None:
          image_fn = make_image_summary_fn(
              networks, mesh, num_images=min(4, global_batch),
              num_samples=config.get("summary_num_samples", 3))
        grid = image_summary(
            image_fn, state.params, jax.random.fold_in(eval_rng, step),
            batch, num_classes=networks.num_classes)
        writer.write_images(step, {
            "train/input_gt_reconstruction_samples": grid})
        timer.restart()  # keep it out of images/s
      for name, eval_config in config.get("evals", {}).items():
        if _due(step, eval_config.every_steps, is_last):
          if name not in predictors:
            predictors[name] = evaluation.make_predictor(
                networks, task, eval_config.num_samples,
                out_shardings=sharding.replicated(mesh))
          t_eval = time.perf_counter()
          results = validate(
              state.params, predictors[name],
              batches=_eval_batches(config, eval_config, feed), mesh=mesh,
              feed=feed, rng=jax.random.fold_in(eval_rng, 0),
              class_ids=eval_config.get("class_ids"),
              min_rows_per_shard=min_rows)
          scalars = {f"{name}/{k}": v for k, v in results.items()}
          scalars[f"{name}/seconds"] = time.perf_counter() - t_eval
          writer.write_scalars(step, scalars)
          last_metrics.update(scalars)
          logging.info("eval %s at step %d: %s", name, step, results)
          timer.restart()  # keep it out of images/s
      if checkpoint_due:
        _save(checkpointer, step, state, config)
      if preempted and not is_last:
        logging.warning("Preempted at step %d: checkpoint saved, stopping.",
                        step)
        stopped_early = True
        break
    if pending is not None:
      _record(pending, history, checkpointer)
  finally:
    profiler.close()
    checkpointer.close()
    writer.close()
    preemption.close()
  traces = step_fn.traces()
  logging.info("Done at step %d; the train step was compiled %d time(s).",
               step, traces)
  return TrainResult(state=state, metrics=last_metrics,
                     num_compilations=traces, stopped_early=stopped_early)


class _Pace:
  """Seconds per step over every timed interval of this run (evaluations,
  image summaries and compilation excluded), so the ETA does not swing with
  the last interval."""

  def __init__(self):
    self.steps, self.seconds = 0, 0.0

  def add(self, timer: "_StepTimer") -> None:
    if timer.steps > 0:
      self.steps += timer.steps
      self.seconds += timer.elapsed()

  def eta(self, remaining_steps: int) -> float:
    return remaining_steps * self.seconds / self.steps if self.steps else 0.0


class _ProfilerRange:
  """A `jax.profiler` trace of the steps [start, end) into `log_dir`
  (TensorBoard's profile plugin or Perfetto read it); off when None."""

  def __init__(self, steps: Optional[tuple[int, int]], log_dir: str):
    self._steps, self._log_dir, self._on = steps, log_dir, False

  def before(self, step: int) -> None:
    if self._steps and step == self._steps[0] and not self._on:
      logging.info("Profiling steps %d-%d into %s.", self._steps[0],
                   self._steps[1] - 1, self._log_dir)
      jax.profiler.start_trace(self._log_dir)
      self._on = True

  def after(self, step: int, metrics) -> None:
    if self._on and step >= self._steps[1]:
      jax.block_until_ready(metrics)  # the traced steps end inside the trace
      self.close()

  def close(self) -> None:
    if self._on:
      jax.profiler.stop_trace()
      self._on = False
      logging.info("Profile written to %s.", self._log_dir)


class _StepTimer:
  """Steps per second since the last restart (after compilation, image
  summaries and evaluations, which stay out of the throughput)."""

  def __init__(self):
    self.restart()

  def restart(self, steps: int = 0) -> None:
    self._start = time.perf_counter()
    self.steps = steps

  def elapsed(self) -> float:
    return time.perf_counter() - self._start

  def steps_per_sec(self) -> float:
    elapsed = self.elapsed()
    return self.steps / elapsed if elapsed > 0 else 0.0


def _due(step: int, every: int, is_last: bool) -> bool:
  """An optional periodic action (0 = off) is due: every `every` steps and at
  the last one."""
  return bool(every) and (step % every == 0 or is_last)


def _record(pending, history, checkpointer):
  step, metrics = pending
  values = {k: float(v) for k, v in jax.device_get(metrics).items()}
  _check_finite(step, values, checkpointer)
  for k, v in values.items():
    history[k].append(v)


# ----------------------------------------------------------------------------
# main: flags only.
# ----------------------------------------------------------------------------

_TMP_CHECKPOINT = ".orbax-checkpoint-tmp"


class _DropOrbaxInfo(std_logging.Filter):
  """Keeps orbax's per-save INFO chatter out of the console log.

  Orbax's warnings and errors keep their message line but lose their
  tracebacks: a failed save is reported in one line (CheckpointSaveError).
  """

  def filter(self, record: std_logging.LogRecord) -> bool:
    if (record.name == "asyncio" or record.pathname.endswith(
        f"{os.sep}base_events.py")) and _TMP_CHECKPOINT in str(record.msg % (
            record.args or ())):
      return False  # the writes of a failed save, reported in one line
    if f"{os.sep}orbax{os.sep}" not in record.pathname:
      return True
    if record.levelno <= std_logging.INFO:
      return False
    record.exc_info, record.exc_text = None, None
    return True


_DEFAULT_CONFIG = config_lib.config_path("synthetic")


def _define_flags(fv: flags.FlagValues = flags.FLAGS
                  ) -> types.SimpleNamespace:
  """Flags exist only when run as a program: importing defines none."""
  return types.SimpleNamespace(
      config=config_flags.DEFINE_config_file(
          "config", _DEFAULT_CONFIG, "Experiment config file "
          "(configs/<exp>.py, optionally with ':<arg>', e.g. ':smoke').",
          lock_config=True, flag_values=fv),
      workdir=flags.DEFINE_string(
          "workdir", None, "Directory for checkpoints and summaries.",
          flag_values=fv),
      coordinator_address=flags.DEFINE_string(
          "coordinator_address", None,
          "host:port of process 0 for jax.distributed (explicit multi-process "
          "launch; alternatively set HPUNET_JAX_INIT=1 on a managed cluster).",
          flag_values=fv),
      num_processes=flags.DEFINE_integer(
          "num_processes", None, "Number of processes (explicit launch).",
          flag_values=fv),
      process_id=flags.DEFINE_integer(
          "process_id", None, "This process's id (explicit launch).",
          flag_values=fv),
      profile_steps=flags.DEFINE_list(
          "profile_steps", None, "START,END: trace the train steps "
          "START..END-1 with jax.profiler into <workdir>/profile (open it in "
          "TensorBoard's profile tab or Perfetto).", flag_values=fv),
  )


def parse_profile_steps(value) -> Optional[tuple[int, int]]:
  """`--profile_steps=START,END` -> (START, END) with 0 <= START < END."""
  if not value:
    return None
  try:
    start, end = (int(v) for v in value)
  except ValueError:
    start = end = -1
  if not 0 <= start < end:
    raise errors.UserError(
        f"--profile_steps={','.join(value)}: expected START,END with "
        "0 <= START < END (e.g. 10,20).")
  return start, end


def next_commands(config_arg: str, workdir: str) -> str:
  """What a user runs after training (printed when a run finishes)."""
  return "\n".join([
      "Next:",
      f"  python -m hpunet.evaluate --config={config_arg} "
      f"--workdir={workdir} --split=test",
      f"  python -m hpunet.sample --workdir={workdir} --image=IMAGE.png "
      f"--out={os.path.join(workdir, 'samples')}   (IMAGE.png: an image of "
      "yours, .png or .npy)",
      f"  tensorboard --logdir={os.path.join(workdir, 'tensorboard')}"])


def main(argv, f: types.SimpleNamespace):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.get_absl_handler().addFilter(_DropOrbaxInfo())
  if f.workdir.value is None:
    raise app.UsageError("--workdir is required.")
  if f.coordinator_address.value is not None:
    jax.distributed.initialize(coordinator_address=f.coordinator_address.value,
                               num_processes=f.num_processes.value,
                               process_id=f.process_id.value)
  elif os.environ.get("HPUNET_JAX_INIT") == "1":
    jax.distributed.initialize()
  logging.info("JAX %s: process %d/%d, %d local / %d global devices (%s).",
               jax.__version__, jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count(),
               jax.devices()[0].device_kind)
  profile_steps = parse_profile_steps(f.profile_steps.value)
  result = train_and_evaluate(f.config.value, f.workdir.value,
                              profile_steps=profile_steps)
  if not result.stopped_early and jax.process_index() == 0:
    config_arg = next((a.split("=", 1)[1] for a in sys.argv
                       if a.startswith("--config=")), _DEFAULT_CONFIG)
    print(next_commands(config_arg, f.workdir.value), flush=True)
  # A distinct exit code, so a restart loop can tell a preempted run from
  # a finished one (errors.py, README "What happens when things go wrong").
  return errors.PREEMPTED if result.stopped_early else errors.OK


if __name__ == "__main__":
  sys.argv = config_lib.resolve_config_flags(sys.argv)
  cli.run(main, _define_flags)
