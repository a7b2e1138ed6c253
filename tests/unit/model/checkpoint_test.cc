#include "engine/model/checkpoint.h"

#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/model/checkpoint_writer.h"
#include "engine/model/presets.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace cleave {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using Json = nlohmann::json;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

ModelConfig Tiny(DType dtype = DType::kBF16) {
  auto c = PresetConfig("tiny");
  EXPECT_TRUE(c.ok());
  c->torch_dtype = dtype;
  return *c;
}

struct Stats {
  double mean = 0, stddev = 0;
};
Stats StatsOf(const std::vector<float>& v) {
  double sum = 0, sq = 0;
  for (float x : v) sum += x;
  const double mean = sum / v.size();
  for (float x : v) sq += (x - mean) * (x - mean);
  return {mean, std::sqrt(sq / v.size())};
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = "/tmp/cleave-checkpoint-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { fs::remove_all(root_); }

  // Writes a checkpoint into a fresh subdirectory and returns its path.
  std::string Write(const ModelConfig& c, uint64_t seed, int64_t max_shard = int64_t{4} << 30) {
    const std::string dir = root_ + "/ckpt" + std::to_string(counter_++);
    absl::Status st = WriteRandomCheckpoint(c, dir, seed, max_shard);
    EXPECT_TRUE(st.ok()) << st;
    return dir;
  }

  std::vector<float> Read(const Checkpoint& ckpt, const std::string& name) {
    auto v = ckpt.Get(name);
    EXPECT_TRUE(v.ok()) << v.status();
    std::vector<float> out(v.ok() ? v->numel() : 0);
    absl::Status st = ckpt.ReadF32(name, out);
    EXPECT_TRUE(st.ok()) << st;
    return out;
  }

  // Rewrites dir/model.safetensors through `edit`, which may drop or replace tensors.
  void RewriteWeights(const std::string& dir,
                      const std::function<void(std::vector<TensorView>&)>& edit) {
    const std::string path = dir + "/model.safetensors";
    auto f = SafetensorsFile::Open(path);
    ASSERT_TRUE(f.ok()) << f.status();
    std::vector<TensorView> views;
    for (const std::string& n : (*f)->names()) views.push_back(*(*f)->Find(n));
    edit(views);
    ASSERT_TRUE(WriteSafetensors(path + ".new", views).ok());
    f->reset();
    fs::rename(path + ".new", path);
  }

  std::string root_;
  int counter_ = 0;
};

TEST_F(CheckpointTest, TinyPresetWritesAndOpensAsOneFile) {
  const ModelConfig c = Tiny();
  const std::string dir = Write(c, 7);
  EXPECT_TRUE(fs::exists(dir + "/config.json"));
  EXPECT_TRUE(fs::exists(dir + "/model.safetensors"));
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors.index.json"));
  for (const auto& e : fs::directory_iterator(dir)) {
    EXPECT_NE(e.path().extension(), ".partial") << "left a temporary file: " << e.path();
  }
  EXPECT_EQ(ReadAll(dir + "/cleave_tokenizer.json"),
            "{\"type\": \"byte\", \"offset\": 3, \"pad_id\": 0, \"bos_id\": 1, \"eos_id\": 2}\n");
  const Json config = Json::parse(ReadAll(dir + "/config.json"));
  EXPECT_EQ(config["architectures"], Json::array({"MixtralForCausalLM"}));
  EXPECT_EQ(config["model_type"], "mixtral");
  EXPECT_EQ(config["torch_dtype"], "bfloat16");

  auto ckpt = Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->num_files(), 1);
  EXPECT_EQ((*ckpt)->config().ParameterCount(), c.ParameterCount());
  EXPECT_EQ((*ckpt)->config().num_local_experts, 8);
  // embed + per layer (2 norms, q, k, v, o, router, 3 per expert) + final norm + lm_head.
  const size_t expected_tensors = 1 + 4 * (7 + 3 * 8) + 1 + 1;
  EXPECT_EQ((*ckpt)->TensorNames().size(), expected_tensors);
  int64_t params = 0;
  for (const std::string& n : (*ckpt)->TensorNames()) {
    auto v = (*ckpt)->Get(n);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v->dtype, DType::kBF16) << n;
    params += v->numel();
  }
  EXPECT_EQ(params, c.ParameterCount());
  // Spot-check names and shapes against the Hugging Face spelling, written out here.
  auto q = (*ckpt)->Get("model.layers.3.self_attn.q_proj.weight");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->shape, (std::vector<int64_t>{128, 128}));
  auto k = (*ckpt)->Get("model.layers.0.self_attn.k_proj.weight");
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->shape, (std::vector<int64_t>{64, 128}));
  auto w2 = (*ckpt)->Get("model.layers.2.block_sparse_moe.experts.7.w2.weight");
  ASSERT_TRUE(w2.ok());
  EXPECT_EQ(w2->shape, (std::vector<int64_t>{128, 256}));
  EXPECT_EQ(mixtral_names::ExpertW3(1, 4), "model.layers.1.block_sparse_moe.experts.4.w3.weight");
  EXPECT_EQ(mixtral_names::RouterGate(0), "model.layers.0.block_sparse_moe.gate.weight");
}

