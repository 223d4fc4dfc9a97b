#include "forkcast/service/server.hpp"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <algorithm>
#include <cctype>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <thread>
#include <vector>

#include "forkcast/service/router.hpp"
#include "framing.hpp"
#include "metrics.hpp"

namespace forkcast::service {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

namespace {
class Session;
}  // namespace

struct Server::Impl {
  Impl(Application& app_, const config::ServerConfig& config_)
      : app(app_),
        config(config_),
        ioc(config_.io_threads),
        acceptor(net::make_strand(ioc)),
        workers(static_cast<std::size_t>(config_.worker_threads)),
        signals(ioc) {}

  void accept();
  void begin_shutdown();
  void wait_for_in_flight(std::chrono::steady_clock::time_point deadline);
  std::string next_request_id() {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%08x-%06llx", instance_tag,
                  static_cast<unsigned long long>(request_counter.fetch_add(1, std::memory_order_relaxed)));
    return buf;
  }

  // Connections held per client address (the per-address cap): taken when a session is
  // made, given back when it is destroyed.
  bool take_address_slot(const std::string& address) {
    std::lock_guard lock(address_mutex);
    int& held = connections_per_address[address];
    if (held >= config.max_connections_per_address) return false;
    ++held;
    return true;
  }
  void give_address_slot(const std::string& address) {
    std::lock_guard lock(address_mutex);
    const auto it = connections_per_address.find(address);
    if (it != connections_per_address.end() && --it->second <= 0) connections_per_address.erase(it);
  }

  // Connections that have not sent a byte yet, oldest first. When the server is full, a new
  // connection takes the place of the oldest of them: a socket that says nothing has no
  // claim on a slot (an idle flood cannot lock clients or probes out).
  using SilentList = std::list<std::weak_ptr<Session>>;
  SilentList::iterator add_silent(std::weak_ptr<Session> session) {
    std::lock_guard lock(silent_mutex);
    return silent.insert(silent.end(), std::move(session));
  }
  void remove_silent(SilentList::iterator it) {
    std::lock_guard lock(silent_mutex);
    silent.erase(it);
  }
  std::shared_ptr<Session> oldest_silent();  // removed from the list; null when none

  Application& app;
  config::ServerConfig config;
  std::mutex silent_mutex;
  SilentList silent;
  // Before the io_context: sessions destroyed with it still update these counters.
  std::atomic<std::int64_t> open{0}, refused{0}, in_flight{0};
  std::mutex address_mutex;
  std::unordered_map<std::string, int> connections_per_address;
  net::io_context ioc;
  tcp::acceptor acceptor;
  net::thread_pool workers;
  net::signal_set signals;
  std::optional<net::steady_timer> shutdown_timer;
  std::function<void()> shutdown_check;
  std::atomic<bool> stopping{false};
  std::atomic<std::uint64_t> request_counter{1};
  unsigned instance_tag = 0;
  std::chrono::steady_clock::time_point shutdown_deadline{};
};

