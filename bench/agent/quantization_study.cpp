// How int8 weight quantization schemes change the MealSim scorer's top-1 choice: each scheme
// quantizes the float network (weights rounded to int8 and scaled back, which is what an int8
// kernel with float activations computes, up to summation order) and is compared with the
// float network over the states of DqnMealSim's agreement test (greedy float trajectories
// from user seeds 9 000 000...). docs/agents.md ("What limits int8 here") quotes the output.
//
//   bench_quantization_study MODEL.safetensors [DATA_DIR] [STATES]
//
// MODEL: e.g. the seed-3, 150 000-step run of tests/training/dqn_training_test.cpp
// (forkcast train --agent dqn --env mealsim --seed 3 --steps 150000). Data-driven schemes
// (GPTQ, activation-aware scaling) calibrate on 2 000 states from other seeds. A study, not
// a serving path: what ships is QuantizedMlp (one scale per output row).
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "forkcast/agent/nn.hpp"
#include "forkcast/env/mealsim.hpp"
#include "forkcast/policy/model_files.hpp"

namespace nn = forkcast::agent::nn;
namespace fe = forkcast::env;
namespace fp = forkcast::policy;
using MatD = Eigen::MatrixXd;
using Net = nn::Mlp<float>;

namespace {

// Calls f(rows, float scores) for `count` states along greedy float trajectories.
template <class F>
void for_states(fe::MealSim& sim, const fe::Catalog& catalog, const Net& net, std::uint64_t seed0, int count, F f) {
  nn::Workspace<float> ws;
  nn::Matrix<float> rows, y;
  int states = 0;
  for (std::uint64_t u = 0; states < count; ++u) {
    sim.reset(seed0 + u);
    while (!sim.done() && states < count) {
      std::vector<int> allowed;
      for (std::size_t m = 0; m < sim.action_mask().size(); ++m) {
        if (sim.action_mask()[m]) allowed.push_back(static_cast<int>(m));
      }
      rows.resize(static_cast<Eigen::Index>(allowed.size()), fe::kCandidateInputSize);
      for (std::size_t c = 0; c < allowed.size(); ++c) {
        fe::write_candidate_input(catalog, sim.observation(), allowed[c], static_cast<float>(sim.meal_recency(allowed[c])),
                                  rows.row(static_cast<Eigen::Index>(c)).data());
      }
      net.predict(rows, y, ws);
      Eigen::Index best = 0;
      y.col(0).maxCoeff(&best);
      f(rows, y);
      ++states;
      sim.step(allowed[static_cast<std::size_t>(best)]);
    }
  }
}

float round_int8(float w, float scale) {
  return scale > 0 ? std::clamp(std::nearbyint(w / scale), -127.0F, 127.0F) * scale : 0.0F;
}

// One scale per output row and per run of input columns between `cuts` (none: per row).
void quantize_rows(Net& q, int layer, std::vector<int> cuts = {}, int first = 0, int last = -1) {
  auto w = q.weight(layer);
  if (last < 0) last = static_cast<int>(w.cols());
  cuts.insert(cuts.begin(), first);
  cuts.push_back(last);
  for (Eigen::Index j = 0; j < w.rows(); ++j) {
    for (std::size_t g = 0; g + 1 < cuts.size(); ++g) {
      const int a = cuts[g], b = cuts[g + 1];
      if (b <= a) continue;
      const float s = w.row(j).segment(a, b - a).cwiseAbs().maxCoeff() / 127.0F;
      for (int k = a; k < b; ++k) w(j, k) = round_int8(w(j, k), s);
    }
  }
}

std::vector<int> every(int n, int group) {
  std::vector<int> cuts;
  for (int k = group; k < n; k += group) cuts.push_back(k);
  return cuts;
}

// Activation-aware: columns scaled by E[x_k^2]^(alpha/2) before per-row rounding, then back.
void quantize_awq(Net& q, int layer, const MatD& gram, double alpha) {
  auto w = q.weight(layer);
  const auto in = w.cols();
  std::vector<float> a(static_cast<std::size_t>(in));
  for (Eigen::Index k = 0; k < in; ++k) a[static_cast<std::size_t>(k)] = static_cast<float>(std::pow(std::max(1e-8, gram(k, k)), alpha / 2));
  for (Eigen::Index j = 0; j < w.rows(); ++j) {
    float top = 0;
    for (Eigen::Index k = 0; k < in; ++k) top = std::max(top, std::fabs(w(j, k) * a[static_cast<std::size_t>(k)]));
    for (Eigen::Index k = 0; k < in; ++k) {
      const float ak = a[static_cast<std::size_t>(k)];
      w(j, k) = round_int8(w(j, k) * ak, top / 127.0F) / ak;
    }
  }
}

// GPTQ (Frantar et al., 2022): columns rounded in order, each one's rounding error spread over
// the columns not yet rounded through the inverse of the input Gram matrix; a new scale per
// row every `group` columns (0: one per row).
void quantize_gptq(Net& q, int layer, MatD gram, int group) {
  auto w = q.weight(layer);
  const int out = static_cast<int>(w.rows()), in = static_cast<int>(w.cols());
  if (group == 0) group = in;
  MatD W = w.cast<double>();
  for (int k = 0; k < in; ++k) {
    if (gram(k, k) == 0) gram(k, k) = 1;
  }
  gram.diagonal().array() += 0.01 * gram.diagonal().mean();
  const MatD inverse = gram.inverse();
  const MatD U = Eigen::LLT<MatD>(inverse).matrixU();
  std::vector<double> scale(static_cast<std::size_t>(out));
  for (int k = 0; k < in; ++k) {
    if (k % group == 0) {
      for (int j = 0; j < out; ++j) scale[static_cast<std::size_t>(j)] = W.row(j).segment(k, std::min(group, in - k)).cwiseAbs().maxCoeff() / 127.0;
    }
    for (int j = 0; j < out; ++j) {
      const double s = scale[static_cast<std::size_t>(j)];
      const double rounded = s > 0 ? std::clamp(std::nearbyint(W(j, k) / s), -127.0, 127.0) * s : 0.0;
      const double error = (W(j, k) - rounded) / U(k, k);
      W(j, k) = rounded;
      for (int m = k + 1; m < in; ++m) W(j, m) -= error * U(k, m);
    }
  }
  w = W.cast<float>();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL.safetensors [DATA_DIR] [STATES]\n", argv[0]);
    return 2;
  }
  const std::string data = argc > 2 ? argv[2] : FORKCAST_SOURCE_DIR "/data";
  const int count = argc > 3 ? std::stoi(argv[3]) : 10'000;
  const auto model = fp::load_dqn_model(argv[1]);
  const auto catalog = fe::Catalog::load(data);
  const auto population = fe::Population::load(data + "/population.yaml");
  fe::MealSim sim(catalog, population);
  const Net& net = *model.network;
  const int layers = net.num_layers();
  if (net.input_size() != fe::kCandidateInputSize || net.output_size() != 1) {
    std::fprintf(stderr, "not a MealSim candidate scorer\n");
    return 2;
  }
  constexpr int kObs = fe::kObservationSize, kStatic = fe::kMealStaticFeatures, kDyn = fe::kCandidateDynamicFeatures;

