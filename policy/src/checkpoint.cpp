#include "forkcast/policy/checkpoint.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <tuple>
#include <utility>

namespace forkcast::policy {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian and is copied as is");

namespace {

constexpr std::size_t kLengthBytes = 8;
constexpr std::string_view kMetadataKey = "__metadata__";
constexpr std::string_view kSerializeSource = "serialize_safetensors";
constexpr std::size_t kMaxJsonDepth = 64;

struct DTypeInfo {
  DType dtype;
  std::string_view name;
  std::size_t size;
};

// Indexed by the enum's value.
constexpr std::array<DTypeInfo, 15> kDTypes{{
    {DType::f64, "F64", 8},
    {DType::f32, "F32", 4},
    {DType::f16, "F16", 2},
    {DType::bf16, "BF16", 2},
    {DType::i64, "I64", 8},
    {DType::i32, "I32", 4},
    {DType::i16, "I16", 2},
    {DType::i8, "I8", 1},
    {DType::u64, "U64", 8},
    {DType::u32, "U32", 4},
    {DType::u16, "U16", 2},
    {DType::u8, "U8", 1},
    {DType::boolean, "BOOL", 1},
    {DType::f8_e4m3, "F8_E4M3", 1},
    {DType::f8_e5m2, "F8_E5M2", 1},
}};

const DTypeInfo* find_dtype(std::string_view name) {
  for (const auto& info : kDTypes) {
    if (info.name == name) return &info;
  }
  return nullptr;
}

bool valid_dtype(DType dtype) {
  return static_cast<std::size_t>(dtype) < kDTypes.size();
}

// Offset of the first byte that breaks UTF-8 (overlong forms, surrogates and code points
// past U+10FFFF included), or npos. Checked before the JSON parser sees the header so the
// error can say where, and for strings we are about to write.
std::size_t find_invalid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // past U+10FFFF
    } else {
      return i;
    }
    if (n - i < len) return i;
    if (s[i + 1] < lo || s[i + 1] > hi) return i;
    for (std::size_t k = 2; k < len; ++k) {
      if (s[i + k] < 0x80 || s[i + k] > 0xBF) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

std::optional<std::uint64_t> checked_mul(std::uint64_t a, std::uint64_t b) {
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return std::nullopt;
  return a * b;
}

// product(shape) * element_size, evaluated left to right with every step checked as the
// reference reader does, so that anything we accept PyTorch accepts too.
std::optional<std::uint64_t> checked_byte_size(std::span<const std::uint64_t> shape,
                                               std::uint64_t element_size) {
  std::uint64_t count = 1;
  for (const std::uint64_t dim : shape) {
    const auto next = checked_mul(count, dim);
    if (!next) return std::nullopt;
    count = *next;
  }
  return checked_mul(count, element_size);
}

template <typename Int>
std::string format_list(std::span<const Int> values) {
  std::string out = "[";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(values[i]);
  }
  return out + "]";
}

std::string quote_name(std::string_view name) {
  // Appended piecewise: GCC 12 warns (-Wrestrict, a known false positive) on "\"" + s + "\"".
  std::string out;
  out.reserve(name.size() + 2);
  out.push_back('"');
  out.append(name);
  out.push_back('"');
  return out;
}

// A short description of an untrusted JSON value for an error message. Containers are not
// dumped: dump() recurses, and a hostile header can nest arrays millions deep.
std::string describe(const nlohmann::json& value) {
  if (value.is_array()) return "an array of " + std::to_string(value.size()) + " elements";
  if (value.is_object()) return "an object";
  if (value.is_string()) return "a string";
  return value.dump();
}

std::uint64_t read_u64_le(const std::byte* p) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < kLengthBytes; ++i) {
    value |= static_cast<std::uint64_t>(std::to_integer<unsigned char>(p[i])) << (8 * i);
  }
  return value;
}

// One tensor's header entry once it has passed every per-entry rule.
struct Entry {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t begin;
  std::uint64_t end;
};

class Parser {
 public:
  Parser(std::span<const std::byte> bytes, std::string_view source)
      : bytes_(bytes), source_(source) {}

