#include "engine/model/mixtral.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/util/status.h"

namespace cleave {

namespace names = mixtral_names;

struct MixtralModel::Layer {
  DeviceBuffer input_norm, post_norm;
  Weight q, k, v, o;        // [out, in] as in the checkpoint
  DeviceBuffer router;      // [experts, hidden], fp32: tiny, and routing decides ties
  std::vector<Weight> w13;  // per expert: w1 rows then w3 rows, [2*ffn, hidden]
  std::vector<Weight> w2;   // per expert: [hidden, ffn]
};

// Per-step activations and index arrays, grown to the largest step seen.
struct MixtralModel::Scratch {
  DeviceBuffer x, h, q, k, v, attn, moe_out, router_logits, expert_ids, expert_weights;
  DeviceBuffer expert_in, expert_gate_up, expert_act, expert_out, expert_rows, expert_scale;
  DeviceBuffer ids, positions, slots, query_start, context_len, block_tables, logit_rows;
  DeviceBuffer logit_x, logits;
  // Host copies of routing decisions, to group tokens by expert.
  std::vector<int32_t> host_expert_ids;
  std::vector<float> host_expert_weights;
  std::vector<std::vector<int32_t>> rows_by_expert;
  std::vector<std::vector<float>> scale_by_expert;
};

MixtralModel::MixtralModel(const ModelConfig& config, Backend* backend)
    : config_(config), backend_(backend), scratch_(std::make_unique<Scratch>()) {}

MixtralModel::~MixtralModel() = default;

namespace {

absl::StatusOr<DeviceBuffer> LoadTensor(const Checkpoint& ckpt, Backend* backend,
                                        const std::string& name, size_t numel) {
  std::vector<float> host(numel);
  RETURN_IF_ERROR(ckpt.ReadF32(name, std::span<float>(host)));
  ASSIGN_OR_RETURN(DeviceBuffer buf, DeviceBuffer::Create(backend, numel * sizeof(float)));
  buf.Upload(std::span<const float>(host));
  return buf;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MixtralModel>> MixtralModel::Load(const Checkpoint& checkpoint,
                                                                 Backend* backend) {
  std::unique_ptr<MixtralModel> model(new MixtralModel(checkpoint.config(), backend));
  RETURN_IF_ERROR(model->LoadWeights(checkpoint));
  return model;
}

absl::Status MixtralModel::LoadWeights(const Checkpoint& ckpt) {
  const ModelConfig& c = config_;
  const size_t hidden = c.hidden_size, ffn = c.intermediate_size;
  const size_t q_dim = static_cast<size_t>(c.num_attention_heads) * c.head_dim;
  const size_t kv_dim = static_cast<size_t>(c.num_key_value_heads) * c.head_dim;
  ASSIGN_OR_RETURN(embed_, LoadTensor(ckpt, backend_, names::EmbedTokens(),
                                      static_cast<size_t>(c.vocab_size) * hidden));
  ASSIGN_OR_RETURN(final_norm_, LoadTensor(ckpt, backend_, names::FinalNorm(), hidden));
  if (!c.tie_word_embeddings) {
    ASSIGN_OR_RETURN(
        lm_head_, LoadLinear(ckpt, {names::LmHead()}, static_cast<size_t>(c.vocab_size) * hidden));
  }
  layers_.resize(c.num_hidden_layers);
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    Layer& layer = layers_[l];
    ASSIGN_OR_RETURN(layer.input_norm,
                     LoadTensor(ckpt, backend_, names::InputLayernorm(l), hidden));
    ASSIGN_OR_RETURN(layer.post_norm,
                     LoadTensor(ckpt, backend_, names::PostAttentionLayernorm(l), hidden));
    ASSIGN_OR_RETURN(layer.q, LoadLinear(ckpt, {names::QProj(l)}, q_dim * hidden));
    ASSIGN_OR_RETURN(layer.k, LoadLinear(ckpt, {names::KProj(l)}, kv_dim * hidden));
    ASSIGN_OR_RETURN(layer.v, LoadLinear(ckpt, {names::VProj(l)}, kv_dim * hidden));
    ASSIGN_OR_RETURN(layer.o, LoadLinear(ckpt, {names::OProj(l)}, hidden * q_dim));
    ASSIGN_OR_RETURN(layer.router, LoadTensor(ckpt, backend_, names::RouterGate(l),
                                              static_cast<size_t>(c.num_local_experts) * hidden));
    for (int e = 0; e < c.num_local_experts; ++e) {
      // w1 (gate) and w3 (up) fused row-wise so one GEMM produces both halves.
      ASSIGN_OR_RETURN(Weight w13, LoadLinear(ckpt, {names::ExpertW1(l, e), names::ExpertW3(l, e)},
                                              ffn * hidden));
      layer.w13.push_back(std::move(w13));
      ASSIGN_OR_RETURN(Weight w2, LoadLinear(ckpt, {names::ExpertW2(l, e)}, hidden * ffn));
      layer.w2.push_back(std::move(w2));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<MixtralModel::Weight> MixtralModel::LoadLinear(
    const Checkpoint& ckpt, std::initializer_list<std::string> tensor_names, size_t numel) {
  bool bf16 = backend_->device() == DeviceKind::kCpu;
  for (const std::string& name : tensor_names) {
    ASSIGN_OR_RETURN(TensorView view, ckpt.Get(name));
    if (static_cast<size_t>(view.numel()) != numel) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' ",
                                                     ShapeString(view.shape), " has ", view.numel(),
                                                     " elements, want ", numel));
    }
    bf16 = bf16 && view.dtype == DType::kBF16;
  }
  Weight w;
  w.bf16 = bf16;
  const size_t esize = bf16 ? sizeof(uint16_t) : sizeof(float);
  ASSIGN_OR_RETURN(w.buf, DeviceBuffer::Create(backend_, tensor_names.size() * numel * esize));
  size_t offset = 0;
  std::vector<float> host;
  for (const std::string& name : tensor_names) {
    if (bf16) {
      ASSIGN_OR_RETURN(TensorView view, ckpt.Get(name));
      backend_->CopyToDevice(static_cast<char*>(w.buf.data()) + offset, view.data, view.nbytes);
    } else {
      host.resize(numel);
      RETURN_IF_ERROR(ckpt.ReadF32(name, std::span<float>(host)));
      backend_->CopyToDevice(static_cast<char*>(w.buf.data()) + offset, host.data(),
                             numel * sizeof(float));
    }
    offset += numel * esize;
  }
  return w;
}

void MixtralModel::Linear(const Weight& w, int m, int out_dim, int in_dim, const float* x, float* y,
                          float beta) {
  kernels::GemmParams p{.m = m,
                        .n = out_dim,
                        .k = in_dim,
                        .a = x,
                        .lda = in_dim,
                        .ldb = in_dim,
                        .c = y,
                        .ldc = out_dim,
                        .beta = beta};
  if (w.bf16) {
    p.b_bf16 = static_cast<const uint16_t*>(w.buf.data());
  } else {
    p.b = w.buf.f32();
  }
  backend_->Gemm(p);
}

KvStorageShape MixtralModel::KvShape(int num_blocks, int block_size) const {
  KvStorageShape s;
  s.num_layers = config_.num_hidden_layers;
  s.num_blocks = num_blocks;
  s.block_size = block_size;
  s.num_kv_heads = config_.num_key_value_heads;
  s.head_dim = config_.head_dim;
  return s;
}

namespace {

absl::Status Grow(Backend* b, DeviceBuffer& buf, size_t count, size_t elem = 4) {
  return EnsureCapacity(b, buf, std::max<size_t>(count, 1) * elem);
}

}  // namespace

absl::Status MixtralModel::Forward(const ForwardBatch& batch, KvStorage& kv,
                                   std::vector<float>* logits) {
  const ModelConfig& c = config_;
  const int block_size = kv.shape().block_size;
  const int num_seqs = static_cast<int>(batch.seqs.size());
  logits->clear();
  if (num_seqs == 0) return absl::OkStatus();

  // Host-side index arrays for the step.
  std::vector<int32_t> ids, positions, slots, query_start{0}, context_len, logit_rows;
  int max_blocks = 1;
  for (const ForwardSeq& s : batch.seqs) {
    const int end = s.start_pos + static_cast<int>(s.tokens.size());
    max_blocks = std::max(max_blocks, (end + block_size - 1) / block_size);
  }
  std::vector<int32_t> block_tables(static_cast<size_t>(num_seqs) * max_blocks, 0);
  for (int si = 0; si < num_seqs; ++si) {
    const ForwardSeq& s = batch.seqs[si];
    const int n = static_cast<int>(s.tokens.size());
    const int end = s.start_pos + n;
    if (n == 0) return absl::InvalidArgumentError(absl::StrCat("seqs[", si, "]: no tokens"));
    if (static_cast<int64_t>(s.block_table.size()) * block_size < end) {
      return absl::InvalidArgumentError(absl::StrCat("seqs[", si, "]: block_table covers ",
                                                     s.block_table.size() * block_size,
                                                     " tokens, need ", end));
    }
    for (size_t b = 0; b < s.block_table.size() && static_cast<int>(b) < max_blocks; ++b) {
      if (s.block_table[b] < 0 || s.block_table[b] >= kv.shape().num_blocks) {
        return absl::InvalidArgumentError(
            absl::StrCat("seqs[", si, "]: block id ", s.block_table[b], " out of range"));
      }
      block_tables[static_cast<size_t>(si) * max_blocks + b] = s.block_table[b];
    }
    for (int i = 0; i < n; ++i) {
      const int tok = s.tokens[i];
      if (tok < 0 || tok >= c.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat(
            "seqs[", si, "]: token id ", tok, " outside the vocabulary [0, ", c.vocab_size, ")"));
      }
      const int pos = s.start_pos + i;
      ids.push_back(tok);
      positions.push_back(pos);
      slots.push_back(s.block_table[pos / block_size] * block_size + pos % block_size);
      if (s.all_logits || (s.want_logits && i == n - 1)) {
        logit_rows.push_back(static_cast<int32_t>(ids.size()) - 1);
      }
    }
    query_start.push_back(static_cast<int32_t>(ids.size()));
    context_len.push_back(end);
  }
  const int num_tokens = static_cast<int>(ids.size());
  const int num_logit_rows = static_cast<int>(logit_rows.size());

