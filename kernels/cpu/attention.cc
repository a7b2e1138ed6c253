// Paged causal attention on CPU. Per (sequence, KV head) the context's K and V rows
// are gathered from their blocks into contiguous scratch, then each query head of
// the group does two OpenBLAS products: scores = Q K^T and out = softmax(scores) V.
// Sequences are computed independently, so a sequence's result never depends on
// what else is in the batch.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "cleave/kernels/cpu.h"

namespace cleave::kernels::cpu {

void StoreKv(const StoreKvParams& p) {
  const int64_t row = static_cast<int64_t>(p.num_kv_heads) * p.head_dim;
  for (int t = 0; t < p.num_tokens; ++t) {
    const int64_t slot = p.slots[t];
    std::memcpy(p.k_cache + slot * row, p.k + t * row, row * sizeof(float));
    std::memcpy(p.v_cache + slot * row, p.v + t * row, row * sizeof(float));
  }
}

namespace {

// Copies context rows [0, ctx) of one KV head out of the paged cache.
void GatherHead(const float* cache, const int32_t* block_table, int ctx, int block_size,
                int num_kv_heads, int head_dim, int kv_head, float* out) {
  const int64_t token_stride = static_cast<int64_t>(num_kv_heads) * head_dim;
  for (int j = 0; j < ctx; ++j) {
    const int64_t slot = static_cast<int64_t>(block_table[j / block_size]) * block_size +
                         j % block_size;
    std::memcpy(out + static_cast<int64_t>(j) * head_dim,
                cache + slot * token_stride + static_cast<int64_t>(kv_head) * head_dim,
                head_dim * sizeof(float));
  }
}

// Row-wise causal softmax: row i may see columns [0, first_pos + i].
void CausalSoftmax(float* scores, int q_len, int ctx, int first_pos) {
  for (int i = 0; i < q_len; ++i) {
    float* row = scores + static_cast<int64_t>(i) * ctx;
    const int visible = std::min(ctx, first_pos + i + 1);
    float max = -std::numeric_limits<float>::infinity();
    for (int j = 0; j < visible; ++j) max = std::max(max, row[j]);
    double sum = 0.0;
    for (int j = 0; j < visible; ++j) {
      row[j] = std::exp(row[j] - max);
      sum += row[j];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int j = 0; j < visible; ++j) row[j] *= inv;
    std::fill(row + visible, row + ctx, 0.0f);
  }
}

}  // namespace

void PagedAttention(const PagedAttentionParams& p) {
  const int group = p.num_heads / p.num_kv_heads;
  const int q_stride = p.num_heads * p.head_dim;
  std::vector<float> k_ctx, v_ctx, scores;
  for (int s = 0; s < p.num_seqs; ++s) {
    const int q0 = p.query_start[s];
    const int q_len = p.query_start[s + 1] - q0;
    const int ctx = p.context_len[s];
    if (q_len == 0) continue;
    const int32_t* table = p.block_tables + static_cast<int64_t>(s) * p.max_blocks_per_seq;
    k_ctx.resize(static_cast<size_t>(ctx) * p.head_dim);
    v_ctx.resize(k_ctx.size());
    scores.resize(static_cast<size_t>(q_len) * ctx);
    for (int kvh = 0; kvh < p.num_kv_heads; ++kvh) {
      GatherHead(p.k_cache, table, ctx, p.block_size, p.num_kv_heads, p.head_dim, kvh,
                 k_ctx.data());
      GatherHead(p.v_cache, table, ctx, p.block_size, p.num_kv_heads, p.head_dim, kvh,
                 v_ctx.data());
      for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
        const float* q = p.q + static_cast<int64_t>(q0) * q_stride + h * p.head_dim;
        float* out = p.out + static_cast<int64_t>(q0) * q_stride + h * p.head_dim;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, q_len, ctx, p.head_dim, p.scale, q,
                    q_stride, k_ctx.data(), p.head_dim, 0.0f, scores.data(), ctx);
        CausalSoftmax(scores.data(), q_len, ctx, ctx - q_len);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, q_len, p.head_dim, ctx, 1.0f,
                    scores.data(), ctx, v_ctx.data(), p.head_dim, 0.0f, out, q_stride);
      }
    }
  }
}

}  // namespace cleave::kernels::cpu
