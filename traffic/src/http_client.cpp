#include "forkcast/traffic/http_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace forkcast::traffic {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

HttpClient::HttpClient(std::string host, int port, std::chrono::milliseconds timeout)
    : host_(std::move(host)), port_(port), timeout_(timeout) {
  if (port_ < 1 || port_ > 65535) throw std::invalid_argument("port: " + std::to_string(port_) + " is outside 1..65535");
  in_addr probe{};
  if (inet_pton(AF_INET, host_.c_str(), &probe) != 1) {
    throw std::invalid_argument("host: '" + host_ + "' is not an IPv4 address");
  }
}

HttpClient::~HttpClient() { close(); }

void HttpClient::close() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  buffer_.clear();
}

void HttpClient::connect() {
  close();
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw HttpError(std::string("socket: ") + std::strerror(errno));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port_));
  inet_pton(AF_INET, host_.c_str(), &address.sin_addr);
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    const int e = errno;
    close();
    throw HttpError("connect to " + host_ + ":" + std::to_string(port_) + ": " + std::strerror(e));
  }
  const int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

bool HttpClient::try_request(const std::string& bytes, HttpResponse& out, bool& received_anything) {
  received_anything = false;
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  const auto fill = [&]() -> bool {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw HttpError("no response from " + host_ + ":" + std::to_string(port_) + " within " +
                                           std::to_string(timeout_.count()) + " ms");
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) return true;
    if (ready == 0) return true;  // the deadline check above ends it
    char chunk[16384];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) return true;
    if (n <= 0) return false;
    received_anything = true;
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
  };
  std::size_t head_end;
  while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    if (!fill()) {
      if (received_anything) throw HttpError("the server closed the connection inside a response");
      return false;
    }
  }
  const std::string_view head(buffer_.data(), head_end);
  if (!head.starts_with("HTTP/1.1 ") || head.size() < 12) throw HttpError("not an HTTP/1.1 response");
  out.status = static_cast<unsigned>(std::stoi(std::string(head.substr(9, 3))));
  std::size_t content_length = 0;
  bool has_length = false, close_after = false;
  std::size_t line = head.find("\r\n");
  while (line != std::string_view::npos && line < head.size()) {
    const std::size_t next = head.find("\r\n", line + 2);
    const std::string_view field = head.substr(line + 2, (next == std::string_view::npos ? head.size() : next) - line - 2);
    const std::size_t colon = field.find(':');
    if (colon != std::string_view::npos) {
      const std::string name = lower(field.substr(0, colon));
      std::string_view value = field.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      if (name == "content-length") {
        content_length = static_cast<std::size_t>(std::stoull(std::string(value)));
        has_length = true;
      } else if (name == "connection") {
        close_after = lower(value) == "close";
      } else if (name == "retry-after") {
        out.retry_after = std::string(value);
      }
    }
    line = next;
  }
  if (!has_length) throw HttpError("a response without Content-Length (status " + std::to_string(out.status) + ")");
  const std::size_t total = head_end + 4 + content_length;
  while (buffer_.size() < total) {
    if (!fill()) throw HttpError("the server closed the connection inside a response body");
  }
  out.body.assign(buffer_, head_end + 4, content_length);
  buffer_.erase(0, total);
  if (close_after) close();
  return true;
}

HttpResponse HttpClient::request(std::string_view method, std::string_view target, std::string_view body,
                                 std::string_view token) {
  std::string bytes;
  bytes.reserve(256 + body.size());
  bytes.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: ").append(host_).append("\r\n");
  if (!token.empty()) bytes.append("Authorization: Bearer ").append(token).append("\r\n");
  if (!body.empty()) {
    bytes.append("Content-Type: application/json\r\nContent-Length: ").append(std::to_string(body.size())).append("\r\n");
  }
  bytes.append("\r\n").append(body);
  HttpResponse out;
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool reused = fd_ >= 0;
    if (!reused) connect();
    bool received_anything = false;
    if (try_request(bytes, out, received_anything)) return out;
    close();
    // A kept-alive connection the server had closed: try once more on a new one. A new
    // connection closed without a byte is the server's refusal.
    if (!reused) break;
  }
  throw HttpError(std::string(method) + " " + std::string(target) + ": the server closed the connection without a response");
}

}  // namespace forkcast::traffic
