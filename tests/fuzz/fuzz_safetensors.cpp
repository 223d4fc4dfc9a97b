// libFuzzer target for the safetensors reader (policy/src/checkpoint.cpp).
//
// Findings are: any crash or sanitizer report; any exception from parse_safetensors other
// than CheckpointError (it escapes, std::terminate aborts, libFuzzer reports the input);
// and any accepted input whose tensors do not survive serialize -> parse unchanged, or whose
// re-serialized bytes are not a fixed point of parse -> serialize. Build and run:
// tests/fuzz/README.md.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "forkcast/policy/checkpoint.hpp"

namespace {

using forkcast::policy::Checkpoint;

bool same_checkpoint(const Checkpoint& a, const Checkpoint& b) {
  if (a.metadata != b.metadata || a.tensors.size() != b.tensors.size()) return false;
  // Both come from parse_safetensors, which returns tensors in name order.
  for (std::size_t i = 0; i < a.tensors.size(); ++i) {
    const auto& x = a.tensors[i];
    const auto& y = b.tensors[i];
    if (x.name != y.name || x.dtype != y.dtype || x.shape != y.shape || x.data != y.data) {
      return false;
    }
  }
  return true;
}

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "fuzz_safetensors finding: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace policy = forkcast::policy;
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  Checkpoint parsed;
  try {
    parsed = policy::parse_safetensors(bytes, "fuzz-input");
  } catch (const policy::CheckpointError&) {
    return 0;  // rejected cleanly: the expected outcome for most inputs
  }

  // Whatever the reader accepts, the writer must be able to write and read back.
  std::vector<std::byte> written;
  Checkpoint reread;
  try {
    written = policy::serialize_safetensors(parsed);
    reread = policy::parse_safetensors(written, "reserialized");
  } catch (const policy::CheckpointError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    finding("an accepted checkpoint could not be re-serialized and re-parsed");
  }
  if (!same_checkpoint(parsed, reread)) finding("tensors changed through serialize -> parse");
  if (policy::serialize_safetensors(reread) != written) {
    finding("serialize -> parse -> serialize is not a fixed point");
  }
  return 0;
}
