#include "forkcast/db/supervisor.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>

namespace forkcast::db {

InstanceSupervisor::InstanceSupervisor(LocalInstance& instance, ConnectionPool& pool, SupervisorOptions options)
    : instance_(instance), pool_(pool), options_(std::move(options)) {
  const auto positive = [](int value, const char* name) {
    if (value < 1) throw std::invalid_argument(std::string("supervisor ") + name + ": " + std::to_string(value) + " must be >= 1");
  };
  positive(options_.check_interval_ms, "check_interval_ms");
  positive(options_.backoff_initial_ms, "backoff_initial_ms");
  positive(options_.backoff_max_ms, "backoff_max_ms");
  positive(options_.max_attempts, "max_attempts");
  positive(options_.release_after_checks, "release_after_checks");
  thread_ = std::thread([this] { run(); });
}

InstanceSupervisor::~InstanceSupervisor() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

SupervisorStats InstanceSupervisor::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

bool InstanceSupervisor::wait_for(int ms) {
  std::unique_lock lock(mutex_);
  return !wake_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stopping_; });
}

void InstanceSupervisor::run() {
  int refusing = 0;
  while (wait_for(options_.check_interval_ms)) {
    const InstanceStatus status = instance_.status();
    if (!status.running) {
      refusing = 0;
      restart();
    } else if (!status.accepting) {
      // Starting, recovering, or a smart shutdown waiting for clients; only the last lasts.
      if (++refusing == options_.release_after_checks) {
        spdlog::warn("database: the local instance (pid {}) refuses connections; releasing the pool's so that a "
                     "shutdown in progress can complete",
                     status.pid);
        pool_.release_connections();
        {
          std::lock_guard lock(mutex_);
          ++stats_.releases;
        }
        if (options_.on_release) options_.on_release();
      }
    } else {
      refusing = 0;
    }
  }
}

void InstanceSupervisor::restart() {
  int backoff_ms = options_.backoff_initial_ms;
  for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    spdlog::warn("database: the local instance is not running; starting it (attempt {} of {})", attempt,
                 options_.max_attempts);
    try {
      const auto started = instance_.start();
      spdlog::info("database: local instance running again (pid {})", started.status.pid);
      {
        std::lock_guard lock(mutex_);
        ++stats_.restarts;
      }
      if (options_.on_restart) options_.on_restart();
      return;
    } catch (const std::exception& e) {
      spdlog::error("database: restarting the local instance failed: {}", e.what());
      {
        std::lock_guard lock(mutex_);
        ++stats_.restart_failures;
      }
      if (options_.on_restart_failure) options_.on_restart_failure(e.what());
    }
    if (!wait_for(backoff_ms)) return;
    backoff_ms = std::min(options_.backoff_max_ms, backoff_ms * 2);
  }
  spdlog::error("database: gave up restarting the local instance after {} attempts; `forkcast db start` brings it back",
                options_.max_attempts);
  std::lock_guard lock(mutex_);
  stats_.gave_up = true;
  stopping_ = true;  // nothing more to supervise
}

}  // namespace forkcast::db
