# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""hpunet.convert_official on a TF1 checkpoint written like the official one.

The checkpoint comes from a TF1 graph that follows the official `model.py` /
`unet_utils.py` step by step (res-blocks, heads, z-first / skip-last concats,
aligned-corners nearest up-sampling, average-pool down-sampling), with every
conv created in a `variable_scope(None, default_name="conv_2d")` as Sonnet 1
does, so TensorFlow itself numbers the variables; Adam slots, a global step
and GECO's multiplier are added as training would. The converted workdir
must give the TF graph's logits (posterior-mean reconstruction and
prior-mean sample) through our model.
"""

import copy
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hpunet import config_lib
from hpunet import convert_official
from hpunet import networks as networks_lib
from hpunet import train

tf = pytest.importorskip("tensorflow")
v1 = tf.compat.v1

B, H, W = 2, 32, 32


def _config():
  config = config_lib.load_config("lidc", "smoke")
  config.input.crop_size = (H, W)
  m = config.model
  m.channels_per_block = (4, 8, 8, 8, 8, 8)
  # D == C at one level: a block without residual projection.
  m.down_channels_per_block = (2, 4, 8, 4, 4, 4)
  m.latent_dims = (1, 2, 1, 1)
  m.convs_per_block = 3
  m.blocks_per_level = 2
  return config


# ---- The official model in TF1, built the way Sonnet 1 names variables.


def _conv(x, cout, k, name=None):
  with v1.variable_scope(name, default_name="conv_2d"):
    cin = int(x.shape[-1])
    w = v1.get_variable("w", (k, k, cin, cout),
                        initializer=v1.initializers.variance_scaling(1.0))
    b = v1.get_variable("b", (cout,),
                        initializer=v1.initializers.random_normal(stddev=0.1))
  return tf.nn.conv2d(x, w, strides=1, padding="SAME") + b


def _res_block(x, c, d, convs_per_block):
  skip, residual = x, tf.nn.relu(x)
  for i in range(convs_per_block):
    residual = _conv(residual, d, 3)
    if i < convs_per_block - 1:
      residual = tf.nn.relu(residual)
  if int(x.shape[-1]) != c:
    skip = _conv(skip, c, 1)
  if d != c:
    residual = _conv(residual, c, 1)
  return skip + residual


def _up(x):
  h, w = int(x.shape[1]), int(x.shape[2])
  return v1.image.resize_nearest_neighbor(x, (2 * h, 2 * w),
                                          align_corners=True)


def _down(x):
  return tf.nn.avg_pool2d(x, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")


def _core(x, m, z_q=None):
  """`_HierarchicalCore` with mean=True unless z_q is given."""
  ch, down = m.channels_per_block, m.down_channels_per_block
  enc = []
  for level in range(len(ch)):
    for _ in range(m.blocks_per_level):
      x = _res_block(x, ch[level], down[level], m.convs_per_block)
    enc.append(x)
    if level != len(ch) - 1:
      x = _down(x)
  d, used = enc[-1], []
  for i, z_dim in enumerate(m.latent_dims):
    mu_logsigma = _conv(d, 2 * z_dim, 1)
    z = z_q[i] if z_q is not None else mu_logsigma[..., :z_dim]
    used.append(z)
    d = tf.concat([_up(tf.concat([z, d], -1)), enc[::-1][i + 1]], -1)
    for _ in range(m.blocks_per_level):
      d = _res_block(d, ch[::-1][i + 1], down[::-1][i + 1], m.convs_per_block)
  return enc, d, used


def _f_comb(enc, d, m):
  ch, down = m.channels_per_block, m.down_channels_per_block
  for level in range(len(m.latent_dims) + 1, len(ch)):
    d = tf.concat([_up(d), enc[::-1][level]], -1)
    for _ in range(m.blocks_per_level):
      d = _res_block(d, ch[::-1][level], down[::-1][level], m.convs_per_block)
  return _conv(d, m.num_classes, 1, name="logits")


def _official_graph(m, img, seg, *, reconstruct):
  with v1.variable_scope("model"), v1.variable_scope("HPUNet"):
    if reconstruct:  # reconstruct(seg, img, mean=True)
      with v1.variable_scope("posterior"):
        _, _, z_q = _core(tf.concat([seg, img], -1), m)
    else:
      z_q = None  # sample(img, mean=True)
    with v1.variable_scope("prior"):
      enc, d, _ = _core(img, m, z_q)
    with v1.variable_scope("f_comb"):
      return _f_comb(enc, d, m)


@pytest.fixture(scope="module")
def official(tmp_path_factory):
  """A checkpoint of the official model and its TF logits."""
  config = _config()
  m = config.model
  rng = np.random.default_rng(0)
  img = rng.uniform(size=(B, H, W, 1)).astype(np.float32)
  seg = np.eye(2, dtype=np.float32)[rng.integers(0, 2, size=(B, H, W))]
  prefix = str(tmp_path_factory.mktemp("official") / "tf_graph_data.ckpt")
  with tf.Graph().as_default():
    v1.set_random_seed(0)
    logits = _official_graph(m, tf.constant(img), tf.constant(seg),
                             reconstruct=True)
    step = v1.train.get_or_create_global_step()
    with v1.variable_scope("model/HPUNet/snt_lagrange_multiplier"):
      v1.get_variable("lagrange_multiplier", (), initializer=tf.ones_initializer())
    train_op = v1.train.AdamOptimizer(1e-3).minimize(
        tf.reduce_sum(tf.square(logits)), global_step=step)
    with v1.Session() as sess:
      sess.run(v1.global_variables_initializer())
      sess.run(train_op)  # moves the weights off their initial values
      rec = sess.run(logits)
      v1.train.Saver().save(sess, prefix)
  with tf.Graph().as_default():
    logits = _official_graph(m, tf.constant(img), None, reconstruct=False)
    with v1.Session() as sess:
      v1.train.Saver().restore(sess, prefix)  # by name: same numbering
      sample = sess.run(logits)
  return dict(config=config, prefix=prefix, img=img, seg=seg, rec=rec,
              sample=sample)


@pytest.fixture(scope="module")
def converted(official, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("converted") / "workdir")
  report = convert_official.convert(official["prefix"], workdir,
                                    official["config"])
  return workdir, report


def test_converted_model_gives_the_official_logits(official, converted):
  workdir, report = converted
  config = config_lib.load_workdir_config(workdir)
  params, step = train.restore_params(config, workdir)
  assert step == 0
  nets = networks_lib.make_networks(config.model)
  img, seg = jnp.asarray(official["img"]), jnp.asarray(official["seg"])
  rec = jax.jit(lambda p: nets.reconstruct(
      p["model"], None, seg=seg, img=img, mean=True))(params)
  sample = jax.jit(lambda p: nets.sample(
      p["model"], None, img, mean=True).logits)(params)
  scale = float(np.abs(official["rec"]).max())
  assert scale > 1e-2  # non-trivial logits
  np.testing.assert_allclose(rec, official["rec"], rtol=1e-4,
                             atol=1e-5 * scale)
  np.testing.assert_allclose(sample, official["sample"], rtol=1e-4,
                             atol=1e-5 * float(np.abs(official["sample"]).max()))
  # Reconstruction and sample differ: the posterior weights were used.
  assert np.abs(official["rec"] - official["sample"]).max() > 1e-3
  # The report: scope, the dead posterior level, the training state.
  m = config.model
  assert report["scope"] == "model/HPUNet/"
  # The posterior's last decoder level: D != C in every block, a skip
  # projection in the first.
  dead_convs = m.blocks_per_level * (m.convs_per_block + 1) + 1
  assert report["dropped"] == 2 * dead_convs
  assert "global_step" in report["ignored"]
  assert "model/HPUNet/snt_lagrange_multiplier/lagrange_multiplier" in (
      report["ignored"])
  assert "model/HPUNet/prior/conv_2d/w/Adam" in report["ignored"]


def test_every_tensor_is_copied_exactly(official, converted):
  workdir, report = converted
  config = official["config"]
  params, _ = train.restore_params(config, workdir)
  variables = convert_official.read_checkpoint(official["prefix"])
  convs = convert_official.official_convs(config.model, 1)
  ours = {c.ours for c in convs if c.ours}
  assert ours == set(params["model"])
  for c in convs:
    if c.ours:
      for key in ("w", "b"):
        np.testing.assert_array_equal(
            params["model"][c.ours][key],
            variables[f"model/HPUNet/{c.name}/{key}"])
  assert report["converted"] == 2 * len(ours)
  np.testing.assert_allclose(params["lagrange_multiplier"],
                             np.log(np.e - 1.0), rtol=1e-6)


def test_missing_and_misshaped_variables_are_listed(official):
  config = official["config"]
  variables = convert_official.read_checkpoint(official["prefix"])
  del variables["model/HPUNet/f_comb/logits/b"]
  variables["model/HPUNet/prior/conv_2d_1/w"] = np.zeros((3, 3, 2, 7))
  variables["model/HPUNet/prior/conv_2d_999/w"] = np.zeros((1,))
  with pytest.raises(ValueError) as e:
    convert_official.convert_variables(variables, config.model, 1,
                                       source="--checkpoint=x")
  message = str(e.value)
  assert "\n" not in message
  assert message.startswith("--checkpoint=x does not match")
  assert "missing (1): model/HPUNet/f_comb/logits/b [2]" in message
  assert ("mis-shaped (1): model/HPUNet/prior/conv_2d_1/w [3, 3, 2, 7] "
          "(expected [3, 3, 2, 2])") in message
  assert "unexpected (1): model/HPUNet/prior/conv_2d_999/w" in message


def test_a_checkpoint_for_another_config_is_refused(official, tmp_path):
  config = copy.deepcopy(official["config"])
  config.model.channels_per_block = (4, 8, 8, 8, 8, 16)
  workdir = str(tmp_path / "w")
  with pytest.raises(ValueError, match=r"mis-shaped \(\d+\): .*conv_2d"):
    convert_official.convert(official["prefix"], workdir, config)
  assert not os.path.exists(workdir)  # a rejected run writes nothing


def test_no_hpunet_scope_and_non_empty_workdir(official, tmp_path):
  with pytest.raises(ValueError, match="HPUNet/prior/conv_2d/w.*found none"):
    convert_official.convert_variables({"x/w": np.zeros(1)},
                                       official["config"].model, 1)
  (tmp_path / "file").write_text("x")
  with pytest.raises(FileExistsError, match="not empty"):
    convert_official.convert(official["prefix"], str(tmp_path),
                             official["config"])
  with pytest.raises(FileNotFoundError, match="--checkpoint=.*nothing"):
    convert_official.convert(str(tmp_path / "nothing"),
                             str(tmp_path / "new"), official["config"])


def test_the_lidc_mapping_covers_every_parameter_exactly():
  """configs/lidc.py at full size (shapes only): every parameter of ours is
  one official conv's w or b of the same shape, and nothing else is left."""
  config = config_lib.load_config("lidc")
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:1]).reshape(1, 1),
                           ("data", "spatial"))
  params = train.abstract_train_state(config, mesh).params["model"]
  convs = convert_official.official_convs(config.model, 1)
  ours = {c.ours: {"w": c.w_shape, "b": c.b_shape} for c in convs if c.ours}
  assert ours == {k: {n: tuple(a.shape) for n, a in v.items()}
                  for k, v in params.items()}
  names = [c.name for c in convs]
  assert len(names) == len(set(names))
  # Counted by hand: a block has 3 convs + the residual projection (D != C
  # everywhere) + a skip projection where the width changes (first blocks of
  # encoder levels 0-3 and of every decoder level). Encoder: 4 x 13 + 4 x 12
  # = 100; latent levels: 4 x (head + 13) = 56; f_comb: 3 x 13 + logits.
  assert names[0] == "prior/conv_2d" and names[-1] == "f_comb/logits"
  for scope, count in (("prior", 156), ("posterior", 156), ("f_comb", 39)):
    assert f"{scope}/conv_2d_{count - 1}" in names
    assert f"{scope}/conv_2d_{count}" not in names
  assert sum(c.ours is None for c in convs) == 13  # the dead posterior level
  assert sum(int(np.prod(a.shape)) for v in params.values()
             for a in v.values()) == pytest.approx(20.6e6, rel=0.01)
