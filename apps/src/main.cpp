// forkcast command line: parses arguments and wires modules, nothing else.
// Exit codes: 0 success, 1 the command failed at run time, 2 bad usage or
// configuration.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>

#include "commands.hpp"
#include "forkcast/config/config.hpp"
#include "forkcast/config/logging.hpp"

namespace {

using forkcast::apps::GlobalOptions;

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"forkcast: a reinforcement-learning meal advisor", "forkcast"};
  app.require_subcommand(1);
  app.set_version_flag("--version", forkcast::apps::version_line());
  app.footer("Configuration: config/forkcast.yaml (or --config), overridden by\n"
             "FORKCAST_<SECTION>__<KEY> environment variables, e.g. FORKCAST_SERVER__PORT=9000.\n"
             "Exit codes: 0 ok, 1 failure, 2 bad usage or configuration.");

  GlobalOptions global;
  app.add_option("--config", global.config_path,
                 "YAML configuration file (default: config/forkcast.yaml if it exists)")
      ->envname("FORKCAST_CONFIG");
  app.add_option("--log-level", global.log_level,
                 "trace|debug|info|warn|error|off (overrides logging.level)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.add_option("--log-format", global.log_format, "text|json (overrides logging.format)")
      ->check(CLI::IsMember({"text", "json"}));

  forkcast::apps::add_version_command(app, global);
  forkcast::apps::add_config_command(app, global);
  forkcast::apps::add_catalog_command(app, global);
  forkcast::apps::add_train_command(app, global);
  forkcast::apps::add_serve_command(app, global);
  forkcast::apps::add_evaluate_command(app, global);
  forkcast::apps::add_db_command(app, global);
  forkcast::apps::add_advise_command(app, global);
  forkcast::apps::add_learn_command(app, global);
  forkcast::apps::add_simulate_command(app, global);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();
  } catch (const CLI::ParseError& e) {
    app.exit(e);  // prints the message
    return forkcast::apps::kExitUsage;
  } catch (const forkcast::config::ConfigError& e) {
    std::fprintf(stderr, "forkcast: %s\n", e.what());
    return forkcast::apps::kExitUsage;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "forkcast: %s\n", e.what());
    return forkcast::apps::kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forkcast: error: %s\n", e.what());
    return forkcast::apps::kExitFailure;
  }
  return 0;
}
