// The advice engine (engine.hpp). One worker thread owns the llama.cpp model and a small
// pool of contexts: llama.cpp contexts are not thread-safe, and one owner means no locks
// around inference at all. Requests wait in a bounded queue; callers wait on their own
// request with a deadline and fall back to the template, so a slow model never slows the
// service down beyond the deadline it chose.
#include "forkcast/advice/engine.hpp"

#include <llama.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace forkcast::advice {

namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// RAII over the C API: every handle is freed on every path.
struct ModelFree {
  void operator()(llama_model* m) const { llama_model_free(m); }
};
struct ContextFree {
  void operator()(llama_context* c) const { llama_free(c); }
};
struct SamplerFree {
  void operator()(llama_sampler* s) const { llama_sampler_free(s); }
};
struct BatchFree {
  void operator()(llama_batch* b) const {
    llama_batch_free(*b);
    delete b;
  }
};
using ModelPtr = std::unique_ptr<llama_model, ModelFree>;
using ContextPtr = std::unique_ptr<llama_context, ContextFree>;
using SamplerPtr = std::unique_ptr<llama_sampler, SamplerFree>;
using BatchPtr = std::unique_ptr<llama_batch, BatchFree>;

// llama.cpp's logger is process-wide; keep its chatter (model metadata dumps) off stderr
// and let only errors through.
void quiet_llama_log(ggml_log_level level, const char* text, void* /*user*/) {
  if (level == GGML_LOG_LEVEL_ERROR) std::fputs(text, stderr);
}

void init_llama_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    llama_log_set(quiet_llama_log, nullptr);
    llama_backend_init();
  });
}

// The sequence the system prefix is cached in, and the one each request runs in.
constexpr llama_seq_id kPrefixSeq = 0;
constexpr llama_seq_id kRequestSeq = 1;

bool is_sentence_end(char c) { return c == '.' || c == '!' || c == '?'; }

std::string trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(first, last - first + 1));
}

}  // namespace

std::string_view source_name(AdviceSource source) {
  return source == AdviceSource::model ? "model" : "template";
}

std::string_view reason_name(FallbackReason reason) {
  switch (reason) {
    case FallbackReason::none:
      return "none";
    case FallbackReason::no_model:
      return "no_model";
    case FallbackReason::queue_full:
      return "queue_full";
    case FallbackReason::timeout:
      return "timeout";
    case FallbackReason::grounding:
      return "grounding";
    case FallbackReason::model_error:
      return "model_error";
    case FallbackReason::shutdown:
      return "shutdown";
  }
  return "unknown";
}

struct Request {
  AdviceFacts facts;
  TextCallback on_text;
  Clock::time_point start;
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;       // result is final
  bool abandoned = false;  // the caller stopped waiting: no more callbacks, no more work
  AdviceResult result;
};

struct Slot {
  ContextPtr ctx;
  BatchPtr batch;
  std::vector<llama_token> prefix;  // tokens whose KV state sits in kPrefixSeq
  std::shared_ptr<Request> request;
  SamplerPtr sampler;
  llama_token next = 0;  // sampled, not yet appended
  int n_past = 0;
  std::string text;          // generated so far
  std::size_t streamed = 0;  // bytes of `text` already checked and sent
};

struct AdviceEngine::Impl {
  EngineOptions options;
  ModelPtr model;
  const llama_vocab* vocab = nullptr;
  std::string chat_template;  // empty: the raw format of the bundled model
  ModelInfo info;
  std::string load_error;
  int n_ctx = 0;

  std::vector<Slot> slots;
  std::mutex queue_mutex;
  std::condition_variable queue_cv;
  std::deque<std::shared_ptr<Request>> queue;
  bool stopping = false;
  std::thread worker;

  std::atomic<std::uint64_t> requests{0}, model_answers{0}, fb_no_model{0}, fb_queue_full{0},
      fb_timeout{0}, fb_grounding{0}, fb_model_error{0}, fb_shutdown{0}, generated_tokens{0},
      prompt_tokens{0}, reused_prompt_tokens{0}, queue_depth{0};

