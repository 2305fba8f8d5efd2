# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""The training objectives of both papers as one pure, jittable function.

- GECO (HPU-Net paper, the default): `lam * (EMA(rec_sum) - kappa * n_sel) +
  kl_sum` with the official mechanics (`geco.py`), usually with a
  batch-global stochastic top-k of 2% of the pixels.
- ELBO (sPU-Net paper): `rec_sum + beta * kl_sum`, beta = 1 in the papers.

Both add the papers' weight decay as a separate, coupled L2 term
`weight_decay * sum(theta^2)` (weights and biases, no 1/2) over the network
parameters, not over the multiplier. Under Adam this is not the same as
decoupled AdamW decay; it is what the papers' TF code declares.

`params` is a dict: {"model": Haiku params, "lagrange_multiplier": v} (the
latter only for GECO), so the multiplier is trained by the same optimizer.

`loss_config` keys: type ("geco" | "elbo"), kappa, decay (0.99), rate (1e-2),
beta, top_k_percentage (None disables top-k), deterministic_top_k (False),
weight_decay (1e-5).
"""

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from hpunet import geco
from hpunet import losses

Array = jax.Array
Batch = Mapping[str, Array]

_DEFAULTS = dict(decay=0.99, rate=1e-2, beta=None, top_k_percentage=None,
                 deterministic_top_k=False, weight_decay=1e-5, kappa=None)


def _loss_settings(loss_config: Mapping[str, Any]) -> dict:
  cfg = dict(_DEFAULTS)
  cfg.update(loss_config.to_dict() if hasattr(loss_config, "to_dict") else
             dict(loss_config))
  if cfg.get("type") not in ("geco", "elbo"):
    raise ValueError("config.loss.type must be 'geco' or 'elbo', got "
                     f"{cfg.get('type')!r}.")
  if cfg["type"] == "geco" and cfg["kappa"] is None:
    raise ValueError("config.loss.kappa must be set for GECO (a per-pixel "
                     "reconstruction target in nats, e.g. 0.05 for LIDC).")
  if cfg["type"] == "elbo" and cfg["beta"] is None:
    raise ValueError("config.loss.beta must be set for the ELBO (1.0 in the "
                     "papers); it has no default, as in the official code.")
  return cfg


def init_params(networks, rng: Array, batch: Batch,
                loss_config: Mapping[str, Any]) -> dict:
  """Initial parameters for `objective` (see module docstring)."""
  cfg = _loss_settings(loss_config)
  seg, img = _model_inputs(batch, networks)
  params = {"model": networks.init(rng, seg=seg, img=img)}
  if cfg["type"] == "geco":
    params["lagrange_multiplier"] = geco.init_lagrange_multiplier()
  return params


def init_params_on_host(networks, batch: Batch,
                        loss_config: Mapping[str, Any], *, seed: int = 0
                        ) -> dict:
  """Deterministic random parameters made with numpy, for tests/benchmarks.

  Same tree as `init_params`, but filled on the host (scaled normal,
  0.3 / sqrt(fan_in); the multiplier at lambda = 1), so no RNG kernel is
  compiled per parameter shape. Not the papers' initialisers: use
  `init_params` for training.
  """
  shapes = jax.eval_shape(
      lambda k, b: init_params(networks, k, b, loss_config),
      jax.random.key(0), batch)
  rng = np.random.default_rng(seed)

  def fill(path, s):
    if path[0].key == "lagrange_multiplier":
      return np.asarray(geco.V0, np.float32)
    fan_in = max(1, int(np.prod(s.shape[:-1])))
    return (0.3 * rng.standard_normal(s.shape) /
            np.sqrt(fan_in)).astype(np.float32)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def _model_inputs(batch: Batch, networks, num_classes=None):
  img = jnp.asarray(batch["image"])
  if num_classes is None:
    num_classes = getattr(networks, "num_classes", None)
  seg = batch["seg"]
  if seg.ndim == 4:  # already one-hot
    return seg.astype(img.dtype), img
  if num_classes is None:
    raise ValueError("Integer `seg` labels need num_classes to one-hot them.")
  return jax.nn.one_hot(seg, num_classes, dtype=img.dtype), img


def objective(params: dict, geco_state: geco.GecoState, rng: Array,
              batch: Batch, *, networks, loss_config: Mapping[str, Any]
              ) -> tuple[Array, tuple[geco.GecoState, dict]]:
  """The training loss and its summaries.

  Args:
    params: {"model": ..., ["lagrange_multiplier": v]}.
    geco_state: the GECO EMA state (passed through unchanged for the ELBO).
    rng: key for this step; split for the posterior sample and the top-k.
    batch: `image` [B, H, W, C], `seg` int [B, H, W] (or one-hot [B, H, W,
      K]), optional `mask` [B, H, W] (1 = pixel counts).
    networks: from `networks.make_networks`.
    loss_config: see the module docstring.

  Returns:
    (loss, (new_geco_state, metrics)); metrics is a flat dict of scalars
    named as the official summaries.
  """
  cfg = _loss_settings(loss_config)
  seg, img = _model_inputs(batch, networks)
  mask = batch.get("mask")
  model_rng, topk_rng = jax.random.split(rng)
  outputs = networks.train_outputs(params["model"], model_rng, seg=seg,
                                   img=img)
  rec = losses.reconstruction_loss(
      outputs.logits, seg, mask,
      top_k_percentage=cfg["top_k_percentage"],
      deterministic_top_k=cfg["deterministic_top_k"], rng=topk_rng)
  kl_per_level = [jnp.mean(kl) for kl in outputs.kl]  # averaged over images
  kl_sum = sum(kl_per_level)
  num_selected = jnp.mean(jnp.sum(rec.mask.reshape(rec.mask.shape[0], -1), 1))
  metrics = {
      "rec_loss_sum": rec.sum,
      "rec_loss_mean": rec.mean,
      "kl_sum": kl_sum,
      "num_valid_pixels": num_selected,
  }
  metrics.update({f"kl_{i}": kl for i, kl in enumerate(kl_per_level)})
  if cfg["type"] == "geco":
    out = geco.geco_loss(rec.sum, num_selected, kl_sum,
                         params["lagrange_multiplier"], geco_state,
                         kappa=cfg["kappa"], decay=cfg["decay"],
                         rate=cfg["rate"])
    loss, new_geco_state = out.loss, out.state
    metrics.update({
        "geco_loss": out.loss,
        "geco_constraint": out.constraint,
        "lagmul": out.lagmul,
        "ma_rec_loss_sum": out.ma,
        "ma_rec_loss_mean": out.ma / jnp.maximum(num_selected, 1.0),
    })
  else:
    loss = rec.sum + cfg["beta"] * kl_sum
    new_geco_state = geco_state
    metrics["elbo_loss"] = loss
  weight_decay = losses.l2_weight_decay(params["model"])
  loss = loss + cfg["weight_decay"] * weight_decay
  metrics["weight_decay"] = weight_decay
  metrics["loss"] = loss
  return loss, (new_geco_state, metrics)
