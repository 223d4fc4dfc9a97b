// Per-key token buckets (a user's token hash, the admin key, or the client address for
// requests without credentials): `rate` tokens per second up to `burst`. Sharded so that
// concurrent requests of different keys rarely share a lock.
#pragma once

#include <array>
#include <chrono>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace forkcast::service {

class RateLimiter {
 public:
  RateLimiter(double rate_per_second, double burst) : rate_(rate_per_second), burst_(burst) {}

  // 0 when the request may proceed (one token taken), else the seconds to wait (>= 1).
  int acquire(std::string_view key, std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());

 private:
  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point updated;
  };
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, Bucket, Hash, std::equal_to<>> buckets;
  };
  static constexpr std::size_t kShards = 64;
  static constexpr std::size_t kMaxKeysPerShard = 16'384;  // then full buckets are forgotten

  double rate_, burst_;
  std::array<Shard, kShards> shards_;
};

}  // namespace forkcast::service
