#include "headless_chromium.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace forkcast::e2e {

using nlohmann::json;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

std::optional<std::string> find_chromium() {
  if (const char* env = std::getenv("FORKCAST_CHROMIUM"); env != nullptr && *env != '\0') {
    if (::access(env, X_OK) == 0) return std::string(env);
    return std::nullopt;
  }
  for (const char* path : {"/usr/bin/chromium", "/usr/bin/chromium-browser"}) {
    if (::access(path, X_OK) == 0) return std::string(path);
  }
  return std::nullopt;
}

HeadlessChromium::HeadlessChromium(const std::string& executable) {
  char profile[] = "/tmp/forkcast-chromium-XXXXXX";
  if (::mkdtemp(profile) == nullptr) throw std::runtime_error("mkdtemp failed");
  profile_ = profile;
  log_ = profile_.string() + ".log";
  int to_child[2], from_child[2];
  if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  const std::string profile_arg = "--user-data-dir=" + profile_.string();
  std::vector<std::string> args = {executable,
                                   "--headless",
                                   "--no-sandbox",
                                   "--disable-gpu",
                                   "--disable-dev-shm-usage",
                                   "--disable-background-networking",
                                   "--disable-component-update",
                                   "--disable-sync",
                                   "--disable-extensions",
                                   "--no-first-run",
                                   "--no-default-browser-check",
                                   "--hide-scrollbars",
                                   "--mute-audio",
                                   "--remote-debugging-pipe",
                                   profile_arg,
                                   "about:blank"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    // Child: CDP reads commands on fd 3 and writes replies on fd 4. Duplicate above 10 first
    // so dup2 onto 3 and 4 never aliases, and the copies lose close-on-exec.
    const int in = ::fcntl(to_child[0], F_DUPFD, 10);
    const int out = ::fcntl(from_child[1], F_DUPFD, 10);
    ::dup2(in, 3);
    ::dup2(out, 4);
    const int log = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, 0);
    if (log >= 0) {
      ::dup2(log, 1);
      ::dup2(log, 2);
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(to_child[0]);
  ::close(from_child[1]);
  to_browser_ = to_child[1];
  from_browser_ = from_child[0];
}

HeadlessChromium::~HeadlessChromium() {
  if (pid_ > 0) {
    try {
      call("Browser.close", json::object(), "", 5);
    } catch (const std::exception&) {
      // Killed below.
    }
    const auto t0 = std::chrono::steady_clock::now();
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (seconds_since(t0) > 5) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  if (to_browser_ >= 0) ::close(to_browser_);
  if (from_browser_ >= 0) ::close(from_browser_);
  std::error_code ec;
  std::filesystem::remove_all(profile_, ec);
  std::filesystem::remove(log_, ec);
}

std::string HeadlessChromium::log_tail() const {
  std::ifstream in(log_);
  std::stringstream s;
  s << in.rdbuf();
  const std::string text = s.str();
  return text.size() > 4000 ? text.substr(text.size() - 4000) : text;
}

json HeadlessChromium::read_message(double timeout_s) {
  const auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    const auto nul = buffer_.find('\0');
    if (nul != std::string::npos) {
      const std::string message = buffer_.substr(0, nul);
      buffer_.erase(0, nul + 1);
      return json::parse(message);
    }
    const double left = timeout_s - seconds_since(t0);
    if (left <= 0) throw std::runtime_error("no message from chromium within " + std::to_string(timeout_s) + " s");
    pollfd p{from_browser_, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left * 1000) + 1);
    if (ready < 0 && errno != EINTR) throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
    if (ready <= 0) continue;
    char chunk[65536];
    const ssize_t n = ::read(from_browser_, chunk, sizeof chunk);
    if (n == 0) throw std::runtime_error("chromium closed the DevTools pipe; its log:\n" + log_tail());
    if (n < 0 && errno != EINTR && errno != EAGAIN) throw std::runtime_error(std::string("read: ") + std::strerror(errno));
    if (n > 0) buffer_.append(chunk, static_cast<std::size_t>(n));
  }
}

