#!/usr/bin/env bash
# Builds llama.cpp's own llama-bench from the same pinned source (third_party/llama.cpp)
# and with the same ggml options as forkcast's embedded build, into
# $FORKCAST_BUILD_DIR/llama-tools. Only for the advice benchmark; CI never builds it.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build_dir=${FORKCAST_BUILD_DIR:-$root/build}
src=${FORKCAST_LLAMA_DIR:-$root/third_party/llama.cpp}
[[ -f "$src/include/llama.h" ]] || { echo "build_llama_bench: no llama.cpp at $src; run scripts/setup.sh" >&2; exit 1; }
out="$build_dir/llama-tools"
if [[ ! -f "$out/build.ninja" ]]; then
  cmake -S "$src" -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_OPENSSL=OFF >/dev/null
fi
cmake --build "$out" --target llama-bench >/dev/null
echo "$out/bin/llama-bench"
