// Model file verification: sha256 against models/manifest before anything is loaded, so a
// truncated download or a swapped file is refused with a clear message instead of being
// memory-mapped and run.
#include <openssl/evp.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "forkcast/advice/engine.hpp"

namespace forkcast::advice {

std::string file_sha256(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                       &std::fclose);
  if (!file) throw ModelError("advice model '" + path + "': cannot open: " + std::strerror(errno));
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    throw ModelError("advice model '" + path + "': sha256 unavailable (OpenSSL)");
  }
  std::array<unsigned char, 1 << 16> buf{};
  for (;;) {
    const std::size_t n = std::fread(buf.data(), 1, buf.size(), file.get());
    if (n > 0) EVP_DigestUpdate(ctx.get(), buf.data(), n);
    if (n < buf.size()) {
      if (std::ferror(file.get())) throw ModelError("advice model '" + path + "': read error");
      break;
    }
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), digest.data(), &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

std::string verify_model_file(const std::string& path, const std::string& manifest_path,
                              bool allow_unknown) {
  std::string sha = file_sha256(path);
  std::ifstream in(manifest_path);
  if (!in) {
    if (allow_unknown) return sha;
    throw ModelError(
        "advice model '" + path + "': manifest '" + manifest_path +
        "' cannot be read; set advice.allow_unknown_model: true to load unlisted models");
  }
  const std::string name = std::filesystem::path(path).filename().string();
  std::string line;
  std::string listed_for_name;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string hex, file;
    fields >> hex >> file;
    if (file.size() > 0 && file[0] == '*') file.erase(0, 1);  // sha256sum's binary marker
    if (hex == sha) return sha;
    if (file == name) listed_for_name = hex;
  }
  if (allow_unknown) return sha;
  if (!listed_for_name.empty()) {
    throw ModelError("advice model '" + path + "': sha256 " + sha + " does not match " +
                     listed_for_name + " listed for " + name + " in " + manifest_path +
                     " (corrupt or replaced file); refusing to load it");
  }
  throw ModelError("advice model '" + path + "': sha256 " + sha + " is not listed in " +
                   manifest_path +
                   "; add it there or set advice.allow_unknown_model: true to load it anyway");
}

}  // namespace forkcast::advice
