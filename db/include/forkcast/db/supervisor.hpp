// Keeps the self-managed PostgreSQL (instance.hpp) up while `forkcast serve`, which started
// it, runs. A thread of its own checks the instance every check_interval_ms:
//
//   - not running (the postmaster died, e.g. SIGKILL): start it again (LocalInstance::start,
//     which recovers from the crash), retrying with exponential backoff from
//     backoff_initial_ms up to backoff_max_ms, at most max_attempts times in a row; every
//     attempt is logged and reported (on_restart, on_restart_failure). The pool replaces its
//     broken connections by itself once the server is back.
//   - running but refusing connections for release_after_checks checks in a row (a smart
//     shutdown, SIGTERM to the postmaster: it waits for its clients to leave): the pool's
//     connections are released (on_release), so that the shutdown completes; the instance is
//     then found not running and started again.
//
// Ownership: points to the instance and the pool, which must outlive it; the destructor
// stops the thread (within one check interval). The callbacks run on the supervisor's thread.
// Errors: the constructor throws std::invalid_argument for options out of range; a failed
// restart is reported, never thrown.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "forkcast/db/instance.hpp"
#include "forkcast/db/pool.hpp"

namespace forkcast::db {

struct SupervisorOptions {
  int check_interval_ms = 1'000;
  int backoff_initial_ms = 500;
  int backoff_max_ms = 30'000;
  int max_attempts = 10;         // restarts in a row before the supervisor gives up (logged)
  int release_after_checks = 2;  // checks refusing connections before the pool lets go
  std::function<void()> on_restart;                                // the instance is up again
  std::function<void(const std::string& reason)> on_restart_failure;  // one attempt failed
  std::function<void()> on_release;                                // connections released
};

struct SupervisorStats {
  std::uint64_t restarts = 0;
  std::uint64_t restart_failures = 0;
  std::uint64_t releases = 0;
  bool gave_up = false;
};

class InstanceSupervisor {
 public:
  InstanceSupervisor(LocalInstance& instance, ConnectionPool& pool, SupervisorOptions options);
  ~InstanceSupervisor();
  InstanceSupervisor(const InstanceSupervisor&) = delete;
  InstanceSupervisor& operator=(const InstanceSupervisor&) = delete;

  SupervisorStats stats() const;

 private:
  void run();
  bool wait_for(int ms);  // false once stopping
  void restart();

  LocalInstance& instance_;
  ConnectionPool& pool_;
  SupervisorOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  SupervisorStats stats_;
  std::thread thread_;
};

}  // namespace forkcast::db
