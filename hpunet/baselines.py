# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""The sPU-Net paper's baselines without a posterior (Sec. 3.2, Fig. 2a-c).

Each shares the sPU-Net's U-Net core (`unet.UNet`, the same widths per
config) and ends in 1x1 output convs on its last feature map:

- `DropoutUNet` (Fig. 2a, after the Bayesian SegNet): dropout p = 0.5 on the
  activations entering the three inner-most encoder and decoder blocks,
  during training and when sampling: each sample is one dropout mask.
  `mean=True` switches dropout off (the deterministic U-Net of the same
  weights).
- `UNetEnsemble` (Fig. 2b): M independently initialised U-Nets, each with
  its own 1x1 logits conv; M = 1 is the deterministic U-Net. The members'
  parameters are stacked along a leading axis of size M (each member from
  its own init key) and run with `jax.vmap`, so one training step updates
  all members: the objective sums the members' own cross-entropies, whose
  gradients never mix (see `objectives.py`). Members see the same batches
  (one input pipeline); their diversity comes from their initialisation, as
  in deep ensembles (Lakshminarayanan et al. 2017).
- `MHeadsUNet` (Fig. 2c, Rupprecht et al. 2017): one U-Net, M 1x1 output
  heads (one conv with M x K outputs), trained with the adaptive loss of
  `losses.mheads_weights`.

Samples (`sample_n(num_samples=n)`): the Dropout U-Net draws n masks. The
ensemble and M-heads return member / head `i mod M` as sample i, i.e. the
first n members or heads when n <= M and every one of them cyclically
repeated when n > M. With the V-statistic GED of `metrics.ged`, M
predictions repeated k times score as the M predictions themselves (a
uniform distribution over members / heads). `sample` returns sample 0
(member / head 0).

None of them has latents or a posterior: `latent_dims` is (), `has_posterior`
is False, `SampleOutput.used_latents` / `.prior` are empty, and
`TrainOutputs.kl` is (). `TrainOutputs.logits` is [B, H, W, K] for the
Dropout U-Net and [M, B, H, W, K] (member / head first) for the others.

