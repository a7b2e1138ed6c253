// The model's shape, read from a Hugging Face MixtralForCausalLM config.json.
#ifndef CLEAVE_ENGINE_MODEL_CONFIG_H_
#define CLEAVE_ENGINE_MODEL_CONFIG_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/util/dtype.h"

namespace cleave {

struct ModelConfig {
  std::string architecture = "MixtralForCausalLM";
  int hidden_size = 0;
  int intermediate_size = 0;  // per expert
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;
  int head_dim = 0;  // hidden_size / num_attention_heads unless config.json says otherwise
  int num_local_experts = 0;
  int num_experts_per_tok = 0;
  float rms_norm_eps = 1e-5f;
  float rope_theta = 1e6f;
  int vocab_size = 0;
  int max_position_embeddings = 0;
  bool tie_word_embeddings = false;
  DType torch_dtype = DType::kBF16;
  int bos_token_id = 1;
  int eos_token_id = 2;

  // Total parameters, embeddings and LM head included (the LM head once when tied).
  int64_t ParameterCount() const;
};

// Parses and validates config.json text: every required key present with the right
// JSON type, every size positive, heads divisible by KV heads, top-k <= experts.
// Errors name the key.
absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text);
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path);
// The config.json text for `c` (what make-model writes).
std::string ModelConfigToJson(const ModelConfig& c);

}  // namespace cleave

#endif  // CLEAVE_ENGINE_MODEL_CONFIG_H_