  Checkpoint run() {
    if (bytes_.size() < kLengthBytes) {
      fail("file is " + std::to_string(bytes_.size()) +
           " bytes, too short for the 8-byte header length");
    }
    const std::uint64_t header_len = read_u64_le(bytes_.data());
    if (header_len > kMaxHeaderBytes) {
      fail("header length " + std::to_string(header_len) + " exceeds the limit of " +
           std::to_string(kMaxHeaderBytes) + " bytes");
    }
    const std::uint64_t available = bytes_.size() - kLengthBytes;
    if (header_len > available) {
      fail("header length " + std::to_string(header_len) + " runs past the end of the file (" +
           std::to_string(available) + " bytes follow the length)");
    }
    const std::string_view header(reinterpret_cast<const char*>(bytes_.data() + kLengthBytes),
                                  static_cast<std::size_t>(header_len));
    const std::size_t data_start = kLengthBytes + static_cast<std::size_t>(header_len);
    const std::span<const std::byte> buffer = bytes_.subspan(data_start);

    const nlohmann::json root = parse_header(header);

    Checkpoint checkpoint;
    std::vector<Entry> entries;
    for (const auto& [key, value] : root.items()) {
      if (key == kMetadataKey) {
        checkpoint.metadata = parse_metadata(value);
      } else {
        entries.push_back(parse_entry(key, value, buffer.size()));
      }
    }
    check_coverage(entries, buffer.size());

    // Every rule holds: only now are tensor bytes copied. Entries are in name order (the
    // JSON object is a sorted map), the order serialize_safetensors writes.
    checkpoint.tensors.reserve(entries.size());
    for (auto& entry : entries) {
      const auto first = buffer.begin() + static_cast<std::ptrdiff_t>(entry.begin);
      const auto last = buffer.begin() + static_cast<std::ptrdiff_t>(entry.end);
      checkpoint.tensors.push_back(
          Tensor{std::move(entry.name), entry.dtype, std::move(entry.shape), {first, last}});
    }
    return checkpoint;
  }

 private:
  [[noreturn]] void fail(std::string problem) const {
    throw CheckpointError(std::string(source_), std::move(problem));
  }

  // A valid header nests 3 levels deep (object, entry, shape); a hostile one can nest
  // millions, and every level costs the JSON parser heap. Reject early, with a bound loose
  // enough that shallow mistakes still get their specific message.
  void check_nesting(std::string_view header) const {
    std::size_t depth = 0;
    bool in_string = false;
    bool escaped = false;
    for (const char c : header) {
      if (in_string) {
        if (escaped) {
          escaped = false;
        } else if (c == '\\') {
          escaped = true;
        } else if (c == '"') {
          in_string = false;
        }
      } else if (c == '"') {
        in_string = true;
      } else if (c == '{' || c == '[') {
        if (++depth > kMaxJsonDepth) {
          fail("header nests JSON deeper than " + std::to_string(kMaxJsonDepth) +
               " levels (a valid header needs 3)");
        }
      } else if ((c == '}' || c == ']') && depth > 0) {
        --depth;
      }
    }
  }

  nlohmann::json parse_header(std::string_view header) const {
    if (const std::size_t bad = find_invalid_utf8(header); bad != std::string_view::npos) {
      fail("header is not valid UTF-8 (byte " + std::to_string(bad) + " of the header)");
    }
    if (header.empty() || header.front() != '{') {
      fail("header does not start with '{'");
    }
    // JSON text holds no raw NUL (a string writes it \u0000), and nlohmann's reader would
    // take one for the end of its input, accepting whatever follows it unread.
    if (const auto nul = header.find('\0'); nul != std::string_view::npos) {
      fail("header has a NUL byte (byte " + std::to_string(nul) + " of the header)");
    }
    check_nesting(header);
    // nlohmann keeps the last of repeated keys silently; a repeated tensor name would lose a
    // tensor, so the parse callback records the first repeat of any key at any depth.
    std::vector<std::set<std::string>> open_objects;
    std::optional<std::pair<std::string, bool>> repeated;  // key, at top level
    const auto on_event = [&](int /*depth*/, nlohmann::json::parse_event_t event,
                              nlohmann::json& parsed) {
      using Event = nlohmann::json::parse_event_t;
      if (event == Event::object_start) {
        open_objects.emplace_back();
      } else if (event == Event::object_end) {
        if (!open_objects.empty()) open_objects.pop_back();
      } else if (event == Event::key && !open_objects.empty() && !repeated) {
        const auto& key = parsed.get_ref<const std::string&>();
        if (!open_objects.back().insert(key).second) {
          repeated.emplace(key, open_objects.size() == 1);
        }
      }
      return true;
    };
    nlohmann::json root;
    try {
      root = nlohmann::json::parse(header.begin(), header.end(), on_event);
    } catch (const nlohmann::json::exception& e) {
      fail(std::string("header is not valid JSON: ") + e.what());
    }
    if (repeated) {
      if (repeated->second) {
        fail("tensor " + quote_name(repeated->first) + " appears more than once in the header");
      }
      fail("header repeats the key " + quote_name(repeated->first) + " inside an object");
    }
    if (!root.is_object()) fail("header is not a JSON object");
    return root;
  }

