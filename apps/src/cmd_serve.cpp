// `forkcast serve`: wires the catalog, the database (the local instance unless
// database.url is set), the advice engine and the service, then serves until SIGINT/SIGTERM.
#include <spdlog/spdlog.h>

#include <filesystem>
#include <iostream>
#include <optional>

#include "commands.hpp"
#include "forkcast/advice/engine.hpp"
#include "forkcast/db/database.hpp"
#include "forkcast/db/instance.hpp"
#include "forkcast/db/supervisor.hpp"
#include "forkcast/env/catalog.hpp"
#include "forkcast/service/application.hpp"
#include "forkcast/service/server.hpp"

namespace forkcast::apps {

namespace {

struct ServeCli {
  std::string database_url;
  int port = 0;
  std::string host;
};

void run_serve(const GlobalOptions& global, const ServeCli& cli) {
  config::Config config = load_config_and_logging(global);
  if (!cli.database_url.empty()) config.database.url = cli.database_url;
  if (cli.port != 0) config.server.port = cli.port;
  if (!cli.host.empty()) config.server.host = cli.host;

  const env::Catalog catalog = env::Catalog::load(config.policy.catalog_dir);
  std::optional<db::LocalInstance> local;
  bool started_here = false;
  std::string url = config.database.url;
  if (url.empty()) {
    local.emplace(db::instance_options(config.database));
    const auto started = local->start();
    started_here = !started.already_running;
    url = started.status.url;
    spdlog::info("database: local instance {} (pid {}, {})", started_here ? "started" : "already running",
                 started.status.pid, local->options().data_dir.string());
  }
  {
    db::Database database(db::database_options(config.database, url));
    // The advice model: a bad or unknown file never stops the service; it answers with
    // template advice and says why.
    std::unique_ptr<advice::AdviceEngine> engine;
    if (config.advice.enabled) {
      advice::EngineOptions advice_options;
      advice_options.model_path = config.advice.model_path;
      advice_options.allow_unknown_model = config.advice.allow_unknown_model;
      advice_options.contexts = config.advice.contexts;
      advice_options.queue_capacity = config.advice.queue_capacity;
      advice_options.threads = config.advice.threads;
      advice_options.max_new_tokens = config.advice.max_new_tokens;
      engine = std::make_unique<advice::AdviceEngine>(advice_options);
      if (engine->ready()) {
        spdlog::info("advice model {} loaded", engine->model_info().path);
      } else {
        spdlog::warn("advice model not loaded ({}); answering with template advice", engine->load_error());
      }
    }
    service::ApplicationOptions options;
    options.config = config;
    options.default_model = std::filesystem::path(config.policy.model_dir) / "mealsim-dqn-default.safetensors";
    options.decision_journal_dir = config.server.decision_journal_dir;
    service::Application app(options, catalog, database, engine.get());
    // The instance this process started is kept up while it serves: restarted after a
    // crash, its connections released when it shuts down (db/supervisor.hpp).
    std::optional<db::InstanceSupervisor> supervisor;
    if (local && started_here && config.database.supervise) {
      db::SupervisorOptions supervision;
      supervision.on_restart = [&app] { app.count_database_restart(); };
      supervision.on_restart_failure = [&app](const std::string&) { app.count_database_restart_failure(); };
      supervision.on_release = [&app] { app.release_database_connections(); };
      supervisor.emplace(*local, database.pool(), std::move(supervision));
    }
    service::Server server(app, config.server);
    const auto model = app.model();
    std::cout << "forkcast serving on http://" << config.server.host << ":" << server.port() << "/  (model "
              << model->version << ", " << catalog.size() << " meals; Ctrl-C stops)" << std::endl;
    server.run(true);
  }
  // Only an instance this process started is stopped: one started by `forkcast db start`
  // belongs to whoever started it.
  if (local && started_here) {
    local->stop(db::StopMode::fast);
    spdlog::info("database: local instance stopped");
  }
}

}  // namespace

void add_serve_command(CLI::App& app, const GlobalOptions& global) {
  static ServeCli cli;
  auto* sub = app.add_subcommand("serve", "Start the REST service (and the local database unless database.url is set)");
  sub->add_option("--database-url", cli.database_url, "PostgreSQL URL of another server (overrides database.url)");
  sub->add_option("--port", cli.port, "Port to listen on (overrides server.port)")->check(CLI::Range(1, 65535));
  sub->add_option("--host", cli.host, "Address to listen on (overrides server.host)");
  sub->footer(
      "Serves the API of docs/api.md and a demo page at /. With no production model in the\n"
      "registry it registers and promotes the bundled policy (policy.model_dir/\n"
      "mealsim-dqn-default.safetensors). SIGINT/SIGTERM stop it gracefully: no new connections,\n"
      "in-flight requests finish within server.shutdown_deadline_ms, decisions are flushed.");
  sub->callback([&global] { run_serve(global, cli); });
}

}  // namespace forkcast::apps
