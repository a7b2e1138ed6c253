// Engine: the threaded wrapper. Submissions from several threads, duplicate ids,
// aborts by id, and shutdown with requests in flight.
#include <atomic>
#include <chrono>
#include <map>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "engine/core/engine.h"
#include "gtest/gtest.h"
#include "tests/support/test_model.h"

namespace cleave {
namespace {

struct Collected {
  absl::Mutex mu;
  std::map<std::string, std::vector<int>> tokens;
  std::map<std::string, FinishReason> finished;
  std::map<std::string, absl::Status> errors;
  Engine::Callback For(const std::string& id) {
    return [this, id](const absl::Status& st, const RequestOutput& out) {
      absl::MutexLock lock(&mu);
      if (!st.ok()) {
        errors[id] = st;
        return;
      }
      auto& t = tokens[id];
      t.insert(t.end(), out.token_ids.begin(), out.token_ids.end());
      if (out.finished) finished[id] = out.finish_reason;
    };
  }
  bool WaitFinished(size_t n) {
    absl::MutexLock lock(&mu);
    return mu.AwaitWithTimeout(
        absl::Condition(+[](Collected* c) ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return c->finished.size() + c->errors.size() >= c->target;
        }, this),
        absl::Seconds(60)) || finished.size() + errors.size() >= n;
  }
  size_t target = 0;
};

GenerateRequest Make(const std::string& id, int max_tokens) {
  GenerateRequest r;
  r.request_id = id;
  r.prompt = "prompt " + id;
  r.params.temperature = 0;
  r.params.max_tokens = max_tokens;
  r.params.ignore_eos = true;
  return r;
}

std::unique_ptr<Engine> MakeEngine() {
  return std::make_unique<Engine>(
      cleave::testing::MakeEngine(cleave::testing::TinyCheckpoint(), EngineConfig{}));
}

TEST(EngineTest, RequestsFromManyThreadsAllComplete) {
  auto engine = MakeEngine();
  Collected c;
  c.target = 24;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 6; ++i) {
        const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
        engine->Submit(Make(id, 3 + i), c.For(id));
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(c.WaitFinished(24));
  absl::MutexLock lock(&c.mu);
  EXPECT_TRUE(c.errors.empty());
  for (const auto& [id, reason] : c.finished) {
    EXPECT_EQ(reason, FinishReason::kLength) << id;
    EXPECT_EQ(c.tokens[id].size(), size_t(3 + (id.back() - '0'))) << id;
  }
}

TEST(EngineTest, DuplicateIdAndBadRequestAreRejectedThroughTheCallback) {
  auto engine = MakeEngine();
  Collected c;
  c.target = 3;
  engine->Submit(Make("same", 50), c.For("first"));
  engine->Submit(Make("same", 5), c.For("dup"));
  GenerateRequest bad = Make("bad", 5);
  bad.params.top_k = -3;
  engine->Submit(bad, c.For("bad"));
  ASSERT_TRUE(c.WaitFinished(3));
  absl::MutexLock lock(&c.mu);
  EXPECT_EQ(c.errors["dup"].code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(c.errors["bad"].code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.finished["first"], FinishReason::kLength);
}

TEST(EngineTest, AbortByIdEndsTheStreamAndFreesItsBlocks) {
  auto engine = MakeEngine();
  Collected c;
  c.target = 1;
  engine->Submit(Make("long", 100000), c.For("long"));
  // Let it run a little, then abort.
  for (int i = 0; i < 200; ++i) {
    {
      absl::MutexLock lock(&c.mu);
      if (c.tokens["long"].size() >= 3) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  engine->Abort("long");
  ASSERT_TRUE(c.WaitFinished(1));
  {
    absl::MutexLock lock(&c.mu);
    EXPECT_EQ(c.finished["long"], FinishReason::kAbort);
  }
  for (int i = 0; i < 100 && engine->load().free_kv_blocks != engine->load().total_kv_blocks; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(engine->load().free_kv_blocks, engine->load().total_kv_blocks);
  EXPECT_EQ(engine->load().running, 0);
}

TEST(EngineTest, ShutdownAbortsRequestsInFlight) {
  Collected c;
  {
    auto engine = MakeEngine();
    c.target = 2;
    engine->Submit(Make("a", 100000), c.For("a"));
    engine->Submit(Make("b", 100000), c.For("b"));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  absl::MutexLock lock(&c.mu);
  EXPECT_EQ(c.finished["a"], FinishReason::kAbort);
  EXPECT_EQ(c.finished["b"], FinishReason::kAbort);
}

}  // namespace
}  // namespace cleave