  explicit Impl(const EngineOptions& o) : options(o) {}

  void load();
  std::string render_prompt(const AdviceFacts* facts) const;
  std::vector<llama_token> tokenize(const std::string& text) const;
  bool decode(Slot& slot, const llama_token* tokens, int n, int pos, llama_seq_id seq,
              bool logits_last);
  void run();
  bool start(Slot& slot, const std::shared_ptr<Request>& req);
  bool step(Slot& slot);
  void finish(Slot& slot, FallbackReason failure);
  void deliver(Request& req, AdviceResult result);
  bool emit_sentences(Slot& slot, bool final_flush);
};

namespace {
AdviceResult template_result(const AdviceFacts& facts, FallbackReason reason,
                             Clock::time_point start) {
  AdviceResult r;
  r.text = template_advice(facts);
  r.source = AdviceSource::template_fallback;
  r.reason = reason;
  r.total_ms = ms_between(start, Clock::now());
  return r;
}
}  // namespace

void AdviceEngine::Impl::load() {
  if (options.model_path.empty()) return;  // templates only, by configuration
  try {
    std::string manifest = options.manifest_path;
    if (manifest.empty())
      manifest = (std::filesystem::path(options.model_path).parent_path() / "manifest").string();
    info.sha256 = verify_model_file(options.model_path, manifest, options.allow_unknown_model);
    info.path = options.model_path;
    init_llama_once();
    llama_model_params mp = llama_model_default_params();
    mp.load_mode = LLAMA_LOAD_MODE_MMAP;  // pages shared with the OS cache, loaded lazily
    mp.n_gpu_layers = 0;
    model.reset(llama_model_load_from_file(options.model_path.c_str(), mp));
    if (!model)
      throw ModelError("advice model '" + options.model_path +
                       "': llama.cpp could not load it (not a GGUF model?)");
    vocab = llama_model_get_vocab(model.get());
    char desc[256];
    llama_model_desc(model.get(), desc, sizeof desc);
    info.description = desc;
    info.parameters = llama_model_n_params(model.get());
    info.size_bytes = llama_model_size(model.get());
    if (options.use_chat_template) {
      const char* tmpl = options.chat_template.empty()
                             ? llama_model_chat_template(model.get(), nullptr)
                             : options.chat_template.c_str();
      if (tmpl != nullptr) {
        // Only templates llama.cpp knows: probe once, fall back to the raw format if not.
        llama_chat_message probe[] = {{"system", "s"}, {"user", "u"}};
        if (llama_chat_apply_template(tmpl, probe, 2, true, nullptr, 0) > 0) {
          chat_template = tmpl;
        } else if (!options.chat_template.empty()) {
          throw ModelError("advice engine: chat_template: '" + options.chat_template +
                           "' is not a template llama.cpp knows");
        }
      }
    }
    info.chat_template = !chat_template.empty();

    for (int i = 0; i < options.contexts; ++i) {
      llama_context_params cp = llama_context_default_params();
      cp.n_ctx = static_cast<std::uint32_t>(options.context_tokens);
      cp.n_batch = cp.n_ctx;
      cp.n_seq_max = 2;      // the cached prefix and the request
      cp.kv_unified = true;  // one KV buffer, so copying the prefix is metadata only
      cp.n_threads = options.threads;
      cp.n_threads_batch = options.threads;
      cp.no_perf = true;
      Slot slot;
      slot.ctx.reset(llama_init_from_model(model.get(), cp));
      if (!slot.ctx)
        throw ModelError("advice model '" + options.model_path +
                         "': cannot create a llama.cpp context");
      n_ctx = static_cast<int>(llama_n_ctx(slot.ctx.get()));
      slot.batch.reset(new llama_batch(llama_batch_init(n_ctx, 0, 1)));
      if (options.prefix_cache) {
        // Evaluated once per context; every request copies these cells by sequence id.
        slot.prefix = tokenize(render_prompt(nullptr));
        if (!slot.prefix.empty() &&
            !decode(slot, slot.prefix.data(), static_cast<int>(slot.prefix.size()), 0, kPrefixSeq,
                    false)) {
          throw ModelError("advice model '" + options.model_path +
                           "': evaluating the system prompt failed");
        }
      }
      slots.push_back(std::move(slot));
    }
  } catch (const std::exception& e) {
    slots.clear();
    model.reset();
    vocab = nullptr;
    load_error = e.what();
  }
}

