# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""The Hierarchical Probabilistic U-Net (Kohl et al. 2019) in Haiku.

A faithful port of the official `model.py` (deepmind-research,
hierarchical_probabilistic_unet):

- `prior` and `posterior` are two `_HierarchicalCore`s with separate weights:
  a full U-Net encoder plus a truncated decoder that, at each latent level
  (coarse to fine), predicts a per-pixel diagonal Gaussian with a 1x1 conv
  (mu, log sigma; sigma = exp(log sigma), unclamped), picks z (z_q, the mean
  or a sample), concatenates it *before* up-sampling (z first) and the skip
  *after* it (skip last).
- The prior core doubles as the generator: every output (sample or
  reconstruction) decodes the prior's features with the chosen z, and
  `f_comb` (`_StitchingDecoder`) finishes the U-Net from the prior's encoder
  skips. The posterior only supplies distributions and latents.

Shape glossary: `B` batch, `S` samples, `H, W` image size, `C` channels,
`K` classes, `L` processing scales, `Z_i` latent size at latent level `i`
(level 0 is the coarsest, the "most global"), `h_i, w_i` its grid.

Deliberate differences from the official code, all behaviour-neutral:
- The posterior does not build its res-blocks after the last latent head
  (the official code computes them but never uses them: zero gradient).
- `down_channels_per_block` must be integers and defaults to C // 2 of the
  given `channels_per_block` (the official code used the 8-level default as
  floats whatever the channels).
