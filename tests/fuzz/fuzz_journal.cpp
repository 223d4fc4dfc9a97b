// libFuzzer target for the decision journal's reader (service/src/journal_record.cpp): the
// bytes a crashed process left in a segment, which the next process replays before serving.
//
// Findings are: any crash or sanitizer report; a frame the reader accepts although its
// checksum or length is wrong (checked by re-framing what it returned); and a decision that
// decodes but does not survive encode -> decode unchanged (so the replayed row is exactly
// what was journaled). Build and run: tests/fuzz/README.md.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "journal_record.hpp"

namespace {

namespace journal = forkcast::service::journal;
using forkcast::service::PendingDecision;

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "fuzz_journal finding: %s\n", what);
  std::abort();
}

bool same(const PendingDecision& a, const PendingDecision& b) {
  // Bitwise for the floating-point fields: a NaN must come back as the same NaN.
  auto bits = [](const auto& v) { return std::string_view(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(v[0])); };
  return a.event_id == b.event_id && a.user_id == b.user_id && a.decided_at == b.decided_at && a.slot == b.slot &&
         a.model_version == b.model_version && std::memcmp(&a.epsilon, &b.epsilon, sizeof a.epsilon) == 0 &&
         a.candidates == b.candidates && bits(a.scores) == bits(b.scores) &&
         bits(a.probabilities) == bits(b.probabilities) && a.chosen == b.chosen && a.greedy == b.greedy &&
         a.ranked == b.ranked && bits(a.observation) == bits(b.observation) && a.draw_seed == b.draw_seed &&
         a.step == b.step && a.n == b.n && bits(a.recency) == bits(b.recency) && a.catalog_version == b.catalog_version &&
         std::memcmp(&a.temperature, &b.temperature, sizeof a.temperature) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  journal::FrameReader reader(bytes);
  std::size_t meal_count = 64;  // decisions before (or without) a meal table
  std::size_t consumed = 0;
  PendingDecision decision, again;
  while (const auto payload = reader.next()) {
    consumed += journal::kFrameHeaderBytes + payload->size();
    if (const auto table = journal::decode_catalog(*payload)) {
      meal_count = table->size();
      std::string framed;
      journal::append_catalog_frame(*table, framed);
      if (std::string_view(framed).substr(journal::kFrameHeaderBytes) != *payload) finding("a meal table re-encodes differently");
      continue;
    }
    if (!journal::decode_decision(*payload, meal_count, decision)) continue;
    std::string framed;
    journal::append_decision_frame(decision, framed);
    // The current format re-encodes byte for byte; an older one is rewritten in the current
    // format, which must decode to the same decision (checked below).
    const bool current_format =
        payload->size() > 1 && static_cast<std::uint8_t>((*payload)[1]) == journal::kDecisionFormat;
    if (current_format && std::string_view(framed).substr(journal::kFrameHeaderBytes) != *payload) {
      finding("a decision re-encodes differently");
    }
    journal::FrameReader back(framed);
    const auto round = back.next();
    if (!round || !journal::decode_decision(*round, meal_count, again) || !same(decision, again)) {
      finding("a decision does not survive encode -> decode");
    }
  }
  if (consumed + reader.torn_bytes() != size) finding("frames and torn bytes do not add up to the input");
  return 0;
}
