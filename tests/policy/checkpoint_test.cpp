#include "forkcast/policy/checkpoint.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace forkcast::policy {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kSource = "t.safetensors";

std::vector<std::byte> to_bytes(std::string_view text) {
  std::vector<std::byte> bytes(text.size());
  if (!text.empty()) std::memcpy(bytes.data(), text.data(), text.size());
  return bytes;
}

// A file made of the little-endian length of `header`, `header`, then `data_bytes` bytes
// counting 0, 1, 2, ...
std::vector<std::byte> make_file(std::string_view header, std::size_t data_bytes = 0) {
  std::vector<std::byte> bytes;
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<std::byte>((n >> (8 * i)) & 0xFF));
  const auto text = to_bytes(header);
  bytes.insert(bytes.end(), text.begin(), text.end());
  for (std::size_t i = 0; i < data_bytes; ++i) bytes.push_back(static_cast<std::byte>(i));
  return bytes;
}

// The CheckpointError message that parsing `bytes` throws; fails the test if it throws
// anything else or nothing.
std::string parse_error(const std::vector<std::byte>& bytes,
                        std::string_view source = kSource) {
  try {
    parse_safetensors(bytes, source);
  } catch (const CheckpointError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a CheckpointError: " << e.what();
    return "";
  }
  ADD_FAILURE() << "parsed without error";
  return "";
}

std::string problem(std::string_view message) {
  return std::string(kSource) + ": " + std::string(message);
}

Checkpoint sample_checkpoint() {
  Checkpoint checkpoint;
  checkpoint.metadata = {
      {"config", R"({"agent":"tabular","lr":0.1})"},
      {"git_revision", "253fda8"},
      {"note", "caf\xc3\xa9 \xe2\x9c\x93"},  // UTF-8 survives the JSON round trip
  };
  std::vector<float> q(30);
  for (std::size_t i = 0; i < q.size(); ++i) q[i] = static_cast<float>(i) * 0.25f - 3.0f;
  q[7] = -0.0f;
  q[8] = std::numeric_limits<float>::infinity();
  q[9] = std::bit_cast<float>(std::uint32_t{0x7fc00123});  // a NaN with a payload
  q[10] = std::numeric_limits<float>::denorm_min();
  checkpoint.tensors.push_back(Tensor::from_span<float>("q_table", {5, 6}, q));
  const std::vector<double> biases{1e-300, -2.5, 3.141592653589793};
  checkpoint.tensors.push_back(Tensor::from_span<double>("bias", {3}, biases));
  const std::vector<std::int64_t> step{123456789012345};
  checkpoint.tensors.push_back(Tensor::from_span<std::int64_t>("step", {}, step));
  const std::vector<std::uint8_t> mask{1, 0, 1, 1};
  checkpoint.tensors.push_back(Tensor::from_span<std::uint8_t>("mask", {2, 2}, mask));
  checkpoint.tensors.push_back(Tensor::from_span<float>("empty", {0, 3}, std::span<const float>{}));
  // BF16 has no C++ element type here: raw bytes.
  checkpoint.tensors.push_back(
      Tensor{"half", DType::bf16, {2}, {std::byte{0x80}, std::byte{0x3f}, std::byte{0x00},
                                        std::byte{0xc0}}});
  return checkpoint;
}

void expect_same_tensors(const Checkpoint& a, const Checkpoint& b) {
  EXPECT_EQ(a.metadata, b.metadata);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& tensor : a.tensors) {
    const Tensor* other = b.find(tensor.name);
    ASSERT_NE(other, nullptr) << tensor.name;
    EXPECT_EQ(tensor.dtype, other->dtype) << tensor.name;
    EXPECT_EQ(tensor.shape, other->shape) << tensor.name;
    EXPECT_EQ(tensor.data, other->data) << tensor.name;  // bit-exact, NaN payloads included
  }
}

// A directory of its own per test, removed afterwards.
class CheckpointFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("forkcast_checkpoint_test_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
};

// ---- dtypes and helpers --------------------------------------------------------------

