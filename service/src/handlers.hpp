// The route handlers (router.cpp holds the table that names them). Each takes the
// application, the request and the Call (path parameters, the authenticated principal),
// and returns a response or throws (ApiError, std::invalid_argument, db errors): the one
// mapping in router.cpp turns exceptions into JSON errors.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "api.hpp"
#include "forkcast/service/router.hpp"

namespace forkcast::service {

struct Principal {
  bool admin = false;
  std::string user_id;   // set for a user's bearer token
  std::string rate_key;  // token hash, "admin" or "peer:<address>"
};

struct Call {
  const RequestContext& context;
  Principal principal;
  std::vector<std::string_view> params;  // path parameters in pattern order
  bool on_worker = false;                // the handler runs on the worker pool
  StreamedResponse* streamed = nullptr;  // set by the server for routes that may stream
};

// Thrown on an I/O thread by code that finds this request must wait on something slow (a
// database query on a cache miss, model advice): the server runs it again on the worker pool.
struct RerunOnWorker {};

// 401 unless a user or admin; 403 when a user names a user id that is not theirs. `field`
// names where the id came from ("user_id" in a body, "id" in a path).
void require_user(const Call& call, std::string_view user_id, std::string_view field = "user_id");
void require_admin(const Call& call);

// Builds a JSON response.
Response json_response(const Request& request, http::status status, const nlohmann::json& body);
// One server-sent event, "event: <name>\ndata: <json>\n\n". Text that is not valid UTF-8 is
// replaced (U+FFFD), never thrown about: streamed events are written from threads where an
// escaping exception would end the process.
std::string sse_event(std::string_view name, const nlohmann::json& data);

using Handler = Response (*)(Application&, const Request&, Call&);

Response handle_create_user(Application&, const Request&, Call&);
Response handle_get_user(Application&, const Request&, Call&);
Response handle_patch_user(Application&, const Request&, Call&);
Response handle_get_state(Application&, const Request&, Call&);
Response handle_recommend(Application&, const Request&, Call&);
Response handle_feedback(Application&, const Request&, Call&);
Response handle_log_meal(Application&, const Request&, Call&);
Response handle_list_meals(Application&, const Request&, Call&);
Response handle_get_meal(Application&, const Request&, Call&);
Response handle_advice(Application&, const Request&, Call&);
Response handle_list_models(Application&, const Request&, Call&);
Response handle_promote_model(Application&, const Request&, Call&);
Response handle_livez(Application&, const Request&, Call&);
Response handle_readyz(Application&, const Request&, Call&);
Response handle_metrics(Application&, const Request&, Call&);
Response handle_openapi(Application&, const Request&, Call&);
Response handle_demo_page(Application&, const Request&, Call&);

// The OpenAPI 3.1 document (openapi.cpp) and the demo page (embedded from static/).
const std::string& openapi_document();
std::string_view demo_page_html();

// What advice for one meal is grounded on: the meal and the user's day, captured under
// the user's lock so that generating (slow) happens without it.
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

// Parses RFC 3339 date-times ("2026-12-01T12:30:00Z", "...+02:00"); 400 naming `field`.
db::Timestamp parse_time(const std::string& text, const std::string& field);
std::string format_time(db::Timestamp t);
// parse_time, limited to 14 days either side of now: a user's state only moves
// forward, so a time far ahead would freeze it there (400 naming `field` otherwise).
db::Timestamp parse_recent_time(const std::string& text, const std::string& field);
// "YYYY-MM-DD" of a day number (days since 1970-01-01).
std::string format_date(std::int64_t day);

}  // namespace forkcast::service
