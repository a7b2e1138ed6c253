// Every CPU kernel against a naive reference written here, on fresh random inputs.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "cleave/kernels/cpu.h"
#include "gtest/gtest.h"

namespace cleave::kernels {
namespace {

class CpuKernelsTest : public ::testing::Test {
 protected:
  std::vector<float> Random(size_t n, float scale = 1.0f) {
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng_);
    return v;
  }
  std::mt19937 rng_{std::random_device{}()};
};

void ExpectNear(const std::vector<float>& got, const std::vector<float>& want, float tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], tol * (1.0f + std::fabs(want[i]))) << "at " << i;
  }
}

TEST_F(CpuKernelsTest, GemmMatchesNaiveProductWithStridesAndBeta) {
  const int m = 7, n = 13, k = 29, lda = 31, ldb = 30, ldc = 17;
  auto a = Random(m * lda), b = Random(n * ldb), c = Random(m * ldc);
  std::vector<float> want = c;
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double acc = 0;
      for (int p = 0; p < k; ++p) acc += double(a[i * lda + p]) * b[j * ldb + p];
      want[i * ldc + j] = float(0.5 * acc + 2.0 * c[i * ldc + j]);
    }
  cpu::Gemm({.m = m, .n = n, .k = k, .a = a.data(), .lda = lda, .b = b.data(), .ldb = ldb,
             .c = c.data(), .ldc = ldc, .alpha = 0.5f, .beta = 2.0f});
  ExpectNear(c, want, 1e-5f);
}

TEST_F(CpuKernelsTest, RmsNormMatchesDefinition) {
  const int rows = 5, dim = 96;
  auto x = Random(rows * dim, 3.0f), w = Random(dim);
  std::vector<float> out(rows * dim), want(rows * dim);
  for (int r = 0; r < rows; ++r) {
    double ss = 0;
    for (int i = 0; i < dim; ++i) ss += double(x[r * dim + i]) * x[r * dim + i];
    const double inv = 1.0 / std::sqrt(ss / dim + 1e-6);
    for (int i = 0; i < dim; ++i) want[r * dim + i] = float(w[i] * x[r * dim + i] * inv);
  }
  cpu::RmsNorm({.rows = rows, .dim = dim, .x = x.data(), .weight = w.data(), .out = out.data(),
                .eps = 1e-6f});
  ExpectNear(out, want, 1e-5f);
}

TEST_F(CpuKernelsTest, RopeRotatesHalvesByPositionAngle) {
  const int T = 4, nh = 3, nkv = 1, hd = 8;
  const float theta = 10000.0f;
  auto q = Random(T * nh * hd), k = Random(T * nkv * hd);
  std::vector<int32_t> pos = {0, 5, 17, 1000};
  auto rotate = [&](std::vector<float> v, int heads) {
    std::vector<float> out = v;
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < heads; ++h)
        for (int i = 0; i < hd / 2; ++i) {
          const double freq = std::pow(double(theta), -2.0 * i / hd);
          const double ang = pos[t] * freq;
          const int base = (t * heads + h) * hd;
          const double a = v[base + i], b = v[base + i + hd / 2];
          out[base + i] = float(a * std::cos(ang) - b * std::sin(ang));
          out[base + i + hd / 2] = float(b * std::cos(ang) + a * std::sin(ang));
        }
    return out;
  };
  auto want_q = rotate(q, nh), want_k = rotate(k, nkv);
  cpu::Rope({.num_tokens = T, .num_heads = nh, .num_kv_heads = nkv, .head_dim = hd,
             .positions = pos.data(), .q = q.data(), .k = k.data(), .theta = theta});
  ExpectNear(q, want_q, 2e-4f);  // fp32 angles at position 1000
  ExpectNear(k, want_k, 2e-4f);
}