  Scratch& s = *scratch_;
  Backend* b = backend_;
  const size_t hidden = c.hidden_size;
  const size_t q_dim = static_cast<size_t>(c.num_attention_heads) * c.head_dim;
  const size_t kv_dim = static_cast<size_t>(c.num_key_value_heads) * c.head_dim;
  RETURN_IF_ERROR(Grow(b, s.x, num_tokens * hidden));
  RETURN_IF_ERROR(Grow(b, s.h, num_tokens * hidden));
  RETURN_IF_ERROR(Grow(b, s.moe_out, num_tokens * hidden));
  RETURN_IF_ERROR(Grow(b, s.q, num_tokens * q_dim));
  RETURN_IF_ERROR(Grow(b, s.attn, num_tokens * q_dim));
  RETURN_IF_ERROR(Grow(b, s.k, num_tokens * kv_dim));
  RETURN_IF_ERROR(Grow(b, s.v, num_tokens * kv_dim));
  RETURN_IF_ERROR(Grow(b, s.router_logits, num_tokens * c.num_local_experts));
  RETURN_IF_ERROR(Grow(b, s.expert_ids, num_tokens * c.num_experts_per_tok));
  RETURN_IF_ERROR(Grow(b, s.expert_weights, num_tokens * c.num_experts_per_tok));
  RETURN_IF_ERROR(Grow(b, s.ids, num_tokens));
  RETURN_IF_ERROR(Grow(b, s.positions, num_tokens));
  RETURN_IF_ERROR(Grow(b, s.slots, num_tokens));
  RETURN_IF_ERROR(Grow(b, s.query_start, num_seqs + 1));
  RETURN_IF_ERROR(Grow(b, s.context_len, num_seqs));
  RETURN_IF_ERROR(Grow(b, s.block_tables, block_tables.size()));
  RETURN_IF_ERROR(Grow(b, s.logit_rows, num_logit_rows));
  RETURN_IF_ERROR(Grow(b, s.logit_x, num_logit_rows * hidden));
  RETURN_IF_ERROR(Grow(b, s.logits, static_cast<size_t>(num_logit_rows) * c.vocab_size));
  s.ids.Upload(std::span<const int32_t>(ids));
  s.positions.Upload(std::span<const int32_t>(positions));
  s.slots.Upload(std::span<const int32_t>(slots));
  s.query_start.Upload(std::span<const int32_t>(query_start));
  s.context_len.Upload(std::span<const int32_t>(context_len));
  s.block_tables.Upload(std::span<const int32_t>(block_tables));
  if (num_logit_rows > 0) s.logit_rows.Upload(std::span<const int32_t>(logit_rows));

