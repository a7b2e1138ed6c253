// CPU implementations of the op API (kernels/cpu). Matrix products go to OpenBLAS;
// everything accumulates in fp32.
#ifndef CLEAVE_KERNELS_CPU_H_
#define CLEAVE_KERNELS_CPU_H_

#include "cleave/kernels/ops.h"

namespace cleave::kernels::cpu {

// Picks OpenBLAS's kernels for this CPU and moves threading from OpenBLAS (set to one
// thread, process-wide) to the kernels' own pool. Idempotent; Gemm calls it.
void Init();
// Threads the kernels split work over, the caller included.
int NumThreads();

void Gemm(const GemmParams& p);
void RmsNorm(const RmsNormParams& p);
void Rope(const RopeParams& p);
void StoreKv(const StoreKvParams& p);
void PagedAttention(const PagedAttentionParams& p);
void SiluMul(const SiluMulParams& p);
void RouterTopK(const RouterTopKParams& p);
void Embedding(const EmbeddingParams& p);
void GatherRows(const GatherRowsParams& p);
void ScatterAddRows(const ScatterAddRowsParams& p);
void Add(const AddParams& p);

}  // namespace cleave::kernels::cpu

#endif  // CLEAVE_KERNELS_CPU_H_
