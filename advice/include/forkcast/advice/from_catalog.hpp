// Builds AdviceFacts from the catalog's types (target forkcast_advice_catalog, which links
// forkcast_env; forkcast_advice itself stays a leaf). Used by the CLI, the service and the
// corpus generator, so all three describe a meal the same way.
//
// Ownership: returns values; keeps no reference to the catalog.
// Errors: none beyond std::bad_alloc; validate_facts() still applies to the result.
#pragma once

#include <optional>
#include <string_view>

#include "forkcast/advice/facts.hpp"
#include "forkcast/env/catalog.hpp"
#include "forkcast/env/population.hpp"

namespace forkcast::advice {

// What the user has eaten today before this meal.
struct DayIntake {
  double kcal = 0;
  double protein_g = 0;
};

// Facts for `meal` suggested to a user with `profile` who has eaten `eaten` today. `side`,
// when given, must be a catalog meal the profile allows (the caller picks it, e.g. with
// pick_side below).
AdviceFacts facts_from_catalog(const env::Catalog& catalog, const env::Meal& meal,
                               const env::UserProfile& profile, const DayIntake& eaten,
                               const env::Meal* side = nullptr);

// A deterministic side for `meal`: the lowest-kcal snack the profile allows whose kcal fit
// in what is left of the day after the meal, or nullptr. `salt` varies the choice among the
// fitting snacks (0 = the lowest-kcal one), so different requests can see different sides.
const env::Meal* pick_side(const env::Catalog& catalog, const env::Meal& meal,
                           const env::UserProfile& profile, const DayIntake& eaten,
                           std::size_t salt = 0);

}  // namespace forkcast::advice
