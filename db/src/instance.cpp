#include "forkcast/db/instance.hpp"

#include <arpa/inet.h>
#include <libpq-fe.h>

#include <memory>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <pqxx/pqxx>
#include <sstream>
#include <thread>

#include "forkcast/db/errors.hpp"
#include "process.hpp"

namespace forkcast::db {
namespace fs = std::filesystem;
namespace {

constexpr const char* kConfFile = "forkcast.conf";
constexpr const char* kPasswordFile = "forkcast.password";
constexpr const char* kLogFile = "forkcast-postgres.log";
constexpr int kLogTailLines = 15;

bool is_server_bin_dir(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "pg_ctl", ec) && fs::is_regular_file(dir / "initdb", ec) &&
         fs::is_regular_file(dir / "postgres", ec);
}

fs::path resolve_bin_dir(const fs::path& configured) {
  if (!configured.empty()) {
    if (!is_server_bin_dir(configured)) {
      throw InstanceError("database.bin_dir: \"" + configured.string() +
                          "\" does not hold initdb, pg_ctl and postgres");
    }
    return fs::absolute(configured);
  }
  // Debian installs the server programs outside PATH, one directory per major version.
  std::optional<std::pair<int, fs::path>> newest;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string name = entry.path().filename().string();
    int major = 0;
    const auto [end, err] = std::from_chars(name.data(), name.data() + name.size(), major);
    if (err != std::errc() || end != name.data() + name.size()) continue;
    if (is_server_bin_dir(entry.path() / "bin") && (!newest || major > newest->first)) {
      newest = {major, entry.path() / "bin"};
    }
  }
  if (newest) return newest->second;
  if (const char* path = std::getenv("PATH")) {
    std::stringstream dirs(path);
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
      if (!dir.empty() && is_server_bin_dir(dir)) return fs::absolute(dir);
    }
  }
  throw InstanceError(
      "PostgreSQL's server programs (initdb, pg_ctl, postgres) were not found in "
      "/usr/lib/postgresql/*/bin or on PATH: install postgresql-15 (scripts/setup.sh does) or "
      "set database.bin_dir");
}

struct PidFile {
  std::int64_t pid = 0;
  int port = 0;
  int shm_id = -1;
};

// postmaster.pid, as PostgreSQL documents it: line 1 pid, 4 port, 7 "<shm key> <shm id>".
std::optional<PidFile> read_pid_file(const fs::path& data_dir) {
  std::ifstream in(data_dir / "postmaster.pid");
  if (!in) return std::nullopt;
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  if (lines.empty()) return std::nullopt;
  PidFile pf;
  pf.pid = std::atoll(lines[0].c_str());
  if (lines.size() >= 4) pf.port = std::atoi(lines[3].c_str());
  if (lines.size() >= 7) {
    std::istringstream shm(lines[6]);
    long key = 0;
    int id = -1;
    if (shm >> key >> id) pf.shm_id = id;
  }
  if (pf.pid <= 0) return std::nullopt;
  return pf;
}

// A live process with that pid that is a PostgreSQL server: after a crash and a reboot the
// pid in a stale postmaster.pid may belong to anything.
bool postmaster_alive(std::int64_t pid) {
  if (pid <= 0) return false;
  if (kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM) return false;
  // /proc/<pid>/stat: "pid (comm) state ...". A killed postmaster is reparented to init and
  // stays a zombie until reaped: it still answers kill(pid, 0) but is dead.
  std::ifstream stat_file("/proc/" + std::to_string(pid) + "/stat");
  std::string stat_line;
  if (!stat_file || !std::getline(stat_file, stat_line)) return true;  // no /proc: trust the pid
  const auto open = stat_line.find('(');
  const auto close = stat_line.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close + 2 >= stat_line.size())
    return true;
  const std::string name = stat_line.substr(open + 1, close - open - 1);
  const char state = stat_line[close + 2];
  return name.rfind("postgres", 0) == 0 && state != 'Z' && state != 'X';
}

std::string tail_of(const fs::path& file, int lines) {
  std::ifstream in(file);
  if (!in) return "";
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);) all.push_back(line);
  const std::size_t first = all.size() > static_cast<std::size_t>(lines) ? all.size() - lines : 0;
  std::string out;
  for (std::size_t i = first; i < all.size(); ++i) out += "\n  | " + all[i];
  return out;
}

