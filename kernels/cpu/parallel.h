// The CPU kernels' own worker threads. OpenBLAS is switched to one thread per call
// (see Init in gemm.cc) and the kernels split their work here instead: a decode step
// issues hundreds of small GEMMs, too small for OpenBLAS to thread, and one pool that
// owns the cores avoids two pools spinning against each other.
#ifndef CLEAVE_KERNELS_CPU_PARALLEL_H_
#define CLEAVE_KERNELS_CPU_PARALLEL_H_

#include "absl/functional/function_ref.h"
#include "cleave/kernels/cpu.h"

namespace cleave::kernels::cpu {

// Runs fn(i) for every i in [0, n) across the pool and the calling thread; returns when
// all have finished. Which thread runs an index is unspecified, so fn(i) must write only
// its own outputs. When another thread's ParallelFor is in flight (two engines in one
// process) the call runs inline rather than wait.
void ParallelFor(int n, absl::FunctionRef<void(int)> fn);

}  // namespace cleave::kernels::cpu

#endif  // CLEAVE_KERNELS_CPU_PARALLEL_H_
