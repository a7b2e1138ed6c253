// Row movement and elementwise ops: embedding lookup, gather/scatter of expert
// batches, KV stores, SwiGLU, residual add.
#include <cuda_runtime.h>

#include "cleave/kernels/cuda.h"

namespace cleave::kernels::cuda {
namespace {

__global__ void CopyRowsKernel(int n, int dim, const int32_t* rows, const float* src, float* out) {
  const int i = blockIdx.x;
  if (i >= n) return;
  const float* s = src + static_cast<long long>(rows[i]) * dim;
  float* o = out + static_cast<long long>(i) * dim;
  for (int j = threadIdx.x; j < dim; j += blockDim.x) o[j] = s[j];
}

// Sequential over i within a column so duplicate rows accumulate in order, matching the CPU.
__global__ void ScatterAddKernel(ScatterAddRowsParams p) {
  for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < p.dim; j += gridDim.x * blockDim.x) {
    for (int i = 0; i < p.n; ++i) {
      const float s = p.scale ? p.scale[i] : 1.f;
      p.dst[static_cast<long long>(p.rows[i]) * p.dim + j] += s * p.src[static_cast<long long>(i) * p.dim + j];
    }
  }
}

__global__ void StoreKvKernel(StoreKvParams p) {
  const int t = blockIdx.x;
  const int row = p.num_kv_heads * p.head_dim;
  const long long slot = p.slots[t];
  for (int j = threadIdx.x; j < row; j += blockDim.x) {
    p.k_cache[slot * row + j] = p.k[static_cast<long long>(t) * row + j];
    p.v_cache[slot * row + j] = p.v[static_cast<long long>(t) * row + j];
  }
}

__global__ void SiluMulKernel(SiluMulParams p) {
  const long long total = static_cast<long long>(p.rows) * p.dim;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long r = idx / p.dim, i = idx % p.dim;
    const float g = p.gate_up[r * 2 * p.dim + i], u = p.gate_up[r * 2 * p.dim + p.dim + i];
    p.out[idx] = g / (1.f + expf(-g)) * u;
  }
}

__global__ void AddKernel(AddParams p) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < p.n;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    p.y[i] += p.x[i];
  }
}

int GridFor(long long n, int threads) {
  const long long blocks = (n + threads - 1) / threads;
  return static_cast<int>(blocks < 65535 ? (blocks > 0 ? blocks : 1) : 65535);
}

}  // namespace

int Embedding(const EmbeddingParams& p, Stream stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  CopyRowsKernel<<<p.num_tokens, 256, 0, static_cast<cudaStream_t>(stream)>>>(p.num_tokens, p.dim,
                                                                            p.ids, p.table, p.out);
  return cudaGetLastError();
}

int GatherRows(const GatherRowsParams& p, Stream stream) {
  if (p.n == 0) return cudaSuccess;
  CopyRowsKernel<<<p.n, 256, 0, static_cast<cudaStream_t>(stream)>>>(p.n, p.dim, p.rows, p.src,
                                                                   p.out);
  return cudaGetLastError();
}

int ScatterAddRows(const ScatterAddRowsParams& p, Stream stream) {
  if (p.n == 0) return cudaSuccess;
  ScatterAddKernel<<<GridFor(p.dim, 256), 256, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return cudaGetLastError();
}

int StoreKv(const StoreKvParams& p, Stream stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  StoreKvKernel<<<p.num_tokens, 256, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return cudaGetLastError();
}

int SiluMul(const SiluMulParams& p, Stream stream) {
  const long long n = static_cast<long long>(p.rows) * p.dim;
  if (n == 0) return cudaSuccess;
  SiluMulKernel<<<GridFor(n, 256), 256, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return cudaGetLastError();
}

int Add(const AddParams& p, Stream stream) {
  if (p.n == 0) return cudaSuccess;
  AddKernel<<<GridFor(p.n, 256), 256, 0, static_cast<cudaStream_t>(stream)>>>(p);
  return cudaGetLastError();
}

}  // namespace cleave::kernels::cuda
