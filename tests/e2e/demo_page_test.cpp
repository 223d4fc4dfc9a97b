// The demo page (service/static/index.html) in a real browser against a real server (issue 8
// acceptance): `forkcast serve` with its own throwaway PostgreSQL (ServeProcess of
// tests/service), headless Chromium driven over CDP (headless_chromium.hpp). A person's flow
// is clicked through: create a profile, ask for lunch suggestions, accept one (advice and
// today's intake update), reject another, see a server error shown with its field, reload
// and find the session again. No uncaught exception, no console error (beyond the network
// log of the one deliberate 400), no request off the server's origin. Then the server gets
// SIGTERM and must exit cleanly, stopping its database. Skipped only when Chromium is missing.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "headless_chromium.hpp"
#include "service_test_support.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Waits in the page (bounded, no polling from here) until the page's action counter
// (#app data-actions, bumped when an action finishes, successfully or not) passes `count`,
// and returns the state the checks read.
constexpr const char* kWaitForAction = R"JS(
  const waitForAction = (count) => new Promise((resolve, reject) => {
    const app = document.getElementById('app');
    const done = () => Number(app.dataset.actions) > count;
    if (done()) return resolve();
    const observer = new MutationObserver(() => { if (done()) { observer.disconnect(); resolve(); } });
    observer.observe(app, {attributes: true});
    setTimeout(() => { observer.disconnect(); reject(new Error('no action finished within 45 s')); }, 45000);
  });
  const text = (id) => document.getElementById(id).textContent;
  const snapshot = () => ({
    lastAction: document.getElementById('app').dataset.lastAction,
    busy: document.getElementById('app').dataset.busy,
    error: document.getElementById('error').hidden ? null
         : {message: text('error-message'), field: text('error-field'), code: text('error-code')},
    userId: document.getElementById('profile-status').dataset.userId || null,
    todayShown: !document.getElementById('today-section').hidden,
    intakeKcal: Number(text('intake-kcal')), targetKcal: Number(text('target-kcal')),
    intakeProtein: Number(text('intake-protein_g')), remainingKcal: Number(text('remaining-kcal')),
    served: Number(text('served')),
    eventId: document.getElementById('suggestion-meta').dataset.eventId || null,
    meals: Array.from(document.querySelectorAll('#suggestions > li'), (li) => ({
      id: li.id, mealId: li.dataset.mealId, kcal: Number(li.dataset.kcal), outcome: li.dataset.outcome,
      name: li.querySelector('h3').textContent, facts: li.querySelector('.facts').textContent,
      nutrition: li.querySelectorAll('.nutrition li').length, reasons: li.querySelectorAll('.reasons li').length,
      acceptDisabled: li.querySelector('button.accept').disabled, outcomeText: li.querySelector('.outcome').textContent})),
    adviceShown: !document.getElementById('advice-section').hidden,
    adviceText: text('advice-text'), adviceMeal: text('advice-meal'), adviceSource: text('advice-source'),
    feedbackStatus: text('feedback-status'),
    createDisabled: document.getElementById('create-profile').disabled,
    suggestDisabled: document.getElementById('suggest').disabled,
  });
)JS";

class DemoPage {
 public:
  DemoPage(forkcast::e2e::HeadlessChromium& browser, int width) : browser_(browser) {
    target_ = browser_.call("Target.createTarget", {{"url", "about:blank"}}).at("targetId");
    session_ = browser_.call("Target.attachToTarget", {{"targetId", target_}, {"flatten", true}}).at("sessionId");
    for (const char* domain : {"Runtime.enable", "Log.enable", "Page.enable", "Network.enable"}) {
      browser_.call(domain, json::object(), session_);
    }
    browser_.call("Emulation.setDeviceMetricsOverride",
                  {{"width", width}, {"height", 900}, {"deviceScaleFactor", 1}, {"mobile", false}}, session_);
  }
  ~DemoPage() {
    try {
      browser_.call("Target.closeTarget", {{"targetId", target_}});
    } catch (const std::exception&) {
      // The browser is going away with the test.
    }
  }

  void navigate(const std::string& url) {
    const std::size_t mark = browser_.events().size();
    browser_.call("Page.navigate", {{"url", url}}, session_);
    browser_.wait_event("Page.loadEventFired", session_, mark, 60);
  }

  // Evaluates `body` (statements ending in `return ...;`) in an async function that has
  // the helpers above; returns the value. A thrown error fails the test with its text.
  json run(const std::string& body) {
    const std::string expression = std::string("(async () => {") + kWaitForAction + body + "})()";
    const json result = browser_.call("Runtime.evaluate",
                                      {{"expression", expression}, {"awaitPromise", true}, {"returnByValue", true}},
                                      session_, 60);
    if (result.contains("exceptionDetails")) {
      ADD_FAILURE() << "page script failed: " << result.at("exceptionDetails").dump();
      return json();
    }
    return result.at("result").value("value", json());
  }

