# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
r"""Regenerates every run, evaluation, table and figure of the README's
"Results on the synthetic benchmark" section.

  python experiments/synthetic_results.py [--root=/tmp/hpunet/experiments] \
      [--stages=train,eval,oracle,diagnose,global_code,table] \
      [--only=hpunet,spunet]

Stages (each skips what is already done, so the script can be re-run after an
interruption; training resumes from its last checkpoint):

- train: `python -m hpunet.train` for every (experiment, seed) in `RUNS`,
  one after the other (a 2-core CPU has no room for two), into
  `<root>/<experiment>/seed<k>`; the wall time goes to `<run>/wall_time.json`.
- eval: `python -m hpunet.evaluate --split=test --num_samples=16` over the
  seeds of each experiment into `experiments/results/<experiment>/`
  (results.json, results.md, per-run folders run<k>/ with figures) and the
  runs' training wall times into `runs.json` there.
- oracle: the reference rows (`experiments/synthetic_diagnosis.oracle`):
  samples drawn from the true mode distribution, 16 and 256 per image,
  through the same metric code (GED^2 also of the first 1, 4, 8 of the 16,
  as for the models), into `experiments/results/oracle/`.
- diagnose: for the experiments in `DIAGNOSED`, every seed: what the prior
  samples per factor, per-level sampling, the composition of the top-2%
  cross-entropy, the mode-frequency TV with 256 samples per image, and the
  training trajectories (lambda, KL per level, top-k CE) from metrics.jsonl,
  into `experiments/results/<experiment>/diagnosis.json`.
- global_code: `experiments/global_code.py`, what a perfect global code
  buys the HPU-Net's decoder, against the beta = 10 runs (with and without
  the skips, coarse level first, residual posterior), into
  `experiments/results/global_code/`.
- table: `experiments/results/table.md` and the README section between the
  `synthetic-results` markers.

Committed results name the runs' workdirs relative to `--root`, so they hold
no machine paths.

Total cost on an idle 2-core CPU: about 19 hours of training (61 runs: 23
at 64x64 of 6-13 minutes, the 4-member ensemble about 15, the 3x-steps one
25; 38 at 128x128 of 14-35 minutes), about an hour of evaluation, 8
minutes for the two oracles, 5-30 minutes per diagnosed run (the 128x128
one the longest) and about 2 hours for global_code.
"""

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # this checkout's hpunet, also when not installed
RESULTS = os.path.join(REPO, "experiments", "results")
ORACLE = "oracle"  # experiments/results/oracle/
# The 128x128 experiments get their own table and reference row (their
# masks, and so GED^2, differ from the 64x64 ones).
S128_RUNS = ("s128", "s128_level_dropout", "s128_level_dropout_z4",
             "s128_level_dropout_z4_decay", "s128_kappa", "s128_elbo",
             "s128_kappa_dropout_decay", "s128_elbo_b3", "s128_elbo_b10",
             "s128_elbo_b30", "s128_spunet", "s128_skips",
             "s128_elbo_b10_skips", "s128_coarse_first", "s128_visible_b10",
             "s128_residual", "s128_residual_floor", "s128_coarse_first_floor",
             "s128_scale_price", "s128_scale_price_z4", "s128_max_pool",
             "s128_max_pool_fine_price", "s128_spunet_max_pool")
ORACLES = {ORACLE: "hpunet", "oracle_s128": "s128"}  # dir -> its dataset's run
ORACLE_SAMPLES = (16, 256)
TV_SAMPLES = 256  # the "many samples per image" mode-frequency TV
MODEL_SAMPLES = 16  # samples per image of every model's evaluation

# The coarse-first recipe (round 7), the base of rounds 9 and 10: ELBO with
# beta = 10, global latent skips, a 4-d 1x1 latent, level dropout 0.99 until
# step 400, decayed to 0 at step 1000.
_COARSE_FIRST = ("--config.loss.type=elbo",
                 "--config.loss.beta=10.0",
                 "--config.model.global_latent_skips=True",
                 "--config.model.latent_dims=(4,1,1,1)",
                 "--config.model.level_dropout_rate=0.99",
                 "--config.loss.level_dropout_decay_steps=(400,1000)")
# Round 12's recipe (s128_max_pool), the base of round 13's variant.
_MAX_POOL = ("--config.loss.type=elbo",
             "--config.loss.beta=10.0",
             "--config.model.global_latent_skips=True",
             "--config.model.posterior_pooling=max")

