// libFuzzer target for catalog imports (env/src/catalog.cpp): the meals file a user hands to
// `forkcast catalog import`, checked by Catalog::validate_import against the bundled foods.
//
// Findings are: any crash or sanitizer report, and any exception at all: validate_import
// reports every problem as "file:line: message" and never throws, so an import can list
// what is wrong with a file instead of dying on its first oddity.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>

#include "forkcast/env/catalog.hpp"

namespace {

std::unique_ptr<forkcast::env::Catalog> g_catalog;
int g_file = -1;  // an anonymous in-memory file: no disk writes per input
std::string g_path;

[[noreturn]] void finding(const char* what, const char* detail) {
  std::fprintf(stderr, "fuzz_catalog finding: %s: %s\n", what, detail);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_catalog = std::make_unique<forkcast::env::Catalog>(forkcast::env::Catalog::load(FORKCAST_SOURCE_DIR "/data"));
  g_file = memfd_create("fuzz-meals.yaml", 0);
  if (g_file < 0) finding("memfd_create failed", "");
  g_path = "/proc/self/fd/" + std::to_string(g_file);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (ftruncate(g_file, 0) != 0 || pwrite(g_file, data, size, 0) != static_cast<ssize_t>(size)) {
    finding("cannot write the input", g_path.c_str());
  }
  try {
    (void)g_catalog->validate_import(g_path);
  } catch (const std::exception& e) {
    finding("validate_import threw instead of reporting", e.what());
  }
  return 0;
}