TEST(DTypes, SizesAndNames) {
  EXPECT_EQ(dtype_size(DType::f32), 4U);
  EXPECT_EQ(dtype_size(DType::f64), 8U);
  EXPECT_EQ(dtype_size(DType::bf16), 2U);
  EXPECT_EQ(dtype_size(DType::boolean), 1U);
  EXPECT_EQ(dtype_size(DType::u64), 8U);
  EXPECT_EQ(dtype_name(DType::boolean), "BOOL");
  EXPECT_EQ(dtype_name(DType::f8_e4m3), "F8_E4M3");
  for (const char* name : {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U64", "U32",
                           "U16", "U8", "BOOL", "F8_E4M3", "F8_E5M2"}) {
    EXPECT_EQ(dtype_name(dtype_from_name(name)), name);
  }
  EXPECT_THROW(dtype_from_name("f32"), std::invalid_argument);
  EXPECT_EQ(dtype_of<float>(), DType::f32);
  EXPECT_EQ(dtype_of<std::int32_t>(), DType::i32);
}

TEST(TensorHelpers, FromSpanAndAsRoundTrip) {
  const std::vector<std::int32_t> values{-1, 2, -3, 4, -5, 6};
  const Tensor t = Tensor::from_span<std::int32_t>("w", {2, 3}, values);
  EXPECT_EQ(t.dtype, DType::i32);
  EXPECT_EQ(t.data.size(), 24U);
  EXPECT_EQ(t.num_elements(), 6U);
  EXPECT_EQ(t.as<std::int32_t>(), values);
}

TEST(TensorHelpers, MismatchesThrowNamingTheTensor) {
  const std::vector<float> five(5, 1.0f);
  try {
    Tensor::from_span<float>("w", {2, 3}, five);
    FAIL() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "tensor \"w\": 5 values do not fill its shape of 6 elements");
  }
  const Tensor t = Tensor::from_span<float>("w", {5}, five);
  try {
    t.as<double>();
    FAIL() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "tensor \"w\": dtype is F32, not F64");
  }
  EXPECT_THROW(element_count(std::vector<std::int64_t>{2, -1}), std::invalid_argument);
  EXPECT_THROW(element_count(std::vector<std::int64_t>{1LL << 40, 1LL << 40}),
               std::invalid_argument);
  EXPECT_EQ(element_count(std::vector<std::int64_t>{}), 1U);
}

TEST(CheckpointLookup, FindAndAt) {
  const Checkpoint checkpoint = sample_checkpoint();
  EXPECT_EQ(checkpoint.find("nope"), nullptr);
  EXPECT_EQ(checkpoint.at("bias").shape, std::vector<std::int64_t>{3});
  try {
    checkpoint.at("weights");
    FAIL() << "no throw";
  } catch (const std::out_of_range& e) {
    EXPECT_NE(std::string(e.what()).find("no tensor \"weights\""), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("\"q_table\""), std::string::npos);
  }
}

// ---- round trip and golden bytes -----------------------------------------------------

TEST(Safetensors, RoundTripIsBitExact) {
  const Checkpoint original = sample_checkpoint();
  const auto bytes = serialize_safetensors(original);
  const Checkpoint parsed = parse_safetensors(bytes, kSource);
  expect_same_tensors(original, parsed);
  // Parsed tensors come back in name order, which is the order they are written in.
  ASSERT_EQ(parsed.tensors.size(), 6U);
  EXPECT_EQ(parsed.tensors.front().name, "bias");
  EXPECT_EQ(parsed.tensors.back().name, "step");
  EXPECT_EQ(serialize_safetensors(parsed), bytes);

  const auto q = parsed.at("q_table").as<float>();
  const auto q0 = original.at("q_table").as<float>();
  ASSERT_EQ(q.size(), 30U);
  for (std::size_t i = 0; i < q.size(); ++i) {
    EXPECT_EQ(std::bit_cast<std::uint32_t>(q[i]), std::bit_cast<std::uint32_t>(q0[i])) << i;
  }
  EXPECT_TRUE(std::signbit(q[7]));
  EXPECT_EQ(parsed.at("step").as<std::int64_t>(), std::vector<std::int64_t>{123456789012345});
  EXPECT_TRUE(parsed.at("step").shape.empty());
  EXPECT_TRUE(parsed.at("empty").data.empty());
  EXPECT_EQ(parsed.at("empty").shape, (std::vector<std::int64_t>{0, 3}));
}

TEST(Safetensors, HeaderIsPaddedToEightBytes) {
  const auto bytes = serialize_safetensors(sample_checkpoint());
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= std::to_integer<std::uint64_t>(bytes[i]) << (8 * i);
  EXPECT_EQ(n % 8, 0U);
  EXPECT_EQ(static_cast<char>(bytes[8]), '{');
}

