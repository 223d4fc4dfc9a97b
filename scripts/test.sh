#!/usr/bin/env bash
# The README's test command: sets everything up (no benchmark peers: tests never need them),
# builds, and runs the whole test suite
# (every CTest label: unit, learning, db, llm, e2e). Extra arguments go to ctest,
# e.g. scripts/test.sh -L unit, or scripts/test.sh -R Config.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${FORKCAST_BUILD_DIR:-$root/build}

"$root/scripts/build.sh"
cd "$build_dir"
start=$(date +%s)
ctest --output-on-failure --timeout 900 -j "$(nproc)" "$@"
echo "test: suite finished in $(( $(date +%s) - start )) s"