  b->Embedding({.num_tokens = num_tokens,
                .dim = c.hidden_size,
                .ids = s.ids.i32(),
                .table = embed_.f32(),
                .out = s.x.f32()});
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    RETURN_IF_ERROR(RunLayer(l, num_tokens, num_seqs, max_blocks, kv));
  }
  if (num_logit_rows == 0) return absl::OkStatus();

  // Only the rows that need logits go through the final norm and the LM head.
  b->GatherRows({.n = num_logit_rows,
                 .dim = c.hidden_size,
                 .rows = s.logit_rows.i32(),
                 .src = s.x.f32(),
                 .out = s.logit_x.f32()});
  b->RmsNorm({.rows = num_logit_rows,
              .dim = c.hidden_size,
              .x = s.logit_x.f32(),
              .weight = final_norm_.f32(),
              .out = s.logit_x.f32(),
              .eps = c.rms_norm_eps});
  if (c.tie_word_embeddings) {
    b->Gemm({.m = num_logit_rows,
             .n = c.vocab_size,
             .k = c.hidden_size,
             .a = s.logit_x.f32(),
             .lda = c.hidden_size,
             .b = embed_.f32(),
             .ldb = c.hidden_size,
             .c = s.logits.f32(),
             .ldc = c.vocab_size});
  } else {
    Linear(lm_head_, num_logit_rows, c.vocab_size, c.hidden_size, s.logit_x.f32(), s.logits.f32());
  }
  logits->resize(static_cast<size_t>(num_logit_rows) * c.vocab_size);
  b->CopyToHost(logits->data(), s.logits.data(), logits->size() * sizeof(float));
  b->Synchronize();
  return absl::OkStatus();
}

