// libFuzzer target for the service's request path: raw bytes -> Beast's request parser with
// the server's limits (body 64 KiB, header 8 KiB; a fresh parser per request, pipelined
// requests one after another as a keep-alive connection would carry them) -> the server's
// refusal of ambiguous message lengths -> service::handle() on a real Application.
//
// The Application needs PostgreSQL (its constructor loads the production model from the
// registry), so LLVMFuzzerInitialize starts a throwaway instance once per fuzzing process
// (a fresh data directory under /tmp, a free loopback port; a watchdog process stops and
// deletes it when the fuzzer ends, crash included),
// or uses FORKCAST_FUZZ_DATABASE_URL when set. The model is FORKCAST_FUZZ_MODEL or the
// bundled models/policies/mealsim-dqn-default.safetensors.
//
// So that mutations reach the authorised paths, the harness creates one user at start and
// replaces these placeholders in every input before parsing: {U} the user's id, {T} their
// bearer token, {E} the event id of one of their recommendations, {A} the admin key.
//
// Findings: any crash or sanitizer report; an exception escaping handle() (it never throws);
// a 500 (an internal error: bad input must never cause one); a JSON response whose body is
// not valid JSON, or an error status without {"error": {"code", "message"}}.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/beast/http.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "forkcast/db/database.hpp"
#include "forkcast/db/instance.hpp"
#include "forkcast/env/catalog.hpp"
#include "forkcast/service/application.hpp"
#include "forkcast/service/router.hpp"
#include "framing.hpp"

namespace fs = std::filesystem;
namespace http = boost::beast::http;
namespace service = forkcast::service;
using nlohmann::json;

namespace {

constexpr const char* kAdminKey = "fuzz-admin-key";

struct World {
  fs::path root;
  std::unique_ptr<forkcast::db::LocalInstance> instance;
  std::unique_ptr<forkcast::env::Catalog> catalog;
  std::unique_ptr<forkcast::db::Database> database;
  std::unique_ptr<service::Application> app;
  std::string user_id, token, event_id;
};
World* g_world = nullptr;

[[noreturn]] void finding(const std::string& what) {
  std::fprintf(stderr, "fuzz_service finding: %s\n", what.c_str());
  std::abort();
}

int free_loopback_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof addr;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    finding("cannot find a free loopback port");
  }
  close(fd);
  return ntohs(addr.sin_port);
}

void shut_down() {
  if (g_world == nullptr) return;
  g_world->app.reset();
  g_world->database.reset();
  if (g_world->instance) {
    try {
      g_world->instance->stop(forkcast::db::StopMode::immediate);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "fuzz_service: stopping PostgreSQL: %s\n", e.what());
    }
    std::error_code ec;
    fs::remove_all(g_world->root, ec);
  }
}

// libFuzzer ends the process with abort() or _Exit() on a finding, so no destructor or
// atexit handler runs: a watchdog process (forked before any thread starts) stops
// PostgreSQL and deletes its directory once this process is gone, however it ends.
void watch_for_exit(forkcast::db::LocalInstance& instance, const fs::path& root) {
  int fds[2];
  if (pipe(fds) != 0) finding("pipe failed");
  const pid_t pid = fork();
  if (pid < 0) finding("fork failed");
  if (pid == 0) {
    close(fds[1]);
    setsid();  // not in the fuzzer's process group: a Ctrl-C there does not kill the watchdog first
    char byte;
    while (read(fds[0], &byte, 1) != 0) {
    }
    try {
      instance.stop(forkcast::db::StopMode::immediate);
    } catch (const std::exception&) {
    }
    std::error_code ec;
    fs::remove_all(root, ec);
    _exit(0);
  }
  close(fds[0]);  // the write end stays open (and unused) until this process ends
}

service::Response call(const service::Request& request) {
  static std::uint64_t counter = 0;
  const service::RequestContext context{"fuzz-" + std::to_string(counter++), "fuzz"};
  return service::handle(*g_world->app, request, context);
}

std::string replace_all(std::string text, std::string_view from, const std::string& to) {
  for (std::size_t at = 0; (at = text.find(from, at)) != std::string::npos; at += to.size()) text.replace(at, from.size(), to);
  return text;
}

