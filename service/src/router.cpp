#include "forkcast/service/router.hpp"

#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <optional>

#include "forkcast/db/errors.hpp"
#include "handlers.hpp"
#include "metrics.hpp"
#include "rate_limiter.hpp"
#include "user_directory.hpp"

namespace forkcast::service {

using nlohmann::json;

namespace {

struct Route {
  RouteInfo info;
  Handler handler;
};

using http::verb;
// Order matters only for the OpenAPI test and docs; patterns never overlap.
const std::array<Route, 18> kRoutes = {{
    {{verb::post, "/v1/users", "users_create", RunsOn::worker, false, false}, handle_create_user},
    {{verb::get, "/v1/users/{id}", "users_get", RunsOn::worker, false, false}, handle_get_user},
    {{verb::patch, "/v1/users/{id}", "users_patch", RunsOn::worker, false, false}, handle_patch_user},
    {{verb::get, "/v1/users/{id}/state", "users_state", RunsOn::worker, false, false}, handle_get_state},
    {{verb::post, "/v1/recommendations", "recommendations", RunsOn::io, false, false}, handle_recommend},
    {{verb::post, "/v1/feedback", "feedback", RunsOn::worker, false, false}, handle_feedback},
    {{verb::post, "/v1/meals/log", "meals_log", RunsOn::worker, false, false}, handle_log_meal},
    {{verb::get, "/v1/meals", "meals_list", RunsOn::io, false, false}, handle_list_meals},
    {{verb::get, "/v1/meals/{id}", "meals_get", RunsOn::io, false, false}, handle_get_meal},
    {{verb::post, "/v1/advice", "advice", RunsOn::worker, false, false}, handle_advice},
    {{verb::get, "/v1/models", "models_list", RunsOn::worker, true, false}, handle_list_models},
    {{verb::post, "/v1/models/{version}/promote", "models_promote", RunsOn::worker, true, false}, handle_promote_model},
    {{verb::get, "/livez", "livez", RunsOn::io, false, true}, handle_livez},
    {{verb::get, "/readyz", "readyz", RunsOn::worker, false, true}, handle_readyz},
    {{verb::get, "/metrics", "metrics", RunsOn::io, false, true}, handle_metrics},
    {{verb::get, "/openapi.json", "openapi", RunsOn::io, false, true}, handle_openapi},
    {{verb::get, "/", "demo_page", RunsOn::io, false, true}, handle_demo_page},
    {{verb::head, "/livez", "livez_head", RunsOn::io, false, true}, handle_livez},
}};

const std::array<RouteInfo, kRoutes.size()> kRouteInfos = [] {
  std::array<RouteInfo, kRoutes.size()> out{};
  for (std::size_t i = 0; i < kRoutes.size(); ++i) out[i] = kRoutes[i].info;
  return out;
}();

// Matches `path` (no query) against a pattern, collecting {param} segments.
bool match_pattern(std::string_view pattern, std::string_view path, std::vector<std::string_view>* params) {
  while (!pattern.empty() && !path.empty()) {
    if (pattern.front() != '/' || path.front() != '/') return false;
    pattern.remove_prefix(1);
    path.remove_prefix(1);
    const auto pattern_end = std::min(pattern.find('/'), pattern.size());
    const auto path_end = std::min(path.find('/'), path.size());
    const std::string_view p = pattern.substr(0, pattern_end), s = path.substr(0, path_end);
    if (!p.empty() && p.front() == '{') {
      if (s.empty()) return false;
      if (params) params->push_back(s);
    } else if (p != s) {
      return false;
    }
    pattern.remove_prefix(pattern_end);
    path.remove_prefix(path_end);
  }
  return pattern.empty() && path.empty();
}

// The database names fields by table ("models.version"); the API by what the client sent.
std::string api_field(const std::string& db_field) {
  const auto dot = db_field.find('.');
  return dot == std::string::npos ? db_field : db_field.substr(dot + 1);
}

std::string_view path_of(std::string_view target) { return target.substr(0, std::min(target.find('?'), target.size())); }

// Content-Type is application/json (RFC 8259), its parameters (charset=utf-8) aside; the
// media type is case-insensitive.
bool is_json_media_type(const Request& request) {
  const auto header = request.find(http::field::content_type);
  if (header == request.end()) return false;
  std::string_view type = header->value();
  type = type.substr(0, std::min(type.find(';'), type.size()));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
  constexpr std::string_view kJson = "application/json";
  return type.size() == kJson.size() && std::equal(type.begin(), type.end(), kJson.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == b;
         });
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// Who calls, from the Authorization header. On an I/O thread (`on_worker` false) a token
// the cache does not know is not looked up: nullopt, and the caller continues the request on
// the worker pool, where the database may be asked.
std::optional<Principal> authenticate(Application& app, const Request& request, const RequestContext& context,
                                      bool on_worker) {
  Principal principal;
  const auto header = request.find(http::field::authorization);
  if (header == request.end()) {
    principal.rate_key = "peer:" + context.peer;
    return principal;
  }
  const std::string_view value = header->value();
  constexpr std::string_view kBearer = "bearer ";
  // The scheme name is case-insensitive (RFC 9110 §11.1).
  const bool bearer = value.size() > kBearer.size() &&
                      std::equal(kBearer.begin(), kBearer.end(), value.begin(),
                                 [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); });
  if (!bearer) {
    throw ApiError(http::status::unauthorized, "invalid_credentials",
                   "Authorization: expected \"Bearer <token>\"", "Authorization");
  }
  const std::string_view token = value.substr(kBearer.size());
  const std::string& admin_key = app.config().server.admin_api_key;
  if (!admin_key.empty() && constant_time_equal(token, admin_key)) {
    principal.admin = true;
    principal.rate_key = "admin";
    return principal;
  }
  if (token.size() > 256) {
    throw ApiError(http::status::unauthorized, "invalid_credentials", "unknown bearer token", "Authorization");
  }
  std::string hash = db::token_sha256(token);
  std::optional<std::string> user;
  if (on_worker) {
    user = app.users().user_for_token(hash);
  } else {
    auto cached = app.users().user_for_token_cached(hash);
    if (!cached.known) return std::nullopt;
    user = std::move(cached.user);
  }
  if (!user) throw ApiError(http::status::unauthorized, "invalid_credentials", "unknown bearer token", "Authorization");
  principal.user_id = *user;
  principal.rate_key = std::move(hash);
  return principal;
}

Response error_from(const Request& request, http::status status, std::string_view code, std::string_view message,
                    std::string_view field) {
  json error = {{"code", code}, {"message", message}};
  if (!field.empty()) error["field"] = field;
  auto response = json_response(request, status, {{"error", error}});
  return response;
}

}  // namespace

