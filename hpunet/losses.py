# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Reconstruction loss with batch-global top-k, in pure JAX.

Mirrors `geco_utils.py` of the official HPU-Net.

Shape glossary: `B` batch, `H, W` spatial, `K` classes, `N = B*H*W` pixels.
"""

import math
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

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


# ----------------------------------------------------------------------------
# Exact batch-global top-k that partitions without gathering.
# ----------------------------------------------------------------------------


def _order_preserving_uint32(x: jax.Array) -> jax.Array:
  """Maps float32 to uint32 so that unsigned order == float order."""
  bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)
  sign = bits >> 31
  return jnp.where(sign == 1, ~bits, bits | jnp.uint32(0x80000000))


def _radix_select(keys: jax.Array, k: jax.Array, num_bits: int,
                  valid: jax.Array | None = None) -> jax.Array:
  """Largest t with count(keys >= t [& valid]) >= k; keys uint32, any shape.

  Every iteration is one elementwise compare plus a global sum, which the SPMD
  partitioner turns into a local sum plus a scalar all-reduce.
  """

  def body(i, t):
    bit = jnp.uint32(1) << (num_bits - 1 - i).astype(jnp.uint32)
    cand = t | bit
    hit = keys >= cand
    if valid is not None:
      hit = hit & valid
    count = jnp.sum(hit, dtype=jnp.int32)
    return jnp.where(count >= k, cand, t)

  return jax.lax.fori_loop(0, num_bits, body, jnp.uint32(0))


def select_top_k(scores: jax.Array, k: int) -> jax.Array:
  """Indicator of the k largest scores of the whole array (any shape).

  Selects exactly the elements `jax.lax.top_k(scores.reshape(-1), k)` selects,
  ties broken towards the lower row-major index, but without flattening,
  sorting or gathering: a bitwise radix select over the (score, -index) key,
  made of elementwise ops and global counts. Under a `P('data', 'spatial')`
  layout the partitioner keeps every element on its device and exchanges only
  scalar counts (one all-reduce per bit).

  Args:
    scores: float array, e.g. [B, H, W]; -inf allowed (never selected before
      any finite score). NaN scores are not supported.
    k: number of elements to select, 0 <= k <= scores.size (static).

  Returns:
    float32 array of scores.shape with exactly k ones.
  """
  n = math.prod(scores.shape)
  if not 0 <= k <= n:
    raise ValueError(f"select_top_k: k={k} must be in [0, {n}].")
  if n >= 2**31:
    raise ValueError(f"select_top_k: {n} elements exceed int32 indices.")
  if k == 0:
    return jnp.zeros(scores.shape, jnp.float32)
  keys = _order_preserving_uint32(scores)
  kk = jnp.int32(k)
  # 1) The k-th largest score (as an ordered key).
  t_score = _radix_select(keys, kk, 32)
  above = keys > t_score
  n_above = jnp.sum(above, dtype=jnp.int32)
  # 2) Among scores equal to it, keep the (k - n_above) lowest indices, as
  #    lax.top_k does: select the largest values of the reversed index.
  tie = keys == t_score
  index = jnp.zeros(scores.shape, jnp.uint32)
  stride = 1
  for axis in reversed(range(scores.ndim)):  # Row-major flat index, sharded.
    index = index + jax.lax.broadcasted_iota(
        jnp.uint32, scores.shape, axis) * jnp.uint32(stride)
    stride *= scores.shape[axis]
  rev_index = jnp.uint32(n - 1) - index
  index_bits = max(1, int(n - 1).bit_length())
  t_index = _radix_select(rev_index, kk - n_above, index_bits, valid=tie)
  selected = above | (tie & (rev_index >= t_index))
  return selected.astype(jnp.float32)


def top_k_mask(xe: Array, mask: Array, *, k: int, deterministic: bool,
               rng: Optional[Array] = None) -> Array:
  """Selects k pixels of the whole batch: [B, H, W] -> {0, 1} [B, H, W].

  Stochastic (default): k pixels sampled without replacement with probability
  proportional to their CE (Gumbel top-k on log(CE / sum CE)). Deterministic:
  the k largest CEs. Masked pixels score -inf and end up zeroed by the final
  `mask * selected`. There is no gradient through the selection.

  The selection is `select_top_k`: exactly the pixels
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
  return mask * select_top_k(scores, k)


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


def mheads_weights(per_head_loss: Array, epsilon: float) -> Array:
  """The adaptive M-heads weights (Rupprecht et al. 2017; sPU-Net Sec. 3.2).

  Per example, the head with the lowest loss gets 1 - epsilon and every
  other head epsilon / (M - 1) (ties: the first such head); a single head
  gets 1. No gradient flows through the assignment.

  Args:
    per_head_loss: [M, B], e.g. each head's per-image cross-entropy.
    epsilon: the weight shared by the non-best heads (0.05 in the paper).

  Returns:
    [M, B] weights; each column sums to 1.
  """
  num_heads = per_head_loss.shape[0]
  if num_heads == 1:
    return jnp.ones(per_head_loss.shape, jnp.float32)
  best = jnp.argmin(jax.lax.stop_gradient(per_head_loss), axis=0)  # [B]
  is_best = jax.nn.one_hot(best, num_heads, axis=0, dtype=jnp.float32)
  return is_best * (1.0 - epsilon) + (1.0 - is_best) * (
      epsilon / (num_heads - 1))


WEIGHT_DECAY_MODES = ("all", "spunet_reference")


def l2_weight_decay(params, mode: str = "all") -> Array:
  """The L2 term that `weight_decay` multiplies.

  Args:
    params: a Haiku parameter dict {module name: {"w": ..., "b": ...}}.
    mode: "all" (default): sum(x^2) over every leaf, weights and biases,
      no 1/2, as the papers' TF code for the HPU-Net declares.
      "spunet_reference": 1/2 sum(w^2) over the conv kernels ("w") only,
      leaving out the final logits conv (a module named "logits"), as the
      sPU-Net reference code (SimonKohl/probabilistic_unet) regularises:
      `l2_regularizer` on the weights, none on the f_comb logits conv.
  """
  if mode == "all":
    return sum(jnp.sum(jnp.square(p.astype(jnp.float32)))
               for p in jax.tree.leaves(params))
  if mode != "spunet_reference":
    raise ValueError(f"weight decay mode must be one of {WEIGHT_DECAY_MODES}"
                     f", got {mode!r}.")
  total = jnp.zeros((), jnp.float32)
  for module, leaves in params.items():
    if module.rsplit("/", 1)[-1] == "logits":
      continue
    if "w" in leaves:
      total += 0.5 * jnp.sum(jnp.square(leaves["w"].astype(jnp.float32)))
  return total