  std::map<std::string, std::string> parse_metadata(const nlohmann::json& value) const {
    if (!value.is_object()) {
      fail("__metadata__ is a JSON " + std::string(value.type_name()) +
           ", not an object of strings");
    }
    std::map<std::string, std::string> metadata;
    for (const auto& [key, item] : value.items()) {
      if (!item.is_string()) {
        fail("__metadata__ " + quote_name(key) + " is a JSON " + std::string(item.type_name()) +
             ", not a string");
      }
      metadata.emplace(key, item.get<std::string>());
    }
    return metadata;
  }

  // An integer in [0, limit], or nullopt for anything else (negative, float, non-number).
  // "-0" parses as a signed zero and is accepted, as serde_json accepts it for a usize.
  static std::optional<std::uint64_t> as_unsigned(const nlohmann::json& value,
                                                  std::uint64_t limit) {
    std::uint64_t v = 0;
    if (value.is_number_unsigned()) {
      v = value.get<std::uint64_t>();
    } else if (value.is_number_integer() && value.get<std::int64_t>() == 0) {
      v = 0;
    } else {
      return std::nullopt;
    }
    if (v > limit) return std::nullopt;
    return v;
  }

  Entry parse_entry(const std::string& name, const nlohmann::json& value,
                    std::size_t buffer_size) const {
    const std::string who = "tensor " + quote_name(name);
    if (!value.is_object()) {
      fail(who + " is a JSON " + std::string(value.type_name()) +
           ", not an object with dtype, shape and data_offsets");
    }
    for (const auto& [key, item] : value.items()) {
      if (key != "dtype" && key != "shape" && key != "data_offsets") {
        fail(who + " has the unexpected key " + quote_name(key) +
             " (only dtype, shape and data_offsets are allowed)");
      }
    }
    for (const char* required : {"dtype", "shape", "data_offsets"}) {
      if (!value.contains(required)) fail(who + " has no " + required);
    }

    const auto& dtype_json = value.at("dtype");
    if (!dtype_json.is_string()) {
      fail(who + ": dtype is a JSON " + std::string(dtype_json.type_name()) + ", not a string");
    }
    const auto& dtype_text = dtype_json.get_ref<const std::string&>();
    const DTypeInfo* dtype = find_dtype(dtype_text);
    if (dtype == nullptr) fail(who + ": unknown dtype " + quote_name(dtype_text));

    const auto& shape_json = value.at("shape");
    if (!shape_json.is_array()) {
      fail(who + ": shape is a JSON " + std::string(shape_json.type_name()) + ", not an array");
    }
    std::vector<std::uint64_t> dims;
    dims.reserve(shape_json.size());
    for (std::size_t i = 0; i < shape_json.size(); ++i) {
      const auto dim = as_unsigned(shape_json[i],
                                   static_cast<std::uint64_t>(
                                       std::numeric_limits<std::int64_t>::max()));
      if (!dim) {
        fail(who + ": shape entry " + std::to_string(i) + " is " + describe(shape_json[i]) +
             ", not an integer in [0, 2^63)");
      }
      dims.push_back(*dim);
    }
    const std::span<const std::uint64_t> shape_view(dims);

    const auto& offsets_json = value.at("data_offsets");
    if (!offsets_json.is_array() || offsets_json.size() != 2) {
      fail(who + ": data_offsets is " + describe(offsets_json) +
           ", not an array of two integers");
    }
    const auto begin = as_unsigned(offsets_json[0], std::numeric_limits<std::uint64_t>::max());
    const auto end = as_unsigned(offsets_json[1], std::numeric_limits<std::uint64_t>::max());
    if (!begin || !end) {
      fail(who + ": data_offsets [" + describe(offsets_json[0]) + ", " +
           describe(offsets_json[1]) + "] are not two non-negative integers");
    }
    const std::array<std::uint64_t, 2> offsets{*begin, *end};
    const std::string offsets_text = format_list(std::span<const std::uint64_t>(offsets));
    if (*begin > *end) fail(who + ": data_offsets " + offsets_text + " begin after they end");
    if (*end > buffer_size) {
      fail(who + ": data_offsets " + offsets_text + " run past the end of the " +
           std::to_string(buffer_size) + "-byte data buffer");
    }
    const auto expected = checked_byte_size(shape_view, dtype->size);
    if (!expected) {
      fail(who + ": shape " + format_list(shape_view) + " x " + std::string(dtype->name) +
           " overflows 64 bits");
    }
    if (*expected != *end - *begin) {
      fail(who + ": data_offsets " + offsets_text + " do not match shape " +
           format_list(shape_view) + " x " + std::string(dtype->name) + " = " +
           std::to_string(*expected) + " bytes");
    }
    std::vector<std::int64_t> shape(dims.begin(), dims.end());
    return Entry{name, dtype->dtype, std::move(shape), *begin, *end};
  }