TEST(Safetensors, GoldenBytes) {
  Checkpoint checkpoint;
  checkpoint.metadata = {{"format", "pt"}};
  const std::vector<float> w{1.0f, -2.0f};
  checkpoint.tensors.push_back(Tensor::from_span<float>("w", {2}, w));
  // 85 bytes of JSON + 3 spaces = 88 = 0x58; then 1.0f and -2.0f, little-endian.
  const std::string expected_header =
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})"
      "   ";
  std::string expected("\x58\0\0\0\0\0\0\0", 8);
  expected += expected_header;
  expected += std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8);
  EXPECT_EQ(serialize_safetensors(checkpoint), to_bytes(expected));
  expect_same_tensors(checkpoint, parse_safetensors(to_bytes(expected), kSource));
}

TEST(Safetensors, NoMetadataAndNoTensors) {
  const auto bytes = serialize_safetensors(Checkpoint{});
  EXPECT_EQ(bytes, make_file("{}      "));
  const Checkpoint parsed = parse_safetensors(bytes, kSource);
  EXPECT_TRUE(parsed.metadata.empty());
  EXPECT_TRUE(parsed.tensors.empty());
}

TEST(Safetensors, ReadsWhatOtherWritersProduce) {
  // Unpadded header, keys in another order, insignificant whitespace, several zero-size
  // tensors at one offset: all legal.
  const std::string header =
      R"({ "b": {"shape": [2], "data_offsets": [4, 12], "dtype": "I32"},)"
      R"( "a": {"data_offsets": [0, 4], "dtype": "U8", "shape": [2, 2]},)"
      R"( "z0": {"dtype": "F64", "shape": [0], "data_offsets": [12, 12]},)"
      R"( "z1": {"dtype": "F64", "shape": [7, 0], "data_offsets": [12, 12]}})";
  const Checkpoint parsed = parse_safetensors(make_file(header, 12), kSource);
  ASSERT_EQ(parsed.tensors.size(), 4U);
  EXPECT_EQ(parsed.at("a").as<std::uint8_t>(), (std::vector<std::uint8_t>{0, 1, 2, 3}));
  EXPECT_EQ(parsed.at("b").as<std::int32_t>(), (std::vector<std::int32_t>{0x07060504,
                                                                           0x0b0a0908}));
  EXPECT_EQ(parsed.at("z1").shape, (std::vector<std::int64_t>{7, 0}));
}

// ---- every rule, with its message ----------------------------------------------------

TEST(SafetensorsRules, TooShortForTheLength) {
  EXPECT_EQ(parse_error(to_bytes("abc")),
            problem("file is 3 bytes, too short for the 8-byte header length"));
  EXPECT_EQ(parse_error({}), problem("file is 0 bytes, too short for the 8-byte header length"));
}

TEST(SafetensorsRules, HeaderLengthAbsurdOrPastTheEnd) {
  auto bytes = make_file("{}");
  bytes[5] = std::byte{0x01};  // 2^40 + 2
  EXPECT_EQ(parse_error(bytes),
            problem("header length 1099511627778 exceeds the limit of 100000000 bytes"));
  auto all_ones = make_file("{}");
  for (int i = 0; i < 8; ++i) all_ones[i] = std::byte{0xff};
  EXPECT_NE(parse_error(all_ones).find("exceeds the limit"), std::string::npos);
  auto long_header = make_file("{}");
  long_header[0] = std::byte{3};
  EXPECT_EQ(parse_error(long_header),
            problem("header length 3 runs past the end of the file (2 bytes follow the length)"));
}

TEST(SafetensorsRules, HeaderNotUtf8) {
  EXPECT_EQ(parse_error(make_file("{\"__metadata__\":{\"a\":\"\xff\"}}")),
            problem("header is not valid UTF-8 (byte 22 of the header)"));
  // Overlong encoding of '/' and a UTF-16 surrogate encoded as UTF-8.
  EXPECT_NE(parse_error(make_file("{\"\xc0\xaf\":1}")).find("not valid UTF-8"),
            std::string::npos);
  EXPECT_NE(parse_error(make_file("{\"\xed\xa0\x80\":1}")).find("not valid UTF-8"),
            std::string::npos);
  // Truncated multi-byte sequence at the very end of the header.
  EXPECT_NE(parse_error(make_file("{}\xe2\x9c")).find("not valid UTF-8"), std::string::npos);
}

