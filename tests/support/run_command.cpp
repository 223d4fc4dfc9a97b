#include "run_command.hpp"

#include <sys/wait.h>

#include <array>
#include <cstdio>

namespace forkcast::testing {

CommandOutput run_command(const std::string& command_line) {
  const std::string cmd = command_line + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  std::string out;
  std::array<char, 4096> buf{};
  while (std::fgets(buf.data(), buf.size(), pipe) != nullptr) out += buf.data();
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace forkcast::testing
