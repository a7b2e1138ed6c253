#include "engine/model/presets.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cleave {
namespace {

// Fields every preset shares: Mixtral's RoPE base and norm epsilon, bf16 storage,
// untied LM head, and the Llama/Mixtral special ids (<unk>=0, <s>=1, </s>=2).
ModelConfig Base() {
  ModelConfig c;
  c.rms_norm_eps = 1e-5f;
  c.rope_theta = 1e6f;
  c.torch_dtype = DType::kBF16;
  c.tie_word_embeddings = false;
  c.num_experts_per_tok = 2;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  return c;
}

}  // namespace

std::vector<std::string> PresetNames() { return {"tiny", "small", "seed"}; }

absl::StatusOr<ModelConfig> PresetConfig(std::string_view name) {
  ModelConfig c = Base();
  if (name == "tiny") {  // ~3.6M parameters: fast enough for every unit test
    c.hidden_size = 128;
    c.intermediate_size = 256;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 32;
    c.num_local_experts = 8;
    c.vocab_size = 512;
    c.max_position_embeddings = 4096;
  } else if (name == "small") {  // ~235M parameters: CPU benchmarks
    c.hidden_size = 512;
    c.intermediate_size = 1024;
    c.num_hidden_layers = 8;
    c.num_attention_heads = 8;
    c.num_key_value_heads = 4;
    c.head_dim = 64;
    c.num_local_experts = 16;
    c.vocab_size = 32000;
    c.max_position_embeddings = 32768;
  } else if (name == "seed") {  // ~6.58B parameters, 13.2 GB in bf16
    c.hidden_size = 1024;
    c.intermediate_size = 2048;
    c.num_hidden_layers = 16;
    c.num_attention_heads = 16;
    c.num_key_value_heads = 16;
    c.head_dim = 64;
    c.num_local_experts = 64;
    c.vocab_size = 32000;
    c.max_position_embeddings = 32768;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown preset '", std::string(name),
                                                   "' (want ", absl::StrJoin(PresetNames(), ", "),
                                                   ")"));
  }
  return c;
}

}  // namespace cleave
