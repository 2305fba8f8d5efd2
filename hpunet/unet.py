# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""The sPU-Net's U-Net core (Haiku), shared with the baselines of its paper.

As in the sPU-Net paper (Sec. 2, App. A): at each scale three 3x3 conv +
ReLU; widths double at each down-sampling (2x2 average pooling) and halve at
each up-sampling (bilinear x2 with half-pixel centres, or pixel repetition
with `resize_method="nearest"`); the decoder concatenates the encoder's skip
after each up-sampling.

`UNet` is a plain Python object, not an `hk.Module`: its blocks are created
in the module that builds it, so their parameters sit right under that
module (`<model>/~/unet_encoder/~/block_<l>/~/conv_<i>` and
`<model>/~/decoder_<l>/~/conv_<i>`), as they did when the sPU-Net owned them
(its checkpoints and the official-weight conversion keep their paths).

Dropout (the sPU-Net paper's Dropout U-Net, Sec. 3.2, after the Bayesian
SegNet): with `dropout_rate > 0`, the activations entering the
`num_dropout_blocks` inner-most encoder blocks and the as many inner-most
decoder blocks are dropped (inverted dropout: kept ones scaled by
1 / (1 - rate)) when the call passes `dropout=True`.

Shapes: `B` batch, `H, W` image size, `C_l` width of scale l (l = 0 finest).
"""

from typing import Callable, Optional, Sequence

import haiku as hk
import jax
import jax.numpy as jnp

from hpunet import unet_utils

Array = jax.Array


def _identity(x: Array) -> Array:
  return x


def _dropout(x: Array, rate: float) -> Array:
  return hk.dropout(hk.next_rng_key(), rate, x)


# Up-samplers: half-pixel bilinear (default), the sPU-Net reference code's
# bilinear with align_corners=True, and pixel repetition.
_RESIZE_UP = {
    "bilinear": unet_utils.resize_up_bilinear,
    "bilinear_align_corners": unet_utils.resize_up_bilinear_align_corners,
    "nearest": unet_utils.resize_up,
}


def check_resize_method(resize_method: str) -> None:
  if resize_method not in _RESIZE_UP:
    raise ValueError(f"resize_method must be one of {tuple(_RESIZE_UP)}, got "
                     f"{resize_method!r}.")


def check_input_size(img: Array, num_scales: int) -> None:
  """Raises ValueError unless img is [B, H, W, C] with H and W divisible by
  2^(num_scales - 1)."""
  if img.ndim != 4:
    raise ValueError(f"img must be [B, H, W, C], got shape {img.shape}.")
  factor = 2 ** (num_scales - 1)
  if img.shape[1] % factor or img.shape[2] % factor:
    raise ValueError(
        f"img spatial size {img.shape[1:3]} must be divisible by {factor} "
        f"for {num_scales} processing scales.")


class ConvBlock(hk.Module):
  """`convs_per_block` 3x3 convs, each followed by a ReLU."""

  def __init__(self, channels: int, convs_per_block: int, name: str):
    super().__init__(name=name)
    self._convs = [
        unet_utils.conv(channels, 3, name=f"conv_{i}")
        for i in range(convs_per_block)
    ]

  def __call__(self, x: Array) -> Array:
    for c in self._convs:
      x = jax.nn.relu(c(x))
    return x


class Encoder(hk.Module):
  """The U-Net encoder path: [B, H, W, C_in] -> features fine -> coarse.

  Also the body of the sPU-Net's prior and posterior nets (no dropout).
  """

  def __init__(self, channels_per_block: Sequence[int], convs_per_block: int,
               constrain: Optional[Callable[[Array], Array]], name: str, *,
               dropout_rate: float = 0.0, num_dropout_blocks: int = 0,
               down: Callable[[Array], Array] = unet_utils.resize_down):
    super().__init__(name=name)
    self._constrain = constrain or _identity
    self._down = down  # 2x2 average pooling, or max pooling (sPU-Net option)
    self._blocks = [
        ConvBlock(c, convs_per_block, name=f"block_{l}")
        for l, c in enumerate(channels_per_block)
    ]
    self._dropout_rate = float(dropout_rate)
    # Blocks l >= this one get dropout on their input (the inner-most ones).
    self._first_dropout_block = len(self._blocks) - int(num_dropout_blocks)

  def __call__(self, x: Array, *, dropout: bool = False
               ) -> tuple[Array, ...]:
    outputs = []
    for l, block in enumerate(self._blocks):
      if l:
        x = self._constrain(self._down(x))
      if dropout and self._dropout_rate and l >= self._first_dropout_block:
        x = _dropout(x, self._dropout_rate)
      x = self._constrain(block(x))  # [B, H/2^l, W/2^l, C_l]
      outputs.append(x)
    return tuple(outputs)


class UNet:
  """The U-Net core: image [B, H, W, C] -> last feature map [B, H, W, C_0].

  Build it inside an `hk.Module`'s `__init__` (see the module docstring for
  the parameter names); call it inside that module's methods.
  """

  def __init__(self, channels_per_block: Sequence[int], convs_per_block: int,
               *, resize_method: str = "bilinear",
               constrain: Optional[Callable[[Array], Array]] = None,
               dropout_rate: float = 0.0, num_dropout_blocks: int = 3):
    check_resize_method(resize_method)
    if not 0.0 <= dropout_rate < 1.0:
      raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate}.")
    self.channels = tuple(int(c) for c in channels_per_block)
    if not 0 <= num_dropout_blocks <= len(self.channels):
      raise ValueError(
          f"num_dropout_blocks must be in [0, {len(self.channels)}] (the "
          f"number of scales), got {num_dropout_blocks}.")
    self._resize_up = _RESIZE_UP[resize_method]
    self._constrain = constrain or _identity
    self._dropout_rate = float(dropout_rate)
    self.encoder = Encoder(self.channels, convs_per_block, constrain,
                           name="unet_encoder", dropout_rate=dropout_rate,
                           num_dropout_blocks=num_dropout_blocks)
    self._decoder_blocks = [
        ConvBlock(self.channels[l], convs_per_block, name=f"decoder_{l}")
        for l in range(len(self.channels) - 1)
    ]
    # Decoder blocks l >= this one are the inner-most (coarsest) ones.
    self._first_dropout_decoder = len(self.channels) - 1 - num_dropout_blocks

  def check_input_size(self, img: Array) -> None:
    check_input_size(img, len(self.channels))

  def __call__(self, img: Array, *, dropout: bool = False) -> Array:
    """The last feature map [B, H, W, C_0]; `dropout` (needs an rng) drops
    the inputs of the inner-most blocks (module docstring)."""
    skips = self.encoder(img, dropout=dropout)
    d = skips[-1]
    for l in reversed(range(len(self.channels) - 1)):
      d = self._constrain(self._resize_up(d))
      d = jnp.concatenate([d, skips[l]], axis=-1)  # [B, H/2^l, W/2^l, ...]
      if dropout and self._dropout_rate and l >= self._first_dropout_decoder:
        d = _dropout(d, self._dropout_rate)
      d = self._constrain(self._decoder_blocks[l](d))
    return d