// PostgreSQL's postgresql.conf string syntax: single quotes, a quote doubled.
std::string conf_quote(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'')
      out += "''";
    else
      out += c;
  }
  return out + "'";
}

std::string socket_url(const fs::path& data_dir, int port, std::string_view dbname) {
  return "postgresql://" + std::string(kDatabaseName) + "@/" + std::string(dbname) +
         "?host=" + url_encode(data_dir.string()) + "&port=" + std::to_string(port);
}

// Writes `text` to `path` atomically, owned by `who`, mode 0600.
void write_private_file(const fs::path& path, const std::string& text, const detail::RunAs& who) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) throw InstanceError("cannot write " + tmp.string());
  }
  if (chmod(tmp.c_str(), 0600) != 0 ||
      (who.switch_user && chown(tmp.c_str(), who.uid, who.gid) != 0)) {
    throw InstanceError("cannot set owner or mode of " + tmp.string() + ": " +
                        std::strerror(errno));
  }
  fs::rename(tmp, path);
}

std::string random_password() {
  unsigned char bytes[24];
  if (RAND_bytes(bytes, sizeof bytes) != 1)
    throw InstanceError("cannot generate a password: RAND_bytes failed");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

// Root runs PostgreSQL as the service user, who must be able to walk down to the data dir.
void check_reachable(const fs::path& data_dir, const detail::RunAs& who) {
  if (!who.switch_user) return;
  for (fs::path p = data_dir.parent_path(); !p.empty(); p = p.parent_path()) {
    struct stat st {};
    if (stat(p.c_str(), &st) != 0) break;
    const bool through = (st.st_mode & S_IXOTH) != 0 ||
                         (st.st_uid == who.uid && (st.st_mode & S_IXUSR) != 0) ||
                         (st.st_gid == who.gid && (st.st_mode & S_IXGRP) != 0);
    if (!through) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      throw InstanceError("PostgreSQL runs as the system user '" + who.name +
                          "' (forkcast runs as root) and cannot enter " + p.string() + " (mode " +
                          mode + "): allow it through with `chmod o+x " + p.string() +
                          "` or set database.data_dir to a directory it can reach");
    }
    if (p == p.root_path()) break;
  }
}

// Fails early, with a message saying what to do, when another program holds the port.
// SO_REUSEADDR as PostgreSQL itself sets it, so a port in TIME_WAIT is not "taken".
void check_port_free(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;  // let PostgreSQL report it
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int rc = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  const int err = errno;
  close(fd);
  if (rc == 0) return;
  if (err == EADDRINUSE) {
    throw InstanceError(
        "port " + std::to_string(port) +
        " on 127.0.0.1 is already in use by another program, so the local PostgreSQL "
        "cannot listen there: choose a free port with database.port in config/forkcast.yaml "
        "or FORKCAST_DATABASE__PORT=<port> (a server of your own on 5432 is never touched)");
  }
  throw InstanceError("cannot listen on 127.0.0.1:" + std::to_string(port) + ": " +
                      std::strerror(err));
}

// After a crash (SIGKILL of the postmaster), backends notice and exit within moments, but
// PostgreSQL refuses to start while any of them is still attached to the old shared memory
// segment. Waits for them, bounded.
void wait_for_orphans(const PidFile& stale, std::chrono::seconds limit) {
  if (stale.shm_id < 0) return;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    shmid_ds info{};
    if (shmctl(stale.shm_id, IPC_STAT, &info) != 0 || info.shm_nattch == 0) return;
    if (std::chrono::steady_clock::now() >= deadline) {
      throw InstanceError("processes of the crashed server (pid " + std::to_string(stale.pid) +
                          ") still hold its shared memory after " + std::to_string(limit.count()) +
                          " s; stop them before starting again");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void ensure_database(const std::string& admin_url) {
  try {
    pqxx::connection c(admin_url);
    pqxx::nontransaction tx(c);
    if (tx.exec_params("SELECT 1 FROM pg_database WHERE datname = $1", kDatabaseName).empty()) {
      // The name is the constant kDatabaseName: nothing to quote.
      tx.exec0("CREATE DATABASE forkcast");
    }
  } catch (const pqxx::sql_error& e) {
    if (e.sqlstate() != "42P04") {  // duplicate_database: a concurrent start created it
      throw InstanceError(std::string("cannot create the forkcast database: ") + e.what());
    }
  } catch (const pqxx::failure& e) {
    throw InstanceError(std::string("cannot create the forkcast database: ") + e.what());
  }
}

}  // namespace

std::string url_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

namespace {

using ConninfoOptions = std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)>;

// Null when libpq cannot parse `url`.
ConninfoOptions parse_conninfo(std::string_view url) {
  char* error = nullptr;
  ConninfoOptions options(PQconninfoParse(std::string(url).c_str(), &error), &PQconninfoFree);
  if (error != nullptr) PQfreemem(error);
  return options;
}

}  // namespace

