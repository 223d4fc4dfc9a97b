// Tests of agent/nn.hpp: gradients against central finite differences in float64, Adam against
// a hand-computed reference, clipping, initialisation, the GEMM back ends, int8 serving and the
// errors. Fixed seeds and tolerances throughout; no timing (that is bench/agent/nn_bench.cpp).
#include "forkcast/agent/nn.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace nn = forkcast::agent::nn;

namespace {

template <class T>
nn::Matrix<T> random_matrix(Eigen::Index rows, Eigen::Index cols, std::uint64_t seed, double lo = -1.0,
                            double hi = 1.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  nn::Matrix<T> m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<T>(u(rng));
  return m;
}

// Relative error of an analytic derivative against a numerical one, elementwise; two values
// that are both (numerically) zero agree, which is what a dead ReLU unit gives.
double relative_error(double analytic, double numeric) {
  const double scale = std::max(std::abs(analytic), std::abs(numeric));
  if (scale < 1e-9) return std::abs(analytic - numeric) < 1e-12 ? 0.0 : 1.0;
  return std::abs(analytic - numeric) / scale;
}

constexpr double kMaxRelError = 1e-6;  // issue 5's bar for every gradient check

using Pattern = std::function<std::vector<bool>()>;

// Central difference of f at *value. Along one coordinate an MLP with fixed ReLU gates is affine
// and Huber/MSE are quadratic, so a central difference over a step that changes no gate and no
// Huber region has no truncation error at all: the step starts at 1e-3 (rounding error ~1e-13)
// and shrinks only while `pattern` (which units pass, which region each error is in) differs.
double central_difference(double* value, const std::function<double()>& f, const Pattern& pattern = {}) {
  const double saved = *value;
  const std::vector<bool> at = pattern ? pattern() : std::vector<bool>{};
  double step = 1e-3;
  for (; step > 1e-9; step /= 10.0) {
    if (!pattern) break;
    *value = saved + step;
    const bool same_plus = pattern() == at;
    *value = saved - step;
    const bool same_minus = pattern() == at;
    if (same_plus && same_minus) break;
  }
  *value = saved + step;
  const double plus = f();
  *value = saved - step;
  const double minus = f();
  *value = saved;
  return (plus - minus) / (2.0 * step);
}

// Which hidden units of `net` pass their ReLU on input x (read from predict()'s workspace, whose
// first B x width values of each activation buffer are that layer's output).
std::vector<bool> relu_gates(const nn::Mlp<double>& net, const nn::Matrix<double>& x) {
  nn::Workspace<double> ws;
  nn::Matrix<double> y;
  net.predict(x, y, ws);
  std::vector<bool> gates;
  for (int l = 0; l + 1 < net.num_layers(); ++l) {
    const Eigen::Index count = x.rows() * net.layer_sizes()[static_cast<std::size_t>(l) + 1];
    for (Eigen::Index i = 0; i < count; ++i) gates.push_back(ws.activations[static_cast<std::size_t>(l)].data()[i] > 0.0);
  }
  return gates;
}

// Which Huber region each element of pred - target is in.
std::vector<bool> huber_regions(const nn::Matrix<double>& pred, const nn::Matrix<double>& target, double delta) {
  std::vector<bool> regions;
  for (Eigen::Index i = 0; i < pred.size(); ++i) regions.push_back(std::abs(pred.data()[i] - target.data()[i]) <= delta);
  return regions;
}

// A network whose biases are random too, so that every parameter has a non-trivial gradient.
nn::Mlp<double> random_net(std::vector<int> sizes, std::uint64_t seed) {
  nn::Mlp<double> net(std::move(sizes), seed);
  for (int l = 0; l < net.num_layers(); ++l) {
    net.bias(l) = random_matrix<double>(1, net.bias(l).size(), seed + 100 + static_cast<std::uint64_t>(l), -0.5, 0.5);
  }
  return net;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Gradient checks (float64)

TEST(NnGradientCheck, EveryParameterAndTheInputOfAThreeLayerNet) {
  auto net = random_net({5, 7, 6, 3}, 11);
  auto x = random_matrix<double>(4, 5, 12);
  // L = sum(G .* net(x)): dL/dy = G, so backward(G) must return the gradient of this L.
  const auto g = random_matrix<double>(4, 3, 13);
  auto loss = [&] { return net.forward(x).cwiseProduct(g).sum(); };
  auto gates = [&] { return relu_gates(net, x); };

  net.zero_grad();
  net.forward(x);
  const nn::Matrix<double> dx = net.backward(g);
  const std::vector<double> analytic(net.gradients().begin(), net.gradients().end());

  auto params = net.parameters();
  for (std::size_t i = 0; i < params.size(); ++i) {
    const double numeric = central_difference(&params[i], loss, gates);
    EXPECT_LT(relative_error(analytic[i], numeric), kMaxRelError)
        << "parameter " << i << ": analytic " << analytic[i] << " numeric " << numeric;
  }
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    const double numeric = central_difference(&x.data()[i], loss, gates);
    EXPECT_LT(relative_error(dx.data()[i], numeric), kMaxRelError) << "input " << i;
  }
  EXPECT_GT(std::count_if(analytic.begin(), analytic.end(), [](double v) { return v != 0.0; }), 60)
      << "too many zero gradients for the check to mean anything";
}

TEST(NnGradientCheck, OneLayerNetAndBatchOne) {
  auto net = random_net({3, 2}, 21);
  auto x = random_matrix<double>(1, 3, 22);
  const auto g = random_matrix<double>(1, 2, 23);
  auto loss = [&] { return net.forward(x).cwiseProduct(g).sum(); };
  net.zero_grad();
  net.forward(x);
  const nn::Matrix<double> dx = net.backward(g);
  const std::vector<double> analytic(net.gradients().begin(), net.gradients().end());
  auto params = net.parameters();
  for (std::size_t i = 0; i < params.size(); ++i) {
    EXPECT_LT(relative_error(analytic[i], central_difference(&params[i], loss)), kMaxRelError) << "parameter " << i;
  }
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    EXPECT_LT(relative_error(dx.data()[i], central_difference(&x.data()[i], loss)), kMaxRelError) << "input " << i;
  }
}

