#include "process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "forkcast/db/errors.hpp"

namespace forkcast::db::detail {

namespace {

// One password-database entry, looked up with the reentrant calls: the supervisor's thread
// and the main thread both start and stop instances, and getpwnam()/getpwuid() share one
// static buffer (ThreadSanitizer found the race in InstanceSupervisor's test).
struct PasswdEntry {
  passwd entry{};
  std::vector<char> strings = std::vector<char>(16384);
  passwd* found = nullptr;
};

void look_up_name(PasswdEntry& out, const std::string& name) {
  getpwnam_r(name.c_str(), &out.entry, out.strings.data(), out.strings.size(),
             &out.found);
}

void look_up_uid(PasswdEntry& out, uid_t uid) {
  getpwuid_r(uid, &out.entry, out.strings.data(), out.strings.size(), &out.found);
}

}  // namespace

RunAs run_as_for(const std::string& service_user) {
  RunAs who;
  PasswdEntry lookup;
  if (geteuid() != 0) {
    who.uid = geteuid();
    who.gid = getegid();
    look_up_uid(lookup, who.uid);
    who.name = lookup.found != nullptr ? lookup.found->pw_name : std::to_string(who.uid);
    return who;
  }
  look_up_name(lookup, service_user);
  const passwd* pw = lookup.found;
  if (pw == nullptr) {
    throw InstanceError(
        "forkcast runs as root and PostgreSQL refuses to: it runs as the system user '" +
        service_user +
        "', which does not exist. Create it with scripts/setup.sh (or: useradd "
        "--system --user-group --no-create-home --shell /usr/sbin/nologin " +
        service_user + ")");
  }
  if (pw->pw_uid == 0) {
    throw InstanceError("the PostgreSQL service user '" + service_user +
                        "' has uid 0; it must be unprivileged");
  }
  who.switch_user = true;
  who.uid = pw->pw_uid;
  who.gid = pw->pw_gid;
  who.name = service_user;
  return who;
}

ProcessResult run_program(const std::vector<std::string>& argv, const RunAs& who) {
  // Everything the child needs is prepared before fork: after fork in a threaded process
  // only async-signal-safe calls are allowed until exec.
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  static const char* const kEnvironment[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C",
                                             "LANG=C", nullptr};
  const int output = memfd_create("forkcast-pg-output", MFD_CLOEXEC);
  if (output < 0) throw InstanceError(std::string("memfd_create: ") + std::strerror(errno));
  const int null_in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_in < 0) {
    close(output);
    throw InstanceError(std::string("open /dev/null: ") + std::strerror(errno));
  }

  const pid_t child = fork();
  if (child < 0) {
    const int err = errno;
    close(output);
    close(null_in);
    throw InstanceError("cannot start " + argv[0] + ": fork: " + std::strerror(err));
  }
  if (child == 0) {
    // dup2 clears FD_CLOEXEC on the copies, so 0-2 survive exec and everything else does not.
    if (dup2(null_in, 0) < 0 || dup2(output, 1) < 0 || dup2(output, 2) < 0) _exit(126);
    if (who.switch_user) {
      const gid_t groups[] = {who.gid};
      if (setgroups(1, groups) != 0 || setgid(who.gid) != 0 || setuid(who.uid) != 0) _exit(125);
    }
    if (chdir("/") != 0) _exit(124);
    close_range(3, ~0U, 0);
    execve(args[0], args.data(), const_cast<char* const*>(kEnvironment));
    _exit(127);
  }
  close(null_in);
  int status = 0;
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) {
      const int err = errno;
      close(output);
      throw InstanceError("waiting for " + argv[0] + ": " + std::strerror(err));
    }
  }
  ProcessResult result;
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_code = 128 + WTERMSIG(status);
  }
  char buffer[4096];
  off_t offset = 0;
  for (;;) {
    const ssize_t n = pread(output, buffer, sizeof buffer, offset);
    if (n <= 0) break;
    result.output.append(buffer, static_cast<std::size_t>(n));
    offset += n;
  }
  close(output);
  switch (result.exit_code) {
    case 124:
      result.output += "(could not change to directory /)";
      break;
    case 125:
      result.output += "(could not switch to user " + who.name + ")";
      break;
    case 126:
      result.output += "(could not redirect standard streams)";
      break;
    case 127:
      result.output += "(could not execute " + argv[0] + ")";
      break;
    default:
      break;
  }
  return result;
}

}  // namespace forkcast::db::detail
