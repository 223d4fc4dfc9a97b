// `forkcast simulate-traffic`: MealSim users as HTTP clients of a running service
// (traffic/simulate.hpp, docs/learning-loop.md "Simulated traffic"). Parses and wires only.
#include <spdlog/spdlog.h>

#include <chrono>
#include <fstream>
#include <iostream>

#include "commands.hpp"
#include "forkcast/env/catalog.hpp"
#include "forkcast/env/population.hpp"
#include "forkcast/traffic/simulate.hpp"

namespace forkcast::apps {
namespace {

struct SimulateCli {
  int port = 0;  // 0: server.port
  std::string host = "127.0.0.1";
  int users = 200;
  int clients = 8;
  std::uint64_t seed = 1;
  std::string start = "2027-01-04";  // a Monday
  std::string population;            // default: <policy.catalog_dir>/population.yaml
  std::string out;                   // write the summary JSON here too
};

// "YYYY-MM-DD" as 00:00 UTC. Throws std::invalid_argument naming --start.
std::chrono::sys_seconds parse_day(const std::string& text) {
  int y = 0;
  unsigned m = 0, d = 0;
  char tail = 0;
  if (std::sscanf(text.c_str(), "%4d-%2u-%2u%c", &y, &m, &d, &tail) != 3) {
    throw std::invalid_argument("--start: '" + text + "' is not a date YYYY-MM-DD");
  }
  const std::chrono::year_month_day day{std::chrono::year{y}, std::chrono::month{m}, std::chrono::day{d}};
  if (!day.ok() || y < 1970) throw std::invalid_argument("--start: '" + text + "' is not a date from 1970 on");
  return std::chrono::sys_seconds{std::chrono::sys_days{day}};
}

void run_simulate(const GlobalOptions& global, const SimulateCli& cli) {
  const std::chrono::sys_seconds start = parse_day(cli.start);
  const config::Config config = load_config_and_logging(global);
  const env::Catalog catalog = env::Catalog::load(config.policy.catalog_dir);
  const std::string population_path =
      cli.population.empty() ? config.policy.catalog_dir + "/population.yaml" : cli.population;
  const env::Population population = env::Population::load(population_path);
  traffic::TrafficOptions o;
  o.host = cli.host;
  o.port = cli.port != 0 ? cli.port : config.server.port;
  o.users = cli.users;
  o.clients = cli.clients;
  o.seed = cli.seed;
  o.start = start;
  auto last = std::chrono::steady_clock::now();
  o.progress = [&](int done, int total) {
    const auto now = std::chrono::steady_clock::now();
    if (done < total && now - last < std::chrono::seconds(5)) return;
    last = now;
    spdlog::info("simulate-traffic: {}/{} users done", done, total);
  };
  spdlog::info("simulate-traffic: {} users from {} against {}:{}, {} at a time, weeks from {}", o.users, population_path,
               o.host, o.port, o.clients, cli.start);
  const traffic::TrafficSummary summary = traffic::simulate_traffic(catalog, population, config.mealsim, o);
  nlohmann::json j = traffic::summary_json(summary);
  j["seed"] = cli.seed;
  j["start"] = cli.start;
  j["population"] = population_path;
  if (!cli.out.empty()) {
    std::ofstream file(cli.out);
    file << j.dump(2) << "\n";
    if (!file) throw std::runtime_error("--out: cannot write '" + cli.out + "'");
  }
  j.erase("per_user");
  std::cout << j.dump() << std::endl;
  spdlog::info("simulate-traffic: weekly return {:.3f} [{:.3f}, {:.3f}], acceptance {:.3f}, churn {:.3f} ({:.1f} s)",
               summary.weekly_return.value, summary.weekly_return.lo, summary.weekly_return.hi, summary.acceptance.value,
               summary.churn, summary.wall_s);
}

}  // namespace

void add_simulate_command(CLI::App& app, const GlobalOptions& global) {
  auto cli = std::make_shared<SimulateCli>();
  auto* sub = app.add_subcommand("simulate-traffic", "Drive a running service with simulated MealSim users over HTTP");
  sub->add_option("--port", cli->port, "the service's port (default server.port)");
  sub->add_option("--host", cli->host, "the service's IPv4 address")->capture_default_str();
  sub->add_option("--users", cli->users, "simulated users, one week each")->capture_default_str()->check(CLI::Range(1, 1'000'000));
  sub->add_option("--clients", cli->clients, "users simulated at once")->capture_default_str()->check(CLI::Range(1, 1024));
  sub->add_option("--seed", cli->seed, "user u is MealSim::reset(seed + u)")->capture_default_str();
  sub->add_option("--start", cli->start, "simulated date of the users' first day, YYYY-MM-DD (UTC)")->capture_default_str();
  sub->add_option("--population", cli->population, "population file (default <policy.catalog_dir>/population.yaml)");
  sub->add_option("--out", cli->out, "also write the summary, per-user weeks included, as JSON here");
  sub->footer(
      "The service must run with server.simulation_clock: true (FORKCAST_SERVER__SIMULATION_CLOCK=true), so that\n"
      "the requests' times are the events' times. Prints one JSON line: the online weekly return (MealSim's\n"
      "reward, hidden taste included), acceptance and churn with 95 % bootstrap intervals over users.");
  sub->callback([cli, &global] { run_simulate(global, *cli); });
}

}  // namespace forkcast::apps
