// cleave's Mixtral forward against the independent PyTorch implementation in
// tests/reference/mixtral_ref.py, run as a real python3 process on the same
// safetensors files: per-position logits, each prompt alone and in one batch of
// prompts of different lengths, for fp32, bf16 and fp16 checkpoints.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "engine/model/checkpoint.h"
#include "engine/model/mixtral.h"
#include "gtest/gtest.h"
#include "tests/support/test_model.h"

namespace cleave {
namespace {

constexpr double kRelTol = 1e-4;

std::vector<std::vector<float>> RunReference(const std::string& model_dir,
                                             const std::vector<std::vector<int>>& prompts) {
  const std::string dir = cleave::testing::MakeTempDir("ref");
  {
    std::ofstream f(dir + "/prompts.json");
    f << "{\"prompts\": [";
    for (size_t i = 0; i < prompts.size(); ++i) {
      f << (i ? ", [" : "[");
      for (size_t j = 0; j < prompts[i].size(); ++j) f << (j ? ", " : "") << prompts[i][j];
      f << "]";
    }
    f << "]}";
  }
  const char* src = std::getenv("CLEAVE_SOURCE_DIR");
  const std::string cmd = std::string("python3 ") + (src ? src : ".") +
                          "/tests/reference/mixtral_ref.py --model " + model_dir +
                          " --prompts " + dir + "/prompts.json --out " + dir + "/logits.bin";
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << cmd;
  std::vector<std::vector<float>> out;
  std::ifstream in(dir + "/logits.bin", std::ios::binary);
  int32_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 4);
  for (int i = 0; i < n && in; ++i) {
    int32_t len = 0, vocab = 0;
    in.read(reinterpret_cast<char*>(&len), 4);
    in.read(reinterpret_cast<char*>(&vocab), 4);
    std::vector<float> rows(static_cast<size_t>(len) * vocab);
    in.read(reinterpret_cast<char*>(rows.data()), rows.size() * 4);
    out.push_back(std::move(rows));
  }
  EXPECT_EQ(out.size(), prompts.size());
  return out;
}

// Worst over positions of max|ours - ref| / max|ref| within the position's row.
double WorstRelative(const std::vector<float>& ours, const std::vector<float>& ref, int vocab) {
  EXPECT_EQ(ours.size(), ref.size());
  double worst = 0;
  for (size_t r = 0; r * vocab < std::min(ours.size(), ref.size()); ++r) {
    double max_ref = 1e-30, max_diff = 0;
    for (int v = 0; v < vocab; ++v) {
      max_ref = std::max(max_ref, std::fabs(double(ref[r * vocab + v])));
      max_diff = std::max(max_diff, std::fabs(double(ours[r * vocab + v]) - ref[r * vocab + v]));
    }
    worst = std::max(worst, max_diff / max_ref);
  }
  return worst;
}

class ReferenceTest : public ::testing::TestWithParam<DType> {};

TEST_P(ReferenceTest, LogitsMatchPyTorchAloneAndBatched) {
  const std::string dir = cleave::testing::TinyCheckpoint(GetParam(), 3);
  auto ckpt = Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  auto model = MixtralModel::Load(**ckpt, cleave::testing::CpuBackend());
  ASSERT_TRUE(model.ok()) << model.status();
  const int vocab = (*model)->config().vocab_size;

  std::mt19937 rng(11);
  std::uniform_int_distribution<int> tok(0, vocab - 1);
  std::vector<std::vector<int>> prompts;
  for (int len : {1, 6, 17, 40}) {
    std::vector<int> p(len);
    for (int& t : p) t = tok(rng);
    prompts.push_back(p);
  }
  const auto ref = RunReference(dir, prompts);
  ASSERT_EQ(ref.size(), prompts.size());

  const int block_size = 16, blocks_per_seq = 4;
  auto kv = KvStorage::Create(cleave::testing::CpuBackend(),
                              (*model)->KvShape(blocks_per_seq * prompts.size(), block_size));
  ASSERT_TRUE(kv.ok());
  std::vector<std::vector<int>> tables(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    // Blocks interleaved across sequences so paging is exercised.
    for (int b = 0; b < blocks_per_seq; ++b) tables[i].push_back(b * prompts.size() + i);
  }
  // Each prompt alone.
  for (size_t i = 0; i < prompts.size(); ++i) {
    ForwardBatch batch;
    batch.seqs.push_back({.tokens = prompts[i], .start_pos = 0, .block_table = tables[i],
                          .all_logits = true});
    std::vector<float> logits;
    ASSERT_TRUE((*model)->Forward(batch, *kv, &logits).ok());
    EXPECT_LE(WorstRelative(logits, ref[i], vocab), kRelTol) << "prompt " << i << " alone";
  }
  // All prompts in one batch.
  ForwardBatch batch;
  for (size_t i = 0; i < prompts.size(); ++i) {
    batch.seqs.push_back({.tokens = prompts[i], .start_pos = 0, .block_table = tables[i],
                          .all_logits = true});
  }
  std::vector<float> logits;
  ASSERT_TRUE((*model)->Forward(batch, *kv, &logits).ok());
  size_t offset = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::vector<float> mine(logits.begin() + offset, logits.begin() + offset + ref[i].size());
    offset += ref[i].size();
    EXPECT_LE(WorstRelative(mine, ref[i], vocab), kRelTol) << "prompt " << i << " in batch";
  }
  // Decode continuation: the last prompt, one token at a time after a prefix,
  // reads earlier positions from the cache and must still match.
  const auto& p = prompts.back();
  ForwardBatch prefix;
  prefix.seqs.push_back({.tokens = std::span<const int>(p.data(), 30), .start_pos = 0,
                         .block_table = tables.back(), .want_logits = false});
  ASSERT_TRUE((*model)->Forward(prefix, *kv, &logits).ok());
  for (int pos = 30; pos < static_cast<int>(p.size()); ++pos) {
    ForwardBatch step;
    step.seqs.push_back({.tokens = std::span<const int>(p.data() + pos, 1), .start_pos = pos,
                         .block_table = tables.back()});
    ASSERT_TRUE((*model)->Forward(step, *kv, &logits).ok());
    std::vector<float> want(ref.back().begin() + pos * vocab, ref.back().begin() + (pos + 1) * vocab);
    EXPECT_LE(WorstRelative(logits, want, vocab), kRelTol) << "decode position " << pos;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ReferenceTest,
                         ::testing::Values(DType::kF32, DType::kBF16, DType::kF16),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

}  // namespace
}  // namespace cleave
