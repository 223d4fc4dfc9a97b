// Users, meals, models, operations and advice routes.
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <chrono>
#include <cstdio>

#include "decision_log.hpp"
#include "forkcast/advice/engine.hpp"
#include "forkcast/advice/facts.hpp"
#include "forkcast/advice/from_catalog.hpp"
#include "forkcast/db/errors.hpp"
#include "handlers.hpp"
#include "metrics.hpp"
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

// Query parameters of `target` ("a=1&b=x"), percent-decoding values. 400 on bad escapes.
std::vector<std::pair<std::string, std::string>> query_of(std::string_view target) {
  std::vector<std::pair<std::string, std::string>> out;
  const auto q = target.find('?');
  if (q == std::string_view::npos) return out;
  std::string_view rest = target.substr(q + 1);
  auto decode = [](std::string_view s) {
    std::string d;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '+') {
        d += ' ';
      } else if (s[i] == '%') {
        int v = 0;
        // Exactly two hex digits (from_chars alone would take a sign: "%-1").
        if (i + 2 >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[i + 1])) ||
            !std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
          throw bad_request("invalid_query", "query: bad percent escape");
        }
        std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
        d += static_cast<char>(v);
        i += 2;
      } else {
        d += s[i];
      }
    }
    return d;
  };
  while (!rest.empty()) {
    const auto amp = std::min(rest.find('&'), rest.size());
    const std::string_view pair = rest.substr(0, amp);
    if (!pair.empty()) {
      const auto eq = std::min(pair.find('='), pair.size());
      out.emplace_back(decode(pair.substr(0, eq)), eq < pair.size() ? decode(pair.substr(eq + 1)) : std::string());
    }
    rest.remove_prefix(std::min(amp + 1, rest.size()));
  }
  return out;
}

long long parse_query_int(const std::string& key, const std::string& value, long long lo, long long hi) {
  long long v = 0;
  const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || ptr != value.data() + value.size()) {
    throw bad_request("invalid_type", key + ": \"" + value.substr(0, 32) + "\" is not an integer", key);
  }
  if (v < lo || v > hi) {
    throw bad_request("out_of_range", key + ": " + value + " is out of range " + std::to_string(lo) + ".." + std::to_string(hi), key);
  }
  return v;
}

}  // namespace

// ---- time ------------------------------------------------------------------------------

db::Timestamp parse_time(const std::string& text, const std::string& field) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, consumed = 0;
  const auto bad = [&] {
    return bad_request("invalid_value", field + ": \"" + text.substr(0, 40) +
                                            "\" is not an RFC 3339 date-time like 2026-12-01T12:30:00Z", field);
  };
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &consumed) != 6 || consumed != 19) {
    throw bad();
  }
  std::string_view rest = std::string_view(text).substr(19);
  std::int64_t micros = 0;
  if (!rest.empty() && rest.front() == '.') {
    rest.remove_prefix(1);
    int digits = 0;
    while (!rest.empty() && rest.front() >= '0' && rest.front() <= '9') {
      if (digits < 6) micros = micros * 10 + (rest.front() - '0');
      ++digits;
      rest.remove_prefix(1);
    }
    if (digits == 0) throw bad();
    for (int i = digits; i < 6; ++i) micros *= 10;
  }
  int offset_min = 0;
  if (rest == "Z" || rest == "z") {
    offset_min = 0;
  } else if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':') {
    int oh = 0, om = 0;
    if (std::from_chars(rest.data() + 1, rest.data() + 3, oh).ec != std::errc() ||
        std::from_chars(rest.data() + 4, rest.data() + 6, om).ec != std::errc() || oh > 23 || om > 59) {
      throw bad();
    }
    offset_min = (rest[0] == '-' ? -1 : 1) * (oh * 60 + om);
  } else {
    throw bad();
  }
  using namespace std::chrono;
  const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok() || h > 23 || mi > 59 || s > 60 || y < 1970 || y > 9999) throw bad();
  const auto t = sys_days{ymd} + hours{h} + minutes{mi} + seconds{std::min(s, 59)} - minutes{offset_min};
  return db::Timestamp{duration_cast<microseconds>(t.time_since_epoch()) + microseconds{micros}};
}

db::Timestamp parse_recent_time(const std::string& text, const std::string& field) {
  const db::Timestamp t = parse_time(text, field);
  const db::Timestamp now = db::now_timestamp();
  if (t < now - std::chrono::days{14} || t > now + std::chrono::days{14}) {
    throw bad_request("out_of_range", field + ": \"" + text.substr(0, 40) + "\" is more than 14 days from now", field);
  }
  return t;
}

std::string format_time(db::Timestamp t) {
  using namespace std::chrono;
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const auto time = t - day;
  const auto h = duration_cast<hours>(time);
  const auto m = duration_cast<minutes>(time - h);
  const auto sec = duration_cast<seconds>(time - h - m);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()), static_cast<int>(h.count()),
                static_cast<int>(m.count()), static_cast<int>(sec.count()));
  return buf;
}

