// What the learning tests share: a decision log of simulated weeks, written to a real
// database as `forkcast serve` writes it (tests/learning/*_test.cpp).
#pragma once

#include <cstdint>

#include "forkcast/db/database.hpp"
#include "forkcast/env/catalog.hpp"

namespace forkcast::learning::testing {

// The origin of the simulated weeks' times: far from now, so that they never mix with others.
inline const db::Timestamp kT0 = db::Timestamp(std::chrono::microseconds(1'900'000'000'000'000LL));

// The shipped catalog (data/), loaded once.
const env::Catalog& shipped_catalog();
// The bundled model file (models/policies/mealsim-dqn-default.safetensors).
inline constexpr const char* kBundledModel = FORKCAST_SOURCE_DIR "/models/policies/mealsim-dqn-default.safetensors";

// `users` simulated weeks (evaluation::generate_synthetic_log with `seed`: a softmax logging
// policy over the myopic scores), one decision every 3 hours per user from kT0, feedback a
// minute later, the candidates' recency as candidate features, the catalog's version in
// the context. Creates the users. Returns the number of decisions written.
std::int64_t log_simulated_weeks(db::Database& db, const env::Catalog& catalog, int users, std::uint64_t seed);

}  // namespace forkcast::learning::testing
