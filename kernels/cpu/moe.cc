// The pieces of a Mixtral MoE layer that are not matrix products: routing, the
// SwiGLU activation, and moving token rows to and from an expert's batch.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cleave/kernels/cpu.h"

namespace cleave::kernels::cpu {

void RouterTopK(const RouterTopKParams& p) {
  std::vector<float> probs(p.num_experts);
  std::vector<int> order(p.num_experts);
  for (int t = 0; t < p.num_tokens; ++t) {
    const float* logits = p.logits + static_cast<int64_t>(t) * p.num_experts;
    const float max = *std::max_element(logits, logits + p.num_experts);
    double sum = 0.0;
    for (int e = 0; e < p.num_experts; ++e) {
      probs[e] = std::exp(logits[e] - max);
      sum += probs[e];
    }
    for (int e = 0; e < p.num_experts; ++e) probs[e] = static_cast<float>(probs[e] / sum);
    for (int e = 0; e < p.num_experts; ++e) order[e] = e;
    std::partial_sort(order.begin(), order.begin() + p.top_k, order.end(), [&](int a, int b) {
      return probs[a] > probs[b] || (probs[a] == probs[b] && a < b);
    });
    double top_sum = 0.0;
    for (int i = 0; i < p.top_k; ++i) top_sum += probs[order[i]];
    for (int i = 0; i < p.top_k; ++i) {
      p.expert_ids[t * p.top_k + i] = order[i];
      p.weights[t * p.top_k + i] = static_cast<float>(probs[order[i]] / top_sum);
    }
  }
}

void SiluMul(const SiluMulParams& p) {
  for (int r = 0; r < p.rows; ++r) {
    const float* gate = p.gate_up + static_cast<int64_t>(r) * 2 * p.dim;
    const float* up = gate + p.dim;
    float* out = p.out + static_cast<int64_t>(r) * p.dim;
    for (int i = 0; i < p.dim; ++i) {
      const float g = gate[i];
      out[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
  }
}

void GatherRows(const GatherRowsParams& p) {
  for (int i = 0; i < p.n; ++i) {
    std::memcpy(p.out + static_cast<int64_t>(i) * p.dim, p.src + static_cast<int64_t>(p.rows[i]) * p.dim,
                p.dim * sizeof(float));
  }
}

void ScatterAddRows(const ScatterAddRowsParams& p) {
  for (int i = 0; i < p.n; ++i) {
    float* dst = p.dst + static_cast<int64_t>(p.rows[i]) * p.dim;
    const float* src = p.src + static_cast<int64_t>(i) * p.dim;
    const float s = p.scale ? p.scale[i] : 1.0f;
    for (int j = 0; j < p.dim; ++j) dst[j] += s * src[j];
  }
}

}  // namespace cleave::kernels::cpu
