#!/usr/bin/env bash
# Prepares, here, what tools/advice-lm/device_train.sh needs on the GPU machine, in
# .advice-carry/ (ignored through .git/info/exclude; name it in the device run's `carry`):
# the corpus (xz), the validation pairs, the system prompt, and the pinned llama.cpp
# source (only the parts conversion and quantization need, 7.6 MB).
#   tools/advice-lm/prepare_carry.sh [examples] [seed]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build_dir=${FORKCAST_BUILD_DIR:-$root/build}
examples=${1:-160000}
seed=${2:-20261201}
carry="$root/.advice-carry"
cd "$root"
grep -qx '/.advice-carry/' .git/info/exclude 2>/dev/null || echo '/.advice-carry/' >> .git/info/exclude
cmake --build "$build_dir" --target advice_lm_corpus >/dev/null
"$build_dir/tools/advice-lm/advice_lm_corpus" --data data --out "$build_dir/advice-lm" --examples "$examples" --seed "$seed"
mkdir -p "$carry"
xz -T2 -4 -c "$build_dir/advice-lm/corpus.jsonl" > "$carry/corpus.jsonl.xz.tmp"
mv "$carry/corpus.jsonl.xz.tmp" "$carry/corpus.jsonl.xz"
cp "$build_dir/advice-lm/valid.jsonl" "$build_dir/advice-lm/system.txt" "$carry/"
git -C third_party/llama.cpp archive HEAD CMakeLists.txt cmake ggml src include gguf-py convert_hf_to_gguf.py \
  conversion common tools vendor licenses LICENSE requirements | xz -T2 -6 > "$carry/llama-src.tar.xz"
du -sh "$carry"
