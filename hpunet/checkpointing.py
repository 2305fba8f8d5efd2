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

Preemption: `PreemptionWatcher.reached(step)` becomes True after SIGTERM. On
one process it is a signal flag; on several processes it is JAX's preemption
sync point (the coordination service turns SIGTERM on any host into an agreed
step on all hosts).

Plain JAX / orbax; no Haiku, no TensorFlow.
"""

import os
import signal
import threading
from typing import Any

from absl import logging
import jax
from jax.experimental import multihost_utils
import orbax.checkpoint as ocp


class Checkpointer:
  """A thin wrapper over `ocp.CheckpointManager` for `TrainState`s."""

  def __init__(self, workdir: str, *, max_to_keep: int = 3,
               async_save: bool = True):
    # Object-store URLs (gs://...) are used as they are; orbax writes them.
    base = workdir if "://" in workdir else os.path.abspath(workdir)
    self.directory = os.path.join(base, "checkpoints")
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep,
        create=True,
        cleanup_tmp_directories=True,
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
    return self._manager.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                meta=ocp.args.JsonSave(meta)),
        force=force)

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
    return out.state, dict(out.meta)

  def wait_until_finished(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def abstract_like(tree: Any) -> Any:
  """ShapeDtypeStructs (with shardings) for a pytree of jax.Arrays."""

  def leaf(x):
    sharding = getattr(x, "sharding", None)
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

  return jax.tree.map(leaf, tree)


class PreemptionWatcher:
  """Reports whether training should checkpoint and stop (SIGTERM)."""

  def __init__(self):
    self._multiprocess = jax.process_count() > 1
    self._event = threading.Event()
    self._previous = None
    if (not self._multiprocess and
        threading.current_thread() is threading.main_thread()):
      self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    del frame
    logging.warning("Received signal %d: will checkpoint and stop.", signum)
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
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None
