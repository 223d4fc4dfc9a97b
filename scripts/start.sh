#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, checks the configuration
# and the catalog, then runs the meal advisor: `forkcast serve` starts its own PostgreSQL
# (var/pgdata) unless database.url is set, serves the API and the demo page on
# http://127.0.0.1:8080/ and stops everything it started on Ctrl-C.
# Extra arguments go to `forkcast serve`, e.g. scripts/start.sh --port 9000.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${FORKCAST_BUILD_DIR:-$root/build}

"$root/scripts/build.sh"
cd "$root"
"$build_dir/apps/forkcast" version
"$build_dir/apps/forkcast" config check
"$build_dir/apps/forkcast" catalog check
exec "$build_dir/apps/forkcast" serve "$@"