# experiment -> (config name, seeds, label, what it stands for[,
#   --config.x=y overrides])
RUNS = {
    "hpunet": ("synthetic", (0, 1, 2), "HPU-Net",
               "GECO + top-k, scalar latents on 1x1, 2x2, 4x4, 8x8"),
    "spunet": ("synthetic_spunet", (0, 1, 2), "sPU-Net",
               "ELBO beta = 1, 6-d global latent"),
    "global": ("synthetic_global_latents", (0,), "HPU-Net, global latents only",
               "85 latents at 1x1, kappa 0.15 (Table 2 row 3)"),
    "local": ("synthetic_local_latents", (0,), "HPU-Net, local latents only",
              "only the 8x8 level (Table 2)"),
    "no_topk": ("synthetic_no_topk", (0,), "HPU-Net, no top-k",
                "CE over all pixels (Table 2 row 4)"),
    "hpunet_long": ("synthetic:long", (0,), "HPU-Net, 3x steps",
                    "6000 steps instead of 2000"),
    # kappa near the top-2% CE per pixel that the default run reaches (~0.44
    # from step 500 on), so that GECO's constraint can be met in the budget.
    "kappa_0.4": ("synthetic", (0,), "HPU-Net, κ = 0.4",
                  "GECO target 0.4 nats per top-k pixel instead of 0.05",
                  ("--config.loss.kappa=0.4",)),
    # Remedies for the collapsed coarse levels (hpunet/objectives.py):
    # NVAE's KL warm-up and balancing, alone and with a GECO target above
    # the measured top-2% floor (the diagnosis tables).
    "kl_balance": ("synthetic", (0,), "HPU-Net, KL warm-up + balancing",
                   "KL weight ramped over 1000 steps, NVAE KL balancing",
                   ("--config.loss.kl_warmup_steps=1000",
                    "--config.loss.kl_balancing=True")),
    "kl_balance_kappa": ("synthetic", (0,),
                         "HPU-Net, warm-up + balancing, κ = 0.5",
                         "as kl_balance, GECO target 0.5 nats per top-k "
                         "pixel (above the floor)",
                         ("--config.loss.kl_warmup_steps=1000",
                          "--config.loss.kl_balancing=True",
                          "--config.loss.kappa=0.5")),
    # The sPU-Net baseline's remedy for posterior collapse.
    "spunet_warmup": ("synthetic_spunet", (0,), "sPU-Net, KL warm-up",
                      "ELBO with the KL weight ramped over 1000 steps",
                      ("--config.loss.kl_warmup_steps=1000",)),
    # Larger images: the faint spots at twice the radius (README: does the
    # image resolution decide where the spots are coded?).
    "s128": ("synthetic:s128", (0,), "HPU-Net, 128x128",
             "synthetic/s128, batch 8, one more scale"),
    # The sPU-Net paper's objective for the HPU-Net: every nat of KL must buy
    # a nat of cross-entropy (summed over all pixels), instead of GECO's
    # ever-rising multiplier on the top-2% pixels.
    "elbo": ("synthetic_no_topk", (0,), "HPU-Net, ELBO",
             "ELBO beta = 1, CE over all pixels",
             ("--config.loss.type=elbo", "--config.loss.beta=1.0")),
    # Latent level dropout (model.py): half of the examples decode the
    # prior means at the 2x2, 4x4 and 8x8 levels, so their reconstruction
    # rests on the 1x1 level.
    "s128_level_dropout": ("synthetic:s128", (0,),
                           "HPU-Net, 128x128, level dropout",
                           "as s128, with level dropout 0.5",
                           ("--config.model.level_dropout_rate=0.5",)),
    "s128_level_dropout_z4": ("synthetic:s128", (0, 1, 2),
                              "HPU-Net, 128x128, level dropout, 4-d 1x1",
                              "as s128_level_dropout, 4 latents on the 1x1 "
                              "grid",
                              ("--config.model.level_dropout_rate=0.5",
                               "--config.model.latent_dims=(4,1,1,1)")),
    # Round 5: as s128_level_dropout_z4, the rate decayed to 0 over steps
    # 500-1500, so the last 500 steps train every example through the full
    # posterior (the fine priors then see what sampling decodes).
    "s128_level_dropout_z4_decay": (
        "synthetic:s128", (0,),
        "HPU-Net, 128x128, decayed level dropout, 4-d 1x1",
        "as s128_level_dropout_z4, the rate 0.5 decayed to 0 over steps "
        "500-1500",
        ("--config.model.level_dropout_rate=0.5",
         "--config.model.latent_dims=(4,1,1,1)",
         "--config.loss.level_dropout_decay_steps=(500,1500)")),
    # Round 6: the KL's weight at 128x128. With kappa = 0.05 the constraint
    # is never met, lambda rises through the run and the KL stops mattering,
    # so the code with the most information (the spots' locations, in the
    # 8x8 cells) wins over the cheapest one (one image-wide bit). kappa =
    # 0.35 is met from about step 900 (the top-2% CE of `s128` falls from
    # 0.44 to 0.27) but not by a model that hedges the spots (about 0.41:
    # their ~96 pixels at 0.69 nats join the top 2%); the ELBO weighs every
    # nat of KL against every nat of CE from the start.
    "s128_kappa": ("synthetic:s128", (0, 1, 2), "HPU-Net, 128x128, κ = 0.35",
                   "as s128, kappa 0.35 (met from ~step 900)",
                   ("--config.loss.kappa=0.35",)),
    "s128_elbo": ("synthetic_no_topk:s128", (0,), "HPU-Net, 128x128, ELBO",
                  "as elbo, at 128x128",
                  ("--config.loss.type=elbo", "--config.loss.beta=1.0")),
    # beta > 1 (beta-VAE): a factor's code costs beta * ~1 nat while hedging
    # it costs ~50-70 nats of CE (the spots' ~96 pixels, a blob's ~80, a
    # thick ring's band at 0.5-0.7 nats each), so every factor stays coded;
    # what beta prices out is the difference between one image-wide spot
    # bit (~0.7 nats) and the spots spelled out in three 8x8 cells (~5
    # nats), and the label-edge detail the 8x8 cells memorise.
    "s128_elbo_b3": ("synthetic_no_topk:s128", (0,),
                     "HPU-Net, 128x128, ELBO β = 3", "as s128_elbo, beta 3",
                     ("--config.loss.type=elbo", "--config.loss.beta=3.0")),
    "s128_elbo_b10": ("synthetic_no_topk:s128", (0, 1, 2),
                      "HPU-Net, 128x128, ELBO β = 10", "as s128_elbo, beta 10",
                      ("--config.loss.type=elbo", "--config.loss.beta=10.0")),
    "s128_elbo_b30": ("synthetic_no_topk:s128", (0,),
                      "HPU-Net, 128x128, ELBO β = 30", "as s128_elbo, beta 30",
                      ("--config.loss.type=elbo", "--config.loss.beta=30.0")),
    # Level dropout teaches the decoder to read the 1x1 level; once it is
    # decayed, kappa = 0.35 keeps a price on the KL, so the cheaper global
    # code need not give way to the 8x8 cells as it did in round 5.
    "s128_kappa_dropout_decay": (
        "synthetic:s128", (0,),
        "HPU-Net, 128x128, κ = 0.35, decayed level dropout, 4-d 1x1",
        "as s128_level_dropout_z4_decay, kappa 0.35",
        ("--config.model.level_dropout_rate=0.5",
         "--config.model.latent_dims=(4,1,1,1)",
         "--config.loss.level_dropout_decay_steps=(500,1500)",
         "--config.loss.kappa=0.35")),
    # Round 7: the sPU-Net at 128x128, so that the 128x128 HPU-Net rows
    # have a baseline trained on the same data (its 64x64 run cannot see
    # the spots: recall 0.11).
    "s128_spunet": ("synthetic_spunet:s128", (0, 1, 2), "sPU-Net, 128x128",
                    "as spunet, on synthetic/s128 with batch 8"),
    # The 1x1 latent also at every finer decoder scale
    # (`model.global_latent_skips`): round 6 found the decoder never reads
    # the 1x1 level (it enters seven resolution steps from the logits) while
    # the 8x8 cells spell the spots out; with the skips one global latent can
    # draw them where they are seen. With GECO as in the paper configs, and
    # with the best-calibrated objective (ELBO, beta 10).
    "s128_skips": ("synthetic:s128", (0,),
                   "HPU-Net, 128x128, global latent skips",
                   "as s128, the 1x1 latent at every finer scale",
                   ("--config.model.global_latent_skips=True",)),
    "s128_elbo_b10_skips": ("synthetic_no_topk:s128", (0, 1, 2),
                            "HPU-Net, 128x128, ELBO β = 10, global latent "
                            "skips",
                            "as s128_elbo_b10, the 1x1 latent at every finer "
                            "scale",
                            ("--config.loss.type=elbo",
                             "--config.loss.beta=10.0",
                             "--config.model.global_latent_skips=True")),
    # The skips alone do not keep the 1x1 level (it carries 0.2-1.8 nats at
    # step 50 and loses them to the 8x8 cells by step 250): the fine codes
    # form first. Coarse first: until step 400 almost every example decodes
    # the 1x1 posterior sample alone (the finer levels at their prior
    # mean), with room for several factors (4 latents), then the rate decays
    # to 0 at step 1000; with beta = 10 the cheaper global code no longer
    # needs to give way once the fine levels open.
    "s128_coarse_first": ("synthetic_no_topk:s128", (0, 1, 2),
                          "HPU-Net, 128x128, ELBO β = 10, global latent "
                          "skips, coarse level first, 4-d 1x1",
                          "as s128_elbo_b10_skips, 4 latents on the 1x1 grid, "
                          "level dropout 0.99 until step 400, decayed to 0 "
                          "at step 1000",
                          _COARSE_FIRST),
    # Round 9: the coarse code formed first (s128_coarse_first) is taken over
    # by the fine cells once they open, although the objective prefers it
    # (experiments/global_code.py). The same recipe with the finer levels'
    # posterior seeing only what the 1x1 level leaves unexplained. Seed 0
    # diverged (NaN at step 290; README round 9), so seeds 1-3.
    "s128_residual": ("synthetic_no_topk:s128", (1, 2, 3),
                      "HPU-Net, 128x128, ELBO β = 10, global latent skips, "
                      "coarse level first, 4-d 1x1, residual posterior",
                      "as s128_coarse_first, levels 1-3 of the posterior see "
                      "the annotation only where the reconstruction from the "
                      "1x1 latent is wrong",
                      _COARSE_FIRST + (
                          "--config.model.residual_posterior_from=1",)),
    # Round 10: in s128_residual the reconstruction from the 1x1 latent,
    # which decides what the finer posterior sees, drifts once the level
    # dropout has decayed: the decoder stops being trained to draw the spots
    # from the 1x1 level alone. The same recipe with a fifth of the rate
    # kept to the end.
    "s128_residual_floor": ("synthetic_no_topk:s128", (1, 2, 3),
                            "HPU-Net, 128x128, ELBO β = 10, global latent "
                            "skips, coarse level first, 4-d 1x1, residual "
                            "posterior, level dropout floor",
                            "as s128_residual, the level dropout rate decays "
                            "to 0.2 x 0.99 instead of 0 and stays there",
                            _COARSE_FIRST + (
                                "--config.loss.level_dropout_final_scale=0.2",
                                "--config.model.residual_posterior_from=1")),
    # Round 10's control: the floor without the residual posterior (one
    # seed, the budget of the session).
    "s128_coarse_first_floor": ("synthetic_no_topk:s128", (1,),
                                "HPU-Net, 128x128, ELBO β = 10, global "
                                "latent skips, coarse level first, 4-d 1x1, "
                                "level dropout floor",
                                "as s128_residual_floor without the residual "
                                "posterior",
                                _COARSE_FIRST + (
                                    "--config.loss.level_dropout_final_scale="
                                    "0.2",)),
    # Round 11: every remedy so far priced a nat the same on every level,
    # so an image-wide bit spelled out in three 8x8 cells (the spots) was
    # cheaper to keep than to move once found. A price per nat that doubles
    # with each finer level (kl_level_weights, coarse -> fine): at beta =
    # 10 the spots cost ~7 nats on the 1x1 level, ~41 in three 2x2 cells,
    # ~83 in three 4x4 cells and ~166 in three 8x8 cells, against ~73 nats
    # of CE when they are hedged, so only the two coarsest levels can afford
    # them. Otherwise s128_elbo_b10_skips (faithful scalar latents).
    "s128_scale_price": ("synthetic_no_topk:s128", (0, 1, 2),
                         "HPU-Net, 128x128, ELBO β = 10, global latent "
                         "skips, KL price 1/2/4/8 by level",
                         "as s128_elbo_b10_skips, the KL of the 1x1, 2x2, "
                         "4x4 and 8x8 levels weighted 1, 2, 4, 8",
                         ("--config.loss.type=elbo",
                          "--config.loss.beta=10.0",
                          "--config.model.global_latent_skips=True",
                          "--config.loss.kl_level_weights=(1.0,2.0,4.0,8.0)")),
    # Round 11's second row: in s128_scale_price the 2x2 cells, not the
    # scalar 1x1 latent, take what leaves the fine levels. The same price
    # with room for several factors on the 1x1 grid (4 latents), one seed.
    "s128_scale_price_z4": ("synthetic_no_topk:s128", (0,),
                            "HPU-Net, 128x128, ELBO β = 10, global latent "
                            "skips, KL price 1/2/4/8 by level, 4-d 1x1",
                            "as s128_scale_price, 4 latents on the 1x1 grid",
                            ("--config.loss.type=elbo",
                             "--config.loss.beta=10.0",
                             "--config.model.global_latent_skips=True",
                             "--config.model.latent_dims=(4,1,1,1)",
                             "--config.loss.kl_level_weights="
                             "(1.0,2.0,4.0,8.0)")),
    # Round 12: the posterior's 1x1 level reads the annotation through seven
    # 2x2 average poolings, so the spots (0.6 % of the pixels) reach it
    # diluted: trained only to read the spot bit there, the faithful
    # posterior stays at chance for 300-400+ steps, a max-pooling one reads
    # it by step 50 (experiments/posterior_probe.py), while the 8x8 cells
    # see the spots at once. s128_elbo_b10_skips with a max-pooling
    # posterior.
    "s128_max_pool": ("synthetic_no_topk:s128", (0, 1, 2),
                      "HPU-Net, 128x128, ELBO β = 10, global latent skips, "
                      "max-pooling posterior",
                      "as s128_elbo_b10_skips, the posterior's encoder "
                      "halves the resolution by 2x2 max pooling",
                      _MAX_POOL),
    # Round 13: in s128_max_pool the spots are on the 1x1 level in every
    # seed, but the 8x8 cells keep a second copy (seed 2: 0.80 of the spot
    # variance from that level alone, ~20 nats of objective). The copy is
    # redundant KL; the 8x8 level's nats priced twice (beta 20 there) to
    # make dropping it pay. Rings (~0.7 nats, 90 nats of CE hedged) stay
    # affordable at that price; beta = 30 everywhere lost them (round 6).
    # Result (one seed, the one with the copy): the 8x8 level empties, but
    # everything, the spots included, moves to the 4x4 cells and the 1x1
    # level stays empty (README round 13).
    "s128_max_pool_fine_price": ("synthetic_no_topk:s128", (2,),
                                 "HPU-Net, 128x128, ELBO β = 10, global "
                                 "latent skips, max-pooling posterior, KL "
                                 "price 1/1/1/2 by level",
                                 "as s128_max_pool, the KL of the 8x8 level "
                                 "weighted 2",
                                 _MAX_POOL + (
                                     "--config.loss.kl_level_weights="
                                     "(1.0,1.0,1.0,2.0)",)),
    # Round 13's baseline: the sPU-Net with what made the HPU-Net's global
    # code work (ELBO beta = 10, a max-pooling posterior), so that the
    # comparison gives both models the same remedy. Its posterior averages
    # the 8x8 map of its last block (the spots: 3 of 64 cells). Result:
    # GED^2 0.085 against 0.093, spot recall unchanged (README round 13).
    "s128_spunet_max_pool": ("synthetic_spunet:s128", (0, 1, 2),
                             "sPU-Net, 128x128, ELBO β = 10, max-pooling "
                             "posterior",
                             "as s128_spunet, beta 10, the posterior's "
                             "encoder with 2x2 max pooling and a global max",
                             ("--config.loss.beta=10.0",
                              "--config.model.posterior_pooling=max")),
    "level_dropout": ("synthetic", (0,), "HPU-Net, level dropout",
                      "levels 1-3 at the prior mean for half of the examples",
                      ("--config.model.level_dropout_rate=0.5",)),
    "level_dropout_z4": ("synthetic", (0,),
                         "HPU-Net, level dropout, 4-d 1x1 latent",
                         "as level_dropout, 4 latents on the 1x1 grid",
                         ("--config.model.level_dropout_rate=0.5",
                          "--config.model.latent_dims=(4,1,1,1)")),
    "level_dropout_from2": ("synthetic", (0,),
                            "HPU-Net, level dropout from 4x4",
                            "as level_dropout, 1x1 and 2x2 always from the "
                            "posterior",
                            ("--config.model.level_dropout_rate=0.5",
                             "--config.model.level_dropout_from=2")),
    "elbo_level_dropout": ("synthetic_no_topk", (0,),
                           "HPU-Net, ELBO + level dropout",
                           "as elbo, with level dropout 0.5",
                           ("--config.loss.type=elbo", "--config.loss.beta=1.0",
                            "--config.model.level_dropout_rate=0.5")),
    # The sPU-Net paper's baselines (section 3, Fig. 4/5), same data and
    # schedule as `spunet`; 16 members / heads = the 16 samples evaluated.
    "dropout_unet": ("synthetic_dropout_unet", (0,), "Dropout U-Net",
                     "p = 0.5 on the 3 inner-most blocks, also at sampling"),
    "mheads": ("synthetic_mheads", (0,), "M-Heads (M = 16)",
               "16 heads, best head 1 - ε, ε = 0.05"),
    "i2i_vae": ("synthetic_i2i_vae", (0,), "Image2Image VAE",
                "fixed N(0, I) prior, latents at the encoder's input"),
    # M = 4, not 16: 16 members cost 16 U-Nets per step (about an hour per
    # run on 2 cores); at 8 and 16 samples the 4 members repeat.
    "ensemble": ("synthetic_ensemble:m4", (0,), "U-Net Ensemble (M = 4)",
                 "4 independently initialised U-Nets, one step"),
    # Round 8, a control experiment: the same examples and annotations with
    # the spots three times brighter (+0.30), so the decoder can find them
    # in the image. Does the fine-cell spot code carry their locations?
    "s128_visible_b10": ("synthetic_no_topk:s128", (0,),
                         "HPU-Net, 128x128, ELBO β = 10, spots at +0.30",
                         "as s128_elbo_b10, on synthetic/s128_visible",
                         ("--config.input.dataset=synthetic/s128_visible",
                          "--config.loss.type=elbo",
                          "--config.loss.beta=10.0")),
}
# The sPU-Net paper's comparison (its Fig. 4 / 5) on this benchmark: these
# models, in this order, in their own table (not in the main one).
BASELINES = ("dropout_unet", "ensemble", "mheads", "i2i_vae")
COMPARISON = ("hpunet", "spunet") + BASELINES
GED_COUNTS = (1, 4, 8, 16)
# Experiments whose committed evaluation predates GED^2 at 1/4/8 samples:
# their seed 0 is evaluated again into <experiment>/seed0_curve/ for the
# comparison (their other seeds' runs are not kept).
CURVE_SEED0 = ("hpunet",)
# Training order: one seed of everything first, so an interrupted
# regeneration still covers every row.
# Experiment -> the seeds that get `diagnose` (the others: main table only).
DIAGNOSED = {"hpunet": (0,), "kl_balance": (0,), "kl_balance_kappa": (0,),
             "spunet_warmup": (0,), "s128": (0,), "elbo": (0,),
             "level_dropout": (0,), "elbo_level_dropout": (0,),
             "s128_max_pool": (0,)}
