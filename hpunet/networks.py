# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Pure functions over the Haiku models, built from a model config.

Everything outside the model files works with these functions and plain
parameter pytrees; only this module and the model files import Haiku.

`config.model` is a ConfigDict (or dict) with `name` one of `_MODELS`'
keys and the remaining keys equal to the constructor arguments of its class:
"hpunet" `model.HierarchicalProbUNet`, "spunet" `spunet.ProbUNet`, and the
sPU-Net paper's baselines without a posterior, "dropout_unet"
`baselines.DropoutUNet`, "unet_ensemble" `baselines.UNetEnsemble`, "mheads"
`baselines.MHeadsUNet`.

All functions take `seg` as a one-hot float [B, H, W, K] and `img` as
[B, H, W, C]; `mean` flags are static Python values (bool or one per latent
level, coarse -> fine).
"""

import inspect
from typing import Any, Callable, Mapping, NamedTuple, Optional

import haiku as hk
import jax
import jax.numpy as jnp

from hpunet import baselines
from hpunet import model as hpu_model
from hpunet import spunet

Array = jax.Array
Params = Any

TrainOutputs = hpu_model.TrainOutputs
SampleOutput = hpu_model.SampleOutput
ReconstructionOutput = hpu_model.ReconstructionOutput

_MODELS = {
    "hpunet": hpu_model.HierarchicalProbUNet,
    "spunet": spunet.ProbUNet,
    "dropout_unet": baselines.DropoutUNet,
    "unet_ensemble": baselines.UNetEnsemble,
    "mheads": baselines.MHeadsUNet,
}

# config.loss.type values each model trains with (default: these two).
_POSTERIOR_LOSS_TYPES = ("geco", "elbo")


def loss_types(model_name: str) -> tuple[str, ...]:
  """The `config.loss.type` values model `model_name` can train with (an
  unknown name is `model_kwargs`' error, not this one's)."""
  return tuple(getattr(_MODELS.get(model_name), "loss_types",
                       _POSTERIOR_LOSS_TYPES))


class Networks(NamedTuple):
  """Pure entry points of one model; see the model classes for semantics."""
  init: Callable[..., Params]  # (rng, *, seg, img) -> params
  train_outputs: Callable[..., TrainOutputs]  # (params, rng, *, seg, img)
  reconstruct: Callable[..., Array]  # (params, rng, *, seg, img, mean) -> logits
  reconstruct_full: Callable[..., ReconstructionOutput]
  sample: Callable[..., SampleOutput]  # (params, rng, img, *, mean, z_q)
  sample_n: Callable[..., Array]  # (params, rng, img, *, num_samples, mean)
  sample_n_full: Callable[..., SampleOutput]
  latent_dims: tuple[int, ...]  # per latent level, coarse -> fine
  num_classes: int
  model_name: str
  # False for models without a posterior (deterministic and dropout U-Nets,
  # ensembles, M-heads): `reconstruct` / `reconstruct_full` are then None and
  # reconstruction metrics (IoU_rec) do not exist for them.
  has_posterior: bool = True
  # True when the model's `seg` input must have all-zero one-hot rows on
  # unlabelled pixels (mask 0: ignore labels, augmentation padding) instead
  # of class 0 (the sPU-Net's `unlabelled_pixels="no_class"`).
  unlabelled_as_no_class: bool = False

  def one_hot_seg(self, seg: Array, mask: Optional[Array] = None,
                  dtype=jnp.float32) -> Array:
    """The model's `seg` input: int labels [B, H, W] -> one-hot [B, H, W, K].

    With `unlabelled_as_no_class` and a `mask` [B, H, W] (1 = labelled), the
    rows of unlabelled pixels are all zero; otherwise a plain one-hot (the
    pipelines label unlabelled pixels 0).
    """
    one_hot = jax.nn.one_hot(seg, self.num_classes, dtype=dtype)
    if self.unlabelled_as_no_class and mask is not None:
      one_hot = one_hot * (mask > 0)[..., None].astype(dtype)
    return one_hot


def model_kwargs(model_config: Mapping[str, Any]) -> tuple[str, dict]:
  """Splits a model config into (name, constructor kwargs), validated."""
  cfg = dict(model_config.to_dict() if hasattr(model_config, "to_dict") else
             model_config)
  name = cfg.pop("name", None)
  if name not in _MODELS:
    raise ValueError(f"config.model.name must be one of {sorted(_MODELS)}, "
                     f"got {name!r}.")
  for key, value in list(cfg.items()):
    if isinstance(value, list):
      cfg[key] = tuple(value)
  return name, cfg


def constructor_defaults(name: str) -> dict:
  """The default constructor arguments of model `name` (config.model.name),
  so a model config that omits an argument equals one that states its
  default (older workdirs' configs lack the newer options)."""
  if name not in _MODELS:
    return {}
  return {k: p.default for k, p in
          inspect.signature(_MODELS[name]).parameters.items()
          if p.default is not inspect.Parameter.empty}


def make_networks(model_config: Mapping[str, Any], *,
                  activation_constraint: Optional[Callable[[Array], Array]] = None
                  ) -> Networks:
  """Builds the pure functions for `model_config` (see module docstring)."""
  name, kwargs = model_kwargs(model_config)
  cls = _MODELS[name]
  try:  # Constructor arguments are validated when a module is built.
    hk.transform(lambda: cls(**kwargs)).init(None)
  except TypeError as e:
    raise ValueError(f"Invalid config.model for {name!r}: {e}") from e

  def build():
    return cls(activation_constraint=activation_constraint, **kwargs)

  has_posterior = bool(getattr(cls, "has_posterior", True))
  def _train_outputs(*, seg, img, level_dropout_scale=None, posterior_z=None):
    # Only the HPU-Net has latent level dropout and given posterior latents
    # (and so these arguments).
    extra = {k: v for k, v in (("level_dropout_scale", level_dropout_scale),
                               ("posterior_z", posterior_z)) if v is not None}
    return build().train_outputs(seg=seg, img=img, **extra)

  train_outputs = hk.transform(_train_outputs)
  reconstruct = hk.transform(
      lambda *, seg, img, mean=False: build().reconstruct(
          seg=seg, img=img, mean=mean)) if has_posterior else None
  sample = hk.transform(
      lambda img, *, mean=False, z_q=None: build().sample(
          img, mean=mean, z_q=z_q))
  sample_n = hk.transform(
      lambda img, *, num_samples, mean=False: build().sample_n(
          img, num_samples=num_samples, mean=mean))
  latent_dims = hk.transform(lambda: build().latent_dims).apply({}, None)
  unlabelled_as_no_class = hk.transform(
      lambda: getattr(build(), "unlabelled_as_no_class", False)).apply({}, None)

  return Networks(
      init=train_outputs.init,
      train_outputs=train_outputs.apply,
      reconstruct=(lambda params, rng, **kw: reconstruct.apply(
          params, rng, **kw).logits) if has_posterior else None,
      reconstruct_full=reconstruct.apply if has_posterior else None,
      sample=sample.apply,
      sample_n=lambda params, rng, img, **kw: sample_n.apply(
          params, rng, img, **kw).logits,
      sample_n_full=sample_n.apply,
      latent_dims=tuple(latent_dims),
      num_classes=int(kwargs.get(
          "num_classes",
          inspect.signature(cls).parameters["num_classes"].default)),
      model_name=name,
      has_posterior=has_posterior,
      unlabelled_as_no_class=bool(unlabelled_as_no_class))


def component_param_counts(params: Params) -> dict[str, int]:
  """Parameter counts per top-level component (prior, posterior, f_comb...;
  unet and head / heads for the baselines, the ensemble's summed over its
  members)."""
  counts: dict[str, int] = {}
  for module_name, module_params in params.items():
    # Haiku names are "<model>/~/<component>/~/<submodule>..." (ensemble:
    # "<model>/members/member/~/<component>/~/...").
    parts = module_name.split("/~/")
    component = parts[1] if len(parts) > 1 else parts[0]
    if component.startswith("f_comb") or component == "logits":
      component = "f_comb"
    elif component.startswith("decoder_") or component == "unet_encoder":
      component = "unet"
    n = sum(int(v.size) for v in jax.tree.leaves(module_params))
    counts[component] = counts.get(component, 0) + n
  counts["total"] = sum(counts.values())
  return counts
