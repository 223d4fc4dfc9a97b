// The learning loop's routes: recommendations (score, explore, log), feedback (durable,
// then the user's state moves) and meals eaten outside recommendations.
#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "advice_request.hpp"
#include "clock.hpp"
#include "decision_log.hpp"
#include "forkcast/policy/decide.hpp"
#include "handlers.hpp"
#include "metrics.hpp"
#include "user_directory.hpp"

namespace forkcast::service {

using nlohmann::json;

namespace {

const std::vector<std::string_view> kSlotChoices(env::kSlotNames.begin(), env::kSlotNames.end());

// Waits, up to the database checkout timeout, until the decision log has stored every
// decision through `sequence` (0: nothing to wait for); DatabaseUnavailable (503, retry)
// if it has not by then.
void await_stored_decisions(Application& app, std::uint64_t sequence, const char* not_stored) {
  if (sequence == 0) return;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(app.config().database.checkout_timeout_ms);
  if (!app.decision_log().wait_stored(sequence, deadline)) throw db::DatabaseUnavailable(not_stored);
}

// Short, factual reasons for a suggestion, from the user's day so far, appended to `out`
// as a JSON array (the texts are ours: digits and words, nothing to escape).
void append_reasons(fmt::memory_buffer& out, const env::Meal& meal, const UserSession& session, double recency) {
  const env::UserTracker& t = session.tracker;
  const double left_kcal = t.kcal_target() - t.state().intake_today.kcal;
  const long kcal = std::lround(meal.per_serving.kcal);
  auto it = std::back_inserter(out);
  if (left_kcal > 0 && meal.per_serving.kcal <= left_kcal) {
    fmt::format_to(it, "[\"fits the {} kcal left today ({} kcal)\"", std::lround(left_kcal), kcal);
  } else {
    fmt::format_to(it, "[\"{} kcal, more than the {} kcal left today\"", kcal, std::lround(std::max(0.0, left_kcal)));
  }
  const double protein_left = t.protein_target_g() - t.state().intake_today.protein_g;
  if (meal.per_serving.protein_g >= 20 && protein_left > 0) {
    fmt::format_to(it, ",\"{} g protein toward the {} g still to go\"", std::lround(meal.per_serving.protein_g),
                   std::lround(protein_left));
  }
  if (recency == 0.0) fmt::format_to(it, ",\"not eaten recently\"");
  const env::UserProfile& p = session.profile.profile;
  if (meal.prep_min <= std::min(20.0, p.cook_time_min)) fmt::format_to(it, ",\"ready in {} min\"", std::lround(meal.prep_min));
  if (meal.cost_usd <= p.budget_usd) fmt::format_to(it, ",\"within your budget (${:.2f})\"", meal.cost_usd);
  out.push_back(']');
}

const RecentDecision* find_recent(const UserSession& session, std::string_view event_id) {
  for (auto it = session.recent.rbegin(); it != session.recent.rend(); ++it) {
    if (it->event_id == event_id) return &*it;
  }
  return nullptr;
}

std::int32_t meal_index(const env::Catalog& catalog, const std::string& id, const char* field) {
  const auto m = catalog.find_meal(id);
  if (!m) throw ApiError(http::status::not_found, "not_found", std::string(field) + ": no meal \"" + id.substr(0, 64) + "\"", field);
  return static_cast<std::int32_t>(*m);
}

}  // namespace

namespace {

// A recommendation request as its body said it: what the rest of the request needs, owned,
// so that a continuation on the worker pool carries it instead of parsing again.
struct RecommendationAsked {
  std::string user_id;
  std::optional<env::Slot> slot;  // none: the user's local slot at `at`
  db::Timestamp at;
  int n = 1;
  bool with_advice = false;
};

Response recommend(Application& app, const Request& request, Call& call, const RecommendationAsked& asked);

// An I/O thread never waits (for advice, for loading a user the cache lacks, for a user's
// lock held across a database call): the rest of the request continues on the worker pool.
ContinueOnWorker continue_on_worker(const RecommendationAsked& asked) {
  return {[asked](Application& app, const Request& request, Call& call) { return recommend(app, request, call, asked); }};
}

}  // namespace

Response handle_recommend(Application& app, const Request& request, Call& call) {
  JsonBody body = JsonBody::parse(request.body());
  RecommendationAsked asked;
  asked.user_id = body.string("user_id", 64);
  const auto slot_name = body.optional_choice("slot", kSlotChoices);
  const auto time = body.optional_string("time", 64);
  const auto& policy_config = app.config().policy;
  asked.n = static_cast<int>(body.optional_int("n", 1, policy_config.max_n).value_or(policy_config.default_n));
  asked.with_advice = body.optional_bool("advice").value_or(false);
  body.finish();
  require_user(call, asked.user_id);
  if (slot_name) asked.slot = env::parse_slot(*slot_name);
  asked.at = time ? parse_request_time(*time, "time", app.config().server.simulation_clock) : db::now_timestamp();
  return recommend(app, request, call, asked);
}

namespace {

Response recommend(Application& app, const Request& request, Call& call, const RecommendationAsked& asked) {
  const std::string& user_id = asked.user_id;
  const db::Timestamp at = asked.at;
  const int n = asked.n;
  const bool with_advice = asked.with_advice;
  if (with_advice && !call.on_worker) throw continue_on_worker(asked);
  auto session = call.on_worker ? app.users().find(user_id) : app.users().find_cached(user_id);
  if (!session && !call.on_worker) throw continue_on_worker(asked);
  if (!session) throw ApiError(http::status::not_found, "not_found", "no user " + user_id, "user_id");
  const auto model = app.model();
  const env::Catalog& catalog = app.catalog();

  // The decision's scratch is per thread and sized once: deciding allocates nothing.
  thread_local policy::DecisionWorkspace workspace;
  // The response is written as text into a per-thread buffer: the catalog's part of each
  // meal is rendered once (Application::meal_json_members), numbers and reasons here.
  thread_local fmt::memory_buffer meals;
  meals.clear();
  PendingDecision decision = app.decision_log().acquire();  // recycled: assign every field
  double epsilon = 0;
  std::int64_t step = 0;
  Enqueued logged;
  std::string event_id;
  env::Slot served_slot = env::Slot::breakfast;
  std::optional<AdviceRequest> advice_request;
  {
    // Feedback, meal logs and profile edits hold the user's lock across database calls: an
    // I/O thread never waits for one of them, the worker pool does.
    std::unique_lock lock(session->mutex, std::try_to_lock);
    if (!lock.owns_lock()) {
      if (!call.on_worker) throw continue_on_worker(asked);
      lock.lock();
    }
    const int offset = session->profile.utc_offset_min;
    const env::Slot slot = asked.slot ? *asked.slot : local_slot(at, offset);
    app.users().advance_to(*session, local_day(at, offset), slot);
    const env::UserTracker& tracker = session->tracker;
    step = tracker.state().step;
    // The hard mask: only the slot's meals that respect diet and allergens are candidates.
    const std::vector<std::int32_t>& candidates = session->allowed[static_cast<std::size_t>(slot)];
    if (candidates.empty()) {
      throw ApiError(http::status::conflict, "no_candidates", "no safe meal for this slot and profile", "slot");
    }
    epsilon = policy::serving_epsilon(app.config().exploration, session->decisions);
    policy::DecisionRequest asked;
    asked.slot = slot;  // a slot earlier than the state's (a late request) does not rewind it
    asked.candidates = candidates;
    asked.epsilon = epsilon;
    asked.temperature = app.config().exploration.serving_temperature;
    asked.draw_seed = app.random64();
    asked.n = n;
    const policy::Decision decided = policy::decide(model->snapshot, tracker, asked, workspace);
    const std::size_t chosen = decided.chosen;
    const std::span<const float> scores = decided.scores;
    const std::span<const double> pmf = decided.probabilities;

    decision.event_id = app.new_uuid();
    decision.user_id = session->id;
    // The service's own clock, unless it runs on simulated time (the request's, or now).
    decision.decided_at = app.config().server.simulation_clock ? at : db::now_timestamp();
    decision.slot = slot;
    decision.model_version = model->version;
    decision.epsilon = epsilon;
    decision.temperature = asked.temperature;
    decision.candidates.assign(candidates.begin(), candidates.end());
    decision.scores.assign(scores.begin(), scores.end());
    decision.probabilities.assign(pmf.begin(), pmf.end());
    decision.recency.assign(decided.recency.begin(), decided.recency.end());
    decision.catalog_version = app.catalog_version();  // a recycled row keeps its capacity
    decision.chosen = chosen;
    decision.greedy = decided.greedy;
    std::copy(decided.observation.begin(), decided.observation.end(), decision.observation.begin());
    decision.draw_seed = asked.draw_seed;
    decision.step = step;
    decision.n = n;
    decision.ranked.clear();

    RecentDecision recent;
    recent.event_id = decision.event_id;
    event_id = decision.event_id;
    served_slot = slot;
    recent.slot = slot;
    recent.step = step;
    recent.chosen = candidates[chosen];
    for (std::size_t r = 0; r < decided.ranked.size(); ++r) {
      const auto i = static_cast<std::size_t>(decided.ranked[r]);
      const env::Meal& meal = catalog.meals()[static_cast<std::size_t>(candidates[i])];
      decision.ranked.push_back(i);
      recent.ranked.push_back(candidates[i]);
      fmt::format_to(std::back_inserter(meals), R"({}{{"rank":{},{},"score":{},"probability":{},"reasons":)",
                     r == 0 ? "" : ",", r + 1, app.meal_json_members(static_cast<std::size_t>(candidates[i])), scores[i],
                     pmf[i]);
      append_reasons(meals, meal, *session, decided.recency[i]);
      meals.push_back('}');
    }
    logged = app.decision_log().enqueue(std::move(decision));
    recent.log_sequence = logged.sequence;
    session->recent.push_back(std::move(recent));
    if (session->recent.size() > UserDirectory::kRecentDecisions) session->recent.pop_front();
    ++session->decisions;
    app.metrics().recommendations().Increment();
    if (chosen != decided.greedy) app.metrics().explored().Increment();
    app.metrics().epsilon().Set(epsilon);
    if (with_advice) {
      advice_request = make_advice_request(*session, catalog.meals()[static_cast<std::size_t>(candidates[chosen])], slot);
    }
  }
  // Ids are canonical UUIDs, the version is [A-Za-z0-9._-]: nothing to escape.
  Response response{http::status::ok, request.version()};
  response.set(http::field::content_type, "application/json");
  response.keep_alive(request.keep_alive());
  std::string& text = response.body();
  text.reserve(meals.size() + 256);
  fmt::format_to(std::back_inserter(text), R"({{"event_id":"{}","user_id":"{}","model_version":"{}","slot":"{}","epsilon":{},"meals":[)",
                 event_id, session->id, model->version, env::kSlotNames[static_cast<std::size_t>(served_slot)], epsilon);
  text.append(meals.data(), meals.size());
  text.push_back(']');
  if (advice_request) {
    text += R"(,"advice":)";
    text += advice_for(app, *advice_request, nullptr).dump(-1, ' ', false, json::error_handler_t::replace);
  }
  text.push_back('}');
  response.prepare_payload();
  // journaled: queued and in the crash journal; queued: not journaled (no journal, or it
  // cannot be written), lost if the process dies in the next milliseconds; failed: the
  // queue was full, the decision is not logged and feedback on it will be refused (404).
  response.set("X-Forkcast-Decision-Log", logged.journaled ? "journaled" : logged.sequence != 0 ? "queued" : "failed");
  return response;
}

}  // namespace

namespace {

// Moves the user's state for one answer on a suggestion: the suggestion counts once in the
// acceptance statistics and the meal once in the intake, however many answers the event
// gets (rejected and then eaten counts the meal when it is eaten). Which of the two an event
// already applied is in memory for the user's recent events; for older ones (after a
// restart, an eviction or many newer suggestions) the event's other stored answers say it.
// A duplicate answer that is not in memory is taken as applied (it cannot be told apart).
// Returns false when the state could not be saved (it is saved with the next change).
bool apply_feedback_to_state(Application& app, UserSession& session, const std::string& event_id,
                             const std::string& meal_id, db::Outcome outcome, const std::string& key, bool duplicate) {
  const bool ate = outcome == db::Outcome::accepted || outcome == db::Outcome::eaten;
  std::lock_guard lock(session.mutex);
  const std::int32_t meal = meal_index(app.catalog(), meal_id, "meal_id");
  RecentDecision* recent = nullptr;
  for (auto& r : session.recent) {
    if (r.event_id == event_id) recent = &r;
  }
  bool offer_applied = true, meal_applied = true;
  if (recent != nullptr) {
    offer_applied = recent->offer_applied;
    meal_applied = recent->meal_applied;
  } else if (!duplicate) {
    offer_applied = meal_applied = false;
    for (const auto& other : app.database().feedback().list_for_event(event_id)) {
      if (other.recorded.idempotency_key == key) continue;
      const db::Outcome o = other.recorded.outcome;
      offer_applied = offer_applied || o != db::Outcome::skipped;
      meal_applied = meal_applied || o == db::Outcome::accepted || o == db::Outcome::eaten;
    }
  }
  const bool count_offer = outcome != db::Outcome::skipped && !offer_applied;
  const bool count_meal = ate && !meal_applied;
  if (!count_offer && !count_meal) return true;
  if (count_offer) session.tracker.record_offer(meal, ate);
  if (count_meal) session.tracker.record_eaten(meal, 1.0);
  if (recent != nullptr) {
    recent->offer_applied = recent->offer_applied || count_offer;
    recent->meal_applied = recent->meal_applied || count_meal;
  }
  try {
    app.users().persist(session);
  } catch (const std::exception&) {
    return false;  // the feedback is durable; the state is written with the next change
  }
  return true;
}

}  // namespace

Response handle_feedback(Application& app, const Request& request, Call& call) {
  JsonBody body = JsonBody::parse(request.body());
  const std::string event_id = body.string("event_id", 64);
  const std::string meal_id = body.string("meal_id", 200);
  const auto outcome_name = body.optional_choice("outcome", {"accepted", "rejected", "eaten", "skipped"});
  if (!outcome_name) throw bad_request("missing_field", "outcome: is required", "outcome");
  const auto rating = body.optional_int("rating", 1, 5);
  const std::string key = body.string("idempotency_key", 255);
  const auto time = body.optional_string("time", 64);
  body.finish();
  const bool simulation_clock = app.config().server.simulation_clock;
  if (time && !simulation_clock) {
    throw bad_request("invalid_value", "time: feedback takes the service's own time (server.simulation_clock is off)",
                      "time");
  }
  const std::optional<db::Timestamp> received_at =
      time ? std::optional<db::Timestamp>(parse_request_time(*time, "time", true)) : std::nullopt;
  if (call.principal.user_id.empty() && !call.principal.admin) {
    throw ApiError(http::status::unauthorized, "missing_credentials", "this route needs a bearer token", "Authorization");
  }
  const auto not_found = [&] {
    return ApiError(http::status::not_found, "not_found", "no recommendation event " + event_id.substr(0, 64), "event_id");
  };
  if (!db::is_uuid(event_id)) throw not_found();

  // Find the decision: in the user's recent ones (memory), else in the database.
  std::shared_ptr<UserSession> session;
  std::uint64_t log_sequence = 0;
  std::vector<std::string> ranked;
  if (!call.principal.user_id.empty()) {
    session = app.users().find(call.principal.user_id);
    if (!session) throw not_found();
    std::lock_guard lock(session->mutex);
    if (const RecentDecision* r = find_recent(*session, event_id)) {
      log_sequence = r->log_sequence;
      if (log_sequence == 0) throw not_found();  // never logged (the response said so)
      for (const auto m : r->ranked) ranked.push_back(app.catalog().meals()[static_cast<std::size_t>(m)].id);
    }
  }
  if (ranked.empty()) {
    auto stored = app.database().decisions().find(event_id);
    if (!stored) {
      // Perhaps still in the decision log's queue (an admin's feedback right after the
      // recommendation, or a user's older than the recent ones kept in memory): 404 only
      // once everything queued before now is stored.
      const std::uint64_t queued_through = app.decision_log().last_enqueued();
      if (queued_through > 0) {
        await_stored_decisions(app, queued_through, "decisions queued before this feedback are not stored yet");
        stored = app.database().decisions().find(event_id);
      }
    }
    if (!stored) throw not_found();
    if (!call.principal.admin && stored->logged.user_id != call.principal.user_id) throw not_found();
    if (!session) session = app.users().find(stored->logged.user_id);
    if (!session) throw not_found();
    ranked = stored->logged.ranked;
  }
  if (std::find(ranked.begin(), ranked.end(), meal_id) == ranked.end()) {
    throw bad_request("invalid_value", "meal_id: \"" + meal_id.substr(0, 64) + "\" was not recommended in event " + event_id,
                      "meal_id");
  }
  // The feedback row references the decision: wait until the decision log stored it.
  await_stored_decisions(app, log_sequence, "the decision of this event is not stored yet");
  const db::Outcome outcome = db::outcome_from_name(*outcome_name);
  const bool ate = outcome == db::Outcome::accepted || outcome == db::Outcome::eaten;
  db::NewFeedback feedback;
  feedback.event_id = event_id;
  feedback.meal_id = meal_id;
  feedback.outcome = outcome;
  if (rating) feedback.rating = static_cast<int>(*rating);
  // The reward logged for off-policy evaluation: acceptance, nudged by the rating.
  feedback.reward = (ate ? 1.0 : 0.0) + (rating ? 0.1 * (static_cast<double>(*rating) - 3.0) : 0.0);
  feedback.idempotency_key = key;
  feedback.received_at = received_at;  // empty: the database's now()
  const db::FeedbackResult result = app.database().feedback_writer().submit(feedback);  // after COMMIT
  if (result.duplicate) {
    app.metrics().feedback_duplicates().Increment();
  } else {
    app.metrics().feedback_committed().Increment();
  }
  // A duplicate is a retry: its first attempt may have committed and then failed before the
  // state moved (an uncertain COMMIT answers 503), so the state is brought up to date for it
  // as for a new answer; what was applied already is not applied twice.
  const bool state_saved = apply_feedback_to_state(app, *session, event_id, meal_id, outcome, key, result.duplicate);
  Response response = json_response(request, result.duplicate ? http::status::ok : http::status::created,
                                     {{"feedback_id", result.feedback_id}, {"duplicate", result.duplicate}, {"event_id", event_id}});
  if (!state_saved) response.set("X-Forkcast-State", "pending");
  return response;
}

Response handle_log_meal(Application& app, const Request& request, Call& call) {
  JsonBody body = JsonBody::parse(request.body());
  const std::string user_id = body.string("user_id", 64);
  const std::string meal_id = body.string("meal_id", 200);
  const auto slot_name = body.optional_choice("slot", kSlotChoices);
  const auto time = body.optional_string("time", 64);
  const double servings = body.optional_number("servings", 0.1, 10).value_or(1.0);
  const auto key = body.optional_string("idempotency_key", 255);
  const auto event_id = body.optional_string("event_id", 64);
  body.finish();
  require_user(call, user_id);
  auto session = app.users().find(user_id);
  if (!session) throw ApiError(http::status::not_found, "not_found", "no user " + user_id, "user_id");
  const std::int32_t meal = meal_index(app.catalog(), meal_id, "meal_id");
  if (event_id && !db::is_uuid(*event_id)) throw bad_request("invalid_value", "event_id: not a UUID", "event_id");
  std::uint64_t log_sequence = 0;
  int offset = 0;
  bool own_event = false;
  {
    std::lock_guard lock(session->mutex);
    offset = session->profile.utc_offset_min;
    if (event_id) {
      if (const RecentDecision* r = find_recent(*session, *event_id)) {
        own_event = r->log_sequence != 0;
        log_sequence = r->log_sequence;
      }
    }
  }
  if (event_id) {
    // The event must be one of this user's recommendations: another user's event id is no
    // such event (404, as on the feedback route), so that ids of others' events leak nothing.
    if (!own_event) {
      const auto stored = app.database().decisions().find(*event_id);
      own_event = stored && stored->logged.user_id == session->id;
    }
    if (!own_event) {
      throw ApiError(http::status::not_found, "not_found", "no recommendation event " + event_id->substr(0, 64), "event_id");
    }
    // The entry references the decision: wait until the decision log stored it.
    await_stored_decisions(app, log_sequence, "the decision of this event is not stored yet");
  }
  const db::Timestamp at =
      time ? parse_request_time(*time, "time", app.config().server.simulation_clock) : db::now_timestamp();
  const env::Slot slot = slot_name ? *env::parse_slot(*slot_name) : local_slot(at, offset);

  db::NewMealLogEntry entry;
  entry.user_id = user_id;
  entry.meal_id = meal_id;
  entry.slot = static_cast<db::Slot>(slot);
  entry.eaten_at = at;
  entry.servings = servings;
  entry.event_id = event_id;
  entry.idempotency_key = key;
  const db::MealLogResult result = app.database().meal_log().add(entry);
  if (result.duplicate) {
    // Keys are unique over all entries: a repeat must be the same entry of the same user,
    // else it is a conflict (never somebody else's entry, and never a silently lost meal).
    const db::NewMealLogEntry& stored = result.entry.logged;
    if (stored.user_id != user_id || stored.meal_id != meal_id || stored.slot != entry.slot ||
        std::fabs(stored.servings - servings) > 1e-9) {
      throw ApiError(http::status::conflict, "conflict",
                     "idempotency_key was already used for a different meal log entry", "idempotency_key");
    }
  } else {
    std::lock_guard lock(session->mutex);
    app.users().advance_to(*session, local_day(at, offset), slot);
    session->tracker.record_eaten(meal, servings);
    app.users().persist(*session);
  }
  return json_response(request, result.duplicate ? http::status::ok : http::status::created,
                       {{"id", result.entry.id}, {"duplicate", result.duplicate}, {"meal_id", meal_id},
                        {"slot", env::kSlotNames[static_cast<std::size_t>(slot)]}, {"servings", servings}});
}

Response handle_get_state(Application& app, const Request& request, Call& call) {
  const std::string user_id(call.params.at(0));
  require_user(call, user_id, "id");
  auto session = app.users().find(user_id);
  if (!session) throw ApiError(http::status::not_found, "not_found", "no user " + user_id.substr(0, 64), "id");
  std::lock_guard lock(session->mutex);
  const int offset = session->profile.utc_offset_min;
  const db::Timestamp now = db::now_timestamp();
  // Show the state as of now (a new day starts with nothing eaten). The move is made in
  // memory only; it is stored with the user's next change (it is recomputed from the
  // clock anyway).
  const std::int64_t day = local_day(now, offset);
  app.users().advance_to(*session, day, local_slot(now, offset));
  const env::UserTracker& t = session->tracker;
  const auto& s = t.state();
  json recent = json::array();
  for (auto it = session->recent.rbegin(); it != session->recent.rend() && recent.size() < 5; ++it) {
    recent.push_back({{"event_id", it->event_id},
                      {"slot", env::kSlotNames[static_cast<std::size_t>(it->slot)]},
                      {"chosen", app.catalog().meals()[static_cast<std::size_t>(it->chosen)].id}});
  }
  return json_response(
      request, http::status::ok,
      {{"user_id", user_id},
       {"date", format_date(session->first_day + s.step / env::kNumSlots)},
       {"day_index", s.step / env::kNumSlots},
       {"slot", env::kSlotNames[static_cast<std::size_t>(t.slot())]},
       {"intake_today", nutrition_json(s.intake_today)},
       {"targets", targets_json(session->profile.profile)},
       {"remaining_kcal", std::round(t.kcal_target() - s.intake_today.kcal)},
       {"remaining_protein_g", std::round(t.protein_target_g() - s.intake_today.protein_g)},
       {"hunger", std::round(s.hunger * 100) / 100},
       {"acceptance_rate", std::round((s.accepted_decayed + 0.5) / (s.offered_decayed + 1.0) * 100) / 100},
       {"recommendations_served", session->decisions},
       {"epsilon", policy::serving_epsilon(app.config().exploration, session->decisions)},
       {"recent_recommendations", recent}});
}

}  // namespace forkcast::service
