#include "service_test_support.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "forkcast/policy/checkpoint.hpp"
#include "forkcast/training/dqn_training.hpp"
#include "pg_test_support.hpp"
#include "run_command.hpp"

extern char** environ;

namespace forkcast::service::testing {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path serving_model() {
  static const fs::path model = [] {
    const fs::path bundled = fs::path(FORKCAST_SOURCE_DIR) / "models" / "policies" / "mealsim-dqn-default.safetensors";
    if (fs::exists(bundled)) return bundled;
    auto o = training::default_dqn_options("mealsim");
    o.total_steps = 3'000;
    o.learning_starts = 500;
    o.eval_every = 0;
    o.eval_episodes = 0;
    o.show_progress = false;
    o.data_dir = fs::path(FORKCAST_SOURCE_DIR) / "data";
    o.run_dir = db::testing::make_temp_dir("forkcast-service-model");
    return training::train_dqn(o).model;
  }();
  return model;
}

const env::Catalog& catalog() {
  static const env::Catalog c = env::Catalog::load(fs::path(FORKCAST_SOURCE_DIR) / "data");
  return c;
}

config::Config test_config() {
  config::Config c;
  c.server.seed = 20261201;
  c.server.admin_api_key = kAdminKey;
  c.server.rate_limit_per_second = 1e6;
  c.server.rate_limit_burst = 1'000'000;
  c.policy.catalog_dir = (fs::path(FORKCAST_SOURCE_DIR) / "data").string();
  return c;
}

std::string Reply::header(const std::string& name) const {
  const auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

std::string Reply::error_code() const {
  if (!body.is_object() || !body.contains("error")) return {};
  return body["error"].value("code", "");
}

std::string Reply::error_field() const {
  if (!body.is_object() || !body.contains("error")) return {};
  return body["error"].value("field", "");
}

Reply call(Application& app, http::verb method, const std::string& target, const std::string& body,
           const std::string& token, const std::string& peer, const std::string& content_type) {
  Request request{method, target, 11};
  request.set(http::field::host, "localhost");
  if (!token.empty()) request.set(http::field::authorization, "Bearer " + token);
  if (!body.empty()) {
    if (!content_type.empty()) request.set(http::field::content_type, content_type);
    request.body() = body;
  }
  request.prepare_payload();
  static std::atomic<int> counter{0};
  RequestContext context{"test-" + std::to_string(counter++), peer};
  const Response response = handle(app, request, context);
  Reply reply;
  reply.status = response.result_int();
  reply.text = response.body();
  for (const auto& field : response) reply.headers[std::string(field.name_string())] = std::string(field.value());
  reply.body = json::parse(reply.text, nullptr, false);
  if (reply.body.is_discarded()) reply.body = nullptr;
  return reply;
}

Reply call_json(Application& app, http::verb method, const std::string& target, const json& body,
                const std::string& token) {
  return call(app, method, target, body.dump(), token);
}

std::string at_utc(int days_ahead, int hour, int minute) {
  using namespace std::chrono;
  const auto day = floor<days>(system_clock::now()) + days{days_ahead};
  const year_month_day ymd{day};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:00Z", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()), hour, minute);
  return buf;
}

json profile_body() {
  return {{"sex", "female"}, {"age", 34}, {"height_cm", 168}, {"weight_kg", 64}, {"activity", "moderate"},
          {"goal", "maintain"}, {"diet", "none"}, {"allergens", json::array()}, {"utc_offset_min", 0}};
}

// ---- processes ---------------------------------------------------------------------------

namespace {

pid_t spawn_with_env(const std::vector<std::string>& args, const std::vector<std::string>& extra_env,
                     const fs::path& log_file, bool append_log = false) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  for (const auto& e : extra_env) env_strings.push_back(e);
  std::vector<char*> envp, argv;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args_copy = args;
  for (auto& a : args_copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log_file.c_str(), O_WRONLY | O_CREAT | (append_log ? O_APPEND : O_TRUNC), 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start " + args[0] + ": " + std::strerror(rc));
  return pid;
}

}  // namespace

std::string register_model_file(db::Database& database, const fs::path& file, const std::string& version) {
  db::NewModel model;
  model.version = version;
  model.kind = "dqn";
  model.sha256 = policy::sha256_file_hex(file);
  model.path = file.string();
  database.models().register_model(model);
  return version;
}

CommandResult run_forkcast(const std::string& args, const std::string& env) {
  const auto r = forkcast::testing::run_command(env + " " FORKCAST_EXE " " + args);
  return {r.exit_code, r.output};
}

namespace {
// The throwaway cluster of each server process: a copy of the db tests' template cluster
// (initdb costs seconds on busy cores), stopped again so that `forkcast serve` starts it
// itself as a user's first run would.
std::map<const ServeProcess*, std::unique_ptr<db::testing::TestInstance>>& instances() {
  static std::map<const ServeProcess*, std::unique_ptr<db::testing::TestInstance>> map;
  return map;
}
}  // namespace

ServeProcess::ServeProcess(std::vector<std::string> extra_env) {
  auto instance = std::make_unique<db::testing::TestInstance>();
  instance->instance().stop(db::StopMode::fast);
  root_ = instance->root();
  database_port_ = instance->port();
  instances()[this] = std::move(instance);
  port_ = db::testing::free_loopback_port();
  const fs::path models = root_ / "models";
  fs::create_directories(models);
  fs::copy_file(serving_model(), models / "mealsim-dqn-default.safetensors");
  std::vector<std::string> env = {"FORKCAST_DATABASE__DATA_DIR=" + data_dir().string(),
                                  "FORKCAST_DATABASE__PORT=" + std::to_string(database_port_),
                                  "FORKCAST_DATABASE__URL=",
                                  "FORKCAST_POLICY__MODEL_DIR=" + models.string(),
                                  std::string("FORKCAST_SERVER__ADMIN_API_KEY=") + kAdminKey,
                                  "FORKCAST_SERVER__SEED=4242",
                                  "FORKCAST_SERVER__WORKER_THREADS=8",
                                  "FORKCAST_SERVER__DECISION_JOURNAL_DIR=" + (root_ / "journal").string(),
                                  "FORKCAST_ADVICE__ENABLED=false"};
  // A setting in extra_env replaces the default of the same name (getenv takes the first).
  for (auto& e : extra_env) {
    const std::string name = e.substr(0, e.find('=') + 1);
    std::erase_if(env, [&](const std::string& d) { return d.rfind(name, 0) == 0; });
    env.push_back(std::move(e));
  }
  env_ = std::move(env);
  start(false);
}

void ServeProcess::kill_hard() {
  if (exited_) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  exited_ = true;
}

void ServeProcess::restart() {
  if (!exited_) throw std::logic_error("ServeProcess::restart: the server is still running");
  exited_ = false;
  start(true);
}

void ServeProcess::start(bool append_log) {
  pid_ = spawn_with_env({FORKCAST_EXE, "serve", "--port", std::to_string(port_)}, env_, root_ / "serve.log", append_log);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!running()) throw std::runtime_error("forkcast serve exited during startup:\n" + log());
    const auto r = http_request(port_, "GET", "/readyz", {}, {}, std::chrono::seconds(2));
    if (r && r->status == 200) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  terminate(std::chrono::seconds(5));
  throw std::runtime_error("forkcast serve did not become ready within 120 s:\n" + log());
}

ServeProcess::~ServeProcess() {
  if (!exited_) terminate(std::chrono::seconds(10));
  instances().erase(this);  // stops (if still running) and deletes the cluster
}

std::string ServeProcess::database_url() const { return instances().at(this)->url(); }

std::string ServeProcess::db_env() const {
  return "FORKCAST_DATABASE__DATA_DIR=" + data_dir().string() + " FORKCAST_DATABASE__PORT=" +
         std::to_string(database_port_) + " FORKCAST_DATABASE__URL=";
}

long ServeProcess::rss_kib() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

bool ServeProcess::running() {
  if (exited_) return false;
  int status = 0;
  const pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) exited_ = true;
  return !exited_;
}

