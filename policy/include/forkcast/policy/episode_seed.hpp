// One seed per episode (or per user, per bootstrap resample, ...) from one run seed, so that
// training, evaluation and off-policy evaluation derive their streams the same way and a
// stream never depends on how many draws another one made.
#pragma once

#include <cstdint>

namespace forkcast::policy {

// splitmix64 of (seed, index): seed + 0x9e3779b97f4a7c15 * (index + 1), then Vigna's
// SplitMix64 output function. Independent-looking, reproducible on every platform.
constexpr std::uint64_t episode_seed(std::uint64_t seed, std::uint64_t index) noexcept {
  std::uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (index + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace forkcast::policy
