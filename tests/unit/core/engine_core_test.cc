// The engine end to end on the tiny checkpoint: batching invariance (alone, in a
// batch, chunked, after preemption), prefix sharing, KV accounting, seeds, bad input.
#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "engine/core/engine_core.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_model.h"

namespace cleave {
namespace {

using ::testing::HasSubstr;
using LogitsByPos = std::map<int, std::vector<float>>;

std::vector<int> RandomPrompt(std::mt19937& rng, int len, int vocab) {
  std::uniform_int_distribution<int> d(3, vocab - 1);
  std::vector<int> ids(len);
  for (int& id : ids) id = d(rng);
  return ids;
}

GenerateRequest Greedy(std::vector<int> prompt, int max_tokens) {
  GenerateRequest r;
  r.prompt_ids = std::move(prompt);
  r.params.temperature = 0.0f;
  r.params.max_tokens = max_tokens;
  r.params.ignore_eos = true;
  return r;
}

// Runs until idle (bounded), recording the logits of `watch` by position.
struct RunResult {
  LogitsByPos logits;
  std::map<SeqId, std::vector<int>> tokens;
  std::map<SeqId, RequestOutput> finals;
};

RunResult RunToEnd(EngineCore& engine, SeqId watch) {
  RunResult r;
  engine.set_logits_observer([&](SeqId id, int pos, std::span<const float> logits) {
    if (id == watch) r.logits[pos].assign(logits.begin(), logits.end());
  });
  for (int step = 0; step < 10000 && engine.HasWork(); ++step) {
    for (RequestOutput& out : engine.Step()) {
      auto& t = r.tokens[out.seq_id];
      t.insert(t.end(), out.token_ids.begin(), out.token_ids.end());
      if (out.finished) r.finals[out.seq_id] = out;
    }
  }
  EXPECT_FALSE(engine.HasWork()) << "engine did not drain";
  engine.set_logits_observer(nullptr);
  return r;
}

// max |a - b| relative to the row's largest magnitude, worst over positions.
double WorstRelativeDiff(const LogitsByPos& a, const LogitsByPos& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0.0;
  for (const auto& [pos, row] : a) {
    auto it = b.find(pos);
    EXPECT_NE(it, b.end()) << "position " << pos << " missing";
    if (it == b.end()) continue;
    double max_ref = 1e-30, max_diff = 0.0;
    for (size_t i = 0; i < row.size(); ++i) {
      max_ref = std::max(max_ref, std::fabs(double(it->second[i])));
      max_diff = std::max(max_diff, std::fabs(double(row[i]) - it->second[i]));
    }
    worst = std::max(worst, max_diff / max_ref);
  }
  return worst;
}

class EngineCoreTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = cleave::testing::TinyCheckpoint(); }
  std::unique_ptr<EngineCore> Engine(EngineConfig config = {}) {
    return cleave::testing::MakeEngine(dir_, config);
  }
  // X alone on a roomy engine: the reference for the invariance tests.
  RunResult Alone(const std::vector<int>& prompt, int max_tokens) {
    EngineConfig config;
    config.enable_prefix_caching = false;
    auto engine = Engine(config);
    auto id = engine->AddRequest(Greedy(prompt, max_tokens));
    EXPECT_TRUE(id.ok());
    return RunToEnd(*engine, *id);
  }
  // X among 16 others of different lengths and sampling settings.
  RunResult InBatch(EngineConfig config, const std::vector<int>& prompt, int max_tokens) {
    auto engine = Engine(config);
    std::mt19937 rng(99);
    const int vocab = engine->model_config().vocab_size;
    for (int i = 0; i < 8; ++i) {
      GenerateRequest r = Greedy(RandomPrompt(rng, 3 + 5 * i, vocab), 4 + i);
      r.params.temperature = i % 2 ? 0.7f : 0.0f;
      r.params.seed = i;
      EXPECT_TRUE(engine->AddRequest(std::move(r)).ok());
    }
    auto id = engine->AddRequest(Greedy(prompt, max_tokens));
    EXPECT_TRUE(id.ok());
    for (int i = 0; i < 8; ++i) {
      EXPECT_TRUE(engine->AddRequest(Greedy(RandomPrompt(rng, 40 - 4 * i, vocab), 12)).ok());
    }
    RunResult r = RunToEnd(*engine, *id);
    total_preemptions_ = engine->scheduler().num_preemptions();
    return r;
  }

  std::string dir_;
  int64_t total_preemptions_ = 0;
  std::map<std::pair<int, uint64_t>, std::vector<int>> results_;
};