ORDER = ([(name, RUNS[name][1][0]) for name in RUNS] +
         [(name, s) for name in RUNS for s in RUNS[name][1][1:]])


def run_dir(root: str, name: str, seed: int) -> str:
  return os.path.join(root, name, f"seed{seed}")


def overrides(name: str) -> tuple[str, ...]:
  """`--config.x=y` flags of an experiment (train and evaluate)."""
  return tuple(RUNS[name][4]) if len(RUNS[name]) > 4 else ()


def config_file(name: str) -> str:
  """configs/<file>.py[:variant] of an experiment."""
  base, _, variant = RUNS[name][0].partition(":")
  return os.path.join("configs", base + ".py") + (
      f":{variant}" if variant else "")


def _run(cmd: list[str], log_path: str) -> float:
  """Runs `cmd` in the repo with its output in `log_path`; wall seconds."""
  os.makedirs(os.path.dirname(log_path), exist_ok=True)
  print("+", " ".join(cmd), flush=True)
  start = time.time()
  with open(log_path, "a", encoding="utf-8") as log:
    proc = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                          check=False)
  if proc.returncode:
    raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}); "
                       f"see {log_path}.")
  return time.time() - start


def train(root: str, only, seeds=None) -> None:
  """Trains the missing runs of `only` (all if empty); `seeds`: only those
  seeds (None: all), so that several processes can share the seeds."""
  for name, seed in ORDER:
    if (only and name not in only) or (seeds is not None and
                                       seed not in seeds):
      continue
    workdir = run_dir(root, name, seed)
    timing = os.path.join(workdir, "wall_time.json")
    if os.path.exists(timing):
      print(f"{workdir}: done", flush=True)
      continue
    seconds = _run([sys.executable, "-m", "hpunet.train",
                    f"--config={config_file(name)}", f"--workdir={workdir}",
                    f"--config.seed={seed}", *overrides(name)],
                   os.path.join(workdir, "train.log"))
    with open(timing, "w", encoding="utf-8") as f:
      json.dump({"seconds": seconds, "config": config_file(name),
                 "seed": seed}, f)
    print(f"{workdir}: {seconds / 60:.1f} min", flush=True)


