#!/usr/bin/env bash
# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
#
# Usage: launch/logs_tpu.sh [--dry_run]
#
# Streams the log of the newest launch/run_tpu.sh run (~/hpunet_logs/train.log)
# from one worker or all of them; Ctrl-C stops the streaming, not the run.
#
# Environment:
#   NAME, ZONE, PROJECT (optional)  as for launch/create_tpu.sh.
#   WORKER      worker index or "all" (default 0, the chief: process 0 logs the
#               metrics; with "all" the workers' lines interleave).
#   TAIL_LINES  lines of history to print first (default 100).
#   FOLLOW      0 = print and return instead of following (default 1).
#   SSH_FLAGS   optional extra flags for gcloud ssh.
#
# --dry_run prints every command (one per line, "+ " prefix) and runs none.

set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

parse_args "$@"
no_args
read_tpu_env
read_worker_env 0
TAIL_LINES="${TAIL_LINES:-100}"
check_format TAIL_LINES '^[0-9]+$' "a number of lines, e.g. TAIL_LINES=100"
FOLLOW="${FOLLOW:-1}"
FOLLOW_ON="$(env_bool FOLLOW)"
require_gcloud

follow=""
if ((FOLLOW_ON)); then
  follow=" -F"
fi
tpu_ssh "$WORKER" "tail -n $TAIL_LINES$follow $REMOTE_LOGS/train.log"
