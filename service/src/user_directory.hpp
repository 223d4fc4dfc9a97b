// The users the service knows, each with its live state (env::UserTracker, the same code
// MealSim keeps its users with) in a write-through cache: reads come from memory, every
// change is written to PostgreSQL (user_state) before the request that made it is answered.
// A cache miss loads the user and their latest state from the database.
//
// Time: a user's tracker counts slots from the user's first day, in the user's own time zone
// (profile utc_offset_min). A request for a later slot first moves the tracker forward
// (hunger rises, a new day starts a new intake); a request for an earlier slot of the same
// state is served from the state as it is now (nothing is rewound).
#pragma once

#include <array>
#include <cstdint>
#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "api.hpp"
#include "forkcast/config/config.hpp"
#include "forkcast/db/database.hpp"
#include "forkcast/env/user_tracker.hpp"

namespace forkcast::service {

class Metrics;

struct RecentDecision {
  std::string event_id;
  std::uint64_t log_sequence = 0;  // DecisionLog sequence: feedback waits until it is stored
  env::Slot slot = env::Slot::breakfast;
  std::int64_t step = 0;
  std::vector<std::int32_t> ranked;  // meals returned, in rank order
  std::int32_t chosen = -1;
  // What the user's state already holds of this event: more feedback on it is recorded (it
  // is the client's to send) but counts the suggestion once and the meal once.
  bool offer_applied = false;  // acceptance statistics (record_offer)
  bool meal_applied = false;   // the meal in today's intake (record_eaten)
};

struct UserSession {
  UserSession(const env::Catalog& catalog, const config::MealSimConfig& config) : tracker(catalog, config) {}

  std::mutex mutex;  // guards everything below
  std::string id;
  std::string token_sha256;
  ProfileDocument profile;
  std::int64_t first_day = 0;  // local day number (days since 1970-01-01) of step 0
  env::UserTracker tracker;
  std::int64_t decisions = 0;  // recommendations served (the exploration schedule's clock)
  std::array<std::vector<std::int32_t>, env::kNumSlots> allowed;  // safe catalog meals per slot
  std::deque<RecentDecision> recent;  // the latest recommendations, newest last
  bool state_dirty = false;           // the last state write failed: retried with the next one
  // Steady-clock milliseconds of the last use: the directory evicts only sessions idle for a
  // while, so that feedback on a recommendation still finds it in memory.
  std::atomic<std::int64_t> last_used_ms{0};
};

// Days since 1970-01-01 and slot of `t` in the time zone `utc_offset_min`. Slots by local
// hour: breakfast before 11:00, lunch before 16:00, dinner before 21:00, then the evening
// snack (until 04:00, which still belongs to the previous day).
std::int64_t local_day(db::Timestamp t, int utc_offset_min);
env::Slot local_slot(db::Timestamp t, int utc_offset_min);

class UserDirectory {
 public:
  static constexpr std::size_t kRecentDecisions = 64;

  // At most `capacity` sessions are kept while idle ones can be evicted: a session is evicted
  // only when no request holds it, its state is stored and it was not used for `min_idle`
  // (its recent decisions have long been stored by then), so nothing is lost; its next use
  // reloads it from the database (feedback then finds its decisions there).
  UserDirectory(const env::Catalog& catalog, const config::MealSimConfig& mealsim, db::Database& database,
                Metrics& metrics, std::size_t capacity = 100'000,
                std::chrono::milliseconds min_idle = std::chrono::seconds(60));

  // Users in memory now.
  std::size_t cached() const;
  // find(id) from memory only: nullptr when the user is not cached (the database is not asked).
  std::shared_ptr<UserSession> find_cached(std::string_view id);
  // user_for_token(hash) from memory only: `known` is false when the cache cannot tell
  // (the database would have to be asked); else `user` is the answer.
  struct CachedToken {
    bool known = false;
    std::optional<std::string> user;
  };
  CachedToken user_for_token_cached(std::string_view token_sha256) const;

  // nullptr when there is no such user (a malformed id is no such user).
  std::shared_ptr<UserSession> find(std::string_view id);
  // The user id holding this token hash, if any.
  std::optional<std::string> user_for_token(std::string_view token_sha256);
  // Creates the user in the database and the cache. 400 when the profile allows no meal
  // in some slot (the field names the restriction).
  std::shared_ptr<UserSession> create(const ProfileDocument& profile, const std::string& token_sha256);
  // Replaces the profile (caller holds session.mutex).
  void update_profile(UserSession& session, const ProfileDocument& profile);

  // Moves the tracker to (day, slot) if that is later than now (caller holds the mutex).
  void advance_to(UserSession& session, std::int64_t day, env::Slot slot) const;
  // Writes the session's state through to the database (caller holds the mutex). Throws
  // db::DatabaseUnavailable; the session stays marked dirty so the next write retries.
  void persist(UserSession& session);

  // The state document stored in user_state (and its inverse).
  nlohmann::json state_document(const UserSession& session) const;
  void restore_state(UserSession& session, const nlohmann::json& document) const;

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::shared_ptr<UserSession> make_session(const db::User& user, const ProfileDocument& profile) const;
  // Inserts (or finds) `session` under mutex_ held exclusively, evicting idle sessions when
  // over capacity. Returns the session now cached for its id.
  std::shared_ptr<UserSession> insert_locked(std::shared_ptr<UserSession> session);
  void evict_locked();
  void compute_allowed(UserSession& session) const;

  const env::Catalog& catalog_;
  config::MealSimConfig mealsim_;
  db::Database& database_;
  Metrics& metrics_;
  const std::size_t capacity_;
  const std::chrono::milliseconds min_idle_;
  mutable std::shared_mutex mutex_;
  std::size_t clock_hand_ = 0;  // bucket where the eviction sweep resumes
  std::unordered_map<std::string, std::shared_ptr<UserSession>, Hash, std::equal_to<>> sessions_;
  std::unordered_map<std::string, std::string, Hash, std::equal_to<>> token_to_user_;
  // Token hashes that matched no user. Tokens are 128 random bits made here, so a miss
  // stays a miss: remembering it keeps guessed tokens from costing a database query each
  // (bounded: cleared when full).
  std::unordered_set<std::string, Hash, std::equal_to<>> unknown_tokens_;
  static constexpr std::size_t kMaxUnknownTokens = 65'536;
};

}  // namespace forkcast::service
