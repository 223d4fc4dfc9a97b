#include "sampling.hpp"

#include <algorithm>
#include <array>
#include <string_view>

#include "forkcast/advice/from_catalog.hpp"

namespace forkcast::advice_lm {

namespace {

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

template <typename T>
const T& pick(const std::vector<T>& v, std::mt19937_64& rng) {
  return v[std::uniform_int_distribution<std::size_t>(0, v.size() - 1)(rng)];
}

bool chance(double p, std::mt19937_64& rng) {
  return std::uniform_real_distribution<double>(0, 1)(rng) < p;
}

// Replaces {key} placeholders.
std::string fill(std::string text, const std::vector<std::pair<std::string, std::string>>& values) {
  for (const auto& [k, v] : values) {
    const std::string key = "{" + k + "}";
    for (std::size_t pos = text.find(key); pos != std::string::npos;
         pos = text.find(key, pos + v.size())) {
      text.replace(pos, key.size(), v);
    }
  }
  return text;
}

}  // namespace

World load_world(const std::filesystem::path& data_dir) {
  auto catalog = env::Catalog::load(data_dir);
  auto population = env::Population::load(data_dir / "population.yaml");
  auto split = split_meals(catalog);
  return {std::move(catalog), std::move(population), std::move(split)};
}

MealSplit split_meals(const env::Catalog& catalog, double heldout_fraction) {
  std::vector<std::size_t> order(catalog.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return fnv1a(catalog.meals()[a].id) < fnv1a(catalog.meals()[b].id);
  });
  const auto n_heldout =
      static_cast<std::size_t>(static_cast<double>(order.size()) * heldout_fraction + 0.5);
  MealSplit split;
  split.heldout.assign(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n_heldout));
  split.train.assign(order.begin() + static_cast<std::ptrdiff_t>(n_heldout), order.end());
  std::sort(split.heldout.begin(), split.heldout.end());
  std::sort(split.train.begin(), split.train.end());
  return split;
}

advice::AdviceFacts sample_facts(const env::Catalog& catalog, const env::Population& population,
                                 const std::vector<std::size_t>& meals, std::mt19937_64& rng) {
  for (;;) {
    env::User user = population.sample(catalog, rng);
    // Extra exclusions beyond the archetypes' so every allergen shows up in the corpus.
    if (chance(0.3, rng)) {
      user.profile.excluded |= static_cast<env::AllergenSet>(
          1U << std::uniform_int_distribution<int>(0, env::kNumAllergens - 1)(rng));
    }
    if (chance(0.15, rng)) {
      user.profile.diet =
          static_cast<env::DietPreference>(std::uniform_int_distribution<int>(1, 3)(rng));
    }
    std::vector<std::size_t> allowed;
    for (auto m : meals) {
      if (user.profile.allows(catalog.meals()[m])) allowed.push_back(m);
    }
    if (allowed.empty()) continue;
    const env::Meal& meal = catalog.meals()[pick(allowed, rng)];
    // What was eaten before this slot: a share of the day's target typical of the slot,
    // sometimes past it so "over budget" advice is learned too.
    static constexpr std::array<std::pair<double, double>, env::kNumSlots> kEatenShare = {
        {{0.0, 0.15}, {0.15, 0.5}, {0.35, 0.95}, {0.2, 1.05}}};
    const auto [lo, hi] = kEatenShare[static_cast<int>(meal.slot)];
    const double target = user.profile.kcal_target();
    const double share = std::uniform_real_distribution<double>(lo, hi)(rng);
    advice::DayIntake eaten{share * target,
                            share * user.profile.protein_target_g() *
                                std::uniform_real_distribution<double>(0.6, 1.3)(rng)};
    const env::Meal* side = nullptr;
    if (chance(0.6, rng)) {
      side = advice::pick_side(catalog, meal, user.profile, eaten,
                               std::uniform_int_distribution<std::size_t>(0, 7)(rng));
      // Sides only from the same meal list, so held-out meals never appear in the corpus.
      if (side != nullptr) {
        const auto index = static_cast<std::size_t>(side - catalog.meals().data());
        if (!std::binary_search(meals.begin(), meals.end(), index)) side = nullptr;
      }
    }
    return advice::facts_from_catalog(catalog, meal, user.profile, eaten, side);
  }
}

std::string synthetic_meal_name(const env::Catalog& catalog, std::mt19937_64& rng) {
  // Words of real meal names, recombined: the name is then something the model can only
  // copy from the prompt, never recall, which is what it must do for unseen meals.
  std::string name;
  const int words = std::uniform_int_distribution<int>(2, 6)(rng);
  for (int w = 0; w < words; ++w) {
    const auto& source =
        catalog.meals()[std::uniform_int_distribution<std::size_t>(0, catalog.size() - 1)(rng)]
            .name;
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= source.size(); ++i) {
      if (i == source.size() || source[i] == ' ') {
        if (i > start) parts.push_back(source.substr(start, i - start));
        start = i + 1;
      }
    }
    std::string word = pick(parts, rng);
    if (w == 0 && !word.empty() && word[0] >= 'a' && word[0] <= 'z')
      word[0] = static_cast<char>(word[0] - 'a' + 'A');
    name += (name.empty() ? "" : " ") + word;
  }
  return name;
}

