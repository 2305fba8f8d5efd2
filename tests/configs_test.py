# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Every experiment config builds, documents itself, matches the paper
settings, traces at full size (jax.eval_shape only: nothing full-size is
compiled) and its smoke variant trains for a few steps on CPU."""

import ast
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpunet import config_lib
from hpunet import geco
from hpunet import networks as networks_lib
from hpunet import objectives
from hpunet import sharding
from hpunet import train

_NAMES = config_lib.config_names()
_BASE = {  # derived config -> the config it imports and overrides
    "lidc_global_latents": "lidc",
    "lidc_local_latents": "lidc",
    "lidc_no_topk": "lidc",
    "lidc_spunet": "lidc",
    "folder": "lidc",
    "folder_spunet": "folder",
    "snemi3d_spunet": "snemi3d",
    "synthetic_spunet": "synthetic",
    "synthetic_global_latents": "synthetic",
    "synthetic_local_latents": "synthetic",
    "synthetic_no_topk": "synthetic",
    "lidc_spunet_fixed_prior": "lidc_spunet",
    "lidc_spunet_fixed_prior_no_context": "lidc_spunet",
    "lidc_spunet_latents_at_input": "lidc_spunet",
    "synthetic_spunet_fixed_prior": "synthetic_spunet",
    "synthetic_spunet_fixed_prior_no_context": "synthetic_spunet",
    "synthetic_spunet_latents_at_input": "synthetic_spunet",
    "lidc_i2i_vae": "lidc_spunet",
    "synthetic_i2i_vae": "synthetic_spunet",
    "cityscapes_flips_i2i_vae": "cityscapes_flips_spunet",
}
# The sPU-Net paper's baselines (Sec. 3.2), each derived from its dataset's
# sPU-Net config: same data, schedule and U-Net core.
_BASELINES = ("dropout_unet", "ensemble", "mheads")
_BASE.update({f"{d}_{b}": f"{s}_spunet" for d, s in (
    ("lidc", "lidc"), ("cityscapes_flips", "cityscapes_flips"),
    ("synthetic", "synthetic")) for b in _BASELINES})
_SECTIONS = ("Seed", "Input", "Model", "Loss", "Optimizer", "Durations",
             "Evals", "Mesh")


def _source(name):
  with open(config_lib.config_path(name), encoding="utf-8") as f:
    return f.read()


def test_all_issue_configs_exist():
  assert set(_NAMES) == {
      "lidc", "snemi3d", "cityscapes", "synthetic", "lidc_spunet",
      "snemi3d_spunet", "cityscapes_flips_spunet", "synthetic_spunet",
      "lidc_global_latents", "lidc_local_latents", "lidc_no_topk",
      "synthetic_global_latents", "synthetic_local_latents",
      "synthetic_no_topk", "folder", "folder_spunet",
      "lidc_spunet_fixed_prior", "lidc_spunet_fixed_prior_no_context",
      "lidc_spunet_latents_at_input", "synthetic_spunet_fixed_prior",
      "synthetic_spunet_fixed_prior_no_context",
      "synthetic_spunet_latents_at_input", "lidc_i2i_vae",
      "synthetic_i2i_vae", "cityscapes_flips_i2i_vae"} | {
          f"{d}_{b}" for d in ("lidc", "cityscapes_flips", "synthetic")
          for b in _BASELINES}


@pytest.mark.parametrize("name", _NAMES)
def test_config_builds_locks_and_documents_itself(name):
  source = _source(name)
  doc = ast.get_docstring(ast.parse(source))
  assert f"python -m hpunet.train --config=configs/{name}.py" in doc
  assert f"--config=configs/{name}.py:smoke" in doc
  assert "Expected cost" in doc
  assert re.search(r"Table|Fig|Appendix|Section|default", doc, re.I), doc
  assert "EXPECTED_" not in doc  # no placeholder left
  for arg in (None, "smoke"):
    config = config_lib.load_config(name, arg)
    config.lock()
    assert config.model.name in ("hpunet", "spunet", "dropout_unet",
                                 "unet_ensemble", "mheads")
    lrs = config.lr_schedule.learning_rates
    assert len(lrs) == len(config.lr_schedule.boundaries) + 1
    if arg is None:
      assert max(config.lr_schedule.boundaries) < config.num_train_steps
  with pytest.raises(ValueError, match="Unknown config variant"):
    config_lib.load_config(name, "bogus")
  if name in _BASE:  # derived by import + override, not a copy
    # lidc_spunet loads the paper setting and applies its own smoke sizes.
    assert (f'load_config("{_BASE[name]}", arg)' in source or
            f'load_config("{_BASE[name]}")' in source)
    assert "config.input = " not in source
  else:
    positions = [source.index(f"# --- {s}") for s in _SECTIONS]
    assert positions == sorted(positions), name


def test_derived_configs_change_only_their_ablation():
  def diff(a, b):
    a, b = a.to_dict(), b.to_dict()
    return {f"{k}.{kk}" for k in a for kk in
            (a[k] if isinstance(a[k], dict) else {None: 0})
            if (a[k].get(kk) if isinstance(a[k], dict) else a[k]) !=
            (b[k].get(kk) if isinstance(b[k], dict) else b[k])}

  lidc = config_lib.load_config("lidc")
  assert diff(config_lib.load_config("lidc_no_topk"), lidc) == {
      "loss.top_k_percentage"}
  assert diff(config_lib.load_config("lidc_local_latents"), lidc) == {
      "model.latent_dims"}
  assert diff(config_lib.load_config("lidc_global_latents"), lidc) == {
      "model.latent_dims", "loss.kappa"}
  synthetic = config_lib.load_config("synthetic")
  for ablation, lidc_ablation in (("synthetic_no_topk", "lidc_no_topk"),
                                  ("synthetic_local_latents",
                                   "lidc_local_latents"),
                                  ("synthetic_global_latents",
                                   "lidc_global_latents")):
    # The synthetic ablations change what the LIDC ones change, the same way.
    a, la = config_lib.load_config(ablation), config_lib.load_config(
        lidc_ablation)
    assert diff(a, synthetic) == diff(la, lidc), ablation
    for field in diff(a, synthetic):
      section, key = field.split(".")
      assert a[section][key] == la[section][key], field
  glob = config_lib.load_config("lidc_global_latents")
  assert tuple(glob.model.latent_dims) == (85,) and glob.loss.kappa == 0.15
  assert config_lib.load_config("lidc_no_topk").loss.top_k_percentage is None


# (name, first lr, last lr, drops, steps, batch, kappa or beta, classes)
_PAPER = {
    "lidc": (1e-4, 5e-6, 4, 240_000, 32, 0.05, 2),
    "snemi3d": (1e-4, 1e-7, 5, 450_000, 24, 1.20, 16),
    "cityscapes": (2e-4, 1e-4, 1, 100_000, 128, 0.77, 24),
    "lidc_spunet": (1e-4, 1e-6, 5, 240_000, 32, 1.0, 2),
    "snemi3d_spunet": (1e-4, 1e-7, 5, 450_000, 24, 1.0, 16),
    "cityscapes_flips_spunet": (1e-4, 1e-5, 3, 240_000, 16, 1.0, 24),
    "lidc_i2i_vae": (1e-4, 1e-6, 5, 240_000, 32, 10.0, 2),
    "cityscapes_flips_i2i_vae": (1e-4, 1e-5, 3, 240_000, 16, 1.0, 24),
}


@pytest.mark.parametrize("name", sorted(_PAPER))
def test_paper_settings(name):
  first, last, drops, steps, batch, weight, classes = _PAPER[name]
  config = config_lib.load_config(name)
  lrs = config.lr_schedule.learning_rates
  assert (lrs[0], lrs[-1], len(lrs) - 1) == (first, last, drops)
  assert list(lrs) == sorted(lrs, reverse=True)
  assert (config.num_train_steps, config.input.batch_size) == (steps, batch)
  assert config.model.num_classes == classes == config.input.num_classes
  if config.loss.type == "geco":
    assert config.loss.kappa == weight
    assert config.loss.top_k_percentage == 0.02
  else:
    assert config.loss.beta == weight and config.loss.top_k_percentage is None
  assert config.loss.weight_decay == 1e-5
  assert (config.optimizer.name, config.optimizer.b1, config.optimizer.b2) == (
      "adam", 0.9, 0.999)


def test_model_settings_of_the_papers():
  lidc = config_lib.load_config("lidc").model
  assert tuple(lidc.channels_per_block) == (24, 48, 96, 192, 192, 192, 192,
                                            192)
  assert tuple(lidc.down_channels_per_block) == (12, 24, 48, 96, 96, 96, 96,
                                                 96)
  snemi = config_lib.load_config("snemi3d").model
  assert tuple(snemi.channels_per_block) == (32, 64, 128) + (256,) * 6
  city = config_lib.load_config("cityscapes")
  assert tuple(city.model.channels_per_block) == (32, 64, 128) + (256,) * 6
  assert city.model.blocks_per_level == 2 and city.mesh.spatial == 4
  assert tuple(city.input.crop_size) == (512, 1024)
  spunet = config_lib.load_config("snemi3d_spunet").model
  assert spunet.latent_dim == 85
  assert tuple(spunet.channels_per_block) == (24, 48, 96) + (192,) * 6
  flips = config_lib.load_config("cityscapes_flips_spunet")
  assert len(flips.model.channels_per_block) == 6
  assert tuple(flips.input.crop_size) == (256, 512)


def test_cityscapes_flips_reference_code_variant():
  """The paper's width (default) and the reference code's, as documented in
  the config: parameters from jax.eval_shape."""
  paper = config_lib.load_config("cityscapes_flips_spunet")
  ref = config_lib.load_config("cityscapes_flips_spunet", "reference_code")
  assert tuple(ref.model.channels_per_block) == (32, 64, 128) + (192,) * 4
  assert (ref.model.num_fcomb_convs, ref.model.resize_method,
          ref.model.posterior_seg_encoding, ref.model.w_init,
          ref.loss.weight_decay_mode) == (
              4, "bilinear_align_corners", "centred", "he_normal",
              "spunet_reference")
  assert paper.model.unlabelled_pixels == ref.model.unlabelled_pixels == (
      "no_class")
  assert ref.input == paper.input and ref.lr_schedule == paper.lr_schedule
  img = jax.ShapeDtypeStruct((1, 256, 512, 3), jnp.float32)
  seg = jax.ShapeDtypeStruct((1, 256, 512, 24), jnp.float32)
  counts = {}
  for name, config in (("paper", paper), ("ref", ref)):
    networks = networks_lib.make_networks(config.model)
    counts[name] = networks_lib.component_param_counts(jax.eval_shape(
        networks.init, jax.random.key(0), seg=seg, img=img))
  assert counts["paper"]["total"] == 110_106_576  # "110M" in the docstring
  assert counts["ref"]["total"] == 17_954_736  # "18.0M"
  # f_comb: [32 features, 6 latents] -> 32 -> 32 -> 32 -> 24 classes.
  assert counts["ref"]["f_comb"] == (38 * 32 + 32) + 2 * (32 * 32 + 32) + (
      32 * 24 + 24)
  assert counts["paper"]["f_comb"] == (38 * 32 + 32) + (32 * 32 + 32) + (
      32 * 24 + 24)


def test_input_sections_are_valid_pipeline_configs():
  from hpunet import augment  # pylint: disable=g-import-not-at-top
  from hpunet import input_pipeline  # pylint: disable=g-import-not-at-top
  for name in _NAMES:
    for arg in (None, "smoke"):
      config = config_lib.load_config(name, arg)
      unknown = set(config.input.keys()) - input_pipeline.INPUT_KEYS
      assert not unknown, (name, unknown)
      unknown_aug = set(config.input.augment.keys()) - set(
          augment.augment_off().keys())
      assert not unknown_aug, (name, unknown_aug)
      assert config.input.num_classes == config.model.num_classes


def _latent_grids(name, config):
  h, w = config.input.crop_size
  return {
      "lidc": [(1, 1, 1), (2, 2, 1), (4, 4, 1), (8, 8, 1)],
      "lidc_no_topk": [(1, 1, 1), (2, 2, 1), (4, 4, 1), (8, 8, 1)],
      "lidc_local_latents": [None, None, None, (8, 8, 1)],
      "lidc_global_latents": [(1, 1, 85)],
      "snemi3d": [(1, 1, 1), (2, 2, 1), (4, 4, 1), (8, 8, 1)],
      "cityscapes": [(2, 4, 1), (4, 8, 1), (8, 16, 1), (16, 32, 1)],
      "synthetic": [(1, 1, 1), (2, 2, 1), (4, 4, 1), (8, 8, 1)],
      "lidc_spunet": [(1, 1, 6)],
      "snemi3d_spunet": [(1, 1, 85)],
      "cityscapes_flips_spunet": [(1, 1, 6)],
      "synthetic_spunet": [(1, 1, 6)],
      "synthetic_no_topk": [(1, 1, 1), (2, 2, 1), (4, 4, 1), (8, 8, 1)],
      "synthetic_local_latents": [None, None, None, (8, 8, 1)],
      "synthetic_global_latents": [(1, 1, 85)],
      "folder": [(1, 1, 1), (2, 2, 1), (4, 4, 1), (8, 8, 1)],
      "folder_spunet": [(1, 1, 6)],
      **{f"{d}_{b}": [] for d in ("lidc", "cityscapes_flips", "synthetic")
         for b in _BASELINES},  # no latents
      "lidc_spunet_fixed_prior": [(1, 1, 6)],
      "lidc_spunet_fixed_prior_no_context": [(1, 1, 6)],
      "lidc_spunet_latents_at_input": [(1, 1, 6)],
      "synthetic_spunet_fixed_prior": [(1, 1, 6)],
      "synthetic_spunet_fixed_prior_no_context": [(1, 1, 6)],
      "synthetic_spunet_latents_at_input": [(1, 1, 6)],
      "lidc_i2i_vae": [(1, 1, 3)],
      "synthetic_i2i_vae": [(1, 1, 3)],
      "cityscapes_flips_i2i_vae": [(1, 1, 3)],
  }[name], (h, w)


@pytest.mark.parametrize("name", _NAMES)
def test_full_size_model_traces(name):
  """jax.eval_shape of init, reconstruction and the objective at full size."""
  config = config_lib.load_config(name)
  networks = networks_lib.make_networks(config.model)
  grids, (h, w) = _latent_grids(name, config)
  b = 1
  batch = {"image": jax.ShapeDtypeStruct((b, h, w, config.input.channels),
                                         jnp.float32),
           "seg": jax.ShapeDtypeStruct((b, h, w), jnp.int32),
           "mask": jax.ShapeDtypeStruct((b, h, w), jnp.float32)}
  params = jax.eval_shape(
      lambda k, bt: objectives.init_params(networks, k, bt, config.loss),
      jax.random.key(0), batch)
  seg = jax.ShapeDtypeStruct((b, h, w, config.model.num_classes), jnp.float32)
  if networks.has_posterior:
    rec = jax.eval_shape(
        lambda p, k, s, i: networks.reconstruct_full(p, k, seg=s, img=i),
        params["model"], jax.random.key(1), seg, batch["image"])
  else:  # the baselines: samples instead (no posterior, no latents)
    rec = jax.eval_shape(
        lambda p, k, i: networks.sample(p, k, i), params["model"],
        jax.random.key(1), batch["image"])
  assert rec.logits.shape == (b, h, w, config.model.num_classes)
  shapes = [None if z is None else tuple(z.shape[1:])
            for z in rec.used_latents]
  assert shapes == grids
  loss, (_, metrics) = jax.eval_shape(
      lambda p, k, bt: objectives.objective(
          p, geco.init_geco_state(), k, bt, networks=networks,
          loss_config=config.loss), params, jax.random.key(2), batch)
  assert loss.shape == ()
  assert ("kl_sum" in metrics) == networks.has_posterior
  num_params = sum(int(np.prod(x.shape))
                   for x in jax.tree.leaves(params["model"]))
  assert num_params > 1e5, num_params


def _host_state(config, networks, optimizer, batch, seed=0):
  """A train state with host-made parameters: no RNG kernels to compile.

  (The real jitted init is exercised by tests/train_test.py's end-to-end
  runs; here every config's *train step* is what is under test.)
  """
  params = objectives.init_params_on_host(networks, batch, config.loss,
                                          seed=seed)
  return train.TrainState(step=np.int32(0), params=params,
                          opt_state=optimizer.init(params),
                          geco_state=geco.init_geco_state())


@pytest.mark.parametrize("name", _NAMES)
def test_smoke_variant_trains(name, fast_compiles):
  del fast_compiles
  config = config_lib.load_config(name, "smoke")
  config.mesh.data, config.mesh.spatial = 1, 1
  mesh = sharding.create_mesh(config.mesh, jax.devices()[:1])
  networks = networks_lib.make_networks(
      config.model, activation_constraint=sharding.make_activation_constraint(
          mesh))
  optimizer = train.create_optimizer(config)
  h, w = config.input.crop_size
  b = config.input.batch_size
  rng = np.random.default_rng(0)
  local = {"image": rng.random((b, h, w, config.input.channels), np.float32),
           "seg": rng.integers(0, config.model.num_classes,
                               (b, h, w)).astype(np.int32),
           "mask": (rng.random((b, h, w)) > 0.1).astype(np.float32)}
  batch = sharding.make_global_batch(local, mesh,
                                     sharding.data_feed(mesh, b))
  state = jax.device_put(_host_state(config, networks, optimizer, local),
                         sharding.replicated(mesh))
  start = jax.device_get(state.params)
  step = train.make_train_step(config, networks, optimizer, mesh,
                               jax.random.key(1),
                               {k: v.sharding for k, v in batch.items()})
  losses = []
  for _ in range(3):
    state, metrics = step.fn(state, batch)
    losses.append(float(metrics["loss"]))
  assert step.traces() == 1  # no recompilation after the first step
  assert int(state.step) == 3
  assert np.all(np.isfinite(losses)), losses
  assert metrics["learning_rate"] == pytest.approx(
      config.lr_schedule.learning_rates[0])
  moved = [float(np.max(np.abs(a - b_))) for a, b_ in zip(
      jax.tree.leaves(jax.device_get(state.params["model"])),
      jax.tree.leaves(start["model"]))]
  assert min(moved) > 0.0  # every parameter was updated
  if config.loss.type == "geco":
    assert bool(state.geco_state.initialized)
    assert float(metrics["lagmul"]) != 1.0


def test_synthetic_long_variant_changes_only_durations():
  base = config_lib.load_config("synthetic").to_dict()
  long = config_lib.load_config("synthetic", "long").to_dict()
  assert long["num_train_steps"] == 3 * base["num_train_steps"]
  assert long["lr_schedule"]["boundaries"] == (4_200,)
  changed = {k for k in base if base[k] != long[k]}
  assert changed == {"num_train_steps", "lr_schedule",
                     "checkpoint_every_steps", "evals"}
  assert long["model"] == base["model"] and long["loss"] == base["loss"]


def test_config_names_resolve_from_any_directory(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # outside the checkout
  assert config_lib.load_config("lidc_spunet").model.name == "spunet"
  argv = ["prog", "--config=lidc:smoke", "--config=configs/lidc.py",
          "--config=no_such_config", "--workdir=w"]
  assert config_lib.resolve_config_flags(argv) == [
      "prog", f"--config={config_lib.config_path('lidc')}:smoke",
      "--config=configs/lidc.py", "--config=no_such_config", "--workdir=w"]
  assert os.path.isabs(config_lib.config_path("lidc"))