TEST_F(CheckpointTest, ShardedCheckpointHoldsTheSameWeights) {
  const ModelConfig c = Tiny();
  const std::string single = Write(c, 11);
  const int64_t max_shard = 1 << 20;  // tiny is ~7 MB in bf16: several shards
  const std::string sharded = Write(c, 11, max_shard);
  EXPECT_FALSE(fs::exists(sharded + "/model.safetensors"));
  const Json index = Json::parse(ReadAll(sharded + "/model.safetensors.index.json"));
  std::set<std::string> shard_files;
  for (const auto& [tensor, file] : index["weight_map"].items()) shard_files.insert(file);
  ASSERT_GT(shard_files.size(), 2u);
  char last[64];
  std::snprintf(last, sizeof(last), "model-%05zu-of-%05zu.safetensors", shard_files.size(),
                shard_files.size());
  EXPECT_TRUE(shard_files.count(last)) << last;
  EXPECT_EQ(index["metadata"]["total_size"].get<int64_t>(), 2 * c.ParameterCount());
  for (const std::string& f : shard_files) {
    // Shards respect the limit (no tiny tensor exceeds it), header aside.
    auto sf = SafetensorsFile::Open(sharded + "/" + f);
    ASSERT_TRUE(sf.ok()) << sf.status();
    size_t data = 0;
    for (const std::string& n : (*sf)->names()) data += (*sf)->Find(n)->nbytes;
    EXPECT_LE(data, static_cast<size_t>(max_shard)) << f;
  }

  auto a = Checkpoint::Open(single);
  auto b = Checkpoint::Open(sharded);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)->num_files(), static_cast<int>(shard_files.size()));
  ASSERT_EQ((*a)->TensorNames(), (*b)->TensorNames());
  for (const std::string& n : (*a)->TensorNames()) {
    EXPECT_EQ(Read(**a, n), Read(**b, n)) << n;
  }
}

TEST_F(CheckpointTest, SameSeedSameBytesDifferentSeedDifferentBytes) {
  const ModelConfig c = Tiny();
  const std::string a = ReadAll(Write(c, 42) + "/model.safetensors");
  const std::string b = ReadAll(Write(c, 42) + "/model.safetensors");
  const std::string other = ReadAll(Write(c, 43) + "/model.safetensors");
  ASSERT_GT(a.size(), 1000000u);
  EXPECT_TRUE(a == b);
  ASSERT_EQ(a.size(), other.size());
  EXPECT_FALSE(a == other);
  // Not just a few bytes: nearly every weight changes with the seed.
  size_t same = 0;
  for (size_t i = a.size() / 2; i < a.size(); i += 2) same += a.compare(i, 2, other, i, 2) == 0;
  EXPECT_LT(same, a.size() / 2 / 2 / 50);
}

