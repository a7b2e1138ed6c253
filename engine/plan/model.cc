#include "engine/plan/model.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "engine/model/presets.h"
#include "engine/plan/yaml_util.h"
#include "engine/util/status.h"

namespace cleave::plan {

int64_t PlanModel::AttentionParamsPerLayer() const {
  const int64_t q = heads * head_dim, kv = kv_heads * head_dim;
  return hidden * q + 2 * hidden * kv + q * hidden;
}

int64_t PlanModel::DenseParamsPerLayer() const {
  return AttentionParamsPerLayer() + RouterParamsPerLayer() + NormParamsPerLayer();
}

int64_t PlanModel::DenseParams() const {
  return layers * DenseParamsPerLayer() + EmbeddingParams() + LmHeadParams() + hidden;
}

int64_t PlanModel::ActiveParamsPerToken() const {
  return layers * (DenseParamsPerLayer() + experts_per_token * ParamsPerExpertPerLayer()) +
         vocab * hidden;  // the LM head's matmul (the embedding is a lookup)
}

double PlanModel::AttentionFlops(double tokens, double context) const {
  const double q = static_cast<double>(heads * head_dim);
  // Projections, then QK^T and PV: 2 matmuls of q × context per token.
  return 2.0 * tokens * static_cast<double>(AttentionParamsPerLayer()) + 4.0 * tokens * context * q;
}

double PlanModel::ExpertFlops(double tokens) const {
  return 2.0 * tokens *
         static_cast<double>(experts_per_token * ParamsPerExpertPerLayer() + RouterParamsPerLayer());
}

absl::Status PlanModel::Validate() const {
  const std::pair<const char*, int64_t> sizes[] = {
      {"model.layers", layers},       {"model.hidden", hidden},
      {"model.heads", heads},         {"model.kv_heads", kv_heads},
      {"model.head_dim", head_dim},   {"model.experts", experts},
      {"model.experts_per_token", experts_per_token},
      {"model.expert_ffn", expert_ffn}, {"model.vocab", vocab},
      {"model.dtype", dtype_bytes}};
  for (const auto& [field, v] : sizes) {
    if (v <= 0) return absl::InvalidArgumentError(absl::StrCat(field, ": must be positive, got ", v));
  }
  if (heads % kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("model.kv_heads: ", heads, " heads do not divide by ",
                                                   kv_heads, " KV heads"));
  }
  if (experts_per_token > experts) {
    return absl::InvalidArgumentError(absl::StrCat("model.experts_per_token: ", experts_per_token,
                                                   " exceeds ", experts, " experts"));
  }
  if (stated_total_params && *stated_total_params <= 0) {
    return absl::InvalidArgumentError("model.stated_total_params: must be positive");
  }
  return absl::OkStatus();
}

PlanModel FromModelConfig(const ModelConfig& c, const std::string& name) {
  PlanModel m;
  m.name = name;
  m.layers = c.num_hidden_layers;
  m.hidden = c.hidden_size;
  m.heads = c.num_attention_heads;
  m.kv_heads = c.num_key_value_heads;
  m.head_dim = c.head_dim;
  m.experts = c.num_local_experts;
  m.experts_per_token = c.num_experts_per_tok;
  m.expert_ffn = c.intermediate_size;
  m.vocab = c.vocab_size;
  m.tied_embeddings = c.tie_word_embeddings;
  m.dtype_bytes = static_cast<int64_t>(DTypeSize(c.torch_dtype));
  return m;
}

namespace {

absl::StatusOr<int64_t> DtypeBytes(const std::string& name) {
  if (name == "fp16" || name == "bf16") return 2;
  if (name == "fp32") return 4;
  if (name == "fp8" || name == "int8") return 1;
  return absl::InvalidArgumentError(
      absl::StrCat("model.dtype: '", name, "' (want fp16, bf16, fp32, fp8 or int8)"));
}

}  // namespace

absl::StatusOr<PlanModel> ParseModel(const YAML::Node& node, const std::string& base_dir) {
  const std::string w = "model";
  RETURN_IF_ERROR(yaml::CheckKeys(node, w,
                                  {"name", "preset", "checkpoint", "layers", "hidden", "heads",
                                   "kv_heads", "head_dim", "experts", "experts_per_token",
                                   "expert_ffn", "vocab", "dtype", "tied_embeddings",
                                   "stated_total_params"}));
  PlanModel m;
  ASSIGN_OR_RETURN(auto preset, yaml::OptString(node, w, "preset"));
  ASSIGN_OR_RETURN(auto checkpoint, yaml::OptString(node, w, "checkpoint"));
  if (preset && checkpoint) {
    return absl::InvalidArgumentError("model: give preset or checkpoint, not both");
  }
  if (preset) {
    auto c = PresetConfig(*preset);
    if (!c.ok()) return absl::InvalidArgumentError(absl::StrCat("model.preset: ", c.status().message()));
    m = FromModelConfig(*c, *preset);
  } else if (checkpoint) {
    std::filesystem::path dir(*checkpoint);
    if (dir.is_relative()) dir = std::filesystem::path(base_dir) / dir;
    auto c = LoadModelConfig((dir / "config.json").string());
    if (!c.ok()) return absl::InvalidArgumentError(absl::StrCat("model.checkpoint: ", c.status().message()));
    m = FromModelConfig(*c, *checkpoint);
  }
  const std::pair<const char*, int64_t*> ints[] = {
      {"layers", &m.layers},   {"hidden", &m.hidden},         {"heads", &m.heads},
      {"kv_heads", &m.kv_heads}, {"head_dim", &m.head_dim},   {"experts", &m.experts},
      {"experts_per_token", &m.experts_per_token},            {"expert_ffn", &m.expert_ffn},
      {"vocab", &m.vocab}};
  for (const auto& [key, dst] : ints) {
    ASSIGN_OR_RETURN(auto v, yaml::OptInt(node, w, key));
    if (v) *dst = *v;
  }
  // Unstated GQA means none; unstated head_dim follows from hidden / heads.
  if (!node["kv_heads"] && !preset && !checkpoint) m.kv_heads = m.heads;
  if (!node["head_dim"] && !preset && !checkpoint && m.heads > 0) m.head_dim = m.hidden / m.heads;
  ASSIGN_OR_RETURN(auto name, yaml::OptString(node, w, "name"));
  if (name) m.name = *name;
  ASSIGN_OR_RETURN(auto dtype, yaml::OptString(node, w, "dtype"));
  if (dtype) {
    ASSIGN_OR_RETURN(m.dtype_bytes, DtypeBytes(*dtype));
  }
  ASSIGN_OR_RETURN(auto tied, yaml::OptBool(node, w, "tied_embeddings"));
  if (tied) m.tied_embeddings = *tied;
  ASSIGN_OR_RETURN(m.stated_total_params, yaml::OptDouble(node, w, "stated_total_params"));
  RETURN_IF_ERROR(m.Validate());
  return m;
}

}  // namespace cleave::plan