TEST(NnGradientCheck, WideLayersTakeTheBlockedGemmPath) {
  // 40-wide layers at batch 24: every product is a packed GEMM (not a GEMV or the tiny path).
  auto net = random_net({30, 40, 40, 20}, 31);
  auto x = random_matrix<double>(24, 30, 32);
  const auto g = random_matrix<double>(24, 20, 33);
  auto loss = [&] { return net.forward(x).cwiseProduct(g).sum(); };
  auto gates = [&] { return relu_gates(net, x); };
  net.zero_grad();
  net.forward(x);
  const nn::Matrix<double> dx = net.backward(g);
  const std::vector<double> analytic(net.gradients().begin(), net.gradients().end());
  auto params = net.parameters();
  // Every 7th parameter keeps the test quick while touching every layer's weights and biases.
  for (std::size_t i = 0; i < params.size(); i += 7) {
    EXPECT_LT(relative_error(analytic[i], central_difference(&params[i], loss, gates)), kMaxRelError)
        << "parameter " << i;
  }
  for (Eigen::Index i = 0; i < x.size(); i += 5) {
    EXPECT_LT(relative_error(dx.data()[i], central_difference(&x.data()[i], loss, gates)), kMaxRelError)
        << "input " << i;
  }
}

TEST(NnGradientCheck, HuberInBothRegionsWithRowWeights) {
  // d = pred - target: rows mix |d| < delta (quadratic) and |d| > delta (linear), none near the
  // boundary where the second derivative jumps.
  nn::Matrix<double> pred(3, 2);
  pred << 0.3, 2.5, -1.7, 0.1, 4.0, -0.6;
  nn::Matrix<double> target = nn::Matrix<double>::Zero(3, 2);
  target(1, 1) = 0.5;
  const double weights[] = {0.5, 2.0, 1.25};
  const double delta = 1.0;
  nn::Matrix<double> grad;
  nn::huber_loss<double>(pred, target, delta, &grad, weights);
  int quadratic = 0;
  for (Eigen::Index i = 0; i < pred.size(); ++i) {
    quadratic += std::abs(pred.data()[i] - target.data()[i]) < delta ? 1 : 0;
    const double numeric = central_difference(
        &pred.data()[i], [&] { return nn::huber_loss<double>(pred, target, delta, nullptr, weights); },
        [&] { return huber_regions(pred, target, delta); });
    EXPECT_LT(relative_error(grad.data()[i], numeric), kMaxRelError) << "element " << i;
  }
  EXPECT_EQ(quadratic, 3);  // both regions are exercised

  // Through a network: the chain rule from the loss to every parameter.
  auto net = random_net({4, 6, 2}, 41);
  auto x = random_matrix<double>(3, 4, 42, -2.0, 2.0);
  const auto y = random_matrix<double>(3, 2, 43, -3.0, 3.0);
  auto loss = [&] { return nn::huber_loss<double>(net.forward(x), y, delta, nullptr, weights); };
  auto pattern = [&] {
    std::vector<bool> p = relu_gates(net, x);
    const std::vector<bool> regions = huber_regions(net.forward(x), y, delta);
    p.insert(p.end(), regions.begin(), regions.end());
    return p;
  };
  net.zero_grad();
  nn::huber_loss<double>(net.forward(x), y, delta, &grad, weights);
  net.backward(grad);
  const std::vector<double> analytic(net.gradients().begin(), net.gradients().end());
  const std::vector<bool> regions = huber_regions(net.forward(x), y, delta);
  EXPECT_GT(std::count(regions.begin(), regions.end(), true), 0) << "no error in the quadratic region";
  EXPECT_GT(std::count(regions.begin(), regions.end(), false), 0) << "no error in the linear region";
  auto params = net.parameters();
  for (std::size_t i = 0; i < params.size(); ++i) {
    EXPECT_LT(relative_error(analytic[i], central_difference(&params[i], loss, pattern)), kMaxRelError)
        << "parameter " << i;
  }
}

