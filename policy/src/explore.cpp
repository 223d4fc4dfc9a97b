#include "forkcast/policy/explore.hpp"

#include <charconv>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>

namespace forkcast::policy {
namespace {

// Shortest text that reads back as the same double, so that an error shows the exact
// value the caller passed (std::to_string would print 1e-9 as 0.000000).
std::string format_double(double value) {
  char buf[32];
  const auto result = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, result.ptr);
}

[[noreturn]] void throw_bad(std::string_view function, std::string_view parameter,
                            const std::string& value, std::string_view why) {
  throw std::invalid_argument(std::string(function) + ": " + std::string(parameter) + " = " +
                              value + " " + std::string(why));
}

void check_probability(std::string_view function, std::string_view parameter, double value) {
  // Written so that NaN fails too.
  if (!(value >= 0.0 && value <= 1.0)) {
    throw_bad(function, parameter, format_double(value), "is outside [0, 1]");
  }
}

void check_eps_range(std::string_view function, double eps_max, double eps_min) {
  check_probability(function, "eps_max", eps_max);
  check_probability(function, "eps_min", eps_min);
  if (eps_min > eps_max) {
    throw_bad(function, "eps_min", format_double(eps_min),
              "is greater than eps_max = " + format_double(eps_max));
  }
}

bool allowed(std::span<const std::uint8_t> mask, std::size_t i) {
  return mask.empty() || mask[i] != 0;
}

// Shared validation of (scores, mask, pmf_out); returns how many actions are allowed.
// Checks every allowed score for NaN before anything is written, so a bad call leaves
// pmf_out untouched.
template <typename Score>
std::size_t check_scores(std::string_view function, std::span<const Score> scores,
                         std::span<const std::uint8_t> mask, std::size_t out_size) {
  if (!mask.empty() && mask.size() != scores.size()) {
    throw_bad(function, "mask.size()", std::to_string(mask.size()),
              "differs from scores.size() = " + std::to_string(scores.size()));
  }
  if (out_size != scores.size()) {
    throw_bad(function, "pmf_out.size()", std::to_string(out_size),
              "differs from scores.size() = " + std::to_string(scores.size()));
  }
  std::size_t n_allowed = 0;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    if (!allowed(mask, i)) continue;
    if (std::isnan(scores[i])) {
      throw_bad(function, "scores[" + std::to_string(i) + "]", "NaN",
                "is not a number on an allowed action");
    }
    ++n_allowed;
  }
  if (n_allowed == 0) {
    throw_bad(function, "mask", "(" + std::to_string(scores.size()) + " actions)",
              "allows no action");
  }
  return n_allowed;
}

template <typename Score>
Score max_allowed(std::span<const Score> scores, std::span<const std::uint8_t> mask) {
  Score best = -std::numeric_limits<Score>::infinity();
  for (std::size_t i = 0; i < scores.size(); ++i) {
    if (allowed(mask, i) && scores[i] > best) best = scores[i];
  }
  return best;
}

template <typename Score>
std::size_t count_ties(std::span<const Score> scores, std::span<const std::uint8_t> mask,
                       Score best) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    if (allowed(mask, i) && scores[i] == best) ++n;
  }
  return n;
}

template <typename Score>
void epsilon_greedy_impl(std::span<const Score> scores, std::span<const std::uint8_t> mask,
                         double epsilon, std::span<double> pmf_out) {
  constexpr std::string_view kFn = "epsilon_greedy_pmf";
  check_probability(kFn, "epsilon", epsilon);
  const std::size_t n_allowed = check_scores(kFn, scores, mask, pmf_out.size());
  const Score best = max_allowed(scores, mask);
  const std::size_t n_ties = count_ties(scores, mask, best);
  const double explore = epsilon / static_cast<double>(n_allowed);
  const double exploit = (1.0 - epsilon) / static_cast<double>(n_ties);
  for (std::size_t i = 0; i < scores.size(); ++i) {
    if (!allowed(mask, i)) {
      pmf_out[i] = 0.0;
    } else {
      pmf_out[i] = scores[i] == best ? explore + exploit : explore;
    }
  }
}

template <typename Score>
void softmax_impl(std::span<const Score> scores, std::span<const std::uint8_t> mask,
                  double temperature, std::span<double> pmf_out) {
  constexpr std::string_view kFn = "softmax_pmf";
  if (!(std::isfinite(temperature) && temperature > 0.0)) {
    throw_bad(kFn, "temperature", format_double(temperature), "is not finite and > 0");
  }
  check_scores(kFn, scores, mask, pmf_out.size());
  const double best = static_cast<double>(max_allowed(scores, mask));
  if (std::isinf(best)) {
    // exp((s - max) / T) is NaN for s == max == +-inf: take the limit of the finite case,
    // in which the actions tied at the top share all the mass.
    const std::size_t n_ties = count_ties(scores, mask, static_cast<Score>(best));
    const double share = 1.0 / static_cast<double>(n_ties);
    for (std::size_t i = 0; i < scores.size(); ++i) {
      pmf_out[i] = allowed(mask, i) && static_cast<double>(scores[i]) == best ? share : 0.0;
    }
    return;
  }
  double total = 0.0;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    const double w =
        allowed(mask, i) ? std::exp((static_cast<double>(scores[i]) - best) / temperature) : 0.0;
    pmf_out[i] = w;
    total += w;
  }
  // total >= 1: the maximum contributes exp(0) = 1 exactly.
  for (std::size_t i = 0; i < scores.size(); ++i) pmf_out[i] /= total;
}

