// What a route handler is given besides the application and the request: the Call (path
// parameters, the authenticated principal, where it runs), and the helpers every handler
// uses to check who calls and to answer. Handlers return a response or throw (ApiError,
// std::invalid_argument, db errors): the one mapping in router.cpp turns exceptions into
// JSON errors.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

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
  std::vector<std::string_view> params;  // path parameters in pattern order (views into the request)
  bool on_worker = false;                // the handler runs on the worker pool
  StreamedResponse* streamed = nullptr;  // set by the server for routes that may stream
};

using Handler = Response (*)(Application&, const Request&, Call&);

// Thrown on an I/O thread by a handler (or the router's authentication) that finds the rest
// of its request must wait on something slow: a database query on a cache miss, model
// advice, a user's lock held across a database call. `rest` continues the request on the
// worker pool from where it stopped — the route is matched, the caller authenticated and
// charged, the body parsed — so nothing runs twice; it is called with call.on_worker true.
// What it captures must own its data (the request and the Call stay alive until it ran).
struct ContinueOnWorker {
  std::function<Response(Application&, const Request&, Call&)> rest;
};

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

}  // namespace forkcast::service
