# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Reconstruction loss with batch-global top-k, in pure JAX.

Mirrors `geco_utils.py` of the official HPU-Net (official_hpunet.md §7.1).

Shape glossary: `B` batch, `H, W` spatial, `K` classes, `N = B*H*W` pixels.
"""

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from hpunet import sharding

Array = jax.Array


class ReconstructionLoss(NamedTuple):
  sum: Array  # scalar: per-image sum of masked CE, averaged over images
  mean: Array  # scalar: masked CE per selected pixel (a summary only)
  mask: Array  # [B, H, W] float: the pixels that entered the loss


def softmax_cross_entropy(logits: Array, seg: Array) -> Array:
  """Per-pixel CE: logits [B, H, W, K], one-hot seg [B, H, W, K] -> [B, H, W]."""
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.sum(seg.astype(jnp.float32) * log_probs, axis=-1)


def num_top_k(num_pixels: int, top_k_percentage: float) -> int:
  """k = floor(p * N), N counting every pixel of the batch, masked or not."""
  if not 0.0 < top_k_percentage <= 1.0:
    raise ValueError(
        f"top_k_percentage must be in (0, 1], got {top_k_percentage}.")
  k = int(num_pixels * top_k_percentage)
  if k < 1:
    raise ValueError(
        f"top_k_percentage={top_k_percentage} of {num_pixels} pixels selects "
        "no pixel; use a larger batch/image or disable top-k (None).")
  return k


def top_k_mask(xe: Array, mask: Array, *, k: int, deterministic: bool,
               rng: Optional[Array] = None) -> Array:
  """Selects k pixels of the whole batch: [B, H, W] -> {0, 1} [B, H, W].

  Stochastic (default): k pixels sampled without replacement with probability
  proportional to their CE (Gumbel top-k on log(CE / sum CE)). Deterministic:
  the k largest CEs. Masked pixels score -inf and end up zeroed by the final
  `mask * selected`. There is no gradient through the selection.

  The selection is `sharding.top_k_mask`: exactly the pixels
  `jax.lax.top_k` picks on the flattened batch (ties to the lowest index),
  but written with elementwise ops and global counts, so under a
  ('data', 'spatial') mesh no device gathers the score map.
  """
  xe = jax.lax.stop_gradient(xe)  # [B, H, W]
  mask = mask.astype(jnp.float32)
  scores = jnp.log(xe / jnp.sum(xe))
  if not deterministic:
    if rng is None:
      raise ValueError("Stochastic top-k needs an rng.")
    u = jax.random.uniform(rng, xe.shape, jnp.float32)
    scores += -jnp.log(-jnp.log(u + 1e-20) + 1e-20)  # Gumbel noise
  scores += jnp.log(mask)
  return mask * sharding.top_k_mask(scores, k)


def reconstruction_loss(logits: Array,
                        seg: Array,
                        mask: Optional[Array] = None,
                        *,
                        top_k_percentage: Optional[float] = None,
                        deterministic_top_k: bool = False,
                        rng: Optional[Array] = None) -> ReconstructionLoss:
  """Masked softmax CE, optionally restricted to a batch-global top-k.

  Args:
    logits: [B, H, W, K].
    seg: one-hot [B, H, W, K].
    mask: [B, H, W], 1 where the pixel may enter the loss (warp padding and
      ignore pixels are 0); the only ignore mechanism. Defaults to all ones.
    top_k_percentage: fraction of the batch's pixels to keep (0.02 in both
      papers' HPU-Net runs); None disables top-k.
    deterministic_top_k: take the largest CEs instead of sampling.
    rng: key for the Gumbel noise of the stochastic top-k.

  Returns:
    `ReconstructionLoss`; `sum` is what the objectives use.
  """
  xe = softmax_cross_entropy(logits, seg)  # [B, H, W]
  if mask is None:
    mask = jnp.ones(xe.shape, jnp.float32)
  mask = mask.astype(jnp.float32)
  if top_k_percentage is not None:
    k = num_top_k(xe.size, top_k_percentage)
    mask = top_k_mask(xe, mask, k=k, deterministic=deterministic_top_k,
                      rng=rng)
  batch = xe.shape[0]
  per_image = jnp.sum((mask * xe).reshape(batch, -1), axis=1)  # [B]
  total_mask = jnp.sum(mask)
  return ReconstructionLoss(
      sum=jnp.mean(per_image),
      mean=jnp.sum(mask * xe) / jnp.maximum(total_mask, 1.0),
      mask=mask)


def l2_weight_decay(params) -> Array:
  """sum(x^2) over every leaf (weights and biases; no 1/2), as the papers."""
  return sum(jnp.sum(jnp.square(p.astype(jnp.float32)))
             for p in jax.tree.leaves(params))
