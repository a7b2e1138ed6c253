// The planner's view of a MoE model: the shapes that decide parameter counts, FLOPs and
// KV-cache bytes. Unlike ModelConfig it can hold a document's stated total next to the
// dimensions, so the planner can show where the two disagree.
#ifndef CLEAVE_ENGINE_PLAN_MODEL_H_
#define CLEAVE_ENGINE_PLAN_MODEL_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "engine/model/config.h"

namespace YAML {
class Node;
}

namespace cleave::plan {

struct PlanModel {
  std::string name;
  int64_t layers = 0;
  int64_t hidden = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t experts = 0;
  int64_t experts_per_token = 0;  // top-k
  int64_t expert_ffn = 0;         // intermediate size of one expert
  int64_t vocab = 0;
  bool tied_embeddings = false;
  int64_t dtype_bytes = 2;
  std::optional<double> stated_total_params;  // what a document claims, if anything

  // Per layer, in parameters. Attention: Q, K, V, O projections (no biases, as Mixtral).
  int64_t AttentionParamsPerLayer() const;
  int64_t RouterParamsPerLayer() const { return experts * hidden; }
  int64_t NormParamsPerLayer() const { return 2 * hidden; }
  // One expert's SwiGLU FFN in one layer: gate, up and down projections.
  int64_t ParamsPerExpertPerLayer() const { return 3 * hidden * expert_ffn; }
  int64_t ExpertParamsPerLayer() const { return experts * ParamsPerExpertPerLayer(); }
  // Everything in a layer that is not an expert (attention, router, norms).
  int64_t DenseParamsPerLayer() const;
  int64_t EmbeddingParams() const { return vocab * hidden; }
  int64_t LmHeadParams() const { return tied_embeddings ? 0 : vocab * hidden; }
  // Dense = all non-expert parameters: layers' dense parts, embeddings, LM head, final norm.
  int64_t DenseParams() const;
  int64_t ExpertParams() const { return layers * ExpertParamsPerLayer(); }
  int64_t TotalParams() const { return DenseParams() + ExpertParams(); }
  // Parameters one token touches (top-k experts per layer), embedding lookup excluded.
  int64_t ActiveParamsPerToken() const;

  // K and V of one token in one layer, and in all layers, in bytes.
  int64_t KvBytesPerTokenPerLayer() const { return 2 * kv_heads * head_dim * dtype_bytes; }
  int64_t KvBytesPerToken() const { return layers * KvBytesPerTokenPerLayer(); }

  // FLOPs of one layer's forward for `tokens` new tokens whose attention sees `context`
  // earlier positions on average (matmul FLOPs = 2 × MACs).
  double AttentionFlops(double tokens, double context) const;
  double ExpertFlops(double tokens) const;  // top-k experts per token + the router

  // INVALID_ARGUMENT naming the field for a zero or negative size.
  absl::Status Validate() const;
};

PlanModel FromModelConfig(const ModelConfig& c, const std::string& name);

// Reads a `model:` section: either `preset: NAME`, `checkpoint: DIR` (its config.json), or
// the dimensions (layers, hidden, heads, kv_heads, head_dim, experts, experts_per_token,
// expert_ffn, vocab, dtype, tied_embeddings, stated_total_params). Dimensions given next to
// a preset or checkpoint override it. `base_dir` resolves a relative checkpoint.
absl::StatusOr<PlanModel> ParseModel(const YAML::Node& node, const std::string& base_dir);

}  // namespace cleave::plan

#endif  // CLEAVE_ENGINE_PLAN_MODEL_H_