std::string sample_advice(const advice::AdviceFacts& f, std::mt19937_64& rng) {
  const advice::FactNumbers x = advice::fact_numbers(f);
  const std::vector<std::pair<std::string, std::string>> values = {
      {"meal", f.meal_name},
      {"slot", f.slot},
      {"kcal", std::to_string(x.kcal)},
      {"protein", std::to_string(x.protein_g)},
      {"carbs", std::to_string(x.carbs_g)},
      {"fat", std::to_string(x.fat_g)},
      {"fiber", std::to_string(x.fiber_g)},
      {"sodium", std::to_string(x.sodium_mg)},
      {"day", std::to_string(x.day_kcal)},
      {"left", std::to_string(x.left_kcal)},
      {"after", std::to_string(x.after_kcal)},
      {"over", std::to_string(x.over_kcal)},
      {"pct", std::to_string(x.pct_day)},
      {"dayprot", std::to_string(x.day_protein_g)},
      {"protleft", std::to_string(x.protein_left_g)},
      {"pctprot", std::to_string(x.pct_protein)},
      {"side", f.side_name},
      {"sidekcal", std::to_string(x.side_kcal)},
  };
  static const std::vector<std::string> openings = {
      "{meal} is a good {slot} pick at {kcal} kcal with {protein} g protein.",
      "For {slot}, {meal} gives you {kcal} kcal and {protein} g protein.",
      "{meal} brings {kcal} kcal, {carbs} g carbs and {fat} g fat to your {slot}.",
      "Try {meal} for {slot}: {kcal} kcal and {protein} g protein per serving.",
      "At {kcal} kcal, {meal} covers {pct}% of your {day} kcal day.",
      "{meal} has {kcal} kcal, {protein} g protein and {fiber} g fiber.",
      "Your {slot} suggestion is {meal}, with {kcal} kcal per serving.",
      "{meal} makes a {kcal} kcal {slot} with {protein} g protein and {carbs} g carbs.",
  };
  static const std::vector<std::string> fits = {
      "It leaves you {after} kcal for the rest of the day.",
      "After it you still have {after} kcal of your {day} kcal target.",
      "That is {pct}% of today's {day} kcal, with {after} kcal left.",
      "You have {left} kcal left today, so it fits with {after} kcal to spare.",
      "It fits your budget: {after} kcal remain afterwards.",
  };
  static const std::vector<std::string> over_budget = {
      "It goes {over} kcal past your {day} kcal target, so keep the rest of today light.",
      "Heads up: it puts you {over} kcal over today's budget.",
      "It runs {over} kcal over your {day} kcal target, so go easy later.",
      "It takes you {over} kcal beyond your {day} kcal day.",
  };
  static const std::vector<std::string> protein_lines = {
      "It covers {pctprot}% of your {dayprot} g protein target.",
      "You still need {protleft} g protein today after it.",
      "That is {pctprot}% of your daily protein.",
  };
  static const std::vector<std::string> protein_done = {
      "With it you reach your {dayprot} g protein target for the day.",
  };
  static const std::vector<std::string> goal_lines = {
      "A sensible choice while you work on losing weight.",  // lose
      "A steady choice to keep you on track.",               // maintain
      "Good fuel while you build up.",                       // gain
  };
  static const std::vector<std::string> sodium_lines = {
      "Watch the salt: it has {sodium} mg sodium.",
      "Mind the {sodium} mg of sodium and drink some water.",
  };
  static const std::vector<std::string> fiber_lines = {
      "Its {fiber} g fiber helps keep you full.",
      "With {fiber} g fiber it should keep you satisfied.",
  };
  static const std::vector<std::string> side_lines = {
      "Pair it with {side} ({sidekcal} kcal) if you want more.",
      "Add {side} on the side for {sidekcal} kcal.",
      "If you are still hungry, {side} adds {sidekcal} kcal.",
  };

  std::string text = fill(pick(openings, rng), values);
  text += " " + fill(x.over_kcal > 0 ? pick(over_budget, rng) : pick(fits, rng), values);
  // One more sentence, each kind only where it is true of the facts.
  std::vector<int> extra;
  if (!f.side_name.empty()) extra.insert(extra.end(), {0, 0});
  extra.push_back(1);
  if (x.sodium_mg >= 800) extra.push_back(2);
  if (x.fiber_g >= 6) extra.push_back(3);
  extra.push_back(4);
  switch (pick(extra, rng)) {
    case 0:
      text += " " + fill(pick(side_lines, rng), values);
      break;
    case 1: {
      const int g = f.goal == "lose" ? 0 : f.goal == "gain" ? 2 : 1;
      text += " " + goal_lines[static_cast<std::size_t>(g)];
      break;
    }
    case 2:
      text += " " + fill(pick(sodium_lines, rng), values);
      break;
    case 3:
      text += " " + fill(pick(fiber_lines, rng), values);
      break;
    default:
      text += " " + fill(x.protein_left_g > 0 ? pick(protein_lines, rng) : pick(protein_done, rng),
                         values);
      break;
  }
  if (!advice::check_grounding(text, f).ok()) return "";
  return text;
}

}  // namespace forkcast::advice_lm