std::string format_date(std::int64_t day_number) {
  using namespace std::chrono;
  const year_month_day ymd{sys_days{days{day_number}}};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()));
  return buf;
}

// ---- users -----------------------------------------------------------------------------

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

Response handle_list_meals(Application& app, const Request& request, Call&) {
  std::optional<env::Slot> slot;
  std::optional<env::Diet> diet;
  env::AllergenSet free_of = 0;
  std::string cuisine;
  long long limit = 50, offset = 0;
  for (const auto& [key, value] : query_of(request.target())) {
    if (key == "slot") {
      slot = env::parse_slot(value);
      if (!slot) throw bad_request("invalid_value", "slot: \"" + value.substr(0, 32) + "\" is not one of breakfast|lunch|dinner|snack", "slot");
    } else if (key == "diet") {
      diet = env::parse_diet(value);
      if (!diet) throw bad_request("invalid_value", "diet: \"" + value.substr(0, 32) + "\" is not one of vegetarian|vegan|pescatarian|gluten_free|dairy_free", "diet");
    } else if (key == "free_of") {
      const auto a = env::parse_allergen(value);
      if (!a) throw bad_request("invalid_value", "free_of: \"" + value.substr(0, 32) + "\" is not an allergen name", "free_of");
      free_of |= static_cast<env::AllergenSet>(1U << static_cast<int>(*a));
    } else if (key == "cuisine") {
      cuisine = value;
    } else if (key == "limit") {
      limit = parse_query_int(key, value, 1, 500);
    } else if (key == "offset") {
      offset = parse_query_int(key, value, 0, 1'000'000);
    } else {
      throw bad_request("unknown_field", key.substr(0, 32) + ": unknown query parameter (allowed: slot, diet, free_of, cuisine, limit, offset)", key.substr(0, 32));
    }
  }
  json meals = json::array();
  long long matched = 0;
  for (const auto& meal : app.catalog().meals()) {
    if (slot && meal.slot != *slot) continue;
    if (diet && !env::has(meal.diets, *diet)) continue;
    if ((meal.allergens & free_of) != 0) continue;
    if (!cuisine.empty() && meal.cuisine != cuisine) continue;
    if (matched++ < offset || static_cast<long long>(meals.size()) >= limit) continue;
    meals.push_back(meal_json(meal, false, app.catalog()));
  }
  return json_response(request, http::status::ok, {{"total", matched}, {"offset", offset}, {"meals", meals}});
}

Response handle_get_meal(Application& app, const Request& request, Call& call) {
  const std::string id(call.params.at(0));
  const auto m = app.catalog().find_meal(id);
  if (!m) throw ApiError(http::status::not_found, "not_found", "no meal \"" + id.substr(0, 64) + "\"", "id");
  return json_response(request, http::status::ok, meal_json(app.catalog().meals()[*m], true, app.catalog()));
}

// ---- advice ----------------------------------------------------------------------------

AdviceRequest make_advice_request(const UserSession& session, const env::Meal& meal, env::Slot slot) {
  AdviceRequest r;
  r.meal = &meal;
  r.slot = slot;
  r.profile = session.profile;
  r.kcal_target = session.tracker.kcal_target();
  r.protein_target_g = session.tracker.protein_target_g();
  r.intake_today = session.tracker.state().intake_today;
  return r;
}

json advice_for(Application& app, const AdviceRequest& r, const std::function<bool(std::string_view)>* on_token) {
  const advice::DayIntake eaten{r.intake_today.kcal, r.intake_today.protein_g};
  const env::Meal* side = advice::pick_side(app.catalog(), *r.meal, r.profile.profile, eaten);
  const advice::AdviceFacts facts = advice::facts_from_catalog(app.catalog(), *r.meal, r.profile.profile, eaten, side);
  advice::AdviceEngine* engine = app.advice();
  if (engine == nullptr) {
    // advice.enabled is false: template advice, grounded by construction.
    app.metrics().advice("template_disabled").Increment();
    return {{"meal_id", r.meal->id}, {"text", advice::template_advice(facts)}, {"source", "template"},
            {"fallback_reason", "disabled"}};
  }
  advice::TextCallback on_text;
  if (on_token != nullptr) on_text = [on_token](std::string_view text) { (*on_token)(text); };
  const advice::AdviceResult result =
      engine->advise(facts, std::chrono::milliseconds(app.config().advice.timeout_ms), on_text);
  const bool from_model = result.source == advice::AdviceSource::model;
  app.metrics().advice(from_model ? "model" : advice::reason_name(result.reason)).Increment();
  json out = {{"meal_id", r.meal->id},
              {"text", result.text},
              {"source", advice::source_name(result.source)},
              {"generated_tokens", result.generated_tokens},
              {"latency_ms", std::round(result.total_ms * 10) / 10}};
  if (!from_model) out["fallback_reason"] = advice::reason_name(result.reason);
  return out;
}