TEST(SafetensorsRules, HeaderNotAJsonObject) {
  EXPECT_EQ(parse_error(make_file("[1, 2]")), problem("header does not start with '{'"));
  EXPECT_EQ(parse_error(make_file(" {}")), problem("header does not start with '{'"));
  EXPECT_EQ(parse_error(make_file("")), problem("header does not start with '{'"));
  const std::string truncated = parse_error(make_file("{\"a\":"));
  EXPECT_EQ(truncated.rfind(problem("header is not valid JSON: "), 0), 0U) << truncated;
  const std::string trailing = parse_error(make_file("{} {}"));
  EXPECT_EQ(trailing.rfind(problem("header is not valid JSON: "), 0), 0U) << trailing;
  // An escaped lone surrogate is valid UTF-8 on the wire but not a valid string.
  EXPECT_NE(parse_error(make_file(R"({"\ud800":1})")).find("not valid JSON"),
            std::string::npos);
}

TEST(SafetensorsRules, MetadataMustBeAnObjectOfStrings) {
  EXPECT_EQ(parse_error(make_file(R"({"__metadata__":[1]})")),
            problem("__metadata__ is a JSON array, not an object of strings"));
  EXPECT_EQ(parse_error(make_file(R"({"__metadata__":null})")),
            problem("__metadata__ is a JSON null, not an object of strings"));
  EXPECT_EQ(parse_error(make_file(R"({"__metadata__":{"lr":0.1}})")),
            problem("__metadata__ \"lr\" is a JSON number, not a string"));
}

TEST(SafetensorsRules, EntryMustHaveExactlyTheThreeKeys) {
  EXPECT_EQ(parse_error(make_file(R"({"w":[1]})")),
            problem("tensor \"w\" is a JSON array, not an object with dtype, shape and "
                    "data_offsets"));
  EXPECT_EQ(
      parse_error(make_file(
          R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}})", 4)),
      problem("tensor \"w\" has the unexpected key \"extra\" (only dtype, shape and "
              "data_offsets are allowed)"));
  EXPECT_EQ(parse_error(make_file(R"({"w":{"dtype":"F32","shape":[1]}})", 4)),
            problem("tensor \"w\" has no data_offsets"));
  EXPECT_EQ(parse_error(make_file(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4)),
            problem("tensor \"w\" has no dtype"));
}

TEST(SafetensorsRules, Dtype) {
  EXPECT_EQ(parse_error(make_file(R"({"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}})",
                                  16)),
            problem("tensor \"w\": unknown dtype \"F128\""));
  EXPECT_EQ(parse_error(make_file(R"({"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})",
                                  4)),
            problem("tensor \"w\": unknown dtype \"f32\""));
  EXPECT_EQ(
      parse_error(make_file(R"({"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", 4)),
      problem("tensor \"w\": dtype is a JSON number, not a string"));
}

TEST(SafetensorsRules, ShapeEntriesAreNonNegativeIntegers) {
  EXPECT_EQ(
      parse_error(make_file(R"({"w":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,4]}})", 4)),
      problem("tensor \"w\": shape entry 1 is -1, not an integer in [0, 2^63)"));
  EXPECT_EQ(
      parse_error(make_file(R"({"w":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", 4)),
      problem("tensor \"w\": shape entry 0 is 1.0, not an integer in [0, 2^63)"));
  EXPECT_EQ(
      parse_error(make_file(R"({"w":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}})", 4)),
      problem("tensor \"w\": shape entry 0 is a string, not an integer in [0, 2^63)"));
  EXPECT_EQ(parse_error(make_file(
                R"({"w":{"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,4]}})", 4)),
            problem("tensor \"w\": shape entry 0 is 9223372036854775808, not an integer in "
                    "[0, 2^63)"));
  EXPECT_EQ(
      parse_error(make_file(R"({"w":{"dtype":"F32","shape":{},"data_offsets":[0,4]}})", 4)),
      problem("tensor \"w\": shape is a JSON object, not an array"));
}