std::span<const RouteInfo> routes() { return kRouteInfos; }

int match_route(http::verb method, std::string_view target) {
  const std::string_view path = path_of(target);
  for (std::size_t i = 0; i < kRoutes.size(); ++i) {
    if (kRoutes[i].info.method == method && match_pattern(kRoutes[i].info.pattern, path, nullptr)) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

RunsOn runs_on(http::verb method, std::string_view target) {
  const int route = match_route(method, target);
  return route < 0 ? RunsOn::io : kRoutes[static_cast<std::size_t>(route)].info.runs_on;
}

bool is_operations_route(http::verb method, std::string_view target) {
  const int route = match_route(method, target);
  return route >= 0 && kRoutes[static_cast<std::size_t>(route)].info.operations;
}

void require_user(const Call& call, std::string_view user_id, std::string_view field) {
  if (call.principal.admin) return;
  if (call.principal.user_id.empty()) {
    throw ApiError(http::status::unauthorized, "missing_credentials",
                   "this route needs a bearer token (Authorization: Bearer <token>)", "Authorization");
  }
  if (call.principal.user_id != user_id) {
    throw ApiError(http::status::forbidden, "forbidden", "this token does not own user " + std::string(user_id.substr(0, 64)),
                   std::string(field));
  }
}

void require_admin(const Call& call) {
  if (call.principal.admin) return;
  if (call.principal.user_id.empty()) {
    throw ApiError(http::status::unauthorized, "missing_credentials", "this route needs the admin API key",
                   "Authorization");
  }
  throw ApiError(http::status::forbidden, "forbidden", "this route needs the admin API key, not a user token",
                 "Authorization");
}

std::string sse_event(std::string_view name, const json& data) {
  std::string event = "event: ";
  event.append(name);
  event += "\ndata: ";
  event += data.dump(-1, ' ', false, json::error_handler_t::replace);
  event += "\n\n";
  return event;
}

Response json_response(const Request& request, http::status status, const json& body) {
  Response response{status, request.version()};
  response.set(http::field::content_type, "application/json");
  response.keep_alive(request.keep_alive());
  response.body() = body.dump(-1, ' ', false, json::error_handler_t::replace);
  response.prepare_payload();
  return response;
}

Response error_response(http::status status, std::string_view code, std::string_view message, std::string_view field,
                        unsigned version) {
  Request request{http::verb::get, "/", version};
  request.keep_alive(false);
  return error_from(request, status, code, message, field);
}

namespace {

// Authentication, the rate limit and the admin check: what every route but the operations
// ones passes before its handler. On an I/O thread a token the cache does not know is not
// looked up: the rest of the request (this step included) continues on the worker pool.
void admit(Application& app, const Request& request, const Route& r, Call& call, Rerun* rerun) {
  if (r.info.operations) {
    // Probes, metrics and documents: no credentials read, no rate limit, no database, so
    // that liveness never depends on PostgreSQL or on a busy client's bucket.
    call.principal.rate_key = "peer:" + call.context.peer;
    return;
  }
  std::optional<Principal> principal;
  try {
    principal = authenticate(app, request, call.context, call.on_worker);
  } catch (const ApiError&) {
    // Bad credentials are rate-limited by client address, so guessing tokens (each
    // guess a database lookup) is as limited as any anonymous request.
    if (const int wait_s = app.rate_limiter().acquire("peer:" + call.context.peer); wait_s > 0) {
      app.metrics().rate_limited().Increment();
      ApiError limited(http::status::too_many_requests, "rate_limited", "too many requests for this client; retry later");
      limited.retry_after_s = wait_s;
      throw limited;
    }
    throw;
  }
  if (!principal) {
    throw ContinueOnWorker{[&r](Application& a, const Request& req, Call& c) {
      admit(a, req, r, c, nullptr);
      return r.handler(a, req, c);
    }};
  }
  call.principal = std::move(*principal);
  if (const int wait_s = app.rate_limiter().acquire(call.principal.rate_key); wait_s > 0) {
    app.metrics().rate_limited().Increment();
    ApiError limited(http::status::too_many_requests, "rate_limited", "too many requests for this key; retry later");
    limited.retry_after_s = wait_s;
    throw limited;
  }
  if (rerun != nullptr) rerun->rate_limit_charged = true;
  if (r.info.admin) require_admin(call);
}

// Runs `work` (which may set `route`) and turns what it throws into the response: the one
// error mapping of the service (router.hpp), then the headers every response carries and
// the request's metrics. A ContinueOnWorker becomes the Rerun's continuation.
template <class Work>
Response respond(Application& app, const Request& request, const RequestContext& context, int& route, Rerun* rerun,
                 std::optional<Call>* call, Work&& work) {
  const auto started = std::chrono::steady_clock::now();
  Response response;
  try {
    response = work();
  } catch (ContinueOnWorker& next) {
    if (rerun != nullptr && call != nullptr && *call) {
      rerun->requested = true;
      rerun->route = route;
      rerun->rest = [rest = std::move(next.rest), c = std::move(**call)](Application& a, const Request& req,
                                                                          StreamedResponse* streamed) mutable {
        c.on_worker = true;
        c.streamed = streamed;
        return rest(a, req, c);
      };
      return response;
    }
    spdlog::error("request {}: a handler asked for the worker pool while on it", context.request_id);
    response = error_from(request, http::status::internal_server_error, "internal_error",
                          "internal error (request id " + context.request_id + ")", "");
  } catch (const ApiError& e) {
    response = error_from(request, e.status(), e.code(), e.what(), e.field());
    if (e.retry_after_s > 0) response.set(http::field::retry_after, std::to_string(e.retry_after_s));
  } catch (const StartupError& e) {
    // A registered model that cannot be served (file missing or changed, not a MealSim
    // model): only promote reaches this at run time. The admin gets the reason; the old
    // model keeps serving.
    response = error_from(request, http::status::bad_request, "invalid_model", e.what(), "version");
  } catch (const db::NotFoundError& e) {
    response = error_from(request, http::status::not_found, "not_found", e.what(), api_field(e.field()));
  } catch (const db::ConflictError& e) {
    response = error_from(request, http::status::conflict, "conflict", e.what(), api_field(e.field()));
  } catch (const db::StorageFull& e) {
    // The operator's problem, not the client's: say so, and ask for a slower retry.
    spdlog::warn("request {}: {}", context.request_id, e.what());
    response = error_from(request, http::status::service_unavailable, "storage_full",
                          "the database has no disk space left; retry later (with the same idempotency key)", "");
    response.set(http::field::retry_after, "5");
  } catch (const db::DatabaseUnavailable& e) {
    response = error_from(request, http::status::service_unavailable, "database_unavailable",
                          "the database is unavailable; retry (with the same idempotency key)", "");
    response.set(http::field::retry_after, "1");
  } catch (const std::invalid_argument& e) {
    response = error_from(request, http::status::bad_request, "invalid_argument", e.what(), "");
  } catch (const std::exception& e) {
    spdlog::error("request {} {} {}: {}", context.request_id, std::string(request.method_string()),
                  std::string(path_of(request.target()).substr(0, 200)), e.what());
    response = error_from(request, http::status::internal_server_error, "internal_error",
                          "internal error (request id " + context.request_id + ")", "");
  }
  response.set("X-Request-Id", context.request_id);
  if (response.result() == http::status::unauthorized) response.set(http::field::www_authenticate, "Bearer");
  if (request.method() == http::verb::head) {
    // HEAD: the headers GET would send, no body (a body would corrupt the next response).
    const auto length = response.body().size();
    response.body().clear();
    response.content_length(length);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  app.metrics().record_request(route, response.result_int(), seconds);
  return response;
}

}  // namespace

Response handle(Application& app, const Request& request, const RequestContext& context, StreamedResponse* streamed,
                Rerun* rerun) {
  int route = -1;
  std::optional<Call> call;
  return respond(app, request, context, route, rerun, &call, [&]() -> Response {
    const std::string_view path = path_of(request.target());
    call.emplace(Call{context, {}, {}, rerun == nullptr, streamed});
    bool path_known = false;
    for (std::size_t i = 0; i < kRoutes.size(); ++i) {
      std::vector<std::string_view> params;
      if (!match_pattern(kRoutes[i].info.pattern, path, &params)) continue;
      path_known = true;
      if (kRoutes[i].info.method != request.method()) continue;
      route = static_cast<int>(i);
      call->params = std::move(params);
      break;
    }
    if (route < 0) {
      if (path_known) {
        return error_from(request, http::status::method_not_allowed, "method_not_allowed",
                          "method " + std::string(request.method_string()) + " is not allowed on " +
                              std::string(path.substr(0, 200)),
                          "");
      }
      return error_from(request, http::status::not_found, "not_found", "no route " + std::string(path.substr(0, 200)), "");
    }
    const Route& r = kRoutes[static_cast<std::size_t>(route)];
    if (!request.body().empty() && !is_json_media_type(request)) {
      throw ApiError(http::status::unsupported_media_type, "unsupported_media_type",
                     "Content-Type: a request body must be application/json", "Content-Type");
    }
    admit(app, request, r, *call, rerun);
    return r.handler(app, request, *call);
  });
}

Response resume(Application& app, const Request& request, const RequestContext& context, Rerun& rerun,
                StreamedResponse* streamed) {
  int route = rerun.route;
  auto rest = std::move(rerun.rest);
  rerun = Rerun{};
  return respond(app, request, context, route, nullptr, nullptr, [&] { return rest(app, request, streamed); });
}

}  // namespace forkcast::service
