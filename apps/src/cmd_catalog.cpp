// `forkcast catalog list|show|check|import`.
#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <map>

#include "commands.hpp"
#include "forkcast/env/catalog.hpp"

namespace forkcast::apps {
namespace {

struct CatalogOptions {
  std::string data_dir;
  std::string slot, cuisine, diet, meal_id, import_file;
};

std::filesystem::path data_dir_of(const GlobalOptions& global, const CatalogOptions& opts) {
  if (!opts.data_dir.empty()) return opts.data_dir;
  return load_config_and_logging(global).policy.catalog_dir;
}

void list_meals(const env::Catalog& catalog, const CatalogOptions& opts) {
  const auto slot = opts.slot.empty() ? std::nullopt : env::parse_slot(opts.slot);
  if (!opts.slot.empty() && !slot) {
    throw std::invalid_argument("--slot: \"" + opts.slot + "\" is not one of breakfast, lunch, dinner, snack");
  }
  const auto diet = opts.diet.empty() ? std::nullopt : env::parse_diet(opts.diet);
  if (!opts.diet.empty() && !diet) {
    throw std::invalid_argument("--diet: \"" + opts.diet +
                                "\" is not one of vegetarian, vegan, pescatarian, gluten_free, dairy_free");
  }
  std::cout << fmt::format("{:<38} {:<9} {:<14} {:>5} {:>6} {:>5} {:>6}\n", "id", "slot", "cuisine", "kcal",
                           "prot_g", "min", "usd");
  int shown = 0;
  for (const auto& m : catalog.meals()) {
    if (slot && m.slot != *slot) continue;
    if (!opts.cuisine.empty() && m.cuisine != opts.cuisine) continue;
    if (diet && !env::has(m.diets, *diet)) continue;
    std::cout << fmt::format("{:<38} {:<9} {:<14} {:>5.0f} {:>6.1f} {:>5.0f} {:>6.2f}\n", m.id,
                             env::slot_name(m.slot), m.cuisine, m.per_serving.kcal, m.per_serving.protein_g,
                             m.prep_min, m.cost_usd);
    ++shown;
  }
  std::cout << shown << " of " << catalog.size() << " meals\n";
}

void show_meal(const env::Catalog& catalog, const std::string& id) {
  const auto index = catalog.find_meal(id);
  if (!index) throw std::invalid_argument("meal: \"" + id + "\" is not in the catalog (see `forkcast catalog list`)");
  const auto& m = catalog.meals()[*index];
  const auto& n = m.per_serving;
  std::cout << m.name << " [" << m.id << "]\n"
            << fmt::format("  slot {}  cuisine {}  prep {:.0f} min  cost {:.2f} USD\n", env::slot_name(m.slot),
                           m.cuisine, m.prep_min, m.cost_usd);
  std::string tags, diets;
  for (int t = 0; t < env::kNumTags; ++t) {
    if ((m.tags >> t) & 1U) tags += (tags.empty() ? "" : ", ") + std::string(env::kTagNames[static_cast<std::size_t>(t)]);
  }
  for (int d = 0; d < env::kNumDiets; ++d) {
    if (env::has(m.diets, static_cast<env::Diet>(d))) diets += (diets.empty() ? "" : ", ") + std::string(env::diet_name(static_cast<env::Diet>(d)));
  }
  std::cout << "  tags: " << tags << "\n  allergens: " << env::allergen_list(m.allergens)
            << "\n  diets: " << (diets.empty() ? "none" : diets) << "\n  ingredients:\n";
  for (const auto& ing : m.ingredients) {
    const auto& f = catalog.foods()[ing.food];
    std::cout << fmt::format("    {:>6.0f} g  {}  {}\n", ing.grams, f.ndb_no, f.description);
  }
  std::cout << fmt::format(
      "  per serving: {:.0f} kcal, protein {:.1f} g, fat {:.1f} g (saturated {:.1f} g), carbs {:.1f} g, "
      "fibre {:.1f} g, sugar {:.1f} g, sodium {:.0f} mg\n  healthiness {:.2f}\n",
      n.kcal, n.protein_g, n.fat_g, n.sat_fat_g, n.carbs_g, n.fiber_g, n.sugar_g, n.sodium_mg, env::healthiness(n));
}

void check(const env::Catalog& catalog, const std::filesystem::path& dir) {
  const auto problems = env::check_catalog(catalog);
  std::map<std::string, int> by_slot, by_cuisine;
  for (const auto& m : catalog.meals()) {
    ++by_slot[std::string(env::slot_name(m.slot))];
    ++by_cuisine[m.cuisine];
  }
  std::cout << "catalog " << dir.string() << ": " << catalog.size() << " meals, " << catalog.foods().size()
            << " foods, " << catalog.cuisines().size() << " cuisines, sha256 " << catalog.content_hash().substr(0, 16)
            << "\n  by slot:";
  for (const auto& [k, v] : by_slot) std::cout << " " << k << " " << v;
  std::cout << "\n  by cuisine:";
  for (const auto& [k, v] : by_cuisine) std::cout << " " << k << " " << v;
  std::cout << "\n";
  if (!problems.empty()) {
    const std::size_t shown = std::min<std::size_t>(problems.size(), 20);
    for (std::size_t i = 0; i < shown; ++i) std::cerr << problems[i] << "\n";
    std::cerr << problems.size() << " problem(s)" << (shown < problems.size() ? " (first 20 shown)" : "") << "\n";
    throw CLI::RuntimeError(kExitFailure);
  }
  std::cout << "catalog OK\n";
}

void import_meals(const env::Catalog& catalog, const std::filesystem::path& dir, const std::filesystem::path& file) {
  const auto problems = catalog.validate_import(file);
  if (!problems.empty()) {
    for (const auto& p : problems) std::cerr << p << "\n";
    std::cerr << "import refused: " << problems.size() << " problem(s); the catalog is unchanged\n";
    throw CLI::RuntimeError(kExitFailure);
  }
  const auto target_dir = dir / "meals.d";
  std::filesystem::create_directories(target_dir);
  const auto target = target_dir / file.filename().replace_extension(".yaml");
  if (std::filesystem::exists(target)) {
    throw std::invalid_argument("import: " + target.string() + " already exists; rename the file to import it");
  }
  // Copy then rename: the catalog never sees a half-written file. The temporary name does not
  // end in .yaml (the catalog reads every *.yaml of meals.d), and it is removed if the copy
  // fails half-way.
  const auto temporary = target_dir / (".importing-" + file.filename().string() + ".tmp");
  try {
    std::filesystem::copy_file(file, temporary, std::filesystem::copy_options::overwrite_existing);
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    throw;
  }
  std::filesystem::rename(temporary, target);
  try {
    const auto merged = env::Catalog::load(dir);
    std::cout << "imported " << merged.size() - catalog.size() << " meal(s) into " << target.string() << "; catalog now "
              << merged.size() << " meals\n";
  } catch (...) {
    std::filesystem::remove(target);
    throw;
  }
}

}  // namespace

void add_catalog_command(CLI::App& app, const GlobalOptions& global) {
  auto opts = std::make_shared<CatalogOptions>();
  auto* sub = app.add_subcommand("catalog", "List, show, check and import meals of the catalog");
  sub->add_option("--data-dir", opts->data_dir, "catalog folder (default: policy.catalog_dir, i.e. data/)");
  sub->require_subcommand(1);

  auto* list = sub->add_subcommand("list", "List meals with kcal, protein, prep time and cost");
  list->add_option("--slot", opts->slot, "only breakfast|lunch|dinner|snack");
  list->add_option("--cuisine", opts->cuisine, "only this cuisine");
  list->add_option("--diet", opts->diet, "only meals fit for vegetarian|vegan|pescatarian|gluten_free|dairy_free");
  list->callback([&global, opts] {
    list_meals(env::Catalog::load(data_dir_of(global, *opts)), *opts);
  });

  auto* show = sub->add_subcommand("show", "Show one meal: ingredients, computed nutrition, allergens, diets");
  show->add_option("id", opts->meal_id, "meal id")->required();
  show->callback([&global, opts] { show_meal(env::Catalog::load(data_dir_of(global, *opts)), opts->meal_id); });

  auto* check_cmd = sub->add_subcommand(
      "check", "Validate the whole catalog (NDB numbers, Atwater kcal, portions, diets); exit 1 on problems");
  check_cmd->callback([&global, opts] {
    const auto dir = data_dir_of(global, *opts);
    check(env::Catalog::load(dir), dir);
  });

  auto* import = sub->add_subcommand(
      "import", "Validate a meals file (same format as meals.yaml) and add it to <data-dir>/meals.d/; "
                "a file with any problem changes nothing");
  import->add_option("file", opts->import_file, "meals YAML file")->required();
  import->callback([&global, opts] {
    const auto dir = data_dir_of(global, *opts);
    import_meals(env::Catalog::load(dir), dir, opts->import_file);
  });
}

}  // namespace forkcast::apps
