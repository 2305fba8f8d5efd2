# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Orbax checkpoints of the whole train state, resume and preemption.

Layout: `<workdir>/checkpoints/<step>/{state,meta}` written by an orbax
`CheckpointManager`. `state` is the `TrainState` pytree (step, params,
optimizer state, GECO EMA state; the GECO multiplier's raw parameter is in
params). `meta` is JSON: the step, the seed and the config, so a resume can
refuse a checkpoint written under a different seed (the per-step RNG is
`fold_in(key(seed), step)` and the input pipeline is deterministic in
(seed, step), so step + seed *are* the RNG and data position).

Atomicity: orbax writes a step into a temporary directory and renames it (or,
on object stores, writes a commit marker) only once every item is complete;
`latest_step()` ignores unfinished ones and `cleanup_tmp_directories=True`
deletes them on start-up. A run killed during a save therefore restores the
previous complete checkpoint (tested in tests/train_test.py).

Restores always go against an abstract tree (ShapeDtypeStructs carrying the
target shardings), so NamedTuples come back as NamedTuples and arrays land on
the mesh directly.

Damage (`restore_newest`): each save records a CRC32 of the state's bytes in
`meta` (orbax 0.12 has no checksum verification on its restore path, and
zeroed bytes in an array file were restored silently). A checkpoint that
fails to read or whose CRC does not match is reported in one line and the
next older one is tried; once one restores, the damaged newer steps are
moved to `<workdir>/damaged_checkpoints/step_<N>` (never deleted). If none
restores, nothing is moved and the error names the newest one's problem.

Failed saves (`raise_if_save_failed`, called every step, and `close`): an
error of the background save (a full disk, a revoked permission) is raised at
once as one `errors.CheckpointSaveError` line naming the step, the cause and
the newest intact checkpoint; the half-written `*.orbax-checkpoint-tmp*`
folders are removed.

Preemption: `PreemptionWatcher.reached(step)` becomes True after SIGTERM or
Ctrl-C (SIGINT; a second Ctrl-C raises KeyboardInterrupt at once). On one
process it is a signal flag; on several processes it is JAX's preemption
sync point (the coordination service turns SIGTERM on any host into an agreed
step on all hosts).

