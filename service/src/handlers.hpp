// The route handlers; router.cpp holds the table that names them. One file a group:
// users.cpp, recommend.cpp (recommendations, feedback, meal logs, state), meals.cpp,
// advice.cpp, models.cpp, operations.cpp.
#pragma once

#include "api.hpp"
#include "call.hpp"

namespace forkcast::service {

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

}  // namespace forkcast::service
