# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Tests of hpunet/sharding.py and of the spatially partitioned train step.

Uses the 8 fake CPU devices of the root conftest.py. The spatial test runs
one train step of a tiny HPU-Net (32x32 -> 1x1 bottom, so its coarse levels do
not split over 4 spatial shards) on a (2 data x 4 spatial) mesh and on one
device, and compares loss, metrics and parameters, then inspects the compiled
HLO: halo exchanges (collective-permute), no all-gather of full-resolution
activations or of the top-k scores.
"""

import functools
import re

import jax
import jax.numpy as jnp
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
import ml_collections
import numpy as np
import pytest

from hpunet import config_lib
from hpunet import geco
from hpunet import losses
from hpunet import networks as networks_lib
from hpunet import objectives
from hpunet import sharding
from hpunet import train

_H = _W = 32
_BATCH = 4


def _mesh_config(data, spatial, min_rows=1):
  return ml_collections.ConfigDict(
      dict(data=data, spatial=spatial, min_rows_per_shard=min_rows))


# --- Mesh, rules, validation -------------------------------------------------


def test_create_mesh_has_auto_axes_and_process_major_layout():
  mesh = sharding.create_mesh(_mesh_config(-1, 4))
  assert dict(mesh.shape) == {"data": 2, "spatial": 4}
  assert mesh.axis_names == ("data", "spatial")
  assert all(t == AxisType.Auto for t in mesh.axis_types)
  ids = np.vectorize(lambda d: d.id)(mesh.devices)
  np.testing.assert_array_equal(ids, np.arange(8).reshape(2, 4))
  one = sharding.create_mesh(_mesh_config(1, 1), jax.devices()[:1])
  assert dict(one.shape) == {"data": 1, "spatial": 1}


def test_create_mesh_errors_name_the_field():
  with pytest.raises(ValueError, match="config.mesh.spatial=3"):
    sharding.create_mesh(_mesh_config(-1, 3))
  with pytest.raises(ValueError, match=r"data \(5\) x spatial \(2\)"):
    sharding.create_mesh(_mesh_config(5, 2))
  assert sharding.create_mesh(_mesh_config(3, 2)).size == 6  # first 6


def test_feature_map_spec_splits_only_even_heights():
  spec = sharding.feature_map_spec
  assert spec(32, 4) == P("data", "spatial")
  assert spec(8, 4) == P("data", "spatial")  # 2 rows per shard
  assert spec(4, 4) == P("data")  # 1 row per shard: below the default 2
  assert spec(4, 4, min_rows_per_shard=1) == P("data", "spatial")
  assert spec(2, 4, min_rows_per_shard=1) == P("data")  # the 2x4 bottom
  assert spec(1, 4) == P("data")  # the 1x1 LIDC bottom
  assert spec(6, 4) == P("data")  # uneven: never padded
  assert spec(8, 4, min_rows_per_shard=4) == P("data")
  assert spec(16, 4, min_rows_per_shard=4) == P("data", "spatial")
  assert spec(32, 1) == P("data")
  assert spec(32, 4, batch=3, data=2) == P(None, "spatial")
  assert sharding.split_levels(512, 9, 4) == [True] * 7 + [False] * 2
  assert sharding.split_levels(512, 9, 4, 1) == [True] * 8 + [False]
  assert sharding.split_levels(128, 8, 4, 4) == [True] * 4 + [False] * 4


def test_validate_mesh_errors():
  mesh = sharding.create_mesh(_mesh_config(2, 4))
  sharding.validate_mesh(mesh, global_batch_size=4, image_shape=(32, 32),
                         num_levels=6)
  with pytest.raises(ValueError, match="config.input.batch_size=3"):
    sharding.validate_mesh(mesh, global_batch_size=3, image_shape=(32, 32),
                           num_levels=6)
  with pytest.raises(ValueError, match=r"divisible by 2\*\*\(num_levels-1\)"):
    sharding.validate_mesh(mesh, global_batch_size=4, image_shape=(32, 48),
                           num_levels=6)
  with pytest.raises(ValueError, match="Image height 4 must be divisible"):
    sharding.validate_mesh(mesh, global_batch_size=4, image_shape=(4, 4),
                           num_levels=1, min_rows_per_shard=2)


def test_data_feed_and_global_batch_single_process():
  mesh = sharding.create_mesh(_mesh_config(2, 4))
  feed = sharding.data_feed(mesh, 4)
  assert feed == sharding.DataFeed(feed_index=0, feed_count=1,
                                   local_batch_size=4)
  local = {"image": np.arange(4 * 8 * 8 * 1, dtype=np.float32).reshape(
      4, 8, 8, 1), "seg": np.zeros((4, 8, 8), np.int32),
           "batch_mask": np.array([True, True, False, True]),
           "image_id": np.array([b"a", b"b", b"c", b"d"])}
  batch = sharding.make_global_batch(local, mesh, feed)
  assert set(batch) == {"image", "seg", "batch_mask"}  # bytes stay on host
  assert batch["image"].sharding.spec == P("data", "spatial", None, None)
  assert batch["batch_mask"].sharding.spec == P("data")
  np.testing.assert_array_equal(np.asarray(batch["image"]), local["image"])
  # Each device holds its (2 examples, 2 rows) block.
  shard = batch["image"].addressable_shards[5]  # mesh position (1, 1)
  assert shard.data.shape == (2, 2, 8, 1)
  np.testing.assert_array_equal(np.asarray(shard.data),
                                local["image"][2:4, 2:4])


# --- Exact top-k -------------------------------------------------------------


def _lax_top_k_mask(x, k):
  flat = jnp.reshape(x, -1)
  _, idx = jax.lax.top_k(flat, k)
  return jnp.zeros(flat.shape).at[idx].set(1.0).reshape(x.shape)


def test_top_k_mask_equals_lax_top_k_including_ties_and_minus_inf():
  rng = np.random.default_rng(0)
  fn = jax.jit(losses.select_top_k, static_argnums=1)
  shape = (3, 5, 7)
  for trial, k in enumerate((0, 1, 17, 60, 104, 105)):
    x = rng.normal(size=shape).astype(np.float32)
    if trial in (1, 2, 4):
      x = np.round(x)  # many ties
    if trial in (2, 3):
      x[rng.random(shape) < 0.3] = -np.inf  # masked pixels
    if trial == 5:
      x[:] = 2.0  # all equal
    got = np.asarray(fn(x, k))
    assert got.sum() == k
    np.testing.assert_array_equal(got, np.asarray(_lax_top_k_mask(x, k)))


def test_top_k_mask_sharded_selects_the_same_pixels_without_gathers():
  mesh = sharding.create_mesh(_mesh_config(2, 4))
  spec = NamedSharding(mesh, P("data", "spatial"))
  scores = jax.random.gumbel(jax.random.key(0), (4, 64, 64))
  k = int(0.02 * scores.size)
  fn = jax.jit(losses.select_top_k, static_argnums=1, in_shardings=(spec,),
               out_shardings=spec)
  compiled = fn.lower(scores, k).compile()
  text = compiled.as_text()
  assert " all-gather(" not in text
  assert " all-to-all(" not in text
  # Only scalar counts cross devices.
  reduces = re.findall(r"= (\S+) all-reduce\(", text)
  assert reduces and all(r.startswith("s32[]") for r in reduces), reduces
  got = compiled(jax.device_put(scores, spec))
  np.testing.assert_array_equal(np.asarray(got),
                                np.asarray(_lax_top_k_mask(scores, k)))


# --- The partitioned train step ----------------------------------------------


def _smoke_config():
  config = config_lib.load_config("synthetic", "smoke")
  config.input.batch_size = _BATCH
  return config


def _host_params(networks, config, batch, seed=0):
  return objectives.init_params_on_host(networks, batch, config.loss,
                                        seed=seed)


def _local_batch():
  rng = np.random.default_rng(1)
  mask = np.ones((_BATCH, _H, _W), np.float32)
  mask[:, :3] = 0.0  # "augmentation padding"
  return {"image": rng.random((_BATCH, _H, _W, 1)).astype(np.float32),
          "seg": rng.integers(0, 2, (_BATCH, _H, _W)).astype(np.int32),
          "mask": mask}


def _one_step(config, devices, data, spatial):
  mesh = sharding.create_mesh(_mesh_config(data, spatial), devices)
  networks = networks_lib.make_networks(
      config.model,
      activation_constraint=sharding.make_activation_constraint(mesh))
  optimizer = train.create_optimizer(config)
  local = _local_batch()
  batch = sharding.make_global_batch(local, mesh,
                                     sharding.data_feed(mesh, _BATCH))
  params = _host_params(networks, config, local)
  state = train.TrainState(
      step=np.int32(0), params=params, opt_state=optimizer.init(params),
      geco_state=geco.init_geco_state())
  state = jax.device_put(state, sharding.replicated(mesh))
  step = train.make_train_step(config, networks, optimizer, mesh,
                               jax.random.key(7),
                               {k: v.sharding for k, v in batch.items()})
  compiled = step.fn.lower(state, batch).compile()
  new_state, metrics = compiled(state, batch)
  return jax.device_get(new_state), jax.device_get(metrics), compiled


@pytest.fixture(scope="module")
def spatial_and_single():
  previous = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)  # faster compile
  try:
    config = _smoke_config()
    single = _one_step(config, jax.devices()[:1], 1, 1)
    spatial = _one_step(config, jax.devices(), 2, 4)
  finally:
    jax.config.update("jax_disable_most_optimizations", previous)
  return single, spatial


def test_spatial_step_matches_unpartitioned_step(spatial_and_single):
  (s1, m1, _), (s8, m8, _) = spatial_and_single
  for key in ("loss", "rec_loss_sum", "kl_sum", "num_valid_pixels",
              "lagmul", "ma_rec_loss_sum"):
    np.testing.assert_allclose(m8[key], m1[key], rtol=2e-5, err_msg=key)
  # The top-k selected the same number of pixels: 2% of 4*32*32 = 81,
  # none of them masked.
  assert m1["num_valid_pixels"] == pytest.approx(81 / _BATCH)
  assert int(s8.step) == 1 and bool(s8.geco_state.initialized)
  diffs = jax.tree.map(
      lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))),
      s1.params, s8.params)
  assert max(jax.tree.leaves(diffs)) < 1e-6, diffs
  # The step did update: Adam's first step moves every weight by ~lr.
  lr = _smoke_config().lr_schedule.learning_rates[0]
  start = _host_params(
      networks_lib.make_networks(_smoke_config().model), _smoke_config(),
      _local_batch())
  moved = jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), s8.params,
                       start)
  assert all(0.5 * lr < m < 1.5 * lr for m in jax.tree.leaves(moved)), moved


def test_spatial_step_exchanges_halos_not_activations(spatial_and_single):
  _, (_, _, compiled) = spatial_and_single
  text = compiled.as_text()
  assert len(re.findall(r" collective-permute\(", text)) > 20
  gathers = re.findall(r"= [a-z0-9]+\[([0-9,]*)\][^ ]* all-gather\(", text)
  for dims in gathers:
    shape = [int(d) for d in dims.split(",") if d]
    # Allowed: the coarse maps resharded to P('data') by the activation
    # constraint ([B/2, h <= 4, w, C]). Not allowed: anything with full (or
    # half) resolution rows, or flattened pixel scores (the batch-global
    # top-k), which means activations were gathered.
    assert len(shape) == 4 and shape[1] <= 4, (
        f"all-gather of {shape}: activations or top-k scores are gathered "
        "(see hpunet/sharding.py top_k_mask and losses.top_k_mask)")
  assert " all-to-all(" not in text


def test_coarse_constraint_is_required_for_correct_gradients():
  """The resharding rule keeps gradients exact at non-dividing levels.

  Average-pool a 4-row map split over 4 shards down to 2 rows and convolve.
  With the rule the 2-row map is pinned to P('data') and the gradient equals
  the unpartitioned one. (Left to the partitioner, a padded 2-over-4 split,
  jax 0.10.2 returned gradients off by up to 100%: see
  benchmarks/spatial_memory.py --no_constraint and the README.)
  """
  mesh = sharding.create_mesh(_mesh_config(2, 4))
  split = NamedSharding(mesh, P("data", "spatial"))

  def conv(x, w):
    return jax.lax.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

  def pool(x):
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).mean((2, 4))

  def loss(w, x, rule):
    x = jax.lax.with_sharding_constraint(x, split)
    y = pool(x)
    if rule:
      y = sharding.make_activation_constraint(mesh)(y)
    return jnp.sum(conv(y, w) ** 2)

  w = jax.random.normal(jax.random.key(0), (3, 3, 8, 8))
  x = jax.random.normal(jax.random.key(1), (4, 4, 4, 8))
  expected = jax.grad(lambda w, x: jnp.sum(conv(pool(x), w) ** 2))(w, x)
  ours = jax.jit(jax.grad(functools.partial(loss, rule=True)))(w, x)
  np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-4)
