// Checkpoints in the safetensors format (Hugging Face), so that PyTorch's
// safetensors.torch.load_file can read what forkcast trains, and the other way round.
//
// File layout:
//   8 bytes   N, the header length, unsigned 64-bit little-endian
//   N bytes   a UTF-8 JSON object:
//               {"__metadata__": {"key": "value", ...},            (optional, strings only)
//                "<tensor name>": {"dtype": "F32", "shape": [5, 6],
//                                  "data_offsets": [begin, end]}, ...}
//   the rest  the data buffer; each tensor's bytes are [begin, end) of it, row-major,
//             little-endian.
//
// Reading (parse_safetensors, load_safetensors) checks every rule below before any tensor
// byte is copied, never reads outside the input, and reports the first broken rule as a
// CheckpointError "<file>: <problem>":
//   - the input holds the 8-byte length, N <= kMaxHeaderBytes and 8 + N <= input size;
//   - the header is valid UTF-8 and JSON, starts with '{' (as the reference reader
//     requires), is an object, nests at most 64 levels deep (a valid one needs 3; this
//     bounds the parser's memory), and no object in it repeats a key (a repeated tensor
//     name included);
//   - "__metadata__", if present, is an object whose values are all strings;
//   - every other entry is an object with exactly "dtype", "shape" and "data_offsets";
//     dtype is one of the names of DType below; shape is an array of integers in
//     [0, 2^63); data_offsets is an array of two integers with begin <= end <= buffer size;
//   - end - begin == product(shape) * dtype_size(dtype), computed without overflow;
//   - sorted by offset, the tensors cover the buffer exactly: no hole, no overlap, nothing
//     left over at the end (the reference implementation rejects all three).
//
// Writing (serialize_safetensors, save_safetensors) emits compact JSON with "__metadata__"
// first (omitted when empty), then the tensors in name order, each entry's keys in the order
// dtype, shape, data_offsets, the data laid out in that same order, and the header padded
// with spaces to a multiple of 8 bytes so that the data buffer starts 8-byte aligned (as the
// reference writer does). Same Checkpoint, same bytes.
//
// Only little-endian hosts are supported (checked at compile time): tensor bytes are
// copied as they are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace forkcast::policy {

// Element types, named in files by their safetensors names: F64 F32 F16 BF16 I64 I32 I16
// I8 U64 U32 U16 U8 BOOL F8_E4M3 F8_E5M2. BOOL is one byte per element. F16, BF16 and the
// F8 types have no C++ element type here: they are carried as raw bytes.
enum class DType : std::uint8_t {
  f64, f32, f16, bf16, i64, i32, i16, i8, u64, u32, u16, u8, boolean, f8_e4m3, f8_e5m2,
};

// Bytes per element: 1, 2, 4 or 8.
std::size_t dtype_size(DType dtype) noexcept;
// The safetensors name, e.g. "F32".
std::string_view dtype_name(DType dtype) noexcept;
// The DType a safetensors name stands for; throws std::invalid_argument naming an unknown one.
DType dtype_from_name(std::string_view name);

// The DType that stores a C++ arithmetic type; only these types work with
// Tensor::from_span and Tensor::as.
template <typename T>
inline constexpr bool kHasDType =
    std::is_same_v<T, double> || std::is_same_v<T, float> || std::is_same_v<T, std::int64_t> ||
    std::is_same_v<T, std::int32_t> || std::is_same_v<T, std::int16_t> ||
    std::is_same_v<T, std::int8_t> || std::is_same_v<T, std::uint64_t> ||
    std::is_same_v<T, std::uint32_t> || std::is_same_v<T, std::uint16_t> ||
    std::is_same_v<T, std::uint8_t>;

template <typename T>
  requires kHasDType<T>
constexpr DType dtype_of() noexcept {
  if constexpr (std::is_same_v<T, double>) return DType::f64;
  else if constexpr (std::is_same_v<T, float>) return DType::f32;
  else if constexpr (std::is_same_v<T, std::int64_t>) return DType::i64;
  else if constexpr (std::is_same_v<T, std::int32_t>) return DType::i32;
  else if constexpr (std::is_same_v<T, std::int16_t>) return DType::i16;
  else if constexpr (std::is_same_v<T, std::int8_t>) return DType::i8;
  else if constexpr (std::is_same_v<T, std::uint64_t>) return DType::u64;
  else if constexpr (std::is_same_v<T, std::uint32_t>) return DType::u32;
  else if constexpr (std::is_same_v<T, std::uint16_t>) return DType::u16;
  else return DType::u8;
}

// A checkpoint failed a rule of the format, or its file could not be read or written.
// what() is "<source>: <problem>"; source is the file path (or the source_name given to
// parse_safetensors). It is a std::invalid_argument because the usual cause is a bad file.
class CheckpointError : public std::invalid_argument {
 public:
  CheckpointError(std::string source, std::string problem);
  const std::string& source() const noexcept { return source_; }
  const std::string& problem() const noexcept { return problem_; }

