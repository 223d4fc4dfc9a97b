// `forkcast evaluate` through the real binary: a good run writes the whole report, and every
// bad input (missing or corrupted checkpoint, catalog mismatch, empty log, bad propensity,
// unknown policy, occupied --out) fails with a message naming the file and the problem, exit
// code 2, and nothing in --out.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "forkcast/env/catalog.hpp"
#include "forkcast/policy/checkpoint.hpp"
#include "run_command.hpp"

namespace fs = std::filesystem;
namespace fp = forkcast::policy;

namespace {

using CliRun = forkcast::testing::CommandOutput;

CliRun run(const std::string& args) {
  return forkcast::testing::run_command(FORKCAST_EXE " " + args);
}

const std::string kData = " --data-dir " FORKCAST_SOURCE_DIR "/data";

// Nothing named like the report, finished or temporary, next to where it would go.
void expect_nothing_written(const fs::path& out) {
  EXPECT_FALSE(fs::exists(out)) << out;
  for (const auto& e : fs::directory_iterator(out.parent_path())) {
    EXPECT_EQ(e.path().filename().string().find("." + out.filename().string() + ".tmp"), std::string::npos) << e.path();
  }
}

}  // namespace

class EvaluateCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / "forkcast_evaluate_cli_test";
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const auto r = run("train --agent tabular --env mealsim --episodes 500 --max-steps 0 --seed 2 --eval-episodes 0 "
                       "--checkpoint-every 500 --no-progress" + kData + " --runs-dir " + dir_.string() + " --run-id tab");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    checkpoint_ = dir_ / "tab" / "final.safetensors";
  }
  // A small, fast evaluation of `policies` into dir_/name with `extra` arguments.
  static CliRun evaluate(const std::string& policies, const std::string& name, const std::string& extra = "") {
    return run("evaluate " + policies + " --users 15 --bootstrap 50 --no-progress" + kData + " --out " + (dir_ / name).string() +
               " " + extra);
  }
  static fs::path write(const std::string& name, const std::string& text) {
    const auto path = dir_ / name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  static inline fs::path dir_;
  static inline fs::path checkpoint_;
};

TEST_F(EvaluateCli, AGoodRunWritesTheWholeReport) {
  const auto r = evaluate("--policy random --policy myopic-oracle --policy " + checkpoint_.string(), "good",
                          "--model-card " + checkpoint_.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* f : {"report.json", "report.html", "report.md", "model-card.md"}) EXPECT_TRUE(fs::exists(dir_ / "good" / f)) << f;
  std::ifstream in(dir_ / "good" / "report.json");
  const auto report = nlohmann::json::parse(in);
  EXPECT_EQ(report.at("schema_version"), 1);
  EXPECT_EQ(report.at("policies").size(), 3U);
  EXPECT_NE(r.output.find("weekly return"), std::string::npos) << r.output;
  EXPECT_NE(report.at("command").get<std::string>().find("--users 15"), std::string::npos);
  for (const auto& e : fs::directory_iterator(dir_)) EXPECT_EQ(e.path().filename().string().find(".good.tmp"), std::string::npos);
}

TEST_F(EvaluateCli, AModelCardCheckpointNotListedIsEvaluatedToo) {
  const auto r = evaluate("--policy random", "card_only", "--model-card " + checkpoint_.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(dir_ / "card_only" / "model-card.md");
  std::stringstream card;
  card << in.rdbuf();
  EXPECT_NE(card.str().find("forkcast.tabular.v1"), std::string::npos);
}

TEST_F(EvaluateCli, MissingCheckpointNamesTheFile) {
  const auto missing = (dir_ / "nope" / "final.safetensors").string();
  const auto r = evaluate("--policy random --policy " + missing, "missing");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(missing), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("no such checkpoint file"), std::string::npos) << r.output;
  expect_nothing_written(dir_ / "missing");
}

TEST_F(EvaluateCli, CorruptedCheckpointNamesTheFile) {
  std::ifstream in(checkpoint_, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  bytes[12] = '#';  // inside the JSON header
  const auto corrupt = write("corrupt.safetensors", bytes);
  const auto r = evaluate("--policy " + corrupt.string(), "corrupt");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(corrupt.string()), std::string::npos) << r.output;
  expect_nothing_written(dir_ / "corrupt");
}

