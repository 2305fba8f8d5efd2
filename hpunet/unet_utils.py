# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Building blocks shared by the HPU-Net and the sPU-Net (Haiku).

Mirrors the official `unet_utils.py` (deepmind-research,
hierarchical_probabilistic_unet): a pre-activated residual block without
normalisation, 2x2 average-pool down-sampling and nearest-neighbour
up-sampling by pixel repetition.

Shapes: `B` batch, `H, W` spatial, `C` block width, `D` inner (residual) width.
All tensors are NHWC.
"""

from typing import Callable, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# The official constructor defaults, confirmed by the HPU-Net paper for all
# models: orthogonal weights (gain 1) and truncated-normal biases (stddev
# 0.001, truncated at +-2 sigma).
def default_w_init() -> hk.initializers.Initializer:
  return hk.initializers.Orthogonal(scale=1.0)


def default_b_init() -> hk.initializers.Initializer:
  return hk.initializers.TruncatedNormal(stddev=0.001)


def conv(output_channels: int, kernel_size: int, name: str) -> hk.Conv2D:
  """A SAME-padded, stride-1 NHWC conv with bias and the official initialisers."""
  return hk.Conv2D(
      output_channels=output_channels,
      kernel_shape=kernel_size,
      stride=1,
      padding="SAME",
      with_bias=True,
      w_init=default_w_init(),
      b_init=default_b_init(),
      data_format="NHWC",
      name=name)


def resize_down(x: Array) -> Array:
  """2x2 average pooling, stride 2, VALID: [B, H, W, C] -> [B, H/2, W/2, C]."""
  if x.shape[1] % 2 or x.shape[2] % 2:
    raise ValueError(
        f"resize_down needs even spatial dims, got {x.shape[1:3]}; every "
        "processing scale but the last halves H and W, so the input size must "
        "be divisible by 2**(num_scales - 1).")
  # Full window/stride shapes: integer ones warn under vmap.
  return hk.avg_pool(x, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def max_pool_down(x: Array) -> Array:
  """2x2 max pooling, stride 2, VALID: [B, H, W, C] -> [B, H/2, W/2, C].

  The alternative to `resize_down` for the posterior's encoder (option
  `posterior_pooling="max"`, not in the papers): a feature that fires
  anywhere in the window survives whole instead of being averaged away."""
  if x.shape[1] % 2 or x.shape[2] % 2:
    raise ValueError(
        f"max_pool_down needs even spatial dims, got {x.shape[1:3]}.")
  return hk.max_pool(x, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def resize_up(x: Array) -> Array:
  """Nearest-neighbour x2 up-sampling by pixel repetition: H, W -> 2H, 2W.

  The official code calls TF1 `resize_nearest_neighbor(align_corners=True)`
  to (2h, 2w); for an exact factor of 2 its source index is `i // 2`, i.e.
  pure duplication. `jnp.repeat` is also the up-sampler that partitions
  cleanly under spatial sharding (halo exchanges only; `jax.image.resize`
  all-gathers full activations).
  """
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _shift(x: Array, offset: int, axis: int) -> Array:
  """x shifted by `offset` (+1/-1) along `axis`, replicating the edge."""
  n = x.shape[axis]
  if offset == -1:  # result[i] = x[i - 1], result[0] = x[0]
    head = jax.lax.slice_in_dim(x, 0, 1, axis=axis)
    body = jax.lax.slice_in_dim(x, 0, n - 1, axis=axis)
    return jnp.concatenate([head, body], axis=axis)
  tail = jax.lax.slice_in_dim(x, n - 1, n, axis=axis)  # result[i] = x[i + 1]
  body = jax.lax.slice_in_dim(x, 1, n, axis=axis)
  return jnp.concatenate([body, tail], axis=axis)


def _bilinear_up_axis(x: Array, axis: int) -> Array:
  # Half-pixel centres: output 2i sits at input i - 1/4, output 2i+1 at
  # i + 1/4, so the weights are (1/4, 3/4) with the clamped neighbour.
  even = 0.75 * x + 0.25 * _shift(x, -1, axis)
  odd = 0.75 * x + 0.25 * _shift(x, +1, axis)
  stacked = jnp.stack([even, odd], axis=axis + 1)
  new_shape = list(x.shape)
  new_shape[axis] *= 2
  return stacked.reshape(new_shape)


def resize_up_bilinear(x: Array) -> Array:
  """Bilinear x2 up-sampling (half-pixel centres, edge clamped).

  Equals `jax.image.resize(x, (B, 2H, 2W, C), "bilinear")` (tested), but is
  written with shifts and stacks so that XLA's SPMD partitioner needs only
  halo exchanges under spatial sharding. Used by the sPU-Net, whose paper
  resamples feature maps bilinearly.
  """
  return _bilinear_up_axis(_bilinear_up_axis(x, 1), 2)


class ResBlock(hk.Module):
  """The official pre-activated residual block.

  1. `relu` on the input of the residual branch only (the skip branch keeps
     the raw input);
  2. `convs_per_block` 3x3 convs of width D with `relu` *between* them, not
     after the last;
  3. a 1x1 projection of the residual branch to C if D != C;
  4. a 1x1 projection of the (un-activated) skip branch if C_in != C;
  5. `skip + residual`, not activated: every consumer reads pre-activation
     features.
  """

  def __init__(self,
               channels: int,
               down_channels: int,
               convs_per_block: int = 3,
               activation_fn: Callable[[Array], Array] = jax.nn.relu,
               name: Optional[str] = None):
    super().__init__(name=name)
    if convs_per_block < 1:
      raise ValueError(f"convs_per_block must be >= 1, got {convs_per_block}.")
    self._channels = int(channels)
    self._down_channels = int(down_channels)
    self._activation_fn = activation_fn
    # Construction order follows the official Sonnet module (3x3 convs, then
    # the skip projection, then the residual projection).
    self._convs = [
        conv(self._down_channels, 3, name=f"conv_{i}")
        for i in range(convs_per_block)
    ]
    self._skip_projection = conv(self._channels, 1, name="skip_projection")
    self._residual_projection = conv(
        self._channels, 1, name="residual_projection")

  def __call__(self, x: Array) -> Array:  # [B, H, W, C_in] -> [B, H, W, C]
    residual = self._activation_fn(x)
    for i, c in enumerate(self._convs):
      residual = c(residual)  # [B, H, W, D]
      if i < len(self._convs) - 1:
        residual = self._activation_fn(residual)
    if self._down_channels != self._channels:
      residual = self._residual_projection(residual)
    skip = x
    if x.shape[-1] != self._channels:
      skip = self._skip_projection(x)
    return skip + residual


def _align_corners_up_axis(x: Array, axis: int) -> Array:
  # Output i of 2n samples the input at i * (n - 1) / (2n - 1): the first and
  # last pixel centres of input and output coincide.
  n = x.shape[axis]
  src = np.arange(2 * n) * ((n - 1) / max(2 * n - 1, 1))
  lo = np.floor(src).astype(np.int32)
  hi = np.minimum(lo + 1, n - 1)
  frac = (src - lo).astype(np.float32)
  shape = [1] * x.ndim
  shape[axis] = 2 * n
  frac = jnp.asarray(frac.reshape(shape), x.dtype)
  return ((1 - frac) * jnp.take(x, lo, axis=axis) +
          frac * jnp.take(x, hi, axis=axis))


def resize_up_bilinear_align_corners(x: Array) -> Array:
  """Bilinear x2 up-sampling with `align_corners=True`: H, W -> 2H, 2W.

  TF1's `resize_images(..., BILINEAR, align_corners=True)`, which the sPU-Net
  reference code (SimonKohl/probabilistic_unet) up-samples with: corner
  pixels map onto corner pixels, so output i of 2n samples input
  i (n - 1) / (2n - 1). Written with static gathers; under spatial sharding
  XLA may all-gather the activations (`resize_up_bilinear` does not).
  """
  return _align_corners_up_axis(_align_corners_up_axis(x, 1), 2)
