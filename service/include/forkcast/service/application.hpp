// The service's application context: everything a request handler may use — the catalog,
// the database, the production policy snapshot, the cache of users' live state, the
// asynchronous decision log, rate limits, metrics and the advice engine. Handlers never
// touch sockets: router.hpp turns (request, Application) into a response, so they are
// tested without a network (Beast's advanced server / llama.cpp's server-context split).
//
// Ownership: an Application borrows the Catalog, the Database and the AdviceEngine (all
// must outlive it) and owns the rest. Every member function is thread-safe.
//
// One service process per database: the in-memory user state is authoritative and
// written through to PostgreSQL on every change, so a restart loses nothing, but two
// processes serving the same users would overwrite each other's state. The serving model
// does follow the registry across processes: with server.follow_promotions a promotion made
// anywhere on the database (another process's admin route, the learner, SQL) is served here
// within about a second (db/registry_watch.hpp).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include "forkcast/config/config.hpp"
#include "forkcast/db/database.hpp"
#include "forkcast/env/catalog.hpp"
#include "forkcast/policy/snapshot.hpp"

namespace forkcast::advice {
class AdviceEngine;
}
namespace forkcast::db {
class RegistryWatch;
}

namespace forkcast::service {

class Metrics;
class UserDirectory;
class DecisionLog;
class DecisionJournal;
class RateLimiter;

// The serving model: a snapshot plus what the registry knows about it.
struct ServingModel {
  std::shared_ptr<const policy::PolicySnapshot> snapshot;
  std::string version;
  std::string kind;
  std::string sha256;
};

struct ApplicationOptions {
  config::Config config;
  // Base directory for relative model paths in the registry (the repository root).
  std::filesystem::path root = ".";
  // The checkpoint registered and promoted when the registry has no production model.
  std::filesystem::path default_model;  // empty: refuse to start without a production model
  std::string default_model_version = "mealsim-dqn-default";
  // The crash journal of the decision log (service/src/decision_journal.hpp): decisions an
  // earlier process left there are stored before the constructor returns. Empty: no journal
  // (decisions answered in the last milliseconds before a crash are lost).
  std::filesystem::path decision_journal_dir;
};

// Startup refused (no model, a model whose file is missing or altered, ...). what() says
// what to do.
class StartupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Application {
 public:
  // Loads the production model from the registry (registering and promoting
  // options.default_model first when there is none), replays the decision journal, and
  // starts the decision log.
  // `advice` may be null: the advice route then answers with template advice.
  // Throws StartupError (also when the journal directory is unusable or taken by another
  // process), db::DatabaseError.
  Application(ApplicationOptions options, const env::Catalog& catalog, db::Database& database,
              advice::AdviceEngine* advice = nullptr);
  ~Application();
  Application(const Application&) = delete;
  Application& operator=(const Application&) = delete;

  const config::Config& config() const noexcept { return options_.config; }
  const ApplicationOptions& options() const noexcept { return options_; }
  const env::Catalog& catalog() const noexcept { return catalog_; }
  // The first 16 hex digits of the catalog's content hash: what each logged decision names.
  const std::string& catalog_version() const noexcept { return catalog_version_; }
  db::Database& database() noexcept { return database_; }
  advice::AdviceEngine* advice() noexcept { return advice_; }
  Metrics& metrics() noexcept { return *metrics_; }
  UserDirectory& users() noexcept { return *users_; }
  DecisionLog& decision_log() noexcept { return *decision_log_; }
  RateLimiter& rate_limiter() noexcept { return *rate_limiter_; }

  // The model serving now. Requests keep the shared_ptr they started with.
  std::shared_ptr<const ServingModel> model() const { return model_.load(); }
  // Verifies the registered file's sha256, loads it beside the serving one and swaps
  // atomically, then records the promotion. On any failure the old model keeps serving.
  // Throws db::NotFoundError for an unknown version, StartupError for a bad file.
  std::shared_ptr<const ServingModel> promote(const std::string& version);
  // Serves `version` if it is not serving already: the registry's production model, which
  // another process promoted (the registry watch calls this). Loads and verifies the file
  // as promote() does but changes nothing in the registry. Returns false when the model
  // cannot be served (unknown version, bad file: logged once per version, counted in
  // /metrics); the old model keeps serving. Never throws.
  bool follow_production(const std::string& version) noexcept;

  // Each catalog meal's static fields as JSON members ("meal_id":...,"nutrition":{...}),
  // rendered once: the recommendation route pastes them instead of building JSON per request.
  const std::string& meal_json_members(std::size_t meal) const { return meal_json_members_[meal]; }

  // A fresh random 64-bit value from a seeded generator (event ids, exploration draws).
  std::uint64_t random64();
  // A canonical lowercase UUID v7 (time-ordered, 74 bits from random64()).
  std::string new_uuid();

  // True while the database answered recently (checked at most every 500 ms).
  bool database_ready();
  // Supervision of the self-managed database (db::InstanceSupervisor, wired by `serve`):
  // counted in /metrics.
  void count_database_restart();
  void count_database_restart_failure();
  // A smart shutdown of the database waits for every client: the supervisor released the
  // pool's connections; this releases the registry watch's (and counts it).
  void release_database_connections();
  // Drains the decision log (up to `deadline`); the service calls it on shutdown.
  void flush(std::chrono::steady_clock::time_point deadline);

 private:
  std::shared_ptr<const ServingModel> load_model(const db::Model& model) const;
  // Puts `serving` in place of the model serving now and records it (log, /metrics). With
  // promote_mutex_ held.
  void swap_model(std::shared_ptr<const ServingModel> serving, const char* source);

  ApplicationOptions options_;
  const env::Catalog& catalog_;
  db::Database& database_;
  advice::AdviceEngine* advice_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<UserDirectory> users_;
  std::unique_ptr<DecisionJournal> journal_;  // before decision_log_, which uses it
  std::unique_ptr<DecisionLog> decision_log_;
  std::unique_ptr<RateLimiter> rate_limiter_;
  std::atomic<std::shared_ptr<const ServingModel>> model_;
  std::mutex promote_mutex_;
  std::string refused_version_;  // the last version follow_production could not serve (promote_mutex_)
  std::vector<std::string> meal_json_members_;
  std::string catalog_version_;
  std::atomic<std::uint64_t> rng_counter_;  // SplitMix64: lock-free, seeded by server.seed
  std::atomic<std::int64_t> ready_checked_ms_{0};
  std::atomic<bool> ready_{false};
  std::unique_ptr<db::RegistryWatch> registry_watch_;  // last: stopped first, it calls follow_production
};

}  // namespace forkcast::service
