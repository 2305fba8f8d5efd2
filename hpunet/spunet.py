# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""The standard Probabilistic U-Net (sPU-Net, Kohl et al. 2018) in Haiku.

As in the sPU-Net paper (Sec. 2 and App. A):
- a U-Net core (`unet.UNet`, shared with the paper's baselines in
  `baselines.py`): at each scale three 3x3 conv + ReLU; widths double at
  each down-sampling and halve at each up-sampling; feature maps are
  resampled bilinearly (see below);
- `prior` (sees the image) and `posterior` (sees the one-hot segmentation and
  the image) nets with the architecture of the U-Net's encoder path, whose
  last feature map is global-average pooled and fed to a 1x1 conv predicting
  the mean and log standard deviation of an N-d axis-aligned Gaussian
  (N = 6 by default; 85 for the HPU-Net paper's SNEMI3D re-implementation);
- `f_comb`: z is broadcast to an N-channel map, concatenated to the U-Net's
  last feature map, and three 1x1 convs (ReLU between) map to K logits.

Only `f_comb` depends on z, so `sample_n` runs the U-Net and the prior once.

Resampling: up-sampling is bilinear x2 with half-pixel centres
(`unet_utils.resize_up_bilinear`, equal to `jax.image.resize(..., "bilinear")`
but partition-friendly). Down-sampling is 2x2 average pooling, which is what
bilinear x1/2 with half-pixel centres computes without anti-aliasing, and
what the authors' public reference code uses. `resize_method="nearest"` swaps
the up-sampler for pixel repetition, `"bilinear_align_corners"` for the
reference code's TF1 `align_corners=True` resize.

The posterior input is `concat([seg_onehot, img])` as in the HPU-Net code
(the sPU-Net reference code used `one_hot - 0.5` after the image; the paper
does not specify it; `posterior_seg_encoding="centred"`).

Options (`ProbUNet` arguments, defaults = the model above): the sPU-Net
paper's Appendix D ablations (a fixed N(0, I) prior, a posterior without the
image, latents injected at the U-Net's input), which combined are its
Image2Image VAE baseline (Sec. 3, Fig. 2d), and the choices in which the
public reference code (SimonKohl/probabilistic_unet) differs: four `f_comb`
convs, the centred posterior input, `align_corners` resampling, He-normal
init; see `ProbUNet`. The reference code's weight decay (1/2 sum w^2 over the
kernels) is a loss option (`objectives`, `weight_decay_mode`).

