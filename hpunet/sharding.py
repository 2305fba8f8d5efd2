# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""The ('data', 'spatial') device mesh, batch placement and resharding rules.

One code path from one CPU to a TPU pod (the original used `pmap` over the
batch plus TPU spatial partitioning; see README, "Parallelism"):

- `create_mesh(mesh_config)` builds a `Mesh` with axes ('data', 'spatial') and
  *Auto* axis types (`jax.make_mesh` defaults to Explicit, which breaks
  `avg_pool` and `jnp.repeat` in the model).
- Batches are sharded on N over 'data' and on H over 'spatial'
  (`P('data', 'spatial')` for NHWC); parameters and optimizer state are
  replicated (`P()`); XLA SPMD inserts the convolution halo exchanges
  (`collective-permute`).
- `make_activation_constraint(mesh)` returns the callable the model applies to
  every per-level feature map. It decides by shape: a map whose height splits
  evenly over 'spatial' (with at least `min_rows_per_shard` rows per shard)
  stays `P('data', 'spatial')`; a coarser one is resharded to `P('data')`
  (replicated over 'spatial'). Without it, the partitioner pads the coarse
  levels of HPU-Net (the 2x4 bottom of Cityscapes, the 1x1 bottom of LIDC)
  unevenly, which in jax 0.10.2 produced *wrong gradients* (measured; see
  tests/sharding_test.py), besides being slower.
- The exact batch-global top-k that partitions without gathering the scores
  is `losses.select_top_k`.
- `validate_mesh` checks divisibility before anything is compiled.