Plain JAX / orbax; no Haiku, no TensorFlow.
"""

from collections.abc import Callable
import os
import re
import signal
import threading
import time
from typing import Any
import zlib

from absl import logging
from etils import epath
import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp

from hpunet import errors

DAMAGED_DIR = "damaged_checkpoints"
_TMP_MARK = ".orbax-checkpoint-tmp"
CRC_KEY = "state_crc32"


class Checkpointer:
  """A thin wrapper over `ocp.CheckpointManager` for `TrainState`s."""

  def __init__(self, workdir: str, *, max_to_keep: int = 3,
               async_save: bool = True, read_only: bool = False):
    """`read_only=True` (evaluate, sample) creates and removes nothing."""
    # Object-store URLs (gs://...) are used as they are; orbax writes them.
    base = workdir if "://" in workdir else os.path.abspath(workdir)
    self.workdir = base
    self.directory = os.path.join(base, "checkpoints")
    self._read_only = read_only
    self._saving_step = None  # the step of the last save started.
    self._unchecked_save = False  # its outcome not looked at yet.
    self._save_failed = False
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep,
        create=not read_only,
        cleanup_tmp_directories=not read_only,
        enable_async_checkpointing=async_save,
    )
    self._manager = ocp.CheckpointManager(
        self.directory, item_names=("state", "meta"), options=options)

  def latest_step(self) -> int | None:
    """The newest *complete* checkpoint's step, or None."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, *, meta: dict[str, Any],
           force: bool = True) -> bool:
    """Starts saving `state` at `step` (asynchronously unless disabled).

    Must be called on every process with the same arguments. Returns whether
    a save was started (False if that step already exists).
    """
    if step in self._manager.all_steps():
      return False
    if self._unchecked_save:  # the previous save's outcome first
      try:
        self._manager.wait_until_finished()
        self._unchecked_save = False
      except Exception as e:  # pylint: disable=broad-except
        raise self._save_error(e) from e
    crc = state_crc32(state)
    if crc is not None:
      meta = dict(meta, **{CRC_KEY: crc})
    self._saving_step = step
    self._unchecked_save = True
    try:
      return self._manager.save(
          step,
          args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                  meta=ocp.args.JsonSave(meta)),
          force=force)
    except Exception as e:  # pylint: disable=broad-except
      raise self._save_error(e) from e

  def _save_error(self, e: BaseException) -> errors.CheckpointSaveError:
    """One line naming the step, the cause and the intact checkpoint."""
    self._save_failed = True
    cause = e
    while cause.__cause__ is not None or cause.__context__ is not None:
      cause = cause.__cause__ or cause.__context__
    reason = _short_reason(cause)
    try:
      self._manager.reload()
      intact = self._manager.latest_step()
    except Exception:  # pylint: disable=broad-except
      intact = None
    where = (f"the newest intact checkpoint is step {intact}"
             if intact is not None else "no complete checkpoint exists yet")
    return errors.CheckpointSaveError(
        f"Could not write the checkpoint of step {self._saving_step} to "
        f"{self.directory}: {reason}; {where}. Free space (or fix the "
        "permissions), then rerun the same command to resume.")

  def raise_if_save_failed(self) -> None:
    """Raises `CheckpointSaveError` if a background save has failed.

    Cheap (no waiting); the training loop calls it every step.
    """
    if self._save_failed:
      return
    try:
      self._manager.check_for_errors()
      if self._unchecked_save and not self._manager.is_saving_in_progress():
        # The background save is over: joining it returns at once and
        # raises its error, if any (no cross-process barrier in there).
        self._manager.wait_until_finished()
        self._unchecked_save = False
    except Exception as e:  # pylint: disable=broad-except
      raise self._save_error(e) from e

  def _remove_tmp_directories(self) -> int:
    """Half-written steps of a failed save (process 0 only); how many."""
    if self._read_only or jax.process_index() != 0:
      return 0
    directory = epath.Path(self.directory)
    removed = 0
    try:
      for child in directory.iterdir():
        if _TMP_MARK in child.name:
          child.rmtree(missing_ok=True)
          removed += 1
          logging.warning("Removed the unfinished checkpoint folder %s.",
                          child)
    except OSError as e:  # a full disk still allows deletes; report others
      logging.warning("Could not remove unfinished checkpoint folders in "
                      "%s: %s", directory, e)
    return removed

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
    """Restores (state, meta) at `step` against `abstract_state`.

    Args:
      step: an existing complete step.
      abstract_state: pytree of `jax.ShapeDtypeStruct`s (with `sharding=`)
        matching the saved state, e.g. from `abstract_like`.

    Returns:
      (state, meta) with the structure and shardings of `abstract_state`.
    """
    out = self._manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            meta=ocp.args.JsonRestore()))
    meta = dict(out.meta)
    saved_crc = meta.pop(CRC_KEY, None)  # the caller gets its own meta back
    if saved_crc is not None:
      crc = state_crc32(out.state)
      if crc is not None and crc != saved_crc:
        raise ValueError(f"the state's CRC32 {crc} differs from the "
                         f"{saved_crc} recorded when it was saved")
    return out.state, meta

  def read_meta(self, step: int) -> dict[str, Any]:
    """The JSON `meta` item of a step alone (step, seed, config)."""
    out = self._manager.restore(
        step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return dict(out.meta)

  def restore_newest(
      self, abstract_state: Any, *,
      check_meta: Callable[[dict[str, Any], int], None] | None = None,
  ) -> tuple[Any, dict[str, Any], int] | None:
    """Restores the newest checkpoint that reads and verifies.

    Args:
      abstract_state: as for `restore`.
      check_meta: called with (meta, step) before the state is read; the
        `errors.UserError` it raises (an incompatible config) is passed on
        unchanged, it is not damage.

    Returns:
      (state, meta, step), or None if there is no checkpoint.

    Raises:
      errors.UserError: no checkpoint restores (nothing is moved), or
        `check_meta` refused one.
    """
    steps = sorted(self._manager.all_steps(), reverse=True)
    damaged = []
    for step in steps:
      try:
        meta = self.read_meta(step)
        if check_meta is not None:
          check_meta(meta, step)
        state, meta = self.restore(step, abstract_state)
      except errors.UserError:
        raise
      except Exception as e:  # pylint: disable=broad-except
        reason = " ".join(str(e).split())[:300] or type(e).__name__
        logging.warning("The checkpoint at step %d in %s is damaged (%s: %s)"
                        "; trying the previous one.", step, self.directory,
                        type(e).__name__, reason)
        damaged.append((step, f"{type(e).__name__}: {reason}"))
        continue
      if damaged:
        self._move_aside([s for s, _ in damaged])
      return state, meta, step
    if damaged:
      step, reason = damaged[0]
      raise errors.UserError(
          f"No checkpoint in {self.directory} restores (the newest, step "
          f"{step}: {reason}); nothing was moved. If the code or config "
          "changed since they were written, use the matching version or a "
          "new --workdir.")
    return None

  def _move_aside(self, steps: list[int]) -> None:
    """Moves damaged steps to `<workdir>/damaged_checkpoints/` (no deletes)."""
    if self._read_only:
      return
    if jax.process_index() == 0:
      target_root = epath.Path(self.workdir) / DAMAGED_DIR
      target_root.mkdir(parents=True, exist_ok=True)
      for step in steps:
        source = epath.Path(self.directory) / str(step)
        target = target_root / f"step_{step}"
        if target.exists():
          target = target_root / f"step_{step}_{int(time.time())}"
        try:
          source.rename(target)
        except OSError as e:
          raise errors.UserError(
              f"The checkpoint at step {step} in {self.directory} is damaged"
              f" and could not be moved aside ({e}); move or delete "
              f"{source} by hand, then rerun.") from e
        logging.warning("Moved the damaged checkpoint of step %d to %s.",
                        step, target)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("hpunet_move_damaged_checkpoints")
    self._manager.reload()

  def wait_until_finished(self) -> None:
    try:
      self._manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      if self._save_failed:
        return
      raise self._save_error(e) from e
    self.raise_if_save_failed()

  def close(self) -> None:
    try:
      self.wait_until_finished()
    finally:
      try:
        self._manager.close()
      except Exception:  # pylint: disable=broad-except
        if not self._save_failed:
          raise
      if self._save_failed:
        # Writers of the failed save's other items may still be running in
        # the background (they create the tmp folder late): remove until
        # none has come back for a second.
        quiet = 0
        for _ in range(20):
          quiet = 0 if self._remove_tmp_directories() else quiet + 1
          if quiet >= 4:
            break
          time.sleep(0.5)


def _short_reason(error: BaseException) -> str:
  """`[Errno 28] No space left on device` out of a tensorstore message."""
  text = " ".join(str(error).split())
  code = getattr(error, "errno", None)
  match = re.search(r"os_error_code='?(\d+)", text)
  if code is None and match:
    code = int(match.group(1))
  if code:
    return f"[Errno {code}] {os.strerror(code)}"
  return (text[:200] + "...") if len(text) > 200 else (
      text or type(error).__name__)


def state_crc32(state: Any) -> int | None:
  """CRC32 over the bytes of every leaf (None if a leaf is not replicated).

  Replicated arrays are read from this process's first copy, so every
  process computes the same value.
  """
  crc = 0
  for leaf in jax.tree.leaves(state):
    if isinstance(leaf, jax.Array):
      if not leaf.is_fully_replicated:
        return None
      leaf = leaf.addressable_data(0)
    data = np.ascontiguousarray(jax.device_get(leaf))
    crc = zlib.crc32(data.tobytes(), crc)
  return crc


def abstract_like(tree: Any) -> Any:
  """ShapeDtypeStructs (with shardings) for a pytree of jax.Arrays."""

  def leaf(x):
    sharding = getattr(x, "sharding", None)
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

  return jax.tree.map(leaf, tree)


class PreemptionWatcher:
  """Reports whether training should checkpoint and stop (SIGTERM, Ctrl-C).

  The first Ctrl-C asks for a checkpoint and a stop like SIGTERM; a second
  one raises KeyboardInterrupt at once (the commands exit with code 130).
  """

  def __init__(self):
    self._multiprocess = jax.process_count() > 1
    self._event = threading.Event()
    self._previous = {}
    # On several processes JAX's preemption service owns SIGTERM, and a
    # Ctrl-C on one host alone cannot give an agreed step: default handling.
    if (not self._multiprocess and
        threading.current_thread() is threading.main_thread()):
      for signum in (signal.SIGTERM, signal.SIGINT):
        self._previous[signum] = signal.signal(signum, self._handle)

  def _handle(self, signum, frame):
    del frame
    if signum == signal.SIGINT:
      logging.warning("Ctrl-C: will checkpoint after this step and stop "
                      "(press Ctrl-C again to stop at once, without a "
                      "checkpoint).")
      signal.signal(signal.SIGINT, signal.default_int_handler)
    else:
      logging.warning("Received signal %d: will checkpoint and stop.",
                      signum)
    self._event.set()

  def reached(self, step: int) -> bool:
    """True once a preemption notice arrived (agreed across processes).

    On several processes this must be called at every step by every process
    (JAX's sync point protocol).
    """
    if self._multiprocess:
      try:
        return multihost_utils.reached_preemption_sync_point(step)
      except RuntimeError:  # The preemption service is disabled.
        return False
    return self._event.is_set()

  def close(self) -> None:
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)
    self._previous = {}
