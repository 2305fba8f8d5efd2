# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""The training objectives of both papers as one pure, jittable function.

- GECO (HPU-Net paper, the default): `lam * (EMA(rec_sum) - kappa * n_sel) +
  kl_sum` with the official mechanics (`geco.py`), usually with a
  batch-global stochastic top-k of 2% of the pixels.
- ELBO (sPU-Net paper): `rec_sum + beta * kl_sum`, beta = 1 in the papers.
- "ce" (the sPU-Net paper's Dropout U-Net and U-Net Ensemble, models
  without a posterior): the masked cross-entropy `rec_sum`. For an ensemble
  (logits [M, B, H, W, K]) it is the sum of the members' own `rec_sum`s:
  members share no parameter, so each member's gradient is that of its own
  loss and one step trains M independent U-Nets (Adam is per parameter).
- "mheads" (the sPU-Net paper's M-Heads): per image, each head's summed
  cross-entropy weighted by `losses.mheads_weights` (the best head
  1 - epsilon, every other head epsilon / (M - 1); epsilon = 0.05 in the
  paper), averaged over images.

Both add the papers' weight decay as a separate, coupled L2 term
`weight_decay * sum(theta^2)` (weights and biases, no 1/2) over the network
parameters, not over the multiplier. Under Adam this is not the same as
decoupled AdamW decay; it is what the papers' TF code declares.
`weight_decay_mode="spunet_reference"` instead takes the sPU-Net reference
code's `weight_decay * 1/2 sum(w^2)` over the conv kernels only (no biases,
no final logits conv); see `losses.l2_weight_decay`.

`params` is a dict: {"model": Haiku params, "lagrange_multiplier": v} (the
latter only for GECO), so the multiplier is trained by the same optimizer.

`loss_config` keys: type ("geco" | "elbo" | "ce" | "mheads"), kappa, decay
(0.99), rate (1e-2), beta, epsilon ("mheads"), top_k_percentage (None
disables top-k; not with "mheads"), deterministic_top_k (False),
weight_decay (1e-5), weight_decay_mode ("all" | "spunet_reference").

Options beyond the papers (all off by default, so every paper config keeps
the faithful objective). They only change how the per-level KLs enter the
loss, never the model. They were tried against the collapsed coarse levels
on the synthetic benchmark; README "Results on the synthetic benchmark"
says what they changed there (not enough: the 1x1 level stayed unused):

- `kl_warmup_steps` (0 = off): the KL term is multiplied by
  `min(1, step / kl_warmup_steps)`, a linear warm-up (Bowman et al. 2016;
  NVAE), so every latent level can carry information before the KL prices
  it.
- `free_bits` (0 = off): nats per latent level that cost nothing: level l
  enters the loss as `max(KL_l, free_bits)` with `KL_l` its batch-mean KL
  (Kingma et al. 2016, per level instead of per group), so a level that
  carries less than that is not pushed to collapse.
- `kl_balancing` (False): NVAE's KL balancing while the warm-up is active:
  level l is weighted by `gamma_l ∝ KL_l / n_l` (batch-mean KL over its
  number of latent units `n_l`, plus 0.01), normalised to mean 1, without a
  gradient through gamma. Levels that carry more than their share are priced
  more, and unused levels become cheap.
- `kl_level_weights` (None or () = off): one factor per latent level
  (coarse -> fine) on its KL, a price per nat that depends on the scale.
  Uniform prices (beta, kappa) leave a factor that is constant across the
  image as cheap to spell out in several fine cells as in one global
  latent once an optimiser has found the fine code; a higher price on the
  finer levels makes every nat they carry cost more than the same nat on a
  coarser level, so the fine copy of an image-wide bit loses its value.

One schedule of a model option sits here too, because it needs the step:

- `level_dropout_decay_steps` ((0, 0) = off): `(start, end)`; the HPU-Net's
  latent level dropout rate (`config.model.level_dropout_rate`) is kept
  until `start` and decays linearly to 0 at `end`, so the last steps train
  every example through the full posterior (`level_dropout_scale`).
- `level_dropout_final_scale` (0.0): the rate's factor from `end` on. Above
  0 the dropout never ends: that fraction of the rate keeps decoding some
  examples from the coarse levels alone, so the decoder cannot stop reading
  them once the finer levels are open.
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
                 deterministic_top_k=False, weight_decay=1e-5, kappa=None,
                 kl_warmup_steps=0, free_bits=0.0, kl_balancing=False,
                 epsilon=None, weight_decay_mode="all",
                 level_dropout_decay_steps=(0, 0),
                 level_dropout_final_scale=0.0, kl_level_weights=())