bool conninfo_parses(std::string_view url) { return parse_conninfo(url) != nullptr; }

std::string redact_url(std::string_view url) {
  // libpq parses the string (URI or keyword=value) the way it will connect with it; what it
  // marks as secret (dispchar "*": the password) is never shown, and a string it cannot
  // parse is not echoed at all, since the part it chokes on may be the password.
  const ConninfoOptions options = parse_conninfo(url);
  if (!options) return "(a connection string libpq cannot parse)";
  std::string out;
  for (const PQconninfoOption* o = options.get(); o->keyword != nullptr; ++o) {
    if (o->val == nullptr || *o->val == '\0') continue;
    if (!out.empty()) out += ' ';
    out += o->keyword;
    out += '=';
    if (o->dispchar != nullptr && o->dispchar[0] == '*') {
      out += "***";
      continue;
    }
    const std::string_view value = o->val;
    if (value.find_first_of(" '\\") == std::string_view::npos) {
      out += value;
      continue;
    }
    out += '\'';
    for (const char c : value) {
      if (c == '\'' || c == '\\') out += '\\';
      out += c;
    }
    out += '\'';
  }
  return out;
}

InstanceOptions instance_options(const config::DatabaseConfig& config) {
  InstanceOptions options;
  options.data_dir = config.data_dir;
  options.port = config.port;
  options.bin_dir = config.bin_dir;
  return options;
}

LocalInstance::LocalInstance(InstanceOptions options) : options_(std::move(options)) {
  if (options_.data_dir.empty())
    throw std::invalid_argument("database.data_dir: must not be empty");
  if (options_.port < 1 || options_.port > 65535) {
    throw std::invalid_argument("database.port: " + std::to_string(options_.port) +
                                " is out of range 1..65535");
  }
  options_.data_dir = fs::weakly_canonical(fs::absolute(options_.data_dir));
  const std::string dir = options_.data_dir.string();
  if (dir.find_first_of("\n\r") != std::string::npos) {
    throw std::invalid_argument("database.data_dir: \"" + dir + "\" contains a line break");
  }
  // The socket file is <data_dir>/.s.PGSQL.<port>; Unix socket paths are limited to 107 bytes.
  const std::size_t socket_path = dir.size() + std::string("/.s.PGSQL.65535").size();
  if (socket_path >= sizeof(sockaddr_un::sun_path)) {
    throw std::invalid_argument(
        "database.data_dir: \"" + dir + "\" is too long for a Unix socket path (" +
        std::to_string(socket_path) + " bytes with the socket name, at most " +
        std::to_string(sizeof(sockaddr_un::sun_path) - 1) + ")");
  }
  bin_dir_ = resolve_bin_dir(options_.bin_dir);
}

InstanceStatus LocalInstance::status() const {
  InstanceStatus s;
  s.data_dir = options_.data_dir;
  s.log_file = options_.data_dir / kLogFile;
  std::error_code ec;
  s.initialized = fs::exists(options_.data_dir / "PG_VERSION", ec);
  s.port = options_.port;
  if (const auto pf = read_pid_file(options_.data_dir)) {
    if (postmaster_alive(pf->pid)) {
      s.running = true;
      s.pid = pf->pid;
      if (pf->port > 0) s.port = pf->port;
    } else {
      s.stale_pid_file = true;
    }
  }
  s.url = socket_url(options_.data_dir, s.port, kDatabaseName);
  if (s.running) {
    s.accepting = PQping(socket_url(options_.data_dir, s.port, "postgres").c_str()) == PQPING_OK;
  }
  return s;
}

