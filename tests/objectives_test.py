# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Tests of the losses, GECO and the objectives (pure JAX)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hpunet import geco
from hpunet import losses
from hpunet import networks as networks_lib
from hpunet import objectives


# --- Cross-entropy and top-k ---------------------------------------------


def _logits_and_seg(shape=(2, 10, 10), num_classes=3, seed=0):
  rng = np.random.RandomState(seed)
  logits = rng.normal(size=shape + (num_classes,)).astype(np.float32)
  labels = rng.randint(0, num_classes, size=shape)
  return jnp.asarray(logits), jnp.asarray(np.eye(num_classes)[labels],
                                          jnp.float32)


def test_masked_cross_entropy_is_a_per_image_sum_averaged_over_images():
  logits, seg = _logits_and_seg()
  mask = np.ones((2, 10, 10), np.float32)
  mask[1, :5] = 0.0
  rec = losses.reconstruction_loss(logits, seg, jnp.asarray(mask))
  log_p = np.asarray(jax.nn.log_softmax(logits))
  xe = -np.sum(np.asarray(seg) * log_p, -1)
  np.testing.assert_allclose(rec.sum, np.mean((xe * mask).sum((1, 2))),
                             rtol=1e-5)
  np.testing.assert_allclose(rec.mean, (xe * mask).sum() / mask.sum(),
                             rtol=1e-5)
  np.testing.assert_array_equal(rec.mask, mask)


@pytest.mark.parametrize("deterministic", [True, False])
def test_top_k_selects_exactly_k_and_never_a_masked_pixel(deterministic):
  logits, seg = _logits_and_seg(shape=(4, 16, 16))
  mask = np.ones((4, 16, 16), np.float32)
  mask[:, :, :6] = 0.0  # 37.5% masked
  rec = losses.reconstruction_loss(
      logits, seg, jnp.asarray(mask), top_k_percentage=0.02,
      deterministic_top_k=deterministic, rng=jax.random.key(0))
  k = int(0.02 * 4 * 16 * 16)  # from all pixels, masked or not: 20
  selected = np.asarray(rec.mask)
  assert k == 20 and selected.sum() == k
  assert set(np.unique(selected)) <= {0.0, 1.0}
  assert np.all(selected[mask == 0] == 0)
  xe = np.asarray(losses.softmax_cross_entropy(logits, seg))
  if deterministic:  # the k largest valid CEs
    threshold = np.sort(xe[mask == 1])[-k]
    np.testing.assert_array_equal(selected == 1,
                                  (xe >= threshold) & (mask == 1))
  np.testing.assert_allclose(rec.sum, np.mean((xe * selected).sum((1, 2))),
                             rtol=1e-5)
  # When fewer valid pixels than k remain, masked pixels are still excluded.
  sparse = np.zeros_like(mask)
  sparse[0, 0, :5] = 1.0
  rec = losses.reconstruction_loss(
      logits, seg, jnp.asarray(sparse), top_k_percentage=0.02,
      deterministic_top_k=deterministic, rng=jax.random.key(1))
  np.testing.assert_array_equal(rec.mask, sparse)


def test_stochastic_top_k_samples_proportionally_to_the_loss():
  """Gumbel top-k: pixels with higher CE are chosen more often."""
  xe = jnp.asarray(np.repeat([0.1, 1.0, 4.0], 100).reshape(1, 3, 100))
  mask = jnp.ones_like(xe)
  counts = np.zeros((3,))
  for seed in range(200):
    sel = losses.top_k_mask(xe, mask, k=6, deterministic=False,
                            rng=jax.random.key(seed))
    counts += np.asarray(sel).reshape(3, 100).sum(1)
  freq = counts / counts.sum()
  # Proportional to CE (0.1 : 1 : 4) for k much smaller than each group.
  np.testing.assert_allclose(freq, np.array([0.1, 1.0, 4.0]) / 5.1, atol=0.03)
  sel_a = losses.top_k_mask(xe, mask, k=6, deterministic=False,
                            rng=jax.random.key(0))
  sel_b = losses.top_k_mask(xe, mask, k=6, deterministic=False,
                            rng=jax.random.key(0))
  np.testing.assert_array_equal(sel_a, sel_b)


