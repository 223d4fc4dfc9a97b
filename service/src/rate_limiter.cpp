#include "rate_limiter.hpp"

#include <algorithm>
#include <cmath>

namespace forkcast::service {

int RateLimiter::acquire(std::string_view key, std::chrono::steady_clock::time_point now) {
  Shard& shard = shards_[std::hash<std::string_view>{}(key) % kShards];
  std::lock_guard lock(shard.mutex);
  auto it = shard.buckets.find(key);
  if (it == shard.buckets.end()) {
    if (shard.buckets.size() >= kMaxKeysPerShard) {
      // Bound the memory many distinct clients can take: forget the buckets that have
      // refilled completely (forgetting them changes nothing).
      std::erase_if(shard.buckets, [&](const auto& entry) {
        const double elapsed = std::chrono::duration<double>(now - entry.second.updated).count();
        return entry.second.tokens + elapsed * rate_ >= burst_;
      });
    }
    it = shard.buckets.emplace(std::string(key), Bucket{burst_, now}).first;
  }
  Bucket& b = it->second;
  const double elapsed = std::chrono::duration<double>(now - b.updated).count();
  b.tokens = std::min(burst_, b.tokens + std::max(0.0, elapsed) * rate_);
  b.updated = now;
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return 0;
  }
  return std::max(1, static_cast<int>(std::ceil((1.0 - b.tokens) / rate_)));
}

}  // namespace forkcast::service
