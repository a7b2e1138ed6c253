// The CPU GEMM's bf16-weight and multi-threaded paths, and the kernels' thread pool,
// against naive references on fresh random inputs.
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "cleave/kernels/cpu.h"
#include "gtest/gtest.h"
#include "kernels/cpu/parallel.h"

namespace cleave::kernels {
namespace {

// ctest runs tests with OPENBLAS_NUM_THREADS=1, which would size the kernels' pool to
// one thread; these tests are about the multi-threaded paths, so ask for three (the
// pool is created on first use, after static initialisation).
const bool kThreadsSet = setenv("CLEAVE_CPU_THREADS", "3", 1) == 0;

uint16_t TruncateToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return static_cast<uint16_t>(bits >> 16);
}

float Bf16Value(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

struct Problem {
  int m, n, k, lda, ldb, ldc;
  float alpha, beta;
};

class CpuGemmTest : public ::testing::TestWithParam<Problem> {
 protected:
  std::vector<float> Random(size_t n) {
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng_);
    return v;
  }
  std::mt19937 rng_{std::random_device{}()};
};

// c = alpha * a b^T + beta * c in double, b given as the fp32 values it stands for.
std::vector<float> Naive(const Problem& p, const std::vector<float>& a, const std::vector<float>& b,
                         std::vector<float> c) {
  for (int i = 0; i < p.m; ++i) {
    for (int j = 0; j < p.n; ++j) {
      double acc = 0;
      for (int q = 0; q < p.k; ++q) acc += double(a[i * p.lda + q]) * b[j * p.ldb + q];
      c[i * p.ldc + j] = float(p.alpha * acc + p.beta * double(c[i * p.ldc + j]));
    }
  }
  return c;
}

void ExpectClose(const std::vector<float>& got, const std::vector<float>& want, int k) {
  ASSERT_EQ(got.size(), want.size());
  // fp32 accumulation over k terms of unit-variance products.
  const float tol = 2e-6f * std::sqrt(float(k)) * 8;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], tol * (1.0f + std::fabs(want[i]))) << "at " << i;
  }
}

TEST_P(CpuGemmTest, Fp32WeightsMatchNaive) {
  const Problem p = GetParam();
  auto a = Random(size_t(p.m) * p.lda), b = Random(size_t(p.n) * p.ldb);
  auto c = Random(size_t(p.m) * p.ldc);
  const auto want = Naive(p, a, b, c);
  cpu::Gemm({.m = p.m,
             .n = p.n,
             .k = p.k,
             .a = a.data(),
             .lda = p.lda,
             .b = b.data(),
             .ldb = p.ldb,
             .c = c.data(),
             .ldc = p.ldc,
             .alpha = p.alpha,
             .beta = p.beta});
  ExpectClose(c, want, p.k);
}

TEST_P(CpuGemmTest, Bf16WeightsMatchNaiveOnTheirFp32Values) {
  const Problem p = GetParam();
  auto a = Random(size_t(p.m) * p.lda), b = Random(size_t(p.n) * p.ldb);
  auto c = Random(size_t(p.m) * p.ldc);
  std::vector<uint16_t> b16(b.size());
  for (size_t i = 0; i < b.size(); ++i) {
    b16[i] = TruncateToBf16(b[i]);
    b[i] = Bf16Value(b16[i]);
  }
  const auto want = Naive(p, a, b, c);
  // Poison `b`: the bf16 array alone must be read.
  std::vector<float> nan(b.size(), std::nanf(""));
  cpu::Gemm({.m = p.m,
             .n = p.n,
             .k = p.k,
             .a = a.data(),
             .lda = p.lda,
             .b = nan.data(),
             .ldb = p.ldb,
             .c = c.data(),
             .ldc = p.ldc,
             .alpha = p.alpha,
             .beta = p.beta,
             .b_bf16 = b16.data()});
  ExpectClose(c, want, p.k);
}

// A row's result must not depend on the other rows in the product (batch invariance):
// the same row alone and inside a larger m agree to fp32 rounding.
TEST_P(CpuGemmTest, RowResultDoesNotDependOnM) {
  const Problem p = GetParam();
  if (p.m < 2) GTEST_SKIP();
  auto a = Random(size_t(p.m) * p.lda), b = Random(size_t(p.n) * p.ldb);
  std::vector<uint16_t> b16(b.size());
  for (size_t i = 0; i < b.size(); ++i) b16[i] = TruncateToBf16(b[i]);
  std::vector<float> all(size_t(p.m) * p.ldc), one(p.ldc);
  cpu::Gemm({.m = p.m,
             .n = p.n,
             .k = p.k,
             .a = a.data(),
             .lda = p.lda,
             .ldb = p.ldb,
             .c = all.data(),
             .ldc = p.ldc,
             .b_bf16 = b16.data()});
  const int row = p.m - 1;
  cpu::Gemm({.m = 1,
             .n = p.n,
             .k = p.k,
             .a = a.data() + size_t(row) * p.lda,
             .lda = p.lda,
             .ldb = p.ldb,
             .c = one.data(),
             .ldc = p.ldc,
             .b_bf16 = b16.data()});
  for (int j = 0; j < p.n; ++j) {
    const float want = all[size_t(row) * p.ldc + j];
    ASSERT_NEAR(one[j], want, 1e-5f * (1.0f + std::fabs(want))) << "column " << j;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CpuGemmTest,
    ::testing::Values(
        // Tiny: one thread, one slab; odd sizes and strides.
        Problem{7, 13, 29, 31, 30, 17, 0.5f, 2.0f},
        // Decode-like: few rows, many columns: split over threads, several slabs per part.
        Problem{2, 2048, 512, 512, 512, 2048, 1.0f, 0.0f},
        Problem{1, 1000, 96, 100, 97, 1003, 1.0f, 1.0f},
        // Prefill-like: more rows than a slab's minimum, n not a multiple of 16.
        Problem{70, 333, 256, 256, 260, 340, 1.0f, 0.0f},
        // Small k: slabs of many rows, a ragged last slab.
        Problem{3, 3001, 24, 24, 24, 3001, -1.0f, 0.5f}));

TEST(CpuParallelTest, EveryIndexRunsOnce) {
  ASSERT_TRUE(kThreadsSet);
  EXPECT_EQ(cpu::NumThreads(), 3);
  for (int n : {0, 1, 2, 3, 17, 1000}) {
    std::vector<std::atomic<int>> hits(n);
    cpu::ParallelFor(n, [&](int i) { hits[i].fetch_add(1); });
    for (int i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
  }
}

TEST(CpuParallelTest, NestedAndConcurrentCallsRunEverything) {
  EXPECT_GE(cpu::NumThreads(), 1);
  constexpr int kOuter = 8, kInner = 50;
  std::vector<std::atomic<int>> hits(kOuter * kInner);
  // Nested: the inner calls find the pool busy and run inline.
  cpu::ParallelFor(kOuter, [&](int i) {
    cpu::ParallelFor(kInner, [&](int j) { hits[i * kInner + j].fetch_add(1); });
  });
  // Concurrent callers (two engines in one process): each still runs all of its work.
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&, t] {
      for (int rep = 0; rep < 200; ++rep) {
        cpu::ParallelFor(kOuter * kInner / 4, [&](int i) {
          if (rep == 0) hits[t * (kOuter * kInner / 4) + i].fetch_add(1);
        });
      }
    });
  }
  for (auto& c : callers) c.join();
  for (int i = 0; i < kOuter * kInner; ++i) ASSERT_EQ(hits[i].load(), 2) << i;
}

}  // namespace
}  // namespace cleave::kernels
