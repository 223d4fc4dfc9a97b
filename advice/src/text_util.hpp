// Internal helpers shared by the prompt, the template and the grounding check.
#pragma once

#include <string>
#include <string_view>

namespace forkcast::advice::detail {

// "tree_nuts" -> "tree nuts": prompts show allergens as words.
inline std::string display_allergen(std::string_view name) {
  std::string s(name);
  for (char& c : s) {
    if (c == '_') c = ' ';
  }
  return s;
}

inline std::string lower_ascii(std::string_view text) {
  std::string s(text);
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

}  // namespace forkcast::advice::detail
