// Matrix products through OpenBLAS: the one place the CPU path does heavy math.
//
// Two things OpenBLAS does not do for a decode step, done here:
//  * bf16 weights: the product runs on fp32 copies of the weight rows made a slab at a
//    time into a cache-sized scratch, so DRAM traffic is the bf16 bytes (half of fp32)
//    and the result is the one fp32 weights would give (bf16 -> fp32 is exact).
//  * threading: a step's GEMMs are mostly too small for OpenBLAS to split, so each is
//    split into slabs of output columns over the kernels' pool (parallel.h), each one
//    single-threaded sgemm. A column's value never depends on the split.
#include <cblas.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string_view>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "cleave/kernels/cpu.h"
#include "parallel.h"

// Exported by DYNAMIC_ARCH builds of OpenBLAS (Debian's among them); weak so that a
// build for one fixed core still links.
extern "C" {
void gotoblas_dynamic_init(void) __attribute__((weak));
void gotoblas_dynamic_quit(void) __attribute__((weak));
}

namespace cleave::kernels::cpu {
namespace {

// OpenBLAS 0.3.21 does not know CPUs newer than it (e.g. Xeon family 6 model 207) and
// falls back to its Prescott (SSE3) kernels, ~1.5-2x slower here than its AVX-512 ones.
// When it did and the user did not choose with OPENBLAS_CORETYPE, re-run its core
// selection with the newest kernels this CPU can execute.
void SelectBlasKernels() {
#if defined(__x86_64__)
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;
  if (gotoblas_dynamic_init == nullptr || gotoblas_dynamic_quit == nullptr) return;
  const char* core = openblas_get_corename();
  if (core == nullptr || std::string_view(core) != "Prescott") return;
  __builtin_cpu_init();
  const char* want = nullptr;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl")) {
    want = "SkylakeX";
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    want = "Haswell";
  }
  if (want == nullptr) return;
  setenv("OPENBLAS_CORETYPE", want, 0);
  gotoblas_dynamic_quit();
  gotoblas_dynamic_init();
  unsetenv("OPENBLAS_CORETYPE");
#endif
}

// Below this many weight elements (n * k) and multiply-adds a GEMM runs on one thread:
// splitting costs a few microseconds, more than such a product takes.
constexpr int64_t kMinSplitWeights = 1 << 16;
constexpr int64_t kMinSplitMacs = 1 << 20;
// Weight elements per slab (256 KiB of fp32).
constexpr int64_t kSlabFloats = 1 << 16;

int RoundUp(int x, int to) { return (x + to - 1) / to * to; }

// dst[r, :k] = src[r * ld, :k] widened to fp32; bf16 is the top half of an fp32.
void Bf16RowsToF32(const uint16_t* src, int rows, int k, int ld, float* dst) {
  for (int r = 0; r < rows; ++r) {
    const uint16_t* s = src + static_cast<int64_t>(r) * ld;
    float* d = dst + static_cast<int64_t>(r) * k;
    int j = 0;
#if defined(__SSE2__)
    const __m128i zero = _mm_setzero_si128();
    for (; j + 8 <= k; j += 8) {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + j));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d + j), _mm_unpacklo_epi16(zero, h));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d + j + 4), _mm_unpackhi_epi16(zero, h));
    }
#endif
    for (; j < k; ++j) {
      const uint32_t bits = static_cast<uint32_t>(s[j]) << 16;
      std::memcpy(d + j, &bits, sizeof bits);
    }
  }
}

// Output columns per slab: ~256 KiB of fp32 weight rows, well inside a core's L2, and at
// least m, so that repacking `a` for each slab's sgemm never costs more than the slab.
int SlabColumns(const GemmParams& p) {
  const int by_size = RoundUp(static_cast<int>(std::max<int64_t>(kSlabFloats / p.k, 1)), 16);
  return std::max(by_size, RoundUp(p.m, 16));
}

// Output columns [n0, n1) of p, one sgemm (bf16 weights: converted first, at most a
// slab at a time).
void GemmColumns(const GemmParams& p, int n0, int n1) {
  if (p.b_bf16 == nullptr) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p.m, n1 - n0, p.k, p.alpha, p.a, p.lda,
                p.b + static_cast<int64_t>(n0) * p.ldb, p.ldb, p.beta, p.c + n0, p.ldc);
    return;
  }
  const int slab = SlabColumns(p);
  thread_local std::vector<float> scratch;
  scratch.resize(static_cast<size_t>(std::min(slab, n1 - n0)) * p.k);
  for (int j = n0; j < n1; j += slab) {
    const int rows = std::min(slab, n1 - j);
    Bf16RowsToF32(p.b_bf16 + static_cast<int64_t>(j) * p.ldb, rows, p.k, p.ldb, scratch.data());
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p.m, rows, p.k, p.alpha, p.a, p.lda,
                scratch.data(), p.k, p.beta, p.c + j, p.ldc);
  }
}

}  // namespace

void Init() {
  static std::once_flag once;
  std::call_once(once, [] {
    SelectBlasKernels();
    NumThreads();  // sizes the pool from OpenBLAS's thread count before it is lowered
    openblas_set_num_threads(1);
  });
}

void Gemm(const GemmParams& p) {
  if (p.m == 0 || p.n == 0) return;
  Init();
  const int64_t weights = static_cast<int64_t>(p.n) * p.k;
  if (NumThreads() == 1 || (weights < kMinSplitWeights && weights * p.m < kMinSplitMacs)) {
    GemmColumns(p, 0, p.n);
    return;
  }
  // One task per slab, claimed dynamically: a thread the hypervisor or another process
  // holds up delays one slab, not half of the product. Slab bounds depend on n, k and
  // m only, and a column's value on none of them.
  const int slab = SlabColumns(p);
  ParallelFor((p.n + slab - 1) / slab, [&](int i) {
    const int n0 = i * slab;
    GemmColumns(p, n0, std::min(p.n, n0 + slab));
  });
}

}  // namespace cleave::kernels::cpu