TEST_F(CheckpointTest, WeightsHaveTheDocumentedScales) {
  const ModelConfig c = Tiny(DType::kF32);
  auto ckpt = Checkpoint::Open(Write(c, 3));
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  struct Case {
    std::string name;
    double mean, stddev;
  };
  const std::vector<Case> cases = {
      {"model.embed_tokens.weight", 0.0, 1.0},
      {"model.layers.1.self_attn.q_proj.weight", 0.0, 1.0 / std::sqrt(128.0)},
      {"model.layers.1.self_attn.o_proj.weight", 0.0, 1.0 / std::sqrt(128.0)},
      {"model.layers.0.block_sparse_moe.experts.3.w2.weight", 0.0, 1.0 / std::sqrt(256.0)},
      {"model.layers.2.block_sparse_moe.experts.5.w1.weight", 0.0, 1.0 / std::sqrt(128.0)},
      {"model.layers.2.block_sparse_moe.gate.weight", 0.0, 1.0 / std::sqrt(128.0)},
      {"lm_head.weight", 0.0, 1.0 / std::sqrt(128.0)},
  };
  for (const Case& cs : cases) {
    const std::vector<float> v = Read(**ckpt, cs.name);
    const Stats s = StatsOf(v);
    // Five standard errors of the sample mean and sample deviation.
    const double n = static_cast<double>(v.size());
    EXPECT_NEAR(s.mean, cs.mean, 5 * cs.stddev / std::sqrt(n)) << cs.name;
    EXPECT_NEAR(s.stddev, cs.stddev, 5 * cs.stddev / std::sqrt(2 * n)) << cs.name;
  }
  // Norm weights: 1 + N(0, 0.1^2); gathered over every norm for a usable sample.
  std::vector<float> norms;
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    for (const std::string& n :
         {mixtral_names::InputLayernorm(l), mixtral_names::PostAttentionLayernorm(l)}) {
      const std::vector<float> v = Read(**ckpt, n);
      norms.insert(norms.end(), v.begin(), v.end());
    }
  }
  const Stats s = StatsOf(norms);
  EXPECT_NEAR(s.mean, 1.0, 0.02);
  EXPECT_NEAR(s.stddev, 0.1, 0.01);
  // Distinct tensors get distinct streams.
  EXPECT_NE(Read(**ckpt, mixtral_names::ExpertW1(0, 0)),
            Read(**ckpt, mixtral_names::ExpertW3(0, 0)));
}

// Tiny with a 3000-token vocabulary: its embedding (384000 values) spans several
// generator blocks and several write batches.
ModelConfig Wide(DType dtype) {
  ModelConfig c = Tiny(dtype);
  c.vocab_size = 3000;
  c.num_hidden_layers = 1;
  c.num_local_experts = 2;
  return c;
}

TEST_F(CheckpointTest, StoredValuesAreTheGeneratorRoundedToTheDtype) {
  const std::string name = mixtral_names::EmbedTokens();
  std::vector<float> expected(3000 * 128);
  RandomNormalFill(5, name, 0.0f, 1.0f, expected);
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kF16}) {
    auto ckpt = Checkpoint::Open(Write(Wide(dtype), 5));
    ASSERT_TRUE(ckpt.ok()) << ckpt.status();
    const std::vector<float> got = Read(**ckpt, name);
    ASSERT_EQ(got.size(), expected.size());
    size_t mismatches = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      float want = expected[i];
      if (dtype == DType::kBF16) want = Bf16ToF32(F32ToBf16(want));
      if (dtype == DType::kF16) want = F16ToF32(F32ToF16(want));
      mismatches += got[i] != want;
    }
    EXPECT_EQ(mismatches, 0u) << DTypeName(dtype);
    // Block boundaries must not repeat a stream: the first values of consecutive
    // 64Ki blocks differ from each other.
    EXPECT_NE(got[0], got[65536]);
    EXPECT_NE(got[65536], got[131072]);
  }
}

TEST_F(CheckpointTest, BytesDoNotDependOnTheThreadCount) {
  const ModelConfig c = Wide(DType::kBF16);
  std::string files[3];
  const int thread_counts[3] = {1, 3, 16};
  for (int k = 0; k < 3; ++k) {
    const std::string dir = root_ + "/threads" + std::to_string(thread_counts[k]);
    ASSERT_TRUE(WriteRandomCheckpoint(c, dir, 8, int64_t{1} << 30, thread_counts[k]).ok());
    files[k] = ReadAll(dir + "/model.safetensors");
  }
  ASSERT_GT(files[0].size(), 1000000u);
  EXPECT_TRUE(files[0] == files[1]);
  EXPECT_TRUE(files[0] == files[2]);
}

