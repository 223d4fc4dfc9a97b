#include "forkcast/service/application.hpp"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <random>

#include "api.hpp"
#include "decision_journal.hpp"
#include "decision_log.hpp"
#include "forkcast/db/errors.hpp"
#include "forkcast/db/registry_watch.hpp"
#include "forkcast/policy/checkpoint.hpp"
#include "forkcast/service/router.hpp"
#include "metrics.hpp"
#include "rate_limiter.hpp"
#include "user_directory.hpp"

namespace forkcast::service {

namespace {

std::vector<std::string_view> route_names() {
  std::vector<std::string_view> names;
  for (const auto& r : routes()) names.push_back(r.name);
  names.emplace_back("unmatched");
  return names;
}

std::uint64_t splitmix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Opens the journal and stores what an earlier process left in it, before anything is
// served: feedback on a decision answered just before a crash then finds it.
std::unique_ptr<DecisionJournal> open_journal(const std::filesystem::path& dir, const env::Catalog& catalog,
                                              db::DecisionRepository& decisions, Metrics& metrics) {
  if (dir.empty()) return nullptr;
  std::unique_ptr<DecisionJournal> journal;
  try {
    journal = std::make_unique<DecisionJournal>(dir, meal_ids_of(catalog));
  } catch (const JournalError& e) {
    throw StartupError(e.what());
  }
  const JournalReplay replayed = journal->replay(decisions);
  if (replayed.segments > 0) {
    spdlog::info(
        "decision journal: {} decisions in {} segments left by an earlier process; {} stored now, {} were stored "
        "already, {} refused; {} torn bytes at the end",
        replayed.decisions, replayed.segments, replayed.stored, replayed.decisions - replayed.stored - replayed.dropped,
        replayed.dropped, replayed.torn_bytes);
  }
  if (replayed.undecodable > 0) spdlog::error("decision journal: {} frames could not be decoded", replayed.undecodable);
  metrics.decisions_replayed().Increment(static_cast<double>(replayed.stored));
  return journal;
}

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Application::Application(ApplicationOptions options, const env::Catalog& catalog, db::Database& database,
                         advice::AdviceEngine* advice)
    : options_(std::move(options)),
      catalog_(catalog),
      database_(database),
      advice_(advice),
      metrics_(std::make_unique<Metrics>(route_names())),
      users_(std::make_unique<UserDirectory>(catalog, options_.config.mealsim, database, *metrics_,
                                             static_cast<std::size_t>(options_.config.server.user_cache_size))),
      journal_(open_journal(options_.decision_journal_dir, catalog, database.decisions(), *metrics_)),
      decision_log_(std::make_unique<DecisionLog>(database.decisions(), catalog,
                                                  static_cast<std::size_t>(options_.config.server.decision_log_queue),
                                                  *metrics_, journal_.get())),
      rate_limiter_(std::make_unique<RateLimiter>(options_.config.server.rate_limit_per_second,
                                                  options_.config.server.rate_limit_burst)),
      rng_counter_(options_.config.server.seed != 0 ? static_cast<std::uint64_t>(options_.config.server.seed)
                                                    : (static_cast<std::uint64_t>(std::random_device{}()) << 32) ^
                                                          std::random_device{}()) {
  catalog_version_ = catalog_.content_hash().substr(0, 16);
  for (const env::Meal& meal : catalog_.meals()) {
    const nlohmann::json members = {{"meal_id", meal.id},
                                    {"name", meal.name},
                                    {"cuisine", meal.cuisine},
                                    {"prep_min", meal.prep_min},
                                    {"nutrition", nutrition_json(meal.per_serving)}};
    const std::string text = members.dump();
    meal_json_members_.push_back(text.substr(1, text.size() - 2));  // without the braces
  }
  auto production = database_.models().production();
  if (!production) {
    const auto& path = options_.default_model;
    if (path.empty() || !std::filesystem::exists(path)) {
      throw StartupError(
          "no production model in the registry and no default model at '" + path.string() +
          "'. Train one (forkcast train --agent dqn --env mealsim) and copy its model.safetensors there, "
          "or restore the file from the repository (models/policies/)");
    }
    db::NewModel model;
    model.version = options_.default_model_version;
    model.kind = "dqn";
    model.sha256 = policy::sha256_file_hex(path);
    model.path = path.string();
    model.metrics = {{"source", "bundled default policy"}};
    if (!database_.models().find(model.version)) database_.models().register_model(model);
    production = database_.models().promote(model.version);
    spdlog::info("registered and promoted the bundled policy {} ({})", model.version, path.string());
  }
  auto serving = load_model(*production);
  metrics_->set_model(serving->version);
  const std::string serving_version = serving->version;
  model_.store(std::move(serving));
  ready_.store(true);
  ready_checked_ms_.store(steady_ms());
  if (options_.config.server.follow_promotions) {
    db::RegistryWatchOptions watch;
    watch.url = database_.pool().options().url;
    watch.check_interval_ms = options_.config.server.model_check_interval_ms;
    registry_watch_ = std::make_unique<db::RegistryWatch>(
        std::move(watch), serving_version, [this](const std::string& version) { return follow_production(version); });
  }
}

Application::~Application() {
  registry_watch_.reset();  // before anything it could call into goes
  decision_log_->stop(std::chrono::steady_clock::now() + std::chrono::seconds(2));
}

std::shared_ptr<const ServingModel> Application::load_model(const db::Model& model) const {
  std::filesystem::path path = model.registered.path;
  if (path.is_relative()) path = options_.root / path;
  if (model.registered.kind != "dqn") {
    throw StartupError("model " + model.registered.version + " is a '" + model.registered.kind +
                       "' model; the service serves MealSim DQN candidate scorers (kind dqn)");
  }
  if (!std::filesystem::exists(path)) {
    throw StartupError("model " + model.registered.version + ": file '" + path.string() + "' does not exist");
  }
  const std::string sha = policy::sha256_file_hex(path);
  if (sha != model.registered.sha256) {
    throw StartupError("model " + model.registered.version + ": '" + path.string() + "' has sha256 " + sha +
                       " but the registry recorded " + model.registered.sha256 + " (the file changed)");
  }
  auto serving = std::make_shared<ServingModel>();
  try {
    serving->snapshot = policy::PolicySnapshot::load(path, catalog_, model.registered.version);
  } catch (const std::exception& e) {
    throw StartupError("model " + model.registered.version + ": " + e.what());
  }
  serving->version = model.registered.version;
  serving->kind = model.registered.kind;
  serving->sha256 = sha;
  return serving;
}

std::shared_ptr<const ServingModel> Application::promote(const std::string& version) {
  std::lock_guard lock(promote_mutex_);
  const auto model = database_.models().find(version);
  if (!model) throw db::NotFoundError("models.version", "no model version '" + version.substr(0, 128) + "'");
  // Load beside the serving model first: a bad file never replaces a good one.
  auto loaded = load_model(*model);
  database_.models().promote(version);
  std::shared_ptr<const ServingModel> serving = std::move(loaded);
  swap_model(serving, "admin");
  return serving;
}

bool Application::follow_production(const std::string& version) noexcept {
  try {
    std::lock_guard lock(promote_mutex_);
    if (model_.load()->version == version) return true;  // promoted here, or already followed
    try {
      const auto model = database_.models().find(version);
      if (!model) throw StartupError("model " + version + " is not in the registry");
      // Superseded since the watch read it: the watch offers the newer one next.
      if (model->status != db::ModelStatus::production) return false;
      swap_model(load_model(*model), "registry");
      refused_version_.clear();
      return true;
    } catch (const db::DatabaseUnavailable&) {
      return false;  // the watch checks again; nothing to report about the model
    } catch (const std::exception& e) {
      metrics_->model_swap_failures().Increment();
      if (refused_version_ != version) {
        spdlog::error("promotion: cannot serve {}, the registry's production model; {} keeps serving: {}", version,
                      model_.load()->version, e.what());
        refused_version_ = version;
      }
      return false;
    }
  } catch (...) {
    return false;  // the lock or the logger failed: the watch asks again
  }
}

void Application::swap_model(std::shared_ptr<const ServingModel> serving, const char* source) {
  const auto previous = model_.load();
  model_.store(serving);
  metrics_->set_model(serving->version);
  metrics_->model_swaps(source).Increment();
  spdlog::info("promotion: serving model {} (sha256 {}), was {}; promoted by {}", serving->version, serving->sha256,
               previous ? previous->version : "none",
               std::string_view(source) == "admin" ? "this process's admin route" : "another process (registry)");
}

std::uint64_t Application::random64() {
  return splitmix64(rng_counter_.fetch_add(0x9e3779b97f4a7c15ULL, std::memory_order_relaxed) + 0x9e3779b97f4a7c15ULL);
}

std::string Application::new_uuid() {
  // UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then 74 random bits. Ids made
  // later sort later, so the decisions table's primary key grows at its right edge instead
  // of touching a random index page per insert (each such page costs a full-page image in
  // the WAL after every checkpoint); 74 random bits keep ids unguessable.
  const auto unix_ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  const std::uint64_t hi = (unix_ms << 16) | 0x7000ULL | (random64() & 0x0fffULL);  // version 7
  const std::uint64_t lo = (random64() & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 10
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08llx-%04llx-%04llx-%04llx-%012llx", static_cast<unsigned long long>(hi >> 32),
                static_cast<unsigned long long>((hi >> 16) & 0xffff), static_cast<unsigned long long>(hi & 0xffff),
                static_cast<unsigned long long>(lo >> 48), static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return buf;
}

void Application::count_database_restart() { metrics_->database_restarts().Increment(); }
void Application::count_database_restart_failure() { metrics_->database_restart_failures().Increment(); }
void Application::release_database_connections() {
  if (registry_watch_) registry_watch_->release_connection();
  metrics_->database_releases().Increment();
}

bool Application::database_ready() {
  const std::int64_t now = steady_ms();
  if (now - ready_checked_ms_.load() < 500) return ready_.load();
  ready_checked_ms_.store(now);
  try {
    database_.ping();
    ready_.store(true);
  } catch (const std::exception& e) {
    if (ready_.exchange(false)) spdlog::warn("readiness: database unavailable: {}", e.what());
  }
  return ready_.load();
}

void Application::flush(std::chrono::steady_clock::time_point deadline) { decision_log_->stop(deadline); }

}  // namespace forkcast::service