// With facts: the whole prompt. Without: only the shared prefix (the part before the facts).
std::string AdviceEngine::Impl::render_prompt(const AdviceFacts* facts) const {
  if (chat_template.empty()) {
    std::string s(system_prompt());
    if (facts != nullptr) s += facts_prompt(*facts) + std::string(kAdviceCue);
    return s;
  }
  const std::string system(system_prompt());
  const std::string user = facts != nullptr ? facts_prompt(*facts) : std::string();
  llama_chat_message msgs[] = {{"system", system.c_str()}, {"user", user.c_str()}};
  const std::size_t n_msg = facts != nullptr ? 2 : 1;
  std::vector<char> buf(2 * (system.size() + user.size()) + 512);
  int n = llama_chat_apply_template(chat_template.c_str(), msgs, n_msg, facts != nullptr,
                                    buf.data(), static_cast<int>(buf.size()));
  if (n > static_cast<int>(buf.size())) {
    buf.resize(static_cast<std::size_t>(n));
    n = llama_chat_apply_template(chat_template.c_str(), msgs, n_msg, facts != nullptr, buf.data(),
                                  n);
  }
  return n > 0 ? std::string(buf.data(), static_cast<std::size_t>(n)) : std::string();
}

std::vector<llama_token> AdviceEngine::Impl::tokenize(const std::string& text) const {
  const bool parse_special = !chat_template.empty();  // template markers are special tokens
  std::vector<llama_token> tokens(text.size() + 8);
  int n = llama_tokenize(vocab, text.data(), static_cast<int>(text.size()), tokens.data(),
                         static_cast<int>(tokens.size()), true, parse_special);
  if (n < 0) {
    tokens.resize(static_cast<std::size_t>(-n));
    n = llama_tokenize(vocab, text.data(), static_cast<int>(text.size()), tokens.data(),
                       static_cast<int>(tokens.size()), true, parse_special);
  }
  tokens.resize(static_cast<std::size_t>(std::max(n, 0)));
  return tokens;
}

bool AdviceEngine::Impl::decode(Slot& slot, const llama_token* tokens, int n, int pos,
                                llama_seq_id seq, bool logits_last) {
  llama_batch& b = *slot.batch;
  b.n_tokens = n;
  for (int i = 0; i < n; ++i) {
    b.token[i] = tokens[i];
    b.pos[i] = pos + i;
    b.n_seq_id[i] = 1;
    b.seq_id[i][0] = seq;
    b.logits[i] = static_cast<std::int8_t>(logits_last && i == n - 1);
  }
  // 0 is success; 1 (no KV slot), 2 (aborted) and negative (fatal) all end the request.
  return llama_decode(slot.ctx.get(), b) == 0;
}