std::string LocalInstance::url() const { return status().url; }

std::string LocalInstance::tcp_url() const {
  std::ifstream in(options_.data_dir / kPasswordFile);
  std::string password;
  if (!in || !std::getline(in, password) || password.empty()) {
    throw InstanceError(
        "no password for TCP connections: " + (options_.data_dir / kPasswordFile).string() +
        " is missing (was the instance initialised by forkcast?)");
  }
  return "postgresql://" + std::string(kDatabaseName) + ":" + url_encode(password) +
         "@127.0.0.1:" + std::to_string(status().port) + "/" + kDatabaseName;
}

StartResult LocalInstance::start() {
  StartResult result;
  InstanceStatus before = status();
  if (before.running) {
    result.already_running = true;
    result.status = before;
    return result;
  }
  const detail::RunAs who = detail::run_as_for(options_.service_user);
  const fs::path& dir = options_.data_dir;
  const std::string dir_text = dir.string();
  check_port_free(
      options_.port);  // before initdb: a taken port must not leave a new cluster behind

  if (!before.initialized) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec)
      throw InstanceError("cannot create the data directory " + dir_text + ": " + ec.message());
    if (!fs::is_empty(dir, ec)) {
      throw InstanceError(dir_text +
                          " is neither empty nor a PostgreSQL data directory (no PG_VERSION): "
                          "point database.data_dir at an empty or missing directory");
    }
    if (who.switch_user && chown(dir.c_str(), who.uid, who.gid) != 0) {
      throw InstanceError("cannot give " + dir_text + " to " + who.name + ": " +
                          std::strerror(errno));
    }
    chmod(dir.c_str(), 0700);
    check_reachable(dir, who);

    // initdb reads the superuser password from a file; it is kept for tcp_url() afterwards.
    const std::string password = random_password();
    char pwfile[] = "/tmp/forkcast-initdb-XXXXXX";
    const int fd = mkstemp(pwfile);
    if (fd < 0)
      throw InstanceError(std::string("cannot create a temporary file: ") + std::strerror(errno));
    const std::string line = password + "\n";
    const bool written = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                         (!who.switch_user || fchown(fd, who.uid, who.gid) == 0);
    close(fd);
    if (!written) {
      unlink(pwfile);
      throw InstanceError(std::string("cannot write ") + pwfile);
    }
    std::vector<std::string> argv = {(bin_dir_ / "initdb").string(),
                                     "-D",
                                     dir_text,
                                     "-U",
                                     kDatabaseName,
                                     "-E",
                                     "UTF8",
                                     "--locale=C",
                                     "--auth-local=trust",
                                     "--auth-host=scram-sha-256",
                                     "--pwfile",
                                     pwfile};
    if (!options_.sync_initdb) argv.emplace_back("--no-sync");
    spdlog::info("initialising a PostgreSQL data directory in {} (as {})", dir_text, who.name);
    const auto r = detail::run_program(argv, who);
    unlink(pwfile);
    if (r.exit_code != 0) {
      throw InstanceError("initdb failed (exit " + std::to_string(r.exit_code) + ") for " +
                          dir_text + ":\n" + r.output);
    }
    write_private_file(dir / kPasswordFile, line, who);
    // The settings forkcast manages live in their own file, included last so they win.
    std::ofstream conf(dir / "postgresql.conf", std::ios::app);
    conf << "\n# Settings forkcast manages (port, sockets, durability): rewritten on every start.\n"
         << "include_if_exists = '" << kConfFile << "'\n";
    if (!conf.flush())
      throw InstanceError("cannot append to " + (dir / "postgresql.conf").string());
    result.initialized_now = true;
  } else {
    check_reachable(dir, who);
    struct stat st {};
    if (stat(dir.c_str(), &st) == 0 && st.st_uid != who.uid) {
      throw InstanceError(
          dir_text + " belongs to uid " + std::to_string(st.st_uid) + ", but PostgreSQL runs as " +
          who.name + (who.switch_user ? " (forkcast runs as root)" : "") +
          ": use a data directory of that user, or chown -R " + who.name + " " + dir_text);
    }
  }

  write_private_file(
      dir / kConfFile,
      "# Written by forkcast at every `forkcast db start`: edit postgresql.conf instead.\n"
      "port = " +
          std::to_string(options_.port) +
          "\n"
          "listen_addresses = '127.0.0.1'\n"
          "unix_socket_directories = " +
          conf_quote(dir_text) +
          "\n"
          "fsync = on\n"
          "full_page_writes = on\n"
          "synchronous_commit = on\n"
          "# After a crash, make the data directory durable with one syncfs() instead of\n"
          "# an fsync() per file: seconds less of recovery, the same guarantee.\n"
          "recovery_init_sync_method = syncfs\n",
      who);

  if (before.stale_pid_file) {
    if (const auto stale = read_pid_file(dir)) {
      spdlog::warn(
          "PostgreSQL in {} did not shut down cleanly (pid {}): it will recover from its WAL",
          dir_text, stale->pid);
      wait_for_orphans(*stale, std::chrono::seconds(options_.start_timeout_s));
      // PostgreSQL takes a pid that still answers kill(pid, 0) as a live postmaster. A killed
      // postmaster that init has not reaped yet (a zombie; containers often run an init that
      // reaps late) does, so PostgreSQL would refuse to start. It is dead and no process holds
      // its shared memory any more (just checked), so its lock file can go.
      // The same holds for the socket lock files (.s.PGSQL.<port>.lock) naming that pid.
      if (kill(static_cast<pid_t>(stale->pid), 0) == 0 || errno == EPERM) {
        std::error_code ec;
        for (const auto& entry : fs::directory_iterator(dir, ec)) {
          const std::string name = entry.path().filename().string();
          if (name.rfind(".s.PGSQL.", 0) != 0 || !name.ends_with(".lock")) continue;
          std::ifstream lock(entry.path());
          std::string first_line;
          if (std::getline(lock, first_line) && std::atoll(first_line.c_str()) == stale->pid) {
            fs::remove(entry.path(), ec);
          }
        }
        fs::remove(dir / "postmaster.pid", ec);
      }
    }
  }
  const fs::path log = dir / kLogFile;
  const auto r = detail::run_program(
      {(bin_dir_ / "pg_ctl").string(), "start", "-D", dir_text, "-l", log.string(), "-w", "-t",
       std::to_string(options_.start_timeout_s), "-s"},
      who);
  if (r.exit_code != 0) {
    std::string message = "PostgreSQL did not start in " + dir_text + " (pg_ctl exit " +
                          std::to_string(r.exit_code) + "): " + r.output;
    const std::string tail = tail_of(log, kLogTailLines);
    if (tail.find("Address already in use") != std::string::npos) {
      message =
          "port " + std::to_string(options_.port) +
          " on 127.0.0.1 was taken while PostgreSQL started: choose another with database.port or "
          "FORKCAST_DATABASE__PORT";
    }
    throw InstanceError(message + "\nlast lines of " + log.string() + ":" + tail);
  }
  ensure_database(socket_url(dir, options_.port, "postgres"));
  result.status = status();
  spdlog::info("PostgreSQL running in {} (pid {}, port {})", dir_text, result.status.pid,
               result.status.port);
  return result;
}

bool LocalInstance::stop(StopMode mode) {
  const InstanceStatus before = status();
  if (!before.running) return false;
  const detail::RunAs who = detail::run_as_for(options_.service_user);
  const auto r =
      detail::run_program({(bin_dir_ / "pg_ctl").string(), "stop", "-D", options_.data_dir.string(),
                           "-m", mode == StopMode::fast ? "fast" : "immediate", "-w", "-t",
                           std::to_string(options_.start_timeout_s), "-s"},
                          who);
  if (r.exit_code != 0 && postmaster_alive(before.pid)) {
    throw InstanceError("pg_ctl stop failed (exit " + std::to_string(r.exit_code) + ") for " +
                        options_.data_dir.string() + ": " + r.output);
  }
  return true;
}

}  // namespace forkcast::db
