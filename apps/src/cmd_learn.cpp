// `forkcast learn --once | --every 10m`: the learning loop's process (docs/learning-loop.md),
// run beside `forkcast serve` on the same database, never inside it. Parses and wires only:
// the cycle is learning::run_cycle.
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <iostream>
#include <regex>
#include <thread>

#include "build_info.hpp"
#include "commands.hpp"
#include "forkcast/db/database.hpp"
#include "forkcast/db/errors.hpp"
#include "forkcast/db/instance.hpp"
#include "forkcast/env/catalog.hpp"
#include "forkcast/learning/cycle.hpp"

namespace forkcast::apps {
namespace {

inline constexpr int kExitLearnerBusy = 3;

std::atomic<bool> g_learn_stop{false};
extern "C" void request_learn_stop(int) { g_learn_stop.store(true); }

struct LearnCli {
  bool once = false;
  std::string every;         // e.g. "10m"
  std::string database_url;  // overrides database.url
  std::string gate_override; // promote | reject
  std::string command_line;
};

// "90s", "10m", "2h" or plain seconds. Throws std::invalid_argument naming --every.
std::chrono::seconds parse_every(const std::string& text) {
  static const std::regex form(R"(([0-9]{1,9})([smh]?))");
  std::smatch m;
  if (!std::regex_match(text, m, form) || std::stoll(m[1]) == 0) {
    throw std::invalid_argument("--every: '" + text + "' is not a positive duration like 90s, 10m or 2h");
  }
  const long long n = std::stoll(m[1]);
  const std::string unit = m[2];
  return std::chrono::seconds(unit == "h" ? n * 3600 : unit == "m" ? n * 60 : n);
}

std::string database_url_of(const config::Config& config) {
  if (!config.database.url.empty()) return config.database.url;
  db::LocalInstance local(db::instance_options(config.database));
  const auto status = local.status();
  if (!status.running) {
    throw std::runtime_error("the local database is not running (" + local.options().data_dir.string() +
                             "): start it with `forkcast db start` or `forkcast serve`; the learner starts no database");
  }
  return status.url;
}

void print_summary(const learning::CycleSummary& s) {
  nlohmann::json line = {{"event", "learning_cycle"},
                         {"committed", s.committed},
                         {"outcome", s.committed ? std::string(db::cycle_outcome_name(s.outcome)) : std::string("none")},
                         {"reason", s.reason},
                         {"wall_s", s.wall_s},
                         {"stats", s.stats}};
  line["model_version"] = s.model_version ? nlohmann::json(*s.model_version) : nlohmann::json(nullptr);
  if (!s.report_dir.empty()) line["report"] = s.report_dir.string();
  std::cout << line.dump() << std::endl;
}

learning::CycleSummary one_cycle(const config::Config& config, const env::Catalog& catalog, const LearnCli& cli) {
  const std::string url = database_url_of(config);
  db::Database database(db::database_options(config.database, url));
  learning::CycleOptions options;
  options.config = config;
  options.database_url = url;
  options.git_revision = build_info::kGitRevision;
  options.command = cli.command_line;
  options.gate_override = cli.gate_override;
  auto last = std::chrono::steady_clock::now() - std::chrono::hours(1);
  std::string last_stage;
  options.progress = [&](std::string_view stage, double fraction, const nlohmann::json& detail) {
    const auto now = std::chrono::steady_clock::now();
    if (stage == last_stage && now - last < std::chrono::seconds(2) && fraction < 1.0) return;
    last = now;
    last_stage = stage;
    spdlog::info("learn: {} {:.0f}% {}", stage, 100.0 * fraction, detail.dump());
  };
  const learning::CycleSummary summary = learning::run_cycle(database, catalog, options);
  if (summary.committed) {
    spdlog::info("learn: cycle committed: {} {} ({:.1f} s): {}", db::cycle_outcome_name(summary.outcome),
                 summary.model_version.value_or("-"), summary.wall_s, summary.reason);
  } else {
    spdlog::info("learn: nothing committed ({:.1f} s): {}", summary.wall_s, summary.reason);
  }
  return summary;
}

void run_learn(const GlobalOptions& global, const LearnCli& cli) {
  if (cli.once == !cli.every.empty()) {
    throw std::invalid_argument("learn: give exactly one of --once or --every <duration>");
  }
  if (!cli.gate_override.empty() && cli.gate_override != "promote" && cli.gate_override != "reject") {
    throw std::invalid_argument("--override-gate: '" + cli.gate_override + "' (allowed: promote, reject)");
  }
  const std::chrono::seconds every = cli.once ? std::chrono::seconds(0) : parse_every(cli.every);
  config::Config config = load_config_and_logging(global);
  if (!cli.database_url.empty()) config.database.url = cli.database_url;
  const env::Catalog catalog = env::Catalog::load(config.policy.catalog_dir);

  if (cli.once) {
    try {
      print_summary(one_cycle(config, catalog, cli));
    } catch (const learning::LearnerBusy& e) {
      std::cerr << "learn: " << e.what() << "\n";
      throw CLI::RuntimeError(kExitLearnerBusy);
    }
    return;
  }
  std::signal(SIGINT, request_learn_stop);
  std::signal(SIGTERM, request_learn_stop);
  spdlog::info("learn: a cycle every {} s (Ctrl-C stops between cycles)", every.count());
  while (!g_learn_stop.load()) {
    const auto started = std::chrono::steady_clock::now();
    try {
      print_summary(one_cycle(config, catalog, cli));
    } catch (const learning::LearnerBusy& e) {
      spdlog::warn("learn: {}; trying again next cycle", e.what());
    } catch (const db::DatabaseUnavailable& e) {
      spdlog::warn("learn: the cycle failed, the database is unavailable ({}); nothing was committed, the next cycle "
                   "starts over",
                   e.what());
    } catch (const learning::CycleError& e) {
      spdlog::error("learn: {}", e.what());
    }
    while (!g_learn_stop.load() && std::chrono::steady_clock::now() - started < every) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  spdlog::info("learn: stopped");
}

}  // namespace

void add_learn_command(CLI::App& app, const GlobalOptions& global) {
  auto cli = std::make_shared<LearnCli>();
  auto* sub = app.add_subcommand("learn", "Learn from the service's own logged decisions (the learning loop)");
  sub->add_flag("--once", cli->once, "run one cycle and exit");
  sub->add_option("--every", cli->every, "run a cycle every DURATION (90s, 10m, 2h) until SIGINT/SIGTERM");
  sub->add_option("--database-url", cli->database_url, "PostgreSQL URL (overrides database.url)");
  sub->add_option("--override-gate", cli->gate_override,
                  "promote|reject: overrule the gate's decision (recorded in the registry with the gate's reason)");
  sub->footer(
      "One cycle: join decisions with their feedback since the learner's watermark, train a conservative\n"
      "off-policy DQN from the production model, estimate it off-policy on held-out users, then promote it\n"
      "(every `forkcast serve` on the database follows) or register it as rejected, with the reason.\n"
      "Prints one JSON line per cycle. Exit 3: another learner of the same name holds the lock.\n"
      "Settings: the `learning` section of the config (docs/learning-loop.md).");
  sub->callback([cli, &global, sub] {
    cli->command_line = "forkcast learn";
    for (const auto* option : sub->get_options()) {
      if (option->count() == 0 || option->get_name() == "--help") continue;
      cli->command_line += " " + option->get_name();
      for (const auto& value : option->results()) cli->command_line += " " + value;
    }
    run_learn(global, *cli);
  });
}

}  // namespace forkcast::apps
