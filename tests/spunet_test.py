# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Tests of the standard Probabilistic U-Net (hpunet/spunet.py)."""

import functools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpunet import config_lib
from hpunet import errors
from hpunet import model as hpu_model
from hpunet import networks as networks_lib
from hpunet import objectives
from hpunet import spunet
from hpunet import unet_utils
from hpunet import validation

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


# --- Appendix D ablations, the Image2Image VAE and the reference options ---

_I2I = dict(prior="fixed", posterior_sees_image=False, inject_latents="input")


@functools.lru_cache(maxsize=None)
def _variant(**options):
  """Networks, host-made parameters (no init compiled) and jitted entry
  points of `_CONFIG` with `options`."""
  networks = networks_lib.make_networks(dict(_CONFIG, **options))
  seg, img = _inputs()
  shapes = jax.eval_shape(networks.init, jax.random.key(0), seg=seg, img=img)
  rng = np.random.default_rng(0)
  params = jax.tree.map(
      lambda x: jnp.asarray(rng.standard_normal(x.shape) / np.sqrt(
          max(1, np.prod(x.shape[:-1]))), jnp.float32), shapes)
  fns = dict(
      sample=jax.jit(networks.sample, static_argnames="mean"),
      reconstruct=jax.jit(networks.reconstruct_full, static_argnames="mean"),
      train_outputs=jax.jit(networks.train_outputs))
  return networks, params, fns


def _captured_call(options, module, fn):
  """Jitted (params, *args) -> the input and output of `module`'s first
  __call__ inside fn(model, *args)."""
  model_kwargs = networks_lib.model_kwargs(dict(_CONFIG, **options))[1]

  def f(*args):
    seen = []

    def interceptor(next_f, f_args, f_kwargs, context):
      out = next_f(*f_args, **f_kwargs)
      if (context.module.module_name == module and
          context.method_name == "__call__" and not seen):
        seen.append((f_args[0], out))
      return out

    with hk.intercept_methods(interceptor):
      fn(spunet.ProbUNet(**model_kwargs), *args)
    return seen[0]

  apply = hk.transform(f).apply
  return jax.jit(lambda params, *args: apply(params, jax.random.key(5),
                                             *args))