Shape glossary: `B` batch, `S` samples, `M` members or heads, `H, W` image
size, `C` channels, `K` classes.
"""

from typing import Any, Sequence

import haiku as hk
import jax
import jax.numpy as jnp

from hpunet import model as hpu_model
from hpunet import unet
from hpunet import unet_utils

Array = jax.Array
SampleOutput = hpu_model.SampleOutput
TrainOutputs = hpu_model.TrainOutputs

LIDC_CHANNELS_PER_BLOCK = (32, 64, 128, 256, 512)


def _mean_flag(mean: Any) -> bool:
  """`mean` of a model without latents: a bool, or () (no latent level)."""
  if isinstance(mean, (bool, int)):
    return bool(mean)
  if len(tuple(mean)):
    raise ValueError(f"`mean` has {len(tuple(mean))} entries but the model "
                     "has no latent levels; pass a bool.")
  return False


def _check_no_z(z_q) -> None:
  if z_q is not None:
    raise ValueError("z_q: this model has no latents.")


def cyclic_indices(num_samples: int, num_outputs: int) -> Array:
  """Sample i -> member / head i mod M: [S] int32."""
  if num_samples < 1:
    raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
  return jnp.arange(num_samples, dtype=jnp.int32) % num_outputs


class DropoutUNet(hk.Module):
  """The Dropout U-Net: U-Net core + a 1x1 logits conv (`head`)."""
  has_posterior = False
  loss_types = ("ce",)

  def __init__(self,
               channels_per_block: Sequence[int] = LIDC_CHANNELS_PER_BLOCK,
               convs_per_block: int = 3,
               num_classes: int = 2,
               dropout_rate: float = 0.5,
               num_dropout_blocks: int = 3,
               resize_method: str = "bilinear",
               activation_constraint=None,
               name: str = "dropout_unet"):
    super().__init__(name=name)
    if not 0.0 < dropout_rate < 1.0:
      raise ValueError(f"dropout_rate must be in (0, 1), got {dropout_rate}.")
    self._unet = unet.UNet(channels_per_block, convs_per_block,
                           resize_method=resize_method,
                           constrain=activation_constraint,
                           dropout_rate=dropout_rate,
                           num_dropout_blocks=num_dropout_blocks)
    self._head = unet_utils.conv(num_classes, 1, name="head")

  @property
  def latent_dims(self) -> tuple[int, ...]:
    return ()

  def _logits(self, img: Array, *, dropout: bool) -> Array:
    self._unet.check_input_size(img)
    return self._head(self._unet(img, dropout=dropout))  # [B, H, W, K]

  def train_outputs(self, *, seg: Array, img: Array) -> TrainOutputs:
    del seg  # the loss reads it
    return TrainOutputs(logits=self._logits(img, dropout=True), kl=())

  def sample(self, img: Array, *, mean=False, z_q=None) -> SampleOutput:
    """One dropout mask per image (`mean=True`: no dropout)."""
    _check_no_z(z_q)
    return SampleOutput(self._logits(img, dropout=not _mean_flag(mean)),
                        (), ())

  def sample_n(self, img: Array, *, num_samples: int,
               mean=False) -> SampleOutput:
    """S dropout masks per image: the images tiled S times, one pass."""
    self._unet.check_input_size(img)
    batch = img.shape[0]
    tiled = jnp.broadcast_to(img[None], (num_samples,) + img.shape).reshape(
        (num_samples * batch,) + img.shape[1:])  # [S * B, H, W, C]
    logits = self._logits(tiled, dropout=not _mean_flag(mean))
    return SampleOutput(
        logits.reshape((num_samples, batch) + logits.shape[1:]), (), ())


class _Member(hk.Module):
  """One ensemble member: U-Net core + a 1x1 logits conv (`head`)."""

  def __init__(self, channels_per_block, convs_per_block, num_classes,
               resize_method, activation_constraint):
    super().__init__(name="member")
    self._unet = unet.UNet(channels_per_block, convs_per_block,
                           resize_method=resize_method,
                           constrain=activation_constraint)
    self._head = unet_utils.conv(num_classes, 1, name="head")

  def __call__(self, img: Array) -> Array:
    return self._head(self._unet(img))  # [B, H, W, K]


# How `UNetEnsemble` runs its members in one step: "vmap" batches them (each
# convolution becomes one grouped convolution: the fast path on
# accelerators), "unroll" traces the M members one after the other (M
# ordinary convolutions per layer in the graph; compile time grows with M).
# On XLA:CPU grouped convolutions, and convolutions inside a loop
# (`jax.lax.map`), are an order of magnitude slower than plain ones
# (benchmarks/ensemble_members.py), so "auto" picks "unroll" on CPU and
# "vmap" elsewhere. The members' values are the same either way.
MEMBER_LOOPS = ("auto", "vmap", "unroll")


class UNetEnsemble(hk.Module):
  """M deterministic U-Nets with stacked parameters (module docstring).

  Parameters: `unet_ensemble/members/member/~/...`, each leaf with a leading
  axis of size M.
  """
  has_posterior = False
  loss_types = ("ce",)

  def __init__(self,
               num_members: int = 4,
               channels_per_block: Sequence[int] = LIDC_CHANNELS_PER_BLOCK,
               convs_per_block: int = 3,
               num_classes: int = 2,
               resize_method: str = "bilinear",
               member_loop: str = "auto",
               activation_constraint=None,
               name: str = "unet_ensemble"):
    super().__init__(name=name)
    if isinstance(num_members, bool) or int(num_members) != num_members or \
        num_members < 1:
      raise ValueError(f"num_members must be an integer >= 1, got "
                       f"{num_members!r}.")
    if member_loop not in MEMBER_LOOPS:
      raise ValueError(f"member_loop must be one of {MEMBER_LOOPS}, got "
                       f"{member_loop!r}.")
    self._member_loop = member_loop
    unet.check_resize_method(resize_method)
    self._num_members = int(num_members)
    self._num_scales = len(channels_per_block)
    self._member = hk.transform(lambda img: _Member(
        channels_per_block, convs_per_block, num_classes, resize_method,
        activation_constraint)(img))

  @property
  def latent_dims(self) -> tuple[int, ...]:
    return ()

  @property
  def num_members(self) -> int:
    return self._num_members

  def __call__(self, img: Array, num_members: int = None) -> Array:
    """The first `num_members` (default all) members: [M', B, H, W, K]."""
    unet.check_input_size(img, self._num_scales)

    def init(keys, img):  # each member from its own key: [M, ...] leaves
      return jax.vmap(self._member.init, in_axes=(0, None))(keys, img)

    keys = (jnp.stack(hk.next_rng_keys(self._num_members))
            if hk.running_init() else None)
    # Made at init; at apply, read from this module's parameters.
    params = hk.lift(init, name="members")(keys, img)
    if num_members is not None and num_members < self._num_members:
      params = jax.tree.map(lambda p: p[:num_members], params)
    loop = self._member_loop
    if loop == "auto":
      loop = "unroll" if jax.default_backend() == "cpu" else "vmap"
    if loop == "unroll":  # M plain convolutions per layer
      m = jax.tree.leaves(params)[0].shape[0]
      return jnp.stack([
          self._member.apply(jax.tree.map(lambda p, i=i: p[i], params), None,
                             img) for i in range(m)])  # [M, B, H, W, K]
    # Batched over members: XLA turns each conv into one grouped conv.
    return jax.vmap(self._member.apply, in_axes=(0, None, None))(
        params, None, img)

  def train_outputs(self, *, seg: Array, img: Array) -> TrainOutputs:
    del seg  # the loss reads it
    return TrainOutputs(logits=self(img), kl=())

  def sample(self, img: Array, *, mean=False, z_q=None) -> SampleOutput:
    """Member 0's prediction."""
    _check_no_z(z_q)
    _mean_flag(mean)
    return SampleOutput(self(img, 1)[0], (), ())

  def sample_n(self, img: Array, *, num_samples: int,
               mean=False) -> SampleOutput:
    """Sample i = member i mod M (`mean` has no effect: no latents)."""
    _mean_flag(mean)
    logits = self(img, min(num_samples, self._num_members))
    if num_samples > self._num_members:
      logits = logits[cyclic_indices(num_samples, self._num_members)]
    return SampleOutput(logits, (), ())  # [S, B, H, W, K]


class MHeadsUNet(hk.Module):
  """A U-Net with M 1x1 output heads (`heads`: one conv, M x K outputs)."""
  has_posterior = False
  loss_types = ("mheads",)

  def __init__(self,
               num_heads: int = 4,
               channels_per_block: Sequence[int] = LIDC_CHANNELS_PER_BLOCK,
               convs_per_block: int = 3,
               num_classes: int = 2,
               resize_method: str = "bilinear",
               activation_constraint=None,
               name: str = "mheads_unet"):
    super().__init__(name=name)
    if isinstance(num_heads, bool) or int(num_heads) != num_heads or \
        num_heads < 1:
      raise ValueError(f"num_heads must be an integer >= 1, got "
                       f"{num_heads!r}.")
    self._num_heads = int(num_heads)
    self._num_classes = int(num_classes)
    self._unet = unet.UNet(channels_per_block, convs_per_block,
                           resize_method=resize_method,
                           constrain=activation_constraint)
    self._heads = unet_utils.conv(self._num_heads * self._num_classes, 1,
                                  name="heads")

  @property
  def latent_dims(self) -> tuple[int, ...]:
    return ()

  @property
  def num_heads(self) -> int:
    return self._num_heads

  def head_logits(self, img: Array) -> Array:
    """Every head's logits: [M, B, H, W, K]."""
    self._unet.check_input_size(img)
    x = self._heads(self._unet(img))  # [B, H, W, M * K]
    x = x.reshape(x.shape[:3] + (self._num_heads, self._num_classes))
    return jnp.moveaxis(x, 3, 0)

  def train_outputs(self, *, seg: Array, img: Array) -> TrainOutputs:
    del seg  # the loss reads it
    return TrainOutputs(logits=self.head_logits(img), kl=())

  def sample(self, img: Array, *, mean=False, z_q=None) -> SampleOutput:
    """Head 0's prediction."""
    _check_no_z(z_q)
    _mean_flag(mean)
    return SampleOutput(self.head_logits(img)[0], (), ())

  def sample_n(self, img: Array, *, num_samples: int,
               mean=False) -> SampleOutput:
    """Sample i = head i mod M (`mean` has no effect: no latents)."""
    _mean_flag(mean)
    logits = self.head_logits(img)
    return SampleOutput(
        logits[cyclic_indices(num_samples, self._num_heads)], (), ())
