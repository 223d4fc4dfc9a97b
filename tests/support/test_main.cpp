// main() of every forkcast test binary. CTest runs each GoogleTest case as its own process,
// in parallel, so tests that use std::filesystem::temp_directory_path() with fixed names
// would race; each process gets a private TMPDIR instead (removed when it ends).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

int main(int argc, char** argv) {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/forkcast-test-XXXXXX";
  const char* dir = mkdtemp(pattern.data());
  if (dir != nullptr) setenv("TMPDIR", dir, 1);
  testing::InitGoogleTest(&argc, argv);
  const int result = RUN_ALL_TESTS();
  if (dir != nullptr) {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  return result;
}