TEST_F(EngineCoreTest, LogitsAreTheSameAloneAndInABatchOf16) {
  std::mt19937 rng(1);
  const auto prompt = RandomPrompt(rng, 23, 512);
  RunResult alone = Alone(prompt, 10);
  RunResult batched = InBatch(EngineConfig{}, prompt, 10);
  ASSERT_EQ(alone.logits.size(), 10u);
  EXPECT_LE(WorstRelativeDiff(batched.logits, alone.logits), 1e-5);
}

TEST_F(EngineCoreTest, LogitsAreTheSameWithChunkedPrefill) {
  std::mt19937 rng(2);
  const auto prompt = RandomPrompt(rng, 37, 512);
  RunResult alone = Alone(prompt, 6);
  EngineConfig chunked;
  chunked.scheduler.max_num_batched_tokens = 7;  // a 37-token prompt needs 6 chunks
  RunResult r = InBatch(chunked, prompt, 6);
  EXPECT_LE(WorstRelativeDiff(r.logits, alone.logits), 1e-5);
}

TEST_F(EngineCoreTest, LogitsAreTheSameAfterPreemptionAndRecompute) {
  std::mt19937 rng(3);
  const auto prompt = RandomPrompt(rng, 30, 512);
  RunResult alone = Alone(prompt, 12);
  EngineConfig tight;
  tight.block_size = 4;
  tight.num_kv_blocks = 40;  // 160 tokens for 17 requests that want ~600
  tight.enable_prefix_caching = false;
  RunResult r = InBatch(tight, prompt, 12);
  EXPECT_GT(total_preemptions_, 0) << "the cache was meant to force preemption";
  EXPECT_LE(WorstRelativeDiff(r.logits, alone.logits), 1e-5);
  for (const auto& [id, out] : r.finals) EXPECT_EQ(out.finish_reason, FinishReason::kLength);
}

TEST_F(EngineCoreTest, SecondRequestWithCommonPrefixSharesBlocksAndLogits) {
  std::mt19937 rng(4);
  const auto prefix = RandomPrompt(rng, 40, 512);
  auto with_suffix = [&](int seed) {
    std::mt19937 r(seed);
    auto p = prefix;
    auto s = RandomPrompt(r, 7, 512);
    p.insert(p.end(), s.begin(), s.end());
    return p;
  };
  // A (47 tokens) is prefilled first; while it decodes, B arrives with the same
  // 40-token prefix. Returns how many blocks B's admission took, and B's run.
  auto run = [&](bool sharing, int* new_blocks) {
    EngineConfig config;
    config.block_size = 8;
    config.enable_prefix_caching = sharing;
    auto engine = Engine(config);
    const auto& kv = engine->kv_manager();
    EXPECT_TRUE(engine->AddRequest(Greedy(with_suffix(10), 8)).ok());
    engine->Step();  // A: 47 prompt tokens, 6 blocks, 5 of them full
    const int used_before = kv.num_total_blocks() - kv.num_free_blocks();
    auto b = engine->AddRequest(Greedy(with_suffix(11), 4));
    EXPECT_TRUE(b.ok());
    engine->Step();  // B admitted and prefilled; A decodes inside its 6th block
    *new_blocks = kv.num_total_blocks() - kv.num_free_blocks() - used_before;
    RunResult r = RunToEnd(*engine, *b);
    r.tokens = {{0, r.tokens[*b]}};
    r.finals = {{0, r.finals[*b]}};
    EXPECT_EQ(kv.num_free_blocks(), kv.num_total_blocks());
    return r;
  };
  int shared_blocks = 0, unshared_blocks = 0;
  RunResult shared = run(true, &shared_blocks);
  RunResult unshared = run(false, &unshared_blocks);
  EXPECT_EQ(unshared_blocks, 6);  // 47 tokens in blocks of 8
  EXPECT_EQ(shared_blocks, 1);    // the 5 prefix blocks are A's
  EXPECT_EQ(shared.finals[0].cached_prompt_tokens, 40);
  EXPECT_EQ(unshared.finals[0].cached_prompt_tokens, 0);
  EXPECT_LE(WorstRelativeDiff(shared.logits, unshared.logits), 1e-5);
  EXPECT_EQ(shared.tokens[0], unshared.tokens[0]);
}

