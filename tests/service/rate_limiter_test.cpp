// Tests of service/src/rate_limiter.hpp: a new key's burst, refill at `rate` tokens per
// second up to `burst`, the seconds to wait it answers, keys kept apart, and many threads
// on one key taking exactly the tokens there are. Time is passed in, never slept.
#include "rate_limiter.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

using forkcast::service::RateLimiter;
using Clock = std::chrono::steady_clock;

namespace {

const Clock::time_point t0 = Clock::time_point{} + std::chrono::hours(1000);

Clock::time_point at(double seconds) {
  return t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

}  // namespace

TEST(RateLimiter, ANewKeyHasItsBurstThenWaits) {
  RateLimiter limiter(/*rate_per_second=*/2.0, /*burst=*/3.0);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limiter.acquire("user-a", t0), 0) << i;
  EXPECT_GE(limiter.acquire("user-a", t0), 1);
  EXPECT_GE(limiter.acquire("user-a", t0), 1);  // a refused request takes nothing, and gets nothing
}

TEST(RateLimiter, TokensRefillAtTheRateUpToTheBurst) {
  RateLimiter limiter(2.0, 3.0);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(limiter.acquire("k", t0), 0);
  ASSERT_GE(limiter.acquire("k", t0), 1);
  // Half a second at 2 per second: one token, one request.
  EXPECT_EQ(limiter.acquire("k", at(0.5)), 0);
  EXPECT_GE(limiter.acquire("k", at(0.5)), 1);
  // An hour idle fills the bucket to the burst, not beyond.
  int allowed = 0;
  for (int i = 0; i < 10; ++i) allowed += limiter.acquire("k", at(3600.0)) == 0 ? 1 : 0;
  EXPECT_EQ(allowed, 3);
}

TEST(RateLimiter, TheAnswerIsTheWholeSecondsUntilTheNextToken) {
  RateLimiter slow(/*rate_per_second=*/0.25, /*burst=*/1.0);  // one token every 4 s
  ASSERT_EQ(slow.acquire("k", t0), 0);
  EXPECT_EQ(slow.acquire("k", t0), 4);
  EXPECT_EQ(slow.acquire("k", at(2.0)), 2);  // half a token there: 2 s to go
  EXPECT_EQ(slow.acquire("k", at(3.5)), 1);  // 0.5 s to go still reads as 1: never 0 when refused
  EXPECT_EQ(slow.acquire("k", at(4.0)), 0);
  RateLimiter fast(100.0, 1.0);  // a token every 10 ms: the wait is still at least a second
  ASSERT_EQ(fast.acquire("k", t0), 0);
  EXPECT_EQ(fast.acquire("k", t0), 1);
}

TEST(RateLimiter, KeysHaveTheirOwnBuckets) {
  RateLimiter limiter(0.001, 2.0);
  ASSERT_EQ(limiter.acquire("a", t0), 0);
  ASSERT_EQ(limiter.acquire("a", t0), 0);
  ASSERT_GE(limiter.acquire("a", t0), 1);
  // Another key, however similar, starts with its own burst.
  for (const std::string key : {"b", "a ", "A", "10.0.0.1"}) {
    EXPECT_EQ(limiter.acquire(key, t0), 0) << key;
    EXPECT_EQ(limiter.acquire(key, t0), 0) << key;
    EXPECT_GE(limiter.acquire(key, t0), 1) << key;
  }
  EXPECT_GE(limiter.acquire("a", t0), 1);  // still exhausted
}

TEST(RateLimiter, ForgettingBucketsForManyClientsChangesNoAnswer) {
  // A flood of distinct clients makes the limiter forget buckets to bound its memory; an
  // exhausted key must not come back with a fresh burst. Rate 1/s, burst 1000: each client
  // (one request) is full again a second later; the victim needs 1000 s.
  RateLimiter limiter(1.0, 1000.0);
  int taken = 0;
  while (limiter.acquire("victim", t0) == 0) ++taken;
  ASSERT_EQ(taken, 1000);
  const int clients = 1'200'000;  // well over the limiter's memory bound
  for (int i = 0; i < clients; ++i) limiter.acquire("client-" + std::to_string(i), at(2.0 + 1e-5 * i));
  // 14 s after the victim emptied its bucket it has 14 tokens, not 1000.
  const double end = 2.0 + 1e-5 * clients;
  int allowed = 0;
  for (int i = 0; i < 1000; ++i) allowed += limiter.acquire("victim", at(end)) == 0 ? 1 : 0;
  EXPECT_NEAR(allowed, end, 1.0);
}

TEST(RateLimiter, ConcurrentRequestsOfOneKeyTakeExactlyTheBurst) {
  RateLimiter limiter(0.001, 100.0);
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        if (limiter.acquire("shared", t0) == 0) allowed.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(allowed.load(), 100);  // 400 requests, 100 tokens, no refill at a fixed time
}
