// `forkcast version` and `forkcast config check|show`.
#include <spdlog/spdlog.h>

#include <filesystem>
#include <iostream>

#include "build_info.hpp"
#include "commands.hpp"
#include "forkcast/config/logging.hpp"

namespace forkcast::apps {

std::optional<std::string> resolved_config_path(const GlobalOptions& global) {
  if (!global.config_path.empty()) return global.config_path;
  if (std::filesystem::exists("config/forkcast.yaml")) return std::string("config/forkcast.yaml");
  return std::nullopt;
}

config::Config load_config_and_logging(const GlobalOptions& global) {
  const auto path = resolved_config_path(global);
  std::optional<std::filesystem::path> file;
  if (path) file = *path;
  config::Config cfg = config::load(file, config::process_environment());
  if (!global.log_level.empty()) cfg.logging.level = global.log_level;
  if (!global.log_format.empty()) cfg.logging.format = global.log_format;
  config::configure_logging(cfg.logging.level, cfg.logging.format);
  return cfg;
}

std::string version_line() {
  return std::string("forkcast ") + build_info::kVersion + " (git " + build_info::kGitRevision +
         ", " + build_info::kBuildType + ", " + build_info::kCompiler + ")";
}

void add_version_command(CLI::App& app, const GlobalOptions&) {
  auto* sub = app.add_subcommand("version", "Print the version, git revision and build settings");
  sub->callback([] { std::cout << version_line() << "\n"; });
}

void add_config_command(CLI::App& app, const GlobalOptions& global) {
  auto* sub = app.add_subcommand("config", "Check or show the effective configuration");
  sub->require_subcommand(1);
  auto* check = sub->add_subcommand(
      "check", "Load the configuration file and FORKCAST_* overrides, validate, report");
  check->callback([&global] {
    const auto cfg = load_config_and_logging(global);
    const auto path = resolved_config_path(global);
    std::cout << "config OK: " << (path ? *path : std::string("(built-in defaults)")) << " ("
              << config::known_keys().size() << " keys, server " << cfg.server.host << ":"
              << cfg.server.port << ")\n";
  });
  auto* show = sub->add_subcommand("show", "Print the effective configuration as YAML");
  show->callback([&global] { std::cout << config::to_yaml(load_config_and_logging(global)); });
}

}  // namespace forkcast::apps