namespace {

// One connection: reads requests one at a time with a fresh parser each, hands them to the
// router (inline or on the worker pool), writes the response, and loops while keep-alive.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, Server::Impl& server) : stream_(std::move(socket)), server_(server) {
    beast::error_code ec;
    const auto endpoint = stream_.socket().remote_endpoint(ec);
    peer_ = ec ? "unknown" : endpoint.address().to_string();
    holds_address_slot_ = server_.take_address_slot(peer_);
    server_.app.metrics().connections().Set(static_cast<double>(++server_.open));
  }
  ~Session() {
    forget_silence();
    if (holds_address_slot_) server_.give_address_slot(peer_);
    server_.app.metrics().connections().Set(static_cast<double>(--server_.open));
  }

  // False when the peer's address already holds max_connections_per_address connections.
  bool within_address_cap() const noexcept { return holds_address_slot_; }

  // `probes_only`: over the connection cap, within the probes' reserve: one request, answered
  // only for the operations routes (probes, metrics), then close.
  void start(bool probes_only = false) {
    probes_only_ = probes_only;
    {
      std::lock_guard lock(silence_mutex_);
      silent_it_ = server_.add_silent(weak_from_this());
    }
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->wait_for_request(); });
  }

  // Closes a connection that never sent a byte, to make room for a new one (server full).
  void evict() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      if (self->requests_ == 0 && self->buffer_.size() == 0) self->close();
    });
  }
  // Called by the server when it took this session off its silent list (oldest_silent).
  void forgotten_by_server() {
    std::lock_guard lock(silence_mutex_);
    silent_it_.reset();
  }

  // Over a connection cap: one 503, then close.
  void refuse(std::string_view code, std::string_view message) {
    net::dispatch(stream_.get_executor(), [self = shared_from_this(), code = std::string(code),
                                           message = std::string(message)] {
      self->keep_alive_ = false;
      self->send(error_response(http::status::service_unavailable, code, message), false);
    });
  }

 private:
  // Between requests the idle timeout applies; once the first byte of a request is here,
  // the whole request must arrive within the read timeout (a slowloris client is cut off).
  // A new connection has header_timeout_ms for its first byte (from accept: idle sockets
  // that never send one would otherwise hold a connection slot for the idle timeout).
  void wait_for_request() {
    if (server_.stopping) return close();
    if (buffer_.size() > 0) return read_request();
    const int wait_ms = probes_only_ ? server_.config.probe_timeout_ms
                        : requests_ == 0 ? server_.config.header_timeout_ms
                                         : server_.config.idle_timeout_ms;
    stream_.expires_after(std::chrono::milliseconds(wait_ms));
    stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      if (ec) return self->close();
      self->forget_silence();  // it spoke: no longer evictable
      self->buffer_.commit(n);
      self->read_request();
    });
  }

  void read_request() {
    parser_.emplace();
    parser_->body_limit(static_cast<std::uint64_t>(server_.config.body_limit_bytes));
    parser_->header_limit(static_cast<std::uint32_t>(server_.config.header_limit_bytes));
    // A connection in the probes' reserve keeps its deadline from accept: a slow sender
    // there would hold a probe's slot.
    if (!probes_only_) stream_.expires_after(std::chrono::milliseconds(server_.config.read_timeout_ms));
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::operation_aborted) {
      return close();
    }
    if (ec == http::error::body_limit) {
      return reply_and_close(http::status::payload_too_large, "body_too_large",
                             "request body is larger than " + std::to_string(server_.config.body_limit_bytes) + " bytes");
    }
    if (ec == http::error::header_limit) {
      return reply_and_close(http::status::request_header_fields_too_large, "header_too_large",
                             "request header is larger than " + std::to_string(server_.config.header_limit_bytes) + " bytes");
    }
    if (ec.category() == http::make_error_code(http::error::end_of_stream).category()) {
      return reply_and_close(http::status::bad_request, "bad_request", "malformed HTTP request: " + ec.message());
    }
    if (ec) return close();
    request_ = parser_->release();
    // Request-smuggling shapes the parser lets through are refused outright: two
    // Content-Length headers, or Content-Length together with Transfer-Encoding.
    const auto lengths = request_.count(http::field::content_length);
    if (lengths > 1 || (lengths == 1 && request_.count(http::field::transfer_encoding) > 0)) {
      return reply_and_close(http::status::bad_request, "bad_request",
                             "ambiguous message length (Content-Length with Transfer-Encoding, or twice)");
    }
    // Transfer-Encoding (RFC 9112 6.3): the final coding must be chunked, or the body's
    // length is unknowable and what follows could be taken for another request; codings
    // other than chunked (gzip, deflate, ...) are not implemented. Either way the connection
    // is closed, so no byte after these headers is ever read as a request.
    if (const auto coding = transfer_coding_problem(request_)) {
      return *coding == TransferCodingProblem::final_not_chunked
                 ? reply_and_close(http::status::bad_request, "bad_request",
                                   "Transfer-Encoding: the final coding must be chunked (RFC 9112 6.3)")
                 : reply_and_close(http::status::not_implemented, "not_implemented",
                                   "Transfer-Encoding: only chunked is supported");
    }
    ++requests_;
    keep_alive_ = request_.keep_alive() && !server_.stopping && !probes_only_;
    if (probes_only_ && !is_operations_route(request_.method(), request_.target())) {
      return reply_and_close(http::status::service_unavailable, "too_many_connections",
                             "the server is at its connection limit; retry later");
    }
    ++server_.in_flight;
    started_ = std::chrono::steady_clock::now();
    context_.peer = peer_;
    context_.request_id = server_.next_request_id();
    if (const auto id = request_.find("X-Request-Id"); id != request_.end()) {
      const std::string_view v = id->value();
      if (!v.empty() && v.size() <= 64 && std::all_of(v.begin(), v.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
          })) {
        context_.request_id = std::string(v);
      }
    }
    rerun_ = Rerun{};
    if (runs_on(request_.method(), request_.target()) == RunsOn::io) {
      Response response = handle(server_.app, request_, context_, nullptr, &rerun_);
      if (!rerun_.requested) return send(std::move(response), true);
    }
    run_on_worker();
  }

  void run_on_worker() {
    net::post(server_.workers, [self = shared_from_this()] {
      StreamedResponse streamed;
      // A request the I/O thread began continues where it stopped; a worker route starts here.
      Response response = self->rerun_.requested
                              ? resume(self->server_.app, self->request_, self->context_, self->rerun_, &streamed)
                              : handle(self->server_.app, self->request_, self->context_, &streamed);
      if (streamed.produce && response.result() == http::status::ok) {
        // The connection is idle while its request is on the worker (the next read starts
        // after the response), so this thread may write to it directly.
        self->stream_body(response, streamed);
        return;
      }
      net::dispatch(self->stream_.get_executor(),
                    [self, response = std::move(response)]() mutable { self->send(std::move(response), true); });
    });
  }

  void stream_body(Response& head, StreamedResponse& streamed) {
    auto& socket = stream_.socket();
    timeval timeout{server_.config.write_timeout_ms / 1000, (server_.config.write_timeout_ms % 1000) * 1000};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    http::response<http::empty_body> header{head.result(), head.version()};
    for (const auto& field : head) header.set(field.name_string(), field.value());
    header.keep_alive(false);
    header.set("X-Request-Id", context_.request_id);
    http::response_serializer<http::empty_body> serializer{header};
    beast::error_code ec;
    http::write_header(socket, serializer, ec);
    bool open = !ec;
    try {
      streamed.produce([&](std::string_view chunk) {
        if (!open) return false;
        net::write(socket, net::buffer(chunk.data(), chunk.size()), ec);
        open = !ec;
        return open;
      });
    } catch (const std::exception& e) {
      // The status line is sent; all that is left is to end the stream. An exception must
      // not leave this worker thread (the pool would end the process).
      spdlog::error("request {}: streamed response failed: {}", context_.request_id, e.what());
    }
    log_access(static_cast<unsigned>(head.result_int()));
    --server_.in_flight;
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->close(); });
  }

  void reply_and_close(http::status status, std::string_view code, const std::string& message) {
    keep_alive_ = false;
    ++server_.in_flight;
    started_ = std::chrono::steady_clock::now();
    context_.request_id = server_.next_request_id();
    Response response = error_response(status, code, message);
    response.set("X-Request-Id", context_.request_id);
    server_.app.metrics().record_request(-1, static_cast<unsigned>(status), 0.0);
    send(std::move(response), true);
  }

  void send(Response&& response, bool counted) {
    response_ = std::move(response);
    response_.keep_alive(keep_alive_);
    if (counted) log_access(response_.result_int());
    stream_.expires_after(std::chrono::milliseconds(server_.config.write_timeout_ms));
    http::async_write(stream_, response_, [self = shared_from_this(), counted](beast::error_code ec, std::size_t) {
      if (counted) --self->server_.in_flight;
      if (ec || !self->keep_alive_) return self->close();
      self->wait_for_request();
    });
  }

  void log_access(unsigned status) {
    if (!spdlog::should_log(spdlog::level::info)) return;  // --log-level warn turns it off (benchmarks)
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_).count();
    spdlog::info("access {} {} {} {} {} {:.3f}ms", context_.request_id, peer_, std::string(request_.method_string()),
                  std::string(request_.target().substr(0, 256)), status, ms);
  }

  void forget_silence() {
    std::lock_guard lock(silence_mutex_);
    if (silent_it_) server_.remove_silent(*silent_it_);
    silent_it_.reset();
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_{static_cast<std::size_t>(64 * 1024 * 1024)};
  std::optional<http::request_parser<http::string_body>> parser_;
  Request request_;
  Response response_;
  RequestContext context_;
  Rerun rerun_;  // the rest of a request the I/O thread began, for the worker pool
  bool holds_address_slot_ = false;
  std::mutex silence_mutex_;  // guards silent_it_ (the server may take it off the list)
  std::optional<Server::Impl::SilentList::iterator> silent_it_;  // on the server's silent list
  bool probes_only_ = false;
  std::int64_t requests_ = 0;  // requests read on this connection
  Server::Impl& server_;
  std::string peer_;
  bool keep_alive_ = true;
  std::chrono::steady_clock::time_point started_{};
};

}  // namespace