  // The reference reader requires the tensors, in offset order, to tile the buffer: a hole
  // or an overlap means a corrupt header, and trailing bytes would be silently ignored.
  void check_coverage(const std::vector<Entry>& entries, std::size_t buffer_size) const {
    std::vector<const Entry*> order;
    order.reserve(entries.size());
    for (const auto& entry : entries) order.push_back(&entry);
    std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
      return std::tie(a->begin, a->end, a->name) < std::tie(b->begin, b->end, b->name);
    });
    std::uint64_t covered = 0;
    const Entry* previous = nullptr;
    for (const Entry* entry : order) {
      const std::array<std::uint64_t, 2> offsets{entry->begin, entry->end};
      const std::string where = "tensor " + quote_name(entry->name) + ": data_offsets " +
                                format_list(std::span<const std::uint64_t>(offsets));
      if (entry->begin > covered) {
        fail(where + " leave a hole: " +
             (previous ? "tensor " + quote_name(previous->name) + " ends at "
                       : std::string("the data buffer starts at ")) +
             std::to_string(covered));
      }
      if (entry->begin < covered) {
        fail(where + " overlap tensor " + quote_name(previous->name) + ", which ends at " +
             std::to_string(covered));
      }
      covered = entry->end;
      previous = entry;
    }
    if (covered != buffer_size) {
      fail("tensors cover " + std::to_string(covered) + " bytes of the " +
           std::to_string(buffer_size) + "-byte data buffer; " +
           std::to_string(buffer_size - covered) + " trailing bytes belong to no tensor");
    }
  }

  std::span<const std::byte> bytes_;
  std::string_view source_;
};

std::string errno_text(int error) { return std::string(std::strerror(error)); }

// Closes a POSIX file descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd(const Fd&) = delete;
  Fd& operator=(Fd&&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now so that the caller sees the error (a delayed write can fail at close).
  int close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

Fd open_for_reading(const std::filesystem::path& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw CheckpointError(path.string(), "cannot open: " + errno_text(errno));
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) {
    throw CheckpointError(path.string(), "cannot stat: " + errno_text(errno));
  }
  if (!S_ISREG(info.st_mode)) throw CheckpointError(path.string(), "is not a regular file");
  return fd;
}

// Reads up to size bytes; returns how many were read (fewer only at end of file).
std::size_t read_fully(const Fd& fd, std::byte* out, std::size_t size,
                       const std::filesystem::path& path) {
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::read(fd.get(), out + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw CheckpointError(path.string(), "cannot read: " + errno_text(errno));
    }
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  return done;
}

void write_fully(int fd, std::span<const std::byte> bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category());
    }
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace

CheckpointError::CheckpointError(std::string source, std::string problem)
    : std::invalid_argument(source + ": " + problem),
      source_(std::move(source)),
      problem_(std::move(problem)) {}

std::size_t dtype_size(DType dtype) noexcept {
  return valid_dtype(dtype) ? kDTypes[static_cast<std::size_t>(dtype)].size : 0;
}

std::string_view dtype_name(DType dtype) noexcept {
  return valid_dtype(dtype) ? kDTypes[static_cast<std::size_t>(dtype)].name : "?";
}

DType dtype_from_name(std::string_view name) {
  const DTypeInfo* info = find_dtype(name);
  if (info == nullptr) {
    throw std::invalid_argument("dtype_from_name: unknown safetensors dtype \"" +
                                std::string(name) + "\"");
  }
  return info->dtype;
}