bool AdviceEngine::Impl::start(Slot& slot, const std::shared_ptr<Request>& req) {
  slot.request = req;
  slot.text.clear();
  slot.streamed = 0;
  const auto tokens = tokenize(render_prompt(&req->facts));
  llama_memory_t mem = llama_get_memory(slot.ctx.get());
  llama_memory_seq_rm(mem, kRequestSeq, -1, -1);
  const int n = static_cast<int>(tokens.size());
  if (n == 0 || n + options.max_new_tokens > n_ctx) return false;
  // Reuse the longest common prefix with the cached system prompt; at least one token is
  // decoded so there are logits to sample from.
  int reuse = 0;
  const int cached = static_cast<int>(slot.prefix.size());
  while (reuse < cached && reuse < n - 1 &&
         slot.prefix[static_cast<std::size_t>(reuse)] == tokens[static_cast<std::size_t>(reuse)])
    ++reuse;
  if (reuse > 0) llama_memory_seq_cp(mem, kPrefixSeq, kRequestSeq, 0, reuse);
  if (!decode(slot, tokens.data() + reuse, n - reuse, reuse, kRequestSeq, true)) return false;
  slot.n_past = n;

  llama_sampler_chain_params sp = llama_sampler_chain_default_params();
  sp.no_perf = true;
  slot.sampler.reset(llama_sampler_chain_init(sp));
  if (options.temperature > 0) {
    llama_sampler_chain_add(slot.sampler.get(), llama_sampler_init_top_k(40));
    llama_sampler_chain_add(slot.sampler.get(), llama_sampler_init_temp(options.temperature));
    llama_sampler_chain_add(slot.sampler.get(), llama_sampler_init_dist(options.seed));
  } else {
    llama_sampler_chain_add(slot.sampler.get(), llama_sampler_init_greedy());
  }
  slot.next = llama_sampler_sample(slot.sampler.get(), slot.ctx.get(), -1);

  auto& r = req->result;
  r.prompt_tokens = n;
  r.reused_prompt_tokens = reuse;
  r.queue_ms = ms_between(req->start, Clock::now());
  prompt_tokens += static_cast<std::uint64_t>(n);
  reused_prompt_tokens += static_cast<std::uint64_t>(reuse);
  return true;
}

// Sends each complete sentence once it passes the local grounding rules. Returns false
// when one fails: generation stops there and the template replaces the whole text.
bool AdviceEngine::Impl::emit_sentences(Slot& slot, bool final_flush) {
  Request& req = *slot.request;
  for (;;) {
    std::size_t end = std::string::npos;
    for (std::size_t i = slot.streamed; i + 1 < slot.text.size(); ++i) {
      if (is_sentence_end(slot.text[i]) && slot.text[i + 1] == ' ') {
        end = i + 1;
        break;
      }
    }
    if (end == std::string::npos) {
      if (!final_flush || slot.streamed >= slot.text.size()) return true;
      end = slot.text.size();
    }
    const std::string_view sentence(slot.text.data() + slot.streamed, end - slot.streamed);
    GroundingOptions partial;
    partial.require_meal_name = false;
    if (!trim(sentence).empty() && !check_grounding(sentence, req.facts, partial).ok())
      return false;
    if (req.on_text) {
      std::lock_guard lock(req.mutex);
      if (!req.abandoned) req.on_text(sentence);
    }
    slot.streamed = end;
  }
}

