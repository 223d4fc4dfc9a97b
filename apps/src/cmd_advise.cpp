// `forkcast advise --meal <id> --user-profile <file> [--stream]`: advice for one meal from
// the command line, through the same engine and fallback the service uses.
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <stdexcept>

#include "commands.hpp"
#include "forkcast/advice/engine.hpp"
#include "forkcast/advice/from_catalog.hpp"
#include "forkcast/env/catalog.hpp"
#include "forkcast/env/population.hpp"

namespace forkcast::apps {
namespace {

struct AdviseOptions {
  std::string meal_id;
  std::string profile_file;
  bool stream = false;
  bool show_source = false;
  bool show_prompt = false;
};

template <typename Enum>
Enum parse_named(const YAML::Node& node, const std::string& file, const char* key, int count,
                 std::string_view (*name_of)(Enum)) {
  const auto value = node.as<std::string>();
  std::string allowed;
  for (int i = 0; i < count; ++i) {
    const auto name = name_of(static_cast<Enum>(i));
    if (value == name) return static_cast<Enum>(i);
    allowed += (allowed.empty() ? "" : ", ") + std::string(name);
  }
  throw std::invalid_argument(file + ":" + std::to_string(node.Mark().line + 1) + ": " + key +
                              ": '" + value + "' is not one of " + allowed);
}

// The profile file: YAML (or JSON) with the fields of env::UserProfile, plus what was eaten
// today before this meal (eaten_kcal, eaten_protein_g). Unknown keys are errors.
std::pair<env::UserProfile, advice::DayIntake> read_profile(const std::string& file) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(file);
  } catch (const YAML::Exception& e) {
    throw std::invalid_argument("--user-profile: " + file + ": " + e.what());
  }
  if (!root.IsMap())
    throw std::invalid_argument("--user-profile: " + file +
                                ": expected a mapping of profile fields");
  env::UserProfile p;
  advice::DayIntake eaten;
  for (const auto& kv : root) {
    const auto key = kv.first.as<std::string>();
    const auto& v = kv.second;
    const auto where = file + ":" + std::to_string(kv.first.Mark().line + 1) + ": ";
    try {
      if (key == "sex")
        p.sex = parse_named<env::Sex>(v, file, "sex", 2, env::sex_name);
      else if (key == "age")
        p.age = v.as<int>();
      else if (key == "height_cm")
        p.height_cm = v.as<double>();
      else if (key == "weight_kg")
        p.weight_kg = v.as<double>();
      else if (key == "activity")
        p.activity = parse_named<env::Activity>(v, file, "activity", 5, env::activity_name);
      else if (key == "goal")
        p.goal = parse_named<env::Goal>(v, file, "goal", 3, env::goal_name);
      else if (key == "diet")
        p.diet = parse_named<env::DietPreference>(v, file, "diet", 4, env::diet_preference_name);
      else if (key == "protein_g_per_kg")
        p.protein_g_per_kg = v.as<double>();
      else if (key == "budget_usd")
        p.budget_usd = v.as<double>();
      else if (key == "cook_time_min")
        p.cook_time_min = v.as<double>();
      else if (key == "sodium_limit_mg")
        p.sodium_limit_mg = v.as<double>();
      else if (key == "eaten_kcal")
        eaten.kcal = v.as<double>();
      else if (key == "eaten_protein_g")
        eaten.protein_g = v.as<double>();
      else if (key == "excluded") {
        // An allergy must never be dropped silently: one name alone ("excluded: peanuts") is
        // a list of one, and anything but names is an error.
        std::vector<std::string> names;
        if (v.IsScalar()) {
          names.push_back(v.as<std::string>());
        } else if (v.IsSequence()) {
          for (const auto& a : v) {
            if (!a.IsScalar()) throw std::invalid_argument(where + "excluded: expected allergen names");
            names.push_back(a.as<std::string>());
          }
        } else if (!v.IsNull()) {
          throw std::invalid_argument(where + "excluded: expected an allergen name or a list of them");
        }
        for (const auto& name : names) {
          const auto allergen = env::parse_allergen(name);
          if (!allergen)
            throw std::invalid_argument(where + "excluded: '" + name + "' is not an allergen");
          p.excluded |= static_cast<env::AllergenSet>(1U << static_cast<int>(*allergen));
        }
      } else {
        throw std::invalid_argument(
            where + key +
            ": unknown field (sex, age, height_cm, weight_kg, activity, goal, "
            "diet, excluded, protein_g_per_kg, budget_usd, cook_time_min, sodium_limit_mg, "
            "eaten_kcal, eaten_protein_g)");
      }
    } catch (const YAML::Exception& e) {
      throw std::invalid_argument(where + key + ": " + e.what());
    }
  }
  // The API's ranges (env::profile_limits): one rule wherever a person writes a profile.
  try {
    env::validate_profile(p);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(file + ": " + e.what());
  }
  return {p, eaten};
}

