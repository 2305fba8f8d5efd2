#!/usr/bin/env bash
# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
#
# Usage: launch/delete_tpu.sh [--dry_run]
#
# Deletes the TPU VM / pod slice (QUEUED=0) or the queued resource together
# with its node (QUEUED=1: `queued-resources delete --force`), without asking.
# The GCS bucket (checkpoints, datasets) is left alone.
#
# Environment:
#   NAME, ZONE, PROJECT (optional), QUEUED  as for launch/create_tpu.sh.
#
# --dry_run prints every command (one per line, "+ " prefix) and runs none.

set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

parse_args "$@"
no_args
read_tpu_env
QUEUED_ON="$(env_bool QUEUED)"
require_gcloud

if ((QUEUED_ON)); then
  run gcloud compute tpus queued-resources delete "$NAME" "${GCLOUD_SCOPE[@]}" \
    --force --quiet
else
  run gcloud compute tpus tpu-vm delete "$NAME" "${GCLOUD_SCOPE[@]}" --quiet
fi
