// The meal slots of a day, spelled once: the catalog, the simulator, the API, the database's
// `slot` enum, advice facts and the reports all use these names, in this order (the index is
// the slot's number everywhere: breakfast 0 .. snack 3). It lives in config/, the module
// every other one may include, so that db/ and advice/ (which include nothing of env/) share
// the same table.
#pragma once

#include <array>
#include <string_view>

namespace forkcast::config {

inline constexpr int kNumMealSlots = 4;
inline constexpr std::array<std::string_view, kNumMealSlots> kMealSlotNames = {"breakfast", "lunch", "dinner", "snack"};

}  // namespace forkcast::config
