# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""hpunet: Hierarchical and standard Probabilistic U-Nets in JAX/Haiku."""

__version__ = "0.1.0"
