#include "engine/model/config.h"

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace cleave {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

// mistralai/Mixtral-8x7B-v0.1 config.json as published.
constexpr char kMixtral8x7B[] = R"({
  "architectures": ["MixtralForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 32768,
  "model_type": "mixtral",
  "num_attention_heads": 32,
  "num_experts_per_tok": 2,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "num_local_experts": 8,
  "output_router_logits": false,
  "rms_norm_eps": 1e-05,
  "rope_theta": 1e6,
  "router_aux_loss_coef": 0.02,
  "sliding_window": null,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.36.0.dev0",
  "use_cache": true,
  "vocab_size": 32000
})";

Json Base() { return Json::parse(kMixtral8x7B); }

absl::StatusOr<ModelConfig> Parse(const Json& j) { return ParseModelConfig(j.dump()); }

TEST(ModelConfigTest, ParsesMixtral8x7B) {
  auto c = ParseModelConfig(kMixtral8x7B);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hidden_size, 4096);
  EXPECT_EQ(c->intermediate_size, 14336);
  EXPECT_EQ(c->num_hidden_layers, 32);
  EXPECT_EQ(c->num_attention_heads, 32);
  EXPECT_EQ(c->num_key_value_heads, 8);
  EXPECT_EQ(c->head_dim, 128);  // derived: 4096 / 32
  EXPECT_EQ(c->num_local_experts, 8);
  EXPECT_EQ(c->num_experts_per_tok, 2);
  EXPECT_FLOAT_EQ(c->rms_norm_eps, 1e-5f);
  EXPECT_FLOAT_EQ(c->rope_theta, 1e6f);
  EXPECT_EQ(c->vocab_size, 32000);
  EXPECT_EQ(c->max_position_embeddings, 32768);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->torch_dtype, DType::kBF16);
  EXPECT_EQ(c->bos_token_id, 1);
  EXPECT_EQ(c->eos_token_id, 2);
}

TEST(ModelConfigTest, ParameterCountMatchesThePublishedMixtral8x7BSize) {
  auto c = ParseModelConfig(kMixtral8x7B);
  ASSERT_TRUE(c.ok()) << c.status();
  // Mistral's published total for Mixtral-8x7B ("46.7B"), counted from the HF checkpoint.
  EXPECT_EQ(c->ParameterCount(), int64_t{46702792704});
}

TEST(ModelConfigTest, TiedEmbeddingsCountTheMatrixOnce) {
  Json j = Base();
  auto untied = Parse(j);
  j["tie_word_embeddings"] = true;
  auto tied = Parse(j);
  ASSERT_TRUE(untied.ok() && tied.ok());
  EXPECT_EQ(untied->ParameterCount() - tied->ParameterCount(), int64_t{32000} * 4096);
}

TEST(ModelConfigTest, ExplicitHeadDimOverridesHiddenOverHeads) {
  Json j = Base();
  j["head_dim"] = 64;  // 32 heads x 64 = 2048 != hidden 4096: allowed when explicit
  auto c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 64);
  j["head_dim"] = nullptr;  // null means "derive it"
  c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 128);
}

TEST(ModelConfigTest, AcceptsFloat32AndFloat16AndEosList) {
  Json j = Base();
  j["torch_dtype"] = "float16";
  j["eos_token_id"] = {7, 2};
  auto c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->torch_dtype, DType::kF16);
  EXPECT_EQ(c->eos_token_id, 7);
  j["torch_dtype"] = "float32";
  c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->torch_dtype, DType::kF32);
}

const std::vector<std::string> kRequired = {
    "hidden_size",         "intermediate_size", "num_hidden_layers",       "num_attention_heads",
    "num_key_value_heads", "num_local_experts", "num_experts_per_tok",     "rms_norm_eps",
    "rope_theta",          "vocab_size",        "max_position_embeddings", "tie_word_embeddings",
    "torch_dtype"};

TEST(ModelConfigTest, EachMissingKeyIsNamed) {
  for (const std::string& key : kRequired) {
    Json j = Base();
    j.erase(key);
    auto c = Parse(j);
    ASSERT_FALSE(c.ok()) << key;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(c.status().message(), HasSubstr("'" + key + "'"));
    EXPECT_THAT(c.status().message(), HasSubstr("missing"));
  }
}

TEST(ModelConfigTest, WrongJsonTypesAreNamed) {
  struct Case {
    std::string key;
    Json value;
  };
  const std::vector<Case> cases = {
      {"hidden_size", "4096"},       {"hidden_size", 4096.5},
      {"num_hidden_layers", true},   {"vocab_size", Json::array({32000})},
      {"rms_norm_eps", "1e-5"},      {"rope_theta", nullptr},
      {"tie_word_embeddings", "no"}, {"tie_word_embeddings", 0},
      {"torch_dtype", 16},           {"head_dim", "128"},
      {"bos_token_id", "1"},         {"architectures", "MixtralForCausalLM"},
  };
  for (const Case& c : cases) {
    Json j = Base();
    j[c.key] = c.value;
    auto r = Parse(j);
    ASSERT_FALSE(r.ok()) << c.key << "=" << c.value.dump();
    EXPECT_THAT(r.status().message(), HasSubstr("'" + c.key + "'")) << c.value.dump();
  }
}

TEST(ModelConfigTest, NonPositiveSizesAreRejected) {
  for (const char* key :
       {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
        "num_key_value_heads", "num_local_experts", "num_experts_per_tok", "vocab_size",
        "max_position_embeddings", "head_dim"}) {
    for (int64_t v : {int64_t{0}, int64_t{-4}, int64_t{1} << 40}) {
      Json j = Base();
      j[key] = v;
      auto r = Parse(j);
      ASSERT_FALSE(r.ok()) << key << "=" << v;
      EXPECT_THAT(r.status().message(), HasSubstr("'" + std::string(key) + "'"));
    }
  }
  for (const char* key : {"rms_norm_eps", "rope_theta"}) {
    Json j = Base();
    j[key] = 0.0;
    EXPECT_FALSE(Parse(j).ok()) << key;
    j[key] = -1.0;
    EXPECT_FALSE(Parse(j).ok()) << key;
  }
}