TEST_F(EvaluateCli, CatalogMismatchNamesTheFileAndBothHashes) {
  auto c = fp::load_safetensors(checkpoint_);
  const std::string trained_on(64, 'e');
  c.metadata["env_spec"] = "MealSim catalog " + trained_on;
  const auto other = dir_ / "other_catalog.safetensors";
  fp::save_safetensors(other, c);
  const auto catalog = forkcast::env::Catalog::load(FORKCAST_SOURCE_DIR "/data");
  const auto r = evaluate("--policy random --policy " + other.string(), "mismatch");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(other.string()), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(trained_on), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(catalog.content_hash()), std::string::npos) << r.output;
  expect_nothing_written(dir_ / "mismatch");
}

TEST_F(EvaluateCli, EmptyLogNamesTheFile) {
  const auto log = write("empty.jsonl", "");
  const auto r = evaluate("--policy random", "empty_log", "--logs " + log.string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(log.string()), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("empty"), std::string::npos) << r.output;
  expect_nothing_written(dir_ / "empty_log");
}

TEST_F(EvaluateCli, PropensityOutsideZeroOneNamesTheFileAndLine) {
  const auto catalog = forkcast::env::Catalog::load(FORKCAST_SOURCE_DIR "/data");
  const auto& m = catalog.meals();
  const std::string good = R"({"kind":"decision","event_id":"a","user_id":"u","candidates":[")" + m[0].id + R"(",")" + m[1].id +
                           R"("],"probabilities":[0.5,0.5],"chosen":")" + m[0].id + "\"}";
  const std::string bad = R"({"kind":"decision","event_id":"b","user_id":"u","candidates":[")" + m[0].id + R"(",")" + m[1].id +
                          R"("],"probabilities":[0,1],"chosen":")" + m[0].id + "\"}";
  const auto log = write("bad_propensity.jsonl", good + "\n" + bad + "\n");
  const auto r = evaluate("--policy random", "bad_propensity", "--logs " + log.string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(log.string() + ":2:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("outside (0, 1]"), std::string::npos) << r.output;
  expect_nothing_written(dir_ / "bad_propensity");
}

TEST_F(EvaluateCli, UnknownPolicyAndEnvironmentAreUsageErrors) {
  auto r = evaluate("--policy randomm", "unknown");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("randomm"), std::string::npos) << r.output;
  expect_nothing_written(dir_ / "unknown");
  r = evaluate("--policy random --env cartpole", "cartpole");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = evaluate("", "no_policy");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  expect_nothing_written(dir_ / "no_policy");
}

TEST_F(EvaluateCli, AnOccupiedOutIsRefusedAndLeftAlone) {
  fs::create_directories(dir_ / "occupied");
  write("occupied/notes.txt", "keep me");
  auto r = evaluate("--policy random", "occupied");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--overwrite"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir_ / "occupied" / "notes.txt"));
  EXPECT_FALSE(fs::exists(dir_ / "occupied" / "report.json"));
  r = evaluate("--policy random", "occupied", "--overwrite");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir_ / "occupied" / "report.json"));
  EXPECT_FALSE(fs::exists(dir_ / "occupied" / "notes.txt"));  // replaced as a whole
}

TEST_F(EvaluateCli, SyntheticLogsFeedOffPolicyEvaluation) {
  const auto log = dir_ / "synthetic.jsonl";
  auto r = run("evaluate synth-logs --users 20 --seed 9" + kData + " --out " + log.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = evaluate("--policy random --policy popularity --policy myopic-oracle --policy " + checkpoint_.string(), "ope",
               "--logs " + log.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(dir_ / "ope" / "report.json");
  const auto report = nlohmann::json::parse(in);
  const auto& ope = report.at("off_policy");
  ASSERT_FALSE(ope.is_null());
  EXPECT_EQ(ope.at("results").size(), 3U);  // the oracle reads hidden state
  EXPECT_EQ(ope.at("not_evaluable").size(), 1U);
  EXPECT_GE(ope.at("decisions").get<int>(), 20 * 4);  // every user completes a day at least
  EXPECT_LE(ope.at("decisions").get<int>(), 20 * 28);
}
