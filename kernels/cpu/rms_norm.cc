#include <cmath>

#include "cleave/kernels/cpu.h"

namespace cleave::kernels::cpu {

void RmsNorm(const RmsNormParams& p) {
  for (int r = 0; r < p.rows; ++r) {
    const float* x = p.x + static_cast<int64_t>(r) * p.dim;
    float* out = p.out + static_cast<int64_t>(r) * p.dim;
    double sum_sq = 0.0;  // double: the mean of squares over thousands of values
    for (int i = 0; i < p.dim; ++i) sum_sq += static_cast<double>(x[i]) * x[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(sum_sq / p.dim + p.eps));
    for (int i = 0; i < p.dim; ++i) out[i] = p.weight[i] * (x[i] * inv);
  }
}

}  // namespace cleave::kernels::cpu
