// Tests of service/src/journal_record.hpp: the journal's frames round-trip every field, a
// torn or corrupted tail ends reading at the last whole frame, and malformed payloads are
// refused (never read out of bounds).
#include "journal_record.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace svc = forkcast::service;
namespace journal = forkcast::service::journal;
namespace fe = forkcast::env;

namespace {

svc::PendingDecision sample() {
  svc::PendingDecision d;
  d.event_id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
  d.user_id = "01234567-89ab-4cde-8f01-23456789abcd";
  d.decided_at = forkcast::db::Timestamp(std::chrono::microseconds(1'765'000'000'123'456LL));
  d.slot = fe::Slot::dinner;
  d.model_version = "mealsim-dqn-default";
  d.epsilon = 0.0625;
  d.candidates = {7, 2, 9, 0};
  d.scores = {0.5F, -1.25F, 3.0e-7F, 12.0F};
  d.probabilities = {0.1, 0.2, 0.3, 0.4};
  d.chosen = 3;
  d.greedy = 2;
  d.ranked = {3, 0, 1};
  for (std::size_t i = 0; i < d.observation.size(); ++i) d.observation[i] = static_cast<float>(i) * 0.37F - 2.0F;
  d.draw_seed = 0xDEADBEEFCAFEF00DULL;
  d.step = -3;
  d.n = 3;
  d.recency = {0.0F, 0.5F, 0.25F, 1.0F};
  d.catalog_version = "0123456789abcdef";
  d.temperature = 0.375;
  return d;
}

void put_frame_header(std::string& frame, const std::string& payload) {
  const auto length = static_cast<std::uint32_t>(payload.size());
  const std::uint32_t crc = journal::crc32c({reinterpret_cast<const std::byte*>(payload.data()), payload.size()});
  frame.append(reinterpret_cast<const char*>(&length), 4);  // little-endian host, as the journal's
  frame.append(reinterpret_cast<const char*>(&crc), 4);
}

// A decision frame as the first release (format 1) wrote it: no recency, no catalog version.
std::string format1_frame(const svc::PendingDecision& d) {
  std::string p;
  auto put = [&p](const auto& v) { p.append(reinterpret_cast<const char*>(&v), sizeof v); };
  auto put_string = [&](const std::string& s) {
    put(static_cast<std::uint16_t>(s.size()));
    p += s;
  };
  p.push_back('D');
  put(static_cast<std::uint8_t>(1));
  put_string(d.event_id);
  put_string(d.user_id);
  put_string(d.model_version);
  put(static_cast<std::int64_t>(d.decided_at.time_since_epoch().count()));
  put(static_cast<std::uint8_t>(d.slot));
  put(d.epsilon);
  put(static_cast<std::uint32_t>(d.candidates.size()));
  for (auto c : d.candidates) put(c);
  for (auto x : d.scores) put(x);
  for (auto x : d.probabilities) put(x);
  put(static_cast<std::uint32_t>(d.chosen));
  put(static_cast<std::uint32_t>(d.greedy));
  put(static_cast<std::uint32_t>(d.ranked.size()));
  for (auto r : d.ranked) put(static_cast<std::uint32_t>(r));
  put(static_cast<std::uint32_t>(d.observation.size()));
  for (auto x : d.observation) put(x);
  put(d.draw_seed);
  put(d.step);
  put(static_cast<std::int32_t>(d.n));
  std::string frame;
  put_frame_header(frame, p);
  return frame + p;
}

std::string_view payload_of(const std::string& frame) { return std::string_view(frame).substr(journal::kFrameHeaderBytes); }

}  // namespace

TEST(JournalRecord, Crc32cMatchesTheStandardCheckValue) {
  const std::string text = "123456789";
  EXPECT_EQ(journal::crc32c({reinterpret_cast<const std::byte*>(text.data()), text.size()}), 0xE3069283U);
  EXPECT_EQ(journal::crc32c({}), 0U);
}

TEST(JournalRecord, ADecisionRoundTripsEveryField) {
  const svc::PendingDecision in = sample();
  std::string frame;
  journal::append_decision_frame(in, frame);
  journal::FrameReader reader(frame);
  const auto payload = reader.next();
  ASSERT_TRUE(payload);
  EXPECT_FALSE(reader.next());
  EXPECT_EQ(reader.torn_bytes(), 0U);
  svc::PendingDecision out;
  out.ranked = {99, 98, 97, 96, 95};  // stale contents of a recycled object are replaced
  ASSERT_TRUE(journal::decode_decision(*payload, 10, out));
  EXPECT_EQ(out.event_id, in.event_id);
  EXPECT_EQ(out.user_id, in.user_id);
  EXPECT_EQ(out.decided_at, in.decided_at);
  EXPECT_EQ(out.slot, in.slot);
  EXPECT_EQ(out.model_version, in.model_version);
  EXPECT_EQ(out.epsilon, in.epsilon);
  EXPECT_EQ(out.candidates, in.candidates);
  EXPECT_EQ(out.scores, in.scores);
  EXPECT_EQ(out.probabilities, in.probabilities);
  EXPECT_EQ(out.chosen, in.chosen);
  EXPECT_EQ(out.greedy, in.greedy);
  EXPECT_EQ(out.ranked, in.ranked);
  EXPECT_EQ(out.observation, in.observation);
  EXPECT_EQ(out.draw_seed, in.draw_seed);
  EXPECT_EQ(out.step, in.step);
  EXPECT_EQ(out.n, in.n);
  EXPECT_EQ(out.recency, in.recency);
  EXPECT_EQ(out.catalog_version, in.catalog_version);
  EXPECT_EQ(out.temperature, in.temperature);
}

TEST(JournalRecord, AFrameOfTheSecondFormatReplaysAsEpsilonGreedyAndABadTemperatureIsRefused) {
  std::string frame;
  journal::append_decision_frame(sample(), frame);
  // Format 2 is format 3 without the trailing temperature.
  std::string payload(payload_of(frame));
  payload.resize(payload.size() - sizeof(double));
  payload[1] = 2;
  svc::PendingDecision out;
  out.temperature = 9.0;  // stale contents of a recycled object are replaced
  ASSERT_TRUE(journal::decode_decision(payload, 10, out));
  EXPECT_EQ(out.temperature, 0.0);
  EXPECT_EQ(out.catalog_version, sample().catalog_version);
  // A negative or NaN temperature is no distribution's.
  for (const double bad : {-0.5, std::numeric_limits<double>::quiet_NaN()}) {
    svc::PendingDecision d = sample();
    d.temperature = bad;
    std::string f;
    journal::append_decision_frame(d, f);
    EXPECT_FALSE(journal::decode_decision(payload_of(f), 10, out)) << bad;
  }
}

TEST(JournalRecord, AFrameOfTheFirstFormatStillReplaysWithoutRecency) {
  const svc::PendingDecision in = sample();
  const std::string frame = format1_frame(in);
  journal::FrameReader reader(frame);
  const auto payload = reader.next();
  ASSERT_TRUE(payload) << "the hand-made format-1 frame is not a frame";
  svc::PendingDecision out;
  out.recency = {9.0F};  // stale contents of a recycled object are cleared
  out.catalog_version = "stale";
  ASSERT_TRUE(journal::decode_decision(*payload, 10, out));
  EXPECT_EQ(out.event_id, in.event_id);
  EXPECT_EQ(out.candidates, in.candidates);
  EXPECT_EQ(out.observation, in.observation);
  EXPECT_EQ(out.n, in.n);
  EXPECT_TRUE(out.recency.empty());
  EXPECT_TRUE(out.catalog_version.empty());
}

TEST(JournalRecord, ARecencyListOfTheWrongLengthIsRefused) {
  svc::PendingDecision d = sample();
  d.recency = {0.5F, 0.5F};  // two for four candidates: written as none
  std::string frame;
  journal::append_decision_frame(d, frame);
  svc::PendingDecision out;
  ASSERT_TRUE(journal::decode_decision(payload_of(frame), 10, out));
  EXPECT_TRUE(out.recency.empty());
  // A frame that claims two recencies for four candidates is malformed.
  d.recency = sample().recency;
  frame.clear();
  journal::append_decision_frame(d, frame);
  std::string payload(payload_of(frame));
  const std::size_t count_at = payload.size() - sizeof(double) - 2 - d.catalog_version.size() - 4 * 4 - 4;
  payload[count_at] = 2;
  EXPECT_FALSE(journal::decode_decision(payload, 10, out));
}

TEST(JournalRecord, TheMealTableRoundTrips) {
  const std::vector<std::string> ids = {"oatmeal-berries", "", "chana-masala"};
  std::string frame;
  journal::append_catalog_frame(ids, frame);
  journal::FrameReader reader(frame);
  const auto payload = reader.next();
  ASSERT_TRUE(payload);
  EXPECT_EQ(journal::decode_catalog(*payload), ids);
  svc::PendingDecision d;
  EXPECT_FALSE(journal::decode_decision(*payload, 3, d)) << "a meal table is not a decision";
  std::string decision;
  journal::append_decision_frame(sample(), decision);
  EXPECT_FALSE(journal::decode_catalog(payload_of(decision))) << "a decision is not a meal table";
}

TEST(JournalRecord, ReadingStopsAtATornOrCorruptedFrame) {
  std::string bytes;
  journal::append_catalog_frame(std::vector<std::string>{"a", "b"}, bytes);
  const std::size_t table_frame = bytes.size();
  journal::append_decision_frame(sample(), bytes);
  const std::size_t whole = bytes.size();
  std::string third;
  journal::append_decision_frame(sample(), third);
  // Every cut of the third frame (header or payload) leaves exactly two readable frames.
  for (std::size_t cut = 1; cut < third.size(); cut += 37) {
    const std::string torn = bytes + third.substr(0, cut);
    journal::FrameReader reader(torn);
    int frames = 0;
    while (reader.next()) ++frames;
    EXPECT_EQ(frames, 2) << "cut at " << cut;
    EXPECT_EQ(reader.torn_bytes(), cut);
  }
  // A flipped byte in the second frame's payload: its checksum no longer matches.
  std::string flipped = bytes;
  flipped[whole - 5] = static_cast<char>(flipped[whole - 5] ^ 0x40);
  journal::FrameReader reader(flipped);
  EXPECT_TRUE(reader.next());
  EXPECT_FALSE(reader.next());
  EXPECT_EQ(reader.torn_bytes(), whole - table_frame);
}

TEST(JournalRecord, MalformedDecisionsAreRefused) {
  std::string frame;
  journal::append_decision_frame(sample(), frame);
  const std::string payload(payload_of(frame));
  svc::PendingDecision out;
  // The sample's candidates reach index 9: a table of 9 meals cannot resolve them.
  EXPECT_FALSE(journal::decode_decision(payload, 9, out));
  EXPECT_TRUE(journal::decode_decision(payload, 10, out));
  // Every truncation, and one extra byte, is refused.
  for (std::size_t n = 0; n < payload.size(); ++n) {
    EXPECT_FALSE(journal::decode_decision(std::string_view(payload).substr(0, n), 10, out)) << "length " << n;
  }
  EXPECT_FALSE(journal::decode_decision(payload + '\0', 10, out));
  // A chosen index beyond the candidates.
  svc::PendingDecision bad = sample();
  bad.chosen = bad.candidates.size();
  std::string bad_frame;
  journal::append_decision_frame(bad, bad_frame);
  EXPECT_FALSE(journal::decode_decision(payload_of(bad_frame), 10, out));
  // A frame header claiming a payload larger than the limit ends reading.
  std::string huge(journal::kFrameHeaderBytes, '\xff');
  journal::FrameReader reader(huge);
  EXPECT_FALSE(reader.next());
  EXPECT_EQ(reader.torn_bytes(), huge.size());
}
