// Faults: an operator promotes corrupt models while clients are being served. Every
// promotion of a file that is not what was registered (garbage bytes, a truncated model, a
// model altered after registration) is refused with 400 invalid_model naming the version,
// and the load sees nothing: 0 non-2xx, every recommendation from the model that was
// serving. Then a good model promotes under the same load and takes over, still 0 non-2xx.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
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
using namespace std::chrono_literals;

namespace {

// Registers `file` (with the sha256 it has now) as a dqn model; returns its version.

std::string bytes_of(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& file, const std::string& bytes) {
  std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
}

}  // namespace

TEST(ServiceFault, CorruptModelsPromotedUnderLoadNeverReachTheClients) {
  st::ServeProcess server;
  const int port = server.port();
  forkcast::db::DatabaseOptions options;
  options.url = server.database_url();
  options.pool_size = 1;
  forkcast::db::Database database(options);

  const fs::path dir = server.data_dir().parent_path() / "candidates";
  fs::create_directories(dir);
  const std::string model = bytes_of(st::serving_model());
  ASSERT_GT(model.size(), 1000U);
  write_bytes(dir / "garbage.safetensors", std::string(4096, '\x5a'));
  write_bytes(dir / "truncated.safetensors", model.substr(0, model.size() / 2));
  write_bytes(dir / "altered.safetensors", model);
  write_bytes(dir / "good.safetensors", model);
  const std::vector<std::string> corrupt = {
      st::register_model_file(database, dir / "garbage.safetensors", "corrupt-garbage"),
      st::register_model_file(database, dir / "truncated.safetensors", "corrupt-truncated"),
      st::register_model_file(database, dir / "altered.safetensors", "corrupt-altered"),
  };
  {  // flip one byte of the weights after registration: the sha256 no longer matches
    std::string altered = model;
    altered[altered.size() - 3] = static_cast<char>(altered[altered.size() - 3] ^ 0x40);
    write_bytes(dir / "altered.safetensors", altered);
  }
  const std::string good = st::register_model_file(database, dir / "good.safetensors", "good-candidate");

  st::ClientLoad load(port, {.clients = 4, .pause = 10ms});
  std::this_thread::sleep_for(1s);
  constexpr int kRounds = 10;
  int refused = 0;
  for (int round = 0; round < kRounds; ++round) {
    for (const auto& version : corrupt) {
      const auto r = st::http_request(port, "POST", "/v1/models/" + version + "/promote", "", st::kAdminKey, 30s);
      ASSERT_TRUE(r) << version;
      EXPECT_EQ(r->status, 400U) << version << ": " << r->body;
      const json body = json::parse(r->body, nullptr, false);
      EXPECT_EQ(body["error"].value("code", ""), "invalid_model") << r->body;
      EXPECT_NE(body["error"].value("message", "").find(version), std::string::npos) << "does not say which: " << r->body;
      refused += r->status == 400U ? 1 : 0;
    }
    std::this_thread::sleep_for(100ms);
  }
  const auto during = load.tally();
  EXPECT_EQ(during.model_versions, (std::set<std::string>{"mealsim-dqn-default"}));

  // A good model takes over under the same load; requests in flight finish on the old one.
  const auto promoted = st::http_request(port, "POST", "/v1/models/" + good + "/promote", "", st::kAdminKey, 30s);
  ASSERT_TRUE(promoted);
  ASSERT_EQ(promoted->status, 200U) << promoted->body;
  std::this_thread::sleep_for(1s);
  load.stop();
  const auto tally = load.tally();

  std::printf("promotions refused %d of %d; load: %zu recommendations answered, %zu feedback acknowledged, "
              "%d non-2xx, %d without reply, worst latency %lld ms, models served:",
              refused, kRounds * static_cast<int>(corrupt.size()), tally.answered.size(), tally.acknowledged.size(),
              tally.non_2xx, tally.no_reply, static_cast<long long>(tally.worst_latency.count() / 1000));
  for (const auto& v : tally.model_versions) std::printf(" %s", v.c_str());
  std::printf("\n");
  EXPECT_EQ(refused, kRounds * static_cast<int>(corrupt.size()));
  EXPECT_EQ(tally.non_2xx, 0) << "statuses other than 2xx reached the clients";
  EXPECT_EQ(tally.no_reply, 0);
  EXPECT_GT(tally.answered.size(), 100U) << "the load barely ran";
  EXPECT_EQ(tally.model_versions, (std::set<std::string>{"mealsim-dqn-default", good}));
  EXPECT_EQ(database.models().production()->registered.version, good);
  EXPECT_EQ(server.terminate(15s), 0) << server.log();
}
