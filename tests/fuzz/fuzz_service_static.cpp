// fuzz_service compiles service/src itself (for coverage) but not the files CMake generates
// from service/static/: these stand in for them. The fuzzer never needs the real page.
#include <string_view>

namespace forkcast::service {
std::string_view demo_page_html() { return "<!doctype html><title>fuzz</title>"; }
std::string_view openapi_json_text() { return R"({"openapi":"3.1.0","info":{"title":"fuzz","version":"0"},"paths":{}})"; }
}  // namespace forkcast::service
