// report.json, report.md, model-card.md and the atomic output directory. report.html is in
// report_html.cpp. Every renderer reads the report JSON only.
#include "forkcast/evaluation/report.hpp"
#include "forkcast/policy/model_files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "report_format.hpp"

namespace forkcast::evaluation {

using policy::kTabularCheckpointFormat;

using nlohmann::json;

namespace {

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json estimate_json(const Estimate& e) {
  json j = {{"value", number_or_null(e.value)}, {"ci", {number_or_null(e.lo), number_or_null(e.hi)}}};
  if (!std::isnan(e.diff)) {
    j["diff"] = number_or_null(e.diff);
    j["diff_ci"] = {number_or_null(e.diff_lo), number_or_null(e.diff_hi)};
  } else {
    j["diff"] = nullptr;
    j["diff_ci"] = nullptr;
  }
  return j;
}

json ope_interval_json(const OpeInterval& i) {
  return {{"value", number_or_null(i.value)}, {"ci", {number_or_null(i.lo), number_or_null(i.hi)}}};
}

json mealsim_config_json(const config::MealSimConfig& c) {
  return {{"utility_bias", c.utility_bias},
          {"taste_weight", c.taste_weight},
          {"meal_boredom_weight", c.meal_boredom_weight},
          {"cuisine_boredom_weight", c.cuisine_boredom_weight},
          {"meal_memory_decay", c.meal_memory_decay},
          {"cuisine_memory_decay", c.cuisine_memory_decay},
          {"time_weight", c.time_weight},
          {"cost_weight", c.cost_weight},
          {"portion_weight", c.portion_weight},
          {"satisfaction_weight", c.satisfaction_weight},
          {"reward_accept", c.reward_accept},
          {"reward_taste", c.reward_taste},
          {"reward_nutrition", c.reward_nutrition},
          {"churn_penalty", c.churn_penalty},
          {"satisfaction_initial", c.satisfaction_initial},
          {"satisfaction_health", c.satisfaction_health},
          {"satisfaction_taste", c.satisfaction_taste},
          {"satisfaction_boredom", c.satisfaction_boredom},
          {"satisfaction_day", c.satisfaction_day},
          {"satisfaction_reject", c.satisfaction_reject},
          {"churn_threshold", c.churn_threshold},
          {"default_portion", c.default_portion}};
}

json checkpoint_json(const CheckpointInfo& info) {
  json j = {{"path", info.path.string()},
            {"sha256", info.sha256},
            {"format", info.format},
            {"env_spec", info.env_spec},
            {"metadata", info.metadata}};
  // The training settings as an object, when the metadata holds them as JSON.
  if (const auto it = info.metadata.find("config"); it != info.metadata.end()) {
    try {
      j["training_config"] = json::parse(it->second);
    } catch (const json::exception&) {
      j["training_config"] = nullptr;
    }
  }
  const auto run_dir = info.path.parent_path();
  j["run_dir"] = run_dir.string();
  json curve = json::array();
  for (const auto& p : read_learning_curve(run_dir)) curve.push_back({p.episode, p.mean_return_100, p.epsilon});
  j["learning_curve"] = std::move(curve);
  j["training_summary"] = nullptr;
  std::ifstream summary(run_dir / "summary.json");
  if (summary) {
    try {
      j["training_summary"] = json::parse(summary);
    } catch (const json::exception&) {
      // A summary that is not JSON says nothing we can report.
    }
  }
  return j;
}

std::string slot_key(std::size_t s) { return std::string(env::slot_name(static_cast<env::Slot>(s))); }

void fsync_path(const std::filesystem::path& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return;  // best effort: durability, not correctness, depends on it
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

std::vector<LearningCurvePoint> read_learning_curve(const std::filesystem::path& run_dir, std::size_t max_points) {
  std::vector<LearningCurvePoint> all;
  std::ifstream in(run_dir / "metrics.jsonl");
  if (!in) return all;
  std::string line;
  while (std::getline(in, line)) {
    try {
      const auto j = json::parse(line);
      if (!j.is_object() || !j.contains("episode") || !j.contains("mean_return_100")) continue;
      all.push_back({j["episode"].get<std::int64_t>(), j["mean_return_100"].get<double>(),
                     j.contains("epsilon") ? j["epsilon"].get<double>() : 0.0});
    } catch (const json::exception&) {
      // A torn last line of a crashed run.
    }
  }
  if (max_points < 1 || all.size() <= max_points) return all;
  // Bucket means rather than samples: one logged window is noisy, the trend is what a
  // reader needs; each point carries the last episode of its bucket.
  std::vector<LearningCurvePoint> kept;
  for (std::size_t b = 0; b < max_points; ++b) {
    const std::size_t begin = b * all.size() / max_points, end = (b + 1) * all.size() / max_points;
    if (begin == end) continue;
    LearningCurvePoint p{all[end - 1].episode, 0.0, all[end - 1].epsilon};
    for (std::size_t i = begin; i < end; ++i) p.mean_return_100 += all[i].mean_return_100;
    p.mean_return_100 /= static_cast<double>(end - begin);
    kept.push_back(p);
  }
  return kept;
}

json build_report_json(const ReportContext& context, const std::vector<LoadedPolicy>& policies,
                       const EvaluationResult& result, const OpeSection* ope) {
  if (policies.size() != result.policies.size()) {
    throw std::invalid_argument("build_report_json: " + std::to_string(policies.size()) + " policies for " +
                                std::to_string(result.policies.size()) + " results");
  }
  json r;
  r["schema"] = kReportSchema;
  r["schema_version"] = kReportSchemaVersion;
  r["generated_at"] = context.generated_at;
  r["forkcast_version"] = context.forkcast_version;
  r["command"] = context.command;
  r["environment"] = {{"name", "mealsim"},
                      {"data_dir", context.data_dir.string()},
                      {"catalog_sha256", context.catalog_sha256},
                      {"catalog_meals", context.catalog_meals},
                      {"population_sha256", context.population_sha256},
                      {"archetypes", context.archetype_names},
                      {"mealsim_config", mealsim_config_json(context.mealsim)}};
  const auto& o = result.options;
  r["settings"] = {{"users", o.users},
                   {"seeds", o.seeds},
                   {"base_seed", o.base_seed},
                   {"weeks_per_policy", static_cast<std::int64_t>(o.users) * o.seeds},
                   {"bootstrap_resamples", o.bootstrap_resamples},
                   {"bootstrap_seed", o.bootstrap_seed},
                   {"confidence", o.confidence},
                   {"popularity_users", context.popularity_users},
                   {"popularity_seed", context.popularity_seed},
                   {"wall_s", result.wall_s}};
  json metrics = json::array();
  for (const auto& m : metric_catalog()) {
    metrics.push_back({{"key", m.key},
                       {"label", m.label},
                       {"unit", m.unit},
                       {"better", m.better},
                       {"percent", m.percent},
                       {"decimals", m.decimals}});
  }
  r["metric_definitions"] = std::move(metrics);
  r["reference_policy"] = result.policies.front().name;
  json ps = json::array();
  json warnings = json::array();
  for (std::size_t i = 0; i < policies.size(); ++i) {
    const auto& lp = policies[i];
    const auto& pe = result.policies[i];
    json p = {{"label", pe.name},
              {"spec", lp.spec},
              {"kind", lp.kind},
              {"description", lp.description},
              {"reads_hidden_state", lp.reads_hidden_state},
              {"checkpoint", lp.checkpoint ? checkpoint_json(*lp.checkpoint) : json(nullptr)},
              {"weeks", pe.weeks},
              {"steps", pe.steps},
              {"wall_s", pe.wall_s}};
    json m = json::object();
    for (const auto& info : metric_catalog()) m[std::string(info.key)] = estimate_json(pe.metric(info.key));
    p["metrics"] = std::move(m);
    json slots = json::object();
    for (std::size_t s = 0; s < env::kNumSlots; ++s) slots[slot_key(s)] = estimate_json(pe.acceptance_by_slot[s]);
    p["acceptance_by_slot"] = std::move(slots);
    json adh = json::array(), kcal = json::array();
    for (std::size_t d = 0; d < env::kDaysPerWeek; ++d) {
      adh.push_back(estimate_json(pe.adherence_by_day[d]));
      kcal.push_back(estimate_json(pe.kcal_error_by_day[d]));
    }
    p["adherence_by_day"] = std::move(adh);
    p["kcal_error_by_day"] = std::move(kcal);
    const auto& d = pe.returns;
    p["return_distribution"] = {{"mean", d.mean}, {"sd", d.sd}, {"min", d.min}, {"max", d.max},
                                {"p5", d.quantiles[0]}, {"p25", d.quantiles[1]}, {"p50", d.quantiles[2]},
                                {"p75", d.quantiles[3]}, {"p95", d.quantiles[4]}, {"histogram", d.histogram}};
    p["constraint_violations"] = {{"total", pe.violations.total()},
                                  {"unsafe", pe.violations.unsafe},
                                  {"off_slot", pe.violations.off_slot},
                                  {"out_of_range", pe.violations.out_of_range}};
    if (pe.violations.total() > 0) {
      warnings.push_back(pe.name + ": " + std::to_string(pe.violations.total()) +
                         " constraint violations (suggestions outside the mask: " + std::to_string(pe.violations.unsafe) +
                         " unsafe for the user, " + std::to_string(pe.violations.off_slot) + " of another slot, " +
                         std::to_string(pe.violations.out_of_range) +
                         " outside the catalog); each was replaced by an allowed meal, so this policy's other numbers "
                         "are not its own");
    }
    json arch = json::array();
    for (const auto& a : pe.archetypes) {
      json am = json::object();
      for (const auto& [key, e] : a.metrics) am[key] = estimate_json(e);
      arch.push_back({{"name", a.name}, {"users", a.users}, {"metrics", std::move(am)}});
    }
    p["archetypes"] = std::move(arch);
    ps.push_back(std::move(p));
  }
  r["policies"] = std::move(ps);
  r["return_histogram_edges"] = result.histogram_edges;
  json upa = json::object();
  for (std::size_t a = 0; a < result.users_per_archetype.size() && a < context.archetype_names.size(); ++a) {
    upa[context.archetype_names[a]] = result.users_per_archetype[a];
  }
  r["users_per_archetype"] = std::move(upa);

  if (ope != nullptr) {
    json o2 = {{"log_file", ope->log_file},
               {"log_sha256", ope->log_sha256},
               {"decisions", ope->decisions},
               {"users", ope->users},
               {"decisions_without_feedback", ope->summary.decisions_without_feedback},
               {"orphan_feedback", ope->summary.orphan_feedback},
               {"duplicate_feedback", ope->summary.duplicate_feedback},
               {"estimand", "expected per-decision reward if the target policy had chosen at the logged decision points "
                            "(a one-step value under the logging policy's state distribution, not a weekly return)"},
               {"direct_method", {{"model", "ridge regression on standardised state and meal features, cross-fitted on two user folds"},
                                  {"features", ope->model.features},
                                  {"lambda", ope->options.ridge_lambda},
                                  {"out_of_fold_r2", number_or_null(ope->model.train_r2)},
                                  {"notes", ope->model.notes}}},
               {"options", {{"bootstrap_resamples", ope->options.bootstrap_resamples},
                            {"bootstrap_seed", ope->options.bootstrap_seed},
                            {"confidence", ope->options.confidence},
                            {"near_zero_propensity", ope->options.near_zero_propensity},
                            {"low_ess_fraction", ope->options.low_ess_fraction}}}};
    json results = json::array();
    for (const auto& res : ope->results) {
      results.push_back({{"policy", res.target},
                         {"decisions", res.decisions},
                         {"users", res.users},
                         {"logged", ope_interval_json(res.logged)},
                         {"ips", ope_interval_json(res.ips)},
                         {"snips", ope_interval_json(res.snips)},
                         {"dm", ope_interval_json(res.dm)},
                         {"dr", ope_interval_json(res.dr)},
                         {"ess", res.ess},
                         {"ess_fraction", res.decisions > 0 ? res.ess / static_cast<double>(res.decisions) : 0.0},
                         {"max_weight", res.max_weight},
                         {"mean_weight", res.mean_weight},
                         {"min_propensity", res.min_propensity},
                         {"near_zero_propensities", res.near_zero_propensities},
                         {"unsupported_mass", res.unsupported_mass},
                         {"warnings", res.warnings}});
    }
    o2["results"] = std::move(results);
    json na = json::array();
    for (const auto& [label, reason] : ope->unavailable) na.push_back({{"policy", label}, {"reason", reason}});
    o2["not_evaluable"] = std::move(na);
    r["off_policy"] = std::move(o2);
  } else {
    r["off_policy"] = nullptr;
  }
  r["warnings"] = std::move(warnings);
  return r;
}

// ---- Markdown --------------------------------------------------------------------------

std::string render_report_markdown(const json& r) {
  using namespace report_format;
  std::ostringstream md;
  const auto& policies = r.at("policies");
  const std::string ref = r.at("reference_policy").get<std::string>();
  const auto& s = r.at("settings");
  md << "# forkcast policy evaluation\n\n";
  md << "Generated " << r.at("generated_at").get<std::string>() << " by forkcast " << r.at("forkcast_version").get<std::string>()
     << ". MealSim, catalog `" << short_hash(r.at("environment").at("catalog_sha256").get<std::string>()) << "` ("
     << r.at("environment").at("catalog_meals").get<int>() << " meals); " << s.at("users").get<int>() << " users x "
     << s.at("seeds").get<int>() << " seed(s), the same for every policy (common random numbers); "
     << confidence_pct(r) << " % intervals: percentile bootstrap over users (" << s.at("bootstrap_resamples").get<int>()
     << " resamples); differences are paired with `" << ref << "`.\n\n";
  for (const auto& w : r.at("warnings")) md << "> **Warning:** " << w.get<std::string>() << "\n\n";

  md << "## Summary\n\n";
  md << "| Policy | Weekly return | Δ vs " << ref
     << " | Acceptance | \\|kcal error\\| | \\|protein error\\| | Sodium over limit (days) | Distinct meals / week | "
        "Distinct cuisines / week | Repeat rate | Churn | Constraint violations |\n";
  md << "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& p : policies) {
    const auto& m = p.at("metrics");
    md << "| " << p.at("label").get<std::string>() << " | " << value_ci(r, "weekly_return", m.at("weekly_return")) << " | "
       << diff_ci(r, "weekly_return", m.at("weekly_return")) << " | " << value(r, "acceptance_rate", m.at("acceptance_rate"))
       << " | " << value(r, "kcal_abs_error_pct", m.at("kcal_abs_error_pct")) << " ("
       << value(r, "kcal_abs_error_kcal", m.at("kcal_abs_error_kcal")) << " kcal) | "
       << value(r, "protein_abs_error_pct", m.at("protein_abs_error_pct")) << " | "
       << value(r, "sodium_over_days_pct", m.at("sodium_over_days_pct")) << " | "
       << value(r, "distinct_meals_per_week", m.at("distinct_meals_per_week")) << " | "
       << value(r, "distinct_cuisines_per_week", m.at("distinct_cuisines_per_week")) << " | "
       << value(r, "repeat_rate", m.at("repeat_rate")) << " | " << value(r, "churn_rate", m.at("churn_rate")) << " | "
       << p.at("constraint_violations").at("total").get<std::int64_t>() << " |\n";
  }
  md << "\nWeekly return: mean reward summed over the week (" << confidence_pct(r)
     << " % CI). Errors are mean absolute daily errors against the user's targets, over completed days. "
        "Mean daily adherence: ";
  bool first = true;
  for (const auto& p : policies) {
    md << (first ? "" : ", ") << p.at("label").get<std::string>() << " "
       << value(r, "mean_adherence", p.at("metrics").at("mean_adherence"));
    first = false;
  }
  md << ". Final satisfaction: ";
  first = true;
  for (const auto& p : policies) {
    md << (first ? "" : ", ") << p.at("label").get<std::string>() << " "
       << value(r, "final_satisfaction", p.at("metrics").at("final_satisfaction"));
    first = false;
  }
  md << ".\n\n";

  md << "## Acceptance by slot\n\n| Policy | breakfast | lunch | dinner | snack |\n|---|---|---|---|---|\n";
  for (const auto& p : policies) {
    md << "| " << p.at("label").get<std::string>();
    for (const std::string_view slot : env::kSlotNames) {
      md << " | " << value(r, "acceptance_rate", p.at("acceptance_by_slot").at(std::string(slot)));
    }
    md << " |\n";
  }

  md << "\n## Nutrition adherence over the week\n\nMean end-of-day adherence (0..1) by day, over the weeks that reached "
        "that day.\n\n| Policy | 1 | 2 | 3 | 4 | 5 | 6 | 7 |\n|---|---|---|---|---|---|---|---|\n";
  for (const auto& p : policies) {
    md << "| " << p.at("label").get<std::string>();
    for (const auto& d : p.at("adherence_by_day")) md << " | " << value(r, "mean_adherence", d);
    md << " |\n";
  }

  md << "\n## Per archetype: weekly return\n\n| Archetype | Users";
  for (const auto& p : policies) md << " | " << p.at("label").get<std::string>();
  md << " |\n|---|---";
  for (std::size_t i = 0; i < policies.size(); ++i) md << "|---";
  md << "|\n";
  const auto& arch0 = policies.front().at("archetypes");
  for (std::size_t a = 0; a < arch0.size(); ++a) {
    md << "| " << arch0[a].at("name").get<std::string>() << " | " << arch0[a].at("users").get<int>();
    for (const auto& p : policies) {
      md << " | " << value_ci(r, "weekly_return", p.at("archetypes")[a].at("metrics").at("weekly_return"));
    }
    md << " |\n";
  }
  md << "\n## Per archetype: acceptance and churn\n\n| Archetype";
  for (const auto& p : policies) md << " | " << p.at("label").get<std::string>();
  md << " |\n|---";
  for (std::size_t i = 0; i < policies.size(); ++i) md << "|---";
  md << "|\n";
  for (std::size_t a = 0; a < arch0.size(); ++a) {
    md << "| " << arch0[a].at("name").get<std::string>();
    for (const auto& p : policies) {
      const auto& am = p.at("archetypes")[a].at("metrics");
      md << " | " << value(r, "acceptance_rate", am.at("acceptance_rate")) << " / "
         << value(r, "churn_rate", am.at("churn_rate"));
    }
    md << " |\n";
  }

  const auto& ope = r.at("off_policy");
  if (!ope.is_null()) {
    md << "\n## Off-policy evaluation\n\nLog `" << ope.at("log_file").get<std::string>() << "` (sha256 "
       << short_hash(ope.at("log_sha256").get<std::string>()) << "): " << ope.at("decisions").get<std::int64_t>()
       << " decisions with feedback from " << ope.at("users").get<std::int64_t>() << " users";
    if (ope.at("decisions_without_feedback").get<std::int64_t>() > 0) {
      md << " (" << ope.at("decisions_without_feedback").get<std::int64_t>() << " without feedback excluded)";
    }
    md << ". Estimand: " << ope.at("estimand").get<std::string>() << ". Direct-method model: out-of-fold R² "
       << fixed(ope.at("direct_method").at("out_of_fold_r2"), 3) << ".\n\n";
    md << "| Policy | Logged (on-policy) | IPS | SNIPS | DM | DR | ESS | Max weight |\n|---|---|---|---|---|---|---|---|\n";
    for (const auto& res : ope.at("results")) {
      md << "| " << res.at("policy").get<std::string>();
      for (const char* k : {"logged", "ips", "snips", "dm", "dr"}) md << " | " << interval_text(res.at(k), 3);
      md << " | " << fixed(res.at("ess"), 0) << " (" << fixed(json(100.0 * res.at("ess_fraction").get<double>()), 1)
         << " %) | " << fixed(res.at("max_weight"), 1) << " |\n";
    }
    for (const auto& res : ope.at("results")) {
      for (const auto& w : res.at("warnings")) {
        md << "\n> **" << res.at("policy").get<std::string>() << ":** " << w.get<std::string>() << "\n";
      }
    }
    for (const auto& na : ope.at("not_evaluable")) {
      md << "\n- `" << na.at("policy").get<std::string>() << "` is not evaluable from logs: " << na.at("reason").get<std::string>()
         << "\n";
    }
    for (const auto& note : ope.at("direct_method").at("notes")) md << "\n> " << note.get<std::string>() << "\n";
  }

  md << "\n## Policies\n\n| Policy | Kind | Description | Checkpoint sha256 |\n|---|---|---|---|\n";
  for (const auto& p : policies) {
    md << "| " << p.at("label").get<std::string>() << " | " << p.at("kind").get<std::string>() << " | "
       << p.at("description").get<std::string>() << " | "
       << (p.at("checkpoint").is_null() ? std::string("—")
                                        : "`" + short_hash(p.at("checkpoint").at("sha256").get<std::string>()) + "`")
       << " |\n";
  }
  md << "\n## Reproduce\n\n```sh\n" << r.at("command").get<std::string>() << "\n```\n\nSchema: `"
     << r.at("schema").get<std::string>() << "` v" << r.at("schema_version").get<int>()
     << " (docs/evaluation.md). Evaluation took " << fixed(s.at("wall_s"), 1) << " s.\n";
  return md.str();
}

// ---- model card --------------------------------------------------------------------------

std::string render_model_card(const json& r, const std::string& policy_label) {
  using namespace report_format;
  const json* policy = nullptr;
  for (const auto& p : r.at("policies")) {
    if (p.at("label").get<std::string>() == policy_label && !p.at("checkpoint").is_null()) policy = &p;
  }
  if (policy == nullptr) {
    throw std::invalid_argument("model card: the report has no checkpoint policy labelled \"" + policy_label + "\"");
  }
  const auto& p = *policy;
  const auto& c = p.at("checkpoint");
  const auto& meta = c.at("metadata");
  const auto meta_or = [&](const char* key) {
    return meta.contains(key) ? meta.at(key).get<std::string>() : std::string("(not recorded)");
  };
  const std::string ref = r.at("reference_policy").get<std::string>();
  std::ostringstream md;
  md << "# Model card: " << policy_label << "\n\n";
  md << "| | |\n|---|---|\n";
  md << "| File | `" << c.at("path").get<std::string>() << "` |\n";
  md << "| sha256 | `" << c.at("sha256").get<std::string>() << "` |\n";
  md << "| Format | `" << c.at("format").get<std::string>() << "` |\n";
  md << "| Policy | " << p.at("description").get<std::string>() << " |\n";
  md << "| Environment | " << meta_or("env") << ", spec `" << c.at("env_spec").get<std::string>() << "` |\n";
  md << "| Simulator / data | MealSim; catalog sha256 `" << r.at("environment").at("catalog_sha256").get<std::string>()
     << "` (" << r.at("environment").at("catalog_meals").get<int>() << " meals, matches the checkpoint), population sha256 `"
     << short_hash(r.at("environment").at("population_sha256").get<std::string>()) << "` |\n";
  md << "| Trained at git revision | `" << meta_or("git_revision") << "` |\n";
  md << "| Training episodes | " << meta_or("episode") << " (seed " << meta_or("seed") << ") |\n";
  md << "| Evaluated by | forkcast " << r.at("forkcast_version").get<std::string>() << ", " << r.at("generated_at").get<std::string>()
     << " |\n\n";

  md << "## Training configuration\n\n";
  if (c.contains("training_config") && c.at("training_config").is_object()) {
    md << "| Setting | Value |\n|---|---|\n";
    for (const auto& [key, v] : c.at("training_config").items()) md << "| " << key << " | " << v.dump() << " |\n";
  } else {
    md << "The checkpoint's metadata holds no readable `config`.\n";
  }
  if (c.contains("training_summary") && c.at("training_summary").is_object()) {
    const auto& ts = c.at("training_summary");
    md << "\nTraining run (`" << c.at("run_dir").get<std::string>() << "/summary.json`): ";
    if (ts.contains("episodes_done")) md << ts.at("episodes_done").dump() << " episodes, ";
    if (ts.contains("env_steps")) md << ts.at("env_steps").dump() << " environment steps, ";
    if (ts.contains("wall_s")) md << fixed(ts.at("wall_s"), 1) << " s";
    if (ts.contains("greedy_eval") && ts.at("greedy_eval").contains("mean_return")) {
      md << "; greedy evaluation at the end of training: mean return " << fixed(ts.at("greedy_eval").at("mean_return"), 2)
         << " over " << ts.at("greedy_eval").at("episodes").dump() << " episodes";
    }
    md << ".\n";
  }
  const auto& curve = c.at("learning_curve");
  if (!curve.empty()) {
    md << "Learning curve (`metrics.jsonl`, mean return of the last 100 training episodes, with exploration): "
       << fixed(curve.front()[1], 2) << " at episode " << curve.front()[0].dump() << ", " << fixed(curve.back()[1], 2)
       << " at episode " << curve.back()[0].dump() << " (epsilon " << fixed(curve.back()[2], 3) << ").\n";
  }

  md << "\n## Evaluation (this report)\n\n" << r.at("settings").at("users").get<int>() << " simulated users x "
     << r.at("settings").at("seeds").get<int>() << " seed(s), the same for every policy; " << confidence_pct(r)
     << " % bootstrap intervals over users; Δ is paired with `" << ref << "`.\n\n";
  md << "| Policy | Weekly return | Δ vs " << ref << " | Acceptance | Daily adherence | Churn | Constraint violations |\n";
  md << "|---|---|---|---|---|---|---|\n";
  for (const auto& q : r.at("policies")) {
    const auto& m = q.at("metrics");
    const bool self = &q == policy;
    md << "| " << (self ? "**" : "") << q.at("label").get<std::string>() << (self ? "**" : "") << " | "
       << value_ci(r, "weekly_return", m.at("weekly_return")) << " | " << diff_ci(r, "weekly_return", m.at("weekly_return"))
       << " | " << value(r, "acceptance_rate", m.at("acceptance_rate")) << " | "
       << value(r, "mean_adherence", m.at("mean_adherence")) << " | " << value(r, "churn_rate", m.at("churn_rate")) << " | "
       << q.at("constraint_violations").at("total").get<std::int64_t>() << " |\n";
  }
  md << "\nPer archetype (weekly return of this model, " << confidence_pct(r) << " % CI):\n\n| Archetype | Users | Weekly return | Acceptance | Churn |\n|---|---|---|---|---|\n";
  for (const auto& a : p.at("archetypes")) {
    const auto& am = a.at("metrics");
    md << "| " << a.at("name").get<std::string>() << " | " << a.at("users").get<int>() << " | "
       << value_ci(r, "weekly_return", am.at("weekly_return")) << " | " << value(r, "acceptance_rate", am.at("acceptance_rate"))
       << " | " << value(r, "churn_rate", am.at("churn_rate")) << " |\n";
  }
  const auto& ope = r.at("off_policy");
  if (!ope.is_null()) {
    for (const auto& res : ope.at("results")) {
      if (res.at("policy").get<std::string>() != policy_label) continue;
      md << "\nOff-policy estimate from `" << ope.at("log_file").get<std::string>() << "` (" << ope.at("decisions").dump()
         << " decisions; per-decision reward): DR " << interval_text(res.at("dr"), 3) << ", SNIPS "
         << interval_text(res.at("snips"), 3) << "; logged policy " << interval_text(res.at("logged"), 3) << "; ESS "
         << fixed(res.at("ess"), 0) << ".\n";
      for (const auto& w : res.at("warnings")) md << "\n> " << w.get<std::string>() << "\n";
    }
  }

  md << "\n## Intended use\n\nSuggesting one meal per slot (breakfast, lunch, dinner, snack) to a user of the forkcast "
        "service, among the meals the hard mask allows (diet and allergens are enforced outside the model). Promotion "
        "decision input for ML engineers, next to this report.\n\n";
  md << "## Known limits\n\n";
  if (c.at("format").get<std::string>() == kTabularCheckpointFormat) {
    md << "- The tabular state is slot, diet, a calorie bucket, a protein bucket and the most recent cuisine "
          "(1632 states): the model cannot tell one user's taste from another's beyond the diet, so it learns "
          "population-level choices and is far below the oracles, which see the hidden taste.\n"
          "- Greedy and deterministic: the same state always gets the same meal; variety comes only from the state.\n";
  }
  md << "- Trained and evaluated on simulated users only (MealSim); not validated on real people. The simulator's "
        "simplifications (docs/mealsim.md §12) bound what these numbers mean.\n"
        "- Valid only for catalog `"
     << short_hash(r.at("environment").at("catalog_sha256").get<std::string>())
     << "`: a changed catalog changes the action space and the loader refuses the checkpoint.\n"
        "- Nutrition adherence scores calories, protein (shortfall) and sodium (excess) only.\n"
        "- The oracles in the comparison read hidden state: they are bounds, not deployable alternatives.\n";
  md << "\n## Reproduce\n\n```sh\n" << r.at("command").get<std::string>() << "\n```\n";
  return md.str();
}

// ---- output ------------------------------------------------------------------------------

void write_report_files(const std::filesystem::path& out_arg, const std::vector<std::pair<std::string, std::string>>& files,
                        bool overwrite) {
  namespace fs = std::filesystem;
  // "reports/r1/" names the directory r1: the temporary sibling must sit beside it, not in it.
  const fs::path out = out_arg.filename().empty() && out_arg.has_parent_path() ? out_arg.parent_path() : out_arg;
  if (out.empty() || out.filename() == "." || out.filename() == ".." || out == out.root_path()) {
    throw std::invalid_argument("--out " + out_arg.string() + ": name a report directory (not ., .. or /)");
  }
  // Distinct temporary names for concurrent writers: pid and a clock reading.
  const auto nonce = std::to_string(::getpid()) + "-" +
                     std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
  std::error_code ec;
  const bool exists = fs::exists(out, ec);
  if (exists && !fs::is_directory(out, ec)) throw std::invalid_argument("--out " + out.string() + ": exists and is not a directory");
  if (exists && !overwrite && !fs::is_empty(out, ec)) {
    throw std::invalid_argument("--out " + out.string() + ": exists and is not empty (pass --overwrite to replace it)");
  }
  const fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
  fs::create_directories(parent, ec);
  if (ec) throw std::runtime_error(parent.string() + ": cannot create directory: " + ec.message());
  const std::string stem = out.filename().string();
  const fs::path tmp = parent / ("." + stem + ".tmp-" + nonce);
  try {
    fs::create_directory(tmp);
    for (const auto& [name, content] : files) {
      const fs::path path = tmp / name;
      {
        std::ofstream f(path, std::ios::binary | std::ios::trunc);
        f << content;
        f.flush();
        if (!f) throw std::runtime_error(path.string() + ": write failed");
      }
      fsync_path(path, false);
    }
    fsync_path(tmp, true);
    if (exists && overwrite && !fs::is_empty(out, ec)) {
      // Replace as a whole: the old report moves aside, the new one takes its name, the old goes.
      const fs::path old = parent / ("." + stem + ".old-" + nonce);
      fs::rename(out, old);
      fs::rename(tmp, out);
      fs::remove_all(old, ec);
    } else {
      fs::rename(tmp, out);  // atomic; replaces an empty directory
    }
    fsync_path(parent, true);
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(tmp, ec);
    throw std::runtime_error(std::string("writing ") + out.string() + ": " + e.what());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace forkcast::evaluation