LOSS_TYPES = ("geco", "elbo", "ce", "mheads")
# The options beyond the papers that change how the KL enters the loss.
KL_OPTIONS = ("kl_warmup_steps", "free_bits", "kl_balancing",
              "kl_level_weights")
# The losses of models without a posterior (no KL term).
NO_POSTERIOR_LOSS_TYPES = ("ce", "mheads")


def _loss_settings(loss_config: Mapping[str, Any]) -> dict:
  cfg = dict(_DEFAULTS)
  cfg.update(loss_config.to_dict() if hasattr(loss_config, "to_dict") else
             dict(loss_config))
  if cfg.get("type") not in LOSS_TYPES:
    raise ValueError(f"config.loss.type must be one of {LOSS_TYPES}, got "
                     f"{cfg.get('type')!r}.")
  if cfg["type"] == "mheads":
    eps = cfg["epsilon"]
    if eps is None or not 0.0 <= float(eps) < 1.0:
      raise ValueError("config.loss.epsilon must be in [0, 1) for the "
                       f"M-heads loss (0.05 in the paper), got {eps!r}.")
    if cfg["top_k_percentage"] is not None:
      raise ValueError("config.loss.top_k_percentage must be None for the "
                       "M-heads loss (it ranks whole images per head).")
  if cfg["type"] in NO_POSTERIOR_LOSS_TYPES:
    for key in KL_OPTIONS:
      if cfg[key]:
        raise ValueError(f"config.loss.{key}={cfg[key]!r}: the "
                         f"{cfg['type']!r} loss has no KL term; expected it "
                         "off (0 / False).")
  if cfg["type"] == "geco" and cfg["kappa"] is None:
    raise ValueError("config.loss.kappa must be set for GECO (a per-pixel "
                     "reconstruction target in nats, e.g. 0.05 for LIDC).")
  if cfg["type"] == "elbo" and cfg["beta"] is None:
    raise ValueError("config.loss.beta must be set for the ELBO (1.0 in the "
                     "papers); it has no default, as in the official code.")
  if int(cfg["kl_warmup_steps"]) < 0:
    raise ValueError("config.loss.kl_warmup_steps must be >= 0 (0 = off), "
                     f"got {cfg['kl_warmup_steps']!r}.")
  if float(cfg["free_bits"]) < 0:
    raise ValueError("config.loss.free_bits must be >= 0 nats (0 = off), "
                     f"got {cfg['free_bits']!r}.")
  if cfg["weight_decay_mode"] not in losses.WEIGHT_DECAY_MODES:
    raise ValueError("config.loss.weight_decay_mode must be one of "
                     f"{losses.WEIGHT_DECAY_MODES}, got "
                     f"{cfg['weight_decay_mode']!r}.")
  if cfg["kl_balancing"] and not int(cfg["kl_warmup_steps"]):
    raise ValueError("config.loss.kl_balancing needs kl_warmup_steps > 0: "
                     "as in NVAE it acts only during the KL warm-up.")
  weights = tuple(cfg["kl_level_weights"] or ())
  if any(not float(w) > 0 for w in weights):
    raise ValueError("config.loss.kl_level_weights must be factors > 0, one "
                     f"per latent level, got {weights!r}.")
  cfg["kl_level_weights"] = weights
  return cfg


def level_dropout_scale(step, decay_steps, final_scale=0.0) -> Array | None:
  """The level dropout rate's factor at `step`: 1 until start, linear to
  `final_scale` at end, `final_scale` from then on.

  None when the schedule is off (`decay_steps` = (0, 0)): the model then
  uses its constant rate, exactly as before the schedule existed.
  """
  start, end = (int(s) for s in decay_steps)
  if not end:
    return None
  t = jnp.clip((jnp.asarray(step, jnp.float32) - start) / float(end - start),
               0.0, 1.0)
  return 1.0 - t * (1.0 - float(final_scale))


def relative_latent_units(latent_dims) -> list[float]:
  """Relative number of latent units of each level that has latents.

  Latent level i (coarse -> fine) of the HPU-Net sits on a grid twice as
  fine as level i - 1, so it has `latent_dims[i] * 4**i` units up to one
  common factor, which the balancing's normalisation cancels. A single-level
  model (the sPU-Net) gets [latent_dim].
  """
  return [float(d) * 4.0 ** i for i, d in enumerate(latent_dims) if d > 0]


def kl_weight(step, kl_warmup_steps: int) -> Array:
  """The KL warm-up factor `min(1, step / kl_warmup_steps)` (1 when off)."""
  if not kl_warmup_steps:
    return jnp.ones((), jnp.float32)
  return jnp.minimum(1.0, jnp.asarray(step, jnp.float32) / kl_warmup_steps)


