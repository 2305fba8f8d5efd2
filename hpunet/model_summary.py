# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Model summary: parameters, latent grids and FLOPs, without compiling.

  python -m hpunet.model_summary --config=configs/lidc.py [--json]
  python -m hpunet.model_summary            # the built-in LIDC HPU-Net default

Parameters come from `jax.eval_shape` of the init; FLOPs from XLA's cost
analysis of the *lowered* (traced, not compiled) computations:
- `train_step_flops`: forward + backward of the training objective for one
  global batch (the optimizer update is not included);
- `extra_sample_flops`: the cost of one more sample per image with the
  encoder-reuse path, i.e. flops(sample_n, S=2) - flops(sample_n, S=1) at the
  same batch;
- `sample_flops_per_image`: one full sample of one image.

With `--json` it prints one JSON object; `params` maps component names
(prior, posterior, f_comb for the HPU-Net; unet, prior, posterior, f_comb
for the sPU-Net; unet and head / heads for the baselines, an ensemble's
summed over its members) to parameter counts and has a `total`.
"""

import functools
import json
import sys
from typing import Any

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags

from hpunet import config_lib
from hpunet import geco
from hpunet import networks as networks_lib
from hpunet import objectives
from hpunet import train as train_lib


def default_config() -> ml_collections.ConfigDict:
  """The official LIDC HPU-Net (used when no --config is given)."""
  return ml_collections.ConfigDict(dict(
      input=dict(batch_size=32, crop_size=(128, 128), channels=1,
                 num_classes=2),
      model=dict(name="hpunet", latent_dims=(1, 1, 1, 1),
                 channels_per_block=(24, 48, 96, 192, 192, 192, 192, 192),
                 down_channels_per_block=(12, 24, 48, 96, 96, 96, 96, 96),
                 num_classes=2, convs_per_block=3, blocks_per_level=3),
      loss=dict(type="geco", kappa=0.05, top_k_percentage=0.02,
                weight_decay=1e-5),
  ))


def _flops(fn, *args) -> float:
  cost = jax.jit(fn).lower(*args).cost_analysis()
  if isinstance(cost, (list, tuple)):  # older JAX: one dict per computation
    cost = cost[0]
  return float(cost.get("flops", float("nan")))


def summarize(config) -> dict[str, Any]:
  """Everything the command prints, as a JSON-serialisable dict."""
  networks = networks_lib.make_networks(config.model)
  batch, height, width, channels = train_lib.network_input_shape(config)
  num_classes = networks.num_classes
  img = jax.ShapeDtypeStruct((batch, height, width, channels), jnp.float32)
  labels = jax.ShapeDtypeStruct((batch, height, width), jnp.int32)
  seg = jax.ShapeDtypeStruct((batch, height, width, num_classes), jnp.float32)
  key = jax.eval_shape(lambda: jax.random.key(0))
  batch_struct = {"image": img, "seg": labels,
                  "mask": jax.ShapeDtypeStruct(labels.shape, jnp.float32)}

  params = jax.eval_shape(
      functools.partial(objectives.init_params, networks,
                        loss_config=config.loss), key, batch_struct)
  counts = networks_lib.component_param_counts(params["model"])
  sample = jax.eval_shape(functools.partial(networks.sample), params["model"],
                          key, img)
  latent_grids = [None if z is None else list(z.shape[1:])
                  for z in sample.used_latents]

  def loss_grad(params, state, rng, batch):
    return jax.grad(lambda p: objectives.objective(
        p, state, rng, batch, networks=networks,
        loss_config=config.loss)[0])(params)

  geco_state = jax.eval_shape(geco.init_geco_state)
  train_flops = _flops(loss_grad, params, geco_state, key, batch_struct)

  one_img = jax.ShapeDtypeStruct((1, height, width, channels), jnp.float32)
  sample_n = lambda n: functools.partial(networks.sample_n, num_samples=n)
  one_sample = _flops(sample_n(1), params["model"], key, one_img)
  two_samples = _flops(sample_n(2), params["model"], key, one_img)
  return {
      "model": networks.model_name,
      "input_shape": [batch, height, width, channels],
      "num_classes": num_classes,
      "params": counts,
      "latent_dims": list(networks.latent_dims),
      "latent_grids": latent_grids,  # [h, w, Z] per level, coarse -> fine
      "num_latents_per_image": sum(
          g[0] * g[1] * g[2] for g in latent_grids if g is not None),
      "train_step_flops": train_flops,
      "sample_flops_per_image": one_sample,
      "extra_sample_flops": two_samples - one_sample,
  }


def format_summary(s: dict[str, Any]) -> str:
  lines = [f"model: {s['model']}  input [B, H, W, C] = {s['input_shape']}  "
           f"classes: {s['num_classes']}", "parameters:"]
  for name, count in s["params"].items():
    lines.append(f"  {name:<12} {count:>12,}")
  if s["latent_grids"]:
    lines.append("latent grids (coarse -> fine, [h, w, Z]): " + ", ".join(
        "-" if g is None else "x".join(map(str, g))
        for g in s["latent_grids"]) +
                 f"  ({s['num_latents_per_image']} latents per image)")
  else:  # the baselines without a posterior
    lines.append("latent grids: none (a model without latents)")
  lines.append(f"FLOPs, one training step (fwd + bwd, batch "
               f"{s['input_shape'][0]}): {s['train_step_flops'] / 1e9:,.2f} G")
  lines.append(f"FLOPs, one sample of one image: "
               f"{s['sample_flops_per_image'] / 1e9:,.3f} G; each extra "
               f"sample{' (encoder reused)' if s['latent_grids'] else ''}: "
               f"{s['extra_sample_flops'] / 1e9:,.3f} G")
  return "\n".join(lines)


def main(argv, config_flag, json_flag):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config = config_flag.value
  s = summarize(config if config is not None else default_config())
  print(json.dumps(s) if json_flag.value else format_summary(s))


if __name__ == "__main__":
  from hpunet import cli  # pylint: disable=g-import-not-at-top
  from hpunet import validation  # pylint: disable=g-import-not-at-top
  sys.argv = config_lib.resolve_config_flags(sys.argv)
  # Flags exist only when run as a program: importing this module defines
  # none.
  _CONFIG = config_flags.DEFINE_config_file(
      "config", None,
      "Experiment config file (default: built-in LIDC HPU-Net).",
      lock_config=True)
  _JSON = flags.DEFINE_bool("json", False, "Print one JSON object.")

  def _checked_main(argv, f):
    del f
    if _CONFIG.value is not None:  # one-line errors before tracing
      validation.check_model(_CONFIG.value)
    main(argv, _CONFIG, _JSON)

  cli.run(_checked_main, lambda fv: None)
