// Drives the real Scheduler and KvCacheManager with a fake model that keeps a fake KV cache:
// every slot records which (token, position) was written there. Before computing a chunk, the
// fake model checks that every earlier position of the sequence reads back its own token through
// the block table, and it derives the next token from what it read. So a wrong block table, a
// shared block that does not hold the same prefix, or a write into a block another sequence
// shares, shows up as a test failure or a wrong output.
#ifndef CLEAVE_TESTS_UNIT_SCHED_SCHED_HARNESS_H_
#define CLEAVE_TESTS_UNIT_SCHED_SCHED_HARNESS_H_

#include <map>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "engine/kv/kv_cache_manager.h"
#include "engine/sched/request.h"
#include "engine/sched/scheduler.h"
#include "gtest/gtest.h"

namespace cleave::testing {

// The fake model's next token: a deterministic function of the whole sequence.
inline int NextToken(std::span<const int> seq) {
  uint64_t h = 1469598103934665603ull;
  for (int t : seq) h = (h ^ static_cast<uint64_t>(t)) * 1099511628211ull;
  return static_cast<int>(h % 997) + 3;
}

// What a request's outputs must be, however it was batched, chunked, preempted or shared.
inline std::vector<int> ExpectedOutput(std::vector<int> prompt, int max_tokens) {
  std::vector<int> out;
  for (int i = 0; i < max_tokens; ++i) {
    out.push_back(NextToken(prompt));
    prompt.push_back(out.back());
  }
  return out;
}

class FakeModel {
 public:
  explicit FakeModel(const KvCacheManager& kv)
      : kv_(kv), slots_(static_cast<size_t>(kv.num_total_blocks()) * kv.block_size()) {}

  std::vector<std::optional<int>> Run(const SchedulerOutput& out) {
    std::vector<std::optional<int>> sampled(out.items.size());
    const int bs = kv_.block_size();
    for (size_t i = 0; i < out.items.size(); ++i) {
      const Request& req = *out.items[i].req;
      const int start = req.num_computed_tokens;
      const int end = start + out.items[i].num_new_tokens;
      const std::vector<int>& table = kv_.BlockTable(req.seq_id);
      EXPECT_GE(static_cast<int>(table.size()) * bs, end) << "seq " << req.seq_id;
      if (static_cast<int>(table.size()) * bs < end) continue;
      std::vector<int> read;
      for (int p = 0; p < start; ++p) {
        const Slot& s = slots_[Index(table, p)];
        EXPECT_TRUE(s.token == req.token_at(p) && s.pos == p)
            << "seq " << req.seq_id << " position " << p << " reads (" << s.token << ", " << s.pos
            << ")";
        read.push_back(s.token);
      }
      for (int p = start; p < end; ++p) {
        EXPECT_EQ(kv_.pool().ref_count(table[p / bs]), 1)
            << "seq " << req.seq_id << " writes position " << p << " into a shared block";
        slots_[Index(table, p)] = {req.token_at(p), p};
        read.push_back(req.token_at(p));
      }
      if (end == req.num_tokens()) sampled[i] = NextToken(read);
    }
    return sampled;
  }

 private:
  struct Slot {
    int token = -1;
    int pos = -1;
  };
  size_t Index(const std::vector<int>& table, int p) const {
    const int bs = kv_.block_size();
    return static_cast<size_t>(table[p / bs]) * bs + p % bs;
  }
  const KvCacheManager& kv_;
  std::vector<Slot> slots_;
};

// One scheduled item as it was when scheduled.
struct ItemRecord {
  SeqId seq = 0;
  int start = 0;
  int num_new = 0;
};
struct StepRecord {
  std::vector<ItemRecord> items;
  std::vector<SeqId> preempted;
  std::vector<SeqId> rejected;
  int num_batched_tokens = 0;
  int num_running_after = 0;

  const ItemRecord* Find(SeqId seq) const {
    for (const ItemRecord& r : items) {
      if (r.seq == seq) return &r;
    }
    return nullptr;
  }
};

class Harness {
 public:
  Harness(SchedulerConfig config, int num_blocks, int block_size, bool prefix_caching)
      : kv_(num_blocks, block_size, prefix_caching), sched_(config, &kv_), model_(kv_) {}

  SeqId Add(std::vector<int> prompt, int max_tokens) {
    auto req = std::make_unique<Request>();
    req->prompt_ids = std::move(prompt);
    const SeqId id = sched_.Add(std::move(req));
    max_tokens_[id] = max_tokens;
    return id;
  }

  // schedule → fake forward → update → finish requests that reached max_tokens (kLength).
  StepRecord Step() {
    StepRecord rec;
    SchedulerOutput out = sched_.Schedule();
    for (SeqId id : sched_.TakeRejected()) {
      rec.rejected.push_back(id);
      Take(id);
    }
    for (const ScheduledItem& item : out.items) {
      rec.items.push_back({item.req->seq_id, item.req->num_computed_tokens, item.num_new_tokens});
    }
    for (Request* r : out.preempted) rec.preempted.push_back(r->seq_id);
    rec.num_batched_tokens = out.num_batched_tokens;
    const std::vector<std::optional<int>> sampled = model_.Run(out);
    sched_.Update(out, sampled);
    for (size_t i = 0; i < out.items.size(); ++i) {
      Request* req = out.items[i].req;
      if (sampled[i] && static_cast<int>(req->output_ids.size()) >= max_tokens_[req->seq_id]) {
        FinishAndTake(req->seq_id, FinishReason::kLength);
      }
    }
    rec.num_running_after = sched_.num_running();
    return rec;
  }

  // Steps until idle; fails the test if that takes more than max_steps.
  std::vector<StepRecord> RunToEnd(int max_steps = 100000) {
    std::vector<StepRecord> steps;
    while (sched_.HasWork() && static_cast<int>(steps.size()) < max_steps) {
      steps.push_back(Step());
    }
    EXPECT_FALSE(sched_.HasWork()) << "the scheduler did not drain in " << max_steps << " steps";
    return steps;
  }

  void FinishAndTake(SeqId id, FinishReason reason) {
    sched_.Finish(id, reason);
    Take(id);
  }

  // A finished request, kept after the scheduler handed it back.
  const Request* Done(SeqId id) const {
    auto it = done_.find(id);
    return it == done_.end() ? nullptr : it->second.get();
  }
  int max_tokens(SeqId id) const { return max_tokens_.at(id); }

  KvCacheManager& kv() { return kv_; }
  Scheduler& sched() { return sched_; }

 private:
  void Take(SeqId id) {
    std::unique_ptr<Request> req = sched_.TakeFinished(id);
    ASSERT_NE(req, nullptr) << "seq " << id;
    done_[id] = std::move(req);
  }

  KvCacheManager kv_;
  Scheduler sched_;
  FakeModel model_;
  std::map<SeqId, int> max_tokens_;
  std::map<SeqId, std::unique_ptr<Request>> done_;
};

}  // namespace cleave::testing

#endif  // CLEAVE_TESTS_UNIT_SCHED_SCHED_HARNESS_H_
