// libFuzzer target for request bodies (service/src/api.cpp): JsonBody::parse, the strict
// reader every route uses, and the profile reader of POST and PATCH /v1/users on top of it.
//
// Findings are: any crash or sanitizer report; any exception other than ApiError (the
// router would answer 500 where the client deserves 400 with the field); an ApiError with a
// status other than 400/413/415/422; and a profile that is accepted but does not survive
// profile_json -> profile_from_json -> profile_json unchanged (what is stored is what the
// next request reads).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

#include "api.hpp"

namespace {

namespace service = forkcast::service;
using boost::beast::http::status;

[[noreturn]] void finding(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_json_body finding: %s: %s\n", what, detail.c_str());
  std::abort();
}

void check_refusal(const service::ApiError& e) {
  const auto s = e.status();
  if (s != status::bad_request && s != status::payload_too_large && s != status::unsupported_media_type &&
      s != status::unprocessable_entity) {
    finding("a body refused with an unexpected status", std::to_string(static_cast<int>(s)) + " " + e.what());
  }
  if (e.code().empty() || std::string_view(e.what()).empty()) finding("a refusal without code or message", e.what());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    auto body = service::JsonBody::parse(bytes);
    const auto created = service::read_profile(body);
    body.finish();
    const auto stored = service::profile_json(created);
    const auto read_back = service::profile_json(service::profile_from_json(stored));
    if (read_back != stored) finding("a stored profile reads back differently", stored.dump() + " vs " + read_back.dump());
    // The same bytes as a PATCH over what was just created.
    auto patch = service::JsonBody::parse(bytes);
    (void)service::read_profile(patch, &created);
  } catch (const service::ApiError& e) {
    check_refusal(e);
  } catch (const std::exception& e) {
    finding("an exception other than ApiError", e.what());
  }
  return 0;
}
