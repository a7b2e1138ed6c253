// A seeded random workload through the real Scheduler and KvCacheManager: arrivals with shared
// prefixes, random aborts of waiting and running requests, a cache small enough to force
// preemption, and requests that can never fit. Checked every step: the token budget, the
// sequence limit, and exact KV accounting (refcount of a block = the running requests whose
// table holds it; waiting requests hold nothing). At the end every block is free and every
// request that ran to its length produced exactly the tokens it would have produced alone.
#include <map>
#include <random>
#include <tuple>
#include <vector>

#include "engine/sched/scheduler.h"
#include "gtest/gtest.h"
#include "tests/unit/sched/sched_harness.h"

namespace cleave {
namespace {

using testing::ExpectedOutput;
using testing::Harness;
using testing::StepRecord;

struct Params {
  bool prefix_caching;
  bool chunked_prefill;
  uint32_t seed;
};

class SchedulerStressTest : public ::testing::TestWithParam<Params> {};

constexpr int kBlocks = 48;
constexpr int kBlockSize = 4;

void CheckKvAccounting(Harness& h, const std::map<SeqId, std::vector<int>>& live, int step) {
  std::vector<int> refs(kBlocks, 0);
  int running = 0;
  for (const auto& [id, prompt] : live) {
    const Request* r = h.sched().Find(id);
    ASSERT_NE(r, nullptr);
    const std::vector<int>& table = h.kv().BlockTable(id);
    if (r->status == RequestStatus::kWaiting) {
      ASSERT_TRUE(table.empty()) << "waiting seq " << id << " holds blocks, step " << step;
      ASSERT_EQ(r->num_computed_tokens, 0);
      continue;
    }
    ASSERT_EQ(r->status, RequestStatus::kRunning);
    ++running;
    ASSERT_GE(static_cast<int>(table.size()) * kBlockSize, r->num_computed_tokens);
    for (int b : table) ++refs[b];
  }
  ASSERT_EQ(running, h.sched().num_running());
  ASSERT_EQ(h.kv().num_sequences(), running);
  int zero = 0;
  for (int b = 0; b < kBlocks; ++b) {
    ASSERT_EQ(h.kv().pool().ref_count(b), refs[b]) << "block " << b << " step " << step;
    zero += refs[b] == 0;
  }
  ASSERT_EQ(h.kv().num_free_blocks(), zero);
}

TEST_P(SchedulerStressTest, RandomMixKeepsKvExactAndEndsWithEveryBlockFree) {
  const Params p = GetParam();
  SchedulerConfig config;
  config.max_num_batched_tokens = 24;
  config.max_num_seqs = 6;
  config.enable_chunked_prefill = p.chunked_prefill;
  config.max_prefill_chunk = p.chunked_prefill ? 16 : 0;
  Harness h(config, kBlocks, kBlockSize, p.prefix_caching);
  std::mt19937 rng(p.seed);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };

  // A few shared system prompts make prefix hits common.
  std::vector<std::vector<int>> prefixes;
  for (int i = 0; i < 3; ++i) {
    std::vector<int> pre(uniform(4, 20));
    for (int& t : pre) t = uniform(3, 999);
    prefixes.push_back(pre);
  }
  std::map<SeqId, std::vector<int>> live;  // prompt of every request not yet finished
  std::map<FinishReason, int> reasons;
  int added = 0, completed = 0;
  for (int step = 0; step < 3000; ++step) {
    if (added < 300 && uniform(0, 2) == 0) {
      std::vector<int> prompt;
      if (uniform(0, 3) > 0) prompt = prefixes[uniform(0, 2)];
      const int extra = uniform(1, 30);
      for (int i = 0; i < extra; ++i) prompt.push_back(uniform(3, 999));
      // Now and then one that can never fit (more than 48 * 4 tokens).
      if (uniform(0, 60) == 0) prompt.resize(kBlocks * kBlockSize + 5, 7);
      live[h.Add(prompt, uniform(1, 40))] = prompt;
      ++added;
    }
    if (!live.empty() && uniform(0, 14) == 0) {
      auto it = std::next(live.begin(), uniform(0, static_cast<int>(live.size()) - 1));
      h.FinishAndTake(it->first, FinishReason::kAbort);
      ++reasons[FinishReason::kAbort];
      live.erase(it);
    }
    const StepRecord s = h.Step();
    int sum = 0;
    for (const auto& item : s.items) sum += item.num_new;
    ASSERT_EQ(sum, s.num_batched_tokens);
    ASSERT_LE(s.num_batched_tokens, config.max_num_batched_tokens);
    ASSERT_LE(s.num_running_after, config.max_num_seqs);
    if (!live.empty()) {
      ASSERT_FALSE(s.items.empty() && s.rejected.empty()) << "no progress at step " << step;
    }
    for (SeqId id : s.rejected) {
      ++reasons[FinishReason::kAbort];
      live.erase(id);
    }
    for (auto it = live.begin(); it != live.end();) {
      const Request* done = h.Done(it->first);
      if (done == nullptr) {
        ++it;
        continue;
      }
      EXPECT_EQ(done->finish_reason, FinishReason::kLength);
      EXPECT_EQ(done->output_ids, ExpectedOutput(it->second, h.max_tokens(it->first)))
          << "seq " << it->first;
      ++reasons[done->finish_reason];
      ++completed;
      it = live.erase(it);
    }
    CheckKvAccounting(h, live, step);
    if (HasFatalFailure()) return;
    if (added >= 300 && live.empty()) break;
  }
  EXPECT_TRUE(live.empty()) << live.size() << " requests never finished";
  EXPECT_FALSE(h.sched().HasWork());
  EXPECT_EQ(h.kv().num_free_blocks(), kBlocks);
  EXPECT_EQ(h.kv().num_sequences(), 0);
  for (int b = 0; b < kBlocks; ++b) EXPECT_EQ(h.kv().pool().ref_count(b), 0);
  EXPECT_GT(h.sched().num_preemptions(), 0) << "the cache was meant to force preemption";
  EXPECT_GT(reasons[FinishReason::kAbort], 0);
  EXPECT_GT(completed, 100);
  if (p.prefix_caching) {
    EXPECT_GT(h.kv().prefix_hit_tokens(), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Configs, SchedulerStressTest,
                         ::testing::Values(Params{true, true, 1}, Params{true, true, 2},
                                           Params{false, true, 3}, Params{true, false, 4},
                                           Params{false, false, 5}),
                         [](const ::testing::TestParamInfo<Params>& info) {
                           return std::string(info.param.prefix_caching ? "Caching" : "NoCaching") +
                                  (info.param.chunked_prefill ? "Chunked" : "Whole") +
                                  std::to_string(info.param.seed);
                         });

}  // namespace
}  // namespace cleave
