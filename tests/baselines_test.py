# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""The sPU-Net paper's baselines without a posterior (hpunet/baselines.py):
dropout at sampling, the M-heads weights, independent ensemble members,
parameter counts, validation, and one end-to-end train/evaluate/sample."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpunet import baselines
from hpunet import config_lib
from hpunet import geco
from hpunet import losses
from hpunet import networks as networks_lib
from hpunet import objectives
from hpunet import unet
from hpunet import validation
from hpunet.errors import UserError

_CORE = dict(channels_per_block=(4, 8, 8), convs_per_block=1, num_classes=3)


def _inputs(batch=2, size=8, seed=0):
  rng = np.random.default_rng(seed)
  img = jnp.asarray(rng.random((batch, size, size, 1)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 3, (batch, size, size)), jnp.int32)
  return img, jax.nn.one_hot(labels, 3), labels


def _init(model, **kw):
  networks = networks_lib.make_networks(dict(name=model, **_CORE, **kw))
  img, seg, _ = _inputs()
  return networks, networks.init(jax.random.key(0), seg=seg, img=img)


def test_dropout_is_active_when_training_and_sampling():
  networks, params = _init("dropout_unet")
  img, seg, _ = _inputs()
  key = jax.random.key(3)
  two = networks.sample_n(params, key, img, num_samples=2)  # [2, B, H, W, K]
  assert float(jnp.max(jnp.abs(two[0] - two[1]))) > 1e-3  # two masks
  # No dropout with mean=True: the same output for every key and sample.
  det = networks.sample(params, key, img, mean=True).logits
  np.testing.assert_array_equal(
      det, networks.sample(params, jax.random.key(4), img, mean=True).logits)
  det_n = networks.sample_n(params, key, img, num_samples=2, mean=True)
  np.testing.assert_allclose(det_n[0], det, atol=1e-6)
  np.testing.assert_allclose(det_n[1], det, atol=1e-6)
  # Training and sampling drop the same way: one key, one mask.
  train = networks.train_outputs(params, key, seg=seg, img=img).logits
  sample = networks.sample(params, key, img).logits
  np.testing.assert_array_equal(train, sample)
  np.testing.assert_allclose(
      networks.sample_n(params, key, img, num_samples=1)[0], sample,
      atol=1e-6)
  assert float(jnp.max(jnp.abs(train - det))) > 1e-3


def test_dropout_hits_the_inputs_of_the_three_inner_most_blocks(monkeypatch):
  """5 scales: encoder blocks 2, 3, 4 (after their down-sampling) and
  decoder blocks 3, 2, 1 (after their concatenation), rate 0.5."""
  seen = []
  original = unet._dropout

  def record(x, rate):
    seen.append((x.shape, rate))
    return original(x, rate)

  monkeypatch.setattr(unet, "_dropout", record)
  networks = networks_lib.make_networks(dict(
      name="dropout_unet", channels_per_block=(2, 3, 4, 5, 6),
      convs_per_block=1, num_classes=2))
  img = jax.ShapeDtypeStruct((1, 32, 32, 1), jnp.float32)
  params = jax.eval_shape(
      lambda k, i: networks.init(k, seg=jnp.zeros((1, 32, 32, 2)), img=i),
      jax.random.key(0), img)
  seen.clear()
  jax.eval_shape(lambda p, k, i: networks.sample(p, k, i).logits, params,
                 jax.random.key(1), img)
  assert seen == [((1, 8, 8, 3), 0.5), ((1, 4, 4, 4), 0.5),
                  ((1, 2, 2, 5), 0.5),  # encoder: blocks 2, 3, 4
                  ((1, 4, 4, 6 + 5), 0.5), ((1, 8, 8, 5 + 4), 0.5),
                  ((1, 16, 16, 4 + 3), 0.5)]  # decoder: blocks 3, 2, 1


