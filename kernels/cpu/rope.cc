#include <cmath>
#include <vector>

#include "cleave/kernels/cpu.h"

namespace cleave::kernels::cpu {
namespace {

// Rotates each head of `x` ([heads, head_dim]) by the angles whose cos/sin are given.
void RotateHeads(float* x, int heads, int head_dim, const float* cos, const float* sin) {
  const int half = head_dim / 2;
  for (int h = 0; h < heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      const float a = v[i], b = v[i + half];
      v[i] = a * cos[i] - b * sin[i];
      v[i + half] = b * cos[i] + a * sin[i];
    }
  }
}

}  // namespace

void Rope(const RopeParams& p) {
  const int half = p.head_dim / 2;
  // inv_freq_i = theta^(-2i/d), rounded to fp32 as the Hugging Face reference does.
  std::vector<float> inv_freq(half), cos(half), sin(half);
  for (int i = 0; i < half; ++i) {
    inv_freq[i] = static_cast<float>(1.0 / std::pow(static_cast<double>(p.theta),
                                                     static_cast<double>(2 * i) / p.head_dim));
  }
  const int64_t q_stride = static_cast<int64_t>(p.num_heads) * p.head_dim;
  const int64_t k_stride = static_cast<int64_t>(p.num_kv_heads) * p.head_dim;
  for (int t = 0; t < p.num_tokens; ++t) {
    const float pos = static_cast<float>(p.positions[t]);
    for (int i = 0; i < half; ++i) {
      const float angle = pos * inv_freq[i];
      cos[i] = std::cos(angle);
      sin[i] = std::sin(angle);
    }
    if (p.q) RotateHeads(p.q + t * q_stride, p.num_heads, p.head_dim, cos.data(), sin.data());
    if (p.k) RotateHeads(p.k + t * k_stride, p.num_kv_heads, p.head_dim, cos.data(), sin.data());
  }
}

}  // namespace cleave::kernels::cpu