// Attention over a paged cache whose blocks are scattered, against attention over
// the same K/V laid out contiguously.
TEST_F(CpuKernelsTest, PagedAttentionMatchesContiguousCausalAttention) {
  const int nh = 4, nkv = 2, hd = 16, bs = 4, num_blocks = 16;
  const std::vector<int> q_lens = {5, 1, 3};
  const std::vector<int> ctx_lens = {5, 9, 11};  // prefill, decode, chunked prefill
  const int row = nkv * hd;
  std::vector<float> k_cache(num_blocks * bs * row, 0.f), v_cache(k_cache.size(), 0.f);
  // Each sequence gets blocks from a shuffled pool.
  std::vector<int> pool(num_blocks);
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng_);
  const int max_blocks = 3;
  std::vector<int32_t> tables(3 * max_blocks, 0), qstart = {0}, ctx(ctx_lens.begin(), ctx_lens.end());
  std::vector<std::vector<float>> ks, vs;
  int next = 0;
  for (int s = 0; s < 3; ++s) {
    const int nb = (ctx_lens[s] + bs - 1) / bs;
    for (int b = 0; b < nb; ++b) tables[s * max_blocks + b] = pool[next++];
    ks.push_back(Random(ctx_lens[s] * row));
    vs.push_back(Random(ctx_lens[s] * row));
    for (int j = 0; j < ctx_lens[s]; ++j) {
      const int slot = tables[s * max_blocks + j / bs] * bs + j % bs;
      std::copy_n(&ks[s][j * row], row, &k_cache[slot * row]);
      std::copy_n(&vs[s][j * row], row, &v_cache[slot * row]);
    }
    qstart.push_back(qstart.back() + q_lens[s]);
  }
  const int T = qstart.back();
  auto q = Random(T * nh * hd);
  std::vector<float> out(T * nh * hd), want(T * nh * hd);
  const float scale = 1.0f / std::sqrt(float(hd));
  for (int s = 0; s < 3; ++s)
    for (int i = 0; i < q_lens[s]; ++i)
      for (int h = 0; h < nh; ++h) {
        const int kvh = h / (nh / nkv), pos = ctx_lens[s] - q_lens[s] + i;
        const float* qv = &q[((qstart[s] + i) * nh + h) * hd];
        std::vector<double> sc(pos + 1);
        double mx = -1e30, sum = 0;
        for (int j = 0; j <= pos; ++j) {
          double d = 0;
          for (int x = 0; x < hd; ++x) d += double(qv[x]) * ks[s][j * row + kvh * hd + x];
          sc[j] = d * scale;
          mx = std::max(mx, sc[j]);
        }
        for (double& v : sc) sum += (v = std::exp(v - mx));
        for (int x = 0; x < hd; ++x) {
          double acc = 0;
          for (int j = 0; j <= pos; ++j) acc += sc[j] / sum * vs[s][j * row + kvh * hd + x];
          want[((qstart[s] + i) * nh + h) * hd + x] = float(acc);
        }
      }
  cpu::PagedAttention({.num_seqs = 3, .num_heads = nh, .num_kv_heads = nkv, .head_dim = hd,
                       .block_size = bs, .q = q.data(), .k_cache = k_cache.data(),
                       .v_cache = v_cache.data(), .query_start = qstart.data(),
                       .context_len = ctx.data(), .block_tables = tables.data(),
                       .max_blocks_per_seq = max_blocks, .scale = scale, .out = out.data()});
  ExpectNear(out, want, 1e-5f);
}

TEST_F(CpuKernelsTest, StoreKvWritesRowsToTheirSlots) {
  const int T = 5, nkv = 2, hd = 4, row = nkv * hd;
  auto k = Random(T * row), v = Random(T * row);
  std::vector<int32_t> slots = {9, 2, 30, 0, 17};
  std::vector<float> kc(32 * row, 0.f), vc(32 * row, 0.f);
  cpu::StoreKv({.num_tokens = T, .num_kv_heads = nkv, .head_dim = hd, .k = k.data(),
                .v = v.data(), .slots = slots.data(), .k_cache = kc.data(), .v_cache = vc.data()});
  for (int t = 0; t < T; ++t)
    for (int x = 0; x < row; ++x) {
      EXPECT_EQ(kc[slots[t] * row + x], k[t * row + x]);
      EXPECT_EQ(vc[slots[t] * row + x], v[t * row + x]);
    }
  EXPECT_EQ(kc[1 * row], 0.f);  // untouched slot stays untouched
}