  // Input Gram matrices of every layer (float activations), for the data-driven schemes.
  std::vector<MatD> gram;
  for (int l = 0; l < layers; ++l) gram.push_back(MatD::Zero(net.layer_sizes()[static_cast<std::size_t>(l)], net.layer_sizes()[static_cast<std::size_t>(l)]));
  long rows_seen = 0;
  for_states(sim, catalog, net, 123'000'000ULL, 2'000, [&](const nn::Matrix<float>& rows, const nn::Matrix<float>&) {
    MatD a = rows.cast<double>();
    for (int l = 0; l < layers; ++l) {
      gram[static_cast<std::size_t>(l)].noalias() += a.transpose() * a;
      MatD z = a * net.weight(l).cast<double>().transpose();
      z.rowwise() += net.bias(l).cast<double>();
      if (l + 1 < layers) a = z.cwiseMax(0.0);
    }
    rows_seen += rows.rows();
  });
  for (auto& g : gram) g /= static_cast<double>(rows_seen);

  // The float network's top-2 gaps.
  {
    std::vector<double> gaps;
    double magnitude = 0;
    long scores = 0;
    for_states(sim, catalog, net, 9'000'000ULL, count, [&](const nn::Matrix<float>&, const nn::Matrix<float>& y) {
      std::vector<float> v(y.data(), y.data() + y.rows());
      std::sort(v.rbegin(), v.rend());
      gaps.push_back(v.size() > 1 ? v[0] - v[1] : 1e30);
      for (const float x : v) magnitude += std::fabs(x);
      scores += static_cast<long>(v.size());
    });
    std::sort(gaps.begin(), gaps.end());
    const auto at = [&](double q) { return gaps[static_cast<std::size_t>(q * static_cast<double>(gaps.size() - 1))]; };
    std::printf("%d states; mean |score| %.3f; float top-2 gap quantiles: 1%% %.2e, 2%% %.2e, 5%% %.2e, 50%% %.2e\n", count,
                magnitude / static_cast<double>(scores), at(0.01), at(0.02), at(0.05), at(0.5));
  }

  // Top-1 agreement with the float network of `score(rows, scores)` over the test's states.
  const auto agreement_of = [&](auto&& score) {
    nn::Matrix<float> yq;
    int agree = 0, n = 0;
    for_states(sim, catalog, net, 9'000'000ULL, count, [&](const nn::Matrix<float>& rows, const nn::Matrix<float>& y) {
      score(rows, yq);
      Eigen::Index bf = 0, bq = 0;
      y.col(0).maxCoeff(&bf);
      yq.col(0).maxCoeff(&bq);
      agree += bf == bq ? 1 : 0;
      ++n;
    });
    return 100.0 * agree / n;
  };
  nn::Workspace<float> ws;
  const auto agreement = [&](const Net& q) {
    return agreement_of([&](const nn::Matrix<float>& rows, nn::Matrix<float>& out) { q.predict(rows, out, ws); });
  };
  // First layer evaluated factorized, as served: state columns, the per-meal table (catalog
  // columns x W1) and the dynamic columns, each optionally int8; later layers in float.
  const auto factorized = [&](bool state_int8, bool table_int8, bool dyn_int8) {
    Net q0 = net;
    quantize_rows(q0, 0, {kObs, kObs + kStatic});
    nn::Matrix<float> w = net.weight(0);
    const nn::Matrix<float> wq = q0.weight(0);
    if (state_int8) w.leftCols(kObs) = wq.leftCols(kObs);
    if (dyn_int8) w.rightCols(kDyn) = wq.rightCols(kDyn);
    return agreement_of([&](const nn::Matrix<float>& rows, nn::Matrix<float>& out) {
      nn::Matrix<float> a(rows.rows(), w.rows());
      for (Eigen::Index i = 0; i < rows.rows(); ++i) {
        Eigen::RowVectorXf table = rows.row(i).segment(kObs, kStatic) * net.weight(0).middleCols(kObs, kStatic).transpose();
        if (table_int8) {
          const float s = table.cwiseAbs().maxCoeff() / 127.0F;
          for (Eigen::Index j = 0; j < table.size(); ++j) table(j) = round_int8(table(j), s);
        }
        const Eigen::RowVectorXf z = rows.row(i).head(kObs) * w.leftCols(kObs).transpose() + table +
                                     rows.row(i).tail(kDyn) * w.rightCols(kDyn).transpose() + net.bias(0);
        a.row(i) = z.cwiseMax(0.0F);
      }
      for (int l = 1; l < layers; ++l) {
        nn::Matrix<float> z = a * net.weight(l).transpose();
        z.rowwise() += net.bias(l);
        a = l + 1 < layers ? nn::Matrix<float>(z.cwiseMax(0.0F)) : z;
      }
      out = a;
    });
  };
  const auto report = [](const std::string& name, double percent) { std::printf("%-72s %6.2f %%\n", name.c_str(), percent); };
  const auto scheme = [&](auto quantize_layer) {
    Net q = net;
    for (int l = 0; l < layers; ++l) quantize_layer(q, l);
    return q;
  };

  report("int8, one scale per output row (QuantizedMlp)", agreement(scheme([](Net& q, int l) { quantize_rows(q, l); })));
  for (int kept = 0; kept < layers; ++kept) {
    report("the same, layer " + std::to_string(kept) + " left in float",
           agreement(scheme([&](Net& q, int l) { if (l != kept) quantize_rows(q, l); })));
  }
  report("only the first layer's state columns int8 (own row scales)", factorized(true, false, false));
  report("only its per-meal table int8 (one scale per meal)", factorized(false, true, false));
  report("only its dynamic columns int8 (own row scales)", factorized(false, false, true));
  report("first layer with row scales per state / catalog / dynamic columns", agreement(scheme([&](Net& q, int l) {
           if (l == 0) quantize_rows(q, 0, {kObs, kObs + kStatic});
           else quantize_rows(q, l);
         })));
  for (const int group : {32, 16, 8}) {
    report("a scale per row and per " + std::to_string(group) + " input columns", agreement(scheme([&](Net& q, int l) {
             quantize_rows(q, l, every(net.layer_sizes()[static_cast<std::size_t>(l)], group));
           })));
  }
  for (const int group : {0, 32, 16}) {
    report(group == 0 ? std::string("GPTQ, per-row scales") : "GPTQ, a scale per row and per " + std::to_string(group) + " columns",
           agreement(scheme([&](Net& q, int l) { quantize_gptq(q, l, gram[static_cast<std::size_t>(l)], group); })));
  }
  for (const int group : {0, 32}) {
    report(std::string("first layer in float, the others GPTQ") + (group == 0 ? ", per-row scales" : ", per 32 columns"),
           agreement(scheme([&](Net& q, int l) {
             if (l > 0) quantize_gptq(q, l, gram[static_cast<std::size_t>(l)], group);
           })));
  }
  for (const double alpha : {0.25, 0.5, 1.0}) {
    char name[96];
    std::snprintf(name, sizeof name, "activation-aware column scaling, alpha %.2f", alpha);
    report(name, agreement(scheme([&](Net& q, int l) { quantize_awq(q, l, gram[static_cast<std::size_t>(l)], alpha); })));
  }
  return 0;
}