// Random routers must spread tokens over experts, or MoE tests exercise one expert.
TEST_F(CheckpointTest, RouterSpreadsTokensOverAllExperts) {
  const ModelConfig c = Tiny();
  auto ckpt = Checkpoint::Open(Write(c, 9));
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  const std::vector<float> embed = Read(**ckpt, mixtral_names::EmbedTokens());
  const int h = c.hidden_size, e = c.num_local_experts;
  for (int layer = 0; layer < c.num_hidden_layers; ++layer) {
    const std::vector<float> gate = Read(**ckpt, mixtral_names::RouterGate(layer));
    std::vector<int> top1(e, 0);
    for (int tok = 0; tok < c.vocab_size; ++tok) {
      int best = 0;
      float best_logit = -1e30f;
      for (int x = 0; x < e; ++x) {
        float logit = 0;
        for (int i = 0; i < h; ++i) logit += gate[x * h + i] * embed[tok * h + i];
        if (logit > best_logit) best_logit = logit, best = x;
      }
      ++top1[best];
    }
    for (int x = 0; x < e; ++x) {
      EXPECT_GT(top1[x], c.vocab_size / e / 4) << "layer " << layer << " expert " << x;
    }
  }
}

TEST_F(CheckpointTest, MissingTensorIsNamed) {
  const std::string dir = Write(Tiny(), 1);
  const std::string victim = mixtral_names::ExpertW3(2, 5);
  RewriteWeights(dir, [&](std::vector<TensorView>& views) {
    std::erase_if(views, [&](const TensorView& v) { return v.name == victim; });
  });
  auto ckpt = Checkpoint::Open(dir);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_THAT(ckpt.status().message(), HasSubstr("missing tensor '" + victim + "'"));
}

TEST_F(CheckpointTest, WrongShapeAndDtypeAreNamed) {
  const std::string dir = Write(Tiny(), 1);
  const std::string victim = mixtral_names::KProj(3);
  RewriteWeights(dir, [&](std::vector<TensorView>& views) {
    for (TensorView& v : views) {
      if (v.name == victim) v.shape = {128, 64};  // transposed: same bytes, wrong layout
    }
  });
  auto ckpt = Checkpoint::Open(dir);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_THAT(ckpt.status().message(), HasSubstr(victim));
  EXPECT_THAT(ckpt.status().message(), HasSubstr("[128, 64]"));
  EXPECT_THAT(ckpt.status().message(), HasSubstr("[64, 128]"));

  const std::string dir2 = Write(Tiny(), 1);
  const std::string norm = mixtral_names::FinalNorm();
  std::vector<int32_t> ints(128, 1);
  RewriteWeights(dir2, [&](std::vector<TensorView>& views) {
    for (TensorView& v : views) {
      if (v.name == norm) v = {norm, DType::kI32, {128}, ints.data(), ints.size() * 4};
    }
  });
  ckpt = Checkpoint::Open(dir2);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_THAT(ckpt.status().message(), HasSubstr(norm));
  EXPECT_THAT(ckpt.status().message(), HasSubstr("I32"));
}

TEST_F(CheckpointTest, TiedEmbeddingsNeedNoLmHead) {
  ModelConfig c = Tiny();
  c.tie_word_embeddings = true;
  const std::string dir = Write(c, 2);
  auto ckpt = Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_FALSE((*ckpt)->Get("lm_head.weight").ok());
  EXPECT_TRUE((*ckpt)->config().tie_word_embeddings);
}

