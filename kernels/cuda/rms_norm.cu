#include <cuda_runtime.h>

#include "cleave/kernels/cuda.h"

namespace cleave::kernels::cuda {
namespace {

// One block per row; a block-wide sum of squares in fp32.
__global__ void RmsNormKernel(RmsNormParams p) {
  const int row = blockIdx.x;
  const float* x = p.x + static_cast<long long>(row) * p.dim;
  float* out = p.out + static_cast<long long>(row) * p.dim;
  float local = 0.f;
  for (int i = threadIdx.x; i < p.dim; i += blockDim.x) local += x[i] * x[i];
  __shared__ float partial[32];
  for (int offset = 16; offset > 0; offset /= 2) local += __shfl_xor_sync(0xffffffff, local, offset);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = local;
  __syncthreads();
  if (threadIdx.x < 32) {
    float v = threadIdx.x < blockDim.x / 32 ? partial[threadIdx.x] : 0.f;
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffff, v, offset);
    if (threadIdx.x == 0) partial[0] = rsqrtf(v / p.dim + p.eps);
  }
  __syncthreads();
  const float inv = partial[0];
  for (int i = threadIdx.x; i < p.dim; i += blockDim.x) out[i] = p.weight[i] * (x[i] * inv);
}

}  // namespace

int RmsNorm(const RmsNormParams& p, Stream stream) {
  if (p.rows == 0) return cudaSuccess;
  RmsNormKernel<<<p.rows, 256, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return cudaGetLastError();
}

}  // namespace cleave::kernels::cuda
