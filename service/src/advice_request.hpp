// What advice for one meal is grounded on, and asking the advice engine for it: used by
// POST /v1/advice and by recommendations with "advice": true.
#pragma once

#include <functional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "api.hpp"
#include "forkcast/service/application.hpp"

namespace forkcast::service {

// The meal and the user's day, captured under the user's lock so that generating (slow)
// happens without it.
struct AdviceRequest {
  const env::Meal* meal = nullptr;
  env::Slot slot = env::Slot::lunch;
  ProfileDocument profile;
  double kcal_target = 0, protein_target_g = 0;
  env::Nutrients intake_today;
};
struct UserSession;
AdviceRequest make_advice_request(const UserSession& session, const env::Meal& meal, env::Slot slot);
// {"text", "source": "model" | "template", "fallback_reason"?}. `on_token` streams the
// text as it is generated (returns false to stop). Runs on a worker thread.
nlohmann::json advice_for(Application& app, const AdviceRequest& request,
                          const std::function<bool(std::string_view)>* on_token);

}  // namespace forkcast::service