TEST_F(CheckpointTest, BadIndexFilesAreRejected) {
  const std::string dir = Write(Tiny(), 4, 1 << 20);
  const std::string index_path = dir + "/model.safetensors.index.json";
  const Json good = Json::parse(ReadAll(index_path));
  auto open_with = [&](const Json& index) {
    std::ofstream(index_path) << index.dump();
    return Checkpoint::Open(dir);
  };
  const std::string embed = mixtral_names::EmbedTokens();
  for (const char* evil :
       {"../model-00001-of-00009.safetensors", "/etc/passwd", "sub/x.safetensors", "..", ""}) {
    Json j = good;
    j["weight_map"][embed] = evil;
    auto r = open_with(j);
    ASSERT_FALSE(r.ok()) << evil;
    EXPECT_THAT(r.status().message(), HasSubstr("not a plain file name")) << evil;
    EXPECT_THAT(r.status().message(), HasSubstr(embed));
  }
  // A shard named in the index that lacks the tensor.
  Json j = good;
  const std::string norm_shard = j["weight_map"][mixtral_names::FinalNorm()];
  std::string other;
  for (const auto& [t, f] : j["weight_map"].items()) {
    if (f != norm_shard) other = f;
  }
  j["weight_map"][mixtral_names::FinalNorm()] = other;
  auto r = open_with(j);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr(mixtral_names::FinalNorm()));
  // A shard file that does not exist.
  j = good;
  j["weight_map"][embed] = "model-gone.safetensors";
  r = open_with(j);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("model-gone.safetensors"));
  // A tensor dropped from the index is reported missing.
  j = good;
  j["weight_map"].erase(mixtral_names::OProj(1));
  r = open_with(j);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr(mixtral_names::OProj(1)));
  // Malformed index JSON.
  std::ofstream(index_path) << "{\"weight_map\": {";
  r = Checkpoint::Open(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("model.safetensors.index.json"));
  // And the intact index still opens.
  EXPECT_TRUE(open_with(good).ok());
}

TEST_F(CheckpointTest, MissingFilesAreReportedByPath) {
  const std::string dir = Write(Tiny(), 1);
  fs::remove(dir + "/model.safetensors");
  auto r = Checkpoint::Open(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("model.safetensors"));
  fs::remove(dir + "/config.json");
  r = Checkpoint::Open(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr(dir + "/config.json"));
  r = Checkpoint::Open(root_ + "/nonexistent");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CheckpointTest, ReadF32ChecksNameAndSize) {
  auto ckpt = Checkpoint::Open(Write(Tiny(), 1));
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  std::vector<float> small(10);
  absl::Status st = (*ckpt)->ReadF32(mixtral_names::FinalNorm(), small);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  st = (*ckpt)->ReadF32("model.layers.99.input_layernorm.weight", small);
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(st.message(), HasSubstr("layers.99"));
}

TEST_F(CheckpointTest, WriterRefusesBadRequestsAndExistingCheckpoints) {
  const std::string dir = Write(Tiny(), 1);
  const std::string before = ReadAll(dir + "/model.safetensors");
  absl::Status st = WriteRandomCheckpoint(Tiny(), dir, 2);
  EXPECT_EQ(st.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(ReadAll(dir + "/model.safetensors") == before);

  ModelConfig bad = Tiny();
  bad.num_key_value_heads = 3;  // 4 heads % 3
  st = WriteRandomCheckpoint(bad, root_ + "/bad", 1);
  EXPECT_THAT(st.message(), HasSubstr("num_key_value_heads"));
  ModelConfig small_vocab = Tiny();
  small_vocab.vocab_size = 200;  // the byte tokenizer needs 259 ids
  EXPECT_FALSE(WriteRandomCheckpoint(small_vocab, root_ + "/bad2", 1).ok());
  EXPECT_FALSE(WriteRandomCheckpoint(Tiny(), root_ + "/bad3", 1, 0).ok());
  EXPECT_FALSE(fs::exists(root_ + "/bad/config.json"));
}

TEST_F(CheckpointTest, FailedWriteLeavesNoCheckpointBehind) {
  const std::string dir = root_ + "/interrupted";
  // Block the final config.json write: the weights are already on disk under temp names.
  fs::create_directories(dir + "/config.json.partial");
  absl::Status st = WriteRandomCheckpoint(Tiny(), dir, 1);
  ASSERT_FALSE(st.ok());
  EXPECT_FALSE(fs::exists(dir + "/config.json"));
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors"));
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors.partial"));
  EXPECT_FALSE(Checkpoint::Open(dir).ok());
  // Once the obstacle is gone the same directory can be written.
  fs::remove(dir + "/config.json.partial");
  ASSERT_TRUE(WriteRandomCheckpoint(Tiny(), dir, 1).ok());
  EXPECT_TRUE(Checkpoint::Open(dir).ok());
}

}  // namespace
}  // namespace cleave
