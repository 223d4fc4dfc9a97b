// The message of the exception of type E (std::invalid_argument unless named) that calling
// `f` throws, or "<no error>" when it returns normally. Any other exception escapes and
// fails the test that called it.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace forkcast::test {

template <class E = std::invalid_argument, class F>
std::string error_message(F&& f) {
  try {
    std::forward<F>(f)();
  } catch (const E& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace forkcast::test
