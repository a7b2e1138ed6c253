#include <cuda_runtime.h>

#include "cleave/kernels/cuda.h"

namespace cleave::kernels::cuda {
namespace {

// One block per token; threads walk (head, i) pairs of the first half-dimension.
__global__ void RopeKernel(RopeParams p) {
  const int t = blockIdx.x;
  const int half = p.head_dim / 2;
  const float pos = static_cast<float>(p.positions[t]);
  const int total = (p.num_heads + p.num_kv_heads) * half;
  for (int idx = threadIdx.x; idx < total; idx += blockDim.x) {
    const int head = idx / half, i = idx % half;
    const float inv_freq = powf(p.theta, -2.0f * i / p.head_dim);
    float s, c;
    sincosf(pos * inv_freq, &s, &c);
    float* v = head < p.num_heads
                   ? p.q + (static_cast<long long>(t) * p.num_heads + head) * p.head_dim
                   : p.k + (static_cast<long long>(t) * p.num_kv_heads + head - p.num_heads) *
                               p.head_dim;
    if (head >= p.num_heads && p.k == nullptr) continue;
    if (head < p.num_heads && p.q == nullptr) continue;
    const float a = v[i], b = v[i + half];
    v[i] = a * c - b * s;
    v[i + half] = b * c + a * s;
  }
}

}  // namespace

int Rope(const RopeParams& p, Stream stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  RopeKernel<<<p.num_tokens, 128, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return cudaGetLastError();
}

}  // namespace cleave::kernels::cuda