bool AdviceEngine::Impl::step(Slot& slot) {
  Request& req = *slot.request;
  {
    std::lock_guard lock(req.mutex);
    if (req.abandoned) {
      slot.request.reset();
      llama_memory_seq_rm(llama_get_memory(slot.ctx.get()), kRequestSeq, -1, -1);
      return false;
    }
  }
  if (llama_vocab_is_eog(vocab, slot.next)) {
    finish(slot, FallbackReason::none);
    return false;
  }
  char piece[128];
  // The first piece carries the word-start space after "Advice:"; advice starts with a word.
  const int lstrip = slot.text.empty() ? 1 : 0;
  const int len = llama_token_to_piece(vocab, slot.next, piece, sizeof piece, lstrip, false);
  if (len < 0) {
    finish(slot, FallbackReason::model_error);
    return false;
  }
  if (req.result.generated_tokens == 0)
    req.result.first_token_ms = ms_between(req.start, Clock::now());
  ++req.result.generated_tokens;
  ++generated_tokens;
  slot.text.append(piece, static_cast<std::size_t>(len));
  // The advice is one paragraph: a newline ends it like end-of-generation does.
  if (const auto nl = slot.text.find('\n'); nl != std::string::npos) {
    slot.text.resize(nl);
    finish(slot, FallbackReason::none);
    return false;
  }
  if (!emit_sentences(slot, false)) {
    finish(slot, FallbackReason::grounding);
    return false;
  }
  if (req.result.generated_tokens >= options.max_new_tokens) {
    // Cut at the last complete sentence rather than return half of one.
    std::size_t cut = std::string::npos;
    for (std::size_t i = slot.text.size(); i-- > 0;) {
      if (is_sentence_end(slot.text[i]) && (i + 1 == slot.text.size() || slot.text[i + 1] == ' ')) {
        cut = i + 1;
        break;
      }
    }
    slot.text.resize(cut == std::string::npos ? 0 : cut);
    slot.streamed = std::min(slot.streamed, slot.text.size());
    finish(slot, FallbackReason::none);
    return false;
  }
  if (!decode(slot, &slot.next, 1, slot.n_past, kRequestSeq, true)) {
    finish(slot, FallbackReason::model_error);
    return false;
  }
  ++slot.n_past;
  slot.next = llama_sampler_sample(slot.sampler.get(), slot.ctx.get(), -1);
  return true;
}

void AdviceEngine::Impl::deliver(Request& req, AdviceResult result) {
  std::lock_guard lock(req.mutex);
  if (req.abandoned) return;
  result.total_ms = ms_between(req.start, Clock::now());
  req.result = std::move(result);
  req.done = true;
  req.done_cv.notify_all();
}

void AdviceEngine::Impl::finish(Slot& slot, FallbackReason failure) {
  Request& req = *slot.request;
  AdviceResult r = req.result;  // token counts and timings so far
  r.model_text = trim(slot.text);
  FallbackReason reason = failure;
  if (reason == FallbackReason::none) {
    r.grounding = check_grounding(r.model_text, req.facts);
    // The whole text must pass, and so must its last, not yet streamed sentence.
    if (!r.grounding.ok() || !emit_sentences(slot, true)) reason = FallbackReason::grounding;
  } else if (reason == FallbackReason::grounding) {
    r.grounding = check_grounding(r.model_text, req.facts);
  }
  if (reason == FallbackReason::none) {
    r.text = r.model_text;
    r.source = AdviceSource::model;
    r.reason = FallbackReason::none;
    ++model_answers;
  } else {
    r.text = template_advice(req.facts);
    r.source = AdviceSource::template_fallback;
    r.reason = reason;
    (reason == FallbackReason::grounding ? fb_grounding : fb_model_error)++;
  }
  deliver(req, std::move(r));
  llama_memory_seq_rm(llama_get_memory(slot.ctx.get()), kRequestSeq, -1, -1);
  slot.request.reset();
  slot.sampler.reset();
}

void AdviceEngine::Impl::run() {
  for (;;) {
    bool any_active = false;
    for (auto& s : slots) any_active = any_active || s.request != nullptr;
    {
      std::unique_lock lock(queue_mutex);
      if (!any_active) queue_cv.wait(lock, [&] { return stopping || !queue.empty(); });
      if (stopping) break;
      for (auto& s : slots) {
        if (s.request != nullptr || queue.empty()) continue;
        auto req = std::move(queue.front());
        queue.pop_front();
        queue_depth = queue.size();
        {
          std::lock_guard rl(req->mutex);
          if (req->abandoned) continue;  // its caller already took the template
        }
        lock.unlock();
        if (!start(s, req)) {
          s.request = req;
          finish(s, FallbackReason::model_error);
        }
        lock.lock();
      }
    }
    // Round-robin, one token per active request, so concurrent streams all progress.
    for (auto& s : slots) {
      if (s.request != nullptr) step(s);
    }
  }
  // Shutdown: everything still waiting gets its template now.
  std::deque<std::shared_ptr<Request>> rest;
  {
    std::lock_guard lock(queue_mutex);
    rest.swap(queue);
  }
  for (auto& s : slots) {
    if (s.request != nullptr) rest.push_back(std::move(s.request));
  }
  for (auto& req : rest) {
    ++fb_shutdown;
    deliver(*req, template_result(req->facts, FallbackReason::shutdown, req->start));
  }
}

