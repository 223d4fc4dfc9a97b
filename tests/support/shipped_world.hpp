// The catalog and population shipped in data/, loaded once per test binary (header-only:
// binaries that include it link forkcast_env themselves). Needs FORKCAST_SOURCE_DIR,
// which forkcast_test defines.
#pragma once

#include <filesystem>

#include "forkcast/env/catalog.hpp"
#include "forkcast/env/population.hpp"

namespace forkcast::test {

inline const std::filesystem::path kShippedData = FORKCAST_SOURCE_DIR "/data";

inline const env::Catalog& shipped_catalog() {
  static const env::Catalog c = env::Catalog::load(kShippedData);
  return c;
}

inline const env::Population& shipped_population() {
  static const env::Population p = env::Population::load(kShippedData / "population.yaml");
  return p;
}

}  // namespace forkcast::test
