#!/usr/bin/env bash
# The one command that trains the bundled advice model on the GPU machine (models/README.md).
# Run from the repository root there:
#   tools/advice-lm/device_train.sh <carry-dir> <out-dir>
# <carry-dir> holds what tools/advice-lm/prepare_carry.sh made here: corpus.jsonl.xz,
# valid.jsonl, system.txt and llama-src.tar.xz (the pinned llama.cpp source, from the same
# bundle as third_party/llama.cpp). <out-dir> receives the quantized GGUFs (split in 15 MiB
# parts, so each file fits the machine's transfer limit), metrics.json, tokenizer.model and
# the log. That machine has PyTorch, transformers, sentencepiece and CMake and no network.
set -euo pipefail
carry=$(cd "$1" && pwd)
out=$(mkdir -p "$2" && cd "$2" && pwd)
repo=$(pwd)
work=/tmp/advice-lm
rm -rf "$work" && mkdir -p "$work/data" "$work/llama.cpp"
export PYTHONUNBUFFERED=1
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start )) s] $*"; }

stamp "machine: $(nproc) cores; $(nvidia-smi -L | head -1)"
python3 -c 'import torch, transformers, sentencepiece as s; print("torch", torch.__version__, "transformers", transformers.__version__, "sentencepiece", s.__version__)'

tar -xJf "$carry/llama-src.tar.xz" -C "$work/llama.cpp"
# llama.cpp's quantizer, built (CPU only) while the GPU trains.
(
  cmake -S "$work/llama.cpp" -B "$work/llama-build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_OPENSSL=OFF -DGGML_CUDA=OFF &&
  cmake --build "$work/llama-build" --target llama-quantize llama-completion -j 12
) > "$work/llama-build.log" 2>&1 &
build_pid=$!

xz -dc "$carry/corpus.jsonl.xz" > "$work/data/corpus.jsonl"
cp "$carry/valid.jsonl" "$carry/system.txt" "$work/data/"
stamp "corpus: $(wc -l < "$work/data/corpus.jsonl") pairs"

python3 "$repo/tools/advice-lm/train.py" --data "$work/data" --out "$work/run" "${@:3}"
stamp "training done"

if ! wait "$build_pid"; then
  tail -40 "$work/llama-build.log"
  exit 1
fi
stamp "llama-quantize built"
bin="$work/llama-build/bin"
PYTHONPATH="$work/llama.cpp/gguf-py" python3 "$work/llama.cpp/convert_hf_to_gguf.py" "$work/run/hf" \
  --outtype f32 --outfile "$work/advice-lm-f32.gguf"
"$bin/llama-quantize" "$work/advice-lm-f32.gguf" "$work/advice-lm-q8_0.gguf" Q8_0 > "$work/quantize.log" 2>&1
"$bin/llama-quantize" "$work/advice-lm-f32.gguf" "$work/advice-lm-q4_k_m.gguf" Q4_K_M >> "$work/quantize.log" 2>&1
tail -3 "$work/quantize.log"
ls -l "$work"/*.gguf
(cd "$work" && sha256sum advice-lm-q8_0.gguf advice-lm-q4_k_m.gguf advice-lm-f32.gguf) 

# A first look at llama.cpp's own generation from the Q8_0 file (greedy).
prompt="$(cat "$work/data/system.txt")$(head -1 "$work/data/valid.jsonl" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["prompt"], end="")')"
timeout 60 "$bin/llama-completion" -m "$work/advice-lm-q8_0.gguf" -p "$prompt" -n 64 --temp 0 -no-cnv -t 4 \
  2>/dev/null | tail -c 600 || echo "(llama-completion did not run)"
echo

cp "$work/run/metrics.json" "$out/"
split -b 15M -d "$work/advice-lm-q8_0.gguf" "$out/advice-lm-q8_0.gguf.part"
split -b 15M -d "$work/advice-lm-q4_k_m.gguf" "$out/advice-lm-q4_k_m.gguf.part"
ls -l "$out"
stamp "done"
