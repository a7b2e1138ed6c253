#include "engine/model/config.h"

#include <charconv>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/util/status.h"
#include "nlohmann/json.hpp"

namespace cleave {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kArchitecture = "MixtralForCausalLM";

// Debian's abseil has its own string_view, so std::string_view goes through std::string.
absl::Status KeyError(std::string_view key, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("key '", std::string(key), "': ", std::string(what)));
}

std::string TypeName(const Json& v) { return v.type_name(); }

// A required or optional positive int. Floats such as 128.0 are refused: HF writes ints,
// and a fractional size is a broken file rather than something to round.
absl::StatusOr<int> PositiveInt(const Json& j, std::string_view key) {
  auto it = j.find(std::string(key));
  if (it == j.end()) return KeyError(key, "missing");
  if (!it->is_number_integer()) {
    return KeyError(key, absl::StrCat("want an integer, got ", TypeName(*it)));
  }
  // Read as signed 64-bit first so both huge and negative values get a clear message.
  const int64_t v =
      it->is_number_unsigned() && it->get<uint64_t>() > INT64_MAX ? INT64_MAX : it->get<int64_t>();
  if (v <= 0) return KeyError(key, absl::StrCat("must be positive, got ", v));
  if (v > INT_MAX) return KeyError(key, absl::StrCat("too large (", v, ")"));
  return static_cast<int>(v);
}

absl::StatusOr<double> PositiveNumber(const Json& j, std::string_view key) {
  auto it = j.find(std::string(key));
  if (it == j.end()) return KeyError(key, "missing");
  if (!it->is_number()) return KeyError(key, absl::StrCat("want a number, got ", TypeName(*it)));
  const double v = it->get<double>();
  if (!(v > 0.0) || v > 3.0e38) {
    return KeyError(key, absl::StrCat("must be a positive finite float, got ", it->dump()));
  }
  return v;
}

// bos/eos may be absent or null (keep the default), an int, or a list of ints (newer HF
// configs list several EOS ids; the first is the one generation stops on by default).
absl::Status OptionalTokenId(const Json& j, std::string_view key, int vocab_size, int* out) {
  auto it = j.find(std::string(key));
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  const Json* v = &*it;
  if (v->is_array()) {
    if (v->empty()) return KeyError(key, "empty list");
    v = &(*v)[0];
  }
  if (!v->is_number_integer()) {
    return KeyError(key, absl::StrCat("want an integer, got ", TypeName(*v)));
  }
  const int64_t id = v->get<int64_t>();
  if (id < 0 || id >= vocab_size) {
    return KeyError(key,
                    absl::StrCat("token id ", id, " outside the vocabulary [0, ", vocab_size, ")"));
  }
  *out = static_cast<int>(id);
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> FromJson(const Json& j) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("want a JSON object, got ", TypeName(j)));
  }
  ModelConfig c;
  if (auto it = j.find("architectures"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) {
      return KeyError("architectures", absl::StrCat("want a list, got ", TypeName(*it)));
    }
    bool found = false;
    for (const Json& a : *it) {
      if (!a.is_string()) return KeyError("architectures", "want a list of strings");
      found = found || a.get<std::string>() == kArchitecture;
    }
    if (!found) {
      return KeyError("architectures",
                      absl::StrCat(it->dump(), " does not name ", std::string(kArchitecture),
                                   " (the only architecture cleave runs)"));
    }
  }
  ASSIGN_OR_RETURN(c.hidden_size, PositiveInt(j, "hidden_size"));
  ASSIGN_OR_RETURN(c.intermediate_size, PositiveInt(j, "intermediate_size"));
  ASSIGN_OR_RETURN(c.num_hidden_layers, PositiveInt(j, "num_hidden_layers"));
  ASSIGN_OR_RETURN(c.num_attention_heads, PositiveInt(j, "num_attention_heads"));
  ASSIGN_OR_RETURN(c.num_key_value_heads, PositiveInt(j, "num_key_value_heads"));
  ASSIGN_OR_RETURN(c.num_local_experts, PositiveInt(j, "num_local_experts"));
  ASSIGN_OR_RETURN(c.num_experts_per_tok, PositiveInt(j, "num_experts_per_tok"));
  ASSIGN_OR_RETURN(c.vocab_size, PositiveInt(j, "vocab_size"));
  ASSIGN_OR_RETURN(c.max_position_embeddings, PositiveInt(j, "max_position_embeddings"));
  ASSIGN_OR_RETURN(double eps, PositiveNumber(j, "rms_norm_eps"));
  ASSIGN_OR_RETURN(double theta, PositiveNumber(j, "rope_theta"));
  c.rms_norm_eps = static_cast<float>(eps);
  c.rope_theta = static_cast<float>(theta);

  auto tie = j.find("tie_word_embeddings");
  if (tie == j.end()) return KeyError("tie_word_embeddings", "missing");
  if (!tie->is_boolean()) {
    return KeyError("tie_word_embeddings", absl::StrCat("want a boolean, got ", TypeName(*tie)));
  }
  c.tie_word_embeddings = tie->get<bool>();

  auto dt = j.find("torch_dtype");
  if (dt == j.end()) return KeyError("torch_dtype", "missing");
  if (!dt->is_string()) {
    return KeyError("torch_dtype", absl::StrCat("want a string, got ", TypeName(*dt)));
  }
  auto dtype = ParseTorchDType(dt->get<std::string>());
  if (!dtype.ok()) return KeyError("torch_dtype", std::string(dtype.status().message()));
  c.torch_dtype = *dtype;

  if (auto hd = j.find("head_dim"); hd != j.end() && !hd->is_null()) {
    ASSIGN_OR_RETURN(c.head_dim, PositiveInt(j, "head_dim"));
  } else {
    if (c.hidden_size % c.num_attention_heads != 0) {
      return KeyError("hidden_size",
                      absl::StrCat(c.hidden_size, " is not divisible by num_attention_heads ",
                                   c.num_attention_heads, " and head_dim is not given"));
    }
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return KeyError("num_key_value_heads",
                    absl::StrCat(c.num_key_value_heads, " does not divide num_attention_heads ",
                                 c.num_attention_heads));
  }
  if (c.num_experts_per_tok > c.num_local_experts) {
    return KeyError(
        "num_experts_per_tok",
        absl::StrCat(c.num_experts_per_tok, " exceeds num_local_experts ", c.num_local_experts));
  }
  RETURN_IF_ERROR(OptionalTokenId(j, "bos_token_id", c.vocab_size, &c.bos_token_id));
  RETURN_IF_ERROR(OptionalTokenId(j, "eos_token_id", c.vocab_size, &c.eos_token_id));
  return c;
}

