# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Converts the official pretrained LIDC HPU-Net (TF1 / Sonnet 1) to a workdir.

    python -m hpunet.convert_official \
        --checkpoint=/tmp/hpunet_official/tf_graph_data.ckpt \
        --workdir=/tmp/hpunet/lidc_official

`--checkpoint` is the TF1 checkpoint prefix (the released
`checkpoint.tar.gz` holds `tf_graph_data.ckpt.{index,data-*}`; a folder with
a `checkpoint` file works too); both paths may be `gs://`. The new workdir
holds `config.json` (the `--config`, `lidc` by default) and an orbax
checkpoint at step 0 in the layout `python -m hpunet.train` writes, so
`hpunet.sample`, `hpunet.evaluate`, `train.restore_params` and the notebooks
use it like a trained run. The official model reads [0, 1] intensities, as
our LIDC pipeline does.

The mapping (derived from the official `model.py` / `unet_utils.py` and
Sonnet 1's naming rules):

- Sonnet 1 gives every module a variable scope named after the module,
  uniquified among its siblings in construction order: `snt.Conv2D`'s
  default name `conv_2d` becomes `conv_2d`, `conv_2d_1`, `conv_2d_2`, ...
  Its kernel is `<scope>/w` [kh, kw, C_in, C_out] and its bias `<scope>/b`
  [C_out], the layout of `hk.Conv2D`'s `w` and `b`: tensors are copied as
  they are.
- `HierarchicalProbUNet` (scope `HPUNet`, found under whatever outer scope
  the training graph used, e.g. `model/HPUNet`) builds three child scopes
  `prior`, `posterior` and `f_comb`, whose convs are numbered separately.
- Within `prior` / `posterior` (`_HierarchicalCore`) the convs are built in
  this order: for every encoder level l and block b, the block's convs; then
  for every latent level i (coarse -> fine) the mu/log-sigma head (1x1) and
  that level's decoder blocks.
- Within one residual block (`unet_utils.res_block`): the
  `convs_per_block` 3x3 convs, then the skip projection (1x1, only if
  C_in != C), then the residual projection (1x1, only if D != C). A
  projection that is not built takes no number.
- `f_comb` (`_StitchingDecoder`): the blocks of the levels above the latent
  levels, then the 1x1 conv `logits` (named, so not numbered).

Ours (Haiku, `hpunet/model.py`):

    <HPUNet>/prior/conv_2d[_n]      hpunet/~/prior/~/encoder_{l}_block_{b}/~/conv_{j}
                                    .../skip_projection, .../residual_projection
                                    hpunet/~/prior/~/latent_head_{i}
                                    hpunet/~/prior/~/decoder_{i}_block_{b}/~/...
    <HPUNet>/posterior/conv_2d[_n]  the same under hpunet/~/posterior
    <HPUNet>/f_comb/conv_2d[_n]     hpunet/~/f_comb/~/level_{level}_block_{b}/~/...
    <HPUNet>/f_comb/logits          hpunet/~/f_comb/~/logits

Checked, never guessed:
- Every expected variable must exist with the expected shape and every one
  of our parameters must get a tensor; otherwise the command fails with one
  line listing the missing, mis-shaped and unexpected variables, before
  anything is written.
- The posterior's decoder blocks after its last latent head are in the
  checkpoint (the official code builds them but never uses their output);
  ours does not build them. They are checked for shape and then dropped
  (the count is printed).
- Training-only state is not converted and is reported: optimizer slots
  (`<variable>/Adam`, ...), GECO's `snt_lagrange_multiplier` and moving
  average, and everything outside the `HPUNet` scope (`global_step`, ...).
  The converted workdir starts a fresh optimizer and GECO state
  (multiplier lambda = 1) should it be trained further.

A leaf command; TensorFlow is imported only here (to read the checkpoint).
"""

import dataclasses
import functools
import json
import os
import sys
import types
from typing import Any, Mapping

from absl import app
from absl import flags
from etils import epath
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np

from hpunet import checkpointing
from hpunet import config_lib
from hpunet import geco
from hpunet import sharding
from hpunet import train

_HPUNET_SCOPE = "HPUNet"
# Where the scope is found: the first conv of the prior always exists.
_ANCHOR = "prior/conv_2d/w"
# Model-level children that hold training state, not network weights.
_TRAINING_STATE_SCOPES = ("snt_lagrange_multiplier", "ma_test",
                          "snt_moving_average")


@dataclasses.dataclass(frozen=True)
class OfficialConv:
  """One official conv: its name below the `HPUNet` scope and our module."""
  name: str  # e.g. "prior/conv_2d_3"
  ours: str | None  # Haiku module name; None for the dead posterior blocks
  w_shape: tuple[int, ...]  # [kh, kw, C_in, C_out]

  @property
  def b_shape(self) -> tuple[int, ...]:
    return (self.w_shape[-1],)


class _Scope:
  """Numbers convs like Sonnet 1 does within one parent scope."""

  def __init__(self, name: str):
    self.name = name
    self.count = 0
    self.convs: list[OfficialConv] = []

  def conv(self, ours, w_shape, name=None):
    if name is None:
      name = "conv_2d" if self.count == 0 else f"conv_2d_{self.count}"
      self.count += 1
    self.convs.append(OfficialConv(f"{self.name}/{name}", ours,
                                   tuple(int(s) for s in w_shape)))

  def res_block(self, ours, c_in, c, d, convs_per_block):
    """`unet_utils.res_block`; returns its output width."""
    for j in range(convs_per_block):
      self.conv(ours and f"{ours}/~/conv_{j}", (3, 3, c_in if j == 0 else d, d))
    if c_in != c:
      self.conv(ours and f"{ours}/~/skip_projection", (1, 1, c_in, c))
    if d != c:
      self.conv(ours and f"{ours}/~/residual_projection", (1, 1, d, c))
    return c


def official_convs(model_config: Mapping[str, Any], image_channels: int
                   ) -> list[OfficialConv]:
  """Every conv of the official model for `model_config`, in build order.

  Raises:
    ValueError: the config is not an HPU-Net the official code can express.
  """
  cfg = dict(model_config)
  if cfg.get("name") != "hpunet":
    raise ValueError("config.model.name must be 'hpunet' to convert the "
                     f"official HPU-Net, got {cfg.get('name')!r}.")
  ch = tuple(int(c) for c in cfg["channels_per_block"])
  down = tuple(int(c) for c in cfg.get("down_channels_per_block") or
               [c // 2 for c in ch])
  latents = tuple(int(z) for z in cfg["latent_dims"])
  if min(latents) < 1:
    raise ValueError(f"config.model.latent_dims={latents}: the official model "
                     "has a latent at every latent level (no 0 entries).")
  num_classes = int(cfg.get("num_classes", 2))
  convs = int(cfg.get("convs_per_block", 3))
  blocks = int(cfg.get("blocks_per_level", 3))
  num_levels = len(ch)
  top = "hpunet/~/"
  out = []
  for core, in_channels in (("prior", image_channels),
                            ("posterior", image_channels + num_classes)):
    scope = _Scope(core)
    c_in = in_channels
    for l in range(num_levels):
      for b in range(blocks):
        c_in = scope.res_block(f"{top}{core}/~/encoder_{l}_block_{b}", c_in,
                               ch[l], down[l], convs)
    for i, z in enumerate(latents):
      scope.conv(f"{top}{core}/~/latent_head_{i}", (1, 1, c_in, 2 * z))
      l = num_levels - 2 - i
      c_in = z + c_in + ch[l]  # [z, d] up-sampled, then the skip
      # Our posterior stops after its last head: the official one decodes a
      # level more whose output is never used.
      dead = core == "posterior" and i == len(latents) - 1
      for b in range(blocks):
        ours = None if dead else f"{top}{core}/~/decoder_{i}_block_{b}"
        c_in = scope.res_block(ours, c_in, ch[l], down[l], convs)
    out.extend(scope.convs)
  scope = _Scope("f_comb")
  c_in = ch[num_levels - 1 - len(latents)]
  for level in range(len(latents) + 1, num_levels):
    l = num_levels - 1 - level
    c_in = c_in + ch[l]
    for b in range(blocks):
      c_in = scope.res_block(f"{top}f_comb/~/level_{level}_block_{b}", c_in,
                             ch[l], down[l], convs)
  scope.conv(f"{top}f_comb/~/logits", (1, 1, c_in, num_classes),
             name="logits")
  out.extend(scope.convs)
  return out


def _find_scope(names) -> str:
  prefixes = sorted({n[:-len(_ANCHOR)] for n in names
                     if n.endswith(_ANCHOR) and
                     n[:-len(_ANCHOR)].rstrip("/").endswith(_HPUNET_SCOPE)})
  if len(prefixes) != 1:
    found = f"{len(prefixes)}: {prefixes}" if prefixes else "none"
    raise ValueError(
        f"expected one variable '<scope>/{_HPUNET_SCOPE}/{_ANCHOR}' (the "
        f"official HPU-Net's first prior conv), found {found}.")
  return prefixes[0]


def convert_variables(variables: Mapping[str, np.ndarray],
                      model_config: Mapping[str, Any], image_channels: int,
                      *, source: str = "the checkpoint"
                      ) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
  """Official variables {name: array} -> our Haiku model params.

  Returns:
    (params {module: {"w", "b"}}, a report: the scope found, the number of
    converted and dropped tensors and the ignored training state).

  Raises:
    ValueError: one line listing every missing, mis-shaped or unexpected
      variable (nothing is converted partially).
  """
  try:
    prefix = _find_scope(variables)
  except ValueError as e:
    raise ValueError(f"{source}: {e}") from None
  expected = {}
  for conv in official_convs(model_config, image_channels):
    expected[f"{prefix}{conv.name}/w"] = (conv, "w", conv.w_shape)
    expected[f"{prefix}{conv.name}/b"] = (conv, "b", conv.b_shape)
  missing, misshaped, unexpected, ignored = [], [], [], []
  for name, (_, _, shape) in expected.items():
    if name not in variables:
      missing.append(f"{name} {list(shape)}")
    elif tuple(variables[name].shape) != shape:
      misshaped.append(f"{name} {list(variables[name].shape)} "
                       f"(expected {list(shape)})")
  for name in sorted(variables):
    if name in expected:
      continue
    inner = name[len(prefix):] if name.startswith(prefix) else None
    if inner is None:
      ignored.append(name)  # global_step, Adam's beta powers, ...
    elif inner.split("/")[0] in _TRAINING_STATE_SCOPES:
      ignored.append(name)
    elif any(name.startswith(e + "/") for e in expected):
      ignored.append(name)  # optimizer slots, e.g. ".../w/Adam"
    else:
      unexpected.append(name)
  problems = [f"{label} ({len(items)}): {', '.join(items)}"
              for label, items in (("missing", missing),
                                   ("mis-shaped", misshaped),
                                   ("unexpected", unexpected)) if items]
  if problems:
    raise ValueError(
        f"{source} does not match the official HPU-Net for config.model "
        f"(scope '{prefix}'): " + "; ".join(problems) + ".")
  params: dict[str, dict[str, np.ndarray]] = {}
  dropped = 0
  for name, (conv, key, _) in expected.items():
    if conv.ours is None:
      dropped += 1
      continue
    params.setdefault(conv.ours, {})[key] = np.asarray(variables[name],
                                                       np.float32)
  report = {"scope": prefix, "converted": 2 * len(params), "dropped": dropped,
            "ignored": ignored}
  return params, report


def read_checkpoint(checkpoint: str) -> dict[str, np.ndarray]:
  """Every variable of a TF1 checkpoint (prefix or folder; may be gs://)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    reader = tf.train.load_checkpoint(checkpoint)
  except (ValueError, tf.errors.OpError) as e:
    first = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
    raise FileNotFoundError(
        f"--checkpoint={checkpoint}: not a readable TF checkpoint prefix or "
        f"folder ({first}).") from None
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()}


def _image_channels(config) -> int:
  return train.network_input_shape(config)[3]


def _check_workdir(workdir: str) -> None:
  path = epath.Path(workdir)
  if path.exists() and any(path.iterdir()):
    raise FileExistsError(
        f"--workdir={workdir} exists and is not empty; the converter writes a "
        "new workdir (pass a new folder).")


def build_train_state(config, model_params) -> train.TrainState:
  """A step-0 `TrainState` of `config` whose model params are given.

  Structure, shapes and dtypes are checked against the state the trainer
  restores (`train.abstract_train_state`).
  """
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:1]).reshape(1, 1),
                           sharding.MESH_AXES)
  abstract = train.abstract_train_state(config, mesh)
  params = {"model": jax.tree.map(jnp.asarray, model_params)}
  if "lagrange_multiplier" in abstract.params:
    params["lagrange_multiplier"] = geco.init_lagrange_multiplier()
  optimizer = train.create_optimizer(config)
  state = train.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                           opt_state=optimizer.init(params),
                           geco_state=geco.init_geco_state())
  ours = jax.tree.map(lambda x: (x.shape, x.dtype), state)
  want = jax.tree.map(lambda x: (x.shape, x.dtype), abstract)
  if jax.tree.structure(ours) != jax.tree.structure(want) or ours != want:
    ours_p = {k: {n: tuple(a.shape) for n, a in v.items()}
              for k, v in state.params["model"].items()}
    want_p = {k: {n: tuple(a.shape) for n, a in v.items()}
              for k, v in abstract.params["model"].items()}
    diff = sorted(set(want_p) ^ set(ours_p)) + sorted(
        k for k in set(want_p) & set(ours_p) if want_p[k] != ours_p[k])
    raise ValueError("The converted parameters do not match config.model's "
                     f"parameters: {', '.join(diff) or 'state structure'}.")
  return state