def test_mheads_weights_on_a_hand_made_example():
  per_head = jnp.asarray([[3.0, 0.5, 2.0],
                          [1.0, 4.0, 2.0],
                          [5.0, 6.0, 2.0],
                          [2.0, 1.0, 7.0]])  # [M = 4, B = 3]; best 1, 0, 0
  w = np.asarray(losses.mheads_weights(per_head, 0.05))
  o = 0.05 / 3
  np.testing.assert_allclose(w, [[o, 0.95, 0.95],
                                 [0.95, o, o],
                                 [o, o, o],
                                 [o, o, o]], rtol=1e-6)
  np.testing.assert_allclose(w.sum(0), 1.0, rtol=1e-6)
  np.testing.assert_array_equal(
      losses.mheads_weights(per_head[:1], 0.05), np.ones((1, 3)))
  # No gradient through the assignment: d(sum w * l)/dl = w.
  grad = jax.grad(lambda l: jnp.sum(losses.mheads_weights(l, 0.05) * l))(
      per_head)
  np.testing.assert_allclose(grad, w, rtol=1e-6)


def test_mheads_objective_weights_each_images_best_head():
  rng = np.random.default_rng(1)
  logits = jnp.asarray(rng.normal(size=(3, 2, 4, 4, 2)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 2, (2, 4, 4)), jnp.int32)
  mask = jnp.asarray(rng.random((2, 4, 4)) > 0.2, jnp.float32)
  fake = types.SimpleNamespace(
      num_classes=2, train_outputs=lambda p, r, *, seg, img:
      networks_lib.TrainOutputs(logits=logits, kl=()))
  loss, (_, metrics) = objectives.objective(
      {"model": {}}, geco.init_geco_state(), jax.random.key(0),
      {"image": jnp.zeros((2, 4, 4, 1)), "seg": labels, "mask": mask},
      networks=fake, loss_config=dict(type="mheads", epsilon=0.05))
  log_p = np.asarray(jax.nn.log_softmax(logits))
  onehot = np.eye(2)[np.asarray(labels)]
  xe = -(log_p * onehot).sum(-1) * np.asarray(mask)  # [M, B, H, W]
  per_head = xe.reshape(3, 2, -1).sum(-1)  # [M, B]
  best = per_head.argmin(0)
  weights = np.where(np.arange(3)[:, None] == best[None], 0.95, 0.025)
  assert float(loss) == pytest.approx(
      float((weights * per_head).sum(0).mean()), rel=1e-5)
  assert float(metrics["rec_loss_sum"]) == pytest.approx(
      float(per_head.min(0).mean()), rel=1e-5)


def test_ensemble_members_are_independent():
  networks, params = _init("unet_ensemble", num_members=3)
  leaves = jax.tree.leaves(params)
  assert all(x.shape[0] == 3 for x in leaves)
  for a, b in ((0, 1), (0, 2), (1, 2)):  # each member its own init
    assert all(float(jnp.max(jnp.abs(x[a] - x[b]))) > 0 for x in leaves
               if x.ndim > 1 or x.shape[-1] > 1)
  img, seg, labels = _inputs()
  key = jax.random.key(0)

  def member_loss(p, m):
    logits = networks.train_outputs(p, key, seg=seg, img=img).logits
    return losses.reconstruction_loss(logits[m], seg).sum

  grad = jax.grad(member_loss)(params, 1)
  for x in jax.tree.leaves(grad):  # only member 1's parameters move
    assert float(jnp.max(jnp.abs(x[0]))) == 0.0
    assert float(jnp.max(jnp.abs(x[2]))) == 0.0
  assert max(float(jnp.max(jnp.abs(x[1]))) for x in jax.tree.leaves(grad)) > 0
  # The "ce" objective sums the members' own losses: its gradient is each
  # member's own (weight decay off).
  total = jax.grad(lambda p: objectives.objective(
      {"model": p}, geco.init_geco_state(), key,
      {"image": img, "seg": labels}, networks=networks,
      loss_config=dict(type="ce", weight_decay=0.0))[0])(params)
  for m in range(3):
    own = jax.grad(member_loss)(params, m)
    for t, o in zip(jax.tree.leaves(total), jax.tree.leaves(own)):
      np.testing.assert_allclose(t[m], o[m], rtol=1e-4, atol=1e-7)
  # Samples: member i mod M; `sample` is member 0.
  all_members = networks.train_outputs(params, key, seg=seg,
                                       img=img).logits  # [3, B, H, W, K]
  five = networks.sample_n(params, key, img, num_samples=5)
  for i in range(5):
    np.testing.assert_allclose(five[i], all_members[i % 3], atol=1e-6)
  np.testing.assert_allclose(networks.sample_n(params, key, img,
                                               num_samples=2),
                             all_members[:2], atol=1e-6)
  np.testing.assert_allclose(networks.sample(params, key, img).logits,
                             all_members[0], atol=1e-6)


