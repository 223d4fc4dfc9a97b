// The OpenAPI document served at /openapi.json (service/static/openapi.json, compiled in)
// against the route table the router actually registers (routes()): the same set of
// (method, path) both ways, operation ids equal to the routes' metric names, admin
// security exactly on admin routes, path parameters matching the templates, every
// internal $ref resolvable, and strict request bodies where the server refuses unknown
// fields. A route added without documenting it (or documented and never registered) fails.
#include <gtest/gtest.h>

#include <boost/beast/http/verb.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <regex>
#include <set>
#include <string>
#include <utility>

#include "forkcast/service/router.hpp"
#include "documents.hpp"

namespace {

using nlohmann::json;
using forkcast::service::RouteInfo;

const std::set<std::string> kMethods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"};

const json& document() {
  static const json doc = json::parse(forkcast::service::openapi_document());
  return doc;
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string method_of(const RouteInfo& route) { return lower(boost::beast::http::to_string(route.method)); }

// The route's operation; a route without one fails here (and in OperationsAreExactly...).
const json& operation(const RouteInfo& route) {
  static const json missing = {{"responses", json::object()}};
  const json& paths = document().at("paths");
  const auto path = paths.find(std::string(route.pattern));
  if (path == paths.end() || !path->contains(method_of(route))) {
    ADD_FAILURE() << "no operation for " << method_of(route) << " " << route.pattern;
    return missing;
  }
  return path->at(method_of(route));
}

// Resolves a local reference "#/a/b" (JSON pointer after '#').
const json* resolve(const std::string& ref) {
  if (ref.rfind("#/", 0) != 0) return nullptr;
  const json::json_pointer pointer(ref.substr(1));
  return document().contains(pointer) ? &document().at(pointer) : nullptr;
}

const json& deref(const json& node) {
  const json* at = &node;
  while (at->is_object() && at->contains("$ref")) {
    const json* next = resolve(at->at("$ref").get<std::string>());
    if (next == nullptr) throw std::runtime_error("unresolvable $ref " + at->at("$ref").dump());
    at = next;
  }
  return *at;
}

void collect_refs(const json& node, const std::string& where, std::vector<std::pair<std::string, std::string>>& out) {
  if (node.is_object()) {
    for (const auto& [key, value] : node.items()) {
      if (key == "$ref" && value.is_string()) out.emplace_back(where, value.get<std::string>());
      collect_refs(value, where + "/" + key, out);
    }
  } else if (node.is_array()) {
    for (std::size_t i = 0; i < node.size(); ++i) collect_refs(node[i], where + "/" + std::to_string(i), out);
  }
}

}  // namespace

TEST(OpenApi, IsOpenApi31WithInfoAndBothSecuritySchemes) {
  const json& doc = document();
  ASSERT_TRUE(doc.is_object());
  EXPECT_TRUE(std::regex_match(doc.at("openapi").get<std::string>(), std::regex(R"(3\.1\.\d+)"))) << doc.at("openapi");
  EXPECT_FALSE(doc.at("info").at("title").get<std::string>().empty());
  EXPECT_FALSE(doc.at("info").at("version").get<std::string>().empty());
  const json& schemes = doc.at("components").at("securitySchemes");
  for (const char* name : {"userToken", "adminKey"}) {
    ASSERT_TRUE(schemes.contains(name)) << name;
    EXPECT_EQ(schemes.at(name).at("type"), "http") << name;
    EXPECT_EQ(lower(schemes.at(name).at("scheme").get<std::string>()), "bearer") << name;
  }
}

TEST(OpenApi, OperationsAreExactlyTheRegisteredRoutes) {
  std::set<std::pair<std::string, std::string>> registered, documented;
  for (const RouteInfo& route : forkcast::service::routes()) {
    EXPECT_TRUE(registered.emplace(method_of(route), std::string(route.pattern)).second)
        << "route registered twice: " << method_of(route) << " " << route.pattern;
  }
  for (const auto& [path, item] : document().at("paths").items()) {
    for (const auto& [key, value] : item.items()) {
      if (kMethods.count(key) != 0) documented.emplace(key, path);
    }
  }
  ASSERT_FALSE(registered.empty());
  for (const auto& [method, path] : registered) {
    EXPECT_TRUE(documented.count({method, path})) << "registered but not documented: " << method << " " << path;
  }
  for (const auto& [method, path] : documented) {
    EXPECT_TRUE(registered.count({method, path})) << "documented but not registered: " << method << " " << path;
  }
  EXPECT_EQ(registered, documented);
}

TEST(OpenApi, EveryOperationIsNamedLikeItsRouteAndListsItsResponses) {
  for (const RouteInfo& route : forkcast::service::routes()) {
    SCOPED_TRACE(method_of(route) + " " + std::string(route.pattern));
    const json& op = operation(route);
    // The operation id is the route's metrics label, so dashboards and the document agree.
    EXPECT_EQ(op.value("operationId", ""), route.name);
    ASSERT_TRUE(op.contains("responses"));
    const json& responses = op.at("responses");
    ASSERT_TRUE(responses.is_object());
    ASSERT_FALSE(responses.empty());
    bool success = false;
    for (const auto& [status, response] : responses.items()) {
      EXPECT_TRUE(std::regex_match(status, std::regex("[1-5][0-9][0-9]|default"))) << status;
      EXPECT_FALSE(deref(response).value("description", "").empty()) << status;
      if (status.front() == '2') success = true;
    }
    EXPECT_TRUE(success) << "no 2xx response";
    // Every route authenticates whatever credentials come (malformed or unknown ones are
    // 401) and is rate-limited (router.cpp handle()).
    EXPECT_TRUE(responses.contains("401"));
    EXPECT_TRUE(responses.contains("429"));
  }
}

TEST(OpenApi, AdminRoutesAndOnlyThoseRequireTheAdminKey) {
  int admin_routes = 0;
  for (const RouteInfo& route : forkcast::service::routes()) {
    SCOPED_TRACE(method_of(route) + " " + std::string(route.pattern));
    const json& op = operation(route);
    const json security = op.contains("security") ? op.at("security") : document().value("security", json::array());
    ASSERT_TRUE(security.is_array());
    // A requirement list is satisfied by any one of its objects; {} is anonymous access.
    bool every_alternative_needs_admin = !security.empty();
    for (const json& requirement : security) {
      for (const auto& [scheme, scopes] : requirement.items()) {
        EXPECT_TRUE(document().at("components").at("securitySchemes").contains(scheme)) << scheme;
      }
      if (!requirement.contains("adminKey")) every_alternative_needs_admin = false;
    }
    if (route.admin) {
      ++admin_routes;
      EXPECT_TRUE(every_alternative_needs_admin) << security.dump();
      EXPECT_TRUE(op.at("responses").contains("403")) << "a user token on an admin route is 403";
    } else {
      EXPECT_FALSE(every_alternative_needs_admin) << security.dump();
    }
  }
  EXPECT_GT(admin_routes, 0);
}

TEST(OpenApi, PathParametersMatchThePathTemplates) {
  const std::regex placeholder(R"(\{([^}]+)\})");
  for (const RouteInfo& route : forkcast::service::routes()) {
    SCOPED_TRACE(method_of(route) + " " + std::string(route.pattern));
    const std::string pattern(route.pattern);
    std::set<std::string> in_template, declared;
    for (auto it = std::sregex_iterator(pattern.begin(), pattern.end(), placeholder); it != std::sregex_iterator(); ++it) {
      in_template.insert((*it)[1].str());
    }
    const json& item = document().at("paths").value(pattern, json::object());
    for (const json* list : {&item, &operation(route)}) {
      if (!list->contains("parameters")) continue;
      for (const json& p : list->at("parameters")) {
        const json& parameter = deref(p);
        if (parameter.at("in") != "path") continue;
        EXPECT_EQ(parameter.value("required", false), true) << parameter.dump();
        declared.insert(parameter.at("name").get<std::string>());
      }
    }
    EXPECT_EQ(in_template, declared);
  }
}

TEST(OpenApi, EveryLocalReferenceResolves) {
  std::vector<std::pair<std::string, std::string>> refs;
  collect_refs(document(), "", refs);
  ASSERT_FALSE(refs.empty());
  for (const auto& [where, ref] : refs) EXPECT_NE(resolve(ref), nullptr) << where << ": " << ref;
}

TEST(OpenApi, JsonRequestBodiesRefuseUnknownFieldsAndErrorsUseTheErrorSchema) {
  const json& error_schema = document().at("components").at("schemas").at("Error");
  EXPECT_EQ(error_schema.at("required"), json::array({"error"}));
  EXPECT_EQ(error_schema.at("properties").at("error").at("required"), json::array({"code", "message"}));
  int bodies = 0;
  for (const RouteInfo& route : forkcast::service::routes()) {
    SCOPED_TRACE(method_of(route) + " " + std::string(route.pattern));
    const json& op = operation(route);
    if (op.contains("requestBody")) {
      // The server reads every JSON body strictly (api.cpp JsonBody::finish).
      const json& schema = deref(deref(op.at("requestBody")).at("content").at("application/json").at("schema"));
      EXPECT_EQ(schema.at("type"), "object");
      EXPECT_EQ(schema.value("additionalProperties", true), false) << schema.dump();
      ++bodies;
    }
    for (const auto& [status, response] : op.at("responses").items()) {
      const json& r = deref(response);
      if (status.front() != '4' && status.front() != '5') continue;
      if (!r.contains("content")) continue;  // HEAD answers carry no body
      const json& schema = r.at("content").at("application/json").at("schema");
      // /readyz answers 503 with its own readiness body; every other error is an Error.
      if (route.name == "readyz" && status == "503") continue;
      EXPECT_EQ(schema.value("$ref", ""), "#/components/schemas/Error") << status;
    }
  }
  EXPECT_GT(bodies, 0);
}