TEST(ModelConfigTest, CrossFieldRulesAreEnforced) {
  Json j = Base();
  j["num_key_value_heads"] = 6;  // 32 % 6 != 0
  auto r = Parse(j);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("num_key_value_heads"));

  j = Base();
  j["num_experts_per_tok"] = 9;  // > 8 experts
  r = Parse(j);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("num_experts_per_tok"));

  j = Base();
  j["num_attention_heads"] = 24;  // 4096 / 24 is not an integer, no head_dim given
  j["num_key_value_heads"] = 8;
  r = Parse(j);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("hidden_size"));
  j["head_dim"] = 128;  // explicit head_dim makes it legal
  EXPECT_TRUE(Parse(j).ok());

  j = Base();
  j["eos_token_id"] = 32000;  // outside the vocabulary
  r = Parse(j);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("eos_token_id"));
}

TEST(ModelConfigTest, UnknownDtypeAndArchitectureAreRejected) {
  Json j = Base();
  j["torch_dtype"] = "float8_e4m3fn";
  auto r = Parse(j);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("torch_dtype"));
  EXPECT_THAT(r.status().message(), HasSubstr("float8_e4m3fn"));

  j = Base();
  j["architectures"] = {"LlamaForCausalLM"};
  r = Parse(j);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("architectures"));
}

TEST(ModelConfigTest, MalformedJsonIsAnErrorNotACrash) {
  for (const std::string& text :
       {std::string("{\"hidden_size\": 4096,"), std::string(""), std::string("[1, 2, 3]"),
        std::string("\"just a string\""), std::string(kMixtral8x7B).substr(0, 200),
        std::string("{\"a\": \xff}")}) {
    auto r = ParseModelConfig(text);
    EXPECT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(ModelConfigTest, JsonRoundTripPreservesEveryField) {
  ModelConfig c;
  c.hidden_size = 96;
  c.intermediate_size = 200;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 6;
  c.num_key_value_heads = 3;
  c.head_dim = 24;  // != 96 / 6, so it must be written explicitly
  c.num_local_experts = 5;
  c.num_experts_per_tok = 3;
  c.rms_norm_eps = 1e-6f;
  c.rope_theta = 500000.0f;
  c.vocab_size = 1000;
  c.max_position_embeddings = 2048;
  c.tie_word_embeddings = true;
  c.torch_dtype = DType::kF16;
  c.bos_token_id = 5;
  c.eos_token_id = 6;
  const std::string text = ModelConfigToJson(c);
  auto r = ParseModelConfig(text);
  ASSERT_TRUE(r.ok()) << r.status() << "\n" << text;
  EXPECT_EQ(r->hidden_size, c.hidden_size);
  EXPECT_EQ(r->intermediate_size, c.intermediate_size);
  EXPECT_EQ(r->num_hidden_layers, c.num_hidden_layers);
  EXPECT_EQ(r->num_attention_heads, c.num_attention_heads);
  EXPECT_EQ(r->num_key_value_heads, c.num_key_value_heads);
  EXPECT_EQ(r->head_dim, c.head_dim);
  EXPECT_EQ(r->num_local_experts, c.num_local_experts);
  EXPECT_EQ(r->num_experts_per_tok, c.num_experts_per_tok);
  EXPECT_EQ(r->rms_norm_eps, c.rms_norm_eps);
  EXPECT_EQ(r->rope_theta, c.rope_theta);
  EXPECT_EQ(r->vocab_size, c.vocab_size);
  EXPECT_EQ(r->max_position_embeddings, c.max_position_embeddings);
  EXPECT_EQ(r->tie_word_embeddings, c.tie_word_embeddings);
  EXPECT_EQ(r->torch_dtype, c.torch_dtype);
  EXPECT_EQ(r->bos_token_id, c.bos_token_id);
  EXPECT_EQ(r->eos_token_id, c.eos_token_id);
  EXPECT_EQ(r->ParameterCount(), c.ParameterCount());

  // What Hugging Face tooling looks for, with floats spelled as people write them.
  const Json j = Json::parse(text);
  EXPECT_EQ(j["architectures"], Json::array({"MixtralForCausalLM"}));
  EXPECT_EQ(j["model_type"], "mixtral");
  EXPECT_EQ(j["torch_dtype"], "float16");
  EXPECT_THAT(text, HasSubstr("\"rms_norm_eps\": 1e-06"));
  EXPECT_THAT(text, HasSubstr("\"rope_theta\": 500000.0"));
}

class LoadModelConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = "/tmp/cleave-config-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Write(const std::string& text) {
    const std::string path = dir_ + "/config.json";
    std::ofstream(path) << text;
    return path;
  }
  std::string dir_;
};

TEST_F(LoadModelConfigTest, LoadsAFile) {
  auto c = LoadModelConfig(Write(kMixtral8x7B));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_local_experts, 8);
}

TEST_F(LoadModelConfigTest, ErrorsNameTheFileAndKey) {
  Json j = Base();
  j["num_key_value_heads"] = -8;
  const std::string path = Write(j.dump());
  auto c = LoadModelConfig(path);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr(path));
  EXPECT_THAT(c.status().message(), HasSubstr("num_key_value_heads"));

  const std::string missing = dir_ + "/nope/config.json";
  c = LoadModelConfig(missing);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(c.status().message(), HasSubstr(missing));
}

}  // namespace
}  // namespace cleave