std::shared_ptr<Session> Server::Impl::oldest_silent() {
  std::lock_guard lock(silent_mutex);
  while (!silent.empty()) {
    auto session = silent.front().lock();
    silent.pop_front();
    if (session) {
      session->forgotten_by_server();
      return session;
    }
  }
  return nullptr;
}

void Server::Impl::accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
      spdlog::warn("accept: {}", ec.message());
      return accept();
    }
    auto session = std::make_shared<Session>(std::move(socket), *this);
    const std::int64_t now_open = open.load();
    if (!session->within_address_cap()) {
      ++refused;
      session->refuse("too_many_connections", "this client address is at its connection limit; retry later");
    } else if (now_open > config.max_connections + config.probe_connections) {
      ++refused;
      session->refuse("too_many_connections", "the server is at its connection limit; retry later");
    } else if (now_open > config.max_connections) {
      // Full: the oldest connection that has not said anything makes room; failing that, the
      // last probe_connections slots are kept for probes, so that a flooded service still
      // says whether it is alive and ready.
      if (const auto silent_one = oldest_silent()) {
        silent_one->evict();
        session->start();
      } else {
        session->start(true);
      }
    } else {
      session->start();
    }
    accept();
  });
}

void Server::Impl::begin_shutdown() {
  if (stopping.exchange(true)) return;
  spdlog::info("shutting down: no new connections; {} request(s) in flight get up to {} ms", in_flight.load(),
               config.shutdown_deadline_ms);
  beast::error_code ec;
  acceptor.close(ec);
  signals.cancel(ec);
  shutdown_deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(config.shutdown_deadline_ms);
  shutdown_timer.emplace(ioc);
  // Poll for the in-flight requests to finish, then stop the I/O threads (idle keep-alive
  // connections are simply closed).
  shutdown_check = [this] {
    if (in_flight.load() <= 0 || std::chrono::steady_clock::now() >= shutdown_deadline) {
      if (in_flight.load() > 0) spdlog::warn("shutdown deadline passed with {} request(s) in flight", in_flight.load());
      ioc.stop();
      return;
    }
    shutdown_timer->expires_after(std::chrono::milliseconds(10));
    shutdown_timer->async_wait([this](beast::error_code) { shutdown_check(); });
  };
  shutdown_check();
}