def kl_term(kl_per_level, latent_units, *, step, kl_warmup_steps: int = 0,
            free_bits: float = 0.0, kl_balancing: bool = False,
            level_weights=()) -> tuple[Array, dict]:
  """The KL as it enters the loss, from the batch-mean KL of each level.

  Args:
    kl_per_level: scalars, batch-mean KL (nats per image) of each level.
    latent_units: number of latent units of each level (grid cells x
      channels), NVAE's group sizes for the balancing.
    step: the optimisation step (warm-up).
    kl_warmup_steps, free_bits, kl_balancing: see the module docstring.
    level_weights: `kl_level_weights`, one factor per level or () for none.

  Returns:
    (kl_loss, summaries): `kl_loss` equals `sum(kl_per_level)` when every
    option is off; summaries hold `kl_weight` and, with balancing,
    `kl_coeff_<l>` per level.
  """
  kls = jnp.stack([jnp.asarray(k, jnp.float32) for k in kl_per_level])  # [L]
  summaries = {}
  if free_bits:
    kls = jnp.maximum(kls, free_bits)
  beta = kl_weight(step, kl_warmup_steps)
  summaries["kl_weight"] = beta
  if kl_balancing:
    units = jnp.asarray(latent_units, jnp.float32)
    gamma = (jax.lax.stop_gradient(kls) + 0.01) / units
    gamma = gamma / jnp.mean(gamma)
    gamma = jnp.where(beta < 1.0, gamma, jnp.ones_like(gamma))
    summaries.update({f"kl_coeff_{i}": g for i, g in enumerate(gamma)})
    kls = gamma * kls
  if level_weights:
    if len(level_weights) != kls.shape[0]:
      raise ValueError(
          f"config.loss.kl_level_weights={tuple(level_weights)!r}: expected "
          f"one factor per latent level, {kls.shape[0]}.")
    kls = jnp.asarray(level_weights, jnp.float32) * kls
  return beta * jnp.sum(kls), summaries


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
  """(seg one-hot [B, H, W, K], img): the model's inputs of a batch.

  Models that ask for it (`networks.unlabelled_as_no_class`, the sPU-Net's
  `unlabelled_pixels="no_class"`) get all-zero rows where `mask` is 0, so an
  ignore pixel does not look like class 0 to their posterior.
  """
  img = jnp.asarray(batch["image"])
  if num_classes is None:
    num_classes = getattr(networks, "num_classes", None)
  seg = batch["seg"]
  mask = batch.get("mask")
  no_class = getattr(networks, "unlabelled_as_no_class", False)
  if seg.ndim == 4:  # already one-hot
    seg = seg.astype(img.dtype)
    if no_class and mask is not None:
      seg = seg * (mask > 0)[..., None].astype(img.dtype)
    return seg, img
  if num_classes is None:
    raise ValueError("Integer `seg` labels need num_classes to one-hot them.")
  seg = jax.nn.one_hot(seg, num_classes, dtype=img.dtype)
  if no_class and mask is not None:
    seg = seg * (mask > 0)[..., None].astype(img.dtype)
  return seg, img