Shape glossary: `B` batch, `S` samples, `H, W` image size, `C` channels,
`K` classes, `N` latent size. The global latent is carried as [B, 1, 1, N]
so it shares the HPU-Net's per-pixel Gaussian type and KL.
"""

import contextlib
from typing import Optional, Sequence

import haiku as hk
import jax
import jax.numpy as jnp

from hpunet import model as hpu_model
from hpunet import unet
from hpunet import unet_utils

Array = jax.Array
Gaussian = hpu_model.Gaussian
ReconstructionOutput = hpu_model.ReconstructionOutput
SampleOutput = hpu_model.SampleOutput
TrainOutputs = hpu_model.TrainOutputs

LIDC_CHANNELS_PER_BLOCK = (32, 64, 128, 256, 512)


class _LatentNet(hk.Module):
  """Prior or posterior net: encoder path, global average pool, 1x1 conv.

  `pooling="max"` (posterior option): 2x2 max pooling between the blocks and
  a global max pool instead of the averages."""

  def __init__(self, channels_per_block, convs_per_block, latent_dim,
               constrain, name, pooling="mean"):
    super().__init__(name=name)
    self._latent_dim = latent_dim
    self._encoder = unet.Encoder(channels_per_block, convs_per_block,
                                 constrain, name="encoder",
                                 down=hpu_model.POOLING[pooling])
    self._global_pool = jnp.max if pooling == "max" else jnp.mean
    self._head = unet_utils.conv(2 * latent_dim, 1, name="latent_head")

  def __call__(self, x: Array) -> Gaussian:
    features = self._encoder(x)[-1]
    pooled = self._global_pool(features, axis=(1, 2),
                               keepdims=True)  # [B, 1, 1, C]
    mu_log_sigma = self._head(pooled)  # [B, 1, 1, 2N]
    return Gaussian(loc=mu_log_sigma[..., :self._latent_dim],
                    log_scale=mu_log_sigma[..., self._latent_dim:])


PRIORS = ("learned", "fixed")
INJECT_LATENTS = ("f_comb", "input")
POSTERIOR_SEG_ENCODINGS = ("one_hot", "centred")
UNLABELLED_PIXELS = ("class_0", "no_class")
W_INITS = ("orthogonal", "he_normal")
RESIZE_METHODS = ("bilinear", "bilinear_align_corners", "nearest")


def _check_choice(name: str, value, choices) -> None:
  if value not in choices:
    raise ValueError(f"{name} must be one of {choices}, got {value!r}.")


class ProbUNet(hk.Module):
  """The sPU-Net. Defaults follow the sPU-Net paper's LIDC setting.

  LIDC: 5 scales (4 down/up-samplings), base 32 doubled per scale, 6 latents.
  The HPU-Net paper's re-implementations (LIDC 5 scales; SNEMI3D 9 scales,
  base 24 capped at 192, 85 latents) and Cityscapes (6 scales) are other
  arguments; see `configs/`.

  The sPU-Net paper's Appendix D ablations (defaults: the full model):
  - `prior="fixed"`: the prior is N(0, I), independent of the image; the
    model has no prior net.
  - `posterior_sees_image=False`: the posterior is a function of the
    segmentation only (the paper ablates it together with the fixed prior).
  - `inject_latents="input"`: z is broadcast and concatenated to the image at
    the U-Net's input instead of to its last feature map; `f_comb` then maps
    the U-Net features alone to logits.
  All three together are the paper's Image2Image VAE baseline (Sec. 3,
  Fig. 2d; `configs/*_i2i_vae.py`).

  Choices where the public reference code (SimonKohl/probabilistic_unet)
  differs from the paper or from this implementation's default:
  - `num_fcomb_convs`: 1x1 convs of `f_comb`, the logits conv included. The
    paper says "three subsequent 1x1 convolutions" (default 3); the reference
    code has three hidden 1x1 convs plus the logits conv (4).
  - `posterior_seg_encoding`: "one_hot" (default) feeds `concat([seg, img])`,
    the HPU-Net code's order; "centred" feeds the reference code's
    `concat([img, seg - 0.5])`. The paper does not specify it.
  - `unlabelled_pixels`: what the posterior sees where the loss mask is 0
    (ignore labels, augmentation padding). "class_0": the one-hot of class 0
    (today's behaviour, kept for LIDC / synthetic, whose only unlabelled
    pixels are augmentation padding); "no_class": an all-zero one-hot row
    (-0.5 everywhere with "centred", as in the reference code), so that an
    ignore pixel does not look like a class. Tasks with ignore labels
    (Cityscapes, where class 0 is road) must use "no_class"
    (`validation.check_model`). The callers build the rows
    (`networks.Networks.one_hot_seg`); the model reads them as given.
  - `resize_method`: "bilinear" (default; half-pixel centres), the
    reference's "bilinear_align_corners", or "nearest".
  - `w_init`: "orthogonal" (default; the paper: "All weights of all models
    are initialized with orthogonal initialization having the gain set to
    1") or the reference code's "he_normal" (truncated normal, variance
    2 / fan_in, for every conv). Biases: truncated normal 0.001 in both.

  Not in the papers (default off):
  - `posterior_pooling`: "mean" (default; 2x2 average pooling between the
    posterior's blocks, then the global average) or "max": 2x2 max pooling
    and a global max. The HPU-Net's option of the same name, for a like-for-
    like baseline: averaging dilutes a small image-wide structure (the
    synthetic spots) before the latent head reads it. Prior, U-Net and
    `f_comb` are unchanged, so are the parameters and sampling.
  """

  def __init__(self,
               channels_per_block: Sequence[int] = LIDC_CHANNELS_PER_BLOCK,
               convs_per_block: int = 3,
               latent_dim: int = 6,
               num_classes: int = 2,
               num_fcomb_convs: int = 3,
               fcomb_channels: int = 32,
               resize_method: str = "bilinear",
               prior: str = "learned",
               posterior_sees_image: bool = True,
               inject_latents: str = "f_comb",
               posterior_seg_encoding: str = "one_hot",
               unlabelled_pixels: str = "class_0",
               w_init: str = "orthogonal",
               posterior_pooling: str = "mean",
               activation_constraint=None,
               name: str = "spunet"):
    super().__init__(name=name)
    if resize_method not in RESIZE_METHODS:
      raise ValueError(f"resize_method must be one of {RESIZE_METHODS}, got "
                       f"{resize_method!r}.")
    if latent_dim < 1 or num_fcomb_convs < 1:
      raise ValueError(f"latent_dim ({latent_dim}) and num_fcomb_convs "
                       f"({num_fcomb_convs}) must be >= 1.")
    _check_choice("prior", prior, PRIORS)
    _check_choice("inject_latents", inject_latents, INJECT_LATENTS)
    _check_choice("posterior_seg_encoding", posterior_seg_encoding,
                  POSTERIOR_SEG_ENCODINGS)
    _check_choice("unlabelled_pixels", unlabelled_pixels, UNLABELLED_PIXELS)
    _check_choice("w_init", w_init, W_INITS)
    _check_choice("posterior_pooling", posterior_pooling,
                  tuple(hpu_model.POOLING))
    if not isinstance(posterior_sees_image, bool):
      raise ValueError("posterior_sees_image must be True or False, got "
                       f"{posterior_sees_image!r}.")
    self._channels = tuple(int(c) for c in channels_per_block)
    self._latent_dim = int(latent_dim)
    self._fixed_prior = prior == "fixed"
    self._posterior_sees_image = posterior_sees_image
    self._inject_at_input = inject_latents == "input"
    self._centred_seg = posterior_seg_encoding == "centred"
    self._unlabelled_no_class = unlabelled_pixels == "no_class"
    self._he_normal = w_init == "he_normal"
    constrain = activation_constraint or (lambda x: x)
    self._constrain = constrain
    # Its blocks are this module's `unet_encoder` and `decoder_<l>`.
    self._unet = unet.UNet(self._channels, convs_per_block,
                           resize_method=resize_method, constrain=constrain)
    self._prior = None if self._fixed_prior else _LatentNet(
        self._channels, convs_per_block, latent_dim, constrain, name="prior")
    self._posterior = _LatentNet(self._channels, convs_per_block, latent_dim,
                                 constrain, name="posterior",
                                 pooling=posterior_pooling)
    self._fcomb_hidden = [
        unet_utils.conv(fcomb_channels, 1, name=f"f_comb_{i}")
        for i in range(num_fcomb_convs - 1)
    ]
    self._logits = unet_utils.conv(num_classes, 1, name="logits")

  @property
  def latent_dims(self) -> tuple[int, ...]:
    return (self._latent_dim,)

  @property
  def unlabelled_as_no_class(self) -> bool:
    """Whether `seg` rows of unlabelled pixels are to be all zero."""
    return self._unlabelled_no_class

  def _check_inputs(self, img: Array, seg: Optional[Array] = None):
    if img.ndim != 4:
      raise ValueError(f"img must be [B, H, W, C], got shape {img.shape}.")
    factor = 2 ** (len(self._channels) - 1)
    if img.shape[1] % factor or img.shape[2] % factor:
      raise ValueError(
          f"img spatial size {img.shape[1:3]} must be divisible by {factor} "
          f"for {len(self._channels)} processing scales.")
    if seg is not None and seg.shape[:3] != img.shape[:3]:
      raise ValueError(f"seg shape {seg.shape} does not match img shape "
                       f"{img.shape} in [B, H, W].")

  def unet_features(self, img: Array) -> Array:
    """The U-Net's last feature map: [B, H, W, C_0]."""
    return self._unet(img)

  def f_comb(self, features: Array, z: Optional[Array] = None) -> Array:
    """[B, H, W, C_0], z [B, 1, 1, N] -> logits [B, H, W, K].

    `z=None` (latents injected at the input): the 1x1 convs see the U-Net
    features alone.
    """
    x = features
    if z is not None:
      x = jnp.concatenate([features, _broadcast(z, features)], axis=-1)
    for c in self._fcomb_hidden:
      x = jax.nn.relu(c(x))
    return self._logits(x)

  def _decode(self, img: Array, z: Array) -> Array:
    """Logits [B, H, W, K] of one z [B, 1, 1, N] per image."""
    if self._inject_at_input:
      # The image with z broadcast to N more channels: [B, H, W, C + N].
      x = jnp.concatenate([img, _broadcast(z, img)], axis=-1)
      return self.f_comb(self.unet_features(x))
    return self.f_comb(self.unet_features(img), z)

  def prior(self, img: Array) -> Gaussian:
    """p(z | img), or N(0, I) [B, 1, 1, N] with `prior="fixed"`."""
    if self._fixed_prior:
      zeros = jnp.zeros((img.shape[0], 1, 1, self._latent_dim), img.dtype)
      return Gaussian(loc=zeros, log_scale=zeros)
    return self._prior(img)

  def posterior(self, seg: Array, img: Array) -> Gaussian:
    """q(z | seg[, img]) [B, 1, 1, N]; `seg` one-hot [B, H, W, K]."""
    seg = seg.astype(img.dtype)
    if self._centred_seg:  # The reference code's input: [img, seg - 0.5].
      inputs = ([img] if self._posterior_sees_image else []) + [seg - 0.5]
    else:
      inputs = [seg] + ([img] if self._posterior_sees_image else [])
    return self._posterior(jnp.concatenate(inputs, axis=-1))

  def _choose_z(self, dist: Gaussian, mean) -> Array:
    (mean,) = hpu_model.normalize_mean_flags(mean, 1)
    if mean:
      return dist.loc
    eps = jax.random.normal(hk.next_rng_key(), dist.loc.shape, dist.loc.dtype)
    return dist.loc + jnp.exp(dist.log_scale) * eps

  def _init_scope(self):
    """With `w_init="he_normal"`: every conv kernel made inside is He-normal."""
    if not self._he_normal:
      return contextlib.nullcontext()
    he_normal = hk.initializers.VarianceScaling(2.0, "fan_in",
                                                "truncated_normal")

    def creator(next_creator, shape, dtype, init, context):
      if context.name == "w":  # conv kernels (biases keep theirs)
        init = he_normal
      return next_creator(shape, dtype, init)

    return hk.custom_creator(creator, params=True, state=False)

  def sample(self, img: Array, *, mean=False, z_q=None) -> SampleOutput:
    """One prior sample per image; `z_q` = (z [B, 1, 1, N],) overrides."""
    self._check_inputs(img)
    with self._init_scope():
      prior = self.prior(img)
      z = z_q[0] if z_q is not None else self._choose_z(prior, mean)
      return SampleOutput(self._decode(img, z), (z,), (prior,))

  def sample_n(self, img: Array, *, num_samples: int,
               mean=False) -> SampleOutput:
    """S samples per image.

    With z injected at `f_comb`, the U-Net and prior run once and `f_comb` S
    times. With z injected at the input every sample needs its own U-Net
    pass: the images are tiled S times ([S * B, H, W, C]), so time and
    activation memory grow S-fold.
    """
    self._check_inputs(img)
    batch = img.shape[0]
    with self._init_scope():
      prior = self.prior(img)
      tiled = Gaussian(
          *(jnp.broadcast_to(a[None], (num_samples,) + a.shape)
            for a in prior))
      z = self._choose_z(tiled, mean)  # [S, B, 1, 1, N]
      flat_z = z.reshape((num_samples * batch,) + z.shape[2:])
      if self._inject_at_input:
        flat_img = jnp.broadcast_to(img[None], (num_samples,) + img.shape)
        logits = self._decode(
            flat_img.reshape((num_samples * batch,) + img.shape[1:]), flat_z)
      else:
        features = self.unet_features(img)
        features = jnp.broadcast_to(
            features[None], (num_samples,) + features.shape).reshape(
                (num_samples * batch,) + features.shape[1:])
        logits = self.f_comb(features, flat_z)
    logits = logits.reshape((num_samples, batch) + logits.shape[1:])
    return SampleOutput(logits, (z,), (tiled,))

  def reconstruct(self, *, seg: Array, img: Array,
                  mean=False) -> ReconstructionOutput:
    """Decodes a posterior sample (or its mean) with the U-Net features."""
    self._check_inputs(img, seg)
    with self._init_scope():
      posterior = self.posterior(seg, img)
      z = self._choose_z(posterior, mean)
      prior = self.prior(img)
      logits = self._decode(img, z)
    return ReconstructionOutput(logits, (z,), (posterior,), (prior,))

  def kl(self, *, seg: Array, img: Array) -> tuple[Array, ...]:
    return self.train_outputs(seg=seg, img=img).kl

  def train_outputs(self, *, seg: Array, img: Array) -> TrainOutputs:
    rec = self.reconstruct(seg=seg, img=img, mean=False)
    return TrainOutputs(
        logits=rec.logits,
        kl=(hpu_model.kl_divergence(rec.posterior[0], rec.prior[0]),))


def _broadcast(z: Array, like: Array) -> Array:
  """z [B, 1, 1, N] -> [B, H, W, N], H, W and dtype those of `like`."""
  return jnp.broadcast_to(z.astype(like.dtype),
                          like.shape[:3] + (z.shape[-1],))
