// Advice for one meal: grounded facts, the embedded model (streamed or not), the template fallback.
#include <cmath>

#include "advice_request.hpp"
#include "forkcast/advice/engine.hpp"
#include "forkcast/advice/facts.hpp"
#include "forkcast/advice/from_catalog.hpp"
#include "handlers.hpp"
#include "metrics.hpp"
#include "user_directory.hpp"

namespace forkcast::service {

using nlohmann::json;

AdviceRequest make_advice_request(const UserSession& session, const env::Meal& meal, env::Slot slot) {
  AdviceRequest r;
  r.meal = &meal;
  r.slot = slot;
  r.profile = session.profile;
  r.kcal_target = session.tracker.kcal_target();
  r.protein_target_g = session.tracker.protein_target_g();
  r.intake_today = session.tracker.state().intake_today;
  return r;
}

json advice_for(Application& app, const AdviceRequest& r, const std::function<bool(std::string_view)>* on_token) {
  const advice::DayIntake eaten{r.intake_today.kcal, r.intake_today.protein_g};
  const env::Meal* side = advice::pick_side(app.catalog(), *r.meal, r.profile.profile, eaten);
  const advice::AdviceFacts facts = advice::facts_from_catalog(app.catalog(), *r.meal, r.profile.profile, eaten, side);
  advice::AdviceEngine* engine = app.advice();
  if (engine == nullptr) {
    // advice.enabled is false: template advice, grounded by construction.
    app.metrics().advice("template_disabled").Increment();
    return {{"meal_id", r.meal->id}, {"text", advice::template_advice(facts)}, {"source", "template"},
            {"fallback_reason", "disabled"}};
  }
  advice::TextCallback on_text;
  if (on_token != nullptr) on_text = [on_token](std::string_view text) { (*on_token)(text); };
  const advice::AdviceResult result =
      engine->advise(facts, std::chrono::milliseconds(app.config().advice.timeout_ms), on_text);
  const bool from_model = result.source == advice::AdviceSource::model;
  app.metrics().advice(from_model ? "model" : advice::reason_name(result.reason)).Increment();
  json out = {{"meal_id", r.meal->id},
              {"text", result.text},
              {"source", advice::source_name(result.source)},
              {"generated_tokens", result.generated_tokens},
              {"latency_ms", std::round(result.total_ms * 10) / 10}};
  if (!from_model) out["fallback_reason"] = advice::reason_name(result.reason);
  return out;
}

Response handle_advice(Application& app, const Request& request, Call& call) {
  JsonBody body = JsonBody::parse(request.body());
  const std::string user_id = body.string("user_id", 64);
  const std::string meal_id = body.string("meal_id", 200);
  const bool stream = body.optional_bool("stream").value_or(false);
  body.finish();
  require_user(call, user_id);
  auto session = app.users().find(user_id);
  if (!session) throw ApiError(http::status::not_found, "not_found", "no user " + user_id, "user_id");
  const auto m = app.catalog().find_meal(meal_id);
  if (!m) throw ApiError(http::status::not_found, "not_found", "meal_id: no meal \"" + meal_id.substr(0, 64) + "\"", "meal_id");
  const env::Meal& meal = app.catalog().meals()[*m];
  AdviceRequest advice_request;
  {
    std::lock_guard lock(session->mutex);
    if (!session->profile.profile.allows(meal)) {
      // Never advise a meal the user must not eat, even when asked by id.
      throw bad_request("unsafe_meal", "meal_id: \"" + meal_id + "\" conflicts with this user's diet or allergens", "meal_id");
    }
    advice_request = make_advice_request(*session, meal, meal.slot);
  }
  if (stream && call.streamed != nullptr) {
    Response head{http::status::ok, request.version()};
    head.set(http::field::content_type, "text/event-stream");
    head.set(http::field::cache_control, "no-store");
    head.keep_alive(false);
    call.streamed->head = head;
    call.streamed->produce = [&app, advice_request](const std::function<bool(std::string_view)>& write_chunk) {
      // Runs on the advice engine's thread (on_token) and a worker: nothing may escape, so
      // model text that is not valid UTF-8 is replaced, not thrown about.
      const std::function<bool(std::string_view)> on_token = [&](std::string_view piece) {
        return write_chunk(sse_event("token", json(std::string(piece))));
      };
      const json result = advice_for(app, advice_request, &on_token);
      write_chunk(sse_event("done", result));
    };
    return head;
  }
  return json_response(request, http::status::ok, advice_for(app, advice_request, nullptr));
}

}  // namespace forkcast::service