def test_top_k_has_no_gradient_through_the_selection():
  logits, seg = _logits_and_seg(shape=(1, 8, 8))

  def f(logits):
    return losses.reconstruction_loss(logits, seg, top_k_percentage=0.25,
                                      deterministic_top_k=True).sum

  grad = np.asarray(jax.grad(f)(logits))
  selected = np.asarray(losses.reconstruction_loss(
      logits, seg, top_k_percentage=0.25, deterministic_top_k=True).mask)
  # Only selected pixels receive gradient, and exactly the CE gradient there.
  ce_grad = np.asarray(jax.nn.softmax(logits)) - np.asarray(seg)
  np.testing.assert_allclose(grad, ce_grad * selected[..., None], atol=1e-6)


def test_top_k_percentage_validation():
  with pytest.raises(ValueError, match="selects no pixel"):
    losses.num_top_k(10, 0.02)
  with pytest.raises(ValueError, match=r"in \(0, 1\]"):
    losses.num_top_k(100, 2.0)


# --- GECO ---------------------------------------------------------------


def test_lagrange_multiplier_starts_at_one_with_reversed_scaled_gradient():
  v = geco.init_lagrange_multiplier()
  np.testing.assert_allclose(geco.lagrange_multiplier(v, 0.01), 1.0, rtol=1e-6)
  grad = jax.grad(lambda v: geco.lagrange_multiplier(v, 0.01))(v)
  exact = 2 * jax.nn.softplus(v) * jax.nn.sigmoid(v)  # d softplus(v)^2 / dv
  np.testing.assert_allclose(grad, -0.01 * exact, rtol=1e-5)
  # ~ -0.0126 * c at initialisation (lambda_0 = softplus(v_0)^2 = 1).
  np.testing.assert_allclose(grad, -0.0126, atol=2e-4)


def test_moving_average_starts_at_first_value_with_straight_through_grad():
  state = geco.init_geco_state()
  out, state = geco.moving_average(jnp.asarray(5.0), state, 0.99)
  assert float(out) == 5.0 and float(state.ma) == 5.0 and bool(state.initialized)
  out, state = geco.moving_average(jnp.asarray(1.0), state, 0.99)
  np.testing.assert_allclose(out, 0.99 * 5.0 + 0.01 * 1.0, rtol=1e-6)
  grad = jax.grad(lambda x: geco.moving_average(x, state, 0.99)[0])(3.0)
  assert float(grad) == 1.0


