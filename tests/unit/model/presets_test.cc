#include "engine/model/presets.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cleave {
namespace {

using ::testing::HasSubstr;

// Parameter count written out from the Mixtral architecture, independently of
// ModelConfig::ParameterCount: embeddings, per layer two RMSNorms + Q/K/V/O + router +
// experts x (w1, w2, w3), final norm, untied LM head.
int64_t CountFromArchitecture(int64_t layers, int64_t hidden, int64_t heads, int64_t kv_heads,
                              int64_t head_dim, int64_t experts, int64_t ffn, int64_t vocab,
                              bool tied) {
  const int64_t norms = 2 * hidden;
  const int64_t q = heads * head_dim * hidden;
  const int64_t k = kv_heads * head_dim * hidden;
  const int64_t v = kv_heads * head_dim * hidden;
  const int64_t o = hidden * heads * head_dim;
  const int64_t router = experts * hidden;
  const int64_t expert = ffn * hidden + hidden * ffn + ffn * hidden;
  const int64_t layer = norms + q + k + v + o + router + experts * expert;
  return vocab * hidden + layers * layer + hidden + (tied ? 0 : vocab * hidden);
}

TEST(PresetsTest, SeedPresetIsThe6_58BModelOfTheSeedDocuments) {
  auto c = PresetConfig("seed");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_hidden_layers, 16);
  EXPECT_EQ(c->hidden_size, 1024);
  EXPECT_EQ(c->num_attention_heads, 16);
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_EQ(c->num_key_value_heads, 16);
  EXPECT_EQ(c->num_local_experts, 64);
  EXPECT_EQ(c->intermediate_size, 2048);
  EXPECT_EQ(c->num_experts_per_tok, 2);
  EXPECT_EQ(c->vocab_size, 32000);
  EXPECT_EQ(c->max_position_embeddings, 32768);
  EXPECT_EQ(c->torch_dtype, DType::kBF16);
  EXPECT_FLOAT_EQ(c->rope_theta, 1e6f);
  const int64_t expected = CountFromArchitecture(16, 1024, 16, 16, 64, 64, 2048, 32000, false);
  EXPECT_EQ(c->ParameterCount(), expected);
  EXPECT_GE(c->ParameterCount(), int64_t{6'570'000'000});
  EXPECT_LE(c->ParameterCount(), int64_t{6'590'000'000});
  // bf16: 13.2 GB on disk, as make-model's help says.
  EXPECT_NEAR(2.0 * c->ParameterCount() / 1e9, 13.15, 0.05);
}

TEST(PresetsTest, TinyAndSmallHaveTheDocumentedShapes) {
  auto tiny = PresetConfig("tiny");
  ASSERT_TRUE(tiny.ok()) << tiny.status();
  EXPECT_EQ(tiny->hidden_size, 128);
  EXPECT_EQ(tiny->intermediate_size, 256);
  EXPECT_EQ(tiny->num_hidden_layers, 4);
  EXPECT_EQ(tiny->num_attention_heads, 4);
  EXPECT_EQ(tiny->head_dim, 32);
  EXPECT_EQ(tiny->num_key_value_heads, 2);
  EXPECT_EQ(tiny->num_local_experts, 8);
  EXPECT_EQ(tiny->num_experts_per_tok, 2);
  EXPECT_EQ(tiny->vocab_size, 512);
  EXPECT_EQ(tiny->max_position_embeddings, 4096);
  EXPECT_FLOAT_EQ(tiny->rms_norm_eps, 1e-5f);
  EXPECT_FALSE(tiny->tie_word_embeddings);
  EXPECT_EQ(tiny->ParameterCount(), CountFromArchitecture(4, 128, 4, 2, 32, 8, 256, 512, false));

  auto small = PresetConfig("small");
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ(small->hidden_size, 512);
  EXPECT_EQ(small->intermediate_size, 1024);
  EXPECT_EQ(small->num_hidden_layers, 8);
  EXPECT_EQ(small->num_attention_heads, 8);
  EXPECT_EQ(small->head_dim, 64);
  EXPECT_EQ(small->num_key_value_heads, 4);
  EXPECT_EQ(small->num_local_experts, 16);
  EXPECT_EQ(small->vocab_size, 32000);
  EXPECT_EQ(small->max_position_embeddings, 32768);
  EXPECT_EQ(small->ParameterCount(),
            CountFromArchitecture(8, 512, 8, 4, 64, 16, 1024, 32000, false));
}

TEST(PresetsTest, EveryPresetSurvivesConfigJsonValidation) {
  for (const std::string& name : PresetNames()) {
    auto c = PresetConfig(name);
    ASSERT_TRUE(c.ok()) << name;
    EXPECT_EQ(c->bos_token_id, 1) << name;
    EXPECT_EQ(c->eos_token_id, 2) << name;
    auto reparsed = ParseModelConfig(ModelConfigToJson(*c));
    ASSERT_TRUE(reparsed.ok()) << name << ": " << reparsed.status();
    EXPECT_EQ(reparsed->ParameterCount(), c->ParameterCount()) << name;
  }
}

TEST(PresetsTest, UnknownPresetIsNamedInTheError) {
  auto c = PresetConfig("huge");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(), HasSubstr("huge"));
  EXPECT_THAT(c.status().message(), HasSubstr("tiny"));
}

}  // namespace
}  // namespace cleave
