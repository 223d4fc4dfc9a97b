// libFuzzer target for the configuration reader (config/src/config.cpp): forkcast.yaml as an
// operator writes it, or as a typo leaves it.
//
// Findings are: any crash or sanitizer report; any exception from load_string other than
// ConfigError (every bad file must get the key, the value and what is allowed); and an
// accepted file whose effective configuration, written by to_yaml (`forkcast config show`),
// does not read back to the same configuration (to_yaml must be a fixed point).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "forkcast/config/config.hpp"

namespace {

namespace config = forkcast::config;

[[noreturn]] void finding(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_config finding: %s\n%s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  config::Config loaded;
  try {
    loaded = config::load_string(text, "fuzz.yaml");
    config::validate(loaded);
  } catch (const config::ConfigError&) {
    return 0;  // refused with a message naming the key: the expected outcome for most inputs
  }
  const std::string shown = config::to_yaml(loaded);
  std::string again;
  try {
    again = config::to_yaml(config::load_string(shown, "shown.yaml"));
  } catch (const config::ConfigError& e) {
    finding("`config show` output of an accepted file is refused", shown + "\n" + e.what());
  }
  if (again != shown) finding("to_yaml is not a fixed point", shown + "\n---\n" + again);
  return 0;
}
