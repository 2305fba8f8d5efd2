#!/usr/bin/env bash
# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
#
# Usage: launch/run_tpu.sh [--dry_run] [-- TRAINER_FLAGS...]
#
# Starts `python -m hpunet.train --config=$CONFIG --workdir=$WORKDIR` on every
# worker of the slice at once (`gcloud ... ssh --worker=all`), one process per
# worker, with the multi-host environment the trainer reads:
#
#   HPUNET_JAX_INIT=1         hpunet.train calls jax.distributed.initialize(),
#                             which finds the coordinator, the number of
#                             processes and this worker's id from the TPU
#                             metadata; no flags needed (a single-host v4-8
#                             is a cluster of one).
#   TFDS_DATA_DIR=gs://...    where TFDS finds the built datasets.
#   PYTHONUNBUFFERED=1        prints reach the log at once.
#
# Each worker logs to ~/hpunet_logs/train-<UTC time>.log (~/hpunet_logs/
# train.log points at the newest) and writes the trainer's pid to
# ~/hpunet_logs/train.pid.
# The trainer runs under nohup/setsid, so it survives a dropped ssh connection.
# DETACH=0 (default) streams every worker's log until the trainer exits and
# returns its exit code (Ctrl-C stops the streaming, not the training);
# DETACH=1 returns at once: follow later with launch/logs_tpu.sh.
#
# Resuming: the trainer restores the newest checkpoint in WORKDIR, so after a
# preemption or a stop, rerunning this script continues the run.
#
# Exit codes of the trainer (README, "What happens when things go wrong"):
# 0 finished, 2 bad input, 3 non-finite loss, 4 a checkpoint could not be
# written, 75 preempted (SIGTERM / Ctrl-C; a checkpoint was saved), 130 a
# second Ctrl-C. With RESTARTS=N each worker reruns the trainer when it exits
# with 75, up to N times; any other exit code ends the loop.
#
# Environment:
#   NAME, ZONE, PROJECT (optional)  as for launch/create_tpu.sh.
#   CONFIG         config file relative to the repository root, with an
#                  optional ':<arg>', e.g. configs/cityscapes.py.
#   GCS_BUCKET     bucket for the defaults below, e.g. my-bucket.
#   WORKDIR        gs:// run directory (checkpoints, metrics, TensorBoard);
#                  default gs://$GCS_BUCKET/hpunet/<config name>[_<arg>].
#   TFDS_DATA_DIR  gs:// folder with the built TFDS datasets; default
#                  gs://$GCS_BUCKET/tensorflow_datasets.
#   EXTRA_ARGS     optional trainer flags, inserted as written (the worker's
#                  shell splits them), e.g.
#                  EXTRA_ARGS=--config.num_train_steps=1000.
#                  Flags after `--` are passed too, each quoted.
#   REMOTE_ENV     optional extra VAR=value words exported on the workers,
#                  e.g. REMOTE_ENV="LIBTPU_INIT_ARGS=--xla_tpu_foo=true".
#   DETACH         1 = start and return.
#   RESTARTS       optional; restart the trainer on exit code 75 (preempted)
#                  up to this many times (default 0). Stop such a run with
#                  launch/ssh_all.sh 'kill -TERM -- -$(cat ~/hpunet_logs/train.pid)'
#                  (the whole process group, so the loop ends too).
#   SSH_FLAGS      optional extra flags for gcloud ssh.
#
# --dry_run prints every command (one per line, "+ " prefix) and runs none.

set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

parse_args "$@"
read_tpu_env
read_config_env
read_storage_env
DETACH_ON="$(env_bool DETACH)"
EXTRA_ARGS="${EXTRA_ARGS:-}"
REMOTE_ENV="${REMOTE_ENV:-}"
RESTARTS="${RESTARTS:-0}"
check_format RESTARTS '^[0-9]+$' "a number of restarts >= 0, e.g. RESTARTS=3"
PREEMPTED_EXIT_CODE=75  # hpunet/errors.py: PREEMPTED
for var in EXTRA_ARGS REMOTE_ENV; do
  if [[ "${!var}" == *$'\n'* ]]; then
    die "$var must be one line (it is pasted into the workers' command line)."
  fi
done
if [[ -n "$REMOTE_ENV" ]]; then
  check_format REMOTE_ENV \
    '^([A-Za-z_][A-Za-z0-9_]*=[^[:space:]]*[[:space:]]*)+$' \
    "space-separated VAR=value words," \
    "e.g. REMOTE_ENV=\"XLA_FLAGS=--xla_dump_to=/tmp/x\""
fi
require_gcloud

train_cmd="$REMOTE_VENV/bin/python -m hpunet.train $(quote_cmd \
  --config="$CONFIG" --workdir="$WORKDIR")"
if [[ -n "$EXTRA_ARGS" ]]; then
  train_cmd="$train_cmd $EXTRA_ARGS"
fi
if ((${#ARGS[@]})); then
  train_cmd="$train_cmd $(quote_cmd "${ARGS[@]}")"
fi

# The restart loop: rerun on "preempted" only; a bug or bad input ends it.
if ((RESTARTS > 0)); then
  loop="n=0; while :; do $train_cmd; rc=\$?;"
  loop+=" if [ \$rc -ne $PREEMPTED_EXIT_CODE ] || [ \$n -ge $RESTARTS ];"
  loop+=" then exit \$rc; fi; n=\$((n + 1));"
  loop+=" echo \"hpunet.train was preempted (exit $PREEMPTED_EXIT_CODE):"
  loop+=" restart \$n of $RESTARTS.\"; done"
  train_cmd="bash -c $(shquote "$loop")"
fi

env_words="$(quote_cmd HPUNET_JAX_INIT=1 TFDS_DATA_DIR="$TFDS_DATA_DIR" \
  PYTHONUNBUFFERED=1)"
if [[ -n "$REMOTE_ENV" ]]; then
  env_words="$env_words $REMOTE_ENV"
fi

installed="if [ ! -d $REMOTE_REPO ] || [ ! -x $REMOTE_VENV/bin/python ]; then"
installed+=" echo \"ERROR: \$(hostname): hpunet is not installed: run"
installed+=" launch/setup_tpu.sh first.\" >&2; exit 1; fi"

steps=(
  "set -euo pipefail"
  "$REMOTE_NOT_RUNNING_CHECK"
  "$installed"
  "cd $REMOTE_REPO"
  "mkdir -p $REMOTE_LOGS"
  "log=$REMOTE_LOGS/train-\$(date -u +%Y%m%dT%H%M%SZ).log"
  "ln -sfn \"\$log\" $REMOTE_LOGS/train.log"
  "export $env_words"
  "echo \"\$(hostname): \"$(shquote "$train_cmd") >\"\$log\""
  "nohup setsid $train_cmd >>\"\$log\" 2>&1 </dev/null &"
  "pid=\$!"
  "echo \"\$pid\" >$REMOTE_LOGS/train.pid"
  "echo \"\$(hostname): started hpunet.train (pid \$pid), log \$log\""
)
if ((!DETACH_ON)); then
  steps+=("tail -n +1 -F --pid=\"\$pid\" \"\$log\"" "wait \"\$pid\"")
fi

info "config $CONFIG, workdir $WORKDIR, TFDS data $TFDS_DATA_DIR."
tpu_ssh all "$(join_steps "${steps[@]}")"

if ((!DRY_RUN && DETACH_ON)); then
  info "started on every worker of $NAME. Logs: launch/logs_tpu.sh" \
    "(WORKER=all for every worker)."
fi