def objective(params: dict, geco_state: geco.GecoState, rng: Array,
              batch: Batch, *, networks, loss_config: Mapping[str, Any],
              step=0) -> tuple[Array, tuple[geco.GecoState, dict]]:
  """The training loss and its summaries.

  Args:
    params: {"model": ..., ["lagrange_multiplier": v]}.
    geco_state: the GECO EMA state (passed through unchanged for the ELBO).
    rng: key for this step; split for the posterior sample and the top-k.
    batch: `image` [B, H, W, C], `seg` int [B, H, W] (or one-hot [B, H, W,
      K]), optional `mask` [B, H, W] (1 = pixel counts).
    networks: from `networks.make_networks`.
    loss_config: see the module docstring.
    step: the optimisation step (the KL warm-up and the level dropout
      schedule read it).

  Returns:
    (loss, (new_geco_state, metrics)); metrics is a flat dict of scalars
    named as the official summaries.
  """
  cfg = _loss_settings(loss_config)
  seg, img = _model_inputs(batch, networks)
  mask = batch.get("mask")
  model_rng, topk_rng = jax.random.split(rng)
  extra = {}
  scale = level_dropout_scale(step, cfg["level_dropout_decay_steps"],
                              cfg["level_dropout_final_scale"])
  if scale is not None:
    extra["level_dropout_scale"] = scale
  outputs = networks.train_outputs(params["model"], model_rng, seg=seg,
                                   img=img, **extra)
  if cfg["type"] in NO_POSTERIOR_LOSS_TYPES:
    return _objective_without_posterior(
        params, geco_state, outputs.logits, seg, mask, cfg, topk_rng)
  rec = losses.reconstruction_loss(
      outputs.logits, seg, mask,
      top_k_percentage=cfg["top_k_percentage"],
      deterministic_top_k=cfg["deterministic_top_k"], rng=topk_rng)
  kl_per_level = [jnp.mean(kl) for kl in outputs.kl]  # averaged over images
  kl_sum = sum(kl_per_level)
  kl_options = any(cfg[k] for k in KL_OPTIONS)
  kl_loss, kl_summaries = kl_sum, {}  # the papers' objective
  if kl_options:
    kl_loss, kl_summaries = kl_term(
        kl_per_level, relative_latent_units(networks.latent_dims), step=step,
        kl_warmup_steps=int(cfg["kl_warmup_steps"]),
        free_bits=float(cfg["free_bits"]),
        kl_balancing=bool(cfg["kl_balancing"]),
        level_weights=cfg["kl_level_weights"])
  num_selected = jnp.mean(jnp.sum(rec.mask.reshape(rec.mask.shape[0], -1), 1))
  metrics = {
      "rec_loss_sum": rec.sum,
      "rec_loss_mean": rec.mean,
      "kl_sum": kl_sum,
      "num_valid_pixels": num_selected,
  }
  metrics.update({f"kl_{i}": kl for i, kl in enumerate(kl_per_level)})
  metrics.update(kl_summaries)
  if cfg["type"] == "geco":
    out = geco.geco_loss(rec.sum, num_selected, kl_loss,
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
    loss = rec.sum + cfg["beta"] * kl_loss
    new_geco_state = geco_state
    metrics["elbo_loss"] = loss
  weight_decay = losses.l2_weight_decay(params["model"],
                                        cfg["weight_decay_mode"])
  loss = loss + cfg["weight_decay"] * weight_decay
  metrics["weight_decay"] = weight_decay
  metrics["loss"] = loss
  return loss, (new_geco_state, metrics)


def _objective_without_posterior(params, geco_state, logits, seg, mask, cfg,
                                 topk_rng):
  """The "ce" and "mheads" losses (module docstring); no KL, no GECO."""
  # [B, H, W, K] (one network) or [M, B, H, W, K] (members / heads).
  stacked = logits if logits.ndim == 5 else logits[None]
  if mask is None:
    mask = jnp.ones(seg.shape[:3], jnp.float32)
  metrics = {}
  if cfg["type"] == "ce":
    rec = jax.vmap(lambda l: losses.reconstruction_loss(
        l, seg, mask, top_k_percentage=cfg["top_k_percentage"],
        deterministic_top_k=cfg["deterministic_top_k"], rng=topk_rng))(
            stacked)  # fields [M], mask [M, B, H, W]
    loss = jnp.sum(rec.sum)  # each member's own loss
    rec_sum, rec_mean = jnp.mean(rec.sum), jnp.mean(rec.mean)
    selected = rec.mask
    metrics["ce_loss"] = loss
  else:  # mheads
    xe = jax.vmap(losses.softmax_cross_entropy, in_axes=(0, None))(
        stacked, seg)  # [M, B, H, W]
    mask = mask.astype(jnp.float32)
    per_head = jnp.sum((xe * mask).reshape(xe.shape[:2] + (-1,)), -1)  # [M, B]
    weights = losses.mheads_weights(per_head, float(cfg["epsilon"]))
    loss = jnp.mean(jnp.sum(weights * per_head, axis=0))
    best = jnp.min(per_head, axis=0)  # [B]
    rec_sum = jnp.mean(best)
    rec_mean = jnp.sum(best) / jnp.maximum(jnp.sum(mask), 1.0)
    selected = mask
    metrics["mheads_loss"] = loss
    # How often each head is the best one in this batch (idle heads: 0).
    wins = jnp.mean(jnp.argmin(per_head, 0)[None] == jnp.arange(
        per_head.shape[0])[:, None], axis=1)
    metrics["mheads_idle_heads"] = jnp.sum(wins == 0)
  num_selected = jnp.mean(jnp.sum(
      selected.reshape(selected.shape[:-2] + (-1,)), -1))
  # rec_loss_*: the members' mean (ce) or the best head's (mheads).
  metrics.update({"rec_loss_sum": rec_sum, "rec_loss_mean": rec_mean,
                  "num_valid_pixels": num_selected})
  weight_decay = losses.l2_weight_decay(params["model"],
                                        cfg["weight_decay_mode"])
  loss = loss + cfg["weight_decay"] * weight_decay
  metrics["weight_decay"] = weight_decay
  metrics["loss"] = loss
  return loss, (geco_state, metrics)
