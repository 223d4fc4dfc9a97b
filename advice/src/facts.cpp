// Facts, prompt and template advice. The prompt carries every number already rounded so
// that a small model only has to copy, never to compute (docs/advice.md, "Prompt").
#include <cmath>
#include <initializer_list>
#include <span>
#include <stdexcept>
#include <string>

#include "forkcast/advice/facts.hpp"
#include "forkcast/config/slots.hpp"
#include "text_util.hpp"

namespace forkcast::advice {

namespace {

void require_finite_nonnegative(double value, const char* field) {
  if (!std::isfinite(value) || value < 0) {
    throw std::invalid_argument(std::string("advice facts: ") + field + ": " +
                                std::to_string(value) + " must be a finite number >= 0");
  }
}

void require_one_of(const std::string& value, const char* field, std::span<const std::string_view> allowed) {
  for (auto a : allowed) {
    if (value == a) return;
  }
  std::string list;
  for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
  throw std::invalid_argument(std::string("advice facts: ") + field + ": '" + value +
                              "' is not one of " + list);
}

void require_one_of(const std::string& value, const char* field, std::initializer_list<std::string_view> allowed) {
  require_one_of(value, field, std::span<const std::string_view>(allowed.begin(), allowed.size()));
}

long round_half_away(double v) { return std::lround(v); }

}  // namespace

void validate_facts(const AdviceFacts& f) {
  if (f.meal_name.empty())
    throw std::invalid_argument("advice facts: meal_name: must not be empty");
  require_one_of(f.slot, "slot", config::kMealSlotNames);
  require_one_of(f.goal, "goal", {"lose", "maintain", "gain"});
  require_one_of(f.diet, "diet", {"none", "vegetarian", "vegan", "pescatarian"});
  for (const auto& a : f.excluded) {
    require_one_of(
        a, "excluded",
        {"milk", "egg", "fish", "shellfish", "tree_nuts", "peanuts", "gluten", "soy", "sesame"});
  }
  const auto& n = f.per_serving;
  require_finite_nonnegative(n.kcal, "per_serving.kcal");
  require_finite_nonnegative(n.protein_g, "per_serving.protein_g");
  require_finite_nonnegative(n.carbs_g, "per_serving.carbs_g");
  require_finite_nonnegative(n.fat_g, "per_serving.fat_g");
  require_finite_nonnegative(n.fiber_g, "per_serving.fiber_g");
  require_finite_nonnegative(n.sodium_mg, "per_serving.sodium_mg");
  require_finite_nonnegative(f.eaten_kcal, "eaten_kcal");
  require_finite_nonnegative(f.eaten_protein_g, "eaten_protein_g");
  require_finite_nonnegative(f.side_kcal, "side_kcal");
  if (!std::isfinite(f.day_kcal_target) || f.day_kcal_target <= 0) {
    throw std::invalid_argument(
        "advice facts: day_kcal_target: " + std::to_string(f.day_kcal_target) + " must be > 0");
  }
  if (!std::isfinite(f.day_protein_target_g) || f.day_protein_target_g <= 0) {
    throw std::invalid_argument("advice facts: day_protein_target_g: " +
                                std::to_string(f.day_protein_target_g) + " must be > 0");
  }
}

FactNumbers fact_numbers(const AdviceFacts& f) {
  FactNumbers r;
  const auto& n = f.per_serving;
  r.kcal = round_half_away(n.kcal);
  r.protein_g = round_half_away(n.protein_g);
  r.carbs_g = round_half_away(n.carbs_g);
  r.fat_g = round_half_away(n.fat_g);
  r.fiber_g = round_half_away(n.fiber_g);
  r.sodium_mg = round_half_away(n.sodium_mg);
  r.day_kcal = round_half_away(f.day_kcal_target);
  const double left = std::max(0.0, f.day_kcal_target - f.eaten_kcal);
  r.left_kcal = round_half_away(left);
  // Derived values come from the unrounded facts, then are rounded once, so that
  // "after" is the true remainder rather than a difference of two rounded numbers.
  const double after = f.day_kcal_target - f.eaten_kcal - n.kcal;
  r.after_kcal = after >= 0 ? round_half_away(after) : 0;
  r.over_kcal = after < 0 ? round_half_away(-after) : 0;
  r.pct_day = f.day_kcal_target > 0 ? round_half_away(100.0 * n.kcal / f.day_kcal_target) : 0;
  r.day_protein_g = round_half_away(f.day_protein_target_g);
  r.protein_left_g =
      round_half_away(std::max(0.0, f.day_protein_target_g - f.eaten_protein_g - n.protein_g));
  r.pct_protein = f.day_protein_target_g > 0
                      ? round_half_away(100.0 * n.protein_g / f.day_protein_target_g)
                      : 0;
  r.side_kcal = f.side_name.empty() ? 0 : round_half_away(f.side_kcal);
  return r;
}

std::string_view system_prompt() {
  // Kept short: every token here is evaluated once per context, but a small model also
  // attends over it on every generated token.
  return "You are forkcast's meal coach. Write two or three short sentences of advice about the "
         "suggested meal, using only the facts below. Name the meal, copy numbers exactly, and "
         "never "
         "mention a food the user avoids.\n";
}

std::string facts_prompt(const AdviceFacts& f) {
  const FactNumbers x = fact_numbers(f);
  std::string s;
  s.reserve(512);
  s += "Meal: " + f.meal_name + "\n";
  s += "Slot: " + f.slot + "\n";
  s += "Serving: " + std::to_string(x.kcal) + " kcal, " + std::to_string(x.protein_g) +
       " g protein, " + std::to_string(x.carbs_g) + " g carbs, " + std::to_string(x.fat_g) +
       " g fat, " + std::to_string(x.fiber_g) + " g fiber, " + std::to_string(x.sodium_mg) +
       " mg sodium\n";
  s += "Day: target " + std::to_string(x.day_kcal) + " kcal, left " + std::to_string(x.left_kcal) +
       " kcal, after " + std::to_string(x.after_kcal) + " kcal, over " +
       std::to_string(x.over_kcal) + " kcal, share " + std::to_string(x.pct_day) + "%\n";
  s += "Protein: target " + std::to_string(x.day_protein_g) + " g, left after " +
       std::to_string(x.protein_left_g) + " g, share " + std::to_string(x.pct_protein) + "%\n";
  s += "Goal: " + f.goal + "\n";
  s += "Diet: " + f.diet + "\n";
  std::string avoid;
  for (const auto& a : f.excluded)
    avoid += (avoid.empty() ? "" : ", ") + detail::display_allergen(a);
  s += "Avoid: " + (avoid.empty() ? std::string("none") : avoid) + "\n";
  if (f.side_name.empty()) {
    s += "Side: none\n";
  } else {
    s += "Side: " + f.side_name + " (" + std::to_string(x.side_kcal) + " kcal)\n";
  }
  return s;
}

std::string template_advice(const AdviceFacts& f) {
  const FactNumbers x = fact_numbers(f);
  std::string s = f.meal_name + " for " + f.slot + ": " + std::to_string(x.kcal) + " kcal with " +
                  std::to_string(x.protein_g) + " g protein, " + std::to_string(x.carbs_g) +
                  " g carbs and " + std::to_string(x.fat_g) + " g fat.";
  if (x.over_kcal > 0) {
    s += " It puts you " + std::to_string(x.over_kcal) + " kcal over your " +
         std::to_string(x.day_kcal) + " kcal day, so keep the rest of today light.";
  } else {
    s += " That is " + std::to_string(x.pct_day) + "% of your " + std::to_string(x.day_kcal) +
         " kcal day and leaves " + std::to_string(x.after_kcal) + " kcal for later.";
  }
  if (f.goal == "lose") {
    s += " A filling choice while you trim calories.";
  } else if (f.goal == "gain") {
    s += " Good fuel while you build up.";
  } else {
    s += " A steady choice to keep you on track.";
  }
  if (!f.side_name.empty()) {
    s += " Add " + f.side_name + " (" + std::to_string(x.side_kcal) +
         " kcal) if you are still hungry.";
  }
  return s;
}

}  // namespace forkcast::advice
