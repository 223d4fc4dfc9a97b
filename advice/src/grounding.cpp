// The grounding check (docs/advice.md, "Grounding"). Conservative by design: a false
// alarm only costs a template advice, a miss could tell an allergic user to eat peanuts.
#include <algorithm>
#include <array>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "forkcast/advice/facts.hpp"
#include "text_util.hpp"

namespace forkcast::advice {

namespace {

using WordList = std::initializer_list<std::string_view>;

// Words that name a food of each allergen or excluded group. Singular forms; the matcher
// also accepts the word with a trailing "s" or "es".
struct Lexicon {
  std::string_view group;
  WordList words;
};
const std::array<Lexicon, 13> kLexicons = {{
    {"milk",
     {"milk", "cheese", "butter", "cream", "yogurt", "yoghurt", "whey", "dairy", "parmesan",
      "mozzarella", "feta", "ricotta", "cheddar", "paneer", "ghee", "buttermilk", "queso",
      "custard", "latte", "pizza", "lasagna", "quesadilla", "gelato", "kefir", "alfredo",
      "tzatziki", "raita", "lassi", "cheesy"}},
    {"egg",
     {"egg", "omelet", "omelette", "mayonnaise", "mayo", "meringue", "frittata", "eggnog",
      "quiche", "aioli", "custard", "shakshuka", "carbonara", "eggy"}},
    {"fish",
     {"fish", "salmon", "tuna", "cod", "sardine", "anchovy", "anchovie", "trout", "mackerel",
      "tilapia", "halibut", "lox"}},
    {"shellfish",
     {"shellfish", "shrimp", "prawn", "crab", "lobster", "scallop", "clam", "mussel", "oyster"}},
    {"tree_nuts",
     {"almond", "walnut", "cashew", "pecan", "pistachio", "hazelnut", "nut", "macadamia", "nutty"}},
    {"peanuts", {"peanut", "nut", "nutty"}},
    {"gluten",
     {"wheat", "bread", "pasta", "gluten", "barley", "rye", "couscous", "bagel", "toast", "cracker",
      "seitan", "spaghetti", "noodle", "flour", "biscuit", "muffin", "pancake", "waffle",
      "pita", "tortilla", "pizza", "ramen", "lasagna", "pretzel", "croissant", "naan", "udon",
      "dumpling", "burrito", "quesadilla", "semolina", "bulgur", "panko", "crouton"}},
    {"soy", {"soy", "soya", "tofu", "edamame", "tempeh", "miso", "soybean"}},
    {"sesame", {"sesame", "tahini"}},
    // Diet groups (not allergens): the diet decides which of these are excluded.
    {"meat",
     {"beef", "pork", "bacon", "ham", "sausage", "steak", "lamb", "chorizo", "pepperoni", "salami",
      "meatball", "meatloaf", "rib", "jerky", "carnitas", "brisket", "veal", "meat", "burger"}},
    {"poultry", {"chicken", "turkey", "duck"}},
    {"honey", {"honey"}},
    {"gelatin", {"gelatin"}},
}};

std::vector<std::string_view> excluded_groups(const AdviceFacts& f) {
  std::vector<std::string_view> groups;
  for (const auto& a : f.excluded) groups.emplace_back(a);
  if (f.diet == "vegetarian" || f.diet == "vegan") {
    groups.insert(groups.end(), {"meat", "poultry", "fish", "shellfish", "gelatin"});
  }
  if (f.diet == "vegan") groups.insert(groups.end(), {"milk", "egg", "honey"});
  if (f.diet == "pescatarian") groups.insert(groups.end(), {"meat", "poultry", "gelatin"});
  return groups;
}

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Blanks out every occurrence of `name` in `text` (both lower-case): the meal and side
// names are facts themselves, so their words and digits ("two slices", "7-layer") are not
// judged as free text.
void blank_name(std::string& text, const std::string& name) {
  if (name.empty()) return;
  for (std::size_t pos = text.find(name); pos != std::string::npos;
       pos = text.find(name, pos + name.size())) {
    std::fill(text.begin() + static_cast<std::ptrdiff_t>(pos),
              text.begin() + static_cast<std::ptrdiff_t>(pos + name.size()), ' ');
  }
}

// Words that contain a food's name but are not that food.
constexpr std::array<std::string_view, 4> kNotTheFood = {"butternut", "buttercup", "eggplant", "buckwheat"};

// The word is the food, its plural, or a compound of it: a name of 4 letters or more at
// the word's start or end ("cornbread", "cheesecake", "creamy", "milkshake"). Conservative
// on purpose: a false alarm only costs the template answer.
bool word_matches(std::string_view word, std::string_view lex) {
  if (word == lex) return true;
  if (word.size() == lex.size() + 1 && word.back() == 's' && word.substr(0, lex.size()) == lex)
    return true;
  if (word.size() == lex.size() + 2 && word.substr(lex.size()) == "es" &&
      word.substr(0, lex.size()) == lex) {
    return true;
  }
  if (lex.size() >= 4 && word.size() > lex.size() && (word.starts_with(lex) || word.ends_with(lex))) {
    return std::find(kNotTheFood.begin(), kNotTheFood.end(), word) == kNotTheFood.end();
  }
  return false;
}

std::string format_number(double v) {
  char buf[32];
  if (v == std::floor(v)) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f", v);
  }
  return buf;
}

}  // namespace