void run_advise(const GlobalOptions& global, const AdviseOptions& opts) {
  const auto config = load_config_and_logging(global);
  const auto catalog = env::Catalog::load(config.policy.catalog_dir);
  const auto index = catalog.find_meal(opts.meal_id);
  if (!index)
    throw std::invalid_argument("--meal: '" + opts.meal_id +
                                "' is not in the catalog (see `forkcast catalog list`)");
  const auto& meal = catalog.meals()[*index];
  const auto [profile, eaten] = read_profile(opts.profile_file);
  if (!profile.allows(meal)) {
    throw std::invalid_argument("--meal: '" + opts.meal_id +
                                "' is not allowed for this profile (diet or allergens)");
  }
  const auto* side = advice::pick_side(catalog, meal, profile, eaten);
  const auto facts = advice::facts_from_catalog(catalog, meal, profile, eaten, side);

  if (opts.show_prompt) {
    std::fprintf(stderr, "%s%s%s\n", std::string(advice::system_prompt()).c_str(),
                 advice::facts_prompt(facts).c_str(), std::string(advice::kAdviceCue).c_str());
  }

  advice::EngineOptions eo;
  const auto& ac = config.advice;
  eo.model_path = ac.enabled ? ac.model_path : std::string();
  eo.allow_unknown_model = ac.allow_unknown_model;
  eo.contexts = 1;
  eo.queue_capacity = 1;
  eo.threads = ac.threads;
  eo.max_new_tokens = ac.max_new_tokens;
  advice::AdviceEngine engine(eo);
  if (!engine.load_error().empty())
    std::fprintf(stderr, "forkcast advise: %s; using template advice\n",
                 engine.load_error().c_str());

  advice::TextCallback on_text;
  bool streamed = false;
  if (opts.stream) {
    on_text = [&](std::string_view text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
      streamed = true;
    };
  }
  const auto r = engine.advise(facts, std::chrono::milliseconds(ac.timeout_ms), on_text);
  if (streamed && r.source == advice::AdviceSource::model) {
    std::printf("\n");
  } else {
    if (streamed)
      std::printf("\n[replaced: %s]\n", std::string(advice::reason_name(r.reason)).c_str());
    std::printf("%s\n", r.text.c_str());
  }
  std::fflush(stdout);
  if (opts.show_source) {
    std::fprintf(stderr,
                 "source: %s, reason: %s, %d prompt tokens (%d cached), %d generated, %.1f ms\n",
                 std::string(advice::source_name(r.source)).c_str(),
                 std::string(advice::reason_name(r.reason)).c_str(), r.prompt_tokens,
                 r.reused_prompt_tokens, r.generated_tokens, r.total_ms);
  }
}

}  // namespace

void add_advise_command(CLI::App& app, const GlobalOptions& global) {
  auto opts = std::make_shared<AdviseOptions>();
  auto* sub = app.add_subcommand("advise", "Print advice for a meal from the command line");
  sub->add_option("--meal", opts->meal_id, "catalog meal id (see `forkcast catalog list`)")
      ->required();
  sub->add_option("--user-profile", opts->profile_file,
                  "YAML/JSON file: sex, age, height_cm, weight_kg, activity, goal, diet, excluded, "
                  "eaten_kcal, ...")
      ->required()
      ->check(CLI::ExistingFile);
  sub->add_flag("--stream", opts->stream, "print sentences as they are generated");
  sub->add_flag("--show-source", opts->show_source,
                "print to stderr whether the model or the template answered");
  sub->add_flag("--show-prompt", opts->show_prompt, "print the prompt's facts to stderr");
  sub->footer(
      "The model is advice.model_path (config); its sha256 must be in models/manifest unless\n"
      "advice.allow_unknown_model is true. Without a usable model the template advice is printed.");
  sub->callback([opts, &global] { run_advise(global, *opts); });
}

}  // namespace forkcast::apps