json HeadlessChromium::call(const std::string& method, const json& params, const std::string& session, double timeout_s) {
  const int id = next_id_++;
  json message = {{"id", id}, {"method", method}, {"params", params}};
  if (!session.empty()) message["sessionId"] = session;
  std::string bytes = message.dump();
  bytes.push_back('\0');
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::write(to_browser_, bytes.data() + sent, bytes.size() - sent);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("write to chromium: ") + std::strerror(errno));
    }
    sent += static_cast<std::size_t>(n);
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    json reply = read_message(std::max(0.001, timeout_s - seconds_since(t0)));
    if (reply.contains("id") && reply["id"] == id) {
      if (reply.contains("error")) throw std::runtime_error(method + ": " + reply["error"].dump());
      return reply.value("result", json::object());
    }
    if (reply.contains("method")) events_.push_back(std::move(reply));
  }
}

json HeadlessChromium::wait_event(const std::string& method, const std::string& session, std::size_t from, double timeout_s) {
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = from;; ++i) {
    while (i >= events_.size()) {
      json message = read_message(std::max(0.001, timeout_s - seconds_since(t0)));
      if (message.contains("method")) events_.push_back(std::move(message));
    }
    const auto& e = events_[i];
    if (e.value("method", "") == method && (session.empty() || e.value("sessionId", "") == session)) return e;
  }
}

PageResult load_page(HeadlessChromium& browser, const std::string& url, const std::string& expression, int width) {
  const std::string target = browser.call("Target.createTarget", {{"url", "about:blank"}}).at("targetId");
  const std::string s = browser.call("Target.attachToTarget", {{"targetId", target}, {"flatten", true}}).at("sessionId");
  for (const char* domain : {"Runtime.enable", "Log.enable", "Page.enable", "Network.enable"}) browser.call(domain, json::object(), s);
  browser.call("Emulation.setDeviceMetricsOverride", {{"width", width}, {"height", 900}, {"deviceScaleFactor", 1}, {"mobile", false}}, s);
  const std::size_t mark = browser.events().size();
  browser.call("Page.navigate", {{"url", url}}, s);
  browser.wait_event("Page.loadEventFired", s, mark);
  PageResult r;
  r.evaluation = browser.call("Runtime.evaluate", {{"expression", expression}, {"returnByValue", true}}, s).at("result").value("value", json());
  const auto metrics = browser.call("Page.getLayoutMetrics", json::object(), s);
  const auto& size = metrics.contains("cssContentSize") ? metrics.at("cssContentSize") : metrics.at("contentSize");
  const json clip = {{"x", 0}, {"y", 0}, {"width", width}, {"height", size.at("height")}, {"scale", 1}};
  r.png = base64_decode(
      browser.call("Page.captureScreenshot", {{"format", "png"}, {"clip", clip}, {"captureBeyondViewport", true}}, s).at("data"));
  for (std::size_t i = mark; i < browser.events().size(); ++i) {
    const auto& e = browser.events()[i];
    if (e.value("sessionId", "") != s) continue;
    const std::string method = e.value("method", "");
    const auto& p = e.at("params");
    if (method == "Runtime.exceptionThrown") {
      r.exceptions.push_back(p.at("exceptionDetails").dump());
    } else if (method == "Runtime.consoleAPICalled") {
      const std::string type = p.value("type", "");
      if (type == "error" || type == "assert") r.console_errors.push_back("console." + type + ": " + p.at("args").dump());
    } else if (method == "Log.entryAdded") {
      if (p.at("entry").value("level", "") == "error") r.console_errors.push_back("log: " + p.at("entry").dump());
    } else if (method == "Network.requestWillBeSent") {
      r.requests.push_back(p.at("request").value("url", ""));
    }
  }
  browser.call("Target.closeTarget", {{"targetId", target}});
  return r;
}

std::string base64_decode(const std::string& text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  for (const char c : text) {
    const int v = value(c);
    if (v < 0) continue;  // padding and line breaks
    buffer = (buffer << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xFF));
    }
  }
  return out;
}

}  // namespace forkcast::e2e