TEST(SafetensorsRules, DataOffsets) {
  EXPECT_EQ(
      parse_error(make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4]}})", 4)),
      problem("tensor \"w\": data_offsets is an array of 1 elements, not an array of two "
              "integers"));
  EXPECT_EQ(
      parse_error(make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 4)),
      problem("tensor \"w\": data_offsets [-4, 0] are not two non-negative integers"));
  EXPECT_EQ(
      parse_error(make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8)),
      problem("tensor \"w\": data_offsets [8, 4] begin after they end"));
  EXPECT_EQ(
      parse_error(make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,400]}})", 4)),
      problem("tensor \"w\": data_offsets [0, 400] run past the end of the 4-byte data buffer"));
  EXPECT_EQ(parse_error(make_file(
                R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[18446744073709551615,0]}})")),
            problem("tensor \"w\": data_offsets [18446744073709551615, 0] begin after they end"));
}

TEST(SafetensorsRules, SizeMustMatchShapeTimesDtype) {
  const std::string header =
      R"({"q_table":{"dtype":"F32","shape":[5,6],"data_offsets":[0,96]}})";
  EXPECT_EQ(parse_error(make_file(header, 96), "runs/x/ckpt.safetensors"),
            "runs/x/ckpt.safetensors: tensor \"q_table\": data_offsets [0, 96] do not match "
            "shape [5, 6] x F32 = 120 bytes");
  // 2^32 * 2^32 overflows before the dtype size is even applied; it must not wrap to 0.
  EXPECT_EQ(parse_error(make_file(
                R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}})")),
            problem("tensor \"w\": shape [4294967296, 4294967296, 0] x F32 overflows 64 bits"));
  EXPECT_EQ(parse_error(make_file(
                R"({"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}})")),
            problem("tensor \"w\": shape [4611686018427387904] x F64 overflows 64 bits"));
}

TEST(SafetensorsRules, TensorsTileTheBuffer) {
  const auto entry = [](const char* name, int begin, int end) {
    return "\"" + std::string(name) + "\":{\"dtype\":\"U8\",\"shape\":[" +
           std::to_string(end - begin) + "],\"data_offsets\":[" + std::to_string(begin) + "," +
           std::to_string(end) + "]}";
  };
  EXPECT_EQ(parse_error(make_file("{" + entry("a", 0, 4) + "," + entry("b", 8, 12) + "}", 12)),
            problem("tensor \"b\": data_offsets [8, 12] leave a hole: tensor \"a\" ends at 4"));
  EXPECT_EQ(parse_error(make_file("{" + entry("a", 4, 8) + "}", 8)),
            problem("tensor \"a\": data_offsets [4, 8] leave a hole: the data buffer starts at 0"));
  EXPECT_EQ(parse_error(make_file("{" + entry("a", 0, 8) + "," + entry("b", 4, 8) + "}", 8)),
            problem("tensor \"b\": data_offsets [4, 8] overlap tensor \"a\", which ends at 8"));
  EXPECT_EQ(parse_error(make_file("{" + entry("a", 0, 4) + "," + entry("b", 0, 4) + "}", 4)),
            problem("tensor \"b\": data_offsets [0, 4] overlap tensor \"a\", which ends at 4"));
  EXPECT_EQ(parse_error(make_file("{" + entry("a", 0, 4) + "}", 8)),
            problem("tensors cover 4 bytes of the 8-byte data buffer; 4 trailing bytes belong "
                    "to no tensor"));
  EXPECT_EQ(parse_error(make_file("{}", 1)),
            problem("tensors cover 0 bytes of the 1-byte data buffer; 1 trailing bytes belong "
                    "to no tensor"));
}

TEST(SafetensorsRules, DuplicateNamesAndKeys) {
  const std::string w = R"("w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]})";
  EXPECT_EQ(parse_error(make_file("{" + w + "," + w + "}", 1)),
            problem("tensor \"w\" appears more than once in the header"));
  EXPECT_EQ(
      parse_error(make_file(R"({"w":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
                            1)),
      problem("header repeats the key \"dtype\" inside an object"));
  EXPECT_EQ(parse_error(make_file(R"({"__metadata__":{"a":"1","a":"2"}})")),
            problem("header repeats the key \"a\" inside an object"));
  EXPECT_EQ(parse_error(make_file(R"({"__metadata__":{},"__metadata__":{}})")),
            problem("tensor \"__metadata__\" appears more than once in the header"));
}

// ---- robustness ----------------------------------------------------------------------

TEST(SafetensorsRobustness, EveryTruncationIsRejected) {
  const auto bytes = serialize_safetensors(sample_checkpoint());
  for (std::size_t length = 0; length < bytes.size(); ++length) {
    const std::vector<std::byte> prefix(bytes.begin(),
                                        bytes.begin() + static_cast<std::ptrdiff_t>(length));
    EXPECT_THROW(parse_safetensors(prefix, kSource), CheckpointError) << length;
  }
}

