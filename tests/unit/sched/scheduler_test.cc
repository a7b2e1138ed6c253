// Scheduler policy, one behaviour per test, with the real KvCacheManager and a fake model
// (tests/unit/sched/sched_harness.h) that checks KV placement and produces checkable outputs.
#include "engine/sched/scheduler.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/sched/sched_harness.h"

namespace cleave {
namespace {

using ::testing::ElementsAre;
using testing::ExpectedOutput;
using testing::Harness;
using testing::StepRecord;

std::vector<int> Prompt(int len, int base = 10) {
  std::vector<int> t(len);
  std::iota(t.begin(), t.end(), base);
  return t;
}

SchedulerConfig Config(int budget, int max_seqs = 64, bool chunked = true, int max_chunk = 0) {
  SchedulerConfig c;
  c.max_num_batched_tokens = budget;
  c.max_num_seqs = max_seqs;
  c.enable_chunked_prefill = chunked;
  c.max_prefill_chunk = max_chunk;
  return c;
}

void ExpectCompletedCorrectly(const Harness& h, SeqId id, const std::vector<int>& prompt) {
  const Request* r = h.Done(id);
  ASSERT_NE(r, nullptr) << "seq " << id << " did not finish";
  EXPECT_EQ(r->finish_reason, FinishReason::kLength) << "seq " << id;
  EXPECT_EQ(r->output_ids, ExpectedOutput(prompt, h.max_tokens(id))) << "seq " << id;
}

TEST(SchedulerConfigTest, ValidateNamesTheBadField) {
  EXPECT_TRUE(SchedulerConfig{}.Validate().ok());
  SchedulerConfig c;
  c.max_num_batched_tokens = 0;
  EXPECT_THAT(std::string(c.Validate().message()), ::testing::HasSubstr("max_num_batched_tokens"));
  c = {};
  c.max_num_seqs = 0;
  EXPECT_THAT(std::string(c.Validate().message()), ::testing::HasSubstr("max_num_seqs"));
  c = {};
  c.max_prefill_chunk = -1;
  EXPECT_THAT(std::string(c.Validate().message()), ::testing::HasSubstr("max_prefill_chunk"));
}

TEST(SchedulerTest, TokenBudgetAndSequenceLimitHoldEveryStep) {
  Harness h(Config(/*budget=*/32, /*max_seqs=*/4), 256, 4, false);
  std::vector<std::pair<SeqId, std::vector<int>>> reqs;
  for (int i = 0; i < 20; ++i) {
    auto p = Prompt(5 + (i * 13) % 60, i * 100);
    reqs.emplace_back(h.Add(p, 3 + i % 5), p);
  }
  const std::vector<StepRecord> steps = h.RunToEnd();
  for (const StepRecord& s : steps) {
    int sum = 0;
    for (const auto& item : s.items) sum += item.num_new;
    EXPECT_EQ(sum, s.num_batched_tokens);
    EXPECT_LE(s.num_batched_tokens, 32);
    EXPECT_LE(s.items.size(), 4u);
    EXPECT_LE(s.num_running_after, 4);
  }
  // Full steps most of the time: the budget is used, not just respected.
  EXPECT_EQ(steps[0].num_batched_tokens, 32);
  for (const auto& [id, p] : reqs) ExpectCompletedCorrectly(h, id, p);
}

TEST(SchedulerTest, ChunkedPrefillSplitsALongPromptAcrossStepsInOrder) {
  Harness h(Config(16), 64, 4, false);
  const auto p = Prompt(50);
  const SeqId id = h.Add(p, 3);
  const std::vector<StepRecord> steps = h.RunToEnd();
  ASSERT_EQ(steps.size(), 4u + 2u);  // 4 chunks (the last samples), then 2 decodes
  const int want[][2] = {{0, 16}, {16, 16}, {32, 16}, {48, 2}, {50, 1}, {51, 1}};
  for (size_t i = 0; i < steps.size(); ++i) {
    ASSERT_EQ(steps[i].items.size(), 1u);
    EXPECT_EQ(steps[i].items[0].start, want[i][0]) << "step " << i;
    EXPECT_EQ(steps[i].items[0].num_new, want[i][1]) << "step " << i;
  }
  ExpectCompletedCorrectly(h, id, p);
}

TEST(SchedulerTest, MaxPrefillChunkCapsEachChunk) {
  Harness h(Config(64, 64, true, /*max_chunk=*/10), 64, 4, false);
  const auto p = Prompt(25);
  h.Add(p, 1);
  const std::vector<StepRecord> steps = h.RunToEnd();
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[0].items[0].num_new, 10);
  EXPECT_EQ(steps[1].items[0].start, 10);
  EXPECT_EQ(steps[1].items[0].num_new, 10);
  EXPECT_EQ(steps[2].items[0].num_new, 5);
}

TEST(SchedulerTest, DecodesKeepRunningWhileALongPrefillIsChunked) {
  Harness h(Config(8), 64, 4, false);
  const auto pa = Prompt(4), pb = Prompt(40, 500);
  const SeqId a = h.Add(pa, 12);
  h.Step();  // a's prefill
  const SeqId b = h.Add(pb, 2);
  int b_next = 0;
  for (int step = 0; b_next < 40; ++step) {
    ASSERT_LT(step, 10);
    const StepRecord s = h.Step();
    const auto* ia = s.Find(a);
    const auto* ib = s.Find(b);
    ASSERT_NE(ia, nullptr) << "decode starved at step " << step;
    ASSERT_NE(ib, nullptr);
    EXPECT_EQ(ia->num_new, 1);
    EXPECT_EQ(s.items[0].seq, a);  // running requests go first
    EXPECT_EQ(ib->start, b_next);
    EXPECT_EQ(ib->num_new, std::min(7, 40 - b_next));
    b_next += ib->num_new;
  }
  h.RunToEnd();
  ExpectCompletedCorrectly(h, a, pa);
  ExpectCompletedCorrectly(h, b, pb);
}

TEST(SchedulerTest, WithoutChunkedPrefillAPromptWaitsForRoomForAllOfIt) {
  Harness h(Config(16, 64, /*chunked=*/false), 64, 4, false);
  const auto pa = Prompt(4), pb = Prompt(3, 100), pc = Prompt(15, 200);
  const SeqId a = h.Add(pa, 4);
  const SeqId b = h.Add(pb, 4);
  h.Step();  // a and b prefill: 7 tokens
  const SeqId c = h.Add(pc, 2);
  // Two decodes leave 14 of 16 tokens: c (15) must wait until a and b are done.
  const std::vector<StepRecord> steps = h.RunToEnd();
  bool c_started = false;
  for (const StepRecord& s : steps) {
    if (const auto* ic = s.Find(c); ic != nullptr && !c_started) {
      c_started = true;
      EXPECT_EQ(ic->start, 0);
      EXPECT_EQ(ic->num_new, 15);
      EXPECT_EQ(s.Find(a), nullptr);
      EXPECT_EQ(s.Find(b), nullptr);
    }
  }
  EXPECT_TRUE(c_started);
  ExpectCompletedCorrectly(h, a, pa);
  ExpectCompletedCorrectly(h, b, pb);
  ExpectCompletedCorrectly(h, c, pc);
}

TEST(SchedulerTest, WithoutChunkedPrefillAPromptLongerThanTheBudgetStillRuns) {
  Harness h(Config(16, 64, /*chunked=*/false), 64, 4, false);
  const auto p = Prompt(40);
  const SeqId id = h.Add(p, 3);
  const std::vector<StepRecord> steps = h.RunToEnd(/*max_steps=*/50);
  EXPECT_EQ(steps.front().items[0].num_new, 16);
  ExpectCompletedCorrectly(h, id, p);
}

TEST(SchedulerTest, PreemptionTakesTheLatestAdmittedWhichLaterResumesAndCompletes) {
  // 8 blocks of 4 = 32 tokens. Three 7-token prompts fit (2 blocks each); each grows to 19
  // tokens (5 blocks), so the cache runs out and someone must yield.
  Harness h(Config(64), 8, 4, false);
  std::vector<std::vector<int>> prompts = {Prompt(7, 100), Prompt(7, 200), Prompt(7, 300)};
  std::vector<SeqId> ids;
  for (const auto& p : prompts) ids.push_back(h.Add(p, 12));
  const StepRecord first = h.Step();
  ASSERT_EQ(first.items.size(), 3u);
  // A late arrival, too big for the 2 blocks left now: it must not overtake the preempted one.
  const auto pd = Prompt(9, 400);
  const SeqId d = h.Add(pd, 2);

  SeqId victim = 0;
  std::vector<StepRecord> steps;
  for (int i = 0; i < 200 && h.sched().HasWork(); ++i) {
    const StepRecord s = h.Step();
    if (victim == 0 && !s.preempted.empty()) {
      victim = s.preempted[0];
      EXPECT_EQ(victim, ids[2]) << "the most recently admitted yields";
      const Request* v = h.sched().Find(victim);
      ASSERT_NE(v, nullptr);
      EXPECT_EQ(v->status, RequestStatus::kWaiting);
      EXPECT_EQ(v->num_computed_tokens, 0);
      EXPECT_FALSE(v->output_ids.empty()) << "outputs survive preemption";
      EXPECT_EQ(v->num_preemptions, 1);
      // A step that preempts admits nobody.
      for (const auto& item : s.items) EXPECT_NE(item.seq, d);
    }
    steps.push_back(s);
  }
  ASSERT_NE(victim, 0u) << "the cache was meant to force preemption";
  EXPECT_GE(h.sched().num_preemptions(), 1);
  // The victim comes back (recomputing prompt + outputs) before d is first admitted.
  int victim_back = -1, d_first = -1;
  bool seen_preempt = false;
  for (size_t i = 0; i < steps.size(); ++i) {
    if (!steps[i].preempted.empty()) seen_preempt = true;
    if (seen_preempt && victim_back < 0 && steps[i].Find(victim)) {
      victim_back = static_cast<int>(i);
      EXPECT_EQ(steps[i].Find(victim)->start, 0);
      EXPECT_GT(steps[i].Find(victim)->num_new, 7);
    }
    if (d_first < 0 && steps[i].Find(d)) d_first = static_cast<int>(i);
  }
  ASSERT_GE(victim_back, 0);
  ASSERT_GE(d_first, 0);
  EXPECT_LE(victim_back, d_first);
  for (size_t i = 0; i < ids.size(); ++i) ExpectCompletedCorrectly(h, ids[i], prompts[i]);
  ExpectCompletedCorrectly(h, d, pd);
  EXPECT_EQ(h.kv().num_free_blocks(), 8);
}

TEST(SchedulerTest, AdmissionIsFirstComeFirstServedAndNeverSkipsTheHead) {
  Harness h(Config(64), 10, 4, false);
  const auto pa = Prompt(20, 100), pb = Prompt(24, 200), pc = Prompt(2, 300);
  const SeqId a = h.Add(pa, 8);
  h.Step();                      // a holds 5-6 of the 10 blocks
  const SeqId b = h.Add(pb, 2);  // needs 6 blocks: waits for a
  const SeqId c = h.Add(pc, 2);  // would fit, but b is ahead
  const std::vector<StepRecord> steps = h.RunToEnd();
  int b_first = -1, c_first = -1;
  for (size_t i = 0; i < steps.size(); ++i) {
    if (b_first < 0 && steps[i].Find(b)) b_first = static_cast<int>(i);
    if (c_first < 0 && steps[i].Find(c)) c_first = static_cast<int>(i);
  }
  ASSERT_GE(b_first, 0);
  ASSERT_GE(c_first, 0);
  EXPECT_GT(b_first, 0) << "b cannot fit next to a";
  EXPECT_GE(c_first, b_first);
  EXPECT_EQ(h.sched().num_preemptions(), 0);
  ExpectCompletedCorrectly(h, a, pa);
  ExpectCompletedCorrectly(h, b, pb);
  ExpectCompletedCorrectly(h, c, pc);
}

TEST(SchedulerTest, MaxNumSeqsLimitsAdmissionInOrder) {
  Harness h(Config(64, /*max_seqs=*/2), 64, 4, false);
  std::vector<SeqId> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(h.Add(Prompt(3, i * 10), 2));
  const StepRecord s = h.Step();
  ASSERT_EQ(s.items.size(), 2u);
  EXPECT_EQ(s.items[0].seq, ids[0]);
  EXPECT_EQ(s.items[1].seq, ids[1]);
  EXPECT_EQ(h.sched().num_waiting(), 3);
  h.RunToEnd();
  for (SeqId id : ids) EXPECT_NE(h.Done(id), nullptr);
}

TEST(SchedulerTest, ARequestLargerThanTheCacheIsAbortedInsteadOfHanging) {
  Harness h(Config(16), 8, 4, false);  // 32 tokens in all
  const auto small = Prompt(5);
  const SeqId too_big = h.Add(Prompt(33), 4);
  const SeqId ok = h.Add(small, 3);
  const StepRecord first = h.Step();
  EXPECT_THAT(first.rejected, ElementsAre(too_big));
  ASSERT_NE(h.Done(too_big), nullptr);
  EXPECT_EQ(h.Done(too_big)->finish_reason, FinishReason::kAbort);
  EXPECT_NE(first.Find(ok), nullptr) << "the queue moves on past the rejected head";
  h.RunToEnd(/*max_steps=*/100);
  ExpectCompletedCorrectly(h, ok, small);
}

TEST(SchedulerTest, ARequestThatOutgrowsTheCacheIsAbortedInsteadOfLooping) {
  Harness h(Config(16), 8, 4, false);
  const auto pa = Prompt(20), pb = Prompt(4, 500);
  const SeqId a = h.Add(pa, 100);  // would need 120 tokens of KV; there are 32
  const SeqId b = h.Add(pb, 20);   // fits alone
  h.RunToEnd(/*max_steps=*/500);
  ASSERT_NE(h.Done(a), nullptr);
  EXPECT_EQ(h.Done(a)->finish_reason, FinishReason::kAbort);
  ExpectCompletedCorrectly(h, b, pb);
  EXPECT_EQ(h.kv().num_free_blocks(), 8);
}

TEST(SchedulerTest, PrefixHitSkipsCachedTokensAndIsCountedOnFirstAdmissionOnly) {
  Harness h(Config(64), 32, 4, true);
  const auto pa = Prompt(22, 100);
  const SeqId a = h.Add(pa, 2);
  h.RunToEnd();
  auto pb = Prompt(18, 100);  // a's first 18 tokens: 4 full blocks shared
  pb.push_back(7);
  const SeqId b = h.Add(pb, 3);
  const StepRecord s = h.Step();
  ASSERT_NE(s.Find(b), nullptr);
  EXPECT_EQ(s.Find(b)->start, 16);
  EXPECT_EQ(s.Find(b)->num_new, 3);
  EXPECT_EQ(h.sched().Find(b)->num_cached_prompt_tokens, 16);
  h.RunToEnd();
  ExpectCompletedCorrectly(h, a, pa);
  ExpectCompletedCorrectly(h, b, pb);
  EXPECT_EQ(h.Done(a)->num_cached_prompt_tokens, 0);
  EXPECT_EQ(h.Done(b)->num_cached_prompt_tokens, 16);
}

TEST(SchedulerTest, APreemptedRequestKeepsItsFirstCachedPromptCount) {
  // Same shape as the preemption test, with prefix caching: the victim's recompute finds its own
  // freed blocks, but num_cached_prompt_tokens still reports the first admission (0).
  Harness h(Config(64), 8, 4, true);
  std::vector<std::vector<int>> prompts = {Prompt(7, 100), Prompt(7, 200), Prompt(7, 300)};
  std::vector<SeqId> ids;
  for (const auto& p : prompts) ids.push_back(h.Add(p, 12));
  h.RunToEnd(1000);
  EXPECT_GE(h.sched().num_preemptions(), 1);
  for (size_t i = 0; i < ids.size(); ++i) {
    ExpectCompletedCorrectly(h, ids[i], prompts[i]);
    EXPECT_EQ(h.Done(ids[i])->num_cached_prompt_tokens, 0);
  }
  EXPECT_EQ(h.kv().num_free_blocks(), 8);
}

TEST(SchedulerTest, FinishFreesBlocksAndKeepsTheRequestUntilTaken) {
  Harness h(Config(64), 16, 4, false);
  Scheduler& s = h.sched();
  const SeqId running = h.Add(Prompt(9), 5);
  h.Step();
  const SeqId waiting = h.Add(Prompt(3), 5);
  EXPECT_EQ(s.num_running(), 1);
  EXPECT_EQ(s.num_waiting(), 1);
  EXPECT_EQ(h.kv().num_free_blocks(), 13);

  s.Finish(running, FinishReason::kStop);
  EXPECT_EQ(s.num_running(), 0);
  EXPECT_EQ(h.kv().num_free_blocks(), 16);
  ASSERT_NE(s.Find(running), nullptr);
  EXPECT_EQ(s.Find(running)->status, RequestStatus::kFinished);
  s.Finish(running, FinishReason::kAbort);  // already finished: no change
  EXPECT_EQ(s.Find(running)->finish_reason, FinishReason::kStop);

  EXPECT_EQ(s.TakeFinished(waiting), nullptr);  // not finished
  s.Finish(waiting, FinishReason::kAbort);
  EXPECT_EQ(s.num_waiting(), 0);
  EXPECT_FALSE(s.HasWork());
  s.Finish(12345, FinishReason::kAbort);  // unknown: ignored

  std::unique_ptr<Request> r = s.TakeFinished(running);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->seq_id, running);
  EXPECT_EQ(s.Find(running), nullptr);
  EXPECT_EQ(s.TakeFinished(running), nullptr);
  EXPECT_NE(s.TakeFinished(waiting), nullptr);
}

}  // namespace
}  // namespace cleave
