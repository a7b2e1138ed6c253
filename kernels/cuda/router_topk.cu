#include <cuda_runtime.h>

#include "cleave/kernels/cuda.h"

namespace cleave::kernels::cuda {
namespace {

// One thread per token: expert counts are small (8-256), so a serial softmax and
// selection per token is simpler than a cooperative one and not the bottleneck.
__global__ void RouterTopKKernel(RouterTopKParams p) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= p.num_tokens) return;
  const float* logits = p.logits + static_cast<long long>(t) * p.num_experts;
  float max = logits[0];
  for (int e = 1; e < p.num_experts; ++e) max = fmaxf(max, logits[e]);
  float sum = 0.f;
  for (int e = 0; e < p.num_experts; ++e) sum += expf(logits[e] - max);
  float picked_sum = 0.f;
  int last = -1;
  float last_prob = 2.f;
  for (int k = 0; k < p.top_k; ++k) {
    // Next largest strictly after (last_prob, last) in (prob desc, index asc) order.
    int best = -1;
    float best_prob = -1.f;
    for (int e = 0; e < p.num_experts; ++e) {
      const float prob = expf(logits[e] - max) / sum;
      const bool after_last = prob < last_prob || (prob == last_prob && e > last);
      if (after_last && prob > best_prob) {
        best = e;
        best_prob = prob;
      }
    }
    p.expert_ids[t * p.top_k + k] = best;
    p.weights[t * p.top_k + k] = best_prob;
    picked_sum += best_prob;
    last = best;
    last_prob = best_prob;
  }
  for (int k = 0; k < p.top_k; ++k) p.weights[t * p.top_k + k] /= picked_sum;
}

}  // namespace

int RouterTopK(const RouterTopKParams& p, Stream stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  RouterTopKKernel<<<(p.num_tokens + 127) / 128, 128, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return cudaGetLastError();
}

}  // namespace cleave::kernels::cuda