def test_ensemble_member_loops_agree():
  """"unroll" (one member after the other) and "vmap" (batched) are the
  same function of the same parameters, with the same gradients."""
  img, seg, _ = _inputs()
  key = jax.random.key(0)
  outs = {}
  for loop in ("unroll", "vmap"):
    networks, params = _init("unet_ensemble", num_members=3, member_loop=loop)
    loss = lambda p, n=networks: jnp.sum(  # pylint: disable=g-long-lambda
        n.train_outputs(p, key, seg=seg, img=img).logits**2)
    outs[loop] = (networks.train_outputs(params, key, seg=seg,
                                         img=img).logits,
                  jax.grad(loss)(params))
  np.testing.assert_allclose(outs["unroll"][0], outs["vmap"][0], rtol=1e-4,
                             atol=1e-5)
  for a, b in zip(jax.tree.leaves(outs["unroll"][1]),
                  jax.tree.leaves(outs["vmap"][1])):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
  with pytest.raises(ValueError, match="member_loop"):
    _init("unet_ensemble", num_members=2, member_loop="pmap")


def test_mheads_samples_are_heads_in_turn():
  networks, params = _init("mheads", num_heads=3)
  img, seg, _ = _inputs()
  heads = networks.train_outputs(params, None, seg=seg, img=img).logits
  assert heads.shape == (3, 2, 8, 8, 3)
  four = networks.sample_n(params, None, img, num_samples=4)
  np.testing.assert_array_equal(four, heads[np.array([0, 1, 2, 0])])
  assert float(jnp.max(jnp.abs(heads[0] - heads[1]))) > 0


def test_parameter_counts_share_the_spunet_core():
  counts = {}
  for model, kw in (("dropout_unet", {}), ("unet_ensemble",
                                           dict(num_members=3)),
                    ("mheads", dict(num_heads=3))):
    networks = networks_lib.make_networks(dict(name=model, **_CORE, **kw))
    assert not networks.has_posterior and networks.latent_dims == ()
    assert networks.reconstruct is None and networks.reconstruct_full is None
    img, seg, _ = _inputs()
    params = jax.eval_shape(
        lambda k: networks.init(k, seg=seg, img=img), jax.random.key(0))
    counts[model] = networks_lib.component_param_counts(params)
  spunet = networks_lib.make_networks(dict(
      name="spunet", latent_dim=2, fcomb_channels=4, **_CORE))
  img, seg, _ = _inputs()
  sp = networks_lib.component_param_counts(jax.eval_shape(
      lambda k: spunet.init(k, seg=seg, img=img), jax.random.key(0)))
  core = sp["unet"]
  head = 4 * 3 + 3  # 1x1 conv C_0 = 4 -> K = 3
  assert counts["dropout_unet"] == {"unet": core, "head": head,
                                    "total": core + head}
  assert counts["mheads"] == {"unet": core, "heads": 3 * head,
                              "total": core + 3 * head}
  assert counts["unet_ensemble"] == {"unet": 3 * core, "head": 3 * head,
                                     "total": 3 * (core + head)}


@pytest.mark.parametrize("change,match", [
    (dict(type="elbo", beta=1.0), "config.loss.type='elbo': expected one of"),
    (dict(type="mheads", epsilon=0.05), "config.loss.type='mheads'"),
    (dict(type="ce", free_bits=1.0), "config.loss.free_bits=1.0"),
])
def test_bad_losses_of_the_dropout_unet_are_one_line(change, match):
  config = config_lib.load_config("synthetic_dropout_unet", "smoke")
  for k, v in change.items():
    config.loss[k] = v
  with pytest.raises(UserError, match=match) as e:
    validation.check_model(config)
  assert "\n" not in str(e.value)


