#include "framing.hpp"

#include <algorithm>
#include <cctype>
#include <string_view>
#include <vector>

namespace forkcast::service {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_chunked(std::string_view coding) {
  constexpr std::string_view kChunked = "chunked";
  return coding.size() == kChunked.size() &&
         std::equal(coding.begin(), coding.end(), kChunked.begin(),
                    [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; });
}

}  // namespace

std::optional<TransferCodingProblem> transfer_coding_problem(const Request& request) {
  std::vector<std::string_view> codings;
  for (auto it = request.find(http::field::transfer_encoding);
       it != request.end() && it->name() == http::field::transfer_encoding; ++it) {
    std::string_view list = it->value();
    while (!list.empty()) {
      const auto comma = std::min(list.find(','), list.size());
      std::string_view coding = list.substr(0, comma);
      coding = trim(coding.substr(0, std::min(coding.find(';'), coding.size())));
      if (!coding.empty()) codings.push_back(coding);
      list.remove_prefix(std::min(comma + 1, list.size()));
    }
  }
  if (codings.empty()) {
    // A header present but empty frames nothing: refuse it like a final coding that is not chunked.
    return request.count(http::field::transfer_encoding) > 0 ? std::optional(TransferCodingProblem::final_not_chunked)
                                                               : std::nullopt;
  }
  if (!is_chunked(codings.back())) return TransferCodingProblem::final_not_chunked;
  // "chunked" applied twice is no framing a server must accept either (RFC 9112 §6.1).
  if (codings.size() > 1) {
    const bool all_chunked = std::all_of(codings.begin(), codings.end(), is_chunked);
    return all_chunked ? TransferCodingProblem::final_not_chunked : TransferCodingProblem::unsupported;
  }
  return std::nullopt;
}

}  // namespace forkcast::service
