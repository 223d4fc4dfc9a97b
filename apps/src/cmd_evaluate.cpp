// `forkcast evaluate`: simulator evaluation, off-policy evaluation and reports
// (policy/evaluation.hpp, policy/ope.hpp, policy/report.hpp); `forkcast evaluate
// synth-logs` writes a synthetic decision log from MealSim for off-policy evaluation.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>

#include "build_info.hpp"
#include "commands.hpp"
#include "forkcast/env/catalog.hpp"
#include "forkcast/env/population.hpp"
#include "forkcast/policy/checkpoint.hpp"
#include "forkcast/evaluation/evaluation.hpp"
#include "forkcast/evaluation/ope.hpp"
#include "forkcast/evaluation/policy_loader.hpp"
#include "forkcast/evaluation/report.hpp"

namespace forkcast::apps {
namespace {

struct EvaluateCli {
  std::vector<std::string> policies;
  std::string env = "mealsim";
  std::string out, data_dir, model_card, logs;
  bool overwrite = false, no_progress = false;
  evaluation::EvaluationOptions eval;
  evaluation::OpeOptions ope;
};

struct SynthCli {
  std::string out, data_dir;
  bool candidate_features = false;
  evaluation::SyntheticLogOptions options;
};

std::string utc_now() {
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return stamp;
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:+,") == std::string::npos) {
    return s;
  }
  std::string out = "'";
  for (const char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

// The command line that reproduces this report (options in a fixed order).
std::string command_line(const EvaluateCli& cli, const std::filesystem::path& data_dir) {
  std::ostringstream c;
  c << "forkcast evaluate";
  for (const auto& p : cli.policies) c << " --policy " << shell_quote(p);
  c << " --env " << cli.env << " --users " << cli.eval.users << " --seeds " << cli.eval.seeds << " --seed "
    << cli.eval.base_seed << " --bootstrap " << cli.eval.bootstrap_resamples << " --data-dir "
    << shell_quote(data_dir.string());
  if (!cli.logs.empty()) c << " --logs " << shell_quote(cli.logs);
  if (!cli.model_card.empty()) c << " --model-card " << shell_quote(cli.model_card);
  c << " --out " << shell_quote(cli.out);
  return c.str();
}

bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  return std::filesystem::equivalent(a, b, ec) && !ec;
}

void run_evaluate(const GlobalOptions& global, EvaluateCli& cli) {
  const auto cfg = load_config_and_logging(global);
  if (cli.policies.empty()) throw std::invalid_argument("--policy: give at least one policy (random, popularity, myopic-oracle, planning-oracle, belief-myopic, belief-planner, a checkpoint or served:<model>)");
  if (cli.out.empty()) throw std::invalid_argument("--out: required (the report directory)");
  if (cli.env != "mealsim") throw std::invalid_argument("--env: \"" + cli.env + "\" is not supported (mealsim)");
  const std::filesystem::path out = cli.out;
  {
    // Refuse a non-empty --out before any work, not after minutes of simulation.
    std::error_code ec;
    if (std::filesystem::exists(out, ec) && !cli.overwrite &&
        (!std::filesystem::is_directory(out, ec) || !std::filesystem::is_empty(out, ec))) {
      throw std::invalid_argument("--out " + out.string() + ": exists and is not empty (pass --overwrite to replace it)");
    }
  }
  const std::filesystem::path data_dir = cli.data_dir.empty() ? std::filesystem::path(cfg.policy.catalog_dir) : std::filesystem::path(cli.data_dir);
  const auto catalog = env::Catalog::load(data_dir);
  const auto population = env::Population::load(data_dir / "population.yaml");

  evaluation::PolicyLoadContext context;
  context.catalog = &catalog;
  context.population = &population;
  context.mealsim = cfg.mealsim;
  context.exploration = cfg.exploration;
  const auto formats = evaluation::builtin_checkpoint_formats();
  std::vector<evaluation::LoadedPolicy> loaded;
  for (const auto& spec : cli.policies) loaded.push_back(evaluation::load_meal_policy(spec, context, formats));
  if (!cli.model_card.empty()) {
    bool listed = false;
    for (const auto& p : loaded) listed = listed || (p.kind == "checkpoint" && same_file(p.spec, cli.model_card));
    if (!listed) {
      // The card needs the checkpoint's numbers: evaluate it with the others.
      cli.policies.push_back(cli.model_card);
      loaded.push_back(evaluation::load_meal_policy(cli.model_card, context, formats));
    }
  }
  evaluation::make_labels_unique(loaded);
  std::string card_label;
  for (const auto& p : loaded) {
    if (card_label.empty() && !cli.model_card.empty() && p.kind == "checkpoint" && same_file(p.spec, cli.model_card)) {
      card_label = p.label;
    }
  }

  std::optional<evaluation::DecisionLog> log;
  if (!cli.logs.empty()) log = evaluation::read_decision_log(cli.logs, catalog);

  std::vector<env::MealPolicy*> raw;
  std::vector<std::string> names;
  for (auto& p : loaded) {
    raw.push_back(p.policy.get());
    names.push_back(p.label);
  }
  cli.eval.show_progress = !cli.no_progress;
  spdlog::info("evaluating {} policies on {} users x {} seeds (catalog {})", loaded.size(), cli.eval.users, cli.eval.seeds,
               catalog.content_hash().substr(0, 12));
  const auto result = evaluation::evaluate_policies(raw, names, catalog, population, cfg.mealsim, cli.eval);

  std::optional<evaluation::OpeSection> ope;
  if (log) {
    evaluation::OpeSection section;
    section.log_file = cli.logs;
    section.log_sha256 = policy::sha256_file_hex(cli.logs);
    section.decisions = static_cast<std::int64_t>(log->decisions.size());
    section.options = cli.ope;
    section.model = evaluation::fit_direct_method(*log, catalog, cli.ope);
    for (auto& p : loaded) {
      if (!p.ope_target) {
        section.unavailable.emplace_back(p.label, p.ope_unavailable);
        continue;
      }
      auto res = evaluation::evaluate_off_policy(*log, section.model, *p.ope_target, cli.ope);
      res.target = p.label;
      section.users = res.users;
      section.results.push_back(std::move(res));
    }
    section.model.predictions.clear();
    section.summary.source = log->source;
    section.summary.decisions_without_feedback = log->decisions_without_feedback;
    section.summary.orphan_feedback = log->orphan_feedback;
    section.summary.duplicate_feedback = log->duplicate_feedback;
    ope = std::move(section);
  }

  evaluation::ReportContext rc;
  rc.generated_at = utc_now();
  rc.forkcast_version = std::string(build_info::kVersion) + " (git " + build_info::kGitRevision + ")";
  rc.command = command_line(cli, data_dir);
  rc.data_dir = data_dir;
  rc.catalog_sha256 = catalog.content_hash();
  rc.catalog_meals = catalog.size();
  rc.population_sha256 = policy::sha256_file_hex(data_dir / "population.yaml");
  for (const auto& a : population.archetypes()) rc.archetype_names.push_back(a.name);
  rc.mealsim = cfg.mealsim;
  rc.popularity_users = context.popularity_users;
  rc.popularity_seed = context.popularity_seed;
  const auto report = evaluation::build_report_json(rc, loaded, result, ope ? &*ope : nullptr);

  std::vector<std::pair<std::string, std::string>> files = {
      {"report.json", report.dump(2) + "\n"},
      {"report.html", evaluation::render_report_html(report)},
      {"report.md", evaluation::render_report_markdown(report)}};
  if (!card_label.empty()) files.emplace_back("model-card.md", evaluation::render_model_card(report, card_label));
  evaluation::write_report_files(out, files, cli.overwrite);

  std::printf("%-28s %24s %22s %10s %8s %10s\n", "policy", "weekly return [95% CI]", "diff vs first", "accept", "churn",
              "violations");
  for (const auto& p : report.at("policies")) {
    const auto& m = p.at("metrics");
    const auto& wr = m.at("weekly_return");
    char ret[64], diff[64] = "-";
    std::snprintf(ret, sizeof ret, "%.2f [%.2f, %.2f]", wr.at("value").get<double>(), wr.at("ci")[0].get<double>(),
                  wr.at("ci")[1].get<double>());
    if (wr.at("diff").is_number()) {
      std::snprintf(diff, sizeof diff, "%+.2f [%+.2f, %+.2f]", wr.at("diff").get<double>(), wr.at("diff_ci")[0].get<double>(),
                    wr.at("diff_ci")[1].get<double>());
    }
    std::printf("%-28s %24s %22s %9.1f%% %7.1f%% %10lld\n", p.at("label").get<std::string>().c_str(), ret, diff,
                100.0 * m.at("acceptance_rate").at("value").get<double>(), 100.0 * m.at("churn_rate").at("value").get<double>(),
                static_cast<long long>(p.at("constraint_violations").at("total").get<std::int64_t>()));
  }
  for (const auto& w : report.at("warnings")) std::fprintf(stderr, "warning: %s\n", w.get<std::string>().c_str());
  std::cout << "report " << (out / "report.html").string() << " (also report.json, report.md"
            << (card_label.empty() ? "" : ", model-card.md") << ")\n";
}

void run_synth_logs(const GlobalOptions& global, SynthCli& cli) {
  const auto cfg = load_config_and_logging(global);
  if (cli.out.empty()) throw std::invalid_argument("synth-logs --out: required (the JSON-lines file to write)");
  const std::filesystem::path data_dir = cli.data_dir.empty() ? std::filesystem::path(cfg.policy.catalog_dir) : std::filesystem::path(cli.data_dir);
  const auto catalog = env::Catalog::load(data_dir);
  const auto population = env::Population::load(data_dir / "population.yaml");
  auto o = cli.options;
  o.candidate_features = cli.candidate_features;
  if (o.score == "popularity") o.popularity = env::estimate_popularity(catalog, population, cfg.mealsim, 2000, 77);
  const auto decisions = evaluation::generate_synthetic_log(catalog, population, cfg.mealsim, o);
  evaluation::write_decision_log(cli.out, decisions, catalog);
  double mean = 0;
  for (const auto& d : decisions) mean += d.reward;
  std::cout << "wrote " << decisions.size() << " decisions of " << o.users << " users to " << cli.out
            << " (logging policy: softmax over " << o.score << " scores, temperature " << o.temperature << ", epsilon "
            << o.epsilon << "; mean reward " << mean / static_cast<double>(decisions.size()) << ")\n";
}

}  // namespace

void add_evaluate_command(CLI::App& app, const GlobalOptions& global) {
  auto cli = std::make_shared<EvaluateCli>();
  auto* sub = app.add_subcommand("evaluate", "Evaluate policies in MealSim (and from logs); write report.json/html/md");
  sub->add_option("--policy", cli->policies,
                  "random | popularity | myopic-oracle | planning-oracle | belief-myopic | belief-planner (:N for N particles) | a checkpoint path | served:<model> (the service's decision path, exploration included); repeat for more. The first "
                  "is the reference for paired differences");
  sub->add_option("--env", cli->env, "environment (mealsim)")->check(CLI::IsMember({"mealsim"}));
  sub->add_option("--users", cli->eval.users, "simulated users (the same for every policy)")->default_val(1000)->check(CLI::PositiveNumber);
  sub->add_option("--seeds", cli->eval.seeds, "weeks per user, each with its own seed")->default_val(1)->check(CLI::PositiveNumber);
  sub->add_option("--seed", cli->eval.base_seed, "user u has seed SEED + u")->default_val(5'000'000);
  sub->add_option("--bootstrap", cli->eval.bootstrap_resamples, "bootstrap resamples for intervals")->default_val(2000)->check(CLI::PositiveNumber);
  sub->add_option("--out", cli->out, "report directory (written atomically; must not exist or be empty)");
  sub->add_option("--data-dir", cli->data_dir, "catalog and population folder (default policy.catalog_dir)");
  sub->add_option("--model-card", cli->model_card, "also write model-card.md for this checkpoint (evaluated with the others)");
  sub->add_option("--logs", cli->logs, "decision log (JSON lines, docs/evaluation.md) for off-policy evaluation");
  sub->add_flag("--overwrite", cli->overwrite, "replace an existing, non-empty --out directory");
  sub->add_flag("--no-progress", cli->no_progress, "no progress bar or progress lines");
  sub->footer("Exit codes: 0 report written, 1 failure, 2 bad usage or input (unknown policy, missing or corrupt checkpoint,\n"
              "catalog mismatch, bad decision log). Nothing is written to --out unless the whole report is.");

  auto synth = std::make_shared<SynthCli>();
  auto* s = sub->add_subcommand("synth-logs", "Write a synthetic decision log from MealSim (a softmax logging policy with known propensities)");
  s->add_option("--out", synth->out, "JSON-lines file to write")->required();
  s->add_option("--users", synth->options.users, "simulated weeks (one user each)")->default_val(200)->check(CLI::PositiveNumber);
  s->add_option("--seed", synth->options.seed, "user u's week is MealSim::reset(SEED + u)")->default_val(1);
  s->add_option("--score", synth->options.score, "logging scores: myopic (expected reward) or popularity")
      ->default_val("myopic")
      ->check(CLI::IsMember({"myopic", "popularity"}));
  s->add_option("--temperature", synth->options.temperature, "softmax temperature (> 0)")->default_val(0.5);
  s->add_option("--epsilon", synth->options.epsilon, "uniform exploration mixed in, in [0, 1]")->default_val(0.1);
  s->add_option("--data-dir", synth->data_dir, "catalog and population folder (default policy.catalog_dir)");
  s->add_flag("--candidate-features", synth->candidate_features, "also log MealSim's per-candidate dynamic features");
  s->callback([&global, synth] { run_synth_logs(global, *synth); });

  sub->callback([&global, cli, s] {
    if (s->parsed()) return;  // `evaluate synth-logs` only
    run_evaluate(global, *cli);
  });
}

}  // namespace forkcast::apps
