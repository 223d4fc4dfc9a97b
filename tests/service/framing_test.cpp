// transfer_coding_problem (service/src/framing.hpp): which Transfer-Encoding lists frame a
// body (RFC 9112 §6.1, §6.3).
#include "framing.hpp"

#include <gtest/gtest.h>

namespace fs = forkcast::service;

namespace {

std::optional<fs::TransferCodingProblem> problem_of(std::initializer_list<const char*> fields) {
  fs::Request request{boost::beast::http::verb::post, "/v1/users", 11};
  for (const char* f : fields) request.insert(boost::beast::http::field::transfer_encoding, f);
  return fs::transfer_coding_problem(request);
}

}  // namespace

TEST(TransferCoding, OnlyAFinalChunkedFramesABody) {
  using P = fs::TransferCodingProblem;
  EXPECT_EQ(problem_of({}), std::nullopt);
  EXPECT_EQ(problem_of({"chunked"}), std::nullopt);
  EXPECT_EQ(problem_of({"Chunked"}), std::nullopt);
  EXPECT_EQ(problem_of({" chunked ; x=1 "}), std::nullopt);
  EXPECT_EQ(problem_of({"xchunked"}), P::final_not_chunked);
  EXPECT_EQ(problem_of({"chunked, identity"}), P::final_not_chunked);
  EXPECT_EQ(problem_of({"identity"}), P::final_not_chunked);
  EXPECT_EQ(problem_of({""}), P::final_not_chunked);
  EXPECT_EQ(problem_of({"chunked", "chunked"}), P::final_not_chunked);  // chunked twice
  EXPECT_EQ(problem_of({"chunked,chunked"}), P::final_not_chunked);
  EXPECT_EQ(problem_of({"gzip, chunked"}), P::unsupported);
  EXPECT_EQ(problem_of({"gzip", "chunked"}), P::unsupported);  // two fields are one list
  EXPECT_EQ(problem_of({"chunked", "gzip"}), P::final_not_chunked);
}
