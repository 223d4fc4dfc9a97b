#include "forkcast/env/population.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <set>
#include <sstream>
#include <stdexcept>

namespace forkcast::env {

namespace {

// 13, 2.5, 0.5: the shortest text that reads back as the same double.
std::string format_number(double v) {
  std::ostringstream out;
  out.precision(15);
  out << v;
  return out.str();
}

constexpr std::array<std::string_view, 5> kActivityNames = {"sedentary", "light", "moderate", "active",
                                                            "very_active"};
constexpr std::array<double, 5> kActivityFactors = {1.2, 1.375, 1.55, 1.725, 1.9};
constexpr std::array<std::string_view, 3> kGoalNames = {"lose", "maintain", "gain"};
constexpr std::array<std::string_view, 4> kDietNames = {"none", "vegetarian", "vegan", "pescatarian"};

template <std::size_t N>
int index_in(const std::array<std::string_view, N>& names, const std::string& name) {
  for (std::size_t i = 0; i < N; ++i) {
    if (names[i] == name) return static_cast<int>(i);
  }
  return -1;
}

template <std::size_t N>
std::string joined(const std::array<std::string_view, N>& names) {
  std::string out;
  for (auto n : names) out += (out.empty() ? "" : ", ") + std::string(n);
  return out;
}

class Reader {
 public:
  Reader(std::string file, YAML::Node node) : file_(std::move(file)), node_(std::move(node)) {}

  std::string where(const YAML::Node& n) const { return file_ + ":" + std::to_string(n.Mark().line + 1); }
  [[noreturn]] void fail(const YAML::Node& n, const std::string& field, const std::string& msg) const {
    throw std::invalid_argument(where(n) + ": " + field + ": " + msg);
  }
  const YAML::Node& node() const { return node_; }

  double number(const char* key, double lo, double hi, std::optional<double> fallback = std::nullopt) const {
    const auto v = node_[key];
    if (!v) {
      if (fallback) return *fallback;
      fail(node_, key, "missing");
    }
    return number_at(v, key, lo, hi);
  }
  // The number in `v`, named `field` in errors, within [lo, hi] (so never NaN or infinite).
  double number_at(const YAML::Node& v, const std::string& field, double lo, double hi) const {
    double x = 0;
    try {
      x = v.as<double>();
    } catch (const YAML::Exception&) {
      fail(v, field, "\"" + v.Scalar() + "\" is not a number");
    }
    if (!(x >= lo && x <= hi)) {
      fail(v, field, v.Scalar() + " is out of range " + std::to_string(lo) + ".." + std::to_string(hi));
    }
    return x;
  }
  Range range(const char* key, double lo, double hi) const {
    const auto v = node_[key];
    if (!v || !v.IsSequence() || v.size() != 2) fail(v ? v : node_, key, "must be a [low, high] pair");
    Range r{v[0].as<double>(), v[1].as<double>()};
    if (!(r.lo >= lo && r.hi <= hi && r.lo <= r.hi)) {
      fail(v, key, "[" + v[0].Scalar() + ", " + v[1].Scalar() + "] must satisfy " + std::to_string(lo) +
                       " <= low <= high <= " + std::to_string(hi));
    }
    return r;
  }
  std::string text(const char* key, std::optional<std::string> fallback = std::nullopt) const {
    const auto v = node_[key];
    if (!v) {
      if (fallback) return *fallback;
      fail(node_, key, "missing");
    }
    if (!v.IsScalar()) fail(v, key, "must be a single value");
    return v.Scalar();
  }