int ServeProcess::terminate(std::chrono::milliseconds deadline) {
  if (exited_) return -1;
  kill(pid_, SIGTERM);
  const auto until = std::chrono::steady_clock::now() + deadline;
  int status = 0;
  while (std::chrono::steady_clock::now() < until) {
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exited_ = true;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
  exited_ = true;
  return -1;
}

std::string ServeProcess::log() const {
  std::ifstream in(root_ / "serve.log");
  std::stringstream s;
  s << in.rdbuf();
  std::string text = s.str();
  if (text.size() > 8000) text = "..." + text.substr(text.size() - 8000);
  return text;
}

// ---- raw HTTP ----------------------------------------------------------------------------

RawConnection::RawConnection(int port, const std::string& source_address) {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return;
  if (!source_address.empty()) {
    sockaddr_in source{};
    source.sin_family = AF_INET;
    if (inet_pton(AF_INET, source_address.c_str(), &source.sin_addr) != 1 ||
        bind(fd_, reinterpret_cast<sockaddr*>(&source), sizeof source) != 0) {
      close(fd_);
      fd_ = -1;
      return;
    }
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd_);
    fd_ = -1;
    return;
  }
  const int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

RawConnection::~RawConnection() {
  if (fd_ >= 0) close(fd_);
}

bool RawConnection::send(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool RawConnection::fill(std::chrono::steady_clock::time_point deadline) {
  if (eof_ || fd_ < 0) return false;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return false;
  pollfd p{fd_, POLLIN, 0};
  const int r = poll(&p, 1, static_cast<int>(left.count()));
  if (r <= 0) return false;
  char buf[65536];
  const ssize_t n = recv(fd_, buf, sizeof buf, 0);
  if (n <= 0) {
    eof_ = true;
    return false;
  }
  buffer_.append(buf, static_cast<std::size_t>(n));
  return true;
}

std::optional<RawConnection::Response> RawConnection::read_response(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::size_t head_end = std::string::npos;
  while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    if (!fill(deadline)) return std::nullopt;
  }
  Response response;
  std::istringstream head(buffer_.substr(0, head_end));
  std::string line;
  std::getline(head, line);
  if (line.size() < 12 || line.rfind("HTTP/1.", 0) != 0) return std::nullopt;
  response.status = static_cast<unsigned>(std::stoi(line.substr(9, 3)));
  while (std::getline(head, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    response.headers[name] = value;
  }
  std::size_t length = 0;
  if (const auto it = response.headers.find("content-length"); it != response.headers.end()) {
    length = std::stoul(it->second);
  }
  const std::size_t body_start = head_end + 4;
  while (buffer_.size() < body_start + length) {
    if (!fill(deadline)) return std::nullopt;
  }
  response.body = buffer_.substr(body_start, length);
  buffer_.erase(0, body_start + length);
  return response;
}

bool RawConnection::closed_by_peer(std::chrono::milliseconds timeout, std::string* received) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!eof_) {
    if (!fill(deadline)) {
      if (eof_) break;
      return false;  // timeout with the connection still open
    }
  }
  if (received) *received = buffer_;
  return true;
}

std::optional<RawConnection::Response> http_request(int port, const std::string& method, const std::string& target,
                                                    const std::string& body, const std::string& token,
                                                    std::chrono::milliseconds timeout) {
  RawConnection c(port);
  if (!c.connected()) return std::nullopt;
  std::string request = method + " " + target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
  if (!token.empty()) request += "Authorization: Bearer " + token + "\r\n";
  if (!body.empty() || method == "POST" || method == "PATCH") {
    request += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  request += "\r\n" + body;
  if (!c.send(request)) return std::nullopt;
  return c.read_response(timeout);
}

std::optional<RawConnection::Response> wait_for_status(int port, const std::string& target, unsigned status,
                                                       std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = http_request(port, "GET", target, {}, {}, std::chrono::seconds(3));
    if (r && r->status == status) return r;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return std::nullopt;
}

}  // namespace forkcast::service::testing
