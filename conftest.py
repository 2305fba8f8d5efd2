"""Test-wide JAX settings, applied before any test initialises a backend.

- 8 fake CPU devices, so the few tests that need a ('data', 'spatial') mesh
  have one; single-device computations still run on device 0 only.
- The persistent compilation cache, because Haiku inits compile one threefry
  kernel per parameter shape (jax_stack.md section 8).
- Partitionable threefry explicitly, so results do not depend on the JAX
  version's default.
"""

import os

import jax

_CACHE_DIR = os.environ.get(
    "HPUNET_JAX_CACHE",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), ".jax_cache"))

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_threefry_partitionable", True)
jax.config.update("jax_compilation_cache_dir", _CACHE_DIR)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

try:  # absl flags are never parsed under pytest; mark them so.
  from absl import flags
  flags.FLAGS.mark_as_parsed()
except ImportError:  # pragma: no cover
  pass