def test_lambda_rises_above_and_falls_below_the_threshold():
  """Scripted reconstruction values: lambda goes up, then down (Adam, lr)."""
  kappa, n_sel = 0.05, 100.0
  threshold = kappa * n_sel  # 5 nats per image
  params = {"v": geco.init_lagrange_multiplier()}
  opt = optax.adam(1e-2)
  opt_state = opt.init(params)
  state = geco.init_geco_state()

  def step(params, opt_state, state, rec):
    def loss_fn(params):
      out = geco.geco_loss(rec, jnp.asarray(n_sel), jnp.asarray(0.0),
                           params["v"], state, kappa=kappa)
      return out.loss, out
    grads, out = jax.grad(loss_fn, has_aux=True)(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, out

  lams = []
  script = [3 * threshold] * 30 + [0.1 * threshold] * 600
  for rec in script:
    params, opt_state, out = step(params, opt_state, state, jnp.asarray(rec))
    state = out.state
    lams.append(float(out.lagmul))
  assert lams[0] == pytest.approx(1.0)
  assert lams[29] > 1.2  # rec above target: lambda rises
  # Once the EMA has dropped below the threshold lambda falls.
  assert lams[-1] < lams[29] - 0.2
  assert np.all(np.diff(lams[:29]) > 0)


def test_geco_parameter_gradient_is_lambda_times_reconstruction_gradient():
  theta = jnp.asarray([0.5, -1.5, 2.0])
  rec_fn = lambda t: jnp.sum(jnp.square(t)) * 10.0
  kl_fn = lambda t: jnp.sum(jnp.abs(t))
  v = jnp.asarray(1.3)  # lambda = softplus(1.3)^2 != 1
  state = geco.GecoState(jnp.asarray(7.0), jnp.asarray(True))

  def loss(theta):
    return geco.geco_loss(rec_fn(theta), jnp.asarray(50.0), kl_fn(theta), v,
                          state, kappa=0.05).loss

  lam = float(jnp.square(jax.nn.softplus(v)))
  expected = lam * jax.grad(rec_fn)(theta) + jax.grad(kl_fn)(theta)
  np.testing.assert_allclose(jax.grad(loss)(theta), expected, rtol=1e-5)
  out = geco.geco_loss(rec_fn(theta), jnp.asarray(50.0), kl_fn(theta), v,
                       state, kappa=0.05)
  ma = 0.99 * 7.0 + 0.01 * float(rec_fn(theta))
  np.testing.assert_allclose(out.constraint, ma - 0.05 * 50.0, rtol=1e-5)
  np.testing.assert_allclose(out.loss, lam * (ma - 2.5) + kl_fn(theta),
                             rtol=1e-5)


# --- The objective on a real (tiny) model --------------------------------

_TINY_MODEL = dict(name="hpunet", channels_per_block=(4, 6, 8),
                   latent_dims=(1, 1), num_classes=2, blocks_per_level=1,
                   convs_per_block=2)


def _tiny_batch():
  rng = np.random.RandomState(0)
  return {
      "image": jnp.asarray(rng.uniform(size=(2, 8, 8, 1)), jnp.float32),
      "seg": jnp.asarray(rng.randint(0, 2, size=(2, 8, 8)), jnp.int32),
      "mask": jnp.ones((2, 8, 8), jnp.float32),
  }


def test_elbo_objective_value_and_weight_decay():
  networks = networks_lib.make_networks(_TINY_MODEL)
  batch = _tiny_batch()
  cfg = dict(type="elbo", beta=2.0, weight_decay=1e-5)
  params = objectives.init_params(networks, jax.random.key(0), batch, cfg)
  assert set(params) == {"model"}
  loss, (state, m) = jax.jit(lambda p, r: objectives.objective(
      p, geco.init_geco_state(), r, batch, networks=networks,
      loss_config=cfg))(params, jax.random.key(1))
  wd = sum(float(jnp.sum(x**2)) for x in jax.tree.leaves(params["model"]))
  np.testing.assert_allclose(m["weight_decay"], wd, rtol=1e-5)
  np.testing.assert_allclose(
      loss, m["rec_loss_sum"] + 2.0 * m["kl_sum"] + 1e-5 * wd, rtol=1e-5)
  np.testing.assert_allclose(m["kl_sum"], m["kl_0"] + m["kl_1"], rtol=1e-6)
  assert float(m["num_valid_pixels"]) == 64.0  # no top-k: every pixel
  assert not bool(state.initialized)  # the ELBO leaves the GECO state alone


def test_geco_objective_trains_the_multiplier_with_the_same_optimizer():
  networks = networks_lib.make_networks(_TINY_MODEL)
  batch = _tiny_batch()
  cfg = dict(type="geco", kappa=0.05, top_k_percentage=0.25)
  params = objectives.init_params(networks, jax.random.key(0), batch, cfg)
  np.testing.assert_allclose(params["lagrange_multiplier"], geco.V0)
  grad_fn = jax.jit(jax.grad(lambda p, s, r: objectives.objective(
      p, s, r, batch, networks=networks, loss_config=cfg), has_aux=True))
  grads, (state, m) = grad_fn(params, geco.init_geco_state(),
                              jax.random.key(1))
  assert float(m["lagmul"]) == pytest.approx(1.0)
  # k = 25% of 2*8*8 = 32 pixels, i.e. 16 per image on average.
  assert float(m["num_valid_pixels"]) == 16.0
  np.testing.assert_allclose(state.ma, m["rec_loss_sum"], rtol=1e-6)
  # The reconstruction is far above 0.05 nats/pixel: the multiplier's
  # gradient is negative, so gradient *descent* raises lambda.
  c = float(m["rec_loss_sum"]) - 0.05 * 16.0
  assert c > 0
  np.testing.assert_allclose(grads["lagrange_multiplier"], -0.0126 * c,
                             rtol=0.02)
  with pytest.raises(ValueError, match="kappa"):
    objectives.objective(params, state, jax.random.key(1), batch,
                         networks=networks, loss_config=dict(type="geco"))
  with pytest.raises(ValueError, match="beta"):
    objectives.objective(params, state, jax.random.key(1), batch,
                         networks=networks, loss_config=dict(type="elbo"))


# --- KL options beyond the papers (config.loss.kl_warmup_steps, free_bits,
# kl_balancing): off by default, values checked by hand.


def test_kl_term_without_options_is_the_plain_sum():
  kls = [jnp.float32(0.5), jnp.float32(2.0), jnp.float32(7.5)]
  loss, summaries = objectives.kl_term(kls, [1.0, 4.0, 16.0], step=3)
  np.testing.assert_allclose(loss, 10.0)
  np.testing.assert_allclose(summaries["kl_weight"], 1.0)


def test_kl_warmup_is_linear_then_one():
  kls = [jnp.float32(2.0), jnp.float32(6.0)]
  for step, want in ((0, 0.0), (25, 2.0), (100, 8.0), (400, 8.0)):
    loss, _ = objectives.kl_term(kls, [1.0, 4.0], step=step,
                                 kl_warmup_steps=100)
    np.testing.assert_allclose(loss, want, rtol=1e-6)


def test_free_bits_floor_each_level_and_stop_its_gradient():
  def loss(kls):
    return objectives.kl_term(list(kls), [1.0, 4.0], step=0,
                              free_bits=1.0)[0]
  kls = jnp.array([0.25, 3.0])
  np.testing.assert_allclose(loss(kls), 1.0 + 3.0)
  # The level under the floor gets no gradient; the other one gets 1.
  np.testing.assert_allclose(jax.grad(loss)(kls), [0.0, 1.0])


def test_kl_balancing_weights_levels_by_kl_per_unit_during_warmup():
  kls = [jnp.float32(0.99), jnp.float32(3.99)]
  units = [1.0, 4.0]
  # gamma ∝ (KL + 0.01) / units = (1, 1): equal use per unit, weights 1.
  loss, s = objectives.kl_term(kls, units, step=0, kl_warmup_steps=10,
                               kl_balancing=True)
  np.testing.assert_allclose([s["kl_coeff_0"], s["kl_coeff_1"]], [1.0, 1.0],
                             rtol=1e-6)
  np.testing.assert_allclose(loss, 0.0)  # warm-up factor 0 at step 0
  # A level using more than its share per unit is priced more:
  # gamma ∝ (8, 1) -> normalised to mean 1: (16/9, 2/9).
  kls = [jnp.float32(7.99), jnp.float32(3.99)]
  loss, s = objectives.kl_term(kls, units, step=5, kl_warmup_steps=10,
                               kl_balancing=True)
  np.testing.assert_allclose([s["kl_coeff_0"], s["kl_coeff_1"]],
                             [16 / 9, 2 / 9], rtol=1e-5)
  np.testing.assert_allclose(loss, 0.5 * (16 / 9 * 7.99 + 2 / 9 * 3.99),
                             rtol=1e-5)
  # After the warm-up the weights are 1 again.
  _, s = objectives.kl_term(kls, units, step=10, kl_warmup_steps=10,
                            kl_balancing=True)
  np.testing.assert_allclose([s["kl_coeff_0"], s["kl_coeff_1"]], [1.0, 1.0])


def test_kl_level_weights_price_each_level_and_its_gradient():
  def loss(kls, step=0):
    return objectives.kl_term(list(kls), [1.0, 4.0, 16.0], step=step,
                              kl_warmup_steps=10,
                              level_weights=(1.0, 2.0, 8.0))[0]
  kls = jnp.array([0.5, 2.0, 0.25])
  np.testing.assert_allclose(loss(kls, step=10), 0.5 + 4.0 + 2.0)
  np.testing.assert_allclose(loss(kls, step=5), 0.5 * 6.5)  # warm-up half
  np.testing.assert_allclose(jax.grad(loss)(kls, 10), [1.0, 2.0, 8.0])
  with pytest.raises(ValueError, match="one factor per latent level, 3"):
    objectives.kl_term(list(kls), [1.0, 4.0, 16.0], step=0,
                       level_weights=(1.0, 2.0))


def test_relative_latent_units_skip_empty_levels():
  assert objectives.relative_latent_units((1, 1, 1, 1)) == [1, 4, 16, 64]
  assert objectives.relative_latent_units((0, 0, 0, 2)) == [128]
  assert objectives.relative_latent_units((6,)) == [6]


@pytest.mark.parametrize("bad", [dict(kl_warmup_steps=-1),
                                 dict(free_bits=-0.5),
                                 dict(kl_level_weights=(1.0, 0.0)),
                                 dict(kl_balancing=True)])
def test_kl_options_are_validated(bad):
  with pytest.raises(ValueError, match="config.loss"):
    objectives._loss_settings(dict(type="elbo", beta=1.0, **bad))


def test_every_config_keeps_the_papers_objective():
  """The KL options exist in every config (so --config.loss.* works) and
  are off: the paper configs train the faithful objective."""
  from hpunet import config_lib  # pylint: disable=g-import-not-at-top
  import glob  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  configs = glob.glob(os.path.join(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))), "configs", "*.py"))
  assert len(configs) >= 10
  for path in configs:
    loss = config_lib.load_config(path).loss
    if loss.type in objectives.NO_POSTERIOR_LOSS_TYPES:  # the baselines
      assert not any(loss.get(k) for k in objectives.KL_OPTIONS), path
      continue
    assert (loss.kl_warmup_steps, loss.free_bits, loss.kl_balancing) == (
        0, 0.0, False), path
    assert not loss.get("kl_level_weights"), path


