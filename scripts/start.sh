#!/usr/bin/env bash
# The README's first command: sets everything up, builds, checks the configuration and
# runs forkcast's main job. Until the service lands that job is: print the version,
# validate the configuration, and check the meal catalog.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${FORKCAST_BUILD_DIR:-$root/build}

"$root/scripts/build.sh"
cd "$root"
"$build_dir/apps/forkcast" version
"$build_dir/apps/forkcast" config check
"$build_dir/apps/forkcast" catalog check
