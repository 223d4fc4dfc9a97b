// Promotion across processes: three `forkcast serve` processes on one PostgreSQL, each
// under recommendation + feedback load. A model promoted through one process's admin route
// is served by all three within 2 s (measured from the promote request to each process's
// /readyz naming it), with no non-2xx answer and no restart; /metrics of the others shows
// the swap as coming from the registry. A promotion of a file the others cannot serve
// changes nothing there but a failure counter, and a good promotion afterwards goes through.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "client_load.hpp"
#include "forkcast/db/database.hpp"
#include "forkcast/policy/checkpoint.hpp"
#include "service_test_support.hpp"

namespace st = forkcast::service::testing;
namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {


std::string serving_version(int port) {
  const auto r = st::http_request(port, "GET", "/readyz", {}, {}, 2s);
  if (!r || r->status != 200U) return {};
  return json::parse(r->body, nullptr, false).value("model", "");
}

// Milliseconds from `since` until the process on `port` serves `version`, or -1 after `timeout`.
double wait_until_serving(int port, const std::string& version, Clock::time_point since,
                          std::chrono::milliseconds timeout = 5s) {
  while (Clock::now() - since < timeout) {
    if (serving_version(port) == version) return std::chrono::duration<double, std::milli>(Clock::now() - since).count();
    std::this_thread::sleep_for(10ms);
  }
  return -1;
}

// The value of the sample `series` (name with labels, as exposed) in /metrics; -1 if absent.
double metric(int port, const std::string& series) {
  const auto r = st::http_request(port, "GET", "/metrics", {}, {}, 5s);
  if (!r) return -1;
  std::istringstream lines(r->body);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

}  // namespace

TEST(ServicePromotion, APromotionOnOneProcessIsServedByEveryProcessOnTheDatabaseWithinTwoSeconds) {
  st::ServeProcess first;
  const std::string url = first.database_url();
  st::ServeProcess second({"FORKCAST_DATABASE__URL=" + url});
  st::ServeProcess third({"FORKCAST_DATABASE__URL=" + url});
  const std::array<int, 3> ports = {first.port(), second.port(), third.port()};
  for (int port : ports) ASSERT_EQ(serving_version(port), "mealsim-dqn-default");

  forkcast::db::DatabaseOptions options;
  options.url = url;
  options.pool_size = 1;
  forkcast::db::Database database(options);
  const fs::path dir = first.data_dir().parent_path() / "candidates";
  fs::create_directories(dir);
  fs::copy_file(st::serving_model(), dir / "next.safetensors");
  fs::copy_file(st::serving_model(), dir / "broken.safetensors");
  const std::string next = st::register_model_file(database, dir / "next.safetensors", "next-candidate");
  const std::string broken = st::register_model_file(database, dir / "broken.safetensors", "broken-candidate");

  std::vector<std::unique_ptr<st::ClientLoad>> loads;
  for (int port : ports) loads.push_back(std::make_unique<st::ClientLoad>(port, st::ClientLoad::Options{.clients = 2, .pause = 10ms}));
  std::this_thread::sleep_for(1s);

  // Through the first process's admin route: the others follow.
  std::vector<double> latencies_ms;
  for (const std::string& version : {next, std::string("mealsim-dqn-default"), next}) {
    const auto promoted_at = Clock::now();
    const auto r = st::http_request(first.port(), "POST", "/v1/models/" + version + "/promote", "", st::kAdminKey, 30s);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200U) << r->body;
    for (int port : ports) {
      const double ms = wait_until_serving(port, version, promoted_at);
      EXPECT_GE(ms, 0.0) << "port " << port << " never served " << version;
      EXPECT_LT(ms, 2'000.0) << "port " << port << " took " << ms << " ms to serve " << version;
      if (port != first.port()) latencies_ms.push_back(ms);
    }
  }
  // Through another process's route: the first follows as well.
  {
    const auto promoted_at = Clock::now();
    const auto r =
        st::http_request(third.port(), "POST", "/v1/models/mealsim-dqn-default/promote", "", st::kAdminKey, 30s);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200U) << r->body;
    for (int port : ports) {
      const double ms = wait_until_serving(port, "mealsim-dqn-default", promoted_at);
      EXPECT_GE(ms, 0.0);
      EXPECT_LT(ms, 2'000.0);
      if (port != third.port()) latencies_ms.push_back(ms);
    }
  }
  EXPECT_EQ(metric(second.port(), "forkcast_model_info{version=\"mealsim-dqn-default\"}"), 1.0);
  EXPECT_EQ(metric(second.port(), "forkcast_model_info{version=\"" + next + "\"}"), 0.0);
  EXPECT_EQ(metric(second.port(), "forkcast_model_swaps_total{source=\"registry\"}"), 4.0);
  EXPECT_EQ(metric(first.port(), "forkcast_model_swaps_total{source=\"admin\"}"), 3.0);
  EXPECT_EQ(metric(first.port(), "forkcast_model_swaps_total{source=\"registry\"}"), 1.0);

  // A model whose file changed after registration, made production behind the services'
  // backs (the registry allows it; the admin route would have refused): nobody serves it.
  { std::ofstream(dir / "broken.safetensors", std::ios::binary | std::ios::app) << "x"; }
  database.models().promote(broken);
  std::this_thread::sleep_for(1500ms);
  for (int port : ports) EXPECT_EQ(serving_version(port), "mealsim-dqn-default") << port;
  for (int port : ports) EXPECT_GE(metric(port, "forkcast_model_swap_failures_total"), 1.0) << port;
  // And the next good promotion is served everywhere.
  {
    const auto promoted_at = Clock::now();
    const auto r = st::http_request(second.port(), "POST", "/v1/models/" + next + "/promote", "", st::kAdminKey, 30s);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200U) << r->body;
    for (int port : ports) EXPECT_LT(wait_until_serving(port, next, promoted_at), 2'000.0) << port;
  }

  std::this_thread::sleep_for(500ms);
  int non_2xx = 0, no_reply = 0;
  std::size_t answered = 0, acknowledged = 0;
  for (auto& load : loads) {
    load->stop();
    const auto tally = load->tally();
    non_2xx += tally.non_2xx;
    no_reply += tally.no_reply;
    answered += tally.answered.size();
    acknowledged += tally.acknowledged.size();
    for (const auto& v : tally.model_versions) EXPECT_TRUE(v == next || v == "mealsim-dqn-default") << v;
  }
  double worst = 0;
  std::printf("promotion reached the other processes after (ms):");
  for (double ms : latencies_ms) {
    std::printf(" %.0f", ms);
    worst = std::max(worst, ms);
  }
  std::printf("; worst %.0f ms; load: %zu recommendations answered, %zu feedback acknowledged, %d non-2xx, %d "
              "without reply\n",
              worst, answered, acknowledged, non_2xx, no_reply);
  EXPECT_EQ(non_2xx, 0);
  EXPECT_EQ(no_reply, 0);
  EXPECT_GT(answered, 100U) << "the load barely ran";
  EXPECT_EQ(third.terminate(15s), 0) << third.log();
  EXPECT_EQ(second.terminate(15s), 0) << second.log();
  EXPECT_EQ(first.terminate(15s), 0) << first.log();
}