  // Runs `trigger` (which starts one page action, e.g. a click), waits until that action
  // has finished and returns snapshot().
  json act(const std::string& trigger) {
    return run("const before = Number(document.getElementById('app').dataset.actions);" + trigger +
               "; await waitForAction(before); return snapshot();");
  }

  std::string screenshot() {
    return forkcast::e2e::base64_decode(
        browser_.call("Page.captureScreenshot", {{"format", "png"}, {"captureBeyondViewport", true}}, session_).at("data"));
  }

  // What this tab logged from event index `from` on.
  struct Log {
    std::vector<std::string> exceptions, console_errors, network_errors, requests;
  };
  Log log(std::size_t from) const {
    Log out;
    for (std::size_t i = from; i < browser_.events().size(); ++i) {
      const json& e = browser_.events()[i];
      if (e.value("sessionId", "") != session_) continue;
      const std::string method = e.value("method", "");
      const json& p = e.at("params");
      if (method == "Runtime.exceptionThrown") {
        out.exceptions.push_back(p.at("exceptionDetails").dump());
      } else if (method == "Runtime.consoleAPICalled") {
        const std::string type = p.value("type", "");
        if (type == "error" || type == "assert") out.console_errors.push_back(p.at("args").dump());
      } else if (method == "Log.entryAdded" && p.at("entry").value("level", "") == "error") {
        const json& entry = p.at("entry");
        // The browser asks for /favicon.ico by itself and the service has no such route
        // (a data: icon would break the page's CSP, which allows no images): not the page's doing.
        const std::string url = entry.value("url", "");
        if (url.size() >= 12 && url.compare(url.size() - 12, 12, "/favicon.ico") == 0) continue;
        // Chromium logs every HTTP error status of a fetch() as a network error.
        (entry.value("source", "") == "network" ? out.network_errors : out.console_errors).push_back(entry.dump());
      } else if (method == "Network.requestWillBeSent") {
        out.requests.push_back(p.at("request").value("url", ""));
      }
    }
    return out;
  }
  std::size_t mark() const { return browser_.events().size(); }

 private:
  forkcast::e2e::HeadlessChromium& browser_;
  std::string target_, session_;
};

std::uint32_t be32(const std::string& s, std::size_t at) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

}  // namespace

class DemoPageInBrowser : public ::testing::Test {
 protected:
  void SetUp() override {
    chromium_ = forkcast::e2e::find_chromium();
    if (!chromium_) GTEST_SKIP() << "chromium not found (/usr/bin/chromium or $FORKCAST_CHROMIUM); scripts/setup.sh installs it";
  }
  std::optional<std::string> chromium_;
};

