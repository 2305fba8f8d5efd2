# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Tests of the HPU-Net (hpunet/model.py, hpunet/networks.py).

The configuration is the official `model_test.py`'s: batch 2, 32x32x1 images,
2 classes, channels (5, 7, 9, 11, 13) (5 scales, 2x2 bottleneck) and latent
dims (3, 2, 1). Shapes are ported from it; the value checks it lacked are
added.
"""

import collections
import functools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpunet import model as hpu_model
from hpunet import networks as networks_lib
from hpunet import objectives
from hpunet import unet_utils

_BATCH_SIZE = 2
_SPATIAL_SHAPE = (32, 32)
_CHANNELS_PER_BLOCK = (5, 7, 9, 11, 13)
_LATENT_DIMS = (3, 2, 1)
_NUM_CLASSES = 2


def _model_config(**overrides):
  cfg = dict(name="hpunet", channels_per_block=_CHANNELS_PER_BLOCK,
             latent_dims=_LATENT_DIMS, num_classes=_NUM_CLASSES)
  cfg.update(overrides)
  return cfg


def _inputs(seed=0):
  rng = np.random.RandomState(seed)
  img = rng.uniform(size=(_BATCH_SIZE,) + _SPATIAL_SHAPE + (1,))
  labels = rng.randint(0, _NUM_CLASSES, size=(_BATCH_SIZE,) + _SPATIAL_SHAPE)
  seg = np.eye(_NUM_CLASSES)[labels]
  return jnp.asarray(seg, jnp.float32), jnp.asarray(img, jnp.float32)


def _orthogonal(rng, shape):
  """Haiku's `Orthogonal(scale=1)` recipe in numpy: rows (kh kw cin) x cols
  (cout), QR of a Gaussian matrix, signs from R's diagonal."""
  rows, cols = int(np.prod(shape[:-1])), shape[-1]
  q, r = np.linalg.qr(rng.normal(size=(max(rows, cols), min(rows, cols))))
  q *= np.sign(np.diag(r))
  return (q if rows >= cols else q.T).reshape(shape).astype(np.float32)


def _truncated_normal(rng, shape, stddev=0.001):
  x = rng.normal(size=shape)
  while np.any(np.abs(x) > 2):  # resample beyond 2 sigma
    bad = np.abs(x) > 2
    x[bad] = rng.normal(size=bad.sum())
  return (stddev * x).astype(np.float32)


def _init(networks, seed=0):
  """Parameters drawn in numpy from the official initialisers'
  distributions (orthogonal weights, truncated-normal biases) for the
  structure `networks.init` makes (traced, not compiled). A jitted Haiku
  init of this model compiles one threefry kernel per parameter (2-4
  minutes on a 2-core CPU); these tests compare code paths, and
  `test_initialisers_are_orthogonal_and_truncated_normal` checks the
  model's own initialisers."""
  seg, img = _inputs()
  shapes = jax.eval_shape(networks.init, jax.random.key(0), seg=seg, img=img)
  rng = np.random.RandomState(seed)
  return {module: {name: jnp.asarray(
      _orthogonal(rng, s.shape) if name == "w" else
      _truncated_normal(rng, s.shape)) for name, s in sorted(p.items())}
          for module, p in sorted(shapes.items())}


@functools.lru_cache(maxsize=None)
def _networks_and_params():
  networks = networks_lib.make_networks(_model_config())
  return networks, _init(networks)


def _assert_same_samples(networks, params, faithful, faithful_params):
  """Both models draw the same samples from the same key (an option that
  changes only training and reconstruction)."""
  _, img = _inputs()
  rng = jax.random.key(5)
  np.testing.assert_array_equal(
      jax.jit(networks.sample_n, static_argnames="num_samples")(
          params, rng, img, num_samples=2),
      jax.jit(faithful.sample_n, static_argnames="num_samples")(
          faithful_params, rng, img, num_samples=2))


def _prior_core_outputs(params, img, **kwargs):
  """The prior core's output shapes (its outputs are not part of the public
  API); traced only, nothing compiled."""

  def f(img):
    model = hpu_model.HierarchicalProbUNet(
        latent_dims=_LATENT_DIMS, channels_per_block=_CHANNELS_PER_BLOCK,
        num_classes=_NUM_CLASSES)
    return model._prior(img, **kwargs)  # pylint: disable=protected-access

  return jax.eval_shape(hk.transform(f).apply, params, jax.random.key(3), img)


# --- Official shape tests -------------------------------------------------


