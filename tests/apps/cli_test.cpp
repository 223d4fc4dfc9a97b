// Runs the real forkcast binary and checks exit codes and output.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace {

struct Run {
  int exit_code;
  std::string output;  // stdout and stderr together
};

Run run(const std::string& args, const std::string& env = "") {
  const std::string cmd = env + " " FORKCAST_EXE " " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  std::string out;
  std::array<char, 4096> buf{};
  while (std::fgets(buf.data(), buf.size(), pipe) != nullptr) out += buf.data();
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
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
  for (const char* sub : {"serve", "train", "evaluate", "db", "advise", "catalog", "version", "config",
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

TEST(Cli, UnbuiltSubcommandsExitTwoAndSaySo) {
  for (const char* sub : {"serve", "evaluate", "db status", "advise"}) {
    const auto r = run(sub);
    EXPECT_EQ(r.exit_code, 2) << sub;
    EXPECT_NE(r.output.find("not built yet"), std::string::npos) << sub;
  }
}
