# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
"""Tests of `python -m hpunet.model_summary` (eval_shape and lowering only)."""

import json
import os
import subprocess
import sys

import numpy as np

from hpunet import model_summary

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_lidc_default_summary_values():
  s = model_summary.summarize(model_summary.default_config())
  assert s["model"] == "hpunet"
  assert s["latent_grids"] == [[1, 1, 1], [2, 2, 1], [4, 4, 1], [8, 8, 1]]
  assert s["num_latents_per_image"] == 85
  params = s["params"]
  assert set(params) == {"prior", "posterior", "f_comb", "total"}
  assert params["total"] == params["prior"] + params["posterior"] + params[
      "f_comb"]
  # The prior core decodes one level more than the posterior (which skips its
  # dead last level) and has a 1-channel input instead of 3.
  assert params["prior"] > params["posterior"]
  # f_comb: levels 5-7 (3 res-blocks each) plus the logits conv; count it by
  # hand from the widths of the official LIDC HPU-Net.
  def block(cin, c, d, convs=3):
    n = 9 * cin * d + d + (convs - 1) * (9 * d * d + d)
    n += (d * c + c) if d != c else 0
    n += (cin * c + c) if cin != c else 0
    return n
  f_comb = 0
  for cin, c, d in ((192 + 96, 96, 48), (96 + 48, 48, 24), (48 + 24, 24, 12)):
    f_comb += block(cin, c, d) + 2 * block(c, c, d)
  f_comb += 24 * 2 + 2
  assert params["f_comb"] == f_comb
  # An extra sample reruns only the decoder: cheaper than a full sample.
  assert 0 < s["extra_sample_flops"] < s["sample_flops_per_image"]
  assert s["train_step_flops"] > 32 * s["sample_flops_per_image"]


def test_summary_command_prints_json():
  out = subprocess.run(
      [sys.executable, "-m", "hpunet.model_summary", "--json"], cwd=_REPO,
      capture_output=True, text=True, check=True, timeout=300)
  s = json.loads(out.stdout.strip().splitlines()[-1])
  assert s["params"]["total"] == sum(
      v for k, v in s["params"].items() if k != "total")
  assert np.isfinite(s["train_step_flops"])
