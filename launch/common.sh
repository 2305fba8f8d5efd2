# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
# shellcheck shell=bash disable=SC2034,SC2088
# (SC2034: the variables are read by the scripts; SC2088: the ~ in REMOTE_*
# paths is expanded on the workers.)
#
# Shared by the launch/*.sh scripts (sourced, never run): flag parsing, the
# --dry_run machinery, and reading + validating the environment variables.
#
# Every command that touches the outside world goes through `run`, which prints
# it as one shell-quoted line prefixed with "+ " (stdout under --dry_run, where
# it is NOT executed; stderr otherwise, before it is executed). Under --dry_run
# the scripts run no gcloud, no git and nothing else with side effects.
#
# Avoids bash-4-only features, for macOS' /bin/bash 3.2 (tested with bash 5.2).

set -euo pipefail

LAUNCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(dirname "$LAUNCH_DIR")"
SCRIPT_NAME="launch/$(basename "$0")"
DRY_RUN=0
ARGS=()

# Paths on every TPU worker (expanded there, by the worker's shell).
REMOTE_REPO='~/hpunet'
REMOTE_VENV='~/hpunet_venv'
REMOTE_LOGS='~/hpunet_logs'
REMOTE_TARBALL='hpunet-src.tar.gz'  # in the worker's home directory
# The pinned JAX of constraints.txt, with the TPU runtime (libtpu).
JAX_TPU_REQUIREMENT='jax[tpu]==0.10.2'

die() {
  echo "ERROR: ${SCRIPT_NAME}: $*" >&2
  exit 1
}

info() {
  echo "${SCRIPT_NAME}: $*" >&2
}

# Prints the script's header comment (its usage) and exits.
usage() {
  sed -n '4,/^$/s/^# \{0,1\}//p' "$0"
  exit "${1:-0}"
}

# Quotes one word for a POSIX shell, like Python's shlex.quote.
shquote() {
  local s="$1" q="'\\''"
  if [[ -n "$s" && "$s" =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
    printf '%s' "$s"
  else
    printf "'%s'" "${s//\'/$q}"
  fi
}

# Quotes every argument and joins them with spaces.
quote_cmd() {
  local out="" word
  for word in "$@"; do
    out="${out:+$out }$(shquote "$word")"
  done
  printf '%s' "$out"
}

# Prints the command, "+ " and the shell-quoted words on one line: to stdout
# under --dry_run, else to stderr.
show() {
  if ((DRY_RUN)); then
    printf '+ %s\n' "$(quote_cmd "$@")"
  else
    printf '+ %s\n' "$(quote_cmd "$@")" >&2
  fi
}

# Prints the command (`show`) and runs it, unless --dry_run.
run() {
  show "$@"
  if ((!DRY_RUN)); then
    "$@"
  fi
}

# Parses the script's own flags; what follows `--` or the first non-flag
# argument is left in ARGS. Usage: parse_args "$@".
parse_args() {
  while (($#)); do
    case "$1" in
      --dry_run | --dry-run) DRY_RUN=1 ;;
      -h | --help) usage 0 ;;
      --)
        shift
        break
        ;;
      -*) die "unknown flag '$1' (the script's flags: --dry_run, --help;" \
        "pass anything else after '--')." ;;
      *) break ;;
    esac
    shift
  done
  ARGS=("$@")
}

no_args() {
  if ((${#ARGS[@]})); then
    die "unexpected arguments: $(quote_cmd "${ARGS[@]}")."
  fi
}

# require_env VAR WHAT...: dies naming VAR and what it should look like.
require_env() {
  local var="$1"
  shift
  if [[ -z "${!var:-}" ]]; then
    die "environment variable $var is not set: $*."
  fi
}

# check_format VAR REGEX WHAT...: dies unless $VAR (set) matches REGEX.
check_format() {
  local var="$1" regex="$2"
  shift 2
  if ! [[ "${!var}" =~ $regex ]]; then
    die "$var='${!var}' is not valid: expected $*."
  fi
}

# env_bool VAR: prints 1 or 0 ("", 0, false, no, off = 0; 1, true, yes, on = 1).
env_bool() {
  local value
  value="$(printf '%s' "${!1:-}" | tr '[:upper:]' '[:lower:]')"
  case "$value" in
    "" | 0 | false | no | off) echo 0 ;;
    1 | true | yes | on) echo 1 ;;
    *) die "$1='${!1}' is not a boolean: expected $1=1 or $1=0." ;;
  esac
}

require_gcloud() {
  if ((!DRY_RUN)) && ! command -v gcloud >/dev/null 2>&1; then
    die "gcloud not found on PATH: install the Google Cloud CLI" \
      "(https://cloud.google.com/sdk/docs/install) and run 'gcloud auth login'."
  fi
}

