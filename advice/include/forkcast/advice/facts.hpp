// Grounded meal advice without a model: the facts an advice may use, the prompt built
// from them, the deterministic template advice, and the grounding check every text
// passes before it is returned (docs/advice.md).
//
// advice/ is a leaf module: these are plain values the caller fills from the catalog
// and the user's profile (forkcast/advice/from_catalog.hpp does that for env types).
// Nothing here keeps state; every function is pure and thread-safe.
// Errors: validate_facts() throws std::invalid_argument naming the field and the value;
// the other functions never throw except std::bad_alloc.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace forkcast::advice {

// Nutrition of one serving, as the catalog computes it (never typed by hand).
struct Nutrition {
  double kcal = 0;
  double protein_g = 0;
  double carbs_g = 0;
  double fat_g = 0;
  double fiber_g = 0;
  double sodium_mg = 0;
};

// Everything an advice text may say. Strings are catalog vocabulary.
struct AdviceFacts {
  std::string meal_id;    // catalog id, e.g. "chicken_rice_bowl"
  std::string meal_name;  // display name; every advice names it
  std::string slot;       // breakfast | lunch | dinner | snack
  std::string cuisine;    // may be empty
  Nutrition per_serving;
  double day_kcal_target = 0;       // the user's daily target (> 0)
  double day_protein_target_g = 0;  // the user's daily protein target (> 0)
  double eaten_kcal = 0;            // already eaten today, before this meal
  double eaten_protein_g = 0;
  std::string goal = "maintain";      // lose | maintain | gain
  std::string diet = "none";          // none | vegetarian | vegan | pescatarian
  std::vector<std::string> excluded;  // allergens the user must never get: milk, egg, fish,
                                      // shellfish, tree_nuts, peanuts, gluten, soy, sesame
  std::string side_name;  // optional: a catalog item that is safe for this user; "" = none
  double side_kcal = 0;   // that side's kcal per serving
};

// Throws std::invalid_argument naming the field and the bad value (empty meal name,
// negative nutrient, target <= 0, unknown slot/goal/diet/allergen).
void validate_facts(const AdviceFacts& facts);

// The integers an advice may print, already rounded (half away from zero), so a model
// copies them rather than doing arithmetic. The grounding check accepts exactly these.
struct FactNumbers {
  long kcal = 0, protein_g = 0, carbs_g = 0, fat_g = 0, fiber_g = 0, sodium_mg = 0;
  long day_kcal = 0;        // daily target
  long left_kcal = 0;       // budget left before the meal, >= 0
  long after_kcal = 0;      // left after the meal, >= 0 (0 when it goes over)
  long over_kcal = 0;       // how far the meal goes over the day's target, >= 0
  long pct_day = 0;         // meal kcal as % of the daily target
  long day_protein_g = 0;   // daily protein target
  long protein_left_g = 0;  // protein still to eat after this meal, >= 0
  long pct_protein = 0;     // meal protein as % of the daily protein target
  long side_kcal = 0;
};
FactNumbers fact_numbers(const AdviceFacts& facts);

// The prompt, in two parts: the shared system text (identical for every request, so its
// KV state is computed once and reused) and the per-request facts.
std::string_view system_prompt();
std::string facts_prompt(const AdviceFacts& facts);
// The bundled model's raw format: system_prompt() + facts_prompt(facts) + "Advice:".
// The model was trained on exactly this layout (tools/advice-lm).
inline constexpr std::string_view kAdviceCue = "Advice:";

// Deterministic advice built from the facts only; always passes check_grounding.
std::string template_advice(const AdviceFacts& facts);

// Which grounding rule a text broke; ok when none.
enum class GroundingRule : std::uint8_t {
  ok,
  empty,               // no text at all
  meal_not_named,      // the meal's name does not appear
  unknown_number,      // a number matches no fact after rounding
  excluded_ingredient  // an allergen or diet-excluded food of the user is named
};
std::string_view rule_name(GroundingRule rule);  // "ok", "meal_not_named", ...

struct GroundingResult {
  GroundingRule rule = GroundingRule::ok;
  std::string detail;  // what failed, e.g. "number 37 matches no fact"
  bool ok() const noexcept { return rule == GroundingRule::ok; }
};

struct GroundingOptions {
  // Off while checking a streamed sentence: the meal may be named in a later one.
  bool require_meal_name = true;
};

// Rules (docs/advice.md): (1) the meal name appears (case-insensitive); (2) every number
// outside the meal and side names equals one of fact_numbers(), or, written with one
// decimal, a nutrient rounded to one decimal; (3) no word of the user's excluded allergens
// or diet appears (e.g. "cheese" for milk, "chicken" for vegetarian), outside those names.
GroundingResult check_grounding(std::string_view text, const AdviceFacts& facts,
                                const GroundingOptions& options = {});

}  // namespace forkcast::advice