std::string_view rule_name(GroundingRule rule) {
  switch (rule) {
    case GroundingRule::ok:
      return "ok";
    case GroundingRule::empty:
      return "empty";
    case GroundingRule::meal_not_named:
      return "meal_not_named";
    case GroundingRule::unknown_number:
      return "unknown_number";
    case GroundingRule::excluded_ingredient:
      return "excluded_ingredient";
  }
  return "unknown";
}

GroundingResult check_grounding(std::string_view text, const AdviceFacts& f,
                                const GroundingOptions& options) {
  GroundingResult result;
  bool any = false;
  for (char c : text) any = any || !std::isspace(static_cast<unsigned char>(c));
  if (!any) return {GroundingRule::empty, "the text is empty"};

  std::string lower = detail::lower_ascii(text);
  const std::string meal = detail::lower_ascii(f.meal_name);
  if (options.require_meal_name && lower.find(meal) == std::string::npos) {
    return {GroundingRule::meal_not_named, "the meal '" + f.meal_name + "' is not named"};
  }
  // Longer name first, so a side whose name contains the meal's (or the reverse) is
  // blanked whole.
  const std::string side = detail::lower_ascii(f.side_name);
  if (side.size() > meal.size()) {
    blank_name(lower, side);
    blank_name(lower, meal);
  } else {
    blank_name(lower, meal);
    blank_name(lower, side);
  }

  // Numbers: integers must be one of the rounded facts; a one-decimal number must be a
  // nutrient rounded to one decimal (a model may copy the catalog's precision).
  const FactNumbers x = fact_numbers(f);
  const std::set<long> integers = {x.kcal,           x.protein_g,   x.carbs_g,  x.fat_g,
                                   x.fiber_g,        x.sodium_mg,   x.day_kcal, x.left_kcal,
                                   x.after_kcal,     x.over_kcal,   x.pct_day,  x.day_protein_g,
                                   x.protein_left_g, x.pct_protein, x.side_kcal};
  const auto& n = f.per_serving;
  std::set<long> tenths;  // one-decimal values times ten
  for (double v : {n.kcal, n.protein_g, n.carbs_g, n.fat_g, n.fiber_g, n.sodium_mg})
    tenths.insert(std::lround(v * 10));
  for (std::size_t i = 0; i < lower.size();) {
    if (!is_digit(lower[i])) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < lower.size() && is_digit(lower[j])) ++j;
    std::string token = lower.substr(i, j - i);
    // Thousands separators: "2,000" is the number 2000, not 2 and 000 (each of which might
    // match some fact on its own).
    while (j + 3 < lower.size() && lower[j] == ',' && is_digit(lower[j + 1]) && is_digit(lower[j + 2]) &&
           is_digit(lower[j + 3]) && (j + 4 == lower.size() || !is_digit(lower[j + 4]))) {
      token.append(lower, j + 1, 3);
      j += 4;
    }
    std::size_t end = j;
    bool decimal = false;
    if (j + 1 < lower.size() && lower[j] == '.' && is_digit(lower[j + 1])) {
      decimal = true;
      end = j + 1;
      while (end < lower.size() && is_digit(lower[end])) ++end;
      token.append(lower, j, end - j);
    }
    // A group like "000" or "05" is part of a number written some other way ("2 000").
    if (token.size() > 1 && token[0] == '0' && token[1] != '.')
      return {GroundingRule::unknown_number, "number " + token + " is written with a leading zero"};
    if (token.size() > 9)
      return {GroundingRule::unknown_number, "number " + token + " matches no fact"};
    const double value = std::stod(token);
    bool known = false;
    if (!decimal) {
      known = integers.count(static_cast<long>(value)) > 0;
    } else {
      known = (end - j - 1) == 1 && tenths.count(std::lround(value * 10)) > 0;
    }
    if (!known)
      return {GroundingRule::unknown_number, "number " + format_number(value) + " matches no fact"};
    i = end;
  }

  // Words of excluded foods.
  const auto groups = excluded_groups(f);
  if (!groups.empty()) {
    for (std::size_t i = 0; i < lower.size();) {
      if (!is_alpha(lower[i])) {
        ++i;
        continue;
      }
      std::size_t j = i;
      while (j < lower.size() && is_alpha(lower[j])) ++j;
      const std::string_view word(lower.data() + i, j - i);
      for (const auto& lex : kLexicons) {
        if (std::find(groups.begin(), groups.end(), lex.group) == groups.end()) continue;
        for (auto w : lex.words) {
          if (word_matches(word, w)) {
            return {GroundingRule::excluded_ingredient, "'" + std::string(word) +
                                                            "' names a food the user avoids (" +
                                                            std::string(lex.group) + ")"};
          }
        }
      }
      i = j;
    }
  }
  return result;
}

}  // namespace forkcast::advice
