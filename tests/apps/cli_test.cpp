// Runs the real forkcast binary and checks exit codes and output.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>
#include "run_command.hpp"

namespace {

using Run = forkcast::testing::CommandOutput;

Run run(const std::string& args, const std::string& env = "") {
  return forkcast::testing::run_command(env + " " FORKCAST_EXE " " + args);
}

std::string write_temp(const std::string& name, const std::string& text) {
  const auto dir = std::filesystem::temp_directory_path() / "forkcast_cli_test";
  std::filesystem::create_directories(dir);
  const auto path = dir / name;
  std::ofstream(path) << text;
  return path.string();
}

int count_lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

}  // namespace

TEST(Cli, VersionPrintsVersionAndRevision) {
  const auto r = run("version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.output.starts_with("forkcast 0.")) << r.output;
  EXPECT_NE(r.output.find("git "), std::string::npos);
}

TEST(Cli, HelpListsEverySubcommand) {
  const auto r = run("--help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* sub : {"serve", "train", "evaluate", "db", "advise", "catalog", "learn", "version", "config",
                          "--config", "--log-level", "--log-format"}) {
    EXPECT_NE(r.output.find(sub), std::string::npos) << sub;
  }
}

TEST(Cli, NoSubcommandIsAUsageError) {
  EXPECT_EQ(run("").exit_code, 2);
  EXPECT_EQ(run("frobnicate").exit_code, 2);
  EXPECT_EQ(run("--log-level loud version").exit_code, 2);
}

TEST(Cli, ConfigCheckAcceptsTheShippedFile) {
  const auto r = run("--config " FORKCAST_SOURCE_DIR "/config/forkcast.yaml config check");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("config OK"), std::string::npos);
}

TEST(Cli, BadValueExitsTwoWithOneLine) {
  const auto path = write_temp("bad_value.yaml", "server:\n  port: 70000\n");
  const auto r = run("--config " + path + " config check");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.output, "forkcast: " + path + ":2: server.port: 70000 is out of range 1..65535\n");
}

TEST(Cli, UnknownKeyExitsTwoWithSuggestion) {
  const auto path = write_temp("unknown_key.yaml", "server:\n  prot: 80\n");
  const auto r = run("--config " + path + " config check");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(count_lines(r.output), 1) << r.output;
  EXPECT_NE(r.output.find("server.prot: unknown key (did you mean \"port\"?)"), std::string::npos);
}

TEST(Cli, MalformedYamlExitsTwoWithLine) {
  const auto path = write_temp("malformed.yaml", "server:\n  port: [1, 2\n");
  const auto r = run("--config " + path + " config check");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(count_lines(r.output), 1) << r.output;
  EXPECT_NE(r.output.find(path + ":"), std::string::npos);
  EXPECT_NE(r.output.find("malformed YAML"), std::string::npos);
}

TEST(Cli, EnvOverrideIsValidated) {
  const auto r = run("config check", "FORKCAST_SERVER__PORT=0");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("FORKCAST_SERVER__PORT"), std::string::npos);
}

TEST(Cli, ConfigShowReflectsEnvOverride) {
  const auto r = run("config show", "FORKCAST_SERVER__PORT=9123");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("port: 9123"), std::string::npos);
}

TEST(Cli, JsonLogFormatIsAccepted) {
  const auto r = run("--log-format json --log-level debug config check");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(Cli, ServeRefusesABadPortWithExitTwoBeforeStartingAnything) {
  const auto r = run("serve --port 70000");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--port"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("70000"), std::string::npos) << r.output;
}

TEST(CliCatalog, CheckPassesOnTheShippedCatalogAndCounts) {
  const auto r = run("catalog --data-dir " FORKCAST_SOURCE_DIR "/data check");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("catalog OK"), std::string::npos);
  EXPECT_NE(r.output.find("by slot: breakfast"), std::string::npos);
}