std::size_t element_count(std::span<const std::int64_t> shape) {
  std::uint64_t count = 1;
  for (const std::int64_t dim : shape) {
    if (dim < 0) {
      throw std::invalid_argument("shape " + format_list(shape) + " has a negative entry " +
                                  std::to_string(dim));
    }
    const auto next = checked_mul(count, static_cast<std::uint64_t>(dim));
    if (!next || *next > std::numeric_limits<std::size_t>::max()) {
      throw std::invalid_argument("shape " + format_list(shape) +
                                  " has more elements than fit in 64 bits");
    }
    count = *next;
  }
  return static_cast<std::size_t>(count);
}

const Tensor* Checkpoint::find(std::string_view name) const noexcept {
  for (const auto& tensor : tensors) {
    if (tensor.name == name) return &tensor;
  }
  return nullptr;
}

const Tensor& Checkpoint::at(std::string_view name) const {
  if (const Tensor* tensor = find(name)) return *tensor;
  std::string present;
  for (const auto& tensor : tensors) {
    present += present.empty() ? "" : ", ";
    present += quote_name(tensor.name);
  }
  throw std::out_of_range("checkpoint has no tensor " + quote_name(name) + " (it has " +
                          (present.empty() ? std::string("none") : present) + ")");
}

const std::string& Checkpoint::metadata_at(std::string_view key, std::string_view source) const {
  const auto it = metadata.find(std::string(key));
  if (it == metadata.end()) throw CheckpointError(std::string(source), "metadata has no " + quote_name(key));
  return it->second;
}

std::vector<std::byte> serialize_safetensors(const Checkpoint& checkpoint) {
  const auto fail = [](std::string problem) {
    throw CheckpointError(std::string(kSerializeSource), std::move(problem));
  };
  const auto check_utf8 = [&](std::string_view text, std::string_view what) {
    if (find_invalid_utf8(text) != std::string_view::npos) {
      fail(std::string(what) + " is not valid UTF-8");
    }
  };

  for (const auto& [key, value] : checkpoint.metadata) {
    check_utf8(key, "a __metadata__ key");
    check_utf8(value, "__metadata__ " + quote_name(key));
  }
  std::vector<const Tensor*> order;
  order.reserve(checkpoint.tensors.size());
  for (const auto& tensor : checkpoint.tensors) order.push_back(&tensor);
  std::sort(order.begin(), order.end(),
            [](const Tensor* a, const Tensor* b) { return a->name < b->name; });

  // Built as text rather than as one ordered_json: ordered_json finds keys by linear
  // search, which is quadratic in the number of tensors. Names and metadata are escaped by
  // nlohmann's dump(); a json object iterates in std::map's order, as the metadata map does.
  std::string text = "{";
  if (!checkpoint.metadata.empty()) {
    text += nlohmann::json(std::string(kMetadataKey)).dump();
    text += ':';
    text += nlohmann::json(checkpoint.metadata).dump();
  }
  std::uint64_t offset = 0;
  for (std::size_t i = 0; i < order.size(); ++i) {
    const Tensor& tensor = *order[i];
    const std::string who = "tensor " + quote_name(tensor.name);
    check_utf8(tensor.name, "a tensor name");
    if (tensor.name == kMetadataKey) fail(who + ": the name is reserved for metadata");
    if (i > 0 && order[i - 1]->name == tensor.name) fail(who + " appears more than once");
    if (!valid_dtype(tensor.dtype)) {
      fail(who + ": dtype value " + std::to_string(static_cast<int>(tensor.dtype)) +
           " is not a DType");
    }
    std::size_t count = 0;
    try {
      count = element_count(tensor.shape);
    } catch (const std::invalid_argument& e) {
      fail(who + ": " + e.what());
    }
    const auto expected = checked_mul(count, dtype_size(tensor.dtype));
    if (!expected || *expected != tensor.data.size()) {
      fail(who + ": data has " + std::to_string(tensor.data.size()) + " bytes but shape " +
           format_list(std::span<const std::int64_t>(tensor.shape)) + " x " +
           std::string(dtype_name(tensor.dtype)) + " needs " +
           (expected ? std::to_string(*expected) : std::string("more than 2^64")));
    }
    if (text.size() > 1) text += ',';
    text += nlohmann::json(tensor.name).dump();
    text += R"(:{"dtype":")";
    text += dtype_name(tensor.dtype);
    text += R"(","shape":[)";
    for (std::size_t d = 0; d < tensor.shape.size(); ++d) {
      if (d > 0) text += ',';
      text += std::to_string(tensor.shape[d]);
    }
    text += R"(],"data_offsets":[)";
    text += std::to_string(offset) + ',' + std::to_string(offset + *expected) + "]}";
    offset += *expected;
  }
  text += '}';

  // Spaces are JSON whitespace, so padding keeps the header valid while aligning the data.
  text.append((kLengthBytes - text.size() % kLengthBytes) % kLengthBytes, ' ');
  if (text.size() > kMaxHeaderBytes) {
    fail("header of " + std::to_string(text.size()) + " bytes exceeds the limit of " +
         std::to_string(kMaxHeaderBytes) + " bytes");
  }

  std::vector<std::byte> bytes;
  bytes.reserve(kLengthBytes + text.size() + static_cast<std::size_t>(offset));
  const std::uint64_t header_len = text.size();
  for (std::size_t i = 0; i < kLengthBytes; ++i) {
    bytes.push_back(static_cast<std::byte>((header_len >> (8 * i)) & 0xFF));
  }
  for (const char c : text) bytes.push_back(static_cast<std::byte>(c));
  for (const Tensor* tensor : order) {
    bytes.insert(bytes.end(), tensor->data.begin(), tensor->data.end());
  }
  return bytes;
}

