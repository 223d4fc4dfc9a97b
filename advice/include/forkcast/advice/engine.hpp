// The advice engine: a llama-family GGUF model run in-process by llama.cpp, behind one
// inference worker thread, with template fallback (docs/advice.md).
//
//   AdviceEngine engine(options);               // never throws for a bad model file
//   AdviceResult r = engine.advise(facts, deadline, on_text);
//   // r.text is always grounded: the model's text, or template_advice(facts) and a reason.
//
// Threads: advise() and stats() may be called from any number of threads at once. One
// worker thread owns the model and `contexts` llama.cpp contexts; it serves up to that
// many requests at a time, one token each in turn, from a bounded queue.
// Ownership: the engine owns the model (memory-mapped) and its contexts; destroying it
// stops the worker after the requests in flight return their template fallback.
// Errors: model problems (missing, unknown sha256, corrupt, not loadable) never throw:
// the engine runs templates-only, ready() is false and load_error() says why. advise()
// throws std::invalid_argument only for facts that fail validate_facts().
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "forkcast/advice/facts.hpp"

namespace forkcast::advice {

struct EngineOptions {
  std::string model_path;            // GGUF file; empty = templates only
  std::string manifest_path;         // "<sha256>  <file>" lines; empty = <model dir>/manifest
  bool allow_unknown_model = false;  // load a GGUF whose sha256 is not in the manifest
  int contexts = 2;                  // requests generated at once by the worker
  int queue_capacity = 64;           // requests waiting beyond those; more get the template
  int threads = 1;                   // CPU threads per llama_decode
  int max_new_tokens = 48;
  int context_tokens = 512;       // KV cache per context (prompt + advice)
  float temperature = 0.0F;       // 0 = greedy (the default: advice should be stable)
  std::uint32_t seed = 42;        // sampling seed per request when temperature > 0
  bool prefix_cache = true;       // reuse the system prompt's KV state (benchmarks turn it off)
  bool use_chat_template = true;  // when the model carries one; the bundled model has none
  std::string chat_template;      // overrides the model's: a name llama.cpp knows ("chatml",
                                  // "llama3", ...) or a template string; "" = the model's
};

enum class AdviceSource : std::uint8_t { model, template_fallback };
std::string_view source_name(AdviceSource source);  // "model" | "template"

enum class FallbackReason : std::uint8_t {
  none,         // the model's text was returned
  no_model,     // templates only: no model configured, or it was refused (load_error())
  queue_full,   // the bounded queue was full
  timeout,      // the deadline passed before the model finished
  grounding,    // the model's text failed check_grounding
  model_error,  // llama.cpp failed (tokenize/decode), or the prompt did not fit
  shutdown      // the engine was being destroyed
};
std::string_view reason_name(FallbackReason reason);  // "none", "queue_full", ...

struct AdviceResult {
  std::string text;  // always grounded
  AdviceSource source = AdviceSource::template_fallback;
  FallbackReason reason = FallbackReason::no_model;
  GroundingResult grounding;     // of the model's text, when reason is grounding
  std::string model_text;        // what the model generated (also when refused), for evaluation
  int prompt_tokens = 0;         // tokens of the request's prompt
  int reused_prompt_tokens = 0;  // of those, taken from the cached system prefix
  int generated_tokens = 0;
  double queue_ms = 0;        // waiting for a context
  double first_token_ms = 0;  // from advise() to the first generated token
  double total_ms = 0;        // from advise() to the result
};

// Called on the worker thread with grounded text as it is generated, one sentence at a
// time (a sentence is checked before it is shown, so no allergen word ever streams out).
// Never called after advise() returned. Keep it short: it holds up the worker. When the
// final result's source is template_fallback, the streamed text is superseded by r.text.
using TextCallback = std::function<void(std::string_view text)>;

// Counters since construction; the service exports them as Prometheus metrics.
struct EngineStats {
  std::uint64_t requests = 0;
  std::uint64_t model_answers = 0;
  std::uint64_t fallback_no_model = 0;
  std::uint64_t fallback_queue_full = 0;
  std::uint64_t fallback_timeout = 0;
  std::uint64_t fallback_grounding = 0;
  std::uint64_t fallback_model_error = 0;
  std::uint64_t fallback_shutdown = 0;
  std::uint64_t generated_tokens = 0;
  std::uint64_t prompt_tokens = 0;
  std::uint64_t reused_prompt_tokens = 0;
  std::uint64_t queue_depth = 0;  // now, not a counter
};

struct ModelInfo {
  std::string path;
  std::string sha256;
  std::string description;  // llama.cpp's, e.g. "llama ?B Q8_0"
  std::uint64_t parameters = 0;
  std::uint64_t size_bytes = 0;  // tensor bytes
  bool chat_template = false;    // prompts go through llama_chat_apply_template
};

// A model file that must not be loaded; what() names the path and the reason.
class ModelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// sha256 (hex) of a file; throws ModelError when it cannot be read.
std::string file_sha256(const std::string& path);
// Checks `path` against the manifest (see EngineOptions); returns its sha256. Throws
// ModelError: file missing or unreadable, manifest unreadable, or sha256 not listed
// (unless allow_unknown).
std::string verify_model_file(const std::string& path, const std::string& manifest_path,
                              bool allow_unknown);

class AdviceEngine {
 public:
  explicit AdviceEngine(const EngineOptions& options);
  ~AdviceEngine();
  AdviceEngine(const AdviceEngine&) = delete;
  AdviceEngine& operator=(const AdviceEngine&) = delete;

  // True when a model is loaded; otherwise every advise() returns the template.
  bool ready() const noexcept;
  // Why no model is loaded ("" when ready() or when none was configured).
  const std::string& load_error() const noexcept;
  const ModelInfo& model_info() const noexcept;

  // Advice for `facts`, waiting at most until `deadline`. Always returns grounded text.
  AdviceResult advise(const AdviceFacts& facts, std::chrono::steady_clock::time_point deadline,
                      const TextCallback& on_text = {});
  // The same with a timeout from now.
  AdviceResult advise(const AdviceFacts& facts, std::chrono::milliseconds timeout,
                      const TextCallback& on_text = {});

  EngineStats stats() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace forkcast::advice
