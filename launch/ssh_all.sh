#!/usr/bin/env bash
# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
#
# Usage: launch/ssh_all.sh [--dry_run] [--] COMMAND [ARGS...]
#
# Runs a command on every worker of the TPU VM / pod slice at once
# (`gcloud compute tpus tpu-vm ssh --worker=all --command=...`). As with ssh,
# the words are joined with spaces and run by each worker's shell, so quote
# what the worker should expand:
#
#   launch/ssh_all.sh 'cd ~/hpunet && git log -1 --oneline || cat /proc/loadavg'
#   launch/ssh_all.sh 'kill -TERM $(cat ~/hpunet_logs/train.pid)'  # stop a run
#   WORKER=0 launch/ssh_all.sh 'df -h ~'   # one worker only
#
# Environment:
#   NAME, ZONE, PROJECT (optional)  as for launch/create_tpu.sh.
#   WORKER     default "all"; a worker index runs on that worker only.
#   SSH_FLAGS  optional extra flags for gcloud ssh.
#
# --dry_run prints every command (one per line, "+ " prefix) and runs none.

set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

parse_args "$@"
if ((${#ARGS[@]} == 0)); then
  die "no command given: e.g. launch/ssh_all.sh 'hostname; uptime'."
fi
read_tpu_env
read_worker_env all
require_gcloud

tpu_ssh "$WORKER" "${ARGS[*]}"
