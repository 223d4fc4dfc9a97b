#include "forkcast/agent/nn.hpp"

namespace forkcast::agent::nn {

template <class T>
void dense_layer(int n, int in, int out, const T* x, int ldx, const T* w, int ldw, const T* bias, bool relu, T* y,
                 int ldy, GemmScratch<T>& scratch) {
  gemm<T>(false, true, n, out, in, x, ldx, w, ldw, T(0), y, ldy, scratch);
  if (bias == nullptr && !relu) return;
  for (int i = 0; i < n; ++i) {
    T* row = y + static_cast<std::ptrdiff_t>(i) * ldy;
    for (int j = 0; j < out; ++j) {
      T v = row[j] + (bias != nullptr ? bias[j] : T(0));
      row[j] = relu && v < T(0) ? T(0) : v;
    }
  }
}

template void dense_layer<float>(int, int, int, const float*, int, const float*, int, const float*, bool, float*, int,
                                 GemmScratch<float>&);
template void dense_layer<double>(int, int, int, const double*, int, const double*, int, const double*, bool, double*,
                                  int, GemmScratch<double>&);

}  // namespace forkcast::agent::nn