TEST(SafetensorsRobustness, CorruptedHeaderBytesOnlyEverThrowCheckpointError) {
  const auto bytes = serialize_safetensors(sample_checkpoint());
  std::uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= std::to_integer<std::uint64_t>(bytes[i]) << (8 * i);
  // Which header bytes lie inside a JSON string (between its quotes, escapes included).
  std::vector<bool> in_string(8 + header_len, false);
  for (std::size_t pos = 8, open = 0; pos < 8 + header_len; ++pos) {
    const char c = static_cast<char>(bytes[pos]);
    if (open != 0 && c == '\\') {
      in_string[pos] = in_string[pos + 1] = true;
      ++pos;
    } else if (c == '"') {
      open = open != 0 ? 0 : pos;
    } else {
      in_string[pos] = open != 0;
    }
  }
  const auto is_structure = [&](std::size_t pos) {
    const char c = static_cast<char>(bytes[pos]);
    return !in_string[pos] && std::string_view("{}[]:,\"").find(c) != std::string_view::npos;
  };
  int parsed = 0, rejected = 0;
  int parsed_in_strings = 0, unchanged_in_strings = 0;  // edits inside a string that parsed
  int parsed_length = 0, parsed_structure = 0;           // edits that must never parse
  int changed_padding = 0;                               // padding edits read as other data
  for (std::size_t pos = 0; pos < 8 + header_len; ++pos) {
    for (const unsigned char value : {0x00, 0x22, 0x2c, 0x39, 0x5d, 0x7d, 0x80, 0xff}) {
      auto corrupt = bytes;
      if (corrupt[pos] == std::byte{value}) continue;
      corrupt[pos] = std::byte{value};
      try {
        const Checkpoint read = parse_safetensors(corrupt, kSource);  // edits inside a string may stay valid
        ++parsed;
        const bool same = serialize_safetensors(read) == bytes;
        if (pos < 8) {
          ++parsed_length;
        } else if (in_string[pos]) {
          ++parsed_in_strings;
          if (same) ++unchanged_in_strings;
        } else if (is_structure(pos)) {
          ++parsed_structure;
        } else if (bytes[pos] == std::byte{' '} && !same) {
          ++changed_padding;
        }
      } catch (const CheckpointError&) {
        ++rejected;
      }  // anything else escapes and fails the test
    }
  }
  // Both outcomes occur: a parser that accepted every edit, or refused every one, fails here.
  EXPECT_GT(rejected, 0);
  EXPECT_GT(parsed_in_strings, 0) << "a digit over a letter of a metadata value or tensor name is still valid";
  EXPECT_GT(rejected, parsed) << "most single-byte edits break the header";
  // A changed length prefix moves the end of the header; a changed brace, bracket, colon,
  // comma or quote breaks the JSON: neither ever parses.
  EXPECT_EQ(parsed_length, 0);
  EXPECT_EQ(parsed_structure, 0);
  // An edit inside a string that parses is read back: the string changed, nothing was ignored.
  EXPECT_EQ(unchanged_in_strings, 0);
  // The padding holds no data: an edit there never reads as a different checkpoint.
  EXPECT_EQ(changed_padding, 0);
}

// Found while writing the unit tests of issue 17: a NUL byte written over the header's
// padding (or anywhere after its JSON) was accepted, because the JSON reader takes a NUL for
// the end of its input and never looked at what followed.
TEST(SafetensorsRobustness, ANulByteInTheHeaderIsRejected) {
  const auto bytes = serialize_safetensors(sample_checkpoint());
  std::uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= std::to_integer<std::uint64_t>(bytes[i]) << (8 * i);
  // The header's last byte (padding or its closing brace), then one inside its JSON: both
  // are refused, naming the byte.
  for (const std::size_t at : {static_cast<std::size_t>(8 + header_len - 1), std::size_t{9}}) {
    auto corrupt = bytes;
    corrupt[at] = std::byte{0};
    try {
      (void)parse_safetensors(corrupt, kSource);
      ADD_FAILURE() << "a NUL at byte " << at << " was accepted";
    } catch (const CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find("NUL byte"), std::string::npos) << e.what();
    }
  }
}

