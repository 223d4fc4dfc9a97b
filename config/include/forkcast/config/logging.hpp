// Structured logging for every forkcast binary (spdlog): text lines for people,
// JSON lines for log collectors. Call configure_logging once from main; libraries
// just use spdlog's default logger.
#pragma once

#include <string_view>

namespace forkcast::config {

// level: trace|debug|info|warn|error|off; format: text|json. Logs go to stderr so
// that stdout stays clean for command output. Throws std::invalid_argument naming the
// bad value.
void configure_logging(std::string_view level, std::string_view format);

}  // namespace forkcast::config
