# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""GECO (Rezende & Viola 2018) with the exact mechanics of the official HPU-Net.

As in the official code (`geco_utils.py` and its training step):

    ma    = EMA_decay(rec_sum)          # first value taken as is; gradient
                                        # passes straight through (factor 1)
    n_sel = mean over images of the number of selected pixels
    c     = ma - kappa * n_sel          # kappa is per pixel
    lam   = softplus(v)**2              # v trainable, lam_0 = 1, gradient x(-rate)
    loss  = lam * c + kl_sum

`v` lives with the optimised parameters and is updated by the same optimizer
as the network: the gradient reversal turns descent into ascent on lambda, so
lambda grows while the reconstruction is worse than the target and shrinks
once it is better. This is not the multiplicative lambda update of "Taming
VAEs" and not a log-lambda rule.

The EMA is explicit state (`GecoState`) and is checkpointed with the train
state, so a resumed run continues exactly (the original keeps it in a local,
un-checkpointed variable).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# softplus^-1(1): the raw multiplier parameter that gives lambda_0 = 1.
V0 = float(np.log(np.e - 1.0))


class GecoState(NamedTuple):
  ma: Array  # float32 scalar, the moving average of rec_sum
  initialized: Array  # bool scalar, False until the first update


def init_geco_state() -> GecoState:
  return GecoState(ma=jnp.zeros((), jnp.float32),
                   initialized=jnp.zeros((), jnp.bool_))


def init_lagrange_multiplier() -> Array:
  """The raw parameter v (float32 scalar) with softplus(v)^2 = 1."""
  return jnp.asarray(V0, jnp.float32)


def moving_average(x: Array, state: GecoState,
                   decay: float) -> tuple[Array, GecoState]:
  """EMA whose value is the average and whose gradient wrt x is 1.

  The first call returns x itself (no zero-debias).
  """
  new = jnp.where(state.initialized, decay * state.ma + (1.0 - decay) * x, x)
  new = jax.lax.stop_gradient(new)
  out = x + jax.lax.stop_gradient(new - x)  # value: the EMA, d out/dx = 1
  return out, GecoState(ma=new.astype(jnp.float32),
                        initialized=jnp.ones((), jnp.bool_))


def lagrange_multiplier(v: Array, rate: float) -> Array:
  """lambda = softplus(v)^2 in the forward pass, gradient scaled by -rate."""
  lam = jnp.square(jax.nn.softplus(v))
  return -rate * lam + jax.lax.stop_gradient((1.0 + rate) * lam)


class GecoOutput(NamedTuple):
  loss: Array  # lam * c + kl_sum
  constraint: Array  # c = ma - kappa * n_sel
  lagmul: Array  # lambda (value)
  ma: Array  # the moving average of rec_sum (value)
  state: GecoState


def geco_loss(rec_sum: Array, num_selected: Array, kl_sum: Array, v: Array,
              state: GecoState, *, kappa: float, decay: float = 0.99,
              rate: float = 1e-2) -> GecoOutput:
  """The GECO objective of the official code; see the module docstring.

  Args:
    rec_sum: per-image reconstruction CE sum, averaged over images.
    num_selected: per-image number of pixels in the loss, averaged.
    kl_sum: per-image KL summed over levels, averaged over images.
    v: the raw Lagrange multiplier parameter.
    state: the EMA state.
    kappa: reconstruction target per selected pixel (nats).
    decay: EMA decay.
    rate: gradient scale of the multiplier (its sign is flipped).

  Returns:
    `GecoOutput`.
  """
  ma, new_state = moving_average(rec_sum, state, decay)
  constraint = ma - kappa * jax.lax.stop_gradient(num_selected)
  lam = lagrange_multiplier(v, rate)
  loss = lam * constraint + kl_sum
  return GecoOutput(loss=loss, constraint=jax.lax.stop_gradient(constraint),
                    lagmul=jax.lax.stop_gradient(lam),
                    ma=jax.lax.stop_gradient(ma), state=new_state)