def final_train_metrics(workdir: str) -> dict:
  """The last logged KL per latent level (coarse -> fine) and GECO lambda
  (no levels and None for models without latents or GECO)."""
  from hpunet import summary_writer  # pylint: disable=g-import-not-at-top
  records = [r for r in summary_writer.read_jsonl(
      os.path.join(workdir, "metrics.jsonl"))
             if any(k.startswith("train/") for k in r)]
  if not records:
    raise ValueError(f"{workdir}/metrics.jsonl has no training record.")
  last = records[-1]
  levels = sorted(int(k[len("train/kl_"):]) for k in last
                  if k.startswith("train/kl_") and k[len("train/kl_"):].isdigit())
  return {"step": last["step"],
          "kl_per_level": [last[f"train/kl_{i}"] for i in levels],
          "lagmul": last.get("train/lagmul")}


def _evaluated(out_dir: str, workdirs, steps, root: str) -> bool:
  """results.json exists for these workdirs at these (final) steps."""
  path = os.path.join(out_dir, "results.json")
  if not os.path.exists(path):
    return False
  with open(path, encoding="utf-8") as f:
    done = json.load(f)
  names = ",".join(os.path.relpath(w, root) for w in workdirs)
  return done["workdirs"] == names and done["steps"] == steps


def relative_workdirs(out_dir: str, root: str) -> None:
  """Names the workdirs in the JSON files under `out_dir` relative to `root`
  (`hpunet/seed0`), so committed results hold no machine paths."""
  prefix = os.path.abspath(root).rstrip("/") + "/"
  for folder, _, files in os.walk(out_dir):
    for name in files:
      if name.endswith(".json"):
        path = os.path.join(folder, name)
        with open(path, encoding="utf-8") as f:
          text = f.read()
        if prefix in text:
          with open(path, "w", encoding="utf-8") as f:
            f.write(text.replace(prefix, ""))


