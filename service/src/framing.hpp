// Checks of a request's message framing that Beast's parser leaves to the application
// (RFC 9112 §6): what it lets through could make one request's bytes read as another's
// behind a proxy (request smuggling). The server refuses such a request and closes the
// connection (server.cpp).
#pragma once

#include <optional>

#include "forkcast/service/router.hpp"

namespace forkcast::service {

enum class TransferCodingProblem {
  final_not_chunked,  // 400: the body's length cannot be known (RFC 9112 §6.3, item 4)
  unsupported,        // 501: a coding besides chunked (gzip, deflate, compress, identity, ...)
};

// The Transfer-Encoding header fields of `request`, all of them, read as one list of codings
// (comma-separated, case-insensitive, parameters after ';' ignored, empty elements skipped).
// nullopt when there is none, or when the list is exactly "chunked".
std::optional<TransferCodingProblem> transfer_coding_problem(const Request& request);

}  // namespace forkcast::service