TEST(CliCatalog, ListFiltersAndShowComputesNutrition) {
  const auto list = run("catalog --data-dir " FORKCAST_SOURCE_DIR "/tests/env/fixtures/mini list --slot snack");
  EXPECT_EQ(list.exit_code, 0) << list.output;
  EXPECT_NE(list.output.find("almonds"), std::string::npos);
  EXPECT_EQ(list.output.find("chicken_rice_broccoli"), std::string::npos);
  EXPECT_NE(list.output.find("1 of 4 meals"), std::string::npos);
  const auto show = run("catalog --data-dir " FORKCAST_SOURCE_DIR "/tests/env/fixtures/mini show almonds");
  EXPECT_EQ(show.exit_code, 0) << show.output;
  EXPECT_NE(show.output.find("allergens: tree_nuts"), std::string::npos) << show.output;
  EXPECT_NE(show.output.find("174 kcal"), std::string::npos) << show.output;  // 579 kcal/100 g x 30 g
  const auto missing = run("catalog --data-dir " FORKCAST_SOURCE_DIR "/tests/env/fixtures/mini show nope");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.output.find("meal: \"nope\" is not in the catalog"), std::string::npos);
  EXPECT_EQ(run("catalog --data-dir " FORKCAST_SOURCE_DIR "/data list --slot brunch").exit_code, 2);
}

TEST(CliCatalog, CheckFailsWithPreciseMessages) {
  const auto dir = std::filesystem::temp_directory_path() / "forkcast_cli_badcatalog";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::filesystem::path mini = FORKCAST_SOURCE_DIR "/tests/env/fixtures/mini";
  for (const char* f : {"foods.csv", "food_tags.csv", "meals.yaml"}) std::filesystem::copy_file(mini / f, dir / f);
  // Almonds with a wrong energy value: the Atwater rule catches it.
  std::ifstream in(dir / "foods.csv");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  in.close();
  text.replace(text.find(",579,"), 5, ",1579,");
  std::ofstream(dir / "foods.csv") << text;
  const auto r = run("catalog --data-dir " + dir.string() + " check");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("meal almonds: kcal 474 is not within 15 %"), std::string::npos) << r.output;
}

TEST(CliCatalog, ImportRefusesABadFileAndAcceptsAGoodOne) {
  const auto dir = std::filesystem::temp_directory_path() / "forkcast_cli_import";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::filesystem::path mini = FORKCAST_SOURCE_DIR "/tests/env/fixtures/mini";
  for (const char* f : {"foods.csv", "food_tags.csv", "meals.yaml"}) std::filesystem::copy_file(mini / f, dir / f);
  const auto bad = write_temp("bad_meals.yaml", "meals:\n  - id: x\n    name: X\n    slot: lunch\n    cuisine: thai\n"
                                                "    prep_min: 5\n    cost_usd: 1\n    tags: [spicy]\n"
                                                "    ingredients:\n      - {ndb: \"12345\", g: 10}\n");
  auto r = run("catalog --data-dir " + dir.string() + " import " + bad);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("bad_meals.yaml:10: ndb: \"12345\" is not in foods.csv"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "meals.d"));
  const auto good = write_temp("good_meals.yaml", "meals:\n  - id: rice_chickpeas\n    name: Rice and chickpeas\n"
                                                  "    slot: lunch\n    cuisine: indian\n    prep_min: 15\n"
                                                  "    cost_usd: 1.5\n    tags: [savory]\n    ingredients:\n"
                                                  "      - {ndb: \"20045\", g: 200}\n      - {ndb: \"16057\", g: 150}\n");
  r = run("catalog --data-dir " + dir.string() + " import " + good);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("imported 1 meal(s)"), std::string::npos) << r.output;
  EXPECT_EQ(run("catalog --data-dir " + dir.string() + " show rice_chickpeas").exit_code, 0);
}