Plain JAX / NumPy: no Haiku, no TensorFlow.
"""

from collections.abc import Callable, Mapping, Sequence
import dataclasses
from typing import Any

import jax
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

MESH_AXES = ("data", "spatial")

# Batch keys whose axis 1 is the image height (sharded over 'spatial').
_HEIGHT_AXIS = {"image": 1, "seg": 1, "mask": 1, "masks": 1, "instances": 1,
                "label": 1, "car_instances": 1, "modes": 2}


def create_mesh(mesh_config: Any,
                devices: Sequence[jax.Device] | None = None) -> Mesh:
  """Builds the ('data', 'spatial') mesh from `config.mesh`.

  Args:
    mesh_config: has `spatial` (int >= 1) and `data` (int, or -1 for "all the
      remaining devices").
    devices: defaults to `jax.devices()` (all processes).

  On a single process, an explicit data * spatial smaller than the number
  of devices uses the first data * spatial devices.

  Returns:
    A `Mesh` of shape (data, spatial) with Auto axis types. Devices are laid
    out process-major, so that each process holds whole rows of the data axis
    whenever `spatial` divides the number of local devices.

  Raises:
    ValueError: if the device count does not factor as data * spatial.
  """
  devices = list(jax.devices() if devices is None else devices)
  n = len(devices)
  spatial = int(mesh_config.spatial)
  data = int(mesh_config.data)
  if spatial < 1 or n % spatial:
    raise ValueError(
        f"config.mesh.spatial={spatial} must be >= 1 and divide the number of "
        f"devices ({n}).")
  if data == -1:
    data = n // spatial
  if data * spatial < n and jax.process_count() == 1:
    # An explicit smaller mesh on one host (e.g. data=1 on a multi-device
    # test machine) uses the first data * spatial devices.
    devices = sorted(devices, key=lambda d: d.id)[:data * spatial]
    n = len(devices)
  if data * spatial != n:
    raise ValueError(
        f"config.mesh: data ({data}) x spatial ({spatial}) = "
        f"{data * spatial} must equal the number of devices ({n}); use "
        "data=-1 to take all remaining devices.")
  if devices[0].platform == "tpu":
    # Topology-aware: neighbouring spatial shards on neighbouring chips.
    grid = mesh_utils.create_device_mesh((data, spatial), devices=devices)
  else:
    devices = sorted(devices, key=lambda d: (d.process_index, d.id))
    grid = np.asarray(devices, dtype=object).reshape(data, spatial)
  return Mesh(grid, MESH_AXES)  # Auto axis types (the default for Mesh).


def spatial_size(mesh: Mesh) -> int:
  return mesh.shape["spatial"]


def data_size(mesh: Mesh) -> int:
  return mesh.shape["data"]


def is_split(height: int, spatial: int, min_rows_per_shard: int = 2) -> bool:
  """Whether a map of this height is partitioned over 'spatial'."""
  return (spatial > 1 and height % spatial == 0 and
          height // spatial >= min_rows_per_shard)


def feature_map_spec(height: int, spatial: int, min_rows_per_shard: int = 2,
                     *, batch: int | None = None, data: int = 1) -> P:
  """PartitionSpec for an NHWC map: N and H split only where they divide.

  Uneven (padded) shardings are never requested: in jax 0.10.2 they gave
  wrong gradients for convolutions and pooling (tests/sharding_test.py).
  """
  batch_axis = "data" if batch is None or batch % data == 0 else None
  if is_split(height, spatial, min_rows_per_shard):
    return P(batch_axis, "spatial")
  return P(batch_axis)


def make_activation_constraint(
    mesh: Mesh, *, min_rows_per_shard: int = 2
) -> Callable[[jax.Array], jax.Array] | None:
  """The `activation_constraint` handed to `networks.make_networks`.

  Applied by the model to every per-level [B, h, w, C] feature map. Maps whose
  height `h` divides evenly over 'spatial' (and leaves at least
  `min_rows_per_shard` rows per shard) are pinned to `P('data', 'spatial')`;
  coarser maps are resharded to `P('data')`, i.e. replicated over 'spatial'.
  A batch not divisible by 'data' (e.g. a few images for a summary) is
  replicated over 'data' instead of padded.
  The resharding costs one small all-gather per coarse transition (the
  backward pass is a local slice); the maps involved are at most
  `spatial * min_rows_per_shard` rows high.

  Args:
    mesh: the ('data', 'spatial') mesh.
    min_rows_per_shard: minimum rows per spatial shard to keep a map split.

  Returns:
    None when the mesh has a single device (nothing to constrain), else the
    callable.
  """
  if mesh.size == 1:
    return None
  spatial, data = spatial_size(mesh), data_size(mesh)

  def constrain(x: jax.Array) -> jax.Array:
    if x.ndim != 4:  # Only NHWC feature maps are constrained.
      return x
    spec = feature_map_spec(x.shape[1], spatial, min_rows_per_shard,
                            batch=x.shape[0], data=data)
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))

  return constrain


def level_heights(image_height: int, num_levels: int) -> list[int]:
  """Heights of the U-Net's processing scales, finest first."""
  return [image_height // 2**l for l in range(num_levels)]


def validate_mesh(mesh: Mesh, *, global_batch_size: int, image_shape:
                  tuple[int, int], num_levels: int,
                  min_rows_per_shard: int = 2,
                  process_count: int | None = None) -> None:
  """Checks batch and image shapes against the mesh, before compiling.

  Args:
    mesh: the ('data', 'spatial') mesh.
    global_batch_size: `config.input.batch_size` (global, over all hosts).
    image_shape: (H, W) of the training images.
    num_levels: number of U-Net processing scales (`len(channels_per_block)`).
    min_rows_per_shard: as in `make_activation_constraint`.
    process_count: defaults to `jax.process_count()`.

  Raises:
    ValueError: naming the config field and what was expected.
  """
  process_count = process_count or jax.process_count()
  data, spatial = data_size(mesh), spatial_size(mesh)
  h, w = image_shape
  if global_batch_size % data:
    raise ValueError(
        f"config.input.batch_size={global_batch_size} must be divisible by "
        f"the mesh's data axis ({data} = devices {mesh.size} / "
        f"config.mesh.spatial {spatial}).")
  if global_batch_size % process_count:
    raise ValueError(
        f"config.input.batch_size={global_batch_size} must be divisible by "
        f"the number of processes ({process_count}).")
  down = 2**(num_levels - 1)
  if h % down or w % down:
    raise ValueError(
        f"Image shape {h}x{w} must be divisible by 2**(num_levels-1) = {down} "
        f"for a {num_levels}-scale U-Net (config.model.channels_per_block).")
  if spatial > 1:
    if not is_split(h, spatial, min_rows_per_shard):
      raise ValueError(
          f"Image height {h} must be divisible by config.mesh.spatial="
          f"{spatial} with at least config.mesh.min_rows_per_shard="
          f"{min_rows_per_shard} rows per shard.")
    for level, hl in enumerate(level_heights(h, num_levels)):
      # By construction a split level divides evenly; the check documents the
      # invariant and guards against a changed rule.
      if is_split(hl, spatial, min_rows_per_shard) and hl % spatial:
        raise ValueError(
            f"Level {level} has height {hl}, not divisible by "
            f"config.mesh.spatial={spatial}.")


def split_levels(image_height: int, num_levels: int, spatial: int,
                 min_rows_per_shard: int = 2) -> list[bool]:
  """Which processing scales are partitioned over 'spatial' (finest first)."""
  return [is_split(hl, spatial, min_rows_per_shard)
          for hl in level_heights(image_height, num_levels)]


# ----------------------------------------------------------------------------
# Host data -> global arrays.
# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DataFeed:
  """Which part of the global batch this process loads.

  Processes whose devices need the same batch rows (when 'spatial' crosses a
  process boundary) share a `feed_index` and load identical data.

  Attributes:
    feed_index: pass as `process_index` to the input pipeline.
    feed_count: pass as `process_count` to the input pipeline.
    local_batch_size: rows this process loads.
  """
  feed_index: int
  feed_count: int
  local_batch_size: int


def data_feed(mesh: Mesh, global_batch_size: int) -> DataFeed:
  """Computes this process's share of the global batch.

  Raises:
    ValueError: if the rows this process's devices hold are not one
      contiguous, equal-sized block (an unusual device layout).
  """
  sharding = NamedSharding(mesh, P("data"))
  shape = (global_batch_size,)
  ranges = set()
  per_process = {}
  for d, idx in sharding.devices_indices_map(shape).items():
    start, stop, _ = idx[0].indices(global_batch_size)
    per_process.setdefault(d.process_index, set()).add((start, stop))
  for p, rows in per_process.items():
    lo = min(r[0] for r in rows)
    hi = max(r[1] for r in rows)
    covered = sum(r[1] - r[0] for r in rows)
    if covered != hi - lo:
      raise ValueError(
          f"Process {p}'s devices hold non-contiguous batch rows "
          f"{sorted(rows)}; use a process-major device order.")
    ranges.add((lo, hi))
  ordered = sorted(ranges)
  sizes = {hi - lo for lo, hi in ordered}
  if len(sizes) != 1 or any(
      ordered[i][1] != ordered[i + 1][0] for i in range(len(ordered) - 1)):
    raise ValueError(
        f"Processes hold overlapping or unequal batch row ranges {ordered}.")
  rows = per_process[jax.process_index()]
  mine = (min(r[0] for r in rows), max(r[1] for r in rows))
  return DataFeed(feed_index=ordered.index(mine), feed_count=len(ordered),
                  local_batch_size=mine[1] - mine[0])


def batch_spec(key: str, ndim: int, height: int | None, spatial: int,
               min_rows_per_shard: int = 2) -> P:
  """PartitionSpec for one batch entry (batch on 'data', H on 'spatial')."""
  axis = _HEIGHT_AXIS.get(key)
  if (axis is None or axis >= ndim or height is None or
      not is_split(height, spatial, min_rows_per_shard)):
    return P("data")
  spec = [None] * ndim
  spec[0] = "data"
  spec[axis] = "spatial"
  return P(*spec)


def batch_shardings(mesh: Mesh, batch: Mapping[str, Any], *,
                    min_rows_per_shard: int = 2) -> dict[str, NamedSharding]:
  """NamedShardings for every entry of a (host-local or global) batch."""
  spatial = spatial_size(mesh)
  out = {}
  for key, value in batch.items():
    ndim = np.ndim(value)
    axis = _HEIGHT_AXIS.get(key)
    height = value.shape[axis] if axis is not None and axis < ndim else None
    out[key] = NamedSharding(
        mesh, batch_spec(key, ndim, height, spatial, min_rows_per_shard))
  return out


def make_global_batch(local_batch: Mapping[str, np.ndarray], mesh: Mesh,
                      feed: DataFeed, *, min_rows_per_shard: int = 2
                      ) -> dict[str, jax.Array]:
  """Turns this process's numpy share into global, sharded jax.Arrays.

  Non-array entries (e.g. `image_id` bytes) are dropped: they stay on host.
  """
  arrays = {k: v for k, v in local_batch.items()
            if isinstance(v, np.ndarray) and v.dtype.kind in "biuf"}
  shardings = batch_shardings(mesh, arrays,
                              min_rows_per_shard=min_rows_per_shard)
  out = {}
  for key, value in arrays.items():
    if value.shape[0] != feed.local_batch_size:
      raise ValueError(
          f"Batch entry {key!r} has {value.shape[0]} rows on process "
          f"{jax.process_index()}, expected {feed.local_batch_size}.")
    global_shape = (value.shape[0] * feed.feed_count,) + value.shape[1:]
    out[key] = jax.make_array_from_process_local_data(
        shardings[key], value, global_shape)
  return out


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())
