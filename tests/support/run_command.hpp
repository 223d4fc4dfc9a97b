// Runs a shell command line for a test and captures what it printed (stdout and stderr
// together): the one helper the CLI, database, advice, service and browser tests share to
// run the forkcast binary.
#pragma once

#include <string>

namespace forkcast::testing {

struct CommandOutput {
  int exit_code = -1;  // the command's exit status, -1 if it did not exit normally
  std::string output;  // stdout and stderr together
};

// Runs `command_line` through /bin/sh with stderr redirected into stdout.
CommandOutput run_command(const std::string& command_line);

}  // namespace forkcast::testing