TEST(CliTrain, TaxiRunWritesMetricsCheckpointAndQTable) {
  const auto runs = std::filesystem::temp_directory_path() / "forkcast_cli_runs";
  std::filesystem::remove_all(runs);
  const auto q = runs / "q.csv";
  const auto r = run("train --agent tabular --env taxi --episodes 2000 --seed 1 --runs-dir " + runs.string() +
                     " --run-id t --export-q " + q.string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("greedy evaluation over 100 episodes"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("progress: 2000/2000 ep"), std::string::npos) << r.output;  // not a terminal: plain lines
  EXPECT_TRUE(std::filesystem::exists(runs / "t" / "final.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(runs / "t" / "latest.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(runs / "t" / "summary.json"));
  std::ifstream metrics(runs / "t" / "metrics.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(metrics, line)) ++lines;
  EXPECT_EQ(lines, 20);  // one record per 100 episodes
  EXPECT_TRUE(std::filesystem::exists(q));
  // Resuming a finished run is a no-op that still evaluates.
  const auto again = run("train --agent tabular --env taxi --episodes 2000 --seed 1 --runs-dir " + runs.string() +
                         " --run-id t --resume " + (runs / "t" / "final.safetensors").string());
  EXPECT_EQ(again.exit_code, 0) << again.output;
}

TEST(CliTrain, BadArgumentsExitTwo) {
  EXPECT_EQ(run("train --agent tabular --env chess --episodes 10").exit_code, 2);
  EXPECT_EQ(run("train --agent tabular --env taxi --episodes 0").exit_code, 2);
  const auto r = run("train --agent tabular --env taxi --episodes 10 --lr 3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--lr: 3"), std::string::npos) << r.output;
}

TEST(CliTrain, TheDqnTakesItsSettingsFromTheDqnSectionAndRefusesTabularFlags) {
  const auto runs = std::filesystem::temp_directory_path() / "forkcast_cli_dqn_runs";
  std::filesystem::remove_all(runs);
  const auto config = write_temp("dqn.yaml", "dqn:\n  gamma: 0.5\n  hidden: \"16, 8\"\n  eval_every: 0\n");
  const auto r = run("--config " + config + " train --agent dqn --env mealsim --steps 300 --learning-starts 100 "
                     "--eval-episodes 2 --no-progress --seed 2 --runs-dir " + runs.string() + " --run-id d",
                     "FORKCAST_DQN__N_STEP=2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The settings the run recorded are the config's (file and environment), not the preset's.
  std::ifstream model(runs / "d" / "model.safetensors", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(model)), std::istreambuf_iterator<char>());
  for (const char* expected : {R"(\"gamma\":0.5)", R"(\"hidden\":[16,8])", R"(\"n_step\":2)"}) {
    EXPECT_NE(bytes.find(expected), std::string::npos) << expected;
  }
  // Flags of the tabular agent are refused by name, pointing at the DQN's own.
  for (const auto& [flag, instead] : std::vector<std::pair<std::string, std::string>>{
           {"--gamma 0.9", "--dqn-gamma"}, {"--lr 0.1", "--dqn-lr"}, {"--episodes 10", "--steps"}}) {
    const auto refused = run("train --agent dqn --env mealsim --steps 10 " + flag);
    EXPECT_EQ(refused.exit_code, 2) << flag;
    EXPECT_NE(refused.output.find(instead), std::string::npos) << refused.output;
  }
  const auto bad = run("train --agent dqn --env mealsim --steps 10", "FORKCAST_DQN__HIDDEN=64,0");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.output.find("dqn.hidden"), std::string::npos) << bad.output;
}

TEST(Cli, LearnNeedsExactlyOneOfOnceOrEveryAndSaysWhatADurationIs) {
  const auto neither = run("learn");
  EXPECT_EQ(neither.exit_code, 2) << neither.output;
  EXPECT_NE(neither.output.find("give exactly one of --once or --every"), std::string::npos) << neither.output;
  EXPECT_EQ(run("learn --once --every 10m").exit_code, 2);
  const auto bad = run("learn --every 10x");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("--every: '10x' is not a positive duration like 90s, 10m or 2h"), std::string::npos)
      << bad.output;
  EXPECT_EQ(run("learn --every 0s").exit_code, 2);
  const auto gate = run("learn --once --override-gate maybe");
  EXPECT_EQ(gate.exit_code, 2) << gate.output;
  EXPECT_NE(gate.output.find("allowed: promote, reject"), std::string::npos) << gate.output;
}
