// Writing feedback, shared by FeedbackRepository::record (a batch of one) and FeedbackWriter
// (group commit). Internal to db/.
#pragma once

#include <exception>
#include <pqxx/pqxx>
#include <span>
#include <variant>
#include <vector>

#include "forkcast/db/records.hpp"

namespace forkcast::db::detail {

// Throws std::invalid_argument naming the field and value if no database could store it.
void validate_feedback(const NewFeedback& feedback);

// Per write: its result, or the error to throw to its caller only.
using FeedbackOutcome = std::variant<FeedbackResult, std::exception_ptr>;

// Stores `batch` (validated) in one transaction on `connection` and returns one outcome per
// write, in order, after COMMIT returned. Exceptions that concern the batch as a whole
// (connection lost, COMMIT failed) propagate: none of the writes may be acknowledged.
std::vector<FeedbackOutcome> write_feedback_batch(pqxx::connection& connection,
                                                  std::span<const NewFeedback> batch);

}  // namespace forkcast::db::detail