Checkpoint parse_safetensors(std::span<const std::byte> bytes, std::string_view source_name) {
  return Parser(bytes, source_name).run();
}

void save_safetensors(const std::filesystem::path& path, const Checkpoint& checkpoint) {
  std::vector<std::byte> bytes;
  try {
    bytes = serialize_safetensors(checkpoint);
  } catch (const CheckpointError& e) {
    throw CheckpointError(path.string(), e.problem());
  }

  std::filesystem::path tmp = path;
  tmp += ".tmp";
  const auto fail = [&](const std::string& step, int error) {
    ::unlink(tmp.c_str());
    throw CheckpointError(path.string(), step + ": " + errno_text(error));
  };

  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) {
    // Nothing was created, so there is nothing to unlink.
    throw CheckpointError(path.string(),
                          "cannot create " + tmp.string() + ": " + errno_text(errno));
  }
  try {
    write_fully(fd.get(), bytes);
  } catch (const std::system_error& e) {
    fail("cannot write " + tmp.string(), e.code().value());
  }
  // The data must be on disk before the rename publishes it, or a crash could leave the
  // final name pointing at an empty or partial file.
  if (::fsync(fd.get()) != 0) fail("cannot fsync " + tmp.string(), errno);
  if (fd.close() != 0) fail("cannot close " + tmp.string(), errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("cannot rename " + tmp.string(), errno);

  // The rename itself lives in the directory; without this fsync a crash can undo it.
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  Fd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0 || ::fsync(dir_fd.get()) != 0) {
    throw CheckpointError(path.string(),
                          "written, but cannot fsync directory " + dir.string() + ": " +
                              errno_text(errno));
  }
}

Checkpoint load_safetensors(const std::filesystem::path& path) {
  const Fd fd = open_for_reading(path);
  // Read to end of file rather than trusting the size from fstat, which can change under us.
  std::vector<std::byte> bytes;
  std::size_t size = 0;
  std::size_t chunk = 1 << 16;
  for (;;) {
    bytes.resize(size + chunk);
    const std::size_t n = read_fully(fd, bytes.data() + size, chunk, path);
    size += n;
    if (n < chunk) break;
    chunk = std::min<std::size_t>(chunk * 2, std::size_t{1} << 28);
  }
  bytes.resize(size);
  return parse_safetensors(bytes, path.string());
}

std::string sha256_file_hex(const std::filesystem::path& path) {
  const Fd fd = open_for_reading(path);
  const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                                     &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    throw CheckpointError(path.string(), "cannot start SHA-256 (OpenSSL EVP)");
  }
  std::vector<std::byte> buffer(std::size_t{1} << 20);
  for (;;) {
    const std::size_t n = read_fully(fd, buffer.data(), buffer.size(), path);
    if (n > 0 && EVP_DigestUpdate(ctx.get(), buffer.data(), n) != 1) {
      throw CheckpointError(path.string(), "SHA-256 update failed (OpenSSL EVP)");
    }
    if (n < buffer.size()) break;
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int digest_len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest.data(), &digest_len) != 1) {
    throw CheckpointError(path.string(), "SHA-256 final failed (OpenSSL EVP)");
  }
  constexpr std::string_view kHex = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * digest_len);
  for (unsigned int i = 0; i < digest_len; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 0x0F];
  }
  return hex;
}

}  // namespace forkcast::policy