Response handle_advice(Application& app, const Request& request, Call& call) {
  JsonBody body = JsonBody::parse(request.body());
  const std::string user_id = body.string("user_id", 64);
  const std::string meal_id = body.string("meal_id", 200);
  const bool stream = body.optional_bool("stream").value_or(false);
  body.finish();
  require_user(call, user_id);
  auto session = app.users().find(user_id);
  if (!session) throw ApiError(http::status::not_found, "not_found", "no user " + user_id, "user_id");
  const auto m = app.catalog().find_meal(meal_id);
  if (!m) throw ApiError(http::status::not_found, "not_found", "meal_id: no meal \"" + meal_id.substr(0, 64) + "\"", "meal_id");
  const env::Meal& meal = app.catalog().meals()[*m];
  AdviceRequest advice_request;
  {
    std::lock_guard lock(session->mutex);
    if (!session->profile.profile.allows(meal)) {
      // Never advise a meal the user must not eat, even when asked by id.
      throw bad_request("unsafe_meal", "meal_id: \"" + meal_id + "\" conflicts with this user's diet or allergens", "meal_id");
    }
    advice_request = make_advice_request(*session, meal, meal.slot);
  }
  if (stream && call.streamed != nullptr) {
    Response head{http::status::ok, request.version()};
    head.set(http::field::content_type, "text/event-stream");
    head.set(http::field::cache_control, "no-store");
    head.keep_alive(false);
    call.streamed->head = head;
    call.streamed->produce = [&app, advice_request](const std::function<bool(std::string_view)>& write_chunk) {
      // Runs on the advice engine's thread (on_token) and a worker: nothing may escape, so
      // model text that is not valid UTF-8 is replaced, not thrown about.
      const std::function<bool(std::string_view)> on_token = [&](std::string_view piece) {
        return write_chunk(sse_event("token", json(std::string(piece))));
      };
      const json result = advice_for(app, advice_request, &on_token);
      write_chunk(sse_event("done", result));
    };
    return head;
  }
  return json_response(request, http::status::ok, advice_for(app, advice_request, nullptr));
}

// ---- models ----------------------------------------------------------------------------

namespace {
json model_json(const db::Model& m) {
  json out = {{"version", m.registered.version},
              {"kind", m.registered.kind},
              {"sha256", m.registered.sha256},
              {"path", m.registered.path},
              {"status", db::model_status_name(m.status)},
              {"metrics", m.registered.metrics},
              {"created_at", format_time(m.created_at)}};
  if (m.promoted_at) out["promoted_at"] = format_time(*m.promoted_at);
  return out;
}
}  // namespace

Response handle_list_models(Application& app, const Request& request, Call&) {
  json models = json::array();
  for (const auto& m : app.database().models().list()) models.push_back(model_json(m));
  return json_response(request, http::status::ok, {{"serving", app.model()->version}, {"models", models}});
}

Response handle_promote_model(Application& app, const Request& request, Call& call) {
  if (!request.body().empty()) JsonBody::parse(request.body(), true).finish();
  const std::string version(call.params.at(0));
  const auto serving = app.promote(version);
  return json_response(request, http::status::ok, {{"serving", serving->version}, {"sha256", serving->sha256}});
}

// ---- operations ------------------------------------------------------------------------

Response handle_livez(Application&, const Request& request, Call&) {
  return json_response(request, http::status::ok, {{"status", "alive"}});
}

Response handle_readyz(Application& app, const Request& request, Call&) {
  const bool database = app.database_ready();
  const auto model = app.model();
  const bool ready = database && model != nullptr;
  Response response = json_response(request, ready ? http::status::ok : http::status::service_unavailable,
                                    {{"status", ready ? "ready" : "not_ready"},
                                     {"database", database ? "ok" : "unavailable"},
                                     {"model", model ? model->version : ""},
                                     {"decision_log_queue", app.decision_log().queued()}});
  if (!ready) response.set(http::field::retry_after, "1");
  return response;
}

Response handle_metrics(Application& app, const Request& request, Call&) {
  Response response{http::status::ok, request.version()};
  response.set(http::field::content_type, "text/plain; version=0.0.4");
  response.keep_alive(request.keep_alive());
  response.body() = app.metrics().render();
  response.prepare_payload();
  return response;
}

Response handle_openapi(Application&, const Request& request, Call&) {
  Response response{http::status::ok, request.version()};
  response.set(http::field::content_type, "application/json");
  response.keep_alive(request.keep_alive());
  response.body() = openapi_document();
  response.prepare_payload();
  return response;
}

Response handle_demo_page(Application&, const Request& request, Call&) {
  Response response{http::status::ok, request.version()};
  response.set(http::field::content_type, "text/html; charset=utf-8");
  response.set(http::field::cache_control, "no-store");
  // The page loads nothing from elsewhere; say so to the browser too.
  response.set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:");
  response.keep_alive(request.keep_alive());
  response.body() = std::string(demo_page_html());
  response.prepare_payload();
  return response;
}

}  // namespace forkcast::service
