// Running PostgreSQL's programs (initdb, pg_ctl) as the right user. Internal to db/.
//
// PostgreSQL refuses to run as root, so a root caller runs them as an unprivileged system
// user (fork, drop to that user's uid/gid, exec) and a normal caller runs them as itself.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace forkcast::db::detail {

struct RunAs {
  bool switch_user = false;  // true when the caller is root
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name;  // for messages
};

// Root: the service user (InstanceError when it does not exist, saying how to create it).
// Anyone else: themselves.
RunAs run_as_for(const std::string& service_user);

struct ProcessResult {
  int exit_code = 0;   // 128 + signal number when killed by a signal
  std::string output;  // stdout and stderr interleaved
};

// Runs argv[0] (an absolute path) with argv, stdin from /dev/null, stdout and stderr
// captured, the working directory "/", a minimal environment (PATH, LC_ALL=C) and no file
// descriptor of ours but 0-2 (the server it may start must not inherit our sockets).
// Throws InstanceError when the process cannot be started.
ProcessResult run_program(const std::vector<std::string>& argv, const RunAs& who);

}  // namespace forkcast::db::detail