Server::Server(Application& app, const config::ServerConfig& config) : impl_(std::make_unique<Impl>(app, config)) {
  Impl& s = *impl_;
  s.instance_tag = static_cast<unsigned>(app.random64());
  const auto address = net::ip::make_address(config.host);
  const tcp::endpoint endpoint{address, static_cast<unsigned short>(config.port)};
  beast::error_code ec;
  s.acceptor.open(endpoint.protocol(), ec);
  if (!ec) s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    throw std::system_error(ec, "cannot listen on " + config.host + ":" + std::to_string(config.port) +
                                    " (server.host, server.port)");
  }
}

Server::~Server() {
  if (impl_) {
    impl_->workers.join();
  }
}

std::uint16_t Server::port() const noexcept {
  beast::error_code ec;
  const auto endpoint = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : endpoint.port();
}

void Server::run(bool handle_signals, const std::function<void()>& on_listening) {
  Impl& s = *impl_;
  if (handle_signals) {
    s.signals.add(SIGINT);
    s.signals.add(SIGTERM);
    s.signals.async_wait([&s](beast::error_code ec, int signal) {
      if (ec) return;
      spdlog::info("received signal {}", signal);
      s.begin_shutdown();
    });
  }
  s.accept();
  if (on_listening) on_listening();
  std::vector<std::thread> threads;
  for (int i = 1; i < s.config.io_threads; ++i) threads.emplace_back([&s] { s.ioc.run(); });
  s.ioc.run();
  for (auto& t : threads) t.join();
  s.workers.join();
  // Everything answered; now the decision log gets what is left of the deadline.
  s.app.flush(std::max(s.shutdown_deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(500)));
  spdlog::info("server stopped");
}

void Server::stop() {
  net::post(impl_->ioc, [impl = impl_.get()] { impl->begin_shutdown(); });
}

ServerStats Server::stats() const {
  return {impl_->open.load(), impl_->refused.load(), impl_->in_flight.load()};
}

}  // namespace forkcast::service