TEST(NnGradientCheck, MseWithAndWithoutRowWeights) {
  auto pred = random_matrix<double>(4, 3, 51, -2.0, 2.0);
  const auto target = random_matrix<double>(4, 3, 52, -2.0, 2.0);
  const double weights[] = {1.0, 0.25, 3.0, 0.5};
  for (const double* w : {static_cast<const double*>(nullptr), static_cast<const double*>(weights)}) {
    nn::Matrix<double> grad;
    nn::mse_loss<double>(pred, target, &grad, w);
    for (Eigen::Index i = 0; i < pred.size(); ++i) {
      const double numeric =
          central_difference(&pred.data()[i], [&] { return nn::mse_loss<double>(pred, target, nullptr, w); });
      EXPECT_LT(relative_error(grad.data()[i], numeric), kMaxRelError) << "element " << i;
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Losses, values

TEST(NnLoss, HuberAndMseValuesByHand) {
  nn::Matrix<double> pred(2, 2);
  pred << 0.5, 3.0, -2.0, 0.0;
  const nn::Matrix<double> target = nn::Matrix<double>::Zero(2, 2);
  // Huber, delta 1: 0.125, 1 * (3 - 0.5) = 2.5, 1 * (2 - 0.5) = 1.5, 0 -> mean 4.125 / 4.
  nn::Matrix<double> grad;
  EXPECT_DOUBLE_EQ(nn::huber_loss<double>(pred, target, 1.0, &grad, nullptr), 4.125 / 4);
  EXPECT_DOUBLE_EQ(grad(0, 0), 0.5 / 4);   // quadratic: d / N
  EXPECT_DOUBLE_EQ(grad(0, 1), 1.0 / 4);   // linear: delta * sign(d) / N
  EXPECT_DOUBLE_EQ(grad(1, 0), -1.0 / 4);
  EXPECT_DOUBLE_EQ(grad(1, 1), 0.0);
  // Delta 2 moves 3.0 -> 2 * (3 - 1) = 4 and -2.0 -> 0.5 * 4 = 2 (|d| <= delta is quadratic).
  EXPECT_DOUBLE_EQ(nn::huber_loss<double>(pred, target, 2.0, nullptr, nullptr), (0.125 + 4.0 + 2.0) / 4);
  // Row weights scale each row's terms; the mean still divides by all 4 elements.
  const double w[] = {2.0, 0.5};
  EXPECT_DOUBLE_EQ(nn::huber_loss<double>(pred, target, 1.0, nullptr, w), (2.0 * 2.625 + 0.5 * 1.5) / 4);
  // MSE: (0.25 + 9 + 4 + 0) / 4, gradient 2 d / N.
  EXPECT_DOUBLE_EQ(nn::mse_loss<double>(pred, target, &grad, nullptr), 13.25 / 4);
  EXPECT_DOUBLE_EQ(grad(0, 1), 2.0 * 3.0 / 4);
  EXPECT_DOUBLE_EQ(nn::mse_loss<double>(pred, target, nullptr, w), (2.0 * 9.25 + 0.5 * 4.0) / 4);
  // Float agrees.
  const nn::Matrix<float> pf = pred.cast<float>();
  const nn::Matrix<float> tf = target.cast<float>();
  EXPECT_FLOAT_EQ(nn::huber_loss<float>(pf, tf, 1.0F, nullptr, nullptr), 4.125F / 4);
}

// ------------------------------------------------------------------------------------------------
// Backward bookkeeping

TEST(NnBackward, GradientsAccumulateAndParameterOnlyBackwardMatches) {
  nn::Mlp<double> net({6, 8, 4}, 61);
  const auto x = random_matrix<double>(5, 6, 62);
  const auto g = random_matrix<double>(5, 4, 63);
  net.zero_grad();
  net.forward(x);
  net.backward(g);
  const std::vector<double> once(net.gradients().begin(), net.gradients().end());
  net.forward(x);
  net.backward_parameters(g);
  for (std::size_t i = 0; i < once.size(); ++i) ASSERT_NEAR(net.gradients()[i], 2.0 * once[i], 1e-12) << i;
  net.zero_grad();
  EXPECT_TRUE(std::all_of(net.gradients().begin(), net.gradients().end(), [](double v) { return v == 0.0; }));
}

TEST(NnBackward, FloatMatchesDoubleAndPredictMatchesForward) {
  nn::Mlp<double> nd({10, 32, 32, 5}, 71);
  nn::Mlp<float> nf({10, 32, 32, 5}, 71);
  const auto xd = random_matrix<double>(33, 10, 72);
  const nn::Matrix<float> xf = xd.cast<float>();
  // Same seed, same draws: the float network is the double one rounded.
  for (std::size_t i = 0; i < nd.num_parameters(); ++i) ASSERT_EQ(nf.parameters()[i], static_cast<float>(nd.parameters()[i]));
  const nn::Matrix<double> yd = nd.forward(xd);
  const nn::Matrix<float> yf = nf.forward(xf);
  EXPECT_LT((yf.cast<double>() - yd).cwiseAbs().maxCoeff(), 1e-5);

  nn::Workspace<float> ws;
  nn::Matrix<float> y;
  nf.predict(xf, y, ws);
  EXPECT_EQ(y, yf);  // same kernels, same order
  // A workspace serves any batch after a larger one, and a smaller one after it.
  for (const Eigen::Index rows : {1, 33, 7, 2}) {
    nf.predict(xf.topRows(rows), y, ws);
    ASSERT_EQ(y.rows(), rows);
    const nn::Matrix<float> expected = nf.forward(xf.topRows(rows));
    EXPECT_LT((y - expected).cwiseAbs().maxCoeff(), 1e-6F) << rows << " rows";
  }
}

// ------------------------------------------------------------------------------------------------
// Adam

TEST(NnAdam, OneStepMatchesTheHandComputedReference) {
  // Step 1 with zero moments: m = (1 - b1) g, v = (1 - b2) g^2, so m / (1 - b1) = g and
  // sqrt(v / (1 - b2)) = |g|: p1 = p0 - lr * g / (|g| + eps).
  const double lr = 0.01;
  const double eps = 1e-8;
  std::vector<double> p = {0.5, -1.0, 2.0, 0.0};
  const std::vector<double> g = {0.1, -0.2, 3.0, 0.0};
  nn::Adam<double> adam(p.size(), {lr, 0.9, 0.999, eps, 0.0});
  adam.step(p, g);
  const double expected[] = {0.5 - lr * 0.1 / (0.1 + eps), -1.0 + lr * 0.2 / (0.2 + eps), 2.0 - lr * 3.0 / (3.0 + eps),
                             0.0};
  for (std::size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(p[i], expected[i], 1e-15) << i;
  EXPECT_NEAR(adam.first_moment()[2], 0.1 * 3.0, 1e-15);
  EXPECT_NEAR(adam.second_moment()[2], 0.001 * 9.0, 1e-15);
  EXPECT_EQ(adam.steps(), 1);

  std::vector<float> pf = {0.5F, -1.0F, 2.0F, 0.0F};
  const std::vector<float> gf = {0.1F, -0.2F, 3.0F, 0.0F};
  nn::Adam<float> adam_f(pf.size(), {lr, 0.9, 0.999, eps, 0.0});
  adam_f.step(pf, gf);
  for (std::size_t i = 0; i < pf.size(); ++i) EXPECT_NEAR(pf[i], expected[i], 1e-6) << i;
}

TEST(NnAdam, ThreeStepsWithWeightDecayMatchTheHandComputedReference) {
  // lr 0.01, betas (0.9, 0.999), eps 1e-8, weight decay 0.1, written out step by step:
  //   g' = g + 0.1 p;  m = 0.9 m + 0.1 g';  v = 0.999 v + 0.001 g'^2;
  //   p -= (0.01 / (1 - 0.9^t)) * m / (sqrt(v) / sqrt(1 - 0.999^t) + 1e-8)
  // Step 1: g' = (0.15, -0.3, 0.5), m = (0.015, -0.03, 0.05), v = 0.001 g'^2, p = p - 0.01 g'/(|g'|+eps).
  const std::vector<std::vector<double>> grads = {{0.1, -0.2, 0.3}, {-0.4, 0.05, 0.25}, {0.2, 0.2, -0.6}};
  const double expected_p[3][3] = {{0.4900000006666666, -0.9900000003333334, 1.9900000002},
                                   {0.49421122910693693, -0.9821870199993421, 1.9800423864967853},
                                   {0.49344007773318244, -0.9784907302470034, 1.9767194148506375}};
  const double expected_m[3][3] = {{0.015, -0.03, 0.05},
                                   {-0.021599999993333327, -0.03190000000333333, 0.08990000000199999},
                                   {0.005502112297069369, -0.01853187020299342, 0.04071042386676786}};
  const double expected_v[3][3] = {{2.25e-05, 9.0e-05, 0.00025},
                                   {0.00014567849995320017, 9.231100000326677e-05, 0.00045135100001796047},
                                   {0.0002077437180072784, 0.00010257812162584171, 0.0006125002411615673}};
  const nn::AdamConfig config{0.01, 0.9, 0.999, 1e-8, 0.1};
  std::vector<double> p = {0.5, -1.0, 2.0};
  nn::Adam<double> adam(3, config);
  std::vector<float> pf = {0.5F, -1.0F, 2.0F};
  nn::Adam<float> adam_f(3, config);
  for (int t = 0; t < 3; ++t) {
    adam.step(p, grads[t]);
    const std::vector<float> gf(grads[t].begin(), grads[t].end());
    adam_f.step(pf, gf);
    for (int i = 0; i < 3; ++i) {
      EXPECT_NEAR(p[i], expected_p[t][i], 1e-14) << "step " << t + 1 << " parameter " << i;
      EXPECT_NEAR(adam.first_moment()[i], expected_m[t][i], 1e-15);
      EXPECT_NEAR(adam.second_moment()[i], expected_v[t][i], 1e-17);
      EXPECT_NEAR(pf[i], expected_p[t][i], 2e-6) << "float step " << t + 1 << " parameter " << i;
    }
  }
  EXPECT_EQ(adam.steps(), 3);
}

TEST(NnAdam, ResumingFromSavedMomentsContinuesExactly) {
  const nn::AdamConfig config{0.003, 0.9, 0.999, 1e-8, 0.01};
  std::vector<float> p(50);
  std::vector<std::vector<float>> grads(4, std::vector<float>(50));
  std::mt19937_64 rng(81);
  std::normal_distribution<float> normal(0.0F, 1.0F);
  for (auto& v : p) v = normal(rng);
  for (auto& g : grads) for (auto& v : g) v = normal(rng);
  nn::Adam<float> straight(p.size(), config);
  std::vector<float> p_straight = p;
  for (const auto& g : grads) straight.step(p_straight, g);

  nn::Adam<float> first(p.size(), config);
  std::vector<float> p_resumed = p;
  first.step(p_resumed, grads[0]);
  first.step(p_resumed, grads[1]);
  nn::Adam<float> resumed(p.size(), config);
  std::copy(first.first_moment().begin(), first.first_moment().end(), resumed.first_moment().begin());
  std::copy(first.second_moment().begin(), first.second_moment().end(), resumed.second_moment().begin());
  resumed.set_steps(first.steps());
  resumed.step(p_resumed, grads[2]);
  resumed.step(p_resumed, grads[3]);
  EXPECT_EQ(p_resumed, p_straight);
}

TEST(NnAdam, RejectsBadConfigurationAndSizes) {
  EXPECT_THROW(nn::Adam<float>(3, {0.0, 0.9, 0.999, 1e-8, 0.0}), std::invalid_argument);
  EXPECT_THROW(nn::Adam<float>(3, {1e-3, 1.0, 0.999, 1e-8, 0.0}), std::invalid_argument);
  EXPECT_THROW(nn::Adam<float>(3, {1e-3, 0.9, -0.1, 1e-8, 0.0}), std::invalid_argument);
  EXPECT_THROW(nn::Adam<float>(3, {1e-3, 0.9, 0.999, -1.0, 0.0}), std::invalid_argument);
  EXPECT_THROW(nn::Adam<float>(3, {1e-3, 0.9, 0.999, 1e-8, -0.5}), std::invalid_argument);
  nn::Adam<float> adam(3, {});
  std::vector<float> p(3), g(4);
  try {
    adam.step(p, g);
    FAIL() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("4 gradients"), std::string::npos) << e.what();
  }
  EXPECT_EQ(adam.steps(), 0);
}

// ------------------------------------------------------------------------------------------------
// Clipping

TEST(NnClipGradNorm, ScalesToMaxNormOnlyWhenAbove) {
  std::vector<float> g = {3.0F, -4.0F, 0.0F, 12.0F};  // norm 13
  EXPECT_FLOAT_EQ(nn::clip_grad_norm<float>(g, 26.0F), 13.0F);
  EXPECT_EQ(g, (std::vector<float>{3.0F, -4.0F, 0.0F, 12.0F}));  // below: untouched
  EXPECT_FLOAT_EQ(nn::clip_grad_norm<float>(g, 6.5F), 13.0F);
  // torch's coefficient max_norm / (norm + 1e-6): half, to float precision.
  EXPECT_NEAR(g[0], 1.5F, 1e-6F);
  EXPECT_NEAR(g[1], -2.0F, 1e-6F);
  EXPECT_NEAR(g[3], 6.0F, 1e-6F);
  std::vector<double> gd = {3.0, 4.0};
  EXPECT_DOUBLE_EQ(nn::clip_grad_norm<double>(gd, 1.0), 5.0);
  EXPECT_NEAR(std::hypot(gd[0], gd[1]), 1.0, 1e-6);
  EXPECT_NEAR(gd[0] / gd[1], 0.75, 1e-15);  // direction kept
  std::vector<float> zero(5, 0.0F);
  EXPECT_EQ(nn::clip_grad_norm<float>(zero, 1.0F), 0.0F);
  EXPECT_THROW(nn::clip_grad_norm<float>(g, 0.0F), std::invalid_argument);
  EXPECT_THROW(nn::clip_grad_norm<float>(g, -1.0F), std::invalid_argument);
}

// ------------------------------------------------------------------------------------------------
// Initialisation

TEST(NnInit, DeterministicPerSeedWithinBoundsAndZeroBiases) {
  const std::vector<int> sizes = {96, 256, 256, 200};
  nn::Mlp<float> a(sizes, 7);
  nn::Mlp<float> b(sizes, 7);
  nn::Mlp<float> c(sizes, 8);
  EXPECT_TRUE(std::equal(a.parameters().begin(), a.parameters().end(), b.parameters().begin()));
  EXPECT_FALSE(std::equal(a.parameters().begin(), a.parameters().end(), c.parameters().begin()));
  nn::Mlp<float> xavier(sizes, 7, nn::Init::xavier_uniform);
  for (int l = 0; l < a.num_layers(); ++l) {
    const double fan_in = sizes[l];
    const double fan_out = sizes[l + 1];
    for (const auto& [net, bound] : {std::pair<const nn::Mlp<float>*, double>{&a, std::sqrt(6.0 / fan_in)},
                                     std::pair<const nn::Mlp<float>*, double>{&xavier, std::sqrt(6.0 / (fan_in + fan_out))}}) {
      const auto w = net->weight(l);
      EXPECT_LE(w.cwiseAbs().maxCoeff(), bound) << "layer " << l;
      EXPECT_GT(w.cwiseAbs().maxCoeff(), 0.99 * bound) << "layer " << l;  // the range is used
      // U(-b, b): mean 0, variance b^2 / 3; over >= 19 200 draws both hold to a few percent.
      const double mean = w.template cast<double>().mean();
      const double var = w.template cast<double>().array().square().mean() - mean * mean;
      EXPECT_NEAR(mean, 0.0, 0.02 * bound) << "layer " << l;
      EXPECT_NEAR(var / (bound * bound / 3.0), 1.0, 0.05) << "layer " << l;
      EXPECT_TRUE((net->bias(l).array() == 0.0F).all()) << "layer " << l;
    }
  }
}

TEST(NnInit, DocumentedDrawOrder) {
  // The first weight of layer 0 is the first draw; layer 1 starts right after layer 0's weights
  // (biases take no draw), as nn.cpp documents.
  const nn::Mlp<double> net({3, 2, 4}, 99);
  std::mt19937_64 rng(99);
  auto draw = [&](double bound) { return bound * (2.0 * static_cast<double>(rng() >> 11) * 0x1.0p-53 - 1.0); };
  const double b0 = std::sqrt(6.0 / 3.0);
  for (int j = 0; j < 2; ++j) {
    for (int k = 0; k < 3; ++k) EXPECT_EQ(net.weight(0)(j, k), draw(b0));
  }
  EXPECT_EQ(net.weight(1)(0, 0), draw(std::sqrt(6.0 / 2.0)));
}

// ------------------------------------------------------------------------------------------------
// Target networks

TEST(NnTargetNetwork, CopyAndPolyak) {
  nn::Mlp<float> online({4, 8, 2}, 1);
  nn::Mlp<float> target({4, 8, 2}, 2);
  const std::vector<float> before(target.parameters().begin(), target.parameters().end());
  target.polyak_update_from(online, 0.25F);
  for (std::size_t i = 0; i < before.size(); ++i) {
    EXPECT_FLOAT_EQ(target.parameters()[i], 0.25F * online.parameters()[i] + 0.75F * before[i]);
  }
  target.copy_parameters_from(online);
  EXPECT_TRUE(std::equal(online.parameters().begin(), online.parameters().end(), target.parameters().begin()));
  nn::Mlp<float> other({4, 9, 2}, 1);
  EXPECT_THROW(target.copy_parameters_from(other), std::invalid_argument);
  EXPECT_THROW(target.polyak_update_from(other, 0.5F), std::invalid_argument);
  EXPECT_THROW(target.polyak_update_from(online, 1.5F), std::invalid_argument);
}

// ------------------------------------------------------------------------------------------------
// GEMM back ends

namespace {

// C = beta C + op(A) op(B) the slow, obvious way, in double.
nn::Matrix<double> reference_gemm(bool ta, bool tb, const nn::Matrix<float>& a, const nn::Matrix<float>& b, float beta,
                                  const nn::Matrix<float>& c) {
  const nn::Matrix<double> opa = ta ? nn::Matrix<double>(a.cast<double>().transpose()) : a.cast<double>();
  const nn::Matrix<double> opb = tb ? nn::Matrix<double>(b.cast<double>().transpose()) : b.cast<double>();
  return static_cast<double>(beta) * c.cast<double>() + opa * opb;
}

}  // namespace

TEST(NnGemm, EigenAndBlasAgreeWithTheReferenceOnEveryTransposeAndStride) {
  struct Shape {
    int m, n, k;
  };
  // GEMV shapes (m or n == 1), the tiny path, and packed GEMMs with ragged edges.
  const Shape shapes[] = {{1, 7, 5}, {9, 1, 6}, {3, 4, 5}, {37, 29, 41}, {128, 84, 120}, {70, 65, 300}};
  std::uint64_t seed = 200;
  for (const auto& s : shapes) {
    for (int variant = 0; variant < 4; ++variant) {
      const bool ta = (variant & 1) != 0;
      const bool tb = (variant & 2) != 0;
      // Stored matrices get 3 extra columns: leading dimensions beyond the row length.
      const int a_rows = ta ? s.k : s.m;
      const int a_cols = ta ? s.m : s.k;
      const int b_rows = tb ? s.n : s.k;
      const int b_cols = tb ? s.k : s.n;
      const auto a_store = random_matrix<float>(a_rows, a_cols + 3, ++seed);
      const auto b_store = random_matrix<float>(b_rows, b_cols + 3, ++seed);
      const auto c_store = random_matrix<float>(s.m, s.n + 3, ++seed);
      const nn::Matrix<float> a = a_store.leftCols(a_cols);
      const nn::Matrix<float> b = b_store.leftCols(b_cols);
      for (const float beta : {0.0F, 1.0F, 0.5F}) {
        const nn::Matrix<double> expected = reference_gemm(ta, tb, a, b, beta, c_store.leftCols(s.n));
        for (const auto backend : {nn::GemmBackend::eigen, nn::GemmBackend::blas, nn::GemmBackend::automatic}) {
          nn::Matrix<float> c = c_store;
          nn::GemmScratch<float> scratch;
          nn::gemm<float>(ta, tb, s.m, s.n, s.k, a_store.data(), a_cols + 3, b_store.data(), b_cols + 3, beta, c.data(),
                          s.n + 3, scratch, backend);
          const double err = (c.leftCols(s.n).cast<double>() - expected).cwiseAbs().maxCoeff();
          EXPECT_LT(err, 1e-5 * (s.k + 1)) << s.m << "x" << s.n << "x" << s.k << " ta=" << ta << " tb=" << tb
                                           << " beta=" << beta << " backend=" << static_cast<int>(backend);
          EXPECT_EQ(c.rightCols(3), c_store.rightCols(3)) << "wrote past n columns";
        }
      }
    }
  }
}

TEST(NnGemm, BetaZeroIgnoresNanAndBadArgumentsThrow) {
  const auto a = random_matrix<float>(40, 30, 301);
  const auto b = random_matrix<float>(30, 50, 302);
  for (const auto backend : {nn::GemmBackend::eigen, nn::GemmBackend::blas}) {
    nn::Matrix<float> c = nn::Matrix<float>::Constant(40, 50, std::nanf(""));
    nn::GemmScratch<float> scratch;
    nn::gemm<float>(false, false, 40, 50, 30, a.data(), 30, b.data(), 50, 0.0F, c.data(), 50, scratch, backend);
    EXPECT_TRUE(c.allFinite());
  }
  nn::GemmScratch<float> scratch;
  nn::Matrix<float> c(40, 50);
  EXPECT_THROW(nn::gemm<float>(false, false, 40, 50, 30, a.data(), 29, b.data(), 50, 0.0F, c.data(), 50, scratch),
               std::invalid_argument);
  EXPECT_THROW(nn::gemm<float>(false, false, -1, 50, 30, a.data(), 30, b.data(), 50, 0.0F, c.data(), 50, scratch),
               std::invalid_argument);
}

TEST(NnGemm, EveryBackendTrainsTheSameNetwork) {
  // A forward and backward on each back end: same gradients up to float rounding.
  const auto x = random_matrix<float>(64, 24, 311);
  const auto g = random_matrix<float>(64, 10, 312);
  std::vector<std::vector<float>> grads;
  for (const auto backend : {nn::GemmBackend::eigen, nn::GemmBackend::blas, nn::GemmBackend::automatic}) {
    nn::Mlp<float> net({24, 48, 48, 10}, 313);
    net.set_gemm_backend(backend);
    EXPECT_EQ(net.gemm_backend(), backend);
    net.zero_grad();
    net.forward(x);
    net.backward(g);
    grads.emplace_back(net.gradients().begin(), net.gradients().end());
  }
  for (std::size_t b = 1; b < grads.size(); ++b) {
    for (std::size_t i = 0; i < grads[0].size(); ++i) ASSERT_NEAR(grads[b][i], grads[0][i], 1e-4F) << b << " " << i;
  }
}

// ------------------------------------------------------------------------------------------------
// int8 serving

TEST(NnQuantized, WeightsAreRoundedPerRowScale) {
  nn::Mlp<float> net({20, 16, 3}, 401);
  net.weight(1).row(2).setZero();  // an all-zero row quantizes to zeros, scale 0
  const nn::QuantizedMlp q(net);
  EXPECT_EQ(q.layer_sizes(), net.layer_sizes());
  for (int l = 0; l < net.num_layers(); ++l) {
    const auto w = net.weight(l);
    const auto qw = q.quantized_weight(l);
    const auto s = q.scales(l);
    for (Eigen::Index j = 0; j < w.rows(); ++j) {
      EXPECT_FLOAT_EQ(s[j], w.row(j).cwiseAbs().maxCoeff() / 127.0F);
      for (Eigen::Index k = 0; k < w.cols(); ++k) {
        const float back = static_cast<float>(qw(k, j)) * s[j];  // stored transposed
        EXPECT_LE(std::abs(back - w(j, k)), 0.5F * s[j] * 1.0001F + 1e-12F);
      }
    }
  }
  EXPECT_THROW(q.scales(2), std::out_of_range);
}

namespace {

// Argmax over 240 random candidate rows of a 119-wide scorer, float vs its QuantizedMlp, for
// kAgreementStates states; also the largest score difference and the largest |score|.
constexpr int kAgreementStates = 200;
struct Agreement {
  int agree = 0;
  float max_error = 0, max_score = 0;
};
Agreement candidate_argmax_agreement(const nn::Mlp<float>& net) {
  const nn::QuantizedMlp q(net);
  nn::Workspace<float> ws;
  nn::Matrix<float> yf, yq;
  Agreement result;
  for (int s = 0; s < kAgreementStates; ++s) {
    const auto candidates = random_matrix<float>(240, 119, 500 + static_cast<std::uint64_t>(s), 0.0, 1.0);
    net.predict(candidates, yf, ws);
    q.predict(candidates, yq, ws);
    result.max_error = std::max(result.max_error, (yq - yf).cwiseAbs().maxCoeff());
    result.max_score = std::max(result.max_score, yf.cwiseAbs().maxCoeff());
    Eigen::Index af = 0, aq = 0;
    yf.col(0).maxCoeff(&af);
    yq.col(0).maxCoeff(&aq);
    result.agree += af == aq ? 1 : 0;
  }
  return result;
}

}  // namespace

TEST(NnQuantized, TopOneAgreesWithFloatOnRandomInputs) {
  // A fixed-action head (argmax over 6 outputs) and a candidate scorer (argmax over 240 rows of
  // one output), as the DQN uses them. The real acceptance (>= 99 % on MealSim states) is the
  // DQN's; on uniform random inputs close calls are commoner, hence the margins here.
  {
    nn::Mlp<float> net({8, 64, 64, 6}, 411);
    const nn::QuantizedMlp q(net);
    const auto x = random_matrix<float>(2000, 8, 412, -2.0, 2.0);
    nn::Workspace<float> ws;
    nn::Matrix<float> yf, yq;
    net.predict(x, yf, ws);
    q.predict(x, yq, ws);
    int agree = 0;
    for (Eigen::Index r = 0; r < x.rows(); ++r) {
      Eigen::Index af = 0, aq = 0;
      yf.row(r).maxCoeff(&af);
      yq.row(r).maxCoeff(&aq);
      agree += af == aq ? 1 : 0;
    }
    EXPECT_GE(agree, 1960) << "of 2000";
    EXPECT_LT((yq - yf).cwiseAbs().maxCoeff(), 0.05F * yf.cwiseAbs().maxCoeff());
  }
  {
    const nn::Mlp<float> net({119, 128, 64, 1}, 421);
    EXPECT_GE(candidate_argmax_agreement(net).agree, 190) << "of " << kAgreementStates;
  }
}

// Quantization-aware training keeps the float network on the int8 grid: its QuantizedMlp
// then computes the same function (up to float rounding), so argmaxes agree even on the
// uniform random inputs where post-training quantization flips close calls above.
TEST(NnQuantized, WeightsProjectedOntoTheGridQuantizeLosslessly) {
  nn::Mlp<float> net({119, 128, 64, 1}, 431);
  const std::vector<float> latent(net.parameters().begin(), net.parameters().end());
  nn::project_weights_onto_int8_grid(latent, net);
  // Biases untouched; weights moved by at most half a grid step; projecting again is a no-op.
  EXPECT_EQ(net.bias(0)(0), latent[static_cast<std::size_t>(net.bias(0).data() - net.parameters().data())]);
  const auto w0 = net.weight(0);
  const float step = w0.row(0).cwiseAbs().maxCoeff() / 127.0F;
  const float* latent_w0 = latent.data() + (w0.data() - net.parameters().data());
  for (Eigen::Index k = 0; k < w0.cols(); ++k) EXPECT_LE(std::abs(w0(0, k) - latent_w0[k]), 0.5F * step * 1.0001F);
  const std::vector<float> once(net.parameters().begin(), net.parameters().end());
  nn::project_weights_onto_int8_grid(once, net);
  EXPECT_EQ(std::vector<float>(net.parameters().begin(), net.parameters().end()), once);
  EXPECT_THROW(nn::project_weights_onto_int8_grid(std::span<const float>(once.data(), 3), net), std::invalid_argument);

  const auto result = candidate_argmax_agreement(net);
  EXPECT_LT(result.max_error, 1e-4F * (1.0F + result.max_score));
  EXPECT_GE(result.agree, 199) << "of " << kAgreementStates;
}

TEST(NnQuantized, BatchOneAgreesWithBatched) {
  // Up to kDirectMaxBatch rows run the fused int8 GEMV, more rows dequantize + GEMM: the same
  // numbers up to float rounding. 150 outputs exercise the GEMV's 64-, 16- and 1-wide blocks.
  nn::Mlp<float> net({37, 150, 9}, 431);
  const nn::QuantizedMlp q(net);
  const auto x = random_matrix<float>(nn::QuantizedMlp::kDirectMaxBatch + 5, 37, 432);
  nn::Workspace<float> ws;
  nn::Matrix<float> big, small;
  q.predict(x, big, ws);
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    q.predict(x.row(r), small, ws);
    ASSERT_EQ(small.rows(), 1);
    EXPECT_LT((small.row(0) - big.row(r)).cwiseAbs().maxCoeff(), 1e-5F) << "row " << r;
  }
}

// ------------------------------------------------------------------------------------------------
// Errors

namespace {

template <class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "<no std::invalid_argument>";
}

}  // namespace

TEST(NnErrors, ShapeMismatchesNameBothShapes) {
  nn::Mlp<float> net({4, 8, 2}, 1);
  const nn::Matrix<float> wrong(3, 5);
  EXPECT_NE(message_of([&] { net.forward(wrong); }).find("[3 x 5]"), std::string::npos);
  EXPECT_NE(message_of([&] { net.forward(wrong); }).find("[B x 4]"), std::string::npos);
  EXPECT_THROW(net.forward(nn::Matrix<float>(0, 4)), std::invalid_argument);
  EXPECT_THROW(net.backward(nn::Matrix<float>(3, 2)), std::logic_error);  // before any forward
  net.forward(nn::Matrix<float>::Zero(3, 4));
  const std::string bad_grad = message_of([&] { net.backward(nn::Matrix<float>(3, 3)); });
  EXPECT_NE(bad_grad.find("[3 x 3]"), std::string::npos) << bad_grad;
  EXPECT_NE(bad_grad.find("[3 x 2]"), std::string::npos) << bad_grad;
  nn::Workspace<float> ws;
  nn::Matrix<float> y;
  EXPECT_THROW(net.predict(wrong, y, ws), std::invalid_argument);
  const nn::QuantizedMlp q(net);
  EXPECT_THROW(q.predict(wrong, y, ws), std::invalid_argument);
  const std::string loss = message_of([&] { nn::huber_loss<float>(nn::Matrix<float>(3, 1), nn::Matrix<float>(2, 1), 1.0F, nullptr); });
  EXPECT_NE(loss.find("[3 x 1]"), std::string::npos) << loss;
  EXPECT_NE(loss.find("[2 x 1]"), std::string::npos) << loss;
  EXPECT_THROW(nn::mse_loss<float>(nn::Matrix<float>(3, 1), nn::Matrix<float>(3, 2), nullptr), std::invalid_argument);
  EXPECT_THROW(nn::huber_loss<float>(nn::Matrix<float>::Zero(3, 1), nn::Matrix<float>::Zero(3, 1), 0.0F, nullptr),
               std::invalid_argument);
}

TEST(NnErrors, BadLayerSizesAndLayerIndices) {
  EXPECT_NE(message_of([] { nn::Mlp<float>({4}, 1); }).find("at least 2"), std::string::npos);
  EXPECT_NE(message_of([] { nn::Mlp<float>({4, 0, 2}, 1); }).find("layer_sizes[1]: 0"), std::string::npos);
  nn::Mlp<float> net({4, 8, 2}, 1);
  EXPECT_THROW(net.weight(2), std::out_of_range);
  EXPECT_THROW(net.bias(-1), std::out_of_range);
  EXPECT_EQ(net.num_parameters(), static_cast<std::size_t>(4 * 8 + 8 + 8 * 2 + 2));
  EXPECT_EQ(net.weight(1).rows(), 2);
  EXPECT_EQ(net.weight(1).cols(), 8);
  // Views alias the flat buffer: W0 (32), b0 (8), then W1.
  net.weight(1)(0, 0) = 42.0F;
  EXPECT_EQ(net.parameters()[40], 42.0F);
}