AdviceEngine::AdviceEngine(const EngineOptions& options) : impl_(std::make_unique<Impl>(options)) {
  const std::pair<const char*, int> positive[] = {{"contexts", options.contexts},
                                                  {"queue_capacity", options.queue_capacity},
                                                  {"max_new_tokens", options.max_new_tokens},
                                                  {"threads", options.threads}};
  for (const auto& [field, value] : positive) {
    if (value < 1)
      throw std::invalid_argument(std::string("advice engine: ") + field + ": " +
                                  std::to_string(value) + " must be >= 1");
  }
  impl_->load();
  if (impl_->model) impl_->worker = std::thread([this] { impl_->run(); });
}

AdviceEngine::~AdviceEngine() {
  {
    std::lock_guard lock(impl_->queue_mutex);
    impl_->stopping = true;
  }
  impl_->queue_cv.notify_all();
  if (impl_->worker.joinable()) impl_->worker.join();
}

bool AdviceEngine::ready() const noexcept { return impl_->model != nullptr; }
const std::string& AdviceEngine::load_error() const noexcept { return impl_->load_error; }
const ModelInfo& AdviceEngine::model_info() const noexcept { return impl_->info; }

AdviceResult AdviceEngine::advise(const AdviceFacts& facts, std::chrono::milliseconds timeout,
                                  const TextCallback& on_text) {
  return advise(facts, Clock::now() + timeout, on_text);
}

AdviceResult AdviceEngine::advise(const AdviceFacts& facts, Clock::time_point deadline,
                                  const TextCallback& on_text) {
  const auto start = Clock::now();
  validate_facts(facts);
  auto& im = *impl_;
  ++im.requests;
  if (!im.model) {
    ++im.fb_no_model;
    return template_result(facts, FallbackReason::no_model, start);
  }
  auto req = std::make_shared<Request>();
  req->facts = facts;
  req->on_text = on_text;
  req->start = start;
  {
    std::lock_guard lock(im.queue_mutex);
    if (im.stopping) {
      ++im.fb_shutdown;
      return template_result(facts, FallbackReason::shutdown, start);
    }
    if (static_cast<int>(im.queue.size()) >= im.options.queue_capacity) {
      ++im.fb_queue_full;
      return template_result(facts, FallbackReason::queue_full, start);
    }
    im.queue.push_back(req);
    im.queue_depth = im.queue.size();
  }
  im.queue_cv.notify_one();
  std::unique_lock lock(req->mutex);
  if (!req->done_cv.wait_until(lock, deadline, [&] { return req->done; })) {
    req->abandoned = true;  // under the lock: the worker sends no callback after this
    ++im.fb_timeout;
    AdviceResult r = template_result(facts, FallbackReason::timeout, start);
    r.model_text.clear();
    return r;
  }
  return req->result;
}

EngineStats AdviceEngine::stats() const noexcept {
  const auto& im = *impl_;
  EngineStats s;
  s.requests = im.requests;
  s.model_answers = im.model_answers;
  s.fallback_no_model = im.fb_no_model;
  s.fallback_queue_full = im.fb_queue_full;
  s.fallback_timeout = im.fb_timeout;
  s.fallback_grounding = im.fb_grounding;
  s.fallback_model_error = im.fb_model_error;
  s.fallback_shutdown = im.fb_shutdown;
  s.generated_tokens = im.generated_tokens;
  s.prompt_tokens = im.prompt_tokens;
  s.reused_prompt_tokens = im.reused_prompt_tokens;
  s.queue_depth = im.queue_depth;
  return s;
}

}  // namespace forkcast::advice