# --- The variables every script needs: NAME, ZONE, PROJECT (optional). ------
# Sets GCLOUD_SCOPE=(--zone=... [--project=...]) and SSH_FLAGS_ARR.
read_tpu_env() {
  require_env NAME "the TPU VM / pod slice name, e.g. NAME=hpunet-v4-32"
  check_format NAME '^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$' \
    "lowercase letters, digits and hyphens, starting with a letter," \
    "e.g. NAME=hpunet-v4-32"
  require_env ZONE "the Cloud TPU zone, e.g. ZONE=us-central2-b"
  check_format ZONE '^[a-z]+-[a-z]+[0-9]+-[a-z]$' \
    "a zone such as us-central2-b, europe-west4-a or us-east5-a"
  GCLOUD_SCOPE=(--zone="$ZONE")
  if [[ -n "${PROJECT:-}" ]]; then
    check_format PROJECT '^[a-z][-a-z0-9.:]*[a-z0-9]$' \
      "a Google Cloud project id, e.g. PROJECT=my-project (unset: gcloud's" \
      "default project)"
    GCLOUD_SCOPE+=(--project="$PROJECT")
  fi
  # Extra flags for `gcloud ... ssh/scp`, e.g. SSH_FLAGS=--tunnel-through-iap.
  SSH_FLAGS_ARR=()
  if [[ -n "${SSH_FLAGS:-}" ]]; then
    # shellcheck disable=SC2206  # word splitting is the point.
    SSH_FLAGS_ARR=(${SSH_FLAGS})
  fi
}

# QUEUED, SPOT, PREEMPTIBLE as 0/1.
read_provisioning_env() {
  QUEUED_ON="$(env_bool QUEUED)"
  SPOT_ON="$(env_bool SPOT)"
  PREEMPTIBLE_ON="$(env_bool PREEMPTIBLE)"
  if ((SPOT_ON && PREEMPTIBLE_ON)); then
    die "SPOT=1 and PREEMPTIBLE=1 are exclusive: set one of them."
  fi
}

# The default TPU software version of each generation (Cloud TPU docs, "TPU
# software versions"); RUNTIME_VERSION overrides it.
default_runtime_version() {
  case "$1" in
    v2-* | v3-* | v4-*) echo tpu-ubuntu2204-base ;;
    v5litepod-* | v5e-*) echo v2-alpha-tpuv5-lite ;;
    v5p-*) echo v2-alpha-tpuv5 ;;
    v6e-*) echo v2-alpha-tpuv6e ;;
    *) echo "" ;;
  esac
}

read_accelerator_env() {
  require_env ACCELERATOR_TYPE \
    "the TPU type and size, e.g. ACCELERATOR_TYPE=v4-8, v4-32, v5litepod-16," \
    "v5p-32 or v6e-8"
  check_format ACCELERATOR_TYPE '^v[0-9]+[a-z]*-[0-9]+$' \
    "<generation>-<size>, e.g. ACCELERATOR_TYPE=v4-8, v4-128, v5litepod-16"
  RUNTIME="${RUNTIME_VERSION:-$(default_runtime_version "$ACCELERATOR_TYPE")}"
  if [[ -z "$RUNTIME" ]]; then
    die "environment variable RUNTIME_VERSION is not set and there is no" \
      "default for ACCELERATOR_TYPE=$ACCELERATOR_TYPE: set it, e.g." \
      "RUNTIME_VERSION=tpu-ubuntu2204-base (see" \
      "https://cloud.google.com/tpu/docs/runtimes)."
  fi
}

# GCS_BUCKET (or GS_BUCKET) -> BUCKET_URL=gs://<bucket>, or "" if unset.
read_bucket_env() {
  local bucket="${GCS_BUCKET:-${GS_BUCKET:-}}"
  BUCKET_URL=""
  if [[ -n "$bucket" ]]; then
    bucket="${bucket#gs://}"
    bucket="${bucket%/}"
    if ! [[ "$bucket" =~ ^[a-z0-9][-a-z0-9_.]*[a-z0-9]$ ]]; then
      die "GCS_BUCKET='${GCS_BUCKET:-${GS_BUCKET:-}}' is not a bucket name:" \
        "expected e.g. GCS_BUCKET=my-bucket or GCS_BUCKET=gs://my-bucket."
    fi
    BUCKET_URL="gs://$bucket"
  fi
}

