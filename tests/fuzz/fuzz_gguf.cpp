// libFuzzer target for the GGUF loading path of the advice engine (llama.cpp, vendored in
// third_party/llama.cpp): gguf_init_from_buffer with tensor metadata (no_alloc), every key,
// array and tensor read back, the metadata re-written; then, for what gguf accepts,
// llama_model_load_from_file with vocab_only (architecture, hyper-parameters, tokenizer),
// where llama.cpp's published GGUF CVEs lived.
//
// Findings are: any crash or sanitizer report, in llama.cpp's code too (the whole build is
// instrumented); and accepted metadata whose re-written size disagrees with
// gguf_get_meta_size. forkcast itself loads only a model whose sha256 is in the manifest
// (docs/security.md), so this is the defence behind that one, for --allow-unknown-model.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ggml.h"
#include "gguf.h"
#include "llama.h"

namespace {

int g_file = -1;
std::string g_path;
volatile std::size_t g_sink = 0;  // keeps the reads below from being optimised away

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "fuzz_gguf finding: %s\n", what);
  std::abort();
}

void quiet(enum ggml_log_level, const char*, void*) {}

void read_everything(const gguf_context* ctx) {
  std::size_t sum = 0;
  for (int64_t k = 0; k < gguf_get_n_kv(ctx); ++k) {
    sum += std::string(gguf_get_key(ctx, k)).size();
    const auto type = gguf_get_kv_type(ctx, k);
    if (type == GGUF_TYPE_STRING) {
      sum += std::string(gguf_get_val_str(ctx, k)).size();
    } else if (type == GGUF_TYPE_ARRAY) {
      const std::size_t n = gguf_get_arr_n(ctx, k);
      if (gguf_get_arr_type(ctx, k) == GGUF_TYPE_STRING) {
        for (std::size_t i = 0; i < n; ++i) sum += std::string(gguf_get_arr_str(ctx, k, i)).size();
      } else if (n > 0) {
        sum += *static_cast<const unsigned char*>(gguf_get_arr_data(ctx, k));
      }
    } else {
      sum += *static_cast<const unsigned char*>(gguf_get_val_data(ctx, k));
    }
  }
  for (int64_t t = 0; t < gguf_get_n_tensors(ctx); ++t) {
    sum += std::string(gguf_get_tensor_name(ctx, t)).size() + gguf_get_tensor_offset(ctx, t) +
              gguf_get_tensor_size(ctx, t) + static_cast<std::size_t>(gguf_get_tensor_ne(ctx, t)[0]);
  }
  g_sink = sum;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  llama_log_set(quiet, nullptr);
  ggml_log_set(quiet, nullptr);
  llama_backend_init();
  g_file = memfd_create("fuzz.gguf", 0);
  if (g_file < 0) finding("memfd_create failed");
  g_path = "/proc/self/fd/" + std::to_string(g_file);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ggml_context* tensors = nullptr;
  gguf_context* ctx = gguf_init_from_buffer(data, size, gguf_init_params{/*no_alloc=*/true, &tensors});
  if (ctx == nullptr) return 0;  // refused: the expected outcome for most inputs
  read_everything(ctx);
  const std::size_t meta_size = gguf_get_meta_size(ctx);
  std::vector<std::uint8_t> meta(meta_size);
  gguf_get_meta_data(ctx, meta.data());
  gguf_context* again = gguf_init_from_buffer(meta.data(), meta.size(), gguf_init_params{true, nullptr});
  if (again == nullptr && gguf_get_n_tensors(ctx) == 0) finding("re-written metadata without tensors is refused");
  if (again != nullptr) gguf_free(again);
  gguf_free(ctx);
  if (tensors != nullptr) ggml_free(tensors);

  // llama.cpp's loader on the same bytes, vocabulary only (no weights are read).
  if (ftruncate(g_file, 0) != 0 || pwrite(g_file, data, size, 0) != static_cast<ssize_t>(size)) {
    finding("cannot write the input");
  }
  llama_model_params params = llama_model_default_params();
  params.vocab_only = true;
  params.n_gpu_layers = 0;
  if (llama_model* model = llama_model_load_from_file(g_path.c_str(), params)) llama_model_free(model);
  return 0;
}
