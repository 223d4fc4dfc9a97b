// The users routes: create, read and edit a profile.
#include <openssl/rand.h>

#include "clock.hpp"
#include "handlers.hpp"
#include "user_directory.hpp"

namespace forkcast::service {

using nlohmann::json;

namespace {

json user_json(const UserSession& session, const db::Timestamp* created_at) {
  json out = {{"id", session.id},
              {"profile", profile_json(session.profile)},
              {"targets", targets_json(session.profile.profile)}};
  if (created_at) out["created_at"] = format_time(*created_at);
  return out;
}

std::shared_ptr<UserSession> session_of(Application& app, const Call& call) {
  const std::string_view id = call.params.at(0);
  require_user(call, id, "id");
  auto session = app.users().find(id);
  if (!session) throw ApiError(http::status::not_found, "not_found", "no user " + std::string(id.substr(0, 64)), "id");
  return session;
}

}  // namespace

Response handle_create_user(Application& app, const Request& request, Call&) {
  JsonBody body = JsonBody::parse(request.body());
  const ProfileDocument profile = read_profile(body);
  body.finish();
  // 128 bits from the operating system's CSPRNG (OpenSSL RAND_bytes), never from the
  // service generator: that one is SplitMix64, whose outputs can be inverted, so a user
  // could compute the tokens of the users created after them. Only the hash is stored.
  unsigned char random[16];
  if (RAND_bytes(random, sizeof random) != 1) throw std::runtime_error("RAND_bytes failed");
  char token[64] = "fc_";
  for (std::size_t i = 0; i < sizeof random; ++i) std::snprintf(token + 3 + 2 * i, 3, "%02x", random[i]);
  const auto session = app.users().create(profile, db::token_sha256(token));
  json out = user_json(*session, nullptr);
  out["token"] = token;
  return json_response(request, http::status::created, out);
}

Response handle_get_user(Application& app, const Request& request, Call& call) {
  const auto session = session_of(app, call);
  std::lock_guard lock(session->mutex);
  return json_response(request, http::status::ok, user_json(*session, nullptr));
}

Response handle_patch_user(Application& app, const Request& request, Call& call) {
  const auto session = session_of(app, call);
  JsonBody body = JsonBody::parse(request.body());
  std::lock_guard lock(session->mutex);
  const ProfileDocument profile = read_profile(body, &session->profile);
  body.finish();
  app.users().update_profile(*session, profile);
  return json_response(request, http::status::ok, user_json(*session, nullptr));
}

// ---- meals -----------------------------------------------------------------------------

}  // namespace forkcast::service