template <typename Score>
std::size_t argmax_impl(std::span<const Score> scores, std::span<const std::uint8_t> mask,
                        std::mt19937_64* rng) {
  constexpr std::string_view kFn = "argmax_masked";
  // Same checks as the pmf functions; there is no output span, so pass a matching size.
  check_scores(kFn, scores, mask, scores.size());
  const Score best = max_allowed(scores, mask);
  const std::size_t n_ties = count_ties(scores, mask, best);
  std::size_t pick = 0;
  if (rng != nullptr && n_ties > 1) {
    // Unbiased draw in [0, n_ties) by rejection on the raw 64-bit output: values below
    // 2^64 mod n_ties would make the lowest residues more likely.
    const std::uint64_t n = n_ties;
    const std::uint64_t threshold = (0 - n) % n;
    std::uint64_t r = (*rng)();
    while (r < threshold) r = (*rng)();
    pick = static_cast<std::size_t>(r % n);
  }
  for (std::size_t i = 0; i < scores.size(); ++i) {
    if (allowed(mask, i) && scores[i] == best) {
      if (pick == 0) return i;
      --pick;
    }
  }
  return scores.size();  // unreachable: n_ties >= 1 after check_scores
}

double unit_from_bits(std::uint64_t bits) {
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

std::uint64_t splitmix64(std::uint64_t seed) {
  std::uint64_t z = seed + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double checked_pmf_total(std::span<const double> pmf) {
  constexpr std::string_view kFn = "sample_from_pmf";
  if (pmf.empty()) throw_bad(kFn, "pmf.size()", "0", "leaves nothing to sample");
  double total = 0.0;
  for (std::size_t i = 0; i < pmf.size(); ++i) {
    if (!(std::isfinite(pmf[i]) && pmf[i] >= 0.0)) {
      throw_bad(kFn, "pmf[" + std::to_string(i) + "]", format_double(pmf[i]),
                "is not a finite non-negative probability");
    }
    total += pmf[i];
  }
  if (!(total > 0.0) || !std::isfinite(total)) {
    throw_bad(kFn, "sum(pmf)", format_double(total), "is not finite and > 0");
  }
  return total;
}

std::size_t sample_with_unit(std::span<const double> pmf, double total, double u) {
  const double target = u * total;
  double running = 0.0;
  std::size_t last_nonzero = 0;
  for (std::size_t i = 0; i < pmf.size(); ++i) {
    if (pmf[i] <= 0.0) continue;
    running += pmf[i];
    last_nonzero = i;
    if (target < running) return i;
  }
  // Rounding can leave target >= the final running sum (it is computed in a different
  // order than `total`); the tail belongs to the last action that has any mass.
  return last_nonzero;
}

}  // namespace

double epsilon_exponential(double eps_max, double eps_min, double decay, std::int64_t episode) {
  constexpr std::string_view kFn = "epsilon_exponential";
  check_eps_range(kFn, eps_max, eps_min);
  if (!(std::isfinite(decay) && decay >= 0.0)) {
    throw_bad(kFn, "decay", format_double(decay), "is not finite and >= 0");
  }
  if (episode < 0) throw_bad(kFn, "episode", std::to_string(episode), "is negative");
  return eps_min + (eps_max - eps_min) * std::exp(-decay * static_cast<double>(episode));
}

double epsilon_linear(double eps_max, double eps_min, std::int64_t step,
                      std::int64_t steps_to_min) {
  constexpr std::string_view kFn = "epsilon_linear";
  check_eps_range(kFn, eps_max, eps_min);
  if (steps_to_min <= 0) {
    throw_bad(kFn, "steps_to_min", std::to_string(steps_to_min), "is not > 0");
  }
  if (step < 0) throw_bad(kFn, "step", std::to_string(step), "is negative");
  if (step >= steps_to_min) return eps_min;
  const double fraction = static_cast<double>(step) / static_cast<double>(steps_to_min);
  return eps_max - (eps_max - eps_min) * fraction;
}

void epsilon_greedy_pmf(std::span<const double> scores, std::span<const std::uint8_t> mask,
                        double epsilon, std::span<double> pmf_out) {
  epsilon_greedy_impl(scores, mask, epsilon, pmf_out);
}

void epsilon_greedy_pmf(std::span<const float> scores, std::span<const std::uint8_t> mask,
                        double epsilon, std::span<double> pmf_out) {
  epsilon_greedy_impl(scores, mask, epsilon, pmf_out);
}

void softmax_pmf(std::span<const double> scores, std::span<const std::uint8_t> mask,
                 double temperature, std::span<double> pmf_out) {
  softmax_impl(scores, mask, temperature, pmf_out);
}

void softmax_pmf(std::span<const float> scores, std::span<const std::uint8_t> mask,
                 double temperature, std::span<double> pmf_out) {
  softmax_impl(scores, mask, temperature, pmf_out);
}

std::size_t sample_from_pmf(std::span<const double> pmf, std::mt19937_64& rng) {
  const double total = checked_pmf_total(pmf);
  return sample_with_unit(pmf, total, unit_from_bits(rng()));
}

std::size_t sample_from_pmf(std::span<const double> pmf, std::uint64_t seed) {
  const double total = checked_pmf_total(pmf);
  return sample_with_unit(pmf, total, unit_from_bits(splitmix64(seed)));
}

std::size_t argmax_masked(std::span<const double> scores, std::span<const std::uint8_t> mask,
                          std::mt19937_64* tie_break_rng) {
  return argmax_impl(scores, mask, tie_break_rng);
}

std::size_t argmax_masked(std::span<const float> scores, std::span<const std::uint8_t> mask,
                          std::mt19937_64* tie_break_rng) {
  return argmax_impl(scores, mask, tie_break_rng);
}

}  // namespace forkcast::policy