 private:
  std::string source_;
  std::string problem_;
};

// product(shape) (1 for a scalar, shape {}); throws std::invalid_argument on a negative
// entry or a product that does not fit in std::size_t.
std::size_t element_count(std::span<const std::int64_t> shape);

struct Tensor {
  std::string name;
  DType dtype = DType::f32;
  std::vector<std::int64_t> shape;  // row-major; {} is a scalar
  std::vector<std::byte> data;      // element_count(shape) * dtype_size(dtype) bytes, LE

  // Copies values into a tensor of dtype_of<T>(). Throws std::invalid_argument naming the
  // tensor when values.size() != element_count(shape).
  template <typename T>
    requires kHasDType<T>
  static Tensor from_span(std::string name, std::vector<std::int64_t> shape,
                          std::span<const T> values);

  // The elements as T. Throws std::invalid_argument naming the tensor when dtype is not
  // dtype_of<T>() or data.size() is not a whole number of elements.
  template <typename T>
    requires kHasDType<T>
  std::vector<T> as() const;

  std::size_t num_elements() const { return element_count(shape); }
};

struct Checkpoint {
  // The "__metadata__" strings: config, env spec, git revision, ...
  std::map<std::string, std::string> metadata;
  // Any order; written in name order. Names must be unique and not "__metadata__".
  std::vector<Tensor> tensors;

  // nullptr when there is no tensor of that name.
  const Tensor* find(std::string_view name) const noexcept;
  // Throws std::out_of_range naming the missing tensor and the ones present.
  const Tensor& at(std::string_view name) const;
  // The metadata value under `key`; a checkpoint without it is refused with a
  // CheckpointError naming `source` (the file) and the missing key.
  const std::string& metadata_at(std::string_view key, std::string_view source) const;
};

// Largest header accepted or written, as in the reference implementation: a bigger one is
// a corrupt length or an attack, not a model.
inline constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

// The file's bytes. Throws CheckpointError (source "serialize_safetensors") when the
// checkpoint cannot be written as a valid file: a duplicate or reserved tensor name, a name
// or metadata string that is not valid UTF-8, a tensor whose data size does not match its
// shape and dtype, a negative shape entry, or a header over kMaxHeaderBytes.
std::vector<std::byte> serialize_safetensors(const Checkpoint& checkpoint);

// Parses and validates a whole file held in memory (see the rules at the top); source_name
// is what errors call the input. Throws CheckpointError only, whatever the bytes.
Checkpoint parse_safetensors(std::span<const std::byte> bytes, std::string_view source_name);

// Writes atomically: the bytes go to "<path>.tmp", which is fsynced and renamed over path,
// and then the directory is fsynced; a crash leaves either the old file or the new one under
// path, never a part of one. The parent directory must exist. One writer per path at a time
// (they would share the .tmp file). Throws CheckpointError naming path (nothing is left
// behind under "<path>.tmp" on failure).
void save_safetensors(const std::filesystem::path& path, const Checkpoint& checkpoint);

// Reads and parses path. Throws CheckpointError naming path when it cannot be read or is not
// a valid file.
Checkpoint load_safetensors(const std::filesystem::path& path);

// Lower-case hex SHA-256 of the file's bytes (OpenSSL EVP), what the model registry records.
// Throws CheckpointError naming path when it cannot be read.
std::string sha256_file_hex(const std::filesystem::path& path);

// ---- template definitions ------------------------------------------------------------

template <typename T>
  requires kHasDType<T>
Tensor Tensor::from_span(std::string name, std::vector<std::int64_t> shape,
                         std::span<const T> values) {
  const std::size_t count = element_count(shape);
  if (values.size() != count) {
    throw std::invalid_argument("tensor \"" + name + "\": " + std::to_string(values.size()) +
                                " values do not fill its shape of " + std::to_string(count) +
                                " elements");
  }
  Tensor tensor{std::move(name), dtype_of<T>(), std::move(shape), {}};
  tensor.data.resize(values.size_bytes());
  if (!values.empty()) std::memcpy(tensor.data.data(), values.data(), values.size_bytes());
  return tensor;
}

template <typename T>
  requires kHasDType<T>
std::vector<T> Tensor::as() const {
  if (dtype != dtype_of<T>()) {
    throw std::invalid_argument("tensor \"" + name + "\": dtype is " +
                                std::string(dtype_name(dtype)) + ", not " +
                                std::string(dtype_name(dtype_of<T>())));
  }
  if (data.size() % sizeof(T) != 0) {
    throw std::invalid_argument("tensor \"" + name + "\": " + std::to_string(data.size()) +
                                " bytes is not a whole number of " +
                                std::string(dtype_name(dtype)) + " elements");
  }
  std::vector<T> values(data.size() / sizeof(T));
  if (!values.empty()) std::memcpy(values.data(), data.data(), data.size());
  return values;
}

}  // namespace forkcast::policy