def test_weight_decay_modes():
  """"all": sum(w^2 + b^2) (the papers' HPU-Net code); "spunet_reference":
  1/2 sum(w^2) over the kernels, the logits conv left out (the sPU-Net
  reference code)."""
  params = {"m/~/conv": {"w": jnp.full((2, 3), 2.0), "b": jnp.ones((3,))},
            "m/~/logits": {"w": jnp.full((3, 1), 3.0), "b": jnp.ones((1,))}}
  assert float(losses.l2_weight_decay(params)) == 6 * 4 + 3 + 3 * 9 + 1
  assert float(losses.l2_weight_decay(params, "spunet_reference")) == (
      0.5 * 6 * 4)
  networks = networks_lib.make_networks(_TINY_MODEL)
  batch = _tiny_batch()
  cfg = dict(type="elbo", beta=1.0, weight_decay=1e-5,
             weight_decay_mode="spunet_reference")
  params = objectives.init_params(networks, jax.random.key(0), batch, cfg)
  _, (_, m) = objectives.objective(
      params, geco.init_geco_state(), jax.random.key(1), batch,
      networks=networks, loss_config=cfg)
  np.testing.assert_allclose(
      m["weight_decay"], losses.l2_weight_decay(params["model"],
                                                "spunet_reference"))
  with pytest.raises(ValueError, match="config.loss.weight_decay_mode"):
    objectives._loss_settings(dict(cfg, weight_decay_mode="adamw"))
  from hpunet import config_lib  # pylint: disable=g-import-not-at-top
  from hpunet import errors  # pylint: disable=g-import-not-at-top
  from hpunet import validation  # pylint: disable=g-import-not-at-top
  config = config_lib.load_config("synthetic_spunet", "smoke")
  config.loss.weight_decay_mode = "adamw"
  with pytest.raises(errors.UserError,
                     match="config.loss.weight_decay_mode='adamw'"):
    validation.check_model(config)
