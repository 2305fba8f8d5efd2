# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Tests of the standard Probabilistic U-Net (hpunet/spunet.py)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpunet import model as hpu_model
from hpunet import networks as networks_lib

_CONFIG = dict(name="spunet", channels_per_block=(4, 8, 16), latent_dim=3,
               num_classes=3, convs_per_block=2, fcomb_channels=5)


def _inputs(seed=0):
  rng = np.random.RandomState(seed)
  img = jnp.asarray(rng.uniform(size=(2, 16, 16, 1)), jnp.float32)
  seg = jnp.asarray(np.eye(3)[rng.randint(0, 3, size=(2, 16, 16))],
                    jnp.float32)
  return seg, img


@functools.lru_cache(maxsize=None)
def _networks_and_params():
  networks = networks_lib.make_networks(_CONFIG)
  seg, img = _inputs()
  params = jax.jit(networks.init)(jax.random.key(0), seg=seg, img=img)
  return networks, params


def test_architecture_of_the_paper():
  networks, params = _networks_and_params()
  shapes = {k: v["w"].shape for k, v in params.items()}
  # U-Net blocks: three (here two) 3x3 convs per scale, widths double.
  assert shapes["spunet/~/unet_encoder/~/block_0/~/conv_0"] == (3, 3, 1, 4)
  assert shapes["spunet/~/unet_encoder/~/block_2/~/conv_1"] == (3, 3, 16, 16)
  assert shapes["spunet/~/decoder_1/~/conv_0"] == (3, 3, 16 + 8, 8)
  # Prior sees the image, posterior [seg, img]; 1x1 head to (mu, log sigma).
  assert shapes["spunet/~/prior/~/encoder/~/block_0/~/conv_0"] == (3, 3, 1, 4)
  assert shapes["spunet/~/posterior/~/encoder/~/block_0/~/conv_0"] == (3, 3, 4,
                                                                       4)
  assert shapes["spunet/~/prior/~/latent_head"] == (1, 1, 16, 6)
  # f_comb: three 1x1 convs on [features, z]; the last maps to K classes.
  assert shapes["spunet/~/f_comb_0"] == (1, 1, 4 + 3, 5)
  assert shapes["spunet/~/f_comb_1"] == (1, 1, 5, 5)
  assert shapes["spunet/~/logits"] == (1, 1, 5, 3)
  counts = networks_lib.component_param_counts(params)
  assert set(counts) == {"unet", "prior", "posterior", "f_comb", "total"}
  assert counts["total"] == sum(int(x.size) for x in jax.tree.leaves(params))


def test_sample_n_reruns_only_f_comb_and_equals_full_model():
  networks, params = _networks_and_params()
  _, img = _inputs()
  out = jax.jit(networks.sample_n_full, static_argnames="num_samples")(
      params, jax.random.key(1), img, num_samples=4)
  assert out.logits.shape == (4, 2, 16, 16, 3)
  (z,) = out.used_latents
  assert z.shape == (4, 2, 1, 1, 3)
  sample = jax.jit(networks.sample)
  for s in range(4):
    full = sample(params, jax.random.key(0), img, z_q=(z[s],))
    np.testing.assert_allclose(out.logits[s], full.logits, rtol=1e-5,
                               atol=1e-6)
  assert not np.allclose(out.logits[0], out.logits[1])
  # A global latent: the same z everywhere, so samples of one image differ
  # coherently; z is drawn from the prior of that image.
  prior = out.prior[0]
  eps = (z - prior.loc) / jnp.exp(prior.log_scale)
  assert abs(float(jnp.mean(eps))) < 1.0


def test_mean_z_q_and_reconstruction_semantics():
  networks, params = _networks_and_params()
  seg, img = _inputs()
  sample = jax.jit(networks.sample, static_argnames="mean")
  a = sample(params, jax.random.key(1), img, mean=True)
  b = sample(params, jax.random.key(2), img, mean=(True,))
  np.testing.assert_array_equal(a.logits, b.logits)
  np.testing.assert_array_equal(a.used_latents[0], a.prior[0].loc)
  c = sample(params, jax.random.key(1), img)
  d = sample(params, jax.random.key(1), img)
  e = sample(params, jax.random.key(2), img)
  np.testing.assert_array_equal(c.logits, d.logits)
  assert not np.allclose(c.logits, e.logits)
  rec = jax.jit(networks.reconstruct_full, static_argnames="mean")(
      params, jax.random.key(3), seg=seg, img=img, mean=True)
  np.testing.assert_array_equal(rec.used_latents[0], rec.posterior[0].loc)
  again = sample(params, jax.random.key(9), img, z_q=rec.used_latents)
  np.testing.assert_allclose(rec.logits, again.logits, rtol=1e-5, atol=1e-6)
  out = jax.jit(networks.train_outputs)(params, jax.random.key(3), seg=seg,
                                        img=img)
  assert len(out.kl) == 1 and out.kl[0].shape == (2,)
  assert np.all(np.asarray(out.kl[0]) > 0)
  rec = jax.jit(networks.reconstruct_full)(params, jax.random.key(3), seg=seg,
                                           img=img)
  np.testing.assert_allclose(
      out.kl[0], hpu_model.kl_divergence(rec.posterior[0], rec.prior[0]),
      rtol=1e-5)


def test_lidc_and_snemi3d_configurations():
  """The papers' sizes, checked with eval_shape (never compiled)."""
  img = jax.ShapeDtypeStruct((1, 128, 128, 1), jnp.float32)
  seg = jax.ShapeDtypeStruct((1, 128, 128, 2), jnp.float32)
  lidc = networks_lib.make_networks(dict(name="spunet"))  # paper defaults
  params = jax.eval_shape(lidc.init, jax.random.key(0), seg=seg, img=img)
  assert params["spunet/~/unet_encoder/~/block_4/~/conv_2"]["w"].shape == (
      3, 3, 512, 512)
  assert params["spunet/~/prior/~/latent_head"]["w"].shape == (1, 1, 512, 12)
  snemi = networks_lib.make_networks(dict(
      name="spunet", channels_per_block=(24, 48, 96, 192, 192, 192, 192, 192,
                                         192), latent_dim=85, num_classes=16))
  img = jax.ShapeDtypeStruct((1, 256, 256, 1), jnp.float32)
  seg = jax.ShapeDtypeStruct((1, 256, 256, 16), jnp.float32)
  params = jax.eval_shape(snemi.init, jax.random.key(0), seg=seg, img=img)
  out = jax.eval_shape(snemi.sample, params, jax.random.key(0), img)
  assert out.logits.shape == (1, 256, 256, 16)
  assert out.used_latents[0].shape == (1, 1, 1, 85)
  with pytest.raises(ValueError, match="resize_method"):
    networks_lib.make_networks(dict(name="spunet", resize_method="cubic"))