absl::Status MixtralModel::RunLayer(int index, int num_tokens, int num_seqs, int max_blocks,
                                    KvStorage& kv) {
  const ModelConfig& c = config_;
  const Layer& layer = layers_[index];
  Scratch& s = *scratch_;
  Backend* b = backend_;
  const int hidden = c.hidden_size;
  const int q_dim = c.num_attention_heads * c.head_dim;
  const int kv_dim = c.num_key_value_heads * c.head_dim;

  b->RmsNorm({.rows = num_tokens,
              .dim = hidden,
              .x = s.x.f32(),
              .weight = layer.input_norm.f32(),
              .out = s.h.f32(),
              .eps = c.rms_norm_eps});
  Linear(layer.q, num_tokens, q_dim, hidden, s.h.f32(), s.q.f32());
  Linear(layer.k, num_tokens, kv_dim, hidden, s.h.f32(), s.k.f32());
  Linear(layer.v, num_tokens, kv_dim, hidden, s.h.f32(), s.v.f32());
  b->Rope({.num_tokens = num_tokens,
           .num_heads = c.num_attention_heads,
           .num_kv_heads = c.num_key_value_heads,
           .head_dim = c.head_dim,
           .positions = s.positions.i32(),
           .q = s.q.f32(),
           .k = s.k.f32(),
           .theta = c.rope_theta});
  b->StoreKv({.num_tokens = num_tokens,
              .num_kv_heads = c.num_key_value_heads,
              .head_dim = c.head_dim,
              .k = s.k.f32(),
              .v = s.v.f32(),
              .slots = s.slots.i32(),
              .k_cache = kv.k(index),
              .v_cache = kv.v(index)});
  b->PagedAttention({.num_seqs = num_seqs,
                     .num_heads = c.num_attention_heads,
                     .num_kv_heads = c.num_key_value_heads,
                     .head_dim = c.head_dim,
                     .block_size = kv.shape().block_size,
                     .q = s.q.f32(),
                     .k_cache = kv.k(index),
                     .v_cache = kv.v(index),
                     .query_start = s.query_start.i32(),
                     .context_len = s.context_len.i32(),
                     .block_tables = s.block_tables.i32(),
                     .max_blocks_per_seq = max_blocks,
                     .scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim)),
                     .out = s.attn.f32()});
  // x += attn · Wo^T: the residual add rides on the GEMM's beta.
  Linear(layer.o, num_tokens, hidden, q_dim, s.attn.f32(), s.x.f32(), 1.0f);

  b->RmsNorm({.rows = num_tokens,
              .dim = hidden,
              .x = s.x.f32(),
              .weight = layer.post_norm.f32(),
              .out = s.h.f32(),
              .eps = c.rms_norm_eps});
  RETURN_IF_ERROR(RunMoe(layer, num_tokens));
  b->Add({.n = static_cast<int64_t>(num_tokens) * hidden, .x = s.moe_out.f32(), .y = s.x.f32()});
  return absl::OkStatus();
}

