// `forkcast db start|stop|status|migrate|psql-url`: the local PostgreSQL instance
// (database.data_dir, database.port) or, when database.url / --database-url is set, that
// server instead. docs/database.md is the walk-through.
#include <spdlog/spdlog.h>

#include <iostream>

#include "commands.hpp"
#include "forkcast/db/database.hpp"
#include "forkcast/db/instance.hpp"

namespace forkcast::apps {
namespace {

struct DbCli {
  std::string database_url;  // --database-url, overrides database.url
  bool no_migrate = false;
  bool immediate = false;
  bool tcp = false;
};

struct Target {
  config::Config config;
  std::optional<db::LocalInstance> local;  // empty when an external server is configured
  std::string url;                         // external url, or the local socket url
};

Target resolve(const GlobalOptions& global, const DbCli& cli) {
  Target t{load_config_and_logging(global), std::nullopt, ""};
  if (!cli.database_url.empty()) t.config.database.url = cli.database_url;
  if (t.config.database.url.empty()) {
    t.local.emplace(db::instance_options(t.config.database));
    t.url = t.local->url();
  } else {
    t.url = t.config.database.url;
  }
  return t;
}

// The same path for the local instance and any other server: connect, then migrate.
void migrate_and_report(const Target& t) {
  db::ConnectionPool pool({t.url, 1, t.config.database.checkout_timeout_ms, {}, "forkcast-cli"});
  const auto applied = db::migrate(pool);
  const auto schema = db::schema_status(pool);
  std::cout << "schema: version " << schema.database_version;
  if (applied.empty()) {
    std::cout << ", up to date\n";
  } else {
    std::cout << " (applied";
    for (int v : applied) std::cout << " " << v;
    std::cout << ")\n";
  }
}

void print_status(const db::InstanceStatus& s) {
  std::cout << "data dir: " << s.data_dir.string() << "\n"
            << "port:     " << s.port << " on 127.0.0.1; socket "
            << (s.data_dir / ".s.PGSQL.").string() << s.port << "\n"
            << "url:      " << s.url << "\n"
            << "log:      " << s.log_file.string() << "\n";
}

void run_start(const GlobalOptions& global, const DbCli& cli) {
  Target t = resolve(global, cli);
  if (!t.local) {
    std::cout << "database.url is set: forkcast uses the server at " << db::redact_url(t.url)
              << " and starts nothing\n";
  } else {
    const auto r = t.local->start();
    if (r.already_running) {
      std::cout << "database already running (pid " << r.status.pid << "): nothing to do\n";
    } else {
      std::cout << "database started (pid " << r.status.pid << ")"
                << (r.initialized_now ? ", new data directory" : "") << "\n";
    }
    print_status(r.status);
    t.url = r.status.url;
  }
  if (!cli.no_migrate) migrate_and_report(t);
}

void run_stop(const GlobalOptions& global, const DbCli& cli) {
  Target t = resolve(global, cli);
  if (!t.local) {
    std::cout << "database.url is set: forkcast does not manage that server, nothing to stop\n";
    return;
  }
  const bool stopped = t.local->stop(cli.immediate ? db::StopMode::immediate : db::StopMode::fast);
  std::cout << (stopped ? "database stopped" : "database was not running") << " ("
            << t.local->options().data_dir.string() << ")\n";
}

void run_status(const GlobalOptions& global, const DbCli& cli) {
  Target t = resolve(global, cli);
  if (t.local) {
    const auto s = t.local->status();
    if (!s.running) {
      std::cout << "database: stopped"
                << (s.stale_pid_file ? " (it crashed: `forkcast db start` recovers it)"
                    : s.initialized  ? ""
                                     : " (not initialised yet: `forkcast db start` creates it)")
                << "\n";
      print_status(s);
      throw CLI::RuntimeError(kExitFailure);
    }
    std::cout << "database: running (pid " << s.pid << ")"
              << (s.accepting ? ", accepting connections" : ", not accepting connections yet")
              << "\n";
    print_status(s);
  } else {
    std::cout << "database: " << db::redact_url(t.url) << " (database.url)\n";
  }
  try {
    db::ConnectionPool pool({t.url, 1, t.config.database.checkout_timeout_ms, {}, "forkcast-cli"});
    const auto info = db::server_info(pool);
    std::cout << "server:   PostgreSQL " << info.server_version << "; fsync=" << info.fsync
              << " full_page_writes=" << info.full_page_writes
              << " synchronous_commit=" << info.synchronous_commit << "\n";
    const auto schema = db::schema_status(pool);
    std::cout << "schema:   version " << schema.database_version << " of " << schema.binary_version
              << (schema.pending.empty() ? "" : " (run `forkcast db migrate`)") << "\n";
  } catch (const db::DatabaseUnavailable& e) {
    std::cout << "server:   unreachable: " << e.what() << "\n";
    throw CLI::RuntimeError(kExitFailure);
  }
}

void run_migrate(const GlobalOptions& global, const DbCli& cli) {
  Target t = resolve(global, cli);
  if (t.local && !t.local->status().running) {
    throw db::InstanceError(
        "the local database is not running: start it with `forkcast db start` (which also "
        "migrates)");
  }
  migrate_and_report(t);
}

void run_psql_url(const GlobalOptions& global, const DbCli& cli) {
  Target t = resolve(global, cli);
  if (t.local && cli.tcp) {
    std::cout << t.local->tcp_url() << "\n";
  } else {
    std::cout << t.url << "\n";
  }
}

}  // namespace

void add_db_command(CLI::App& app, const GlobalOptions& global) {
  static DbCli cli;  // lives as long as the parsed command line
  auto* sub = app.add_subcommand(
      "db", "Manage the local PostgreSQL instance (or check the one in database.url)");
  sub->require_subcommand(1);
  sub->add_option("--database-url", cli.database_url,
                  "Use this PostgreSQL server (postgresql://...) instead of the local instance "
                  "(overrides database.url)");
  sub->footer(
      "The local instance lives in database.data_dir (default var/pgdata), listens on its Unix "
      "socket and\n"
      "on 127.0.0.1:database.port (default 55432), and runs as the system user 'forkcast' when\n"
      "forkcast runs as root. docs/database.md has the details.");

  auto* start =
      sub->add_subcommand("start", "initdb if needed, start PostgreSQL, apply migrations");
  start->add_flag("--no-migrate", cli.no_migrate, "Start without applying pending migrations");
  start->callback([&global] { run_start(global, cli); });
  start->fallthrough();  // so `db start --database-url ...` reaches the option above

  auto* stop = sub->add_subcommand("stop", "Stop the local PostgreSQL (fast shutdown)");
  stop->add_flag("--immediate", cli.immediate,
                 "Exit without a checkpoint (the next start replays the WAL)");
  stop->callback([&global] { run_stop(global, cli); });
  stop->fallthrough();

  sub->add_subcommand(
         "status",
         "Show whether the database runs, its URL, settings and schema version (exit 1 if down)")
      ->fallthrough()
      ->callback([&global] { run_status(global, cli); });

  sub->add_subcommand("migrate", "Apply pending schema migrations")
      ->fallthrough()
      ->callback([&global] { run_migrate(global, cli); });

  auto* url = sub->add_subcommand(
      "psql-url", "Print the connection URL (e.g. psql \"$(forkcast db psql-url)\")");
  url->add_flag("--tcp", cli.tcp,
                "The 127.0.0.1 TCP URL with its password instead of the Unix socket URL");
  url->callback([&global] { run_psql_url(global, cli); });
  url->fallthrough();
}

}  // namespace forkcast::apps