TEST(SafetensorsRobustness, RandomMutationsOnlyEverThrowCheckpointError) {
  const auto original = serialize_safetensors(sample_checkpoint());
  std::mt19937_64 rng(1234);
  for (int round = 0; round < 3000; ++round) {
    auto bytes = original;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const std::size_t pos = rng() % bytes.size();
      switch (rng() % 3) {
        case 0: bytes[pos] = static_cast<std::byte>(rng() & 0xFF); break;
        case 1: bytes.erase(bytes.begin() + static_cast<std::ptrdiff_t>(pos)); break;
        default:
          bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(pos),
                       static_cast<std::byte>(rng() & 0xFF));
      }
    }
    try {
      const Checkpoint parsed = parse_safetensors(bytes, kSource);
      expect_same_tensors(parsed, parse_safetensors(serialize_safetensors(parsed), kSource));
    } catch (const CheckpointError&) {
    }
  }
}

TEST(SafetensorsRobustness, DeeplyNestedJsonIsRejectedBeforeParsing) {
  const auto nested_shape = [](std::size_t depth) {
    return R"({"w":{"dtype":"U8","shape":)" + std::string(depth, '[') +
           std::string(depth, ']') + R"(,"data_offsets":[0,0]}})";
  };
  EXPECT_EQ(parse_error(make_file(nested_shape(200'000))),
            problem("header nests JSON deeper than 64 levels (a valid header needs 3)"));
  // Brackets inside strings do not count.
  const std::string in_string = R"({"__metadata__":{"k":")" + std::string(1000, '[') + R"("}})";
  EXPECT_EQ(parse_safetensors(make_file(in_string), kSource).metadata.at("k").size(), 1000U);
  // Shallow mistakes keep their specific message.
  EXPECT_EQ(parse_error(make_file(nested_shape(10))),
            problem("tensor \"w\": shape entry 0 is an array of 1 elements, not an integer in "
                    "[0, 2^63)"));
}

TEST(SafetensorsRobustness, FuzzSeedCorpusFilesParseAsNamed) {
  // The fuzzer's seeds double as fixtures: valid_* parse, invalid_* are rejected, and the
  // one written the way forkcast writes files is reproduced byte for byte.
  const fs::path corpus = fs::path(FORKCAST_SOURCE_DIR) / "tests/fuzz/corpus/safetensors";
  const fs::path ours = corpus / "valid_forkcast.safetensors";
  const Checkpoint parsed = load_safetensors(ours);
  EXPECT_EQ(parsed.metadata.at("format"), "pt");
  EXPECT_EQ(parsed.at("step").as<std::int64_t>(), std::vector<std::int64_t>{42});
  std::ifstream in(ours, std::ios::binary);
  const std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(serialize_safetensors(parsed), to_bytes(raw));

  const Checkpoint other = load_safetensors(corpus / "valid_other_writer.safetensors");
  EXPECT_EQ(other.at("mask").dtype, DType::boolean);
  EXPECT_EQ(other.at("w").dtype, DType::bf16);
  EXPECT_EQ(other.at("z").as<std::int16_t>(), std::vector<std::int16_t>{0x7fff});
  EXPECT_THROW(load_safetensors(corpus / "invalid_overlap.safetensors"), CheckpointError);
  EXPECT_THROW(load_safetensors(corpus / "invalid_truncated.safetensors"), CheckpointError);
}

// ---- serialize errors ----------------------------------------------------------------

TEST(SafetensorsSerialize, RejectsCheckpointsThatWouldBeInvalidFiles) {
  const std::vector<float> one{1.0f};
  const auto serialize_error = [](const Checkpoint& c) -> std::string {
    try {
      serialize_safetensors(c);
    } catch (const CheckpointError& e) {
      return e.what();
    }
    return "";
  };
  Checkpoint duplicate;
  duplicate.tensors.push_back(Tensor::from_span<float>("w", {1}, one));
  duplicate.tensors.push_back(Tensor::from_span<float>("w", {1}, one));
  EXPECT_EQ(serialize_error(duplicate),
            "serialize_safetensors: tensor \"w\" appears more than once");
  Checkpoint reserved;
  reserved.tensors.push_back(Tensor::from_span<float>("__metadata__", {1}, one));
  EXPECT_EQ(serialize_error(reserved),
            "serialize_safetensors: tensor \"__metadata__\": the name is reserved for metadata");
  Checkpoint short_data;
  short_data.tensors.push_back(Tensor{"w", DType::f32, {2, 2}, std::vector<std::byte>(12)});
  EXPECT_EQ(serialize_error(short_data),
            "serialize_safetensors: tensor \"w\": data has 12 bytes but shape [2, 2] x F32 "
            "needs 16");
  Checkpoint negative;
  negative.tensors.push_back(Tensor{"w", DType::u8, {-1}, {}});
  EXPECT_NE(serialize_error(negative).find("negative"), std::string::npos);
  Checkpoint bad_utf8;
  bad_utf8.metadata["k"] = "\xc3";
  EXPECT_EQ(serialize_error(bad_utf8),
            "serialize_safetensors: __metadata__ \"k\" is not valid UTF-8");
}

// ---- files ---------------------------------------------------------------------------

TEST_F(CheckpointFiles, SaveThenLoadRoundTrips) {
  const fs::path path = dir_ / "ckpt.safetensors";
  const Checkpoint original = sample_checkpoint();
  save_safetensors(path, original);
  expect_same_tensors(original, load_safetensors(path));
  EXPECT_FALSE(fs::exists(dir_ / "ckpt.safetensors.tmp"));
  EXPECT_EQ(fs::file_size(path), serialize_safetensors(original).size());
}

TEST_F(CheckpointFiles, SaveReplacesAnExistingFileAndLeavesNoTemporary) {
  const fs::path path = dir_ / "ckpt.safetensors";
  save_safetensors(path, sample_checkpoint());
  Checkpoint second;
  second.metadata["version"] = "2";
  save_safetensors(path, second);
  EXPECT_EQ(load_safetensors(path).metadata.at("version"), "2");
  std::vector<fs::path> entries;
  for (const auto& entry : fs::directory_iterator(dir_)) entries.push_back(entry.path());
  EXPECT_EQ(entries, std::vector<fs::path>{path});
}

TEST_F(CheckpointFiles, FailedSaveKeepsTheOldFile) {
  const fs::path path = dir_ / "ckpt.safetensors";
  const Checkpoint good = sample_checkpoint();
  save_safetensors(path, good);
  Checkpoint bad;
  bad.tensors.push_back(Tensor{"w", DType::f32, {3}, std::vector<std::byte>(5)});
  try {
    save_safetensors(path, bad);
    FAIL() << "no throw";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(e.source(), path.string());
    EXPECT_NE(e.problem().find("tensor \"w\""), std::string::npos);
  }
  expect_same_tensors(good, load_safetensors(path));
  EXPECT_FALSE(fs::exists(dir_ / "ckpt.safetensors.tmp"));
}

TEST_F(CheckpointFiles, SaveIntoAMissingDirectoryNamesThePath) {
  const fs::path path = dir_ / "no_such_dir" / "ckpt.safetensors";
  try {
    save_safetensors(path, sample_checkpoint());
    FAIL() << "no throw";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path.string() + ": cannot create ", 0), 0U)
        << e.what();
  }
}

TEST_F(CheckpointFiles, LoadOfAMissingFileNamesIt) {
  const fs::path path = dir_ / "missing.safetensors";
  try {
    load_safetensors(path);
    FAIL() << "no throw";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(std::string(e.what()), path.string() + ": cannot open: No such file or directory");
  }
  EXPECT_THROW(load_safetensors(dir_), CheckpointError);  // a directory is not a file
}

TEST_F(CheckpointFiles, LoadNamesTheFileInValidationErrors) {
  const fs::path path = dir_ / "bad.safetensors";
  {
    std::ofstream out(path, std::ios::binary);
    out << "short";
  }
  try {
    load_safetensors(path);
    FAIL() << "no throw";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(std::string(e.what()),
              path.string() + ": file is 5 bytes, too short for the 8-byte header length");
  }
}

TEST_F(CheckpointFiles, Sha256MatchesKnownDigests) {
  const fs::path abc = dir_ / "abc";
  const fs::path empty = dir_ / "empty";
  {
    std::ofstream(abc, std::ios::binary) << "abc";
    std::ofstream(empty, std::ios::binary);
  }
  // FIPS 180-2 test vector and the digest of the empty message.
  EXPECT_EQ(sha256_file_hex(abc),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_file_hex(empty),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_THROW(sha256_file_hex(dir_ / "missing"), CheckpointError);
}

}  // namespace
}  // namespace forkcast::policy