 private:
  std::string file_;
  YAML::Node node_;
};

Archetype parse_archetype(const Reader& r) {
  static const std::set<std::string> kKnown = {
      "name",      "share",       "female_p",   "age",      "height_cm", "weight_kg",          "budget_usd",
      "cook_time_min", "activity", "goal",       "diet",     "allergen_p", "protein_g_per_kg", "sodium_limit_mg",
      "taste",     "health_orientation", "boredom_sensitivity"};
  for (const auto& kv : r.node()) {
    const auto key = kv.first.as<std::string>();
    if (!kKnown.count(key)) r.fail(kv.first, key, "unknown field");
  }
  Archetype a;
  a.name = r.text("name");
  a.share = r.number("share", 1e-9, 1e9);
  a.female_p = r.number("female_p", 0, 1);
  a.age = r.range("age", 14, 100);
  a.height_cm = r.range("height_cm", 120, 220);
  a.weight_kg = r.range("weight_kg", 35, 250);
  a.budget_usd = r.range("budget_usd", 0.5, 100);
  a.cook_time_min = r.range("cook_time_min", 1, 240);
  a.protein_g_per_kg = r.number("protein_g_per_kg", 0.5, 3.0, 1.0);
  a.sodium_limit_mg = r.number("sodium_limit_mg", 500, 5000, 2300.0);
  a.health_orientation = r.number("health_orientation", 0, 2, 0.3);
  a.boredom_sensitivity = r.number("boredom_sensitivity", 0, 5, 1.0);
  const auto activities = r.node()["activity"];
  if (!activities || !activities.IsSequence() || activities.size() == 0) {
    r.fail(activities ? activities : r.node(), "activity", "must be a non-empty list of " + joined(kActivityNames));
  }
  for (const auto& act : activities) {
    const int i = index_in(kActivityNames, act.as<std::string>());
    if (i < 0) r.fail(act, "activity", "\"" + act.Scalar() + "\" is not one of " + joined(kActivityNames));
    a.activities.push_back(static_cast<Activity>(i));
  }
  const int goal = index_in(kGoalNames, r.text("goal"));
  if (goal < 0) r.fail(r.node()["goal"], "goal", "\"" + r.text("goal") + "\" is not one of " + joined(kGoalNames));
  a.goal = static_cast<Goal>(goal);
  const auto diet_text = r.text("diet", std::string("none"));
  const int diet = index_in(kDietNames, diet_text);
  if (diet < 0) r.fail(r.node()["diet"], "diet", "\"" + diet_text + "\" is not one of " + joined(kDietNames));
  a.diet = static_cast<DietPreference>(diet);
  if (const auto ap = r.node()["allergen_p"]) {
    for (const auto& kv : ap) {
      const auto name = kv.first.as<std::string>();
      const auto allergen = parse_allergen(name);
      if (!allergen) r.fail(kv.first, "allergen_p", "\"" + name + "\" is not an allergen");
      const double p = kv.second.as<double>();
      if (!(p >= 0 && p <= 1)) r.fail(kv.second, "allergen_p." + name, kv.second.Scalar() + " is not in 0..1");
      a.allergen_p[static_cast<int>(*allergen)] = p;
    }
  }
  const auto taste = r.node()["taste"];
  if (!taste || !taste.IsMap()) r.fail(r.node(), "taste", "missing mapping {cuisines, tags, noise}");
  // Affinities are logits of the choice model: a NaN or an infinity would silently turn every
  // utility, acceptance and reward of the simulator into NaN.
  const auto affinity = [&](const YAML::Node& v, const std::string& field, double lo, double hi) {
    return r.number_at(v, field, lo, hi);
  };
  if (const auto cuisines = taste["cuisines"]) {
    for (const auto& kv : cuisines) {
      const auto name = kv.first.as<std::string>();
      a.cuisine_taste.emplace_back(name, affinity(kv.second, "taste.cuisines." + name, -5, 5));
    }
  }
  if (const auto tags = taste["tags"]) {
    for (const auto& kv : tags) {
      const auto name = kv.first.as<std::string>();
      auto it = std::find(kTagNames.begin(), kTagNames.end(), name);
      if (it == kTagNames.end()) r.fail(kv.first, "taste.tags", "\"" + name + "\" is not a known tag");
      a.tag_taste[static_cast<std::size_t>(it - kTagNames.begin())] = affinity(kv.second, "taste.tags." + name, -5, 5);
    }
  }
  a.taste_noise = taste["noise"] ? affinity(taste["noise"], "taste.noise", 0, 5) : 0.3;
  return a;
}

double uniform(std::mt19937_64& rng, const Range& r) {
  return std::uniform_real_distribution<double>(r.lo, r.hi)(rng);
}

}  // namespace

double activity_factor(Activity a) { return kActivityFactors[static_cast<int>(a)]; }
std::string_view sex_name(Sex s) { return s == Sex::female ? "female" : "male"; }

void validate_profile(const UserProfile& p) {
  const auto check = [](const ProfileRange& range, double value) {
    if (!(value >= range.min && value <= range.max)) {  // NaN fails too
      throw std::invalid_argument(std::string(range.field) + ": " + format_number(value) + " is outside " +
                                  format_number(range.min) + ".." + format_number(range.max));
    }
  };
  namespace limits = profile_limits;
  check(limits::age, p.age);
  check(limits::height_cm, p.height_cm);
  check(limits::weight_kg, p.weight_kg);
  check(limits::budget_usd, p.budget_usd);
  check(limits::cook_time_min, p.cook_time_min);
  check(limits::sodium_limit_mg, p.sodium_limit_mg);
  check(limits::protein_g_per_kg, p.protein_g_per_kg);
}

std::string_view activity_name(Activity a) { return kActivityNames[static_cast<int>(a)]; }
std::string_view goal_name(Goal g) { return kGoalNames[static_cast<int>(g)]; }
std::string_view diet_preference_name(DietPreference d) { return kDietNames[static_cast<int>(d)]; }

double UserProfile::bmr_kcal() const {
  return 10.0 * weight_kg + 6.25 * height_cm - 5.0 * age + (sex == Sex::male ? 5.0 : -161.0);
}

double UserProfile::kcal_target() const {
  double kcal = bmr_kcal() * activity_factor(activity);
  if (goal == Goal::lose) kcal -= 500;
  if (goal == Goal::gain) kcal += 300;
  return std::max(kcal, 1200.0);
}

bool UserProfile::allows(const Meal& meal) const {
  if ((meal.allergens & excluded) != 0) return false;
  switch (diet) {
    case DietPreference::vegetarian: return has(meal.diets, Diet::vegetarian);
    case DietPreference::vegan: return has(meal.diets, Diet::vegan);
    case DietPreference::pescatarian: return has(meal.diets, Diet::pescatarian);
    case DietPreference::none: return true;
  }
  return false;
}

double taste_of(const User& user, const Meal& meal) {
  double tag_sum = 0;
  int tag_count = 0;
  for (std::uint32_t bits = meal.tags; bits != 0; bits &= bits - 1) {
    tag_sum += user.taste.tag[static_cast<std::size_t>(__builtin_ctz(bits))];
    ++tag_count;
  }
  const double tags = tag_count > 0 ? tag_sum / std::sqrt(static_cast<double>(tag_count)) : 0.0;
  return user.taste.cuisine[static_cast<std::size_t>(meal.cuisine_index)] + tags +
         user.taste.health_orientation * (meal.healthiness - 0.5) * 2.0;
}

namespace {

// Density of U(r.lo, r.hi) at x. A one-value range is a point mass: its "density" at that
// value is taken as 1e9, so that it outweighs any proper range that merely contains x (a
// value hit exactly is overwhelming evidence for the archetype that always draws it).
double uniform_density(const Range& r, double x) {
  constexpr double kSlack = 1e-9, kPointMass = 1e9;
  if (x < r.lo - kSlack || x > r.hi + kSlack) return 0.0;
  return r.hi > r.lo ? 1.0 / (r.hi - r.lo) : kPointMass;
}

}  // namespace

double profile_likelihood(const Archetype& a, const UserProfile& p) {
  if (p.goal != a.goal || p.diet != a.diet) return 0.0;
  if (std::abs(p.sodium_limit_mg - a.sodium_limit_mg) > 1e-9 || std::abs(p.protein_g_per_kg - a.protein_g_per_kg) > 1e-9) {
    return 0.0;
  }
  double l = p.sex == Sex::female ? a.female_p : 1.0 - a.female_p;
  // Age is U(lo, hi) rounded: the share of the range that rounds to this age.
  const double age_lo = std::max(a.age.lo, p.age - 0.5), age_hi = std::min(a.age.hi, p.age + 0.5);
  l *= a.age.hi > a.age.lo ? std::max(0.0, age_hi - age_lo) / (a.age.hi - a.age.lo) : (std::lround(a.age.lo) == p.age ? 1.0 : 0.0);
  const double shift = p.sex == Sex::male ? 6.0 : -6.0;
  l *= uniform_density({a.height_cm.lo + shift, a.height_cm.hi + shift}, p.height_cm);
  l *= uniform_density(a.weight_kg, p.weight_kg);
  l *= uniform_density(a.budget_usd, p.budget_usd);
  l *= uniform_density(a.cook_time_min, p.cook_time_min);
  const auto activities = std::count(a.activities.begin(), a.activities.end(), p.activity);
  l *= a.activities.empty() ? 0.0 : static_cast<double>(activities) / static_cast<double>(a.activities.size());
  for (int i = 0; i < kNumAllergens; ++i) {
    const double q = a.allergen_p[static_cast<std::size_t>(i)];
    l *= ((p.excluded >> i) & 1U) ? q : 1.0 - q;
  }
  return l;
}

void draw_default_meals(const Catalog& catalog, User& user, std::mt19937_64& rng, std::string_view archetype_name) {
  // Defaults: the user's habitual meals, ranked by taste minus health (people's own
  // fallbacks lean towards comfort), with noise; the top three of each slot.
  std::uniform_real_distribution<double> jitter(-0.5, 0.5);
  // One pass over the catalog keeps the top three of each slot (no sort, no allocation).
  constexpr double kNone = -1e300;
  std::array<std::array<std::pair<double, std::int32_t>, 3>, kNumSlots> top;
  for (auto& slot_top : top) slot_top.fill({kNone, -1});
  for (std::size_t m = 0; m < catalog.size(); ++m) {
    const Meal& meal = catalog.meals()[m];
    if (!user.profile.allows(meal)) continue;
    // Uniform noise: a log-free draw per meal keeps resets cheap (about a third of a reset
    // went to normal draws here); the ranking only needs some personal variation.
    const double score = taste_of(user, meal) - 0.8 * meal.healthiness + jitter(rng);
    auto& slot_top = top[static_cast<std::size_t>(meal.slot)];
    std::pair<double, std::int32_t> candidate{score, static_cast<std::int32_t>(m)};
    for (auto& entry : slot_top) {
      if (candidate.first > entry.first) std::swap(candidate, entry);
    }
  }
  for (int s = 0; s < kNumSlots; ++s) {
    const auto& slot_top = top[static_cast<std::size_t>(s)];
    if (slot_top[0].second < 0) {
      throw std::invalid_argument("archetype " + std::string(archetype_name) + ": no meal in slot " +
                                  std::string(slot_name(static_cast<Slot>(s))) + " fits the sampled profile");
    }
    for (std::size_t k = 0; k < 3; ++k) {
      // Fewer than three meals allowed: repeat the best one.
      user.taste.default_meals[static_cast<std::size_t>(s)][k] = slot_top[k].second >= 0 ? slot_top[k].second : slot_top[0].second;
    }
  }
}

Population Population::load(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(path.string() + ": cannot open file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  YAML::Node root;
  try {
    root = YAML::Load(buffer.str());
  } catch (const YAML::ParserException& e) {
    throw std::invalid_argument(path.string() + ":" + std::to_string(e.mark.line + 1) + ": malformed YAML: " + e.msg);
  }
  if (!root.IsMap() || !root["archetypes"] || !root["archetypes"].IsSequence() || root["archetypes"].size() == 0) {
    throw std::invalid_argument(path.string() + ":1: expected a mapping with a non-empty `archetypes:` list");
  }
  std::vector<Archetype> archetypes;
  try {
    for (const auto& node : root["archetypes"]) archetypes.push_back(parse_archetype(Reader(path.string(), node)));
  } catch (const YAML::Exception& e) {
    throw std::invalid_argument(path.string() + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  return Population(std::move(archetypes));
}

Population::Population(std::vector<Archetype> archetypes) : archetypes_(std::move(archetypes)) {
  if (archetypes_.empty()) throw std::invalid_argument("population: no archetypes");
  double total = 0;
  for (const auto& a : archetypes_) cumulative_share_.push_back(total += a.share);
  for (auto& c : cumulative_share_) c /= total;
}

User Population::sample(const Catalog& catalog, std::mt19937_64& rng) const {
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  const auto it = std::lower_bound(cumulative_share_.begin(), cumulative_share_.end(), u);
  const int index = std::min(static_cast<int>(it - cumulative_share_.begin()), static_cast<int>(archetypes_.size()) - 1);
  return sample_archetype(catalog, index, rng);
}

User Population::sample_archetype(const Catalog& catalog, int index, std::mt19937_64& rng) const {
  if (index < 0 || index >= static_cast<int>(archetypes_.size())) {
    throw std::invalid_argument("archetype index " + std::to_string(index) + " is out of range 0.." +
                                std::to_string(archetypes_.size() - 1));
  }
  const Archetype& a = archetypes_[static_cast<std::size_t>(index)];
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::normal_distribution<double> noise(0.0, a.taste_noise);
  User user;
  user.archetype = index;
  UserProfile& p = user.profile;
  p.sex = unit(rng) < a.female_p ? Sex::female : Sex::male;
  p.age = static_cast<int>(std::lround(uniform(rng, a.age)));
  p.height_cm = uniform(rng, a.height_cm) + (p.sex == Sex::male ? 6.0 : -6.0);
  p.weight_kg = uniform(rng, a.weight_kg);
  p.activity = a.activities[static_cast<std::size_t>(std::uniform_int_distribution<std::size_t>(0, a.activities.size() - 1)(rng))];
  p.goal = a.goal;
  p.diet = a.diet;
  for (int i = 0; i < kNumAllergens; ++i) {
    if (unit(rng) < a.allergen_p[static_cast<std::size_t>(i)]) p.excluded = static_cast<AllergenSet>(p.excluded | (1U << i));
  }
  p.budget_usd = uniform(rng, a.budget_usd);
  p.cook_time_min = uniform(rng, a.cook_time_min);
  p.sodium_limit_mg = a.sodium_limit_mg;
  p.protein_g_per_kg = a.protein_g_per_kg;

  HiddenTaste& t = user.taste;
  for (std::size_t c = 0; c < catalog.cuisines().size(); ++c) {
    double mean = 0;
    for (const auto& [name, value] : a.cuisine_taste) {
      if (name == catalog.cuisines()[c]) mean = value;
    }
    t.cuisine[c] = mean + noise(rng);
  }
  for (std::size_t k = 0; k < kNumTags; ++k) t.tag[k] = a.tag_taste[k] + 0.6 * noise(rng);
  t.health_orientation = std::max(0.0, a.health_orientation + 0.5 * noise(rng));
  t.boredom_sensitivity = std::max(0.2, a.boredom_sensitivity * (1.0 + 0.5 * noise(rng)));

  draw_default_meals(catalog, user, rng, a.name);
  return user;
}

}  // namespace forkcast::env