TEST_F(EngineCoreTest, EveryBlockIsFreeAfterFinishedStoppedAndAbortedRequests) {
  EngineConfig config;
  config.block_size = 4;
  config.num_kv_blocks = 48;
  auto engine = Engine(config);
  const int total = engine->kv_manager().num_total_blocks();
  std::mt19937 rng(5);
  std::vector<SeqId> ids;
  for (int i = 0; i < 30; ++i) {
    GenerateRequest r = Greedy(RandomPrompt(rng, 2 + (i * 7) % 45, 512), 1 + i % 13);
    r.params.ignore_eos = i % 3 != 0;
    r.params.temperature = i % 2 ? 1.0f : 0.0f;
    r.params.seed = i;
    if (i % 4 == 1) r.params.stop = {"a", "e", " "};
    if (i % 5 == 2) {
      for (int t = 3; t < 200; ++t) r.params.stop_token_ids.push_back(t);
    }
    auto id = engine->AddRequest(std::move(r));
    ASSERT_TRUE(id.ok()) << id.status();
    ids.push_back(*id);
  }
  std::map<FinishReason, int> reasons;
  for (int step = 0; step < 5000 && engine->HasWork(); ++step) {
    if (step % 3 == 0) engine->Abort(ids[(step * 7) % ids.size()]);
    for (const RequestOutput& out : engine->Step()) {
      if (out.finished) ++reasons[out.finish_reason];
    }
  }
  ASSERT_FALSE(engine->HasWork());
  EXPECT_EQ(engine->kv_manager().num_free_blocks(), total);
  EXPECT_GT(reasons[FinishReason::kAbort], 0);
  EXPECT_GT(reasons[FinishReason::kLength], 0);
  int total_finished = 0;
  for (const auto& [reason, n] : reasons) total_finished += n;
  EXPECT_EQ(total_finished, 30);
}

TEST_F(EngineCoreTest, SeedReproducesSampledTokensAcrossBatches) {
  std::mt19937 rng(6);
  const auto prompt = RandomPrompt(rng, 9, 512);
  auto sampled = [&](int extra, uint64_t seed) {
    auto engine = Engine();
    for (int i = 0; i < extra; ++i) {
      ASSERT_TRUE(engine->AddRequest(Greedy(RandomPrompt(rng, 5 + i, 512), 6)).ok());
    }
    GenerateRequest r = Greedy(prompt, 20);
    r.params.temperature = 1.0f;
    r.params.seed = seed;
    auto id = engine->AddRequest(std::move(r));
    ASSERT_TRUE(id.ok());
    results_[std::make_pair(extra, seed)] = RunToEnd(*engine, *id).tokens[*id];
  };
  sampled(0, 42);
  sampled(5, 42);
  sampled(0, 43);
  const auto& a = results_[std::make_pair(0, uint64_t{42})];
  const auto& b = results_[std::make_pair(5, uint64_t{42})];
  const auto& c = results_[std::make_pair(0, uint64_t{43})];
  EXPECT_EQ(a.size(), 20u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST_F(EngineCoreTest, BadRequestsAreRejectedNamingTheField) {
  auto engine = Engine();
  GenerateRequest r = Greedy({1, 2, 512}, 4);
  auto st = engine->AddRequest(r);
  EXPECT_EQ(st.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.status().message()), HasSubstr("prompt_ids[2]"));

  r = Greedy({1, 2, 3}, 4);
  r.params.top_p = 1.5f;
  st = engine->AddRequest(r);
  EXPECT_EQ(st.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.status().message()), HasSubstr("top_p"));

  r = Greedy(std::vector<int>(engine->max_model_len(), 5), 4);
  st = engine->AddRequest(r);
  EXPECT_EQ(st.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.status().message()), HasSubstr("prompt"));

  r = Greedy({}, 4);
  r.prompt = "";
  r.add_bos = false;
  st = engine->AddRequest(r);
  EXPECT_EQ(st.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(engine->HasWork());
}

TEST_F(EngineCoreTest, StopStringEndsTheTextBeforeTheStopString) {
  auto engine = Engine();
  // Greedy on a random model: find what it writes, then stop on a piece of it.
  GenerateRequest probe;
  probe.prompt = "hello";
  probe.params.temperature = 0.0f;
  probe.params.max_tokens = 24;
  probe.params.ignore_eos = true;
  ASSERT_TRUE(engine->AddRequest(probe).ok());
  std::string text;
  while (engine->HasWork()) {
    for (auto& out : engine->Step()) text += out.text;
  }
  ASSERT_GE(text.size(), 8u);
  const std::string stop = text.substr(4, 2);
  const size_t at = text.find(stop);
  GenerateRequest r = probe;
  r.params.stop = {stop};
  ASSERT_TRUE(engine->AddRequest(r).ok());
  std::string stopped;
  FinishReason reason = FinishReason::kNone;
  while (engine->HasWork()) {
    for (auto& out : engine->Step()) {
      stopped += out.text;
      if (out.finished) reason = out.finish_reason;
    }
  }
  EXPECT_EQ(reason, FinishReason::kStopSequence);
  EXPECT_EQ(stopped, text.substr(0, at));
}

}  // namespace
}  // namespace cleave