- `latent_dims` may contain 0: that decoder level has no latent (the
  "local latents only" ablation of the paper's Table 2, e.g. (0, 0, 0, 1)).
- An optional `activation_constraint` is applied to every per-level feature
  map, so a trainer can pin shardings under spatial partitioning.
"""

from typing import Callable, NamedTuple, Optional, Sequence, Union

import haiku as hk
import jax
import jax.numpy as jnp

from hpunet import unet_utils

Array = jax.Array
MeanFlags = Union[bool, int, Sequence[Union[bool, int]]]
Constraint = Optional[Callable[[Array], Array]]

LIDC_CHANNELS_PER_BLOCK = (24, 48, 96, 192, 192, 192, 192, 192)
LIDC_LATENT_DIMS = (1, 1, 1, 1)


class Gaussian(NamedTuple):
  """A per-pixel diagonal Gaussian; `scale = exp(log_scale)` is a stddev."""
  loc: Array  # [B, h_i, w_i, Z_i]
  log_scale: Array  # [B, h_i, w_i, Z_i]


class CoreOutput(NamedTuple):
  """What a `_HierarchicalCore` returns (one entry per decoder level).

  Levels whose latent dim is 0 have `None` in `distributions` and
  `used_latents`.
  """
  decoder_features: Array  # [B, h, w, C] after the last latent level
  encoder_features: tuple[Array, ...]  # fine -> coarse, [B, H/2^l, W/2^l, C_l]
  distributions: tuple[Optional[Gaussian], ...]  # coarse -> fine
  used_latents: tuple[Optional[Array], ...]  # coarse -> fine, [B, h_i, w_i, Z_i]


class SampleOutput(NamedTuple):
  logits: Array  # [B, H, W, K] (or [S, B, H, W, K] from sample_n)
  used_latents: tuple[Optional[Array], ...]  # per level, [(S,) B, h_i, w_i, Z_i]
  prior: tuple[Optional[Gaussian], ...]  # the conditional prior at each level


class ReconstructionOutput(NamedTuple):
  logits: Array  # [B, H, W, K]
  used_latents: tuple[Optional[Array], ...]  # the posterior's z per level
  posterior: tuple[Optional[Gaussian], ...]
  prior: tuple[Optional[Gaussian], ...]  # conditioned on the posterior's z


class TrainOutputs(NamedTuple):
  logits: Array  # [B, H, W, K], decoded from one posterior sample
  kl: tuple[Array, ...]  # [B] per latent level (levels with a latent only)


def normalize_mean_flags(mean: MeanFlags, num_levels: int) -> tuple[bool, ...]:
  """`mean` as one bool per decoder level, ordered coarse -> fine."""
  if isinstance(mean, (bool, int)):
    return (bool(mean),) * num_levels
  mean = tuple(bool(m) for m in mean)
  if len(mean) != num_levels:
    raise ValueError(
        f"`mean` has {len(mean)} entries but the model has {num_levels} "
        "latent levels (ordered coarse -> fine).")
  return mean


def kl_divergence(q: Gaussian, p: Gaussian) -> Array:
  """Analytic KL(q || p) of diagonal Gaussians, summed over (h, w, Z): [B]."""
  # Computed in float32 whatever the compute dtype: it is summed over many
  # pixels and enters the objective directly.
  mu_q, log_sq = q.loc.astype(jnp.float32), q.log_scale.astype(jnp.float32)
  mu_p, log_sp = p.loc.astype(jnp.float32), p.log_scale.astype(jnp.float32)
  var_ratio = jnp.exp(2.0 * (log_sq - log_sp))
  mahalanobis = jnp.square(mu_q - mu_p) * jnp.exp(-2.0 * log_sp)
  kl = log_sp - log_sq + 0.5 * (var_ratio + mahalanobis) - 0.5
  return jnp.sum(kl, axis=(1, 2, 3))


def _identity(x: Array) -> Array:
  return x


def _repeat_to(z: Array, like: Array) -> Array:
  """[B, h, w, Z] nearest-neighbour up to `like`'s [H, W] (a multiple)."""
  fh, fw = like.shape[1] // z.shape[1], like.shape[2] // z.shape[2]
  return jnp.repeat(jnp.repeat(z.astype(like.dtype), fh, axis=1), fw, axis=2)


# How an encoder halves the resolution between scales: "mean" is the
# official 2x2 average pooling; "max" (posterior option, not in the papers).
POOLING = {"mean": unet_utils.resize_down, "max": unet_utils.max_pool_down}


class _HierarchicalCore(hk.Module):
  """A U-Net encoder plus a truncated decoder with per-level latents."""

  def __init__(self,
               latent_dims: Sequence[int],
               channels_per_block: Sequence[int],
               down_channels_per_block: Sequence[int],
               convs_per_block: int,
               blocks_per_level: int,
               decode_last_level: bool = True,
               activation_constraint: Constraint = None,
               global_latent_skips: bool = False,
               pooling: str = "mean",
               name: Optional[str] = None):
    super().__init__(name=name)
    self._down = POOLING[pooling]
    self._latent_dims = tuple(latent_dims)
    self._global_latent_skips = bool(global_latent_skips)
    self._channels = tuple(channels_per_block)
    self._down_channels = tuple(down_channels_per_block)
    self._constrain = activation_constraint or _identity
    num_levels = len(self._channels)
    # Submodules are built once here so that repeated calls (the multi-sample
    # path decodes many times) reuse the same parameters.
    self._encoder_blocks = [[
        unet_utils.ResBlock(self._channels[l], self._down_channels[l],
                            convs_per_block, name=f"encoder_{l}_block_{b}")
        for b in range(blocks_per_level)
    ] for l in range(num_levels)]
    self._heads = [
        unet_utils.conv(2 * z, 1, name=f"latent_head_{i}") if z else None
        for i, z in enumerate(self._latent_dims)
    ]
    num_decoded = len(self._latent_dims) - (0 if decode_last_level else 1)
    self._decoder_blocks = []
    for i in range(num_decoded):
      l = num_levels - 2 - i
      self._decoder_blocks.append([
          unet_utils.ResBlock(self._channels[l], self._down_channels[l],
                              convs_per_block, name=f"decoder_{i}_block_{b}")
          for b in range(blocks_per_level)
      ])

  def encode(self, inputs: Array) -> tuple[Array, ...]:
    """[B, H, W, C_in] -> encoder outputs, fine -> coarse."""
    outputs = []
    x = inputs
    for l, blocks in enumerate(self._encoder_blocks):
      for block in blocks:
        x = block(x)
      x = self._constrain(x)  # [B, H/2^l, W/2^l, C_l]
      outputs.append(x)
      if l < len(self._encoder_blocks) - 1:
        x = self._constrain(self._down(x))
    return tuple(outputs)

  def decode(self,
             encoder_outputs: Sequence[Array],
             *,
             mean: MeanFlags = False,
             z_q: Optional[Sequence[Optional[Array]]] = None,
             noise: Optional[Sequence[Optional[Array]]] = None,
             own_mean: Optional[Sequence[Optional[Array]]] = None
             ) -> CoreOutput:
    """Runs the latent levels coarse -> fine.

    Args:
      encoder_outputs: from `encode`, fine -> coarse.
      mean: per-level flags (coarse -> fine) to use the conditional mean.
      z_q: per-level latents to use instead of sampling; overrides `mean`.
        A None entry leaves that level as `mean` says (sampled by default).
      noise: per-level standard-normal draws `eps` to use for sampled levels
        (`z = mu + sigma * eps`); drawn from Haiku's RNG if not given.
      own_mean: per-level bool [B] or None (latent level dropout, training
        only): where True, that example's level uses this core's own
        conditional mean (no gradient through it) instead of z_q.

    Returns:
      A `CoreOutput`.
    """
    num_latent_levels = len(self._latent_dims)
    mean = normalize_mean_flags(mean, num_latent_levels)
    if z_q is not None and len(z_q) != num_latent_levels:
      raise ValueError(f"`z_q` has {len(z_q)} entries, expected "
                       f"{num_latent_levels} (one per latent level).")
    num_levels = len(self._channels)
    d = encoder_outputs[-1]  # the bottleneck, [B, h_0, w_0, C_{L-1}]
    distributions, used_latents = [], []
    for i, head in enumerate(self._heads):
      if head is None:
        distributions.append(None)
        used_latents.append(None)
        z = None
      else:
        mu_log_sigma = head(d)  # [B, h_i, w_i, 2 Z_i]
        dist = Gaussian(loc=mu_log_sigma[..., :self._latent_dims[i]],
                        log_scale=mu_log_sigma[..., self._latent_dims[i]:])
        if z_q is not None and z_q[i] is not None:
          z = z_q[i]
          if own_mean is not None and own_mean[i] is not None:
            z = jnp.where(own_mean[i][:, None, None, None],
                          jax.lax.stop_gradient(dist.loc), z)
        elif mean[i]:
          z = dist.loc
        else:
          eps = (noise[i] if noise is not None else jax.random.normal(
              hk.next_rng_key(), dist.loc.shape, dist.loc.dtype))
          z = dist.loc + jnp.exp(dist.log_scale) * eps
        distributions.append(dist)
        used_latents.append(z)
      if i >= len(self._decoder_blocks):
        break  # the posterior stops after its last head
      if z is not None:
        d = jnp.concatenate([z.astype(d.dtype), d], axis=-1)  # z first
      if self._global_latent_skips and i > 0:
        # The 1x1 sample again, next to z_i (option; see HierarchicalProbUNet)
        d = jnp.concatenate([_repeat_to(used_latents[0], d), d], axis=-1)
      d = self._constrain(unet_utils.resize_up(d))
      skip = encoder_outputs[num_levels - 2 - i]
      d = jnp.concatenate([d, skip], axis=-1)  # skip last
      for block in self._decoder_blocks[i]:
        d = block(d)
      d = self._constrain(d)  # [B, h_{i+1}, w_{i+1}, C]
    return CoreOutput(
        decoder_features=d,
        encoder_features=tuple(encoder_outputs),
        distributions=tuple(distributions),
        used_latents=tuple(used_latents))

  def __call__(self, inputs: Array, *, mean: MeanFlags = False,
               z_q=None) -> CoreOutput:
    return self.decode(self.encode(inputs), mean=mean, z_q=z_q)


class _StitchingDecoder(hk.Module):
  """`f_comb`: completes the U-Net above the latent levels, then logits."""

  def __init__(self,
               num_latent_levels: int,
               channels_per_block: Sequence[int],
               down_channels_per_block: Sequence[int],
               num_classes: int,
               convs_per_block: int,
               blocks_per_level: int,
               activation_constraint: Constraint = None,
               global_latent_skips: bool = False,
               name: Optional[str] = None):
    super().__init__(name=name)
    self._global_latent_skips = bool(global_latent_skips)
    self._start_level = num_latent_levels + 1
    self._num_levels = len(channels_per_block)
    self._constrain = activation_constraint or _identity
    self._blocks = {}
    for level in range(self._start_level, self._num_levels):
      l = self._num_levels - 1 - level
      self._blocks[level] = [
          unet_utils.ResBlock(channels_per_block[l], down_channels_per_block[l],
                              convs_per_block, name=f"level_{level}_block_{b}")
          for b in range(blocks_per_level)
      ]
    self._logits = unet_utils.conv(num_classes, 1, name="logits")

  def __call__(self, encoder_features: Sequence[Array],
               decoder_features: Array,
               global_latent: Optional[Array] = None) -> Array:
    d = decoder_features
    for level in range(self._start_level, self._num_levels):
      d = self._constrain(unet_utils.resize_up(d))
      d = jnp.concatenate(
          [d, encoder_features[self._num_levels - 1 - level]], axis=-1)
      if self._global_latent_skips:  # [B, H_l, W_l, Z_0 + C + C_skip]
        d = jnp.concatenate([_repeat_to(global_latent, d), d], axis=-1)
      for block in self._blocks[level]:
        d = block(d)
      d = self._constrain(d)
    return self._logits(d)  # [B, H, W, K]


class HierarchicalProbUNet(hk.Module):
  """The HPU-Net. Defaults are the official LIDC configuration.

  LIDC (defaults): 8 scales 128 -> 1, widths 24 -> 192, 4 latent levels of
  scalar latents on 1x1, 2x2, 4x4, 8x8 grids (85 latents), 3 res-blocks of
  3 convs per scale, 2 classes. SNEMI3D and Cityscapes (and non-square inputs
  such as 512x1024 with a 2x4 bottom) are other arguments; see `configs/`.

  `global_latent_skips` (not in the papers, off by default): the most global
  level's latent (the 1x1 grid; nearest-neighbour repeated) is concatenated
  again at every finer scale, of both cores' decoders and of `f_comb`, as
  StyleGAN and NVAE hand a global code to every scale. In the faithful model
  it enters only at the bottleneck, seven resolution steps from the logits,
  and on the synthetic benchmark the decoder never learns to read it (its KL
  stays near 0 while the fine levels spell the global factor out cell by
  cell); with the skips a global factor can be drawn from one latent at the
  resolution where it is seen. (On that benchmark this alone does not move
  the global factor to the 1x1 level: README, "Round 7".)

  `residual_posterior_from` (not in the papers; 0 = off): the latent levels
  from this index on (coarse -> fine) get their posterior from a second
  posterior core, `residual_posterior`, whose input is not the annotation
  but what the coarser levels leave unexplained: the one-hot annotation
  where the reconstruction decoded from the posterior's coarser latents
  (the finer levels at their conditional prior mean; no gradient through
  it) has the wrong label, zeros elsewhere. A factor that the coarse levels
  already code (a global bit) is then invisible to the fine posterior,
  which cannot take it over cell by cell. The coarser levels
  keep the faithful posterior. It changes training and reconstruction
  only; sampling (the prior path) is the faithful model's. (On the synthetic
  benchmark, after a coarse-first phase, it keeps more of the global
  factor on the 1x1 level than without it; in one seed of three the 1x1
  level alone reproduces >= 0.6 of its variance: README, "Round 9".)

  `posterior_pooling` (not in the papers; "mean" = the official 2x2 average
  pooling): "max" halves the resolution of the posterior's encoder (and
  the residual posterior's) by 2x2 max pooling. With average pooling a
  small annotated structure reaches the 1x1 level diluted by its area: on
  the synthetic benchmark three spots of ~32 pixels each are 0.6 % of a
  128x128 annotation, and a posterior trained only to read the spot bit on
  its 1x1 latent stays at chance for 300 steps (one seed) or all 400 (the
  other); with max pooling it reads it by step 50 (README, "Round 12").
  The prior and `f_comb` keep average pooling: sampling sees the image, as
  in the papers.
  """

  def __init__(self,
               latent_dims: Sequence[int] = LIDC_LATENT_DIMS,
               channels_per_block: Sequence[int] = LIDC_CHANNELS_PER_BLOCK,
               down_channels_per_block: Optional[Sequence[int]] = None,
               num_classes: int = 2,
               convs_per_block: int = 3,
               blocks_per_level: int = 3,
               activation_constraint: Constraint = None,
               level_dropout_rate: float = 0.0,
               level_dropout_from: int = 1,
               global_latent_skips: bool = False,
               residual_posterior_from: int = 0,
               posterior_pooling: str = "mean",
               name: str = "hpunet"):
    super().__init__(name=name)
    if not 0.0 <= level_dropout_rate < 1.0:
      raise ValueError("level_dropout_rate must be in [0, 1), got "
                       f"{level_dropout_rate}.")
    self._level_dropout_rate = float(level_dropout_rate)
    self._level_dropout_from = int(level_dropout_from)
    channels_per_block = tuple(int(c) for c in channels_per_block)
    if down_channels_per_block is None:
      down_channels_per_block = tuple(c // 2 for c in channels_per_block)
    else:
      if any(int(c) != c for c in down_channels_per_block):
        raise ValueError("down_channels_per_block must be integers, got "
                         f"{tuple(down_channels_per_block)}.")
      down_channels_per_block = tuple(int(c) for c in down_channels_per_block)
    if len(down_channels_per_block) != len(channels_per_block):
      raise ValueError(
          f"down_channels_per_block has {len(down_channels_per_block)} entries"
          f" but channels_per_block has {len(channels_per_block)}.")
    if min(channels_per_block + down_channels_per_block) < 1:
      raise ValueError("All channel counts must be >= 1, got "
                       f"{channels_per_block} / {down_channels_per_block}.")
    latent_dims = tuple(int(z) for z in latent_dims)
    if not latent_dims or len(latent_dims) >= len(channels_per_block):
      raise ValueError(
          f"latent_dims {latent_dims} needs 1 to {len(channels_per_block) - 1}"
          f" levels for {len(channels_per_block)} processing scales.")
    if min(latent_dims) < 0 or not any(latent_dims):
      raise ValueError(f"latent_dims {latent_dims} must be >= 0 with at least"
                       " one level that has a latent.")
    if self._level_dropout_rate and not (
        1 <= self._level_dropout_from < len(latent_dims)):
      raise ValueError(
          f"level_dropout_from={level_dropout_from} must be in [1, "
          f"{len(latent_dims) - 1}] for {len(latent_dims)} latent levels.")
    if global_latent_skips and not latent_dims[0]:
      raise ValueError(f"global_latent_skips needs a latent on the most global"
                       f" level, but latent_dims is {latent_dims}.")
    if residual_posterior_from != int(residual_posterior_from) or not (
        residual_posterior_from == 0
        or 1 <= residual_posterior_from < len(latent_dims)):
      raise ValueError(
          f"residual_posterior_from={residual_posterior_from!r} must be 0 "
          f"(off) or an integer in [1, {len(latent_dims) - 1}] for "
          f"{len(latent_dims)} latent levels.")
    if posterior_pooling not in POOLING:
      raise ValueError(f"posterior_pooling={posterior_pooling!r} must be one "
                       f"of {sorted(POOLING)} ('mean': the papers' average "
                       "pooling).")
    self._residual_from = int(residual_posterior_from)
    self._global_latent_skips = bool(global_latent_skips)
    self._latent_dims = latent_dims
    self._channels = channels_per_block
    core_kwargs = dict(
        latent_dims=latent_dims,
        channels_per_block=channels_per_block,
        down_channels_per_block=down_channels_per_block,
        convs_per_block=convs_per_block,
        blocks_per_level=blocks_per_level,
        activation_constraint=activation_constraint,
        global_latent_skips=self._global_latent_skips)
    self._prior = _HierarchicalCore(name="prior", **core_kwargs)
    self._posterior = _HierarchicalCore(
        name="posterior", decode_last_level=False, pooling=posterior_pooling,
        **core_kwargs)
    self._residual_posterior = _HierarchicalCore(
        name="residual_posterior", decode_last_level=False,
        pooling=posterior_pooling,
        **core_kwargs) if self._residual_from else None
    self._f_comb = _StitchingDecoder(
        num_latent_levels=len(latent_dims),
        channels_per_block=channels_per_block,
        down_channels_per_block=down_channels_per_block,
        num_classes=num_classes,
        convs_per_block=convs_per_block,
        blocks_per_level=blocks_per_level,
        activation_constraint=activation_constraint,
        global_latent_skips=self._global_latent_skips,
        name="f_comb")

  @property
  def latent_dims(self) -> tuple[int, ...]:
    return self._latent_dims

  def _posterior_input(self, seg: Array, img: Array) -> Array:
    # Segmentation first, no -0.5 shift (unlike the sPU-Net reference code).
    return jnp.concatenate([seg.astype(img.dtype), img], axis=-1)

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

  def _decode(self, prior_encoding, *, mean=False, z_q=None, noise=None,
              own_mean=None):
    prior = self._prior.decode(prior_encoding, mean=mean, z_q=z_q, noise=noise,
                               own_mean=own_mean)
    logits = self._f_comb(prior.encoder_features, prior.decoder_features,
                          prior.used_latents[0])
    return logits, prior

  def sample(self, img: Array, *, mean: MeanFlags = False,
             z_q: Optional[Sequence[Optional[Array]]] = None) -> SampleOutput:
    """One sample per image from the prior.

    Args:
      img: [B, H, W, C].
      mean: bool, or one flag per latent level ordered coarse -> fine (index
        0 is the 1x1 "most global" level). A flagged level uses the prior
        mean *conditioned on the latents used at coarser levels*. The
        official colab's modes: full = False; only most local sampled =
        [1, 1, 1, 0]; only most global sampled = [0, 1, 1, 1].
      z_q: optional latents per level; overrides `mean` and sampling.

    Returns:
      `SampleOutput` with logits [B, H, W, K].
    """
    self._check_inputs(img)
    logits, prior = self._decode(self._prior.encode(img), mean=mean, z_q=z_q)
    return SampleOutput(logits, prior.used_latents, prior.distributions)

  def sample_n(self, img: Array, *, num_samples: int,
               mean: MeanFlags = False) -> SampleOutput:
    """`num_samples` samples per image, running the prior encoder once.

    Only what depends on z (the prior's latent levels and `f_comb`) is
    rerun: the encoder features are tiled over the samples, which are folded
    into the batch, so one decoder pass produces all S samples.

    Returns:
      `SampleOutput` with logits [S, B, H, W, K] and latents [S, B, ...].
    """
    self._check_inputs(img)
    batch = img.shape[0]
    encoding = self._prior.encode(img)
    tiled = tuple(
        jnp.broadcast_to(e[None], (num_samples,) + e.shape).reshape(
            (num_samples * batch,) + e.shape[1:]) for e in encoding)
    logits, prior = self._decode(tiled, mean=mean)

    def unfold(x):
      return None if x is None else x.reshape((num_samples, batch) + x.shape[1:])

    return SampleOutput(
        logits=unfold(logits),
        used_latents=tuple(unfold(z) for z in prior.used_latents),
        prior=tuple(None if d is None else Gaussian(unfold(d.loc),
                                                     unfold(d.log_scale))
                    for d in prior.distributions))

  def reconstruct(self, *, seg: Array, img: Array,
                  mean: MeanFlags = False,
                  own_prior_mean=None,
                  posterior_z: Optional[Sequence[Optional[Array]]] = None
                  ) -> ReconstructionOutput:
    """Decodes the posterior's latents through the prior path.

    Args:
      seg: one-hot segmentation [B, H, W, K] (float).
      img: [B, H, W, C].
      mean: False (training): posterior samples at all levels, each level
        conditioned on the posterior's own samples. True: posterior means
        (the S(X, mu_post(X, Y)) behind IoU_rec). Per-level flags allowed.
      own_prior_mean: per-level bool [B] or None: where True, the decoder
        uses its conditional prior's mean at that level instead of the
        posterior's sample (latent level dropout, see `train_outputs`).
      posterior_z: per-level latents, or None: a given entry replaces the
        posterior's sample at that level, in the posterior's own decoder and
        in the prior's (None entries are sampled as usual). For controlled
        experiments: a known code of the annotation on a level (the
        synthetic benchmark's `experiments/global_code.py`).

    Returns:
      `ReconstructionOutput`.
    """
    self._check_inputs(img, seg)
    posterior = self._posterior(self._posterior_input(seg, img), mean=mean,
                                z_q=posterior_z)
    prior_encoding = self._prior.encode(img)
    if self._residual_from:
      posterior = self._residual_posterior_pass(
          seg, img, posterior, prior_encoding, mean=mean,
          posterior_z=posterior_z)
    logits, prior = self._decode(prior_encoding,
                                 z_q=posterior.used_latents,
                                 own_mean=own_prior_mean)
    return ReconstructionOutput(logits, posterior.used_latents,
                                posterior.distributions, prior.distributions)

  def _residual_posterior_pass(self, seg, img, posterior, prior_encoding, *,
                               mean, posterior_z) -> CoreOutput:
    """The finer levels' posterior from what the coarser ones leave unexplained.

    Returns `posterior` with the levels from `residual_posterior_from` on
    replaced by the residual posterior's distributions and latents.
    """
    r, n = self._residual_from, len(self._latent_dims)
    coarse = tuple(posterior.used_latents[:r]) + (None,) * (n - r)
    # Finer levels at their conditional prior mean: what decoding the coarse
    # latents alone explains (as "sampling only the coarse levels" decodes).
    explained_logits, _ = self._decode(prior_encoding, mean=True, z_q=coarse)
    # The annotation only where that reconstruction's label is wrong. (Not
    # the signed difference seg - softmax: its sign is the label wherever the
    # reconstruction is unsure, so it would hand the fine cells the whole
    # annotation again.)
    # (argmax: no gradient flows back into that reconstruction.)
    wrong = jnp.argmax(explained_logits, axis=-1) != jnp.argmax(
        seg, axis=-1)  # [B, H, W]
    residual = seg * wrong[..., None].astype(seg.dtype)  # [B, H, W, K]
    given = coarse[:r] + tuple(
        None if posterior_z is None else posterior_z[i] for i in range(r, n))
    fine = self._residual_posterior(self._posterior_input(residual, img),
                                    mean=mean, z_q=given)
    return CoreOutput(
        decoder_features=fine.decoder_features,
        encoder_features=fine.encoder_features,
        distributions=posterior.distributions[:r] + fine.distributions[r:],
        used_latents=fine.used_latents)

  def kl(self, *, seg: Array, img: Array) -> tuple[Array, ...]:
    """Per-level KL(q || p) [B], p conditioned on q's samples (App. A)."""
    return self.train_outputs(seg=seg, img=img).kl

  def train_outputs(self, *, seg: Array, img: Array,
                    level_dropout_scale: Optional[Array] = None,
                    posterior_z: Optional[Sequence[Optional[Array]]] = None
                    ) -> TrainOutputs:
    """Everything a training step needs, each pass run exactly once.

    1. the posterior on (seg, img) with samples; 2. the prior with z_q = those
    samples; 3. `f_comb`. The KL per level is the single-sample estimate of
    the hierarchical KL (HPU-Net paper, Appendix A).

    Latent level dropout (`level_dropout_rate` > 0; not in the papers, off
    by default): per example, with that probability, every level from
    `level_dropout_from` on decodes the mean of its conditional prior
    (given the posterior's coarser samples) instead of the posterior's
    sample, and those levels' KL counts 0 for that example (their posterior
    is unused). The mean, not a sample: decoding a chain of prior samples
    from a prior whose fine levels are still wide made training diverge
    (NaN within 215-1300 steps on the synthetic benchmark), and the mean is
    what "sampling only the coarse levels" decodes at evaluation.
    The reconstruction of such an example depends on the image and the
    coarse levels alone, so what is shared by the whole image (a global
    factor) has to be carried by the coarse levels, and the decoder learns
    to read them, instead of it being spelled out cell by cell in fine
    levels whose prior cannot reproduce it.

    `level_dropout_scale` (scalar in [0, 1], may be traced; None = 1)
    multiplies the rate: the training loop's schedule
    (`config.loss.level_dropout_decay_steps`) decays it to 0, so the last
    steps train every example through the full posterior again, or to
    `config.loss.level_dropout_final_scale`, kept to the end.

    `posterior_z`: see `reconstruct`. The KL of a level given there still
    compares that level's posterior and prior distributions, which the
    decoder then does not use.
    """
    own = None
    if self._level_dropout_rate:
      rate = self._level_dropout_rate
      if level_dropout_scale is not None:
        rate = rate * jnp.asarray(level_dropout_scale, jnp.float32)
      drop = jax.random.bernoulli(hk.next_rng_key(), rate,
                                  (img.shape[0],))  # [B]
      own = tuple(drop if i >= self._level_dropout_from else None
                  for i in range(len(self._latent_dims)))
    rec = self.reconstruct(seg=seg, img=img, mean=False, own_prior_mean=own,
                           posterior_z=posterior_z)
    kl = []
    for i, (q, p) in enumerate(zip(rec.posterior, rec.prior)):
      if q is None:
        continue
      if own is not None and own[i] is not None:
        # A dropped example's prior here is conditioned on prior samples and
        # may lie far from q: compare q with itself instead (KL exactly 0),
        # so no inf/nan gradient can leak through the masked branch.
        keep_q = lambda a, b: jnp.where(  # pylint: disable=cell-var-from-loop
            own[i][:, None, None, None], jax.lax.stop_gradient(a), b)
        p = Gaussian(keep_q(q.loc, p.loc), keep_q(q.log_scale, p.log_scale))
      kl.append(kl_divergence(q, p))  # [B]
    return TrainOutputs(logits=rec.logits, kl=tuple(kl))
