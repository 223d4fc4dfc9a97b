// Exploration as pure functions, in the style of Vowpal Wabbit's explore/ library: no
// state, no global generator, every random choice takes an explicit seed or a caller's
// std::mt19937_64, and results are written into caller-provided spans so that nothing
// allocates on the acting path.
//
// Masks: a mask is one byte per action, non-zero = allowed (the layout MealSim's
// action_mask() returns). An empty mask span means every action is allowed. A masked action
// behaves as if its score were -inf: it gets probability exactly 0.0, is never the argmax
// and is never sampled, whatever its score (even NaN). An allowed action's score must not
// be NaN.
//
// Errors: bad arguments (sizes that differ, no allowed action, epsilon outside [0, 1], a
// NaN score, ...) throw std::invalid_argument naming the parameter and its value.
//
// Portability of random draws: every draw is made from the raw 64-bit output of
// std::mt19937_64, whose sequence the C++ standard fixes, and never through
// std::uniform_*_distribution, whose results differ between standard libraries. The same
// seed therefore picks the same action with GCC/libstdc++ and Clang/libc++.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <span>

namespace forkcast::policy {

// ---- epsilon schedules ---------------------------------------------------------------

// eps_min + (eps_max - eps_min) * exp(-decay * episode), evaluated as written in double
// (the Hugging Face Deep RL course schedule; 1.0 / 0.05 / 0.005 gives ~0.626 at episode
// 100 and ~0.0564 at episode 1000).
// Throws std::invalid_argument when eps_max or eps_min is outside [0, 1], eps_min > eps_max,
// decay is negative or not finite, or episode < 0.
double epsilon_exponential(double eps_max, double eps_min, double decay, std::int64_t episode);

// Linear from eps_max at step 0 to eps_min at step steps_to_min, then eps_min for ever
// (CleanRL's linear_schedule). Both endpoints are returned exactly.
// Throws std::invalid_argument when eps_max or eps_min is outside [0, 1], eps_min > eps_max,
// steps_to_min <= 0 or step < 0.
double epsilon_linear(double eps_max, double eps_min, std::int64_t step,
                      std::int64_t steps_to_min);

// ---- probability mass functions ------------------------------------------------------

// Epsilon-greedy over the allowed actions: each allowed action gets epsilon / n_allowed;
// the greedy mass 1 - epsilon is split evenly among the allowed actions whose score equals
// the maximum exactly (no tolerance: near-ties are not ties). Masked actions get 0.0.
// pmf_out must have scores.size() elements; mask must be empty or scores.size().
// Throws std::invalid_argument on size mismatch, no allowed action, epsilon outside [0, 1]
// or a NaN score on an allowed action.
void epsilon_greedy_pmf(std::span<const double> scores, std::span<const std::uint8_t> mask,
                        double epsilon, std::span<double> pmf_out);
void epsilon_greedy_pmf(std::span<const float> scores, std::span<const std::uint8_t> mask,
                        double epsilon, std::span<double> pmf_out);

// Boltzmann exploration: p_i proportional to exp((s_i - max) / temperature) over the allowed
// actions, computed after subtracting the maximum so that large scores cannot overflow.
// Masked actions get 0.0. Limits are taken where the formula has none: when the maximum
// allowed score is +inf the actions scoring +inf share the mass evenly; when every allowed
// score is -inf they all share it evenly. Sizes as for epsilon_greedy_pmf.
// Throws std::invalid_argument on size mismatch, no allowed action, a NaN score on an
// allowed action, or a temperature that is not finite and > 0.
void softmax_pmf(std::span<const double> scores, std::span<const std::uint8_t> mask,
                 double temperature, std::span<double> pmf_out);
void softmax_pmf(std::span<const float> scores, std::span<const std::uint8_t> mask,
                 double temperature, std::span<double> pmf_out);

// ---- sampling ------------------------------------------------------------------------

// Draws an index with probability pmf[i] / sum(pmf) using exactly one output of rng:
// u = (rng() >> 11) * 2^-53 in [0, 1), then the first i whose running sum exceeds
// u * sum(pmf). The pmf need not sum to exactly 1 (it is normalised on the fly). An entry of
// 0.0 is never returned, even when rounding leaves u * sum past the last running sum: the
// last index with non-zero mass is returned then.
// Throws std::invalid_argument when pmf is empty, has a negative, NaN or infinite entry, or
// sums to 0.
std::size_t sample_from_pmf(std::span<const double> pmf, std::mt19937_64& rng);

// Same rule with u derived from the seed alone, so that a logged seed (for example a hash of
// a decision's event id) replays the choice with no generator to keep: u = (z >> 11) * 2^-53
// where z = splitmix64(seed), Vigna's SplitMix64 output function applied to
// seed + 0x9e3779b97f4a7c15 (z ^= z >> 30; z *= 0xbf58476d1ce4e5b9; z ^= z >> 27;
// z *= 0x94d049bb133111eb; z ^= z >> 31). Stateless: same pmf and seed, same index.
std::size_t sample_from_pmf(std::span<const double> pmf, std::uint64_t seed);

// ---- greedy choice -------------------------------------------------------------------

// Index of the largest allowed score (masked actions count as -inf). Exact ties go to the
// lowest index when tie_break_rng is null, otherwise to one of the tied indices drawn
// uniformly with one rejection-sampled draw from *tie_break_rng (no draw is made when there
// is no tie). An allowed action scoring -inf can still win if every allowed score is -inf.
// Throws std::invalid_argument on size mismatch, no allowed action or a NaN score on an
// allowed action.
std::size_t argmax_masked(std::span<const double> scores, std::span<const std::uint8_t> mask,
                          std::mt19937_64* tie_break_rng = nullptr);
std::size_t argmax_masked(std::span<const float> scores, std::span<const std::uint8_t> mask,
                          std::mt19937_64* tie_break_rng = nullptr);

}  // namespace forkcast::policy
