#!/usr/bin/env bash
# The soak test (docs/security.md, docs/performance.md "Soak"): forkcast serve with its own
# PostgreSQL under a fixed rate of recommendation + feedback pairs for a long time (default
# 30 minutes), one row per minute of latency, RSS and open file descriptors (soak.py);
# exits 1 unless RSS, descriptors and p99 stay flat and no request fails. Not part of CI.
#
#   bench/service/soak.sh [--seconds 1800] [--rate 50] [--clients 4] [--window 60]
#
# FORKCAST_BUILD_DIR / FORKCAST_EXE as for load.sh. Everything listens on 127.0.0.1 and is
# stopped by PID at the end; the temp dir (under $TMPDIR) is deleted.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${FORKCAST_BUILD_DIR:-$root/build}
forkcast=${FORKCAST_EXE:-$build/apps/forkcast}
args=(--seconds 1800)
seconds=1800
while (($#)); do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --rate|--clients|--window) args+=("$1" "$2"); shift 2 ;;
    *) echo "soak.sh: unknown argument $1 (allowed: --seconds, --rate, --clients, --window)" >&2; exit 2 ;;
  esac
done
[[ -x $forkcast ]] || { echo "soak.sh: $forkcast not built (cmake --build $build)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/forkcast-soak.XXXXXX")
chmod 755 "$work"
server=""
cleanup() {
  [[ -n $server ]] && { kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port) db_port=$(free_port)
export FORKCAST_DATABASE__DATA_DIR=$work/pgdata FORKCAST_DATABASE__PORT=$db_port
export FORKCAST_SERVER__DECISION_JOURNAL_DIR=$work/journal FORKCAST_ADVICE__ENABLED=false
(cd "$root" && exec "$forkcast" --log-level warn serve --port "$port") > "$work/serve.log" 2>&1 & server=$!
for _ in $(seq 1 600); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || { echo "forkcast serve did not become ready:"; cat "$work/serve.log"; exit 1; }
echo "== soak: $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); serve pid $server; ${seconds} s"
status=0
python3 "$root/bench/service/soak.py" "http://127.0.0.1:$port" "$server" "$seconds" "${args[@]:2}" || status=$?
grep -E '"level":"(error|critical)"|\[error\]|\[critical\]' "$work/serve.log" | head -5 || true
exit $status
