// The model registry routes: list the registered models, promote one to serving.
#include "clock.hpp"
#include "handlers.hpp"

namespace forkcast::service {

using nlohmann::json;

namespace {

json model_json(const db::Model& m) {
  json out = {{"version", m.registered.version},
              {"kind", m.registered.kind},
              {"sha256", m.registered.sha256},
              {"path", m.registered.path},
              {"status", db::model_status_name(m.status)},
              {"metrics", m.registered.metrics},
              {"created_at", format_time(m.created_at)}};
  if (m.promoted_at) out["promoted_at"] = format_time(*m.promoted_at);
  return out;
}

}  // namespace

Response handle_list_models(Application& app, const Request& request, Call&) {
  json models = json::array();
  for (const auto& m : app.database().models().list()) models.push_back(model_json(m));
  return json_response(request, http::status::ok, {{"serving", app.model()->version}, {"models", models}});
}

Response handle_promote_model(Application& app, const Request& request, Call& call) {
  if (!request.body().empty()) JsonBody::parse(request.body(), true).finish();
  const std::string version(call.params.at(0));
  const auto serving = app.promote(version);
  return json_response(request, http::status::ok, {{"serving", serving->version}, {"sha256", serving->sha256}});
}

}  // namespace forkcast::service
