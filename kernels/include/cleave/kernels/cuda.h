// CUDA implementations of the op API (kernels/cuda), enqueued on `stream`.
// Kernels return cudaError_t as a plain int so this header needs no CUDA include;
// the CUDA backend wraps them once.
#ifndef CLEAVE_KERNELS_CUDA_H_
#define CLEAVE_KERNELS_CUDA_H_

#include "cleave/kernels/ops.h"

namespace cleave::kernels::cuda {

using Stream = void*;  // cudaStream_t

int RmsNorm(const RmsNormParams& p, Stream stream);
int Rope(const RopeParams& p, Stream stream);
int StoreKv(const StoreKvParams& p, Stream stream);
int SiluMul(const SiluMulParams& p, Stream stream);
int RouterTopK(const RouterTopKParams& p, Stream stream);
int Embedding(const EmbeddingParams& p, Stream stream);
int GatherRows(const GatherRowsParams& p, Stream stream);
int ScatterAddRows(const ScatterAddRowsParams& p, Stream stream);
int Add(const AddParams& p, Stream stream);
// c = a · b^T through cuBLAS; `handle` is a cublasHandle_t already bound to the stream.
int Gemm(const GemmParams& p, void* cublas_handle);

}  // namespace cleave::kernels::cuda

#endif  // CLEAVE_KERNELS_CUDA_H_
