#!/usr/bin/env bash
# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
#
# Usage: launch/create_tpu.sh [--dry_run]
#
# Creates a Cloud TPU VM or pod slice and waits until it can be used.
#
#   QUEUED=0 (default): `gcloud compute tpus tpu-vm create`, then waits for
#     the node state READY.
#   QUEUED=1: a queued resource (`gcloud compute tpus queued-resources create
#     NAME --node-id=NAME`), then waits for the state ACTIVE (may take hours
#     when capacity is short; Ctrl-C stops waiting, the request stays queued).
#
# Environment:
#   NAME              TPU VM / pod slice name (also the queued resource id).
#   ZONE              e.g. us-central2-b (v4), us-east5-a or europe-west4-b
#                     (v5e).
#   ACCELERATOR_TYPE  e.g. v4-8, v4-32, v4-128, v5litepod-16, v5p-32, v6e-8.
#   RUNTIME_VERSION   optional; default by generation: tpu-ubuntu2204-base
#                     (v2-v4), v2-alpha-tpuv5-lite (v5e), v2-alpha-tpuv5 (v5p),
#                     v2-alpha-tpuv6e (v6e).
#   PROJECT           optional; default: gcloud's configured project.
#   QUEUED            1 = queued resource.
#   SPOT              1 = Spot VMs (--spot), cheapest, preemptible at any time.
#   PREEMPTIBLE       1 = preemptible (--preemptible; with QUEUED=1 the
#                     `gcloud alpha` queued resource with --best-effort).
#   POLL_SECONDS      seconds between state checks (default 30).
#   WAIT_TIMEOUT      give up waiting after this many seconds (default 0:
#                     never).
#
# --dry_run prints every command (one per line, "+ " prefix) and runs none.

set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

parse_args "$@"
no_args
read_tpu_env
read_accelerator_env
read_provisioning_env
POLL_SECONDS="${POLL_SECONDS:-30}"
check_format POLL_SECONDS '^[0-9]+$' "a number of seconds, e.g. POLL_SECONDS=30"
WAIT_TIMEOUT="${WAIT_TIMEOUT:-0}"
check_format WAIT_TIMEOUT '^[0-9]+$' \
  "a number of seconds (0 = wait forever), e.g. WAIT_TIMEOUT=3600"
require_gcloud

# wait_for_state READY_STATE "FAILED_STATE|..." DESCRIBE_COMMAND...
wait_for_state() {
  local ready="$1" failed="$2" state="" last="" start="$SECONDS"
  shift 2
  show "$@"  # printed once; polled quietly below.
  if ((DRY_RUN)); then
    info "(dry run) would repeat the command above every ${POLL_SECONDS}s" \
      "until it prints $ready."
    return 0
  fi
  while :; do
    if ! state="$("$@")"; then
      die "could not read the state of $NAME (see the gcloud error above)."
    fi
    if [[ "$state" != "$last" ]]; then
      info "$NAME: ${state:-<no state yet>} ($((SECONDS - start)) s)"
      last="$state"
    fi
    if [[ "$state" == "$ready" ]]; then
      return 0
    fi
    if [[ "$state" =~ ^($failed)$ ]]; then
      die "$NAME is in state $state. Details: $(quote_cmd "${@:1:$#-1}");" \
        "delete it with launch/delete_tpu.sh and create it again."
    fi
    if ((WAIT_TIMEOUT > 0 && SECONDS - start >= WAIT_TIMEOUT)); then
      die "$NAME is still $state after ${WAIT_TIMEOUT}s; stopped waiting" \
        "(it is still being created: rerun this script to keep waiting, or" \
        "launch/delete_tpu.sh)."
    fi
    sleep "$POLL_SECONDS"
  done
}

tier=()
if ((SPOT_ON)); then
  tier=(--spot)
elif ((PREEMPTIBLE_ON)); then
  if ((QUEUED_ON)); then tier=(--best-effort); else tier=(--preemptible); fi
fi

if ((QUEUED_ON)); then
  gcloud_qr=(gcloud compute tpus queued-resources)
  if ((PREEMPTIBLE_ON)); then
    # --best-effort exists only in the alpha track.
    gcloud_qr=(gcloud alpha compute tpus queued-resources)
  fi
  run "${gcloud_qr[@]}" create "$NAME" "${GCLOUD_SCOPE[@]}" \
    --node-id="$NAME" --accelerator-type="$ACCELERATOR_TYPE" \
    --runtime-version="$RUNTIME" ${tier[@]+"${tier[@]}"}
  wait_for_state ACTIVE 'FAILED|SUSPENDING|SUSPENDED' \
    gcloud compute tpus queued-resources describe "$NAME" "${GCLOUD_SCOPE[@]}" \
    '--format=value(state.state)'
else
  run gcloud compute tpus tpu-vm create "$NAME" "${GCLOUD_SCOPE[@]}" \
    --accelerator-type="$ACCELERATOR_TYPE" --version="$RUNTIME" \
    ${tier[@]+"${tier[@]}"}
  wait_for_state READY 'PREEMPTED|TERMINATED|STOPPED|STOPPING|DELETING' \
    gcloud compute tpus tpu-vm describe "$NAME" "${GCLOUD_SCOPE[@]}" \
    '--format=value(state)'
fi

if ((!DRY_RUN)); then
  info "$NAME ($ACCELERATOR_TYPE, $RUNTIME) is ready. Next: launch/setup_tpu.sh"
fi