def test_official_shapes():
  # Shapes are traced (jax.eval_shape), not compiled; only the KL's values
  # below need a compiled program.
  networks, params = _networks_and_params()
  seg, img = _inputs()
  sample = jax.eval_shape(networks.sample, params, jax.random.key(1), img)
  assert sample.logits.shape == (2, 32, 32, 2)
  rec = jax.eval_shape(functools.partial(networks.reconstruct, seg=seg,
                                         img=img), params, jax.random.key(1))
  assert rec.shape == (2, 32, 32, 2)
  prior = _prior_core_outputs(params, img)
  assert len(prior.distributions) == 3
  assert [z.shape for z in prior.used_latents] == [(2, 2, 2, 3), (2, 4, 4, 2),
                                                   (2, 8, 8, 1)]
  assert [e.shape for e in prior.encoder_features] == [
      (2, 32 // 2**l, 32 // 2**l, c) for l, c in enumerate(_CHANNELS_PER_BLOCK)]
  assert prior.decoder_features.shape == (2, 16, 16, 7)
  kl = jax.jit(networks.train_outputs)(params, jax.random.key(1), seg=seg,
                                       img=img).kl
  assert len(kl) == 3 and all(k.shape == (2,) for k in kl)
  assert all(np.all(np.asarray(k) >= 0) for k in kl)


def test_lidc_default_latent_grids_and_widths():
  """The constructor defaults are the LIDC model: grids 1x1, 2x2, 4x4, 8x8."""

  def f(img):
    model = hpu_model.HierarchicalProbUNet()
    out = model.sample(img)
    return out.logits, out.used_latents

  def g(seg, img):
    return hpu_model.HierarchicalProbUNet().train_outputs(seg=seg, img=img)

  img = jax.ShapeDtypeStruct((1, 128, 128, 1), jnp.float32)
  seg = jax.ShapeDtypeStruct((1, 128, 128, 2), jnp.float32)
  params = jax.eval_shape(hk.transform(g).init, jax.random.key(0), seg, img)
  logits, latents = jax.eval_shape(hk.transform(f).apply, params,
                                   jax.random.key(0), img)
  assert logits.shape == (1, 128, 128, 2)
  assert [z.shape for z in latents] == [(1, s, s, 1) for s in (1, 2, 4, 8)]
  # Widths of the official LIDC model: first block of enc0 is 1 -> 24 (12); the
  # core decoder's first block reads z + bottleneck + skip = 1 + 192 + 192.
  assert params["hpunet/~/prior/~/encoder_0_block_0/~/conv_0"]["w"].shape == (
      3, 3, 1, 12)
  assert params["hpunet/~/prior/~/decoder_0_block_0/~/conv_0"]["w"].shape == (
      3, 3, 385, 96)
  assert params["hpunet/~/f_comb/~/level_5_block_0/~/conv_0"]["w"].shape == (
      3, 3, 288, 48)
  assert params["hpunet/~/f_comb/~/logits"]["w"].shape == (1, 1, 24, 2)
  # The posterior sees [seg (2), img (1)]; it builds no dead last level.
  assert params["hpunet/~/posterior/~/encoder_0_block_0/~/conv_0"]["w"].shape \
      == (3, 3, 3, 12)
  assert "hpunet/~/posterior/~/decoder_3_block_0/~/conv_0" not in params
  assert "hpunet/~/prior/~/decoder_3_block_0/~/conv_0" in params


# --- Building blocks ------------------------------------------------------


def test_initialisers_are_orthogonal_and_truncated_normal(monkeypatch):
  """Every weight of the model comes from `unet_utils.default_w_init`
  (orthogonal) and every bias from `default_b_init` (truncated normal,
  stddev 0.001); those initialisers draw what they claim."""
  # The initialisers themselves (eager): tall and wide weight matrices.
  weight_shapes = ((3, 3, 5, 7), (1, 1, 4, 10))
  drawn = hk.transform(lambda: [hk.get_parameter(
      f"w{i}", shape, init=unet_utils.default_w_init())
                                for i, shape in enumerate(weight_shapes)] + [
      hk.get_parameter("b", (4000,), init=unet_utils.default_b_init())]
                       ).init(jax.random.key(0))["~"]
  for i, shape in enumerate(weight_shapes):
    w = np.asarray(drawn[f"w{i}"]).reshape(-1, shape[-1])  # (kh kw cin, cout)
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    np.testing.assert_allclose(gram, np.eye(gram.shape[0]), atol=1e-5,
                               err_msg=str(shape))
  biases = np.asarray(drawn["b"])
  assert np.all(np.abs(biases) <= 0.002 + 1e-7)  # truncated at 2 sigma
  assert 0.0005 < biases.std() < 0.0015

  made = collections.defaultdict(list)

  def recording(kind, make):
    def factory():
      init = make()

      def record(shape, dtype):
        made[kind].append(tuple(shape))
        return init(shape, dtype)
      return record
    return factory

  monkeypatch.setattr(unet_utils, "default_w_init", recording(
      "w", unet_utils.default_w_init))
  monkeypatch.setattr(unet_utils, "default_b_init", recording(
      "b", unet_utils.default_b_init))
  networks = networks_lib.make_networks(_model_config())
  seg, img = _inputs()
  shapes = jax.eval_shape(networks.init, jax.random.key(0), seg=seg, img=img)
  for kind in ("w", "b"):
    assert sorted(made[kind]) == sorted(
        p[kind].shape for p in shapes.values()), kind
def _numpy_conv(x, w, b):
  """SAME, stride-1 NHWC conv in numpy (reference for the res-block test)."""
  kh, kw = w.shape[:2]
  xp = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
  out = np.zeros(x.shape[:3] + (w.shape[-1],))
  for i in range(kh):
    for j in range(kw):
      out += np.einsum("bhwc,cd->bhwd",
                       xp[:, i:i + x.shape[1], j:j + x.shape[2]], w[i, j])
  return out + b


def test_res_block_matches_numpy_reference():
  """Pre-activation, relu between convs only, projections, no output relu."""
  x = np.random.RandomState(0).normal(size=(1, 6, 6, 3)).astype(np.float32)
  f = hk.transform(lambda x: unet_utils.ResBlock(8, 4, 3, name="block")(x))
  params = f.init(jax.random.key(0), x)
  out = np.asarray(f.apply(params, None, x))
  p = {k.split("/~/")[-1]: {n: np.asarray(v) for n, v in d.items()}
       for k, d in params.items()}
  relu = lambda a: np.maximum(a, 0)
  r = relu(x)
  r = relu(_numpy_conv(r, p["conv_0"]["w"], p["conv_0"]["b"]))
  r = relu(_numpy_conv(r, p["conv_1"]["w"], p["conv_1"]["b"]))
  r = _numpy_conv(r, p["conv_2"]["w"], p["conv_2"]["b"])
  r = _numpy_conv(r, p["residual_projection"]["w"],
                  p["residual_projection"]["b"])
  skip = _numpy_conv(x, p["skip_projection"]["w"], p["skip_projection"]["b"])
  np.testing.assert_allclose(out, skip + r, rtol=1e-4, atol=1e-5)
  assert np.any(out < 0)  # the output is not activated
  # Equal widths: no projections are created.
  g = hk.transform(lambda x: unet_utils.ResBlock(3, 3, 2, name="b")(x))
  assert sorted(k.split("/~/")[-1] for k in g.init(jax.random.key(0), x)) == [
      "conv_0", "conv_1"]


def test_resampling():
  x = jnp.arange(2 * 4 * 6 * 3, dtype=jnp.float32).reshape(2, 4, 6, 3)
  up = unet_utils.resize_up(x)
  np.testing.assert_array_equal(up[:, ::2, ::2], x)
  np.testing.assert_array_equal(up[:, 1::2, 1::2], x)
  np.testing.assert_array_equal(up[:, 1::2, ::2], x)
  down = hk.transform(unet_utils.resize_down).apply({}, None, x)
  np.testing.assert_allclose(
      down, np.asarray(x).reshape(2, 2, 2, 3, 2, 3).mean(axis=(2, 4)))
  bilinear = unet_utils.resize_up_bilinear(x)
  np.testing.assert_allclose(
      bilinear, jax.image.resize(x, (2, 8, 12, 3), "bilinear"), atol=1e-5)
  with pytest.raises(ValueError, match="even spatial dims"):
    hk.transform(unet_utils.resize_down).apply({}, None, jnp.ones((1, 3, 4, 1)))
  x = x * jnp.where(jnp.arange(6) % 2 == 0, 1.0, -1.0)[:, None]  # mixed signs
  down = hk.transform(unet_utils.max_pool_down).apply({}, None, x)
  np.testing.assert_array_equal(
      down, np.asarray(x).reshape(2, 2, 2, 3, 2, 3).max(axis=(2, 4)))
  with pytest.raises(ValueError, match="even spatial dims"):
    hk.transform(unet_utils.max_pool_down).apply({}, None,
                                                 jnp.ones((1, 4, 3, 1)))


# --- Semantics of sample / reconstruct / kl -------------------------------


def test_reconstruction_decodes_posterior_latents_through_the_prior():
  """The prior path is the generator: reconstruct == sample with z_q."""
  networks, params = _networks_and_params()
  seg, img = _inputs()
  rec = jax.jit(networks.reconstruct_full)(params, jax.random.key(5), seg=seg,
                                           img=img)
  again = jax.jit(networks.sample)(params, jax.random.key(99), img,
                                   z_q=rec.used_latents)
  np.testing.assert_allclose(rec.logits, again.logits, rtol=1e-5, atol=1e-5)
  # mean=True decodes the posterior means (the IoU_rec reconstruction).
  rec_mean = jax.jit(functools.partial(networks.reconstruct_full, mean=True))(
      params, jax.random.key(5), seg=seg, img=img)
  for z, q in zip(rec_mean.used_latents, rec_mean.posterior):
    np.testing.assert_array_equal(z, q.loc)
  # The KL compares q with the prior conditioned on q's own samples.
  kl = jax.jit(networks.train_outputs)(params, jax.random.key(5), seg=seg,
                                       img=img).kl
  expected = [hpu_model.kl_divergence(q, p)
              for q, p in zip(rec.posterior, rec.prior)]
  np.testing.assert_allclose(np.stack(kl), np.stack(expected), rtol=1e-5)


def test_given_posterior_latents_replace_one_level_and_sample_the_rest():
  """`posterior_z`: a given level's latent is used by both decoders, the
  None levels are sampled; all None is the default model."""
  networks, params = _networks_and_params()
  seg, img = _inputs()
  train = jax.jit(networks.train_outputs)
  base = train(params, jax.random.key(5), seg=seg, img=img)
  same = train(params, jax.random.key(5), seg=seg, img=img,
               posterior_z=(None, None, None))
  np.testing.assert_array_equal(base.logits, same.logits)
  np.testing.assert_array_equal(np.stack(base.kl), np.stack(same.kl))

  rec = jax.jit(networks.reconstruct_full)(params, jax.random.key(5),
                                           seg=seg, img=img)
  code = jnp.full(rec.used_latents[0].shape, 2.5)  # [B, 1, 1, 3]

  given = jax.jit(hk.transform(lambda: hpu_model.HierarchicalProbUNet(
      latent_dims=_LATENT_DIMS, channels_per_block=_CHANNELS_PER_BLOCK,
      num_classes=_NUM_CLASSES).reconstruct(
          seg=seg, img=img, posterior_z=(code, None, None))).apply)

  a, b = given(params, jax.random.key(1)), given(params, jax.random.key(2))
  np.testing.assert_array_equal(a.used_latents[0], code)
  np.testing.assert_array_equal(b.used_latents[0], code)
  # The finer posterior levels are conditioned on the code (not the sampled
  # level 0) and sampled: they differ between keys.
  assert not np.allclose(a.posterior[1].loc, rec.posterior[1].loc)
  assert not np.allclose(a.used_latents[2], b.used_latents[2])
  # The decoder got the code: the same as sampling the prior path with it.
  again = jax.jit(networks.sample)(params, jax.random.key(9), img,
                                   z_q=a.used_latents)
  np.testing.assert_allclose(a.logits, again.logits, rtol=1e-5, atol=1e-5)
  out = train(params, jax.random.key(1), seg=seg, img=img,
              posterior_z=(code, None, None))
  assert len(out.kl) == 3 and not np.allclose(out.logits, base.logits)


def test_residual_posterior_sees_what_the_coarse_levels_leave_unexplained():
  """`residual_posterior_from=1`: level 0 keeps the faithful posterior; the
  finer levels' posterior is a second core run on the annotation where the
  reconstruction from level 0 alone (finer levels at their prior mean) is
  wrong, zeros elsewhere.
  Sampling is untouched."""
  networks, params = _networks_and_params()
  seg, img = _inputs()
  residual = networks_lib.make_networks(_model_config(
      residual_posterior_from=1))
  res_params = _init(residual)
  # One more posterior core, the same shapes as the faithful one.
  extra = {m: p for m, p in res_params.items() if m not in params}
  assert extra and all("/~/residual_posterior/~/" in m for m in extra)
  for m, p in extra.items():
    faithful = params[m.replace("residual_posterior", "posterior")]
    assert jax.tree.map(jnp.shape, p) == jax.tree.map(jnp.shape, faithful)
  # Give the new core the faithful posterior's weights: the model is then
  # the faithful one run twice, which the public API can reproduce.
  shared = dict(params, **{
      m: params[m.replace("residual_posterior", "posterior")] for m in extra})
  rec = jax.jit(functools.partial(residual.reconstruct_full, mean=True))(
      shared, jax.random.key(1), seg=seg, img=img)
  faithful = jax.jit(functools.partial(networks.reconstruct_full, mean=True))(
      params, jax.random.key(1), seg=seg, img=img)
  np.testing.assert_array_equal(rec.posterior[0].loc, faithful.posterior[0].loc)
  z0 = faithful.used_latents[0]
  explained = jax.jit(functools.partial(networks.sample, mean=True))(
      params, jax.random.key(2), img, z_q=(z0, None, None)).logits
  wrong = explained.argmax(-1) != seg.argmax(-1)  # [B, H, W]
  assert 0 < wrong.mean() < 1
  unexplained = seg * wrong[..., None]  # [B, H, W, K]
  expected = jax.jit(hk.transform(lambda: hpu_model.HierarchicalProbUNet(
      latent_dims=_LATENT_DIMS, channels_per_block=_CHANNELS_PER_BLOCK,
      num_classes=_NUM_CLASSES).reconstruct(
          seg=unexplained, img=img, mean=True,
          posterior_z=(z0, None, None))).apply)(params, jax.random.key(3))
  for level in (1, 2):
    np.testing.assert_allclose(rec.posterior[level].loc,
                               expected.posterior[level].loc,
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(rec.posterior[level].loc,
                           faithful.posterior[level].loc, atol=1e-3)
  np.testing.assert_allclose(rec.logits, expected.logits, rtol=1e-5,
                             atol=1e-5)
  # The KL compares the residual posterior with the prior given its samples.
  out = jax.jit(residual.train_outputs)(shared, jax.random.key(4), seg=seg,
                                        img=img)
  assert len(out.kl) == 3 and all(np.all(np.isfinite(k)) for k in out.kl)
  _assert_same_samples(residual, shared, networks, params)
  with pytest.raises(ValueError, match="residual_posterior_from=3"):
    networks_lib.make_networks(_model_config(residual_posterior_from=3))


def test_level_dropout_decodes_prior_means_and_drops_their_kl():
  """Latent level dropout: a dropped example's fine levels decode the mean of
  the conditional prior (no gradient into the posterior) and cost no KL."""
  seg, img = _inputs()
  _, params = _networks_and_params()  # the option adds no parameters
  rng = jax.random.key(5)
  full = networks_lib.make_networks(_model_config())
  kl_full = np.stack(jax.jit(full.train_outputs)(
      params, rng, seg=seg, img=img).kl)  # [levels, B]
  # A rate just below 1 drops every example (the draw is fixed by `rng`).
  dropped = networks_lib.make_networks(_model_config(
      level_dropout_rate=0.999999, level_dropout_from=1))
  kl = np.stack(jax.jit(dropped.train_outputs)(
      params, rng, seg=seg, img=img).kl)
  assert np.all(kl[1:] == 0.0) and np.all(kl[0] > 0)
  np.testing.assert_allclose(kl[0], kl_full[0], rtol=1e-6)  # same q_0, p_0

  def loss(p, networks):
    out = networks.train_outputs(p, rng, seg=seg, img=img)
    return jnp.sum(out.logits**2) + sum(jnp.sum(k) for k in out.kl)

  def head_grad(networks, level):
    g = jax.jit(jax.grad(loss), static_argnums=1)(params, networks)
    return np.abs(np.asarray(
        g[f"hpunet/~/posterior/~/latent_head_{level}"]["w"])).max()

  # The posterior's fine heads get no gradient when their latents are not
  # decoded; its coarsest head still does; without dropout all do.
  assert head_grad(dropped, 1) == 0.0 and head_grad(dropped, 2) == 0.0
  assert head_grad(dropped, 0) > 0.0
  assert head_grad(full, 2) > 0.0
  # Sampling is untouched by the option.
  _assert_same_samples(dropped, params, full, params)
  with pytest.raises(ValueError, match="level_dropout_from=3"):
    networks_lib.make_networks(_model_config(level_dropout_rate=0.5,
                                             level_dropout_from=3))


def test_level_dropout_scale_schedules_the_rate():
  """The training loop's decay: at scale 0 no example is dropped, at scale 1
  the constant rate applies unchanged."""
  seg, img = _inputs()
  _, params = _networks_and_params()
  rng = jax.random.key(5)
  full = networks_lib.make_networks(_model_config())
  dropped = networks_lib.make_networks(_model_config(
      level_dropout_rate=0.999999, level_dropout_from=1))
  kl_of = lambda nets, **kw: np.stack(jax.jit(nets.train_outputs)(
      params, rng, seg=seg, img=img, **kw).kl)
  # (The draw consumes a key, so the posterior samples differ from a model
  # without the option: compare which levels cost KL, not the values.)
  assert np.all(kl_of(dropped, level_dropout_scale=jnp.float32(0.0)) > 0)
  assert np.all(kl_of(dropped)[1:] == 0) and np.all(kl_of(full) > 0)
  np.testing.assert_array_equal(
      kl_of(dropped, level_dropout_scale=jnp.float32(1.0)), kl_of(dropped))
  # The schedule: 1 until start, linear, 0 from end; None when off.
  scale = objectives.level_dropout_scale
  assert scale(123, (0, 0)) is None
  np.testing.assert_allclose(
      [float(scale(s, (500, 1500))) for s in (0, 500, 750, 1500, 1900)],
      [1.0, 1.0, 0.75, 0.0, 0.0])
  # With a final scale the rate decays to that fraction and stays there.
  np.testing.assert_allclose(
      [float(scale(s, (500, 1500), 0.2)) for s in (0, 500, 1000, 1500, 9000)],
      [1.0, 1.0, 0.6, 0.2, 0.2], rtol=1e-6)


def test_global_latent_skips_only_add_inputs_for_the_1x1_latent():
  """`global_latent_skips`: the 1x1 latent is concatenated first at every
  finer scale, so with zero weights on those input channels the model is the
  faithful one; with its own initial weights the 1x1 level moves the
  output far more than through the bottleneck alone."""
  seg, img = _inputs()
  networks, params = _networks_and_params()
  skips = networks_lib.make_networks(_model_config(global_latent_skips=True))
  skip_params = _init(skips)
  assert set(skip_params) == set(params)
  z0 = _LATENT_DIMS[0]
  grown = []
  embedded = {}
  for module, p in skip_params.items():
    embedded[module] = {}
    for k, w in p.items():
      old = params[module][k]
      if w.shape != old.shape:  # the input channels of a block's first conv
        assert w.shape[:2] + w.shape[3:] == old.shape[:2] + old.shape[3:]
        assert w.shape[2] == old.shape[2] + z0  # z_0 first
        grown.append(module)
        w = jnp.concatenate([jnp.zeros_like(w[:, :, :z0]), old], axis=2)
      else:
        w = old
      embedded[module][k] = w
  # Every decoder block below the 1x1 level, in both cores, and every f_comb
  # level takes z_0: the prior's 2 finer latent levels, the posterior's 1,
  # f_comb's 5 - 3 - 1 = 1 (conv_0 and skip_projection each).
  assert sorted({m.split("/~/")[1] for m in grown}) == [
      "f_comb", "posterior", "prior"]
  assert len(grown) == 2 * (2 + 1 + 1)
  rng = jax.random.key(3)
  sample = jax.jit(networks.sample_n, static_argnames="num_samples")
  np.testing.assert_allclose(
      sample(params, rng, img, num_samples=2),
      jax.jit(skips.sample_n, static_argnames="num_samples")(
          embedded, rng, img, num_samples=2), rtol=1e-5, atol=1e-6)
  faithful_kl = jax.jit(networks.train_outputs)(params, rng, seg=seg,
                                                img=img).kl
  skip_kl = jax.jit(skips.train_outputs)(embedded, rng, seg=seg, img=img).kl
  np.testing.assert_allclose(np.stack(skip_kl), np.stack(faithful_kl),
                             rtol=1e-5, atol=1e-6)

  # At initialisation the 1x1 level already moves the output: sampled alone
  # (finer levels at their conditional prior mean), it spreads the
  # foreground probability far more than through the bottleneck alone.
  only_global = (False, True, True)
  def spread(nets, p):
    logits = jax.jit(nets.sample_n, static_argnames=("num_samples", "mean"))(
        p, rng, img, num_samples=8, mean=only_global)  # [S, B, H, W, K]
    return float(jax.nn.softmax(logits)[..., 1].std(axis=0).mean())
  assert spread(skips, skip_params) > 3 * spread(networks, params)
  with pytest.raises(ValueError, match="global_latent_skips"):
    networks_lib.make_networks(_model_config(global_latent_skips=True,
                                             latent_dims=(0, 2, 1)))


def test_max_pooling_posterior_changes_only_the_posterior():
  """`posterior_pooling="max"`: the same parameters; the posterior's encoder
  halves the resolution by max pooling, the prior path (sampling) keeps
  average pooling."""
  networks, params = _networks_and_params()
  seg, img = _inputs()
  pooled = networks_lib.make_networks(_model_config(posterior_pooling="max"))
  shapes = jax.eval_shape(pooled.init, jax.random.key(0), seg=seg, img=img)
  assert jax.tree.map(jnp.shape, shapes) == jax.tree.map(jnp.shape, params)

  def posterior_encoder(pooling):
    def f(seg, img):
      model = hpu_model.HierarchicalProbUNet(
          latent_dims=_LATENT_DIMS, channels_per_block=_CHANNELS_PER_BLOCK,
          num_classes=_NUM_CLASSES, posterior_pooling=pooling)
      # pylint: disable=protected-access
      return model._posterior.encode(model._posterior_input(seg, img))
    return jax.jit(hk.transform(f).apply)(params, None, seg, img)

  mean, peak = posterior_encoder("mean"), posterior_encoder("max")
  np.testing.assert_array_equal(mean[0], peak[0])  # before any pooling
  # Scale 1 reads the 2x2 maxima of scale 0's output: its blocks applied
  # to them give the pooled encoder's scale-1 output.
  prefix = "hpunet/~/posterior/~/"
  blocks = [f"encoder_1_block_{b}" for b in range(3)]  # blocks_per_level 3

  def scale_1(x):
    for name in blocks:
      x = unet_utils.ResBlock(_CHANNELS_PER_BLOCK[1],
                              _CHANNELS_PER_BLOCK[1] // 2, 3, name=name)(x)
    return x

  np.testing.assert_allclose(
      jax.jit(hk.transform(scale_1).apply)(
          {m[len(prefix):]: p for m, p in params.items()
           if m.startswith(prefix + "encoder_1_")}, None,
          hk.transform(unet_utils.max_pool_down).apply({}, None, peak[0])),
      peak[1], rtol=1e-5, atol=1e-6)
  assert not np.allclose(mean[1], peak[1])
  _assert_same_samples(pooled, params, networks, params)
  with pytest.raises(ValueError, match="posterior_pooling='avg'"):
    networks_lib.make_networks(_model_config(posterior_pooling="avg"))


def test_mean_and_z_q_semantics():
  networks, params = _networks_and_params()
  _, img = _inputs()
  sample = jax.jit(networks.sample, static_argnames="mean")
  a = sample(params, jax.random.key(1), img, mean=True)
  b = sample(params, jax.random.key(2), img, mean=True)
  np.testing.assert_array_equal(a.logits, b.logits)
  for z, p in zip(a.used_latents, a.prior):
    np.testing.assert_array_equal(z, p.loc)
  # Only the finest level sampled ("local" mode of the colab): coarse levels
  # sit at their conditional means, the finest differs between keys.
  c = sample(params, jax.random.key(1), img, mean=(True, True, False))
  d = sample(params, jax.random.key(2), img, mean=(True, True, False))
  for i in (0, 1):
    np.testing.assert_array_equal(c.used_latents[i], c.prior[i].loc)
    np.testing.assert_array_equal(c.used_latents[i], d.used_latents[i])
  assert not np.allclose(c.used_latents[2], d.used_latents[2])
  assert not np.allclose(c.used_latents[2], c.prior[2].loc)
  # Only the most global level sampled: finer levels are the prior means
  # conditioned on it, so they differ between keys.
  e = sample(params, jax.random.key(1), img, mean=(False, True, True))
  f = sample(params, jax.random.key(2), img, mean=(False, True, True))
  assert not np.allclose(e.used_latents[0], f.used_latents[0])
  np.testing.assert_array_equal(e.used_latents[2], e.prior[2].loc)
  assert not np.allclose(e.used_latents[2], f.used_latents[2])
  # z_q overrides mean and sampling.
  z_q = tuple(jnp.full(z.shape, 0.3) for z in a.used_latents)
  g = sample(params, jax.random.key(7), img, mean=True, z_q=z_q)
  for z, zq in zip(g.used_latents, z_q):
    np.testing.assert_array_equal(z, zq)
  # Same seed, same output; different seed, different output.
  h1 = sample(params, jax.random.key(11), img)
  h2 = sample(params, jax.random.key(11), img)
  h3 = sample(params, jax.random.key(12), img)
  np.testing.assert_array_equal(h1.logits, h2.logits)
  assert not np.allclose(h1.logits, h3.logits)
  with pytest.raises(ValueError, match="3 latent levels"):
    networks.sample(params, jax.random.key(1), img, mean=(True, False))


def test_sample_n_equals_full_model_per_sample():
  """The encoder-reuse path equals the full network run per sample."""
  networks, params = _networks_and_params()
  _, img = _inputs()
  num_samples = 3
  out = jax.jit(networks.sample_n_full, static_argnames="num_samples")(
      params, jax.random.key(4), img, num_samples=num_samples)
  assert out.logits.shape == (num_samples, 2, 32, 32, 2)
  sample = jax.jit(networks.sample)
  for s in range(num_samples):
    z_q = tuple(z[s] for z in out.used_latents)
    full = sample(params, jax.random.key(0), img, z_q=z_q)
    np.testing.assert_allclose(out.logits[s], full.logits, rtol=1e-4,
                               atol=1e-5)
    # Each level's latent is a draw from the conditional prior of that run.
    for z, p, fp in zip(z_q, (d.loc[s] for d in out.prior), full.prior):
      np.testing.assert_allclose(p, fp.loc, rtol=1e-4, atol=1e-5)
  assert not np.allclose(out.logits[0], out.logits[1])
  # Standardised noise of the sampled latents looks standard normal.
  eps = np.concatenate([
      np.ravel((z - d.loc) / np.exp(d.log_scale))
      for z, d in zip(out.used_latents, out.prior)])
  assert abs(eps.mean()) < 0.3 and 0.7 < eps.std() < 1.3


def test_kl_divergence_matches_monte_carlo_and_is_zero_for_equal():
  rng = np.random.RandomState(0)
  shape = (2, 1, 1, 3)
  q = hpu_model.Gaussian(jnp.asarray(rng.normal(size=shape), jnp.float32),
                         jnp.asarray(0.3 * rng.normal(size=shape), jnp.float32))
  p = hpu_model.Gaussian(jnp.asarray(rng.normal(size=shape), jnp.float32),
                         jnp.asarray(0.3 * rng.normal(size=shape), jnp.float32))
  analytic = np.asarray(hpu_model.kl_divergence(q, p))
  n = 400_000
  eps = jax.random.normal(jax.random.key(0), (n,) + shape)
  z = q.loc + jnp.exp(q.log_scale) * eps

  def log_density(z, d):
    return jnp.sum(-0.5 * jnp.square((z - d.loc) / jnp.exp(d.log_scale)) -
                   d.log_scale - 0.5 * np.log(2 * np.pi), axis=(2, 3, 4))

  mc = np.asarray(jnp.mean(log_density(z, q) - log_density(z, p), axis=0))
  np.testing.assert_allclose(analytic, mc, rtol=0.02, atol=0.01)
  assert np.all(analytic > 0)
  np.testing.assert_allclose(hpu_model.kl_divergence(q, q), 0.0, atol=1e-6)


def test_ablation_options_of_table_2():
  seg, img = _inputs()
  # Local latents only: no latent at the coarse levels, only at the finest.
  local = networks_lib.make_networks(_model_config(latent_dims=(0, 0, 1)))
  params = jax.eval_shape(local.init, jax.random.key(0), seg=seg, img=img)
  out = jax.eval_shape(local.train_outputs, params, jax.random.key(0),
                       seg=seg, img=img)
  assert len(out.kl) == 1
  assert not any("latent_head_0" in k or "latent_head_1" in k for k in params)
  assert params["hpunet/~/prior/~/latent_head_2"]["w"].shape == (1, 1, 9, 2)
  # Global latents only: one level of 85 latents at the bottleneck.
  glob = networks_lib.make_networks(
      _model_config(channels_per_block=(5, 7, 9, 11, 13, 13), latent_dims=(85,)))
  params = jax.eval_shape(glob.init, jax.random.key(0), seg=seg, img=img)
  sample = jax.eval_shape(glob.sample, params, jax.random.key(0), img)
  assert [z.shape for z in sample.used_latents] == [(2, 1, 1, 85)]
  assert glob.latent_dims == (85,)


def test_bad_configs_raise_clear_errors():
  with pytest.raises(ValueError, match="down_channels_per_block must be int"):
    networks_lib.make_networks(_model_config(
        down_channels_per_block=(2.5, 3, 4, 5, 6)))
  with pytest.raises(ValueError, match="has 2 entries"):
    networks_lib.make_networks(_model_config(down_channels_per_block=(2, 3)))
  with pytest.raises(ValueError, match="config.model.name"):
    networks_lib.make_networks(dict(name="unet"))
  with pytest.raises(ValueError, match="Invalid config.model"):
    networks_lib.make_networks(_model_config(num_latents=3))
  networks, params = _networks_and_params()
  with pytest.raises(ValueError, match="divisible by 16"):
    networks.sample(params, jax.random.key(0), jnp.ones((1, 24, 24, 1)))
