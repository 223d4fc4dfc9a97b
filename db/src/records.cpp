#include "forkcast/db/records.hpp"

#include <openssl/evp.h>

#include <array>
#include <stdexcept>

#include "forkcast/config/slots.hpp"

namespace forkcast::db {
namespace {

template <typename E, std::size_t N>
E parse_name(std::string_view name, const std::array<std::string_view, N>& names,
             std::string_view field) {
  for (std::size_t i = 0; i < N; ++i) {
    if (names[i] == name) return static_cast<E>(i);
  }
  std::string allowed;
  for (auto n : names) allowed += (allowed.empty() ? "" : ", ") + std::string(n);
  throw std::invalid_argument(std::string(field) + ": \"" + std::string(name) +
                              "\" is not one of " + allowed);
}

constexpr const auto& kSlots = config::kMealSlotNames;  // the database enum `slot` spells them so
constexpr std::array<std::string_view, 4> kOutcomes = {"accepted", "rejected", "eaten", "skipped"};
constexpr std::array<std::string_view, 4> kModelStatuses = {"candidate", "production", "retired", "rejected"};
constexpr std::array<std::string_view, 4> kRunStatuses = {"running", "finished", "failed",
                                                          "interrupted"};

}  // namespace

Timestamp now_timestamp() {
  return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
}

std::string_view slot_name(Slot slot) noexcept { return kSlots[static_cast<std::size_t>(slot)]; }
Slot slot_from_name(std::string_view name, std::string_view field) {
  return parse_name<Slot>(name, kSlots, field);
}

std::string_view outcome_name(Outcome outcome) noexcept {
  return kOutcomes[static_cast<std::size_t>(outcome)];
}
Outcome outcome_from_name(std::string_view name, std::string_view field) {
  return parse_name<Outcome>(name, kOutcomes, field);
}

std::string_view model_status_name(ModelStatus status) noexcept {
  return kModelStatuses[static_cast<std::size_t>(status)];
}
ModelStatus model_status_from_name(std::string_view name, std::string_view field) {
  return parse_name<ModelStatus>(name, kModelStatuses, field);
}

std::string_view run_status_name(RunStatus status) noexcept {
  return kRunStatuses[static_cast<std::size_t>(status)];
}
RunStatus run_status_from_name(std::string_view name, std::string_view field) {
  return parse_name<RunStatus>(name, kRunStatuses, field);
}

std::string token_sha256(std::string_view token) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(token.data(), token.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("sha256 of a token: EVP_Digest failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

}  // namespace forkcast::db
