// Routing: a free function from a request and the application context to a response.
// Nothing here knows about sockets, so every route, status and error is unit-tested
// without a network; server.hpp only moves bytes.
//
// Errors: handle() never throws. One mapping (router.cpp) turns what handlers throw into
// JSON errors `{"error": {"code", "message", "field"}}`:
//   ApiError                     its own status and code
//   std::invalid_argument        400 invalid_argument (bad input the libraries caught)
//   StartupError                 400 invalid_model (promote: the model cannot be served)
//   db::NotFoundError            404 not_found       db::ConflictError  409 conflict
//   db::StorageFull              503 storage_full, with Retry-After: 5 (the database's disk is full)
//   db::DatabaseUnavailable      503 database_unavailable, with Retry-After
//   anything else                500 internal_error (logged with the request id)
//
// Authorization (every route, docs/api.md): 401 when credentials are missing or unknown;
// 403 when a user's token names a user id that is not its own (whether or not that user
// exists) or a user calls an admin route; 404 for an object that does not exist or that
// belongs to somebody else when it is named by its own id (an event, a meal log entry), so
// that ids of other users' objects leak nothing.
#pragma once

#include <boost/beast/http.hpp>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "forkcast/service/application.hpp"

namespace forkcast::service {

namespace http = boost::beast::http;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// Where a route's handler runs: on the connection's I/O thread (pure CPU work, answers in
// microseconds) or on the worker pool (waits on the database or the advice model).
enum class RunsOn : std::uint8_t { io, worker };

struct RouteInfo {
  http::verb method;
  std::string_view pattern;  // "/v1/users/{id}"
  std::string_view name;     // metrics label, e.g. "users_get"
  RunsOn runs_on;
  bool admin;                // needs the admin API key
  bool operations;           // probes, metrics, documents: no auth, no rate limit, no database
};

// Every route the service registers, in a stable order (the OpenAPI document and its
// test are checked against this list).
std::span<const RouteInfo> routes();

// Per-request facts that do not come from the request itself.
struct RequestContext {
  std::string request_id;  // echoed in X-Request-Id and in the access log
  std::string peer;        // client address, the rate-limit key of anonymous requests
};

// A streamed response (server-sent events): the handler answers with the status line
// and headers in `head`, then `produce` writes the body through `write_chunk`, which
// returns false once the client has gone (the producer should stop). Runs on a worker.
struct StreamedResponse {
  Response head;
  std::function<void(const std::function<bool(std::string_view)>& write_chunk)> produce;
};

// The route a request would reach: its index in routes(), or -1 (404 / 405).
int match_route(http::verb method, std::string_view target);
// Whether `target` names a route that needs the worker pool.
RunsOn runs_on(http::verb method, std::string_view target);
// Whether `target` names an operations route (probes, metrics, documents): what a connection
// over the cap, in the probes' reserve, is answered for.
bool is_operations_route(http::verb method, std::string_view target);

// What handle() hands the server when a request must finish on the worker pool: the rest of
// the request, from where the I/O thread stopped.
struct Rerun {
  bool requested = false;
  bool rate_limit_charged = false;  // the I/O pass charged the rate limit; the rest does not again
  int route = -1;                   // the route matched (metrics)
  std::function<Response(Application&, const Request&, StreamedResponse*)> rest;
};

// Handles one request. Never throws. `streamed` is set (and the returned response is only
// its head) when the route streams its body.
// The server calls RunsOn::io routes on an I/O thread with `rerun` non-null. A request that
// turns out to need something an I/O thread must not wait for — a database query (a token
// or user not in the cache), model advice, a user's lock held across a database call —
// sets rerun->requested and rerun->rest instead of answering; the server then calls
// resume() from the worker pool, which continues it there: the route is not matched, the
// caller not authenticated or charged, the body not parsed a second time. Tests pass
// nullptr: everything runs inline.
Response handle(Application& app, const Request& request, const RequestContext& context,
                StreamedResponse* streamed = nullptr, Rerun* rerun = nullptr);
// Runs rerun.rest (on a worker) with handle()'s error mapping, headers and metrics, and
// clears `rerun`. `request` and `context` must be those the I/O pass was given.
Response resume(Application& app, const Request& request, const RequestContext& context, Rerun& rerun,
                StreamedResponse* streamed = nullptr);

// The JSON error body and status, for the server's own errors (413, 431, 503 at the
// connection cap) so that they look like every other error.
Response error_response(http::status status, std::string_view code, std::string_view message,
                        std::string_view field = {}, unsigned version = 11);

}  // namespace forkcast::service
