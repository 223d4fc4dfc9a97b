// What the service serves as documents, compiled into the binary from service/static/.
#pragma once

#include <string>
#include <string_view>

namespace forkcast::service {

// The OpenAPI 3.1 document (openapi.cpp): the contract of every route (docs/api.md).
const std::string& openapi_document();
// The demo page (static/index.html).
std::string_view demo_page_html();

}  // namespace forkcast::service
