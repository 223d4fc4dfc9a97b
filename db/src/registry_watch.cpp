#include "forkcast/db/registry_watch.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <pqxx/pqxx>
#include <stdexcept>
#include <thread>
#include <utility>

#include "connection_pool.hpp"

namespace forkcast::db {

namespace {

constexpr const char* kChannel = "forkcast_model_promoted";  // migration 0003
constexpr const char* kProductionVersionSql = "SELECT version FROM models WHERE status = 'production'";
// The thread waits for notifications in slices this long, so that stopping takes no longer.
constexpr long kSliceUs = 100'000;

// Sets a flag: the thread reads the registry itself, whatever the payload said.
class PromotionReceiver final : public pqxx::notification_receiver {
 public:
  PromotionReceiver(pqxx::connection_base& c, bool& pending) : pqxx::notification_receiver(c, kChannel), pending_(pending) {}
  void operator()(const std::string& /*payload*/, int /*backend_pid*/) override { pending_ = true; }

 private:
  bool& pending_;
};

void require_range(int value, int low, int high, const char* field) {
  if (value < low || value > high) {
    throw std::invalid_argument(std::string("registry watch ") + field + ": " + std::to_string(value) +
                                " is out of range (allowed " + std::to_string(low) + ".." + std::to_string(high) + ")");
  }
}

}  // namespace

struct RegistryWatch::State {
  RegistryWatchOptions options;
  std::string conninfo;
  OnProduction on_production;
  std::string accepted;  // the version on_production last accepted (thread only)

  mutable std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  bool release = false;  // release_connection() asked to close the connection
  RegistryWatchStats stats;
  std::thread thread;

  bool stop_requested() {
    std::lock_guard lock(mutex);
    return stopping;
  }
  bool take_release() {
    std::lock_guard lock(mutex);
    return std::exchange(release, false);
  }
  // Sleeps up to `ms` or until stopped; false once stopping.
  bool sleep_for(int ms) {
    std::unique_lock lock(mutex);
    return !wake.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stopping; });
  }
  template <typename Fn>
  void update(Fn&& fn) {
    std::lock_guard lock(mutex);
    fn(stats);
  }

  // Reads the production version and reports it if it changed.
  void check(pqxx::connection& connection) {
    std::string version;
    {
      pqxx::nontransaction tx(connection);
      const pqxx::result rows = tx.exec(kProductionVersionSql);
      if (!rows.empty()) version = rows[0][0].as<std::string>();
    }
    update([](RegistryWatchStats& s) { ++s.checks; });
    if (version.empty() || version == accepted) return;  // no production model: keep serving what we have
    bool taken = false;
    try {
      taken = on_production(version);
    } catch (const std::exception& e) {
      spdlog::error("registry watch: following the promotion of {} failed: {}", version, e.what());
    }
    update([&](RegistryWatchStats& s) {
      ++s.reported;
      if (!taken) ++s.rejected;
    });
    if (taken) accepted = version;
  }

  // One connection's life: listen, check, wait for notifications and the timer. Returns
  // when stopping (false) or when asked to release the connection (true); throws when the
  // connection fails.
  bool listen(pqxx::connection& connection) {
    bool pending = false;
    PromotionReceiver receiver(connection, pending);  // LISTEN
    update([](RegistryWatchStats& s) {
      s.connected = true;
      ++s.connects;
    });
    check(connection);  // anything promoted while we were not listening
    auto next_check = std::chrono::steady_clock::now() + std::chrono::milliseconds(options.check_interval_ms);
    while (!stop_requested()) {
      if (take_release()) {
        update([](RegistryWatchStats& s) {
          s.connected = false;
          ++s.releases;
        });
        return true;
      }
      const auto now = std::chrono::steady_clock::now();
      const long until_check_us = static_cast<long>(
          std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::microseconds>(next_check - now).count()));
      const long wait_us = std::min(kSliceUs, until_check_us);
      const int received = connection.await_notification(wait_us / 1'000'000, wait_us % 1'000'000);
      if (received > 0) update([&](RegistryWatchStats& s) { s.notifications += static_cast<std::uint64_t>(received); });
      if (pending || std::chrono::steady_clock::now() >= next_check) {
        pending = false;
        check(connection);
        next_check = std::chrono::steady_clock::now() + std::chrono::milliseconds(options.check_interval_ms);
      }
    }
    return false;
  }

  void run() {
    int backoff_ms = options.reconnect_initial_ms;
    bool warned = false;  // one warning per outage, not one per attempt
    while (!stop_requested()) {
      bool was_connected = false;
      try {
        pqxx::connection connection(conninfo);
        was_connected = true;
        if (warned) spdlog::info("registry watch: listening for promotions again");
        warned = false;
        backoff_ms = options.reconnect_initial_ms;
        if (listen(connection)) {
          spdlog::info("registry watch: released its connection (a database shutdown waits for its clients)");
          warned = true;  // the next successful connect says so
          if (!sleep_for(backoff_ms)) break;
        }
      } catch (const std::exception& e) {
        update([&](RegistryWatchStats& s) {
          s.connected = false;
          if (!was_connected) ++s.connect_failures;
        });
        if (!warned) {
          spdlog::warn("registry watch: {} ({}); retrying with backoff up to {} ms, checking the registry once back",
                       was_connected ? "lost the connection" : "cannot connect", e.what(), options.reconnect_max_ms);
          warned = true;
        }
        if (!sleep_for(backoff_ms)) break;
        backoff_ms = std::min(options.reconnect_max_ms, backoff_ms * 2);
      }
    }
    update([](RegistryWatchStats& s) { s.connected = false; });
  }
};

RegistryWatch::RegistryWatch(RegistryWatchOptions options, std::string known_version, OnProduction on_production)
    : state_(std::make_unique<State>()) {
  if (options.url.empty()) throw std::invalid_argument("registry watch url: must not be empty");
  if (!on_production) throw std::invalid_argument("registry watch on_production: must be set");
  require_range(options.check_interval_ms, 10, 3'600'000, "check_interval_ms");
  require_range(options.reconnect_initial_ms, 1, 60'000, "reconnect_initial_ms");
  require_range(options.reconnect_max_ms, options.reconnect_initial_ms, 600'000, "reconnect_max_ms");
  state_->conninfo = detail::connection_string(options.url, 2'000, options.application_name);
  state_->options = std::move(options);
  state_->on_production = std::move(on_production);
  state_->accepted = std::move(known_version);
  state_->thread = std::thread([state = state_.get()] { state->run(); });
}

RegistryWatch::~RegistryWatch() {
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
  }
  state_->wake.notify_all();
  state_->thread.join();
}

void RegistryWatch::release_connection() {
  std::lock_guard lock(state_->mutex);
  state_->release = true;
}

RegistryWatchStats RegistryWatch::stats() const {
  std::lock_guard lock(state_->mutex);
  return state_->stats;
}

}  // namespace forkcast::db
