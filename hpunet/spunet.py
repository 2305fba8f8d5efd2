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
the up-sampler for pixel repetition.

The posterior input is `concat([seg_onehot, img])` as in the HPU-Net code
(the sPU-Net reference code used `one_hot - 0.5` after the image; the paper
does not specify it).

Shape glossary: `B` batch, `S` samples, `H, W` image size, `C` channels,
`K` classes, `N` latent size. The global latent is carried as [B, 1, 1, N]
so it shares the HPU-Net's per-pixel Gaussian type and KL.
"""

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
  """Prior or posterior net: encoder path, global average pool, 1x1 conv."""

  def __init__(self, channels_per_block, convs_per_block, latent_dim,
               constrain, name):
    super().__init__(name=name)
    self._latent_dim = latent_dim
    self._encoder = unet.Encoder(channels_per_block, convs_per_block,
                                 constrain, name="encoder")
    self._head = unet_utils.conv(2 * latent_dim, 1, name="latent_head")

  def __call__(self, x: Array) -> Gaussian:
    features = self._encoder(x)[-1]
    pooled = jnp.mean(features, axis=(1, 2), keepdims=True)  # [B, 1, 1, C]
    mu_log_sigma = self._head(pooled)  # [B, 1, 1, 2N]
    return Gaussian(loc=mu_log_sigma[..., :self._latent_dim],
                    log_scale=mu_log_sigma[..., self._latent_dim:])


class ProbUNet(hk.Module):
  """The sPU-Net. Defaults follow the sPU-Net paper's LIDC setting.

  LIDC: 5 scales (4 down/up-samplings), base 32 doubled per scale, 6 latents.
  The HPU-Net paper's re-implementations (LIDC 5 scales; SNEMI3D 9 scales,
  base 24 capped at 192, 85 latents) and Cityscapes (6 scales) are other
  arguments; see `configs/`.
  """

  def __init__(self,
               channels_per_block: Sequence[int] = LIDC_CHANNELS_PER_BLOCK,
               convs_per_block: int = 3,
               latent_dim: int = 6,
               num_classes: int = 2,
               num_fcomb_convs: int = 3,
               fcomb_channels: int = 32,
               resize_method: str = "bilinear",
               activation_constraint=None,
               name: str = "spunet"):
    super().__init__(name=name)
    if resize_method not in ("bilinear", "nearest"):
      raise ValueError("resize_method must be 'bilinear' or 'nearest', got "
                       f"{resize_method!r}.")
    if latent_dim < 1 or num_fcomb_convs < 1:
      raise ValueError(f"latent_dim ({latent_dim}) and num_fcomb_convs "
                       f"({num_fcomb_convs}) must be >= 1.")
    self._channels = tuple(int(c) for c in channels_per_block)
    self._latent_dim = int(latent_dim)
    constrain = activation_constraint or (lambda x: x)
    # Its blocks are this module's `unet_encoder` and `decoder_<l>`.
    self._unet = unet.UNet(self._channels, convs_per_block,
                           resize_method=resize_method, constrain=constrain)
    self._prior = _LatentNet(self._channels, convs_per_block, latent_dim,
                             constrain, name="prior")
    self._posterior = _LatentNet(self._channels, convs_per_block, latent_dim,
                                 constrain, name="posterior")
    self._fcomb_hidden = [
        unet_utils.conv(fcomb_channels, 1, name=f"f_comb_{i}")
        for i in range(num_fcomb_convs - 1)
    ]
    self._logits = unet_utils.conv(num_classes, 1, name="logits")

  @property
  def latent_dims(self) -> tuple[int, ...]:
    return (self._latent_dim,)

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

  def f_comb(self, features: Array, z: Array) -> Array:
    """[B, H, W, C_0], z [B, 1, 1, N] -> logits [B, H, W, K]."""
    z_map = jnp.broadcast_to(z.astype(features.dtype),
                             features.shape[:3] + (z.shape[-1],))
    x = jnp.concatenate([features, z_map], axis=-1)
    for c in self._fcomb_hidden:
      x = jax.nn.relu(c(x))
    return self._logits(x)

  def _choose_z(self, dist: Gaussian, mean) -> Array:
    (mean,) = hpu_model.normalize_mean_flags(mean, 1)
    if mean:
      return dist.loc
    eps = jax.random.normal(hk.next_rng_key(), dist.loc.shape, dist.loc.dtype)
    return dist.loc + jnp.exp(dist.log_scale) * eps

  def sample(self, img: Array, *, mean=False, z_q=None) -> SampleOutput:
    """One prior sample per image; `z_q` = (z [B, 1, 1, N],) overrides."""
    self._check_inputs(img)
    prior = self._prior(img)
    z = z_q[0] if z_q is not None else self._choose_z(prior, mean)
    logits = self.f_comb(self.unet_features(img), z)
    return SampleOutput(logits, (z,), (prior,))

  def sample_n(self, img: Array, *, num_samples: int,
               mean=False) -> SampleOutput:
    """S samples per image; the U-Net and prior run once, `f_comb` S times."""
    self._check_inputs(img)
    batch = img.shape[0]
    prior = self._prior(img)
    tiled = Gaussian(
        *(jnp.broadcast_to(a[None], (num_samples,) + a.shape) for a in prior))
    z = self._choose_z(tiled, mean)  # [S, B, 1, 1, N]
    features = self.unet_features(img)
    features = jnp.broadcast_to(features[None], (num_samples,) +
                                features.shape).reshape(
                                    (num_samples * batch,) + features.shape[1:])
    logits = self.f_comb(features, z.reshape((num_samples * batch,) +
                                             z.shape[2:]))
    logits = logits.reshape((num_samples, batch) + logits.shape[1:])
    return SampleOutput(logits, (z,), (tiled,))

  def reconstruct(self, *, seg: Array, img: Array,
                  mean=False) -> ReconstructionOutput:
    """Decodes a posterior sample (or its mean) with the U-Net features."""
    self._check_inputs(img, seg)
    posterior = self._posterior(
        jnp.concatenate([seg.astype(img.dtype), img], axis=-1))
    z = self._choose_z(posterior, mean)
    prior = self._prior(img)
    logits = self.f_comb(self.unet_features(img), z)
    return ReconstructionOutput(logits, (z,), (posterior,), (prior,))

  def kl(self, *, seg: Array, img: Array) -> tuple[Array, ...]:
    return self.train_outputs(seg=seg, img=img).kl

  def train_outputs(self, *, seg: Array, img: Array) -> TrainOutputs:
    rec = self.reconstruct(seg=seg, img=img, mean=False)
    return TrainOutputs(
        logits=rec.logits,
        kl=(hpu_model.kl_divergence(rec.posterior[0], rec.prior[0]),))