def test_bad_mheads_epsilon_is_one_line():
  config = config_lib.load_config("synthetic_mheads", "smoke")
  config.loss.epsilon = 1.0
  with pytest.raises(UserError, match=r"config.loss.epsilon=1.0: expected "
                     r"a number in \[0, 1\)"):
    validation.check_model(config)
  config = config_lib.load_config("synthetic_spunet", "smoke")
  config.loss.type = "ce"
  with pytest.raises(UserError, match="expected one of .'geco', 'elbo'. "
                     "for config.model.name='spunet'"):
    validation.check_model(config)


def test_ensemble_trains_evaluates_and_samples(tmp_path, synthetic_data_dir,
                                               fast_compiles):
  """configs/synthetic_ensemble.py:smoke (3 members): train with the
  periodic validation and image summaries, then evaluate and sample."""
  del fast_compiles
  from hpunet import evaluate  # pylint: disable=g-import-not-at-top
  from hpunet import sample  # pylint: disable=g-import-not-at-top
  from hpunet import train  # pylint: disable=g-import-not-at-top
  config = config_lib.load_config("synthetic_ensemble", "smoke")
  config.input.data_dir = synthetic_data_dir
  config.mesh.data = 1
  config.num_train_steps = 2
  config.checkpoint_every_steps = 2
  config.log_every_steps = 2
  config.summary_images_every_steps = 2
  config.evals.val.every_steps = 2
  workdir = str(tmp_path / "run")
  result = train.train_and_evaluate(config, workdir)
  assert np.isfinite(result.metrics["train/loss"])
  assert "val/rec_iou" not in result.metrics  # no posterior: no IoU_rec
  assert 0.0 <= result.metrics["val/ged"] <= 2.0
  results = evaluate.evaluate(config, [workdir], split="test", num_samples=4,
                              max_batches=1, out_dir=str(tmp_path / "eval"))
  table = results["table"]
  assert "rec_iou" not in table and not any(
      k.startswith("rec_recall") for k in table)
  assert 0.0 <= table["ged_modes"]["mean"] <= 2.0
  assert results["model"] == "unet_ensemble"
  assert "| synthetic/s32 | GED² (graders) |" in (
      tmp_path / "eval" / "results.md").read_text()
  image = np.random.default_rng(0).random((32, 32, 1)).astype(np.float32)
  out = sample.sample_image(config, workdir, image, num_samples=4)
  assert out["samples"].shape == (4, 32, 32)
  # Sample 3 is member 0 again (i mod M, M = 3).
  np.testing.assert_allclose(out["probabilities"][3], out["probabilities"][0],
                             atol=1e-6)


def test_full_size_counts_share_the_lidc_spunet_core_and_summary():
  counts = {}
  for name in ("lidc_spunet", "lidc_dropout_unet", "lidc_mheads"):
    config = config_lib.load_config(name)
    networks = networks_lib.make_networks(config.model)
    img = jnp.zeros((1, 128, 128, 1))
    counts[name] = networks_lib.component_param_counts(jax.eval_shape(
        lambda k, n=networks, i=img: n.init(k, seg=jnp.zeros((1, 128, 128, 2)),
                                            img=i), jax.random.key(0)))
  assert counts["lidc_dropout_unet"]["unet"] == counts["lidc_spunet"]["unet"]
  assert counts["lidc_dropout_unet"]["total"] == 11_773_602  # as documented
  assert counts["lidc_mheads"]["total"] == 11_773_536 + 16 * 66
  from hpunet import model_summary  # pylint: disable=g-import-not-at-top
  s = model_summary.summarize(config_lib.load_config("synthetic_mheads",
                                                     "smoke"))
  assert s["model"] == "mheads" and s["latent_grids"] == []
  assert s["params"]["heads"] == 3 * (4 * 2 + 2)  # M = 3, C_0 = 4, K = 2
  assert "latent grids: none" in model_summary.format_summary(s)