def convert(checkpoint: str, workdir: str,
            config: ml_collections.ConfigDict) -> dict:
  """Reads the official checkpoint and writes a new workdir for `config`.

  Returns:
    The report of `convert_variables`.

  Raises:
    FileExistsError: `workdir` is not empty (checked before anything else).
    FileNotFoundError / ValueError: unreadable or mismatched checkpoint;
      nothing is written then.
  """
  _check_workdir(workdir)
  official_convs(config.model, _image_channels(config))  # config checks
  variables = read_checkpoint(checkpoint)
  model_params, report = convert_variables(
      variables, config.model, _image_channels(config),
      source=f"--checkpoint={checkpoint}")
  state = build_train_state(config, model_params)
  checkpointer = checkpointing.Checkpointer(workdir, async_save=False)
  try:
    checkpointer.save(0, state, meta={
        "step": 0, "seed": int(config.seed),
        "config": json.loads(config.to_json_best_effort()),
        "converted_from": checkpoint})
  finally:
    checkpointer.close()
  # config.json last: a workdir with it is complete.
  (epath.Path(workdir) / "config.json").write_text(
      config.to_json_best_effort(indent=2))
  return report


def _define_flags() -> types.SimpleNamespace:
  return types.SimpleNamespace(
      checkpoint=flags.DEFINE_string(
          "checkpoint", None, "TF1 checkpoint prefix of the official model "
          "(e.g. .../tf_graph_data.ckpt) or its folder; may be gs://."),
      workdir=flags.DEFINE_string(
          "workdir", None, "New (empty) workdir to write; may be gs://."),
      config=config_flags.DEFINE_config_file(
          "config", os.path.join(config_lib.CONFIG_DIR, "lidc.py"),
          "The config the workdir is for (default: the LIDC HPU-Net, the "
          "official model's configuration).", lock_config=True),
  )


def main(argv, f: types.SimpleNamespace):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if f.checkpoint.value is None or f.workdir.value is None:
    raise app.UsageError("--checkpoint and --workdir are required.")
  try:
    report = convert(f.checkpoint.value, f.workdir.value, f.config.value)
  except (ValueError, FileNotFoundError, FileExistsError) as e:
    sys.exit(f"Error: {e}")
  print(f"Converted {report['converted']} tensors from scope "
        f"'{report['scope']}' to {f.workdir.value}; dropped "
        f"{report['dropped']} tensors of the posterior's unused last decoder "
        f"level; ignored {len(report['ignored'])} training-state variables "
        "(optimizer slots, GECO, global step).")
  config_file = config_flags.get_config_filename(flags.FLAGS["config"])
  print("Next:\n  python -m hpunet.sample --workdir="
        f"{f.workdir.value} --image=IMAGE.png --out=OUT_DIR\n"
        f"  python -m hpunet.evaluate --config={config_file} "
        f"--workdir={f.workdir.value}")


if __name__ == "__main__":
  sys.argv = config_lib.resolve_config_flags(sys.argv)
  app.run(functools.partial(main, f=_define_flags()))