// Routes each token to its top-k experts and sums the weighted expert outputs into
// moe_out. Experts run in index order, so a token's sum has the same order whatever
// else is in the batch.
absl::Status MixtralModel::RunMoe(const Layer& layer, int num_tokens) {
  const ModelConfig& c = config_;
  Scratch& s = *scratch_;
  Backend* b = backend_;
  const int hidden = c.hidden_size, ffn = c.intermediate_size;
  const int num_experts = c.num_local_experts, top_k = c.num_experts_per_tok;

  b->Gemm({.m = num_tokens,
           .n = num_experts,
           .k = hidden,
           .a = s.h.f32(),
           .lda = hidden,
           .b = layer.router.f32(),
           .ldb = hidden,
           .c = s.router_logits.f32(),
           .ldc = num_experts});
  b->RouterTopK({.num_tokens = num_tokens,
                 .num_experts = num_experts,
                 .top_k = top_k,
                 .logits = s.router_logits.f32(),
                 .expert_ids = s.expert_ids.i32(),
                 .weights = s.expert_weights.f32()});
  const size_t picks = static_cast<size_t>(num_tokens) * top_k;
  s.host_expert_ids.resize(picks);
  s.host_expert_weights.resize(picks);
  b->CopyToHost(s.host_expert_ids.data(), s.expert_ids.data(), picks * sizeof(int32_t));
  b->CopyToHost(s.host_expert_weights.data(), s.expert_weights.data(), picks * sizeof(float));
  b->Synchronize();

  s.rows_by_expert.resize(num_experts);
  s.scale_by_expert.resize(num_experts);
  for (int e = 0; e < num_experts; ++e) {
    s.rows_by_expert[e].clear();
    s.scale_by_expert[e].clear();
  }
  for (int t = 0; t < num_tokens; ++t) {
    for (int j = 0; j < top_k; ++j) {
      const int e = s.host_expert_ids[t * top_k + j];
      s.rows_by_expert[e].push_back(t);
      s.scale_by_expert[e].push_back(s.host_expert_weights[t * top_k + j]);
    }
  }
  b->Memset(s.moe_out.data(), 0, static_cast<size_t>(num_tokens) * hidden * sizeof(float));
  size_t max_rows = 0;
  for (const auto& rows : s.rows_by_expert) max_rows = std::max(max_rows, rows.size());
  RETURN_IF_ERROR(Grow(b, s.expert_in, max_rows * hidden));
  RETURN_IF_ERROR(Grow(b, s.expert_gate_up, max_rows * 2 * ffn));
  RETURN_IF_ERROR(Grow(b, s.expert_act, max_rows * ffn));
  RETURN_IF_ERROR(Grow(b, s.expert_out, max_rows * hidden));
  RETURN_IF_ERROR(Grow(b, s.expert_rows, max_rows));
  RETURN_IF_ERROR(Grow(b, s.expert_scale, max_rows));
  for (int e = 0; e < num_experts; ++e) {
    const int n = static_cast<int>(s.rows_by_expert[e].size());
    if (n == 0) continue;
    s.expert_rows.Upload(std::span<const int32_t>(s.rows_by_expert[e]));
    s.expert_scale.Upload(std::span<const float>(s.scale_by_expert[e]));
    b->GatherRows({.n = n,
                   .dim = hidden,
                   .rows = s.expert_rows.i32(),
                   .src = s.h.f32(),
                   .out = s.expert_in.f32()});
    Linear(layer.w13[e], n, 2 * ffn, hidden, s.expert_in.f32(), s.expert_gate_up.f32());
    b->SiluMul(
        {.rows = n, .dim = ffn, .gate_up = s.expert_gate_up.f32(), .out = s.expert_act.f32()});
    Linear(layer.w2[e], n, hidden, ffn, s.expert_act.f32(), s.expert_out.f32());
    b->ScatterAddRows({.n = n,
                       .dim = hidden,
                       .rows = s.expert_rows.i32(),
                       .scale = s.expert_scale.f32(),
                       .src = s.expert_out.f32(),
                       .dst = s.moe_out.f32()});
  }
  return absl::OkStatus();
}

}  // namespace cleave
