#!/usr/bin/env bash
# Copyright 2026 The hpunet Authors. Licensed under the Apache License 2.0.
#
# Usage: launch/setup_tpu.sh [--dry_run]
#
# Installs hpunet on every worker of the TPU VM / pod slice (--worker=all).
# Idempotent: rerun it after every code change.
#
#   1. The code, into ~/hpunet on each worker (replaced as a whole):
#      - default: a tarball of the local git HEAD (`git archive`; uncommitted
#        changes are NOT included), copied with `gcloud ... scp --worker=all`;
#      - REPO_URL set: `git clone` (first time) or `git fetch`, then a checkout
#        of REPO_REF (default: the remote's default branch).
#   2. A virtual environment ~/hpunet_venv with Python PYTHON_VERSION (default
#      3.11; jax 0.10 needs >= 3.11, the TPU images ship 3.10), made once
#      with uv, which fetches a standalone Python.
#   3. pip install -c constraints.txt -e ".[data]" "jax[tpu]==0.10.2"
#      (jax[tpu] brings the matching libtpu from PyPI).
#
# Refuses to touch a worker on which a run of launch/run_tpu.sh is alive.
#
# Environment:
#   NAME, ZONE, PROJECT (optional)  as for launch/create_tpu.sh.
#   REPO_URL         optional git URL the workers can clone (else: tarball).
#   REPO_REF         optional branch, tag or commit for REPO_URL.
#   PYTHON_VERSION   default 3.11.
#   SSH_FLAGS        optional extra flags for gcloud ssh/scp, e.g.
#                    SSH_FLAGS=--tunnel-through-iap.
#
# --dry_run prints every command (one per line, "+ " prefix) and runs none.

set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

parse_args "$@"
no_args
read_tpu_env
PYTHON_VERSION="${PYTHON_VERSION:-3.11}"
check_format PYTHON_VERSION '^3\.[0-9]+$' \
  "a Python minor version >= 3.11, e.g. PYTHON_VERSION=3.11"
if ((${PYTHON_VERSION#3.} < 11)); then
  die "PYTHON_VERSION=$PYTHON_VERSION is too old: jax 0.10 needs Python" \
    ">= 3.11, e.g. PYTHON_VERSION=3.11."
fi
REPO_URL="${REPO_URL:-}"
REPO_REF="${REPO_REF:-}"
if [[ -n "$REPO_REF" && -z "$REPO_URL" ]]; then
  die "REPO_REF='$REPO_REF' is set but REPO_URL is not: set" \
    "REPO_URL=https://github.com/<you>/hpunet.git too, or unset REPO_REF" \
    "to copy the local git HEAD."
fi
if [[ -n "$REPO_URL" ]]; then
  check_format REPO_URL '^[^[:space:]]+$' \
    "a git URL the workers can clone, e.g." \
    "REPO_URL=https://github.com/<you>/hpunet.git"
fi
if [[ -n "$REPO_REF" ]]; then
  check_format REPO_REF '^[^[:space:]]+$' \
    "a branch, tag or commit, e.g. REPO_REF=main"
fi
require_gcloud

steps=("set -euo pipefail" "$REMOTE_NOT_RUNNING_CHECK")

# --- 1. The code. ---
if [[ -z "$REPO_URL" ]]; then
  tarball="${TMPDIR:-/tmp}/hpunet-src-$NAME.tar.gz"
  if ((!DRY_RUN)); then
    if ! git -C "$REPO_ROOT" diff --quiet HEAD -- 2>/dev/null; then
      info "WARNING: uncommitted changes in $REPO_ROOT are NOT copied (only" \
        "the git HEAD $(git -C "$REPO_ROOT" rev-parse --short HEAD) is)."
    fi
  fi
  run git -C "$REPO_ROOT" archive --format=tar.gz --output="$tarball" HEAD
  run gcloud compute tpus tpu-vm scp "$tarball" "$NAME:$REMOTE_TARBALL" \
    "${GCLOUD_SCOPE[@]}" --worker=all \
    ${SSH_FLAGS_ARR[@]+"${SSH_FLAGS_ARR[@]}"}
  run rm -f "$tarball"
  steps+=(
    "rm -rf $REMOTE_REPO.new"
    "mkdir -p $REMOTE_REPO.new"
    "tar -xzf ~/$REMOTE_TARBALL -C $REMOTE_REPO.new"
    "rm -rf $REMOTE_REPO ~/$REMOTE_TARBALL"
    "mv $REMOTE_REPO.new $REMOTE_REPO"
  )
else
  # A branch name means the remote's newest commit of that branch.
  ref="${REPO_REF:-origin/HEAD}"
  get="if [ -d $REMOTE_REPO/.git ]; then"
  get+=" git -C $REMOTE_REPO fetch --quiet --tags origin;"
  get+=" else rm -rf $REMOTE_REPO;"
  get+=" git clone --quiet $(shquote "$REPO_URL") $REMOTE_REPO; fi"
  branch="if git -C $REMOTE_REPO rev-parse --verify --quiet"
  branch+=" \"origin/\$ref^{commit}\" >/dev/null; then ref=\"origin/\$ref\"; fi"
  steps+=(
    "$get"
    "ref=$(shquote "$ref")"
    "$branch"
    "git -C $REMOTE_REPO checkout --quiet --force --detach \"\$ref\""
    "git -C $REMOTE_REPO log -1 --format='%h %s'"
  )
fi

# --- 2. The virtual environment (once). ---
venv="if [ ! -x $REMOTE_VENV/bin/python ]; then"
venv+=" { python3 -m pip install --user --quiet 'uv>=0.5'"
venv+=" || curl -LsSf https://astral.sh/uv/install.sh | sh; }"
venv+=" && ~/.local/bin/uv venv --seed"
venv+=" --python $(shquote "$PYTHON_VERSION") $REMOTE_VENV; fi"
steps+=("$venv")

# --- 3. The package, the pinned versions and the TPU runtime. ---
python="$REMOTE_VENV/bin/python"
check='import hpunet, jax, socket; print("hpunet ready on",'
check+=' socket.gethostname(), "with jax", jax.__version__)'
steps+=(
  "cd $REMOTE_REPO"
  "$python -m pip install --quiet --upgrade pip"
  "$python -m pip install --quiet -c constraints.txt -e $(quote_cmd \
    '.[data]' "$JAX_TPU_REQUIREMENT")"
  "$python -c $(shquote "$check")"
)

tpu_ssh all "$(join_steps "${steps[@]}")"

if ((!DRY_RUN)); then
  info "hpunet is installed on every worker of $NAME. Next: launch/run_tpu.sh"
fi
