// A minimal Chrome DevTools Protocol client for tests: starts Debian's headless Chromium with
// --remote-debugging-pipe (CDP messages as NUL-terminated JSON on file descriptors 3 and 4),
// so no WebSocket, no Node and no downloaded browser are needed.
#pragma once

#include <nlohmann/json.hpp>

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace forkcast::e2e {

// $FORKCAST_CHROMIUM if set, else /usr/bin/chromium or /usr/bin/chromium-browser when
// executable; nullopt when none is found (the browser tests then skip).
std::optional<std::string> find_chromium();

class HeadlessChromium {
 public:
  // Starts the browser with a fresh profile directory. Throws std::runtime_error.
  explicit HeadlessChromium(const std::string& executable);
  ~HeadlessChromium();
  HeadlessChromium(const HeadlessChromium&) = delete;
  HeadlessChromium& operator=(const HeadlessChromium&) = delete;

  // Sends a command and returns its "result"; events that arrive meanwhile are kept in
  // events(). Throws std::runtime_error on a protocol error or after timeout_s.
  nlohmann::json call(const std::string& method, const nlohmann::json& params = nlohmann::json::object(),
                      const std::string& session = "", double timeout_s = 30);
  // Waits for an event of `method` for `session` received after event index `from`.
  nlohmann::json wait_event(const std::string& method, const std::string& session, std::size_t from, double timeout_s = 30);
  const std::vector<nlohmann::json>& events() const { return events_; }
  // The browser's own stderr so far (for failure messages).
  std::string log_tail() const;

 private:
  nlohmann::json read_message(double timeout_s);

  pid_t pid_ = -1;
  int to_browser_ = -1, from_browser_ = -1;
  int next_id_ = 1;
  std::string buffer_;
  std::vector<nlohmann::json> events_;
  std::filesystem::path profile_, log_;
};

// What one page load showed.
struct PageResult {
  std::vector<std::string> console_errors;  // console.error/assert calls and error log entries
  std::vector<std::string> exceptions;      // uncaught exceptions
  std::vector<std::string> requests;        // every URL the page requested
  nlohmann::json evaluation;                // value of the check expression
  std::string png;                          // full-page screenshot bytes
};

// Opens `url` in a new tab with a `width` px wide viewport, waits for the load event,
// evaluates `expression` (returned by value) and takes a full-page PNG screenshot.
PageResult load_page(HeadlessChromium& browser, const std::string& url, const std::string& expression, int width);

std::string base64_decode(const std::string& text);

}  // namespace forkcast::e2e
