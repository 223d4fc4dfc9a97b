// Follows the model registry's production model from inside one process, so that every
// `forkcast serve` on a database swaps to a model that any other process promoted (the
// admin route of another replica, `forkcast models promote`, the learner) within about a
// second, without a restart (docs/database.md "Promotion broadcast").
//
// How: a thread of its own holds one dedicated connection (outside the pool: LISTEN belongs
// to a session) that LISTENs on forkcast_model_promoted, which migration 0003's trigger
// notifies on every promotion's COMMIT. A notification only says "look": the thread then
// reads the production model's version itself, so notifications that arrive out of order,
// twice, or for a promotion already superseded change nothing. Because a notification sent
// while the connection is down is lost, the thread also reads the registry every
// check_interval_ms (the safety net) and at once after every reconnect. A broken connection
// (database restart, terminated backend, network) is reopened with exponential backoff from
// reconnect_initial_ms to reconnect_max_ms, forever, each attempt logged at most once per
// backoff step.
//
// What the owner sees: on_production(version) runs on the watch's thread whenever the
// production version read differs from the last one that on_production accepted (returned
// true). A callback that returns false (it could not load the model, say) is called again
// for the same version on the next check, so a file restored later is picked up; exceptions
// from it are caught, logged and count as false. The first report compares with
// `known_version` (what the owner already serves), so an owner that loaded the production
// model at startup is not called for it again.
//
// Ownership: the watch owns its thread and its connection; the destructor stops both
// (within ~100 ms: the thread waits in slices that short). Thread-safe: stats() may be
// called from any thread. Errors: the constructor throws std::invalid_argument for options
// out of range (the field and the value); connection failures are retried, never thrown.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace forkcast::db {

struct RegistryWatchOptions {
  std::string url;                 // libpq URL or key=value string; required
  int check_interval_ms = 1'000;   // the periodic read of the registry; 10..3'600'000
  int reconnect_initial_ms = 100;  // first wait after a failed connection; 1..60'000
  int reconnect_max_ms = 5'000;    // the backoff's ceiling; >= reconnect_initial_ms, <= 600'000
  std::string application_name = "forkcast-registry-watch";  // shown in pg_stat_activity
};

struct RegistryWatchStats {
  bool connected = false;             // listening now
  std::uint64_t notifications = 0;    // promotion notifications received
  std::uint64_t checks = 0;           // registry reads (after a notification, a timer or a reconnect)
  std::uint64_t connects = 0;         // connections opened (the first one included)
  std::uint64_t connect_failures = 0;
  std::uint64_t releases = 0;         // connections closed by release_connection()
  std::uint64_t reported = 0;         // on_production calls
  std::uint64_t rejected = 0;         // of those, returned false or threw
};

class RegistryWatch {
 public:
  using OnProduction = std::function<bool(const std::string& version)>;

  RegistryWatch(RegistryWatchOptions options, std::string known_version, OnProduction on_production);
  ~RegistryWatch();
  RegistryWatch(const RegistryWatch&) = delete;
  RegistryWatch& operator=(const RegistryWatch&) = delete;

  RegistryWatchStats stats() const;
  // Closes the watch's connection now (within ~100 ms) and opens a new one after the
  // backoff: for a smart shutdown of the server, which waits for every client to leave
  // (db::InstanceSupervisor's on_release). Promotions meanwhile are found on reconnect.
  void release_connection();

 private:
  struct State;  // db/src/registry_watch.cpp
  std::unique_ptr<State> state_;
};

}  // namespace forkcast::db
