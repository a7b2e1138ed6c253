// Matrix products through OpenBLAS: the one place the CPU path does heavy math.
#include <cblas.h>

#include "cleave/kernels/cpu.h"

namespace cleave::kernels::cpu {

void Gemm(const GemmParams& p) {
  if (p.m == 0 || p.n == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p.m, p.n, p.k, p.alpha, p.a, p.lda, p.b,
              p.ldb, p.beta, p.c, p.ldc);
}

}  // namespace cleave::kernels::cpu
