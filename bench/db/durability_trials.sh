#!/usr/bin/env bash
# The full durability acceptance: 20 trials of each kind (the test suite runs 2 of each).
#   writer:     8 threads send feedback through the group-commit writer; the writer process
#               is SIGKILLed mid-stream, PostgreSQL is stopped without a checkpoint and
#               restarted (WAL replay); every acknowledged idempotency key must be stored.
#   postmaster: the same, but the postmaster is SIGKILLed mid-stream, then restarted.
# Prints one "[durability]" line per kind: trials, acknowledged writes, lost writes.
#
#   bench/db/durability_trials.sh          # 20 trials per kind
#   bench/db/durability_trials.sh 5        # 5 trials per kind
# Environment: FORKCAST_BUILD_DIR (default build).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${FORKCAST_BUILD_DIR:-$ROOT/build}"
TRIALS="${1:-20}"
EXE="$BUILD_DIR/tests/db/db_durability_test"
[[ -x "$EXE" ]] || { echo "durability_trials.sh: $EXE not found; build it: ninja -C $BUILD_DIR db_durability_test db_feedback_writer" >&2; exit 1; }
start=$(date +%s)
set +e
FORKCAST_DURABILITY_TRIALS="$TRIALS" "$EXE" --gtest_brief=1 2>&1 | grep -E '^\[durability\]|FAILED|Failure|lost|missing'
status=${PIPESTATUS[0]}
set -e
echo "durability: ${TRIALS} trials per kind in $(( $(date +%s) - start )) s; test exit code $status"
exit "$status"