# CONFIG (relative to the repository root, optionally with ':<arg>').
read_config_env() {
  require_env CONFIG \
    "the experiment config, relative to the repository root, e.g." \
    "CONFIG=configs/cityscapes.py (or configs/synthetic.py:smoke)"
  local path="${CONFIG%%:*}"
  if [[ "$path" == /* || "$path" == ~* ]]; then
    die "CONFIG='$CONFIG' must be relative to the repository root (the" \
      "workers have their own copy), e.g. CONFIG=configs/cityscapes.py."
  fi
  if [[ ! -f "$REPO_ROOT/$path" ]]; then
    die "CONFIG='$CONFIG': no file $path in $REPO_ROOT; expected e.g." \
      "CONFIG=configs/cityscapes.py."
  fi
  # Experiment name: configs/cityscapes.py:smoke -> cityscapes_smoke.
  EXPERIMENT="$(basename "$path" .py)"
  if [[ "$CONFIG" == *:* ]]; then
    EXPERIMENT="${EXPERIMENT}_$(printf '%s' "${CONFIG#*:}" |
      tr -c 'A-Za-z0-9_.=-' '_')"
  fi
}

# WORKDIR and TFDS_DATA_DIR (gs://), defaulting to paths in GCS_BUCKET.
read_storage_env() {
  read_bucket_env
  if [[ -z "${WORKDIR:-}" ]]; then
    if [[ -z "$BUCKET_URL" ]]; then
      die "environment variable WORKDIR is not set (and neither is" \
        "GCS_BUCKET to derive it from): the run's checkpoint and summary" \
        "directory on GCS, shared by all workers, e.g." \
        "WORKDIR=gs://my-bucket/hpunet/cityscapes (or GCS_BUCKET=my-bucket)."
    fi
    WORKDIR="$BUCKET_URL/hpunet/$EXPERIMENT"
  fi
  check_format WORKDIR '^gs://[a-z0-9][-a-z0-9_.]*[a-z0-9]/[^[:space:]]+$' \
    "a gs:// path that every worker can reach and that outlives the VM" \
    "(checkpoints for resuming after preemption), e.g." \
    "WORKDIR=gs://my-bucket/hpunet/cityscapes"
  WORKDIR="${WORKDIR%/}"
  if [[ -z "${TFDS_DATA_DIR:-}" ]]; then
    if [[ -z "$BUCKET_URL" ]]; then
      die "environment variable TFDS_DATA_DIR is not set (and neither is" \
        "GCS_BUCKET to derive it from): the GCS folder holding the built TFDS" \
        "datasets, e.g. TFDS_DATA_DIR=gs://my-bucket/tensorflow_datasets."
    fi
    TFDS_DATA_DIR="$BUCKET_URL/tensorflow_datasets"
  fi
  check_format TFDS_DATA_DIR \
    '^gs://[a-z0-9][-a-z0-9_.]*[a-z0-9](/[^[:space:]]*)?$' \
    "a gs:// folder with the built datasets (see launch/README.md), e.g." \
    "TFDS_DATA_DIR=gs://my-bucket/tensorflow_datasets"
  TFDS_DATA_DIR="${TFDS_DATA_DIR%/}"
}

# WORKER: "all" or a worker index.
read_worker_env() {
  WORKER="${WORKER:-$1}"
  check_format WORKER '^(all|[0-9]+)$' \
    "WORKER=all or a worker index such as WORKER=0"
}

# tpu_ssh WORKER REMOTE_COMMAND: runs one command line on the worker(s).
tpu_ssh() {
  run gcloud compute tpus tpu-vm ssh "$NAME" "${GCLOUD_SCOPE[@]}" \
    --worker="$1" ${SSH_FLAGS_ARR[@]+"${SSH_FLAGS_ARR[@]}"} --command="$2"
}

# join_steps STEP...: one remote command line, "; " between the steps (" "
# after a step that ends in "&").
join_steps() {
  local line="" step
  for step in "$@"; do
    if [[ -z "$line" ]]; then
      line="$step"
    elif [[ "$line" == *"&" ]]; then
      line="$line $step"
    else
      line="$line; $step"
    fi
  done
  printf '%s' "$line"
}

# A remote step that fails when a run started by launch/run_tpu.sh is still
# alive on the worker: its pid file (in REMOTE_LOGS) names a live
# hpunet.train process.
# shellcheck disable=SC2016
REMOTE_NOT_RUNNING_CHECK='pid=$(cat ~/hpunet_logs/train.pid 2>/dev/null'\
' || true); if [ -n "$pid" ] && grep -qs hpunet.train "/proc/$pid/cmdline";'\
' then echo "ERROR: $(hostname): hpunet.train is still running (pid $pid);'\
' stop it first (launch/README.md, Stopping a run)." >&2; exit 1; fi'
