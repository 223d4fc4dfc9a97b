// Subcommand registration for the forkcast CLI. Each add_*_command declares its
// options on `app` and installs a callback that loads the configuration and calls
// into the modules. Callbacks report failure by throwing; main maps exceptions to
// exit codes (see main.cpp).
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>

#include "forkcast/config/config.hpp"

namespace forkcast::apps {

inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

struct GlobalOptions {
  std::string config_path;
  std::string log_level;
  std::string log_format;
};

// Loads the configuration the global options point at, applies environment overrides,
// validates, and configures logging. Throws config::ConfigError.
config::Config load_config_and_logging(const GlobalOptions& global);

// The path that will be read: --config, else config/forkcast.yaml when present.
std::optional<std::string> resolved_config_path(const GlobalOptions& global);

std::string version_line();

void add_version_command(CLI::App& app, const GlobalOptions& global);
void add_config_command(CLI::App& app, const GlobalOptions& global);
void add_catalog_command(CLI::App& app, const GlobalOptions& global);
void add_train_command(CLI::App& app, const GlobalOptions& global);
void add_db_command(CLI::App& app, const GlobalOptions& global);
void add_evaluate_command(CLI::App& app, const GlobalOptions& global);
void add_serve_command(CLI::App& app, const GlobalOptions& global);
void add_advise_command(CLI::App& app, const GlobalOptions& global);
void add_learn_command(CLI::App& app, const GlobalOptions& global);
void add_simulate_command(CLI::App& app, const GlobalOptions& global);

}  // namespace forkcast::apps
