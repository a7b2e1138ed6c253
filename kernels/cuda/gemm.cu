// y = x W^T through cuBLAS. Row-major C = A·B^T is column-major C^T = B·A^T,
// so cuBLAS sees (op(B) = T on the n×k weight, A as k×m).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "cleave/kernels/cuda.h"

namespace cleave::kernels::cuda {

int Gemm(const GemmParams& p, void* cublas_handle) {
  if (p.m == 0 || p.n == 0) return cudaSuccess;
  const cublasStatus_t st =
      cublasSgemm(static_cast<cublasHandle_t>(cublas_handle), CUBLAS_OP_T, CUBLAS_OP_N, p.n, p.m,
                  p.k, &p.alpha, p.b, p.ldb, p.a, p.lda, &p.beta, p.c, p.ldc);
  return st == CUBLAS_STATUS_SUCCESS ? cudaSuccess : cudaErrorUnknown;
}

}  // namespace cleave::kernels::cuda