TEST_F(CpuKernelsTest, SiluMulIsSwiGlu) {
  const int rows = 3, dim = 10;
  auto gu = Random(rows * 2 * dim, 2.0f);
  std::vector<float> out(rows * dim), want(rows * dim);
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < dim; ++i) {
      const double g = gu[r * 2 * dim + i], u = gu[r * 2 * dim + dim + i];
      want[r * dim + i] = float(g / (1 + std::exp(-g)) * u);
    }
  cpu::SiluMul({.rows = rows, .dim = dim, .gate_up = gu.data(), .out = out.data()});
  ExpectNear(out, want, 1e-6f);
}

TEST_F(CpuKernelsTest, RouterTopKPicksLargestAndRenormalises) {
  const int T = 6, E = 8, K = 2;
  auto logits = Random(T * E, 2.0f);
  std::vector<int32_t> ids(T * K);
  std::vector<float> w(T * K);
  cpu::RouterTopK({.num_tokens = T, .num_experts = E, .top_k = K, .logits = logits.data(),
                   .expert_ids = ids.data(), .weights = w.data()});
  for (int t = 0; t < T; ++t) {
    std::vector<int> order(E);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(),
              [&](int a, int b) { return logits[t * E + a] > logits[t * E + b]; });
    // Softmax then renormalise over the top-k equals softmax over the top-k logits.
    const double a = logits[t * E + order[0]], b = logits[t * E + order[1]];
    const double wa = 1.0 / (1.0 + std::exp(b - a));
    EXPECT_EQ(ids[t * K], order[0]);
    EXPECT_EQ(ids[t * K + 1], order[1]);
    EXPECT_NEAR(w[t * K], wa, 1e-6);
    EXPECT_NEAR(w[t * K + 1], 1.0 - wa, 1e-6);
  }
}

TEST_F(CpuKernelsTest, EmbeddingGatherAndScatterAdd) {
  const int V = 11, D = 6, T = 4;
  auto table = Random(V * D);
  std::vector<int32_t> ids = {3, 0, 10, 3};
  std::vector<float> out(T * D);
  cpu::Embedding({.num_tokens = T, .dim = D, .ids = ids.data(), .table = table.data(),
                  .out = out.data()});
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < D; ++i) EXPECT_EQ(out[t * D + i], table[ids[t] * D + i]);

  std::vector<float> gathered(T * D);
  cpu::GatherRows({.n = T, .dim = D, .rows = ids.data(), .src = table.data(), .out = gathered.data()});
  EXPECT_EQ(gathered, out);

  std::vector<float> dst = Random(V * D), want = dst;
  std::vector<float> scale = {0.5f, -1.f, 2.f, 0.25f};
  auto src = Random(T * D);
  for (int i = 0; i < T; ++i)
    for (int j = 0; j < D; ++j) want[ids[i] * D + j] += scale[i] * src[i * D + j];
  cpu::ScatterAddRows({.n = T, .dim = D, .rows = ids.data(), .scale = scale.data(),
                       .src = src.data(), .dst = dst.data()});
  ExpectNear(dst, want, 1e-6f);

  auto y = Random(20), x = Random(20), sum = y;
  for (int i = 0; i < 20; ++i) sum[i] += x[i];
  cpu::Add({.n = 20, .x = x.data(), .y = y.data()});
  EXPECT_EQ(y, sum);
}

}  // namespace
}  // namespace cleave::kernels
