#include "user_directory.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "forkcast/env/user_tracker.hpp"
#include "metrics.hpp"

namespace forkcast::service {

using nlohmann::json;

namespace {

constexpr std::int64_t kUsPerMinute = 60'000'000;
constexpr std::int64_t kMinutesPerDay = 24 * 60;
// The local day starts at 04:00: a snack at 01:00 belongs to the evening before.
constexpr std::int64_t kDayStartMinute = 4 * 60;

std::int64_t local_minutes(db::Timestamp t, int utc_offset_min) {
  const std::int64_t us = t.time_since_epoch().count();
  const std::int64_t minutes = (us >= 0 ? us : us - kUsPerMinute + 1) / kUsPerMinute;
  return minutes + utc_offset_min - kDayStartMinute;
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

std::chrono::year_month_day calendar_day(std::int64_t day) {
  return std::chrono::year_month_day{std::chrono::sys_days{std::chrono::days{day}}};
}

template <std::size_t N>
json array_json(const std::array<double, N>& values) {
  return json(std::vector<double>(values.begin(), values.end()));
}

template <std::size_t N>
void read_array(const json& doc, const char* key, std::array<double, N>& out) {
  const auto& v = doc.at(key);
  if (!v.is_array() || v.size() != N) throw std::invalid_argument(std::string("state.") + key + ": wrong length");
  for (std::size_t i = 0; i < N; ++i) out[i] = v[i].get<double>();
}

}  // namespace

std::int64_t local_day(db::Timestamp t, int utc_offset_min) {
  return floor_div(local_minutes(t, utc_offset_min), kMinutesPerDay);
}

env::Slot local_slot(db::Timestamp t, int utc_offset_min) {
  // Minutes since 04:00 local time: breakfast until 11:00, lunch until 16:00, dinner until
  // 21:00, then the evening snack until 04:00.
  const std::int64_t minute = local_minutes(t, utc_offset_min) - floor_div(local_minutes(t, utc_offset_min), kMinutesPerDay) * kMinutesPerDay;
  if (minute < 7 * 60) return env::Slot::breakfast;
  if (minute < 12 * 60) return env::Slot::lunch;
  if (minute < 17 * 60) return env::Slot::dinner;
  return env::Slot::snack;
}

UserDirectory::UserDirectory(const env::Catalog& catalog, const config::MealSimConfig& mealsim, db::Database& database,
                             Metrics& metrics, std::size_t capacity, std::chrono::milliseconds min_idle)
    : catalog_(catalog),
      mealsim_(mealsim),
      database_(database),
      metrics_(metrics),
      capacity_(std::max<std::size_t>(1, capacity)),
      min_idle_(min_idle) {}

namespace {
std::int64_t steady_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

std::size_t UserDirectory::cached() const {
  std::shared_lock lock(mutex_);
  return sessions_.size();
}

std::shared_ptr<UserSession> UserDirectory::find_cached(std::string_view id) {
  std::shared_lock lock(mutex_);
  const auto it = sessions_.find(id);
  if (it == sessions_.end()) return nullptr;
  it->second->last_used_ms.store(steady_now_ms(), std::memory_order_relaxed);
  return it->second;
}

UserDirectory::CachedToken UserDirectory::user_for_token_cached(std::string_view token_sha256) const {
  std::shared_lock lock(mutex_);
  if (auto it = token_to_user_.find(token_sha256); it != token_to_user_.end()) return {true, it->second};
  return {unknown_tokens_.find(token_sha256) != unknown_tokens_.end(), std::nullopt};
}

std::shared_ptr<UserSession> UserDirectory::insert_locked(std::shared_ptr<UserSession> session) {
  session->last_used_ms.store(steady_now_ms(), std::memory_order_relaxed);
  if (sessions_.size() >= capacity_) evict_locked();
  auto [it, inserted] = sessions_.emplace(session->id, session);
  token_to_user_.emplace(it->second->token_sha256, it->second->id);
  return it->second;
}

// A sweep over the map's buckets, resuming where the last one stopped: a session that is
// idle (unused for min_idle_, no request holds it, its state is stored) is evicted. Stops
// once under capacity or after kEvictionSweepBuckets buckets: it runs under the exclusive
// lock that every request's cache lookup waits for, so one insert must not scan a whole
// cache of busy sessions (then the cache grows rather than drop one a request is working
// on, and later inserts continue the sweep).
void UserDirectory::evict_locked() {
  constexpr std::size_t kEvictionSweepBuckets = 64;
  const std::size_t buckets = sessions_.bucket_count();
  const std::size_t steps = std::min(buckets, kEvictionSweepBuckets);
  const std::int64_t idle_before = steady_now_ms() - min_idle_.count();
  for (std::size_t step = 0; step < steps && sessions_.size() >= capacity_; ++step) {
    const std::size_t b = clock_hand_++ % buckets;
    for (auto it = sessions_.begin(b); it != sessions_.end(b);) {
      const std::shared_ptr<UserSession>& s = it->second;
      if (s->last_used_ms.load(std::memory_order_relaxed) > idle_before || s.use_count() > 1) {
        ++it;
        continue;
      }
      std::unique_lock session_lock(s->mutex, std::try_to_lock);
      if (!session_lock.owns_lock() || s->state_dirty) {
        ++it;
        continue;
      }
      session_lock.unlock();
      const std::string id = it->first;
      token_to_user_.erase(s->token_sha256);
      ++it;  // local iterators stay valid across erase of other elements
      sessions_.erase(id);
      if (sessions_.size() < capacity_) return;
    }
  }
}

void UserDirectory::compute_allowed(UserSession& session) const {
  for (auto& slot : session.allowed) slot.clear();
  const auto& meals = catalog_.meals();
  for (std::size_t i = 0; i < meals.size(); ++i) {
    // The hard safety mask: diet and allergens. Fail closed: nothing else ever adds a meal.
    if (session.profile.profile.allows(meals[i])) {
      session.allowed[static_cast<std::size_t>(meals[i].slot)].push_back(static_cast<std::int32_t>(i));
    }
  }
}

std::shared_ptr<UserSession> UserDirectory::make_session(const db::User& user, const ProfileDocument& profile) const {
  auto session = std::make_shared<UserSession>(catalog_, mealsim_);
  session->id = user.id;
  session->token_sha256 = user.token_sha256;
  session->profile = profile;
  session->first_day = local_day(user.created_at, profile.utc_offset_min);
  session->tracker.start(profile.profile);
  compute_allowed(*session);
  return session;
}

std::shared_ptr<UserSession> UserDirectory::find(std::string_view id) {
  if (auto cached = find_cached(id)) return cached;
  if (!db::is_uuid(id)) return nullptr;
  const auto user = database_.users().find(id);
  if (!user) return nullptr;
  auto session = make_session(*user, profile_from_json(user->profile));
  if (const auto state = database_.user_state().latest(user->id)) {
    try {
      restore_state(*session, state->state);
    } catch (const std::exception& e) {
      // A state this binary cannot read (older layout, edited by hand): start the user's
      // history afresh rather than refuse to serve them.
      spdlog::warn("user {}: stored state unreadable ({}); starting from a fresh state", user->id, e.what());
    }
  }
  // Recommendations change no stored state (only feedback and meal logs write it), so the
  // exploration schedule's clock comes from the decision log, which has every one of them.
  session->decisions = std::max(session->decisions, database_.decisions().count_for_user(user->id));
  std::unique_lock lock(mutex_);
  return insert_locked(std::move(session));
}

std::optional<std::string> UserDirectory::user_for_token(std::string_view token_sha256) {
  if (auto cached = user_for_token_cached(token_sha256); cached.known) return std::move(cached.user);
  const auto user = database_.users().find_by_token_sha256(token_sha256);
  if (!user) {
    std::unique_lock lock(mutex_);
    if (unknown_tokens_.size() >= kMaxUnknownTokens) unknown_tokens_.clear();
    unknown_tokens_.emplace(token_sha256);
    return std::nullopt;
  }
  std::unique_lock lock(mutex_);
  token_to_user_.emplace(user->token_sha256, user->id);
  return user->id;
}

std::shared_ptr<UserSession> UserDirectory::create(const ProfileDocument& profile, const std::string& token_sha256) {
  for (int s = 0; s < env::kNumSlots; ++s) {
    const bool any = std::any_of(catalog_.meals().begin(), catalog_.meals().end(), [&](const env::Meal& m) {
      return static_cast<int>(m.slot) == s && profile.profile.allows(m);
    });
    if (!any) {
      throw bad_request("unsatisfiable_profile",
                        "diet and allergens leave no " + std::string(env::slot_name(static_cast<env::Slot>(s))) +
                            " in the catalog; relax a restriction",
                        "allergens");
    }
  }
  db::NewUser row;
  row.profile = profile_json(profile);
  row.token_sha256 = token_sha256;
  const db::User user = database_.users().create(row);
  auto session = make_session(user, profile);
  {
    std::lock_guard session_lock(session->mutex);
    persist(*session);
  }
  std::unique_lock lock(mutex_);
  return insert_locked(std::move(session));
}

void UserDirectory::update_profile(UserSession& session, const ProfileDocument& profile) {
  UserSession probe(catalog_, mealsim_);
  probe.profile = profile;
  compute_allowed(probe);
  for (int s = 0; s < env::kNumSlots; ++s) {
    if (probe.allowed[static_cast<std::size_t>(s)].empty()) {
      throw bad_request("unsatisfiable_profile",
                        "diet and allergens leave no " + std::string(env::slot_name(static_cast<env::Slot>(s))) +
                            " in the catalog; relax a restriction",
                        "allergens");
    }
  }
  database_.users().update_profile(session.id, profile_json(profile));
  session.profile = profile;
  session.allowed = std::move(probe.allowed);
  session.tracker.set_profile(profile.profile);
}

void UserDirectory::advance_to(UserSession& session, std::int64_t day, env::Slot slot) const {
  const std::int64_t target = (day - session.first_day) * env::kNumSlots + static_cast<std::int64_t>(slot);
  std::int64_t gap = target - session.tracker.state().step;
  if (gap <= 0) return;
  if (gap > env::kStepsPerWeek) {
    // Away for more than a week: the memory of individual slots has decayed to nothing
    // worth replaying one by one; jump to a week before and replay from there.
    env::TrackerState state = session.tracker.state();
    state.step = target - env::kStepsPerWeek;
    state.step -= state.step % env::kNumSlots;  // a day boundary: intake restarts
    state.intake_today = env::Nutrients{};
    session.tracker.restore(session.profile.profile, std::move(state));
    gap = target - session.tracker.state().step;
  }
  for (std::int64_t i = 0; i < gap; ++i) session.tracker.advance_slot();
}

json UserDirectory::state_document(const UserSession& session) const {
  const env::TrackerState& s = session.tracker.state();
  json recent = json::object();
  for (std::size_t m = 0; m < s.last_eaten.size(); ++m) {
    // Meals eaten more than four weeks ago carry no boredom worth storing.
    if (s.last_eaten[m] != env::kNeverEaten && s.step - s.last_eaten[m] <= 4 * env::kStepsPerWeek) {
      recent[catalog_.meals()[m].id] = s.last_eaten[m];
    }
  }
  const env::Nutrients& n = s.intake_today;
  return {{"layout", 1},
          {"first_day", session.first_day},
          {"decisions", session.decisions},
          {"step", s.step},
          {"hunger", s.hunger},
          {"intake_today",
           {n.kcal, n.protein_g, n.fat_g, n.carbs_g, n.fiber_g, n.sugar_g, n.sodium_mg, n.sat_fat_g, n.calcium_mg,
            n.iron_mg, n.potassium_mg, n.vit_c_mg}},
          {"offered_decayed", s.offered_decayed},
          {"accepted_decayed", s.accepted_decayed},
          {"decline_streak", s.decline_streak},
          {"cuisine_memory", array_json(s.cuisine_memory)},
          {"cuisine_offered", array_json(s.cuisine_offered)},
          {"cuisine_accepted", array_json(s.cuisine_accepted)},
          {"tag_offered", array_json(s.tag_offered)},
          {"tag_accepted", array_json(s.tag_accepted)},
          {"last_eaten", recent}};
}

void UserDirectory::restore_state(UserSession& session, const json& doc) const {
  if (doc.value("layout", 0) != 1) throw std::invalid_argument("state.layout: not 1");
  env::TrackerState s;
  s.step = doc.at("step").get<std::int64_t>();
  s.hunger = doc.at("hunger").get<double>();
  const auto& in = doc.at("intake_today");
  if (!in.is_array() || in.size() != 12) throw std::invalid_argument("state.intake_today: wrong length");
  env::Nutrients& n = s.intake_today;
  double* fields[] = {&n.kcal,      &n.protein_g,  &n.fat_g,   &n.carbs_g,        &n.fiber_g,   &n.sugar_g,
                      &n.sodium_mg, &n.sat_fat_g,  &n.calcium_mg, &n.iron_mg, &n.potassium_mg, &n.vit_c_mg};
  for (std::size_t i = 0; i < 12; ++i) *fields[i] = in[i].get<double>();
  s.offered_decayed = doc.at("offered_decayed").get<double>();
  s.accepted_decayed = doc.at("accepted_decayed").get<double>();
  s.decline_streak = doc.at("decline_streak").get<int>();
  read_array(doc, "cuisine_memory", s.cuisine_memory);
  read_array(doc, "cuisine_offered", s.cuisine_offered);
  read_array(doc, "cuisine_accepted", s.cuisine_accepted);
  read_array(doc, "tag_offered", s.tag_offered);
  read_array(doc, "tag_accepted", s.tag_accepted);
  s.last_eaten.assign(catalog_.size(), env::kNeverEaten);
  for (const auto& [meal_id, step] : doc.at("last_eaten").items()) {
    if (const auto m = catalog_.find_meal(meal_id)) s.last_eaten[*m] = step.get<std::int64_t>();
  }
  session.tracker.restore(session.profile.profile, std::move(s));
  session.first_day = doc.at("first_day").get<std::int64_t>();
  session.decisions = doc.at("decisions").get<std::int64_t>();
}

void UserDirectory::persist(UserSession& session) {
  const std::int64_t day = session.first_day + session.tracker.state().step / env::kNumSlots;
  try {
    database_.user_state().put(session.id, calendar_day(day), state_document(session));
    session.state_dirty = false;
  } catch (...) {
    session.state_dirty = true;
    metrics_.state_write_failures().Increment();
    throw;
  }
}

}  // namespace forkcast::service
