#include "forkcast/config/config.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace fc = forkcast::config;

namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const fc::ConfigError& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace

TEST(ConfigLoad, EmptyDocumentKeepsDefaults) {
  const auto cfg = fc::load_string("");
  EXPECT_EQ(cfg.server.port, 8080);
  EXPECT_EQ(cfg.server.host, "127.0.0.1");
  EXPECT_DOUBLE_EQ(cfg.exploration.epsilon_min, 0.05);
  EXPECT_EQ(cfg.logging.format, "text");
}

TEST(ConfigLoad, ReadsEveryType) {
  const auto cfg = fc::load_string(R"(
server: {port: 9000, host: "0.0.0.0"}
exploration: {epsilon_min: 0.1, linear_steps: 5000000000}
advice: {enabled: false}
logging: {format: json}
)");
  EXPECT_EQ(cfg.server.port, 9000);
  EXPECT_EQ(cfg.server.host, "0.0.0.0");
  EXPECT_DOUBLE_EQ(cfg.exploration.epsilon_min, 0.1);
  EXPECT_EQ(cfg.exploration.linear_steps, 5'000'000'000);
  EXPECT_FALSE(cfg.advice.enabled);
  EXPECT_EQ(cfg.logging.format, "json");
}

TEST(ConfigLoad, ShippedFileLoadsAndMatchesDefaults) {
  const auto shipped = fc::load_file(FORKCAST_SOURCE_DIR "/config/forkcast.yaml");
  // The shipped file documents the defaults; if they drift apart, one of them lies.
  EXPECT_EQ(fc::to_yaml(shipped), fc::to_yaml(fc::Config{}));
}

// Review, 2026-12-01: `config show` printed database.url, password included.
TEST(ConfigLoad, ShowHidesTheDatabaseUrlAndTheAdminKey) {
  fc::Config c;
  c.database.url = "postgresql://app:s3cret@db/forkcast";
  c.server.admin_api_key = "k3y";
  const std::string shown = fc::to_yaml(c);
  EXPECT_EQ(shown.find("s3cret"), std::string::npos) << shown;
  EXPECT_EQ(shown.find("k3y"), std::string::npos) << shown;
  EXPECT_NE(shown.find("url: \"<set, hidden>\""), std::string::npos) << shown;
}

// Found by fuzz_config, 2026-12-07: a string holding a double quote was written into
// `config show` output unescaped, and the output no longer loaded.
TEST(ConfigLoad, ShownStringsWithQuotesBackslashesAndControlCharactersLoadBackUnchanged) {
  fc::Config c;
  c.policy.model_dir = "d\"omels/policies\"";
  c.policy.catalog_dir = "C:\\data\\meals";
  c.server.decision_journal_dir = std::string("var/jour\tnal\x01\x7f") + "/\xc3\xa9t\xc3\xa9";
  const std::string shown = fc::to_yaml(c);
  EXPECT_NE(shown.find(R"(model_dir: "d\"omels/policies\"")"), std::string::npos) << shown;
  const fc::Config back = fc::load_string(shown, "shown.yaml");
  EXPECT_EQ(back.policy.model_dir, c.policy.model_dir);
  EXPECT_EQ(back.policy.catalog_dir, c.policy.catalog_dir);
  EXPECT_EQ(back.server.decision_journal_dir, c.server.decision_journal_dir);
  EXPECT_EQ(fc::to_yaml(back), shown);
}

TEST(ConfigValidation, OutOfRangeNamesKeyValueAndRange) {
  const auto msg = error_of([] { fc::load_string("server:\n  port: 70000\n", "f.yaml"); });
  EXPECT_EQ(msg, "f.yaml:2: server.port: 70000 is out of range 1..65535");
  // Review, 2026-12-01: more new tokens than the advice engine's context can hold made every
  // request fall back to the template, silently.
  EXPECT_EQ(error_of([] { fc::load_string("advice:\n  max_new_tokens: 600\n", "f.yaml"); }),
            "f.yaml:2: advice.max_new_tokens: 600 is out of range 1..256");
}

TEST(ConfigValidation, WrongTypeIsReported) {
  EXPECT_EQ(error_of([] { fc::load_string("server:\n  port: eighty\n", "f.yaml"); }),
            "f.yaml:2: server.port: \"eighty\" is not an integer");
  EXPECT_EQ(error_of([] { fc::load_string("exploration:\n  decay: fast\n", "f.yaml"); }),
            "f.yaml:2: exploration.decay: \"fast\" is not a finite number");
  EXPECT_EQ(error_of([] { fc::load_string("advice:\n  enabled: maybe\n", "f.yaml"); }),
            "f.yaml:2: advice.enabled: \"maybe\" is not a boolean (true or false)");
  EXPECT_EQ(error_of([] { fc::load_string("server:\n  port: [1, 2]\n", "f.yaml"); }),
            "f.yaml:2: server.port: must be a single value, not a list or mapping");
}

TEST(ConfigValidation, ChoicesAreListed) {
  EXPECT_EQ(error_of([] { fc::load_string("logging:\n  format: xml\n", "f.yaml"); }),
            "f.yaml:2: logging.format: \"xml\" is not one of text, json");
}

TEST(ConfigValidation, UnknownKeySuggestsTheClosest) {
  EXPECT_EQ(error_of([] { fc::load_string("server:\n  prot: 1\n", "f.yaml"); }),
            "f.yaml:2: server.prot: unknown key (did you mean \"port\"?)");
  EXPECT_EQ(error_of([] { fc::load_string("exploraton:\n  decay: 1\n", "f.yaml"); }),
            "f.yaml:1: exploraton: unknown section (did you mean \"exploration\"?)");
  // Nothing close: no suggestion rather than a silly one.
  EXPECT_EQ(error_of([] { fc::load_string("server:\n  zzzzzzzzzz: 1\n", "f.yaml"); }),
            "f.yaml:2: server.zzzzzzzzzz: unknown key");
}

TEST(ConfigValidation, MalformedYamlGivesLine) {
  const auto msg = error_of([] { fc::load_string("server:\n  port: [1, 2\n", "f.yaml"); });
  EXPECT_TRUE(msg.starts_with("f.yaml:")) << msg;
  EXPECT_NE(msg.find("malformed YAML"), std::string::npos) << msg;
}

TEST(ConfigValidation, CrossFieldRules) {
  fc::Config cfg;
  cfg.exploration.epsilon_min = 0.5;
  cfg.exploration.epsilon_max = 0.2;
  EXPECT_EQ(error_of([&] { fc::validate(cfg); }),
            "exploration.epsilon_min: 0.5 is greater than exploration.epsilon_max (0.2)");
  cfg = fc::Config{};
  cfg.database.url = "mysql://x";
  EXPECT_NE(error_of([&] { fc::validate(cfg); }).find("database.url"), std::string::npos);
  EXPECT_NO_THROW(fc::validate(fc::Config{}));
}

TEST(ConfigEnv, OverridesApplyAndAreValidated) {
  fc::Config cfg;
  fc::apply_env_overrides(cfg, {{"FORKCAST_SERVER__PORT", "9100"},
                                {"FORKCAST_ADVICE__ENABLED", "false"},
                                {"FORKCAST_SANITIZE", "address"},  // no "__": not ours
                                {"PATH", "/usr/bin"}});
  EXPECT_EQ(cfg.server.port, 9100);
  EXPECT_FALSE(cfg.advice.enabled);
  EXPECT_EQ(error_of([&] { fc::apply_env_overrides(cfg, {{"FORKCAST_SERVER__PORT", "0"}}); }),
            "env FORKCAST_SERVER__PORT: server.port: 0 is out of range 1..65535");
  EXPECT_EQ(error_of([&] { fc::apply_env_overrides(cfg, {{"FORKCAST_SERVER__PROT", "1"}}); }),
            "env FORKCAST_SERVER__PROT: unknown variable (did you mean \"FORKCAST_SERVER__PORT\"?)");
}

TEST(ConfigEnv, EnvironmentWinsOverFile) {
  const auto dir = std::filesystem::temp_directory_path() / "forkcast_config_test";
  std::filesystem::create_directories(dir);
  const auto path = dir / "c.yaml";
  std::ofstream(path) << "server:\n  port: 9000\n";
  const auto cfg = fc::load(path, {{"FORKCAST_SERVER__PORT", "9001"}});
  EXPECT_EQ(cfg.server.port, 9001);
  std::filesystem::remove_all(dir);
}

TEST(ConfigLoad, MissingFileIsAnError) {
  EXPECT_EQ(error_of([] { fc::load_file("/nonexistent/forkcast.yaml"); }),
            "/nonexistent/forkcast.yaml: cannot open config file");
}

TEST(ConfigKeys, DidYouMean) {
  EXPECT_EQ(fc::did_you_mean("gama", {"gamma", "learning_rate"}), "gamma");
  EXPECT_EQ(fc::did_you_mean("xyz", {"gamma", "learning_rate"}), std::nullopt);
  const auto keys = fc::known_keys();
  EXPECT_NE(std::find(keys.begin(), keys.end(), "training.learning_rate"), keys.end());
}

TEST(ConfigDqn, HiddenLayersAreWidthsAndTheEpsilonsDecrease) {
  fc::DqnConfig dqn;
  EXPECT_EQ(dqn.hidden_layers(), (std::vector<int>{128, 64}));  // the bundled model's shape
  dqn.hidden = " 256 ,256,32 ";
  EXPECT_EQ(dqn.hidden_layers(), (std::vector<int>{256, 256, 32}));
  for (const char* bad : {"", "128,", ",64", "128;64", "0", "-4", "65537", "1,2,3,4,5,6,7,8,9", "12x"}) {
    dqn.hidden = bad;
    EXPECT_EQ(error_of([&] { (void)dqn.hidden_layers(); }),
              std::string("dqn.hidden: \"") + bad + "\" is not 1 to 8 layer widths in 1..65536, e.g. \"128,64\"")
        << bad;
  }
  // Validation (which load() runs after the file and the environment) checks it, so a bad
  // value stops `config check` rather than the first training run.
  EXPECT_NE(error_of([] { fc::validate(fc::load_string("dqn:\n  hidden: \"64,zero\"\n", "f.yaml")); }).find("dqn.hidden"),
            std::string::npos);
  fc::Config cfg;
  cfg.dqn.epsilon_start = 0.1;
  cfg.dqn.epsilon_end = 0.2;
  EXPECT_EQ(error_of([&] { fc::validate(cfg); }), "dqn.epsilon_end: 0.2 is greater than dqn.epsilon_start (0.1)");
}
