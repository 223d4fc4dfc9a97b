// A small blocking HTTP/1.1 client over one keep-alive TCP connection, for the traffic
// simulator's users (simulate.hpp): JSON requests to a forkcast service on this machine.
// It speaks only what the service answers — responses framed by Content-Length — and
// reconnects once when the server closed an idle connection.
//
// Ownership: owns its socket. Not thread-safe: one client per simulated user thread.
// Errors: HttpError (the host, the request and what failed: connect, send, a timeout, a
// response that is not HTTP/1.1 with Content-Length).
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>
#include <string_view>

namespace forkcast::traffic {

class HttpError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct HttpResponse {
  unsigned status = 0;
  std::string body;
  std::string retry_after;  // the Retry-After header, if any
};

class HttpClient {
 public:
  // host: an IPv4 address ("127.0.0.1"); nothing is resolved by name.
  HttpClient(std::string host, int port, std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // method "GET" or "POST"; body sent as application/json when not empty; token as
  // "Authorization: Bearer <token>" when not empty.
  HttpResponse request(std::string_view method, std::string_view target, std::string_view body = {},
                       std::string_view token = {});

 private:
  void connect();
  void close() noexcept;
  bool try_request(const std::string& bytes, HttpResponse& out, bool& sent_anything);

  std::string host_;
  int port_;
  std::chrono::milliseconds timeout_;
  int fd_ = -1;
  std::string buffer_;
};

}  // namespace forkcast::traffic