TEST_F(DemoPageInBrowser, APersonCreatesAProfileGetsSuggestionsAcceptsAndRejects) {
  forkcast::service::testing::ServeProcess server;  // waits for /readyz 200, bounded
  const std::string origin = "http://127.0.0.1:" + std::to_string(server.port());
  forkcast::e2e::HeadlessChromium browser(*chromium_);
  DemoPage page(browser, 1200);
  const std::size_t start = page.mark();
  page.navigate(origin + "/");

  // The empty page: nothing to suggest before a profile exists.
  json s = page.run("return snapshot();");
  EXPECT_EQ(s.at("error"), json());
  EXPECT_FALSE(s.at("todayShown").get<bool>());
  EXPECT_FALSE(s.at("createDisabled").get<bool>());
  EXPECT_TRUE(s.at("suggestDisabled").get<bool>());
  EXPECT_EQ(s.at("meals").size(), 0U);

  // 1. A vegetarian who must avoid peanuts creates a profile.
  s = page.act(
      "const set = (id, v) => { document.getElementById(id).value = v; };"
      "set('sex', 'female'); set('age', '34'); set('height_cm', '168'); set('weight_kg', '64');"
      "set('activity', 'moderate'); set('goal', 'maintain'); set('diet', 'vegetarian');"
      "set('budget_usd', '9'); set('cook_time_min', '30');"
      "document.getElementById('allergen-peanuts').checked = true;"
      "document.getElementById('create-profile').click()");
  ASSERT_EQ(s.at("lastAction"), "create-profile:ok") << s.dump(2);
  EXPECT_EQ(s.at("error"), json());
  const std::string user_id = s.at("userId").get<std::string>();
  EXPECT_TRUE(std::regex_match(user_id, std::regex("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"))) << user_id;
  EXPECT_TRUE(s.at("todayShown").get<bool>());
  EXPECT_EQ(s.at("intakeKcal").get<double>(), 0.0);
  EXPECT_GT(s.at("targetKcal").get<double>(), 1200.0);
  EXPECT_TRUE(s.at("createDisabled").get<bool>());
  EXPECT_FALSE(s.at("suggestDisabled").get<bool>());
  const json stored = page.run("return JSON.parse(sessionStorage.getItem('forkcast.session'));");
  EXPECT_EQ(stored.value("userId", ""), user_id);
  EXPECT_TRUE(std::regex_match(stored.value("token", ""), std::regex("fc_[0-9a-f]{32}")));

  // 2. Three lunch suggestions, each with nutrition, reasons and its probability, and advice
  // on the first.
  s = page.act(
      "document.getElementById('slot').value = 'lunch'; document.getElementById('n').value = '3';"
      "document.getElementById('suggest').click()");
  ASSERT_EQ(s.at("lastAction"), "suggest:ok") << s.dump(2);
  const json meals = s.at("meals");
  ASSERT_EQ(meals.size(), 3U) << s.dump(2);
  for (const json& m : meals) {
    SCOPED_TRACE(m.dump());
    EXPECT_FALSE(m.at("name").get<std::string>().empty());
    EXPECT_EQ(m.at("nutrition").get<int>(), 6);
    EXPECT_GE(m.at("reasons").get<int>(), 1);
    EXPECT_NE(m.at("facts").get<std::string>().find("probability"), std::string::npos);
    EXPECT_GT(m.at("kcal").get<double>(), 0.0);
    EXPECT_FALSE(m.at("acceptDisabled").get<bool>());
  }
  EXPECT_FALSE(s.at("eventId").is_null());
  EXPECT_EQ(s.at("served").get<int>(), 1);
  EXPECT_TRUE(s.at("adviceShown").get<bool>());
  EXPECT_FALSE(s.at("adviceText").get<std::string>().empty());
  EXPECT_EQ(s.at("adviceMeal").get<std::string>(), meals[0].at("name").get<std::string>().substr(3));  // "1. " prefix
  // What the page showed is safe for this user: every meal is lunch, vegetarian and peanut-free.
  const json safety = page.run(
      "const out = [];"
      "for (const li of document.querySelectorAll('#suggestions > li')) {"
      "  const m = await (await fetch('/v1/meals/' + encodeURIComponent(li.dataset.mealId))).json();"
      "  out.push({slot: m.slot, vegetarian: m.diets.includes('vegetarian'), peanuts: m.allergens.includes('peanuts')}); }"
      "return out;");
  ASSERT_EQ(safety.size(), 3U);
  for (const json& m : safety) {
    EXPECT_EQ(m.at("slot"), "lunch");
    EXPECT_TRUE(m.at("vegetarian").get<bool>());
    EXPECT_FALSE(m.at("peanuts").get<bool>());
  }

  // 3. Accept the first: it is marked, advice is about it, and today's intake grows by it.
  s = page.act("document.querySelector('#meal-1 button.accept').click()");
  ASSERT_EQ(s.at("lastAction"), "accept:ok") << s.dump(2);
  EXPECT_EQ(s.at("meals")[0].at("outcome"), "accepted");
  EXPECT_EQ(s.at("meals")[0].at("outcomeText"), "Accepted");
  EXPECT_TRUE(s.at("meals")[0].at("acceptDisabled").get<bool>());
  EXPECT_FALSE(s.at("meals")[1].at("acceptDisabled").get<bool>());
  EXPECT_NE(s.at("feedbackStatus").get<std::string>().find("Accepted"), std::string::npos);
  EXPECT_EQ(s.at("adviceMeal").get<std::string>(), meals[0].at("name").get<std::string>().substr(3));
  EXPECT_FALSE(s.at("adviceText").get<std::string>().empty());
  const double accepted_kcal = meals[0].at("kcal").get<double>();
  EXPECT_NEAR(s.at("intakeKcal").get<double>(), accepted_kcal, 1.0);
  EXPECT_GT(s.at("intakeProtein").get<double>(), 0.0);
  EXPECT_NEAR(s.at("remainingKcal").get<double>(), s.at("targetKcal").get<double>() - accepted_kcal, 1.0);

  // 4. Reject the second: marked, intake unchanged, advice moves to the one still open.
  s = page.act("document.querySelector('#meal-2 button.reject').click()");
  ASSERT_EQ(s.at("lastAction"), "reject:ok") << s.dump(2);
  EXPECT_EQ(s.at("meals")[1].at("outcome"), "rejected");
  EXPECT_EQ(s.at("meals")[1].at("outcomeText"), "Rejected");
  EXPECT_EQ(s.at("meals")[2].at("outcome"), "");
  EXPECT_NE(s.at("feedbackStatus").get<std::string>().find("Rejected"), std::string::npos);
  EXPECT_NEAR(s.at("intakeKcal").get<double>(), accepted_kcal, 1.0);
  EXPECT_EQ(s.at("adviceMeal").get<std::string>(), meals[2].at("name").get<std::string>().substr(3));
  EXPECT_EQ(s.at("error"), json());

  const std::string png = page.screenshot();
  ASSERT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(be32(png, 16), 1200U);
  const fs::path shot = FORKCAST_BINARY_DIR "/tests/e2e/demo_page_screenshot.png";
  std::ofstream(shot, std::ios::binary) << png;
  std::printf("screenshot %s (%zu bytes)\n", shot.c_str(), png.size());

  // The happy path logged nothing: no exception, no console error, no failed request, and
  // every request went to the server that served the page.
  const std::size_t before_error = page.mark();
  {
    const auto log = page.log(start);
    for (const auto& e : log.exceptions) ADD_FAILURE() << "uncaught exception: " << e;
    for (const auto& e : log.console_errors) ADD_FAILURE() << "console error: " << e;
    for (const auto& e : log.network_errors) ADD_FAILURE() << "failed request: " << e;
    EXPECT_GE(log.requests.size(), 8U);
    for (const auto& url : log.requests) EXPECT_EQ(url.rfind(origin + "/", 0), 0U) << url;
  }

  // 5. A server error is shown with its message and field, and points at the control.
  s = page.act("document.getElementById('n').value = '999'; document.getElementById('suggest').click()");
  ASSERT_EQ(s.at("lastAction"), "suggest:error") << s.dump(2);
  ASSERT_TRUE(s.at("error").is_object()) << s.dump(2);
  EXPECT_EQ(s.at("error").at("field"), "n");
  EXPECT_NE(s.at("error").at("message").get<std::string>().find("out of range"), std::string::npos) << s.dump(2);
  EXPECT_NE(s.at("error").at("code").get<std::string>().find("out_of_range"), std::string::npos);
  EXPECT_EQ(page.run("return document.getElementById('n').getAttribute('aria-invalid');"), "true");
  EXPECT_EQ(s.at("meals").size(), 3U) << "the last suggestions stay on the page";
  {
    const auto log = page.log(before_error);
    for (const auto& e : log.exceptions) ADD_FAILURE() << "uncaught exception: " << e;
    for (const auto& e : log.console_errors) ADD_FAILURE() << "console error: " << e;
    EXPECT_EQ(log.network_errors.size(), 1U) << "only the deliberate 400";
  }

  // 6. A reload finds the session kept in this tab, with today's intake from the server.
  const std::size_t before_reload = page.mark();
  page.navigate(origin + "/");
  s = page.run("await waitForAction(0); return snapshot();");
  EXPECT_EQ(s.at("lastAction"), "restore:ok") << s.dump(2);
  EXPECT_EQ(s.at("userId"), user_id);
  EXPECT_NEAR(s.at("intakeKcal").get<double>(), accepted_kcal, 1.0);
  EXPECT_EQ(s.at("served").get<int>(), 1);
  {
    const auto log = page.log(before_reload);
    for (const auto& e : log.exceptions) ADD_FAILURE() << "uncaught exception after reload: " << e;
    for (const auto& e : log.console_errors) ADD_FAILURE() << "console error after reload: " << e;
    for (const auto& e : log.network_errors) ADD_FAILURE() << "failed request after reload: " << e;
  }

  // SIGTERM: the server finishes, flushes and stops the database it started.
  EXPECT_EQ(server.terminate(std::chrono::seconds(30)), 0) << server.log();
  EXPECT_FALSE(fs::exists(server.data_dir() / "postmaster.pid")) << "the server left its database running";
}

TEST_F(DemoPageInBrowser, TheChecksSeeABrokenPage) {
  // The log checks above must catch what they claim to: a console error and an uncaught
  // exception on a deliberately broken page (no server needed).
  forkcast::e2e::HeadlessChromium browser(*chromium_);
  DemoPage page(browser, 400);
  const std::size_t start = page.mark();
  page.navigate(
      "data:text/html,<!doctype html><title>broken</title>"
      "<script>console.error('deliberate'); throw new Error('deliberate failure');</script>");
  EXPECT_EQ(page.run("return document.title;"), "broken");
  const auto log = page.log(start);
  ASSERT_EQ(log.console_errors.size(), 1U);
  EXPECT_NE(log.console_errors[0].find("deliberate"), std::string::npos) << log.console_errors[0];
  ASSERT_EQ(log.exceptions.size(), 1U);
  EXPECT_NE(log.exceptions[0].find("deliberate failure"), std::string::npos) << log.exceptions[0];
}