// The shortest decimal that reads back as the same float, so config.json says 1e-05
// rather than 9.999999747378752e-06.
double ShortestDouble(float f) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), f);
  *res.ptr = '\0';
  return std::strtod(buf, nullptr);
}

}  // namespace

int64_t ModelConfig::ParameterCount() const {
  const int64_t h = hidden_size, ffn = intermediate_size;
  const int64_t q_dim = int64_t{num_attention_heads} * head_dim;
  const int64_t kv_dim = int64_t{num_key_value_heads} * head_dim;
  const int64_t attention = q_dim * h + 2 * kv_dim * h + h * q_dim;
  const int64_t moe = int64_t{num_local_experts} * h + int64_t{num_local_experts} * 3 * ffn * h;
  const int64_t per_layer = 2 * h + attention + moe;  // + the two RMSNorm weights
  const int64_t embed = int64_t{vocab_size} * h;
  return embed + (tie_word_embeddings ? 0 : embed) + h + num_hidden_layers * per_layer;
}

absl::StatusOr<ModelConfig> ParseModelConfig(std::string_view json_text) {
  Json j;
  try {
    j = Json::parse(json_text.begin(), json_text.end());
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("malformed JSON: ", e.what()));
  }
  return FromJson(j);
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open model config"));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read failed"));
  auto config = ParseModelConfig(text.str());
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

std::string ModelConfigToJson(const ModelConfig& c) {
  // ordered_json keeps the familiar HF key order, which makes diffs against real configs easy.
  nlohmann::ordered_json j;
  j["architectures"] = {std::string(kArchitecture)};
  j["model_type"] = "mixtral";
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["num_local_experts"] = c.num_local_experts;
  j["num_experts_per_tok"] = c.num_experts_per_tok;
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = ShortestDouble(c.rms_norm_eps);
  j["rope_theta"] = ShortestDouble(c.rope_theta);
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["torch_dtype"] = std::string(TorchDTypeName(c.torch_dtype));
  j["bos_token_id"] = c.bos_token_id;
  j["eos_token_id"] = c.eos_token_id;
  // Keys transformers expects for Mixtral that cleave does not model (no sliding window,
  // no router aux loss at inference).
  j["sliding_window"] = nullptr;
  j["attention_dropout"] = 0.0;
  j["initializer_range"] = 0.02;
  j["output_router_logits"] = false;
  j["router_aux_loss_coef"] = 0.02;
  j["use_cache"] = true;
  return j.dump(2) + "\n";
}

}  // namespace cleave
