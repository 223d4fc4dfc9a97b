// Operations routes: liveness and readiness probes, Prometheus metrics, the OpenAPI document, the demo page.
#include "decision_log.hpp"
#include "documents.hpp"
#include "handlers.hpp"
#include "metrics.hpp"

namespace forkcast::service {

using nlohmann::json;

Response handle_livez(Application&, const Request& request, Call&) {
  return json_response(request, http::status::ok, {{"status", "alive"}});
}

Response handle_readyz(Application& app, const Request& request, Call&) {
  const bool database = app.database_ready();
  const auto model = app.model();
  const bool ready = database && model != nullptr;
  Response response = json_response(request, ready ? http::status::ok : http::status::service_unavailable,
                                    {{"status", ready ? "ready" : "not_ready"},
                                     {"database", database ? "ok" : "unavailable"},
                                     {"model", model ? model->version : ""},
                                     {"decision_log_queue", app.decision_log().queued()}});
  if (!ready) response.set(http::field::retry_after, "1");
  return response;
}

Response handle_metrics(Application& app, const Request& request, Call&) {
  Response response{http::status::ok, request.version()};
  response.set(http::field::content_type, "text/plain; version=0.0.4");
  response.keep_alive(request.keep_alive());
  response.body() = app.metrics().render();
  response.prepare_payload();
  return response;
}

Response handle_openapi(Application&, const Request& request, Call&) {
  Response response{http::status::ok, request.version()};
  response.set(http::field::content_type, "application/json");
  response.keep_alive(request.keep_alive());
  response.body() = openapi_document();
  response.prepare_payload();
  return response;
}

Response handle_demo_page(Application&, const Request& request, Call&) {
  Response response{http::status::ok, request.version()};
  response.set(http::field::content_type, "text/html; charset=utf-8");
  response.set(http::field::cache_control, "no-store");
  // The page loads nothing from elsewhere; say so to the browser too.
  response.set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:");
  response.keep_alive(request.keep_alive());
  response.body() = std::string(demo_page_html());
  response.prepare_payload();
  return response;
}

}  // namespace forkcast::service