def test_image2image_vae_prior_is_standard_normal_and_posterior_blind():
  """The fixed prior is exactly N(0, I) and the context-free posterior the
  same for two different images; the full model's are not (the control)."""
  _, img = _inputs()
  seg, other = _inputs(seed=1)
  networks, params, fns = _variant(**_I2I)
  assert not any("prior" in k for k in params)  # no prior net
  _, full_params, full_fns = _variant()
  for image in (img, other):
    prior = fns["sample"](params, jax.random.key(1), image).prior[0]
    np.testing.assert_array_equal(prior.loc, np.zeros((2, 1, 1, 3)))
    np.testing.assert_array_equal(prior.log_scale, np.zeros((2, 1, 1, 3)))
  q = [fns["reconstruct"](params, jax.random.key(2), seg=seg, img=image,
                          mean=True).posterior[0] for image in (img, other)]
  np.testing.assert_array_equal(q[0].loc, q[1].loc)
  np.testing.assert_array_equal(q[0].log_scale, q[1].log_scale)
  full = [full_fns["reconstruct"](full_params, jax.random.key(2), seg=seg,
                                  img=image, mean=True)
          for image in (img, other)]
  assert not np.allclose(full[0].posterior[0].loc, full[1].posterior[0].loc)
  assert not np.allclose(full[0].prior[0].loc, full[1].prior[0].loc)
  # The KL is that to N(0, I): 1/2 sum(mu^2 + sigma^2 - 1 - 2 log sigma).
  out = fns["train_outputs"](params, jax.random.key(2), seg=seg, img=img)
  q = q[0]
  expected = 0.5 * jnp.sum(q.loc**2 + jnp.exp(2 * q.log_scale) - 1 -
                           2 * q.log_scale, axis=(1, 2, 3))
  np.testing.assert_allclose(out.kl[0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("inject", ["input", "f_comb"])
def test_latents_at_the_input_change_the_first_encoder_features(inject):
  options = dict(inject_latents=inject)
  _, params, _ = _variant(**options)
  _, img = _inputs()
  run = _captured_call(options, "spunet/~/unet_encoder/~/block_0",
                       lambda m, img, z: m.sample(img, z_q=(z,)))
  first = []
  for value in (0.0, 1.0):
    x, features = run(params, img, jnp.full((2, 1, 1, 3), value))
    first.append(features)
    if inject == "input":  # the encoder reads [img, z broadcast]
      np.testing.assert_array_equal(x[..., :1], img)
      np.testing.assert_array_equal(x[..., 1:], np.full((2, 16, 16, 3),
                                                        value))
  if inject == "input":
    assert float(jnp.max(jnp.abs(first[0] - first[1]))) > 1e-3
  else:  # the control: z enters after the U-Net
    np.testing.assert_array_equal(first[0], first[1])


def test_sample_n_with_latents_at_the_input_equals_single_samples():
  networks, params, fns = _variant(**_I2I)
  _, img = _inputs()
  out = jax.jit(networks.sample_n_full, static_argnames="num_samples")(
      params, jax.random.key(1), img, num_samples=3)
  assert out.logits.shape == (3, 2, 16, 16, 3)
  (z,) = out.used_latents
  for s in range(3):
    single = fns["sample"](params, jax.random.key(0), img, z_q=(z[s],))
    np.testing.assert_allclose(out.logits[s], single.logits, rtol=1e-5,
                               atol=1e-5)
  assert not np.allclose(out.logits[0], out.logits[1])


def test_parameter_counts_of_the_variants():
  """Exact differences to the full model (4, 8, 16 wide; N = 3; K = 3)."""
  img = jax.ShapeDtypeStruct((1, 16, 16, 1), jnp.float32)
  seg = jax.ShapeDtypeStruct((1, 16, 16, 3), jnp.float32)

  def counts(**options):
    networks = networks_lib.make_networks(dict(_CONFIG, **options))
    params = jax.eval_shape(networks.init, jax.random.key(0), seg=seg,
                            img=img)
    return networks_lib.component_param_counts(params)

  full = counts()
  fixed = counts(prior="fixed")
  assert "prior" not in fixed
  assert fixed["total"] == full["total"] - full["prior"]
  # The posterior's first 3x3 conv (4 wide) loses the image channel.
  assert counts(prior="fixed", posterior_sees_image=False)["posterior"] == (
      full["posterior"] - 9 * 1 * 4)
  at_input = counts(inject_latents="input")
  # The U-Net's first conv gains N input channels, f_comb's first loses them.
  assert at_input["unet"] == full["unet"] + 9 * 3 * 4
  assert at_input["f_comb"] == full["f_comb"] - 3 * 5
  i2i = counts(**_I2I)
  assert i2i["total"] == (full["total"] - full["prior"] - 9 * 4 + 9 * 3 * 4 -
                          3 * 5)
  # The reference code's f_comb: one more hidden 1x1 conv (5 -> 5).
  assert counts(num_fcomb_convs=4)["f_comb"] == full["f_comb"] + 5 * 5 + 5


@pytest.mark.parametrize("encoding,sees_image", [
    ("one_hot", True), ("centred", True), ("centred", False)])
def test_posterior_input_encodings(encoding, sees_image):
  options = dict(posterior_seg_encoding=encoding,
                 posterior_sees_image=sees_image)
  _, params, _ = _variant(**options)
  seg, img = _inputs()
  x, _ = _captured_call(options, "spunet/~/posterior/~/encoder",
                        lambda m, seg, img: m.posterior(seg, img))(
                            params, seg, img)
  if encoding == "centred":  # the reference code's [img, one_hot - 0.5]
    expected = [img, seg - 0.5] if sees_image else [seg - 0.5]
  else:
    expected = [seg, img]
  np.testing.assert_array_equal(x, jnp.concatenate(expected, axis=-1))


def test_unlabelled_pixels_reach_the_posterior_as_no_class():
  labels = jnp.asarray([[[0, 2], [1, 0]]])  # [1, 2, 2]
  mask = jnp.asarray([[[1.0, 1.0], [1.0, 0.0]]])  # the last pixel: ignore
  plain = networks_lib.make_networks(_CONFIG)
  no_class = networks_lib.make_networks(dict(_CONFIG,
                                             unlabelled_pixels="no_class"))
  assert not plain.unlabelled_as_no_class and no_class.unlabelled_as_no_class
  np.testing.assert_array_equal(plain.one_hot_seg(labels, mask)[0, 1, 1],
                                [1, 0, 0])  # today's: class 0
  one_hot = no_class.one_hot_seg(labels, mask)
  np.testing.assert_array_equal(one_hot[0, 1, 1], [0, 0, 0])
  np.testing.assert_array_equal(one_hot[0, 0, 1], [0, 0, 1])
  # The training objective builds the same input (int or one-hot labels).
  batch = {"image": jnp.zeros((1, 2, 2, 1)), "seg": labels, "mask": mask}
  seg, _ = objectives._model_inputs(batch, no_class)
  np.testing.assert_array_equal(seg, one_hot)
  seg, _ = objectives._model_inputs(dict(batch, seg=jax.nn.one_hot(
      labels, 3)), no_class)
  np.testing.assert_array_equal(seg, one_hot)
  seg, _ = objectives._model_inputs(batch, plain)
  np.testing.assert_array_equal(seg, jax.nn.one_hot(labels, 3))
  # Tasks with ignore labels refuse the sPU-Net's class-0 encoding.
  config = config_lib.load_config("cityscapes_flips_spunet", "smoke")
  validation.check_model(config)
  config.model.unlabelled_pixels = "class_0"
  with pytest.raises(errors.UserError,
                     match="config.model.unlabelled_pixels='class_0'"):
    validation.check_model(config)


def test_max_pooling_posterior():
  """`posterior_pooling="max"`: the posterior's blocks are joined by 2x2 max
  pooling and its head reads the global max; parameters and sampling are
  the faithful model's."""
  options = dict(posterior_pooling="max")
  _, params, fns = _variant(**options)
  _, mean_params, mean_fns = _variant()
  assert jax.tree.structure(params) == jax.tree.structure(mean_params)
  seg, img = _inputs()
  np.testing.assert_array_equal(
      fns["sample"](params, jax.random.key(1), img).logits,
      mean_fns["sample"](params, jax.random.key(1), img).logits)
  posterior = lambda m, seg, img: m.posterior(seg, img)
  name = "spunet/~/posterior/~/"
  _, block_0 = _captured_call(options, name + "encoder/~/block_0",
                              posterior)(params, seg, img)  # [2, 16, 16, 4]
  x_1, _ = _captured_call(options, name + "encoder/~/block_1", posterior)(
      params, seg, img)  # [2, 8, 8, 4]
  b = np.asarray(block_0)
  np.testing.assert_array_equal(x_1, np.maximum.reduce(
      [b[:, i::2, j::2] for i in (0, 1) for j in (0, 1)]))
  _, block_2 = _captured_call(options, name + "encoder/~/block_2",
                              posterior)(params, seg, img)  # [2, 4, 4, 16]
  head_in, _ = _captured_call(options, name + "latent_head", posterior)(
      params, seg, img)  # [2, 1, 1, 16]
  np.testing.assert_array_equal(head_in,
                                np.max(block_2, axis=(1, 2), keepdims=True))
  q = fns["reconstruct"](params, jax.random.key(2), seg=seg, img=img,
                         mean=True).posterior[0]
  q_mean = mean_fns["reconstruct"](params, jax.random.key(2), seg=seg,
                                   img=img, mean=True).posterior[0]
  assert not np.allclose(q.loc, q_mean.loc)
  with pytest.raises(ValueError, match="posterior_pooling"):
    networks_lib.make_networks(dict(_CONFIG, posterior_pooling="avg"))


def test_he_normal_and_orthogonal_initialisation():
  _, orthogonal = _networks_and_params()  # the default: the paper's
  name = "spunet/~/decoder_1/~/conv_0"  # 3x3, 24 -> 8: fan_in 216
  w = np.asarray(orthogonal[name]["w"]).reshape(216, 8)
  np.testing.assert_allclose(w.T @ w, np.eye(8), atol=1e-5)
  networks = networks_lib.make_networks(dict(_CONFIG, w_init="he_normal"))
  seg, img = _inputs()
  he = jax.jit(networks.init)(jax.random.key(0), seg=seg, img=img)
  w = np.asarray(he[name]["w"])  # the reference code's
  assert abs(w.std() / np.sqrt(2 / 216) - 1) < 0.1
  assert np.abs(w).max() <= 2 * np.sqrt(2 / 216) / 0.87962566 + 1e-6
  head = np.asarray(he["spunet/~/posterior/~/latent_head"]["w"])  # 16 -> 6
  assert abs(head.std() / np.sqrt(2 / 16) - 1) < 0.3  # every conv
  assert float(np.abs(he[name]["b"]).max()) < 0.003  # biases: N(0, 0.001)
  with pytest.raises(ValueError, match="w_init"):
    networks_lib.make_networks(dict(_CONFIG, w_init="glorot"))


def test_bilinear_align_corners_resampling():
  x = jnp.asarray(np.random.RandomState(0).normal(size=(2, 3, 5, 4)),
                  jnp.float32)
  up = unet_utils.resize_up_bilinear_align_corners(x)
  assert up.shape == (2, 6, 10, 4)
  # Corners map onto corners; 2 -> 4 samples at 0, 1/3, 2/3, 1.
  np.testing.assert_allclose(up[:, [0, -1]][:, :, [0, -1]],
                             x[:, [0, -1]][:, :, [0, -1]], rtol=1e-6)
  two = unet_utils.resize_up_bilinear_align_corners(
      jnp.asarray([0.0, 3.0]).reshape(1, 1, 2, 1))
  np.testing.assert_allclose(two[0, 0, :, 0], [0, 1, 2, 3], atol=1e-6)
  # Independently: scale_and_translate with the align-corners mapping
  # in = out * (n - 1) / (2n - 1), i.e. scale s = (2n - 1) / (n - 1) and
  # translation 0.5 - 0.5 s in half-pixel coordinates.
  scale = jnp.asarray([5 / 2, 9 / 4])
  ref = jax.image.scale_and_translate(
      x, (2, 6, 10, 4), (1, 2), scale, 0.5 - 0.5 * scale, "linear",
      antialias=False)
  np.testing.assert_allclose(up, ref, rtol=1e-5, atol=1e-5)
  # The option swaps the U-Net's up-sampler: same weights, other logits.
  _, img = _inputs()
  _, params, fns = _variant(**_I2I)
  _, _, align = _variant(resize_method="bilinear_align_corners", **_I2I)
  z = (jnp.ones((2, 1, 1, 3)),)
  assert not np.allclose(fns["sample"](params, None, img, z_q=z).logits,
                         align["sample"](params, None, img, z_q=z).logits)


def test_image2image_vae_and_ablation_configs():
  """The Image2Image VAE: the three Appendix D ablations at once, with the
  paper's Appendix H latent sizes and KL weights; each ablation config
  changes only its options."""
  for name, beta in (("lidc_i2i_vae", 10.0), ("synthetic_i2i_vae", 10.0),
                     ("cityscapes_flips_i2i_vae", 1.0)):
    config = config_lib.load_config(name)
    assert (config.model.prior, config.model.posterior_sees_image,
            config.model.inject_latents) == ("fixed", False, "input"), name
    assert config.model.latent_dim == 3 and config.loss.beta == beta, name
    assert config.loss.type == "elbo"
  flips = config_lib.load_config("cityscapes_flips_i2i_vae")
  assert flips.model.unlabelled_pixels == "no_class"
  for ablation, changed in (
      ("fixed_prior", {"prior": "fixed"}),
      ("fixed_prior_no_context", {"prior": "fixed",
                                  "posterior_sees_image": False}),
      ("latents_at_input", {"inject_latents": "input"})):
    for dataset in ("lidc", "synthetic"):
      base = config_lib.load_config(f"{dataset}_spunet").to_dict()
      config = config_lib.load_config(f"{dataset}_spunet_{ablation}").to_dict()
      assert {k: v for k, v in config["model"].items()
              if base["model"].get(k) != v} == changed
      config["model"] = base["model"]
      assert config == base  # nothing else changes
