#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), configures (once) and builds forkcast
# incrementally into $FORKCAST_BUILD_DIR (default: build/). Extra arguments go to cmake
# at configure time, e.g. scripts/build.sh -DFORKCAST_SANITIZE=address.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${FORKCAST_BUILD_DIR:-$root/build}

"$root/scripts/setup.sh" ${FORKCAST_SETUP_ARGS:-}

if [[ ! -f "$build_dir/build.ninja" || $# -gt 0 ]]; then
  echo "build: configuring $build_dir"
  cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=${FORKCAST_BUILD_TYPE:-Release} "$@"
fi
start=$(date +%s)
cmake --build "$build_dir"
echo "build: done in $(( $(date +%s) - start )) s ($build_dir)"
