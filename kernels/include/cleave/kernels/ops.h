// The op API every backend implements: plain parameter structs over raw fp32
// pointers, no ownership, no allocation. A backend (engine/runtime) decides where
// the pointers live and which implementation (kernels/cpu, kernels/cuda) runs.
//
// Layouts are row-major. "T" is the number of tokens in a step, "H" the hidden size.
#ifndef CLEAVE_KERNELS_OPS_H_
#define CLEAVE_KERNELS_OPS_H_

#include <cstdint>

namespace cleave::kernels {

// c[m, n] = alpha * a[m, k] · b[n, k]^T + beta * c. `b` is a Hugging Face Linear
// weight ([out_features, in_features]), so this is y = x W^T.
struct GemmParams {
  int m = 0, n = 0, k = 0;
  const float* a = nullptr;
  int lda = 0;  // row stride of a (>= k)
  const float* b = nullptr;
  int ldb = 0;  // row stride of b (>= k)
  float* c = nullptr;
  int ldc = 0;  // row stride of c (>= n)
  float alpha = 1.0f;
  float beta = 0.0f;
  // When set, the weight is this bf16 array (same shape and ldb) and `b` is unused;
  // products still accumulate in fp32. CPU backend only for now.
  const uint16_t* b_bf16 = nullptr;
};

// out[t, :] = x[t, :] * rsqrt(mean(x[t, :]^2) + eps) * weight. out may alias x.
struct RmsNormParams {
  int rows = 0, dim = 0;
  const float* x = nullptr;
  const float* weight = nullptr;
  float* out = nullptr;
  float eps = 1e-5f;
};

// Rotary embedding in place, Hugging Face "rotate_half" layout: element i pairs
// with i + head_dim/2. q: [T, num_heads, head_dim]; k: [T, num_kv_heads, head_dim].
struct RopeParams {
  int num_tokens = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0;
  const int32_t* positions = nullptr;  // [T]
  float* q = nullptr;
  float* k = nullptr;
  float theta = 10000.0f;
};

// Writes this step's K and V rows into the paged cache. Cache layout per layer:
// [num_blocks, block_size, num_kv_heads, head_dim]; slot = block * block_size + offset.
struct StoreKvParams {
  int num_tokens = 0, num_kv_heads = 0, head_dim = 0;
  const float* k = nullptr;  // [T, num_kv_heads, head_dim]
  const float* v = nullptr;
  const int32_t* slots = nullptr;  // [T]
  float* k_cache = nullptr;
  float* v_cache = nullptr;
};

// Causal attention over the paged cache for a batch of sequences with different
// query and context lengths (prefill, chunked prefill and decode alike). Sequence
// s owns query rows [query_start[s], query_start[s+1]) and has context_len[s]
// tokens in the cache, the queries being its last rows; query i of s sits at
// position context_len[s] - q_len + i and sees cache positions <= its own.
struct PagedAttentionParams {
  int num_seqs = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0, block_size = 0;
  const float* q = nullptr;               // [T, num_heads, head_dim]
  const float* k_cache = nullptr;         // [num_blocks, block_size, num_kv_heads, head_dim]
  const float* v_cache = nullptr;
  const int32_t* query_start = nullptr;   // [num_seqs + 1]
  const int32_t* context_len = nullptr;   // [num_seqs]
  const int32_t* block_tables = nullptr;  // [num_seqs, max_blocks_per_seq]
  int max_blocks_per_seq = 0;
  float scale = 1.0f;
  float* out = nullptr;                   // [T, num_heads, head_dim]
};

// out[t, f] = silu(gate_up[t, f]) * gate_up[t, dim + f]; gate_up is [T, 2*dim]
// (the expert's w1 and w3 rows fused into one GEMM).
struct SiluMulParams {
  int rows = 0, dim = 0;
  const float* gate_up = nullptr;
  float* out = nullptr;  // [T, dim]
};

// Mixtral routing: softmax over the experts' logits, top-k, weights renormalised
// to sum to 1. Ties go to the lower expert index.
struct RouterTopKParams {
  int num_tokens = 0, num_experts = 0, top_k = 0;
  const float* logits = nullptr;  // [T, num_experts]
  int32_t* expert_ids = nullptr;  // [T, top_k], in descending weight order
  float* weights = nullptr;       // [T, top_k]
};

// out[t, :] = table[ids[t], :]
struct EmbeddingParams {
  int num_tokens = 0, dim = 0;
  const int32_t* ids = nullptr;
  const float* table = nullptr;
  float* out = nullptr;
};

// out[i, :] = src[rows[i], :] for i < n.
struct GatherRowsParams {
  int n = 0, dim = 0;
  const int32_t* rows = nullptr;
  const float* src = nullptr;
  float* out = nullptr;
};

// dst[rows[i], :] += scale[i] * src[i, :] for i < n, in order of i.
struct ScatterAddRowsParams {
  int n = 0, dim = 0;
  const int32_t* rows = nullptr;
  const float* scale = nullptr;
  const float* src = nullptr;
  float* dst = nullptr;
};

// y[i] += x[i]
struct AddParams {
  int64_t n = 0;
  const float* x = nullptr;
  float* y = nullptr;
};

}  // namespace cleave::kernels

#endif  // CLEAVE_KERNELS_OPS_H_