def load_config(name: str):
  """The config of an experiment with its `--config.x=y` overrides."""
  from hpunet import config_lib  # pylint: disable=g-import-not-at-top
  base, _, variant = RUNS[name][0].partition(":")
  config = config_lib.load_config(base, variant or None)
  for flag in overrides(name):
    path, value = flag[len("--config."):].split("=", 1)
    *parents, key = path.split(".")
    node = config
    for parent in parents:
      node = node[parent]
    try:
      node[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      node[key] = value
  return config


def _evaluate_into(name: str, workdirs, out_dir: str, root: str,
                   log_name: str) -> None:
  """`hpunet.evaluate` of `name`'s workdirs (16 samples per test image)
  into `out_dir`, its JSON then naming the workdirs relative to `root`.
  The figures of an earlier evaluation go first: one seed writes
  `figures/`, several write `run<k>/`, and neither may outlive its JSON."""
  for old in ["figures"] + [d for d in (os.listdir(out_dir) if
                                        os.path.isdir(out_dir) else ())
                            if re.fullmatch(r"run\d+", d)]:
    shutil.rmtree(os.path.join(out_dir, old), ignore_errors=True)
  _run([sys.executable, "-m", "hpunet.evaluate",
        f"--config={config_file(name)}", *overrides(name),
        "--workdir=" + ",".join(workdirs), "--split=test",
        f"--num_samples={MODEL_SAMPLES}", f"--out_dir={out_dir}"],
       os.path.join(root, name, log_name))
  relative_workdirs(out_dir, root)


def evaluate(root: str, only) -> None:
  for name, (_, seeds, *_) in RUNS.items():
    if only and name not in only:
      continue
    workdirs = [run_dir(root, name, s) for s in seeds]
    missing = [w for w in workdirs
               if not os.path.exists(os.path.join(w, "wall_time.json"))]
    if missing:
      raise FileNotFoundError(f"{name}: unfinished runs {missing}; run the "
                              "train stage first.")
    out_dir = os.path.join(RESULTS, name)
    runs = []
    for workdir in workdirs:
      with open(os.path.join(workdir, "wall_time.json"), encoding="utf-8") as f:
        runs.append(dict(json.load(f), workdir=os.path.relpath(workdir, root),
                         **final_train_metrics(workdir)))
    if _evaluated(out_dir, workdirs, [r["step"] for r in runs], root):
      print(f"{out_dir}: evaluated", flush=True)
    else:
      _evaluate_into(name, workdirs, out_dir, root, "eval.log")
    with open(os.path.join(out_dir, "runs.json"), "w", encoding="utf-8") as f:
      json.dump(runs, f, indent=2)


def evaluate_curves(root: str, only) -> None:
  """Seed 0 of the CURVE_SEED0 experiments at 1/4/8/16 samples."""
  for name in CURVE_SEED0:
    if only and name not in only:
      continue
    out_dir = os.path.join(RESULTS, name, "seed0_curve")
    if os.path.exists(os.path.join(out_dir, "results.json")):
      print(f"{out_dir}: evaluated", flush=True)
      continue
    _evaluate_into(name, [run_dir(root, name, 0)], out_dir, root,
                   "eval_curve.log")


def _bootstrap_table(per_image: dict) -> dict:
  from hpunet import metrics  # pylint: disable=g-import-not-at-top
  table = {}
  for key, values in per_image.items():
    b = metrics.bootstrap(values)
    table[key] = {"mean": b.mean, "std": b.std, "num_images": b.num_images}
  return table


def oracle() -> None:
  """The reference rows: samples from the true modes (module docstring),
  for the 64x64 and the 128x128 test sets."""
  for out_name, experiment in ORACLES.items():
    _oracle(out_name, experiment)


def _oracle(out_name: str, experiment: str) -> None:
  import synthetic_diagnosis  # pylint: disable=g-import-not-at-top
  out_dir = os.path.join(RESULTS, out_name)
  path = os.path.join(out_dir, "results.json")
  result = _load_json(out_name, "results.json")
  # The models' sample count also gets GED^2 of its first 1, 4, 8 draws.
  counts = lambda n: GED_COUNTS if n == MODEL_SAMPLES else ()
  done = lambda n: result is not None and all(  # pylint: disable=g-long-lambda
      f"ged_modes_n{c}" in result["by_num_samples"].get(str(n), {}).get(
          "table", {}) for c in counts(n))
  todo = [n for n in ORACLE_SAMPLES if not done(n)]
  if not todo:
    print(f"{path}: done", flush=True)
    return
  config = load_config(experiment)
  if result is None:
    result = {"split": "test", "dataset": config.input.dataset,
              "by_num_samples": {}}
  for n in todo:  # each count from its own seed-0 draws
    r = synthetic_diagnosis.oracle(
        config, n, seed=0, ged_sample_counts=counts(n))
    result["by_num_samples"][str(n)] = {
        "table": _bootstrap_table(r["per_image"]),
        "pooled_mode_tv": r["pooled_mode_tv"],
        "num_images": len(r["per_image"]["ged"])}
  os.makedirs(out_dir, exist_ok=True)
  result["by_num_samples"] = dict(sorted(
      result["by_num_samples"].items(), key=lambda kv: int(kv[0])))
  with open(path, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=1)


def trajectory(workdir: str, steps=(250, 500, 1000, 1500, 2000)) -> dict:
  """lambda, KL per level and the top-k CE per pixel at `steps` (the logged
  step nearest to each), from a run's metrics.jsonl."""
  from hpunet import summary_writer  # pylint: disable=g-import-not-at-top
  records = [r for r in summary_writer.read_jsonl(
      os.path.join(workdir, "metrics.jsonl")) if "train/kl_sum" in r]
  out = []
  for step in steps:
    r = min(records, key=lambda r: abs(r["step"] - step))
    kls = sorted((int(k[len("train/kl_"):]), v) for k, v in r.items()
                 if k.startswith("train/kl_") and k[len("train/kl_"):].isdigit())
    out.append({"step": r["step"], "lagmul": r.get("train/lagmul"),
                "kl_per_level": [v for _, v in kls],
                "rec_per_pixel": r.get("train/rec_loss_mean")})
  return out


def diagnose(root: str, only) -> None:
  """diagnosis.json of the experiments in `DIAGNOSED` (module docstring)."""
  import synthetic_diagnosis  # pylint: disable=g-import-not-at-top
  for name in DIAGNOSED:
    if only and name not in only:
      continue
    path = os.path.join(RESULTS, name, "diagnosis.json")
    if os.path.exists(path):
      print(f"{path}: done", flush=True)
      continue
    config = load_config(name)
    runs = []
    for seed in DIAGNOSED[name]:
      workdir = run_dir(root, name, seed)
      print(f"diagnosing {workdir}", flush=True)
      runs.append({
          "seed": seed,
          "diagnosis": synthetic_diagnosis.diagnose(config, workdir),
          "mode_tv": synthetic_diagnosis.mode_tv(config, workdir, TV_SAMPLES),
          "trajectory": trajectory(workdir)})
    with open(path, "w", encoding="utf-8") as f:
      json.dump({"runs": runs}, f, indent=1)


# Table rows: (results.json key, label, better).
METRIC_ROWS = (
    ("rec_iou", "IoU_rec", "↑"),
    ("ged_modes", "GED² vs the 18 known modes", "↓"),
    ("ged", "GED² vs the 4 graders", "↓"),
    ("hm_iou", "Hungarian-matched IoU (4 graders)", "↑"),
    ("mode_tv", "Mode-frequency total variation (per image, 16 samples)", "↓"),
    ("rec_recall_spots", "Reconstruction recall, spots (global factor)", "↑"),
    ("rec_recall_blobs", "Reconstruction recall, ambiguous blobs", "↑"),
    ("rec_recall_rings", "Reconstruction recall, thick rings", "↑"),
    ("var_full_spots", "Variance ratio, spots (global factor)", "→ 1"),
    ("var_full_blobs", "Variance ratio, ambiguous blobs", "→ 1"),
    ("var_full_rings", "Variance ratio, thin/thick rings", "→ 1"),
    # The scale-separation targets (HPU-Net only; the others "–").
    ("var_only_most_global_spots",
     "Variance ratio, spots, only the most global level sampled", "≥ 0.6"),
    ("var_only_most_global_rings",
     "Variance ratio, rings, only the most global level sampled", "≤ 0.2"),
    ("var_only_most_local_rings",
     "Variance ratio, rings, only the most local level sampled", "≥ 0.5"),
    ("var_only_most_local_spots",
     "Variance ratio, spots, only the most local level sampled", "≤ 0.2"),
)
SCALE_MODES = (("full", "all levels"),
               ("only_most_global", "only the most global (1x1)"),
               ("only_most_local", "only the most local (8x8)"))
FACTORS = (("spots", "spots (global)"), ("blobs", "blobs (mid-scale)"),
           ("rings", "rings (local)"))


def _cell(table, key) -> str:
  if key not in table:
    return "–"
  return f"{table[key]['mean']:.3f} ± {table[key]['std']:.3f}"


def _levels(runs) -> str:
  """Mean over seeds of the final KL of each latent level, 'a / b / c'."""
  per_level = list(zip(*(r["kl_per_level"] for r in runs)))
  return " / ".join(f"{sum(v) / len(v):.2f}" for v in per_level)


def _pooled_tv(result) -> str:
  """Mode-frequency TV pooled over the test set, mean over seeds (seeds)."""
  tvs = [p["mode_frequencies"]["total_variation"]
         for p in result.get("pooled", []) if "mode_frequencies" in p]
  if not tvs:
    return "–"
  cell = f"{sum(tvs) / len(tvs):.3f}"
  return cell + (" (" + ", ".join(f"{t:.2f}" for t in tvs) + ")"
                 if len(tvs) > 1 else "")


def _tv_many(diagnosis, key) -> str:
  """Mode TV with TV_SAMPLES samples per image, mean over seeds (seeds)."""
  if not diagnosis:
    return "–"
  tvs = [r["mode_tv"][key] for r in diagnosis["runs"]]
  cell = f"{sum(tvs) / len(tvs):.3f}"
  return cell + (" (" + ", ".join(f"{t:.2f}" for t in tvs) + ")"
                 if len(tvs) > 1 else "")


ORACLE_LABEL = "Oracle (true modes)"


def markdown_tables(results, runs, oracle_result=None, diagnoses=None) -> str:
  """The README tables from `results[name]` (results.json), `runs[name]`
  (runs.json), the oracle's results.json and `diagnoses[name]`
  (diagnosis.json) of the experiments present."""
  diagnoses = diagnoses or {}
  names = [n for n in RUNS if n in results]
  cols = ([ORACLE_LABEL] if oracle_result else []) + [RUNS[n][2]
                                                       for n in names]
  lines = ["| metric | " + " | ".join(cols) + " |",
           "|---|" + "---|" * len(cols)]
  few = str(MODEL_SAMPLES)
  many = str(TV_SAMPLES)
  oracle_few = oracle_result["by_num_samples"][few] if oracle_result else None
  oracle_many = (oracle_result["by_num_samples"][many] if oracle_result
                 else None)

  def row(label, oracle_cell, cells):
    head = [oracle_cell] if oracle_result else []
    lines.append(f"| {label} | " + " | ".join(head + cells) + " |")

  for key, label, better in METRIC_ROWS:
    row(f"{label} {better}",
        "–" if key.startswith("rec_") or not oracle_result
        else _cell(oracle_few["table"], key),
        [_cell(results[n]["table"], key) for n in names])
  row(f"Mode-frequency total variation (pooled over the test set, {few} "
      "samples) ↓", f"{oracle_few['pooled_mode_tv']:.3f}" if oracle_result
      else "–", [_pooled_tv(results[n]) for n in names])
  row(f"Mode-frequency total variation (per image, {many} samples) ↓",
      _cell(oracle_many["table"], "mode_tv") if oracle_result else "–",
      [_tv_many(diagnoses.get(n), "mode_tv_per_image") for n in names])
  row(f"Mode-frequency total variation (pooled, {many} samples) ↓",
      f"{oracle_many['pooled_mode_tv']:.3f}" if oracle_result else "–",
      [_tv_many(diagnoses.get(n), "mode_tv_pooled") for n in names])
  extra = lambda label, cells: row(label, "–", cells)
  row("seeds × test images",
      f"{oracle_few['num_images']} images" if oracle_result else "–",
      [f"{results[n]['num_runs']} × {results[n]['num_images']}"
       for n in names])
  extra("KL per latent level at the end, coarse → fine (nats)",
        [_levels(runs[n]) for n in names])
  extra("GECO λ at the end", [
      "–" if runs[n][0].get("lagmul") is None else
      f"{sum(r['lagmul'] for r in runs[n]) / len(runs[n]):.2f}"
      for n in names])
  extra("train minutes per run (2-core CPU)", [
      f"{sum(r['seconds'] for r in runs[n]) / 60 / len(runs[n]):.1f}"
      for n in names])
  text = "\n".join(lines) + "\n"
  for name in (n for n in ("hpunet", "hpunet_long") if n in results):
    table = results[name]["table"]
    seeds = results[name].get("per_run_tables", [])
    lines = ["", f"Per-scale sampling, {RUNS[name][2]} (sampled / true "
             "per-pixel label variance inside each factor's pixels"
             + ("; in brackets each seed" if len(seeds) > 1 else "") + "):",
             "", "| latent levels sampled | " + " | ".join(
                 f for _, f in FACTORS) + " |",
             "|---|" + "---|" * len(FACTORS)]
    for mode, label in SCALE_MODES:
      cells = []
      for factor, _ in FACTORS:
        key = f"var_{mode}_{factor}"
        cell = _cell(table, key)
        if len(seeds) > 1 and all(key in t for t in seeds):
          cell += " (" + ", ".join(f"{t[key]['mean']:.2f}" for t in seeds) + ")"
        cells.append(cell)
      lines.append(f"| {label} | " + " | ".join(cells) + " |")
    text += "\n".join(lines) + "\n"
  return text + diagnosis_tables(diagnoses)


def _mean_over_runs(diagnosis, section, key):
  values = [r["diagnosis"][section][key] for r in diagnosis["runs"]]
  return sum(values) / len(values)


def diagnosis_tables(diagnoses) -> str:
  """The diagnosis tables of the experiments in `diagnoses` (means over
  their seeds; see experiments/synthetic_diagnosis.py)."""
  names = [n for n in RUNS if n in diagnoses]
  if not names:
    return ""
  head = "| | " + " | ".join(RUNS[n][2] for n in names) + " |"
  rule = "|---|" + "---|" * len(names)
  text = ["", "What the prior samples, per factor (16 samples per test image: "
          "the true P(foreground) inside the factor's pixels, the sampled "
          "P(foreground), and how often the argmax sample draws it):", "",
          head, rule]
  for factor, label in FACTORS:
    for key, what in (("p_true", "true P"), ("p_sampled", "sampled P"),
                      ("argmax_rate", "argmax rate")):
      text.append(f"| {label}: {what} | " + " | ".join(
          f"{_mean_over_runs(diagnoses[n], 'soft', f'{factor}/{key}'):.3f}"
          for n in names) + " |")
  hier = [n for n in names if any(
      k.startswith("only_level_")
      for k in diagnoses[n]["runs"][0]["diagnosis"]["per_level"])]
  if hier:
    text += ["", "Sampling one latent level at a time (the others at their "
             "prior mean): sampled / true label variance per factor, "
             "spots / blobs / rings:", "",
             "| level sampled | " + " | ".join(RUNS[n][2] for n in hier) + " |",
             "|---|" + "---|" * len(hier)]
    levels = sorted({k.split("/")[0] for n in hier
                     for k in diagnoses[n]["runs"][0]["diagnosis"]["per_level"]
                     if k.startswith("only_level_")})
    for level in ["full"] + levels:
      cells = []
      for n in hier:
        per = diagnoses[n]["runs"][0]["diagnosis"]["per_level"]
        if f"{level}/spots" not in per:
          cells.append("–")
          continue
        cells.append(" / ".join(
            f"{_mean_over_runs(diagnoses[n], 'per_level', f'{level}/{f}'):.2f}"
            for f, _ in FACTORS))
      label = "all" if level == "full" else level.replace("only_level_", "")
      text.append(f"| {label} | " + " | ".join(cells) + " |")
  coded = [n for n in hier if diagnoses[n]["runs"][0]["diagnosis"].get(
      "spot_codes")]
  if coded:
    text += ["", "Where the posterior puts the spots: for each test image its "
             "most likely mode without spots and the same mode with spots, "
             "posterior means at the latent cells that hold a spot, in prior "
             "standard deviations from the prior's mean (with spots / "
             "without):", "",
             "| level | " + " | ".join(RUNS[n][2] for n in coded) + " |",
             "|---|" + "---|" * len(coded)]
    levels = sorted({k.split("/")[0] for n in coded for k in
                     diagnoses[n]["runs"][0]["diagnosis"]["spot_codes"]})
    for level in levels:
      cells = []
      for n in coded:
        if f"{level}/on" not in diagnoses[n]["runs"][0]["diagnosis"][
            "spot_codes"]:
          cells.append("–")
          continue
        on = _mean_over_runs(diagnoses[n], "spot_codes", f"{level}/on")
        off = _mean_over_runs(diagnoses[n], "spot_codes", f"{level}/off")
        cells.append(f"{on:+.2f} / {off:+.2f}")
      text.append(f"| {level.replace('level_', '')} | " + " | ".join(cells)
                  + " |")
  text += ["", "The top-2% cross-entropy of the posterior reconstructions "
           "(latents drawn from the posterior, as in training; test split): "
           "which pixels it is made of:", "", head, rule]
  kinds = (("label_edges", "label-edge pixels"), ("spots", "spots"),
           ("rings", "rings"), ("blob_interiors", "blob interiors"),
           ("rest", "the rest"))

  def top_k(n, fn):
    values = [fn(r["diagnosis"]["top_k"]) for r in diagnoses[n]["runs"]]
    return sum(values) / len(values)

  for kind, label in kinds:
    text.append(f"| share of the top 2% (of all pixels): {label} | " + " | ".join(
        f"{top_k(n, lambda t: t['by_kind'][kind]['share_of_top_k']):.2f} "
        f"({top_k(n, lambda t: t['by_kind'][kind]['share_of_pixels']):.3f})"
        for n in names) + " |")
  for key, label in (("mean_ce_top_k", "mean CE of the top 2% (nats/px)"),
                     ("mean_ce_stochastic_top_k",
                      "mean CE of the stochastic top 2% (the training loss)"),
                     ("mean_ce_top_k_edges_only",
                      "… if every non-edge pixel were perfect"),
                     ("mean_ce_all", "mean CE of all pixels")):
    text.append(f"| {label} | " + " | ".join(
        f"{top_k(n, lambda t: t[key]):.3f}" for n in names) + " |")
  geco = [n for n in names
          if diagnoses[n]["runs"][0]["trajectory"][0]["lagmul"] is not None]
  if geco:
    text += ["", "Training trajectories (seed of the first run): GECO λ, KL "
             "per level coarse → fine (nats), top-k CE per pixel:", "",
             "| step | " + " | ".join(RUNS[n][2] for n in geco) + " |",
             "|---|" + "---|" * len(geco)]
    trajectories = [diagnoses[n]["runs"][0]["trajectory"] for n in geco]
    for points in zip(*trajectories):
      text.append(f"| {points[0]['step']} | " + " | ".join(
          f"λ {p['lagmul']:.2f}; KL "
          + " / ".join(f"{k:.2f}" for k in p["kl_per_level"])
          + f"; CE {p['rec_per_pixel']:.3f}" for p in points) + " |")
  return "\n".join(text) + "\n"


BEGIN = "<!-- synthetic-results:begin (experiments/synthetic_results.py) -->"
END = "<!-- synthetic-results:end -->"


def replace_between_markers(text: str, body: str) -> str:
  if text.count(BEGIN) != 1 or text.count(END) != 1:
    raise ValueError(f"README.md needs exactly one {BEGIN!r} and one "
                     f"{END!r} line.")
  head, rest = text.split(BEGIN)
  _, tail = rest.split(END)
  return head + BEGIN + "\n" + body + END + tail


def load_results(name: str) -> dict:
  """results.json of an experiment, plus `per_run_tables` (one table per
  seed, from run<k>/results.json) when it has several seeds."""
  with open(os.path.join(RESULTS, name, "results.json"),
            encoding="utf-8") as f:
    results = json.load(f)
  results["per_run_tables"] = []
  if results["num_runs"] > 1:
    for k in range(results["num_runs"]):
      with open(os.path.join(RESULTS, name, f"run{k}", "results.json"),
                encoding="utf-8") as f:
        results["per_run_tables"].append(json.load(f)["table"])
  return results


def _load_json(*parts):
  path = os.path.join(RESULTS, *parts)
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _curve(result) -> dict | None:
  """GED^2 vs the modes at GED_COUNTS samples {n: table cell}, or None."""
  if result is None or f"ged_modes_n{GED_COUNTS[0]}" not in result["table"]:
    return None
  return {n: result["table"][f"ged_modes_n{n}"] for n in GED_COUNTS}


def comparison_table(results, runs, oracle_result) -> str:
  """The sPU-Net paper's comparison: GED^2 vs the modes at 1/4/8/16
  samples (Fig. 4), mode frequencies (Fig. 5) and the per-factor variance
  of every COMPARISON model evaluated, under the oracle's reference row."""
  names = [n for n in COMPARISON if n in results]
  if not names:
    return ""
  head = ("| model | seeds × images | " +
          " | ".join(f"GED² modes, {n} sample{'s' * (n > 1)} ↓"
                     for n in GED_COUNTS) +
          " | Mode TV (pooled, 16) ↓ | spots / blobs / rings variance "
          "ratio (→ 1) | train minutes |")
  lines = [head, "|---|" + "---|" * (len(GED_COUNTS) + 4)]
  fmt = lambda c: f"{c['mean']:.3f}"
  if oracle_result:
    o16 = oracle_result["by_num_samples"][str(MODEL_SAMPLES)]
    curve = _curve(o16)
    cells = [fmt(curve[n]) if curve else "–" for n in GED_COUNTS]
    lines.append(
        f"| {ORACLE_LABEL} | {o16['num_images']} images | " +
        " | ".join(cells) + f" | {o16['pooled_mode_tv']:.3f} | " +
        " / ".join(fmt(o16["table"][f"var_full_{f}"]) for f, _ in FACTORS)
        + " | – |")
  for name in names:
    result = results[name]
    curve = _curve(result)
    seed0 = None
    if curve is None:  # evaluated before the 1/4/8 counts: seed 0 again
      seed0 = _curve(_load_json(name, "seed0_curve", "results.json"))
    cells = []
    for n in GED_COUNTS:
      if curve is not None:
        cells.append(fmt(curve[n]))
      elif n == 16:  # all seeds (the main table's row)
        cells.append(fmt(result["table"]["ged_modes"]) +
                     (f" (seed 0: {fmt(seed0[n])})" if seed0 else ""))
      else:
        cells.append(f"{fmt(seed0[n])} (seed 0)" if seed0 else "–")
    var = " / ".join(fmt(result["table"][f"var_full_{f}"])
                     if f"var_full_{f}" in result["table"] else "–"
                     for f, _ in FACTORS)
    minutes = (f"{sum(r['seconds'] for r in runs[name]) / 60 / len(runs[name]):.1f}"
               if runs.get(name) else "–")
    lines.append(f"| {RUNS[name][2]} | {result['num_runs']} × "
                 f"{result['num_images']} | " + " | ".join(cells) +
                 f" | {_pooled_tv(result)} | {var} | {minutes} |")
  return "\n".join(lines) + "\n"


def _results_dir(name: str, results) -> str:
  """The folder with `name`'s per-image GED^2 at 1/4/8/16 samples."""
  if _curve(results[name]) is None:
    return os.path.join(RESULTS, name, "seed0_curve")
  return os.path.join(RESULTS, name)


def wilcoxon_table(results) -> str:
  """The paper's significance test: the HPU-Net against every other
  comparison model, Wilcoxon signed-rank on per-image GED^2 against the
  modes at 16 samples (`hpunet.comparison`; an image's value is its mean
  over the seeds a folder holds)."""
  from hpunet import comparison  # pylint: disable=g-import-not-at-top
  if "hpunet" not in results:
    return ""
  a_dir = _results_dir("hpunet", results)
  if not os.path.exists(os.path.join(a_dir, "per_image.npz")):
    return ""
  a = comparison.load(a_dir)
  lines = ["| HPU-Net vs | HPU-Net | other | p (two-sided) | better |",
           "|---|---|---|---|---|"]
  for name in COMPARISON[1:]:
    if name not in results:
      continue
    b_dir = _results_dir(name, results)
    if not os.path.exists(os.path.join(b_dir, "per_image.npz")):
      continue
    rows = comparison.compare(a, comparison.load(b_dir),
                              names=("HPU-Net", RUNS[name][2]))
    row = next((r for r in rows if r["metric"] == "ged_modes" and
                r["num_samples"] == MODEL_SAMPLES), None)
    if row is None:
      continue
    lines.append(f"| {RUNS[name][2]} | {row['mean_a']:.3f} | "
                 f"{row['mean_b']:.3f} | {row['p_value']:.1e} | "
                 f"{row['better']} |")
  return "\n".join(lines) + "\n" if len(lines) > 2 else ""


def readme_tables(results, runs, oracle_result, diagnoses) -> str:
  """The 64x64 tables, the sPU-Net paper's comparison, then the 128x128
  tables with their own oracle."""
  split = lambda d, big: {k: v for k, v in d.items()
                          if (k in S128_RUNS) == big and k not in BASELINES}
  body = markdown_tables(split(results, False), split(runs, False),
                         oracle_result, split(diagnoses, False))
  comparison = comparison_table(results, runs, oracle_result)
  if comparison:
    body += ("\nThe sPU-Net paper's comparison (its Fig. 4 and 5) on this "
             "benchmark, same data and schedule for every model; GED² against"
             " the 18 modes with the first n of 16 samples per image:\n\n"
             + comparison)
    wilcoxon = wilcoxon_table(results)
    if wilcoxon:
      body += ("\nThe paper's Wilcoxon signed-rank test on the per-image GED²"
               " against the modes at 16 samples (HPU-Net: the run its "
               "1/4/8-sample column comes from):\n\n" + wilcoxon)
  if any(n in results for n in S128_RUNS):
    body += ("\nAt 128×128 (`synthetic/s128`: spots of radius 3.2 px; "
             "reference row from the 128×128 test set):\n\n" +
             markdown_tables(split(results, True), split(runs, True),
                             _load_json("oracle_s128", "results.json"),
                             split(diagnoses, True)))
  return body


def load_all() -> tuple[dict, dict, dict, dict]:
  """(results, runs, oracle, diagnoses): results and runs by experiment for
  those evaluated so far, the oracle's results (or None), and the
  diagnosis.json of the experiments diagnosed so far."""
  results, runs, diagnoses = {}, {}, {}
  for name in RUNS:
    if os.path.exists(os.path.join(RESULTS, name, "results.json")):
      results[name] = load_results(name)
      runs[name] = _load_json(name, "runs.json")
    diagnosis = _load_json(name, "diagnosis.json")
    if diagnosis is not None:
      diagnoses[name] = diagnosis
  return results, runs, _load_json(ORACLE, "results.json"), diagnoses


def table() -> None:
  results, runs, oracle_result, diagnoses = load_all()
  if not results:
    raise FileNotFoundError(f"No results in {RESULTS}: run the eval stage.")
  body = readme_tables(results, runs, oracle_result, diagnoses)
  with open(os.path.join(RESULTS, "table.md"), "w", encoding="utf-8") as f:
    f.write(body)
  readme = os.path.join(REPO, "README.md")
  with open(readme, encoding="utf-8") as f:
    text = f.read()
  with open(readme, "w", encoding="utf-8") as f:
    f.write(replace_between_markers(text, body))
  print(body)


def global_code(root: str) -> None:
  """`experiments/global_code.py` (what a perfect global code buys the
  decoder, against global_code.EVALUATED_RUNS), unless its results
  exist."""
  if os.path.exists(os.path.join(RESULTS, "global_code", "results.json")):
    return
  _run([sys.executable, os.path.join("experiments", "global_code.py"),
        f"--root={root}"], os.path.join(root, "global_code.log"))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--root", default=os.path.join(
      tempfile.gettempdir(), "hpunet", "experiments"))
  parser.add_argument("--stages",
                      default="train,eval,oracle,diagnose,global_code,table")
  parser.add_argument("--only", default="",
                      help="Comma-separated experiments (default: all).")
  parser.add_argument("--seeds", default="",
                      help="Train stage: comma-separated seeds to train "
                      "(default: all), e.g. one process per seed.")
  args = parser.parse_args(argv)
  try:
    seeds = {int(s) for s in args.seeds.split(",") if s} or None
  except ValueError:
    parser.error(f"--seeds={args.seeds!r}: expected comma-separated "
                 "integers, e.g. 1,2.")
  only = [n for n in args.only.split(",") if n]
  unknown = sorted(set(only) - set(RUNS))
  if unknown:
    parser.error(f"unknown experiments {unknown}; expected some of "
                 f"{sorted(RUNS)}")
  stages = [s for s in args.stages.split(",") if s]
  def evaluate_all():
    evaluate(args.root, only)
    evaluate_curves(args.root, only)

  stage_fns = {"train": lambda: train(args.root, only, seeds),
               "eval": evaluate_all,
               "oracle": oracle,
               "diagnose": lambda: diagnose(args.root, only),
               "global_code": lambda: global_code(args.root),
               "table": table}
  for stage in stages:
    if stage not in stage_fns:
      parser.error(f"unknown stage {stage!r}; expected some of "
                   f"{sorted(stage_fns)}")
  for stage in stages:
    stage_fns[stage]()


if __name__ == "__main__":
  main()