void check(const service::Request& request, const service::Response& response) {
  const unsigned status = response.result_int();
  if (status < 200 || status > 599) finding("status " + std::to_string(status));
  if (status == 500) {
    finding("500 for " + std::string(request.method_string()) + " " + std::string(request.target()) + ": " +
            response.body());
  }
  if (request.method() == http::verb::head) {
    if (!response.body().empty()) finding("a HEAD response with a body");
    return;  // the headers GET would send, no body to check
  }
  const auto type = response.find(http::field::content_type);
  const bool is_json = type != response.end() && type->value().starts_with("application/json");
  if (is_json && !json::accept(response.body())) finding("a JSON response that is not valid JSON: " + response.body());
  if (status >= 400) {
    const json body = json::parse(response.body(), nullptr, false);
    if (!body.is_object() || !body.contains("error") || !body["error"].contains("code") ||
        !body["error"].contains("message")) {
      finding("an error response without {error: {code, message}}: " + response.body());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  g_world = new World;
  World& w = *g_world;
  std::string url;
  if (const char* given = std::getenv("FORKCAST_FUZZ_DATABASE_URL")) {
    url = given;
  } else {
    std::string pattern = "/tmp/forkcast-fuzz-service-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) finding("mkdtemp failed");
    chmod(pattern.c_str(), 0755);  // as root, PostgreSQL runs as 'forkcast' and must get through
    w.root = pattern;
    forkcast::db::InstanceOptions options;
    options.data_dir = w.root / "pgdata";
    options.port = free_loopback_port();
    options.sync_initdb = false;
    w.instance = std::make_unique<forkcast::db::LocalInstance>(options);
    w.instance->start();
    url = w.instance->url();
    watch_for_exit(*w.instance, w.root);
    std::fprintf(stderr, "fuzz_service: PostgreSQL in %s on port %d (stopped when this process ends)\n",
                 options.data_dir.c_str(), options.port);
  }
  std::atexit(shut_down);
  forkcast::db::DatabaseOptions db_options;
  db_options.url = url;
  db_options.pool_size = 2;
  db_options.checkout_timeout_ms = 500;
  w.database = std::make_unique<forkcast::db::Database>(db_options);
  w.catalog = std::make_unique<forkcast::env::Catalog>(forkcast::env::Catalog::load(FORKCAST_SOURCE_DIR "/data"));
  service::ApplicationOptions options;
  options.config.server.seed = 1;
  options.config.server.admin_api_key = kAdminKey;
  options.config.server.rate_limit_per_second = 1e9;
  options.config.server.rate_limit_burst = 1'000'000'000;
  options.config.database.checkout_timeout_ms = 500;
  const char* model = std::getenv("FORKCAST_FUZZ_MODEL");
  options.default_model = model ? model : FORKCAST_SOURCE_DIR "/models/policies/mealsim-dqn-default.safetensors";
  w.app = std::make_unique<service::Application>(options, *w.catalog, *w.database);

  // One user and one recommendation for the placeholders.
  service::Request create{http::verb::post, "/v1/users", 11};
  create.set(http::field::content_type, "application/json");
  create.body() = R"({"sex":"male","age":40,"height_cm":180,"weight_kg":80,"allergens":["peanuts"]})";
  create.prepare_payload();
  const auto created = call(create);
  if (created.result() != http::status::created) finding("cannot create the placeholder user: " + created.body());
  const json user = json::parse(created.body());
  w.user_id = user.at("id");
  w.token = user.at("token");
  service::Request recommend{http::verb::post, "/v1/recommendations", 11};
  recommend.set(http::field::authorization, "Bearer " + w.token);
  recommend.set(http::field::content_type, "application/json");
  recommend.body() = json{{"user_id", w.user_id}, {"n", 5}}.dump();
  recommend.prepare_payload();
  w.event_id = json::parse(call(recommend).body()).at("event_id");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  World& w = *g_world;
  std::string bytes(reinterpret_cast<const char*>(data), size);
  bytes = replace_all(std::move(bytes), "{U}", w.user_id);
  bytes = replace_all(std::move(bytes), "{T}", w.token);
  bytes = replace_all(std::move(bytes), "{E}", w.event_id);
  bytes = replace_all(std::move(bytes), "{A}", kAdminKey);

  std::string_view rest = bytes;
  // As a keep-alive connection: requests one after another, a fresh parser each.
  for (int requests = 0; requests < 8 && !rest.empty(); ++requests) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(w.app->config().server.body_limit_bytes);
    parser.header_limit(static_cast<std::uint32_t>(w.app->config().server.header_limit_bytes));
    parser.eager(true);
    boost::beast::error_code ec;
    std::size_t used = 0;
    while (!parser.is_done() && used < rest.size()) {
      const std::size_t n = parser.put(boost::asio::buffer(rest.data() + used, rest.size() - used), ec);
      used += n;
      if (ec == http::error::need_more) {
        ec = {};
        if (n == 0) break;  // the rest is an incomplete piece: the connection would wait
        continue;
      }
      if (ec) break;
    }
    if (!ec && !parser.is_done()) {
      parser.put_eof(ec);  // the client closed: an incomplete message is an error
      if (!ec && !parser.is_done()) return 0;
    }
    if (ec) {
      // The server answers 413/431/400 from the parser's error and closes: nothing to route.
      service::error_response(http::status::bad_request, "bad_request", "malformed HTTP request: " + ec.message());
      return 0;
    }
    rest.remove_prefix(used);
    service::Request request = parser.release();
    const auto lengths = request.count(http::field::content_length);
    if (lengths > 1 || (lengths == 1 && request.count(http::field::transfer_encoding) > 0)) return 0;  // 400 + close
    if (service::transfer_coding_problem(request)) return 0;  // 400 or 501 + close, as the server does
    service::Response response;
    try {
      response = call(request);
    } catch (const std::exception& e) {
      finding(std::string("handle() threw: ") + e.what());
    }
    check(request, response);
    if (!request.keep_alive()) break;
  }
  return 0;
}
