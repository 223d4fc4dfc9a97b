// The HTTP server on Boost.Beast/Asio, after Beast's advanced server: N I/O threads, a
// strand per connection, HTTP/1.1 keep-alive, a fresh parser per request with the body and
// header limits, read/write/idle timeouts, a cap on concurrent connections, and a graceful
// shutdown (stop accepting, let in-flight requests finish within a deadline, flush the
// decision log). Routes that wait on the database run on a worker pool so that I/O threads
// never block; the response is posted back to the connection's strand.
//
// Ownership: the Server borrows the Application, which must outlive it.
// Errors: the constructor throws std::system_error when the address cannot be bound
// (the message names host and port). Socket errors never throw: they close the connection.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "forkcast/config/config.hpp"
#include "forkcast/service/application.hpp"

namespace forkcast::service {

struct ServerStats {
  std::int64_t connections_open = 0;
  std::int64_t connections_refused = 0;  // over server.max_connections
  std::int64_t requests_in_flight = 0;
};

class Server {
 public:
  // Binds and listens (port 0 picks a free port: see port()).
  Server(Application& app, const config::ServerConfig& config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  std::uint16_t port() const noexcept;

  // Serves until SIGINT/SIGTERM (when handle_signals) or stop(); then shuts down
  // gracefully and returns. `on_listening` runs once the server accepts connections.
  void run(bool handle_signals = true, const std::function<void()>& on_listening = {});
  // Asks run() to shut down gracefully. Thread-safe, idempotent.
  void stop();

  ServerStats stats() const;

  struct Impl;  // server.cpp: the io_context, acceptor, worker pool and sessions

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace forkcast::service
