// Disaggregation at the engine level: one engine prefills (export_kv), its prompt KV is copied
// block by block into blocks another engine reserved (ReserveImport), and the second engine
// decodes from the first token. The tokens must equal one engine doing it all, and both
// engines must end with every block free. The copy here is a memcpy; tests/unit/transfer and
// tests/integration move the same bytes over UCX.
#include <cstring>
#include <random>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "engine/core/engine.h"
#include "engine/core/engine_core.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_model.h"

namespace cleave {
namespace {

using ::testing::HasSubstr;

GenerateRequest Request(std::vector<int> prompt, int max_tokens, float temperature,
                        std::optional<uint64_t> seed = std::nullopt) {
  GenerateRequest r;
  r.request_id = "r";
  r.prompt_ids = std::move(prompt);
  r.params.temperature = temperature;
  r.params.max_tokens = max_tokens;
  r.params.ignore_eos = true;
  r.params.seed = seed;
  r.params.logprobs = 2;
  return r;
}

std::vector<RequestOutput> Drain(EngineCore& engine) {
  std::vector<RequestOutput> outs;
  for (int step = 0; step < 10000 && engine.HasWork(); ++step) {
    for (RequestOutput& o : engine.Step()) outs.push_back(std::move(o));
  }
  EXPECT_FALSE(engine.HasWork());
  return outs;
}

std::vector<int> Tokens(const std::vector<RequestOutput>& outs) {
  std::vector<int> t;
  for (const RequestOutput& o : outs) t.insert(t.end(), o.token_ids.begin(), o.token_ids.end());
  return t;
}

void CopyBlocks(const EngineCore& from, const std::vector<int>& src, const EngineCore& to,
                const std::vector<int>& dst) {
  const KvStorageShape& s = from.kv_storage().shape();
  const size_t floats = static_cast<size_t>(s.block_size) * s.num_kv_heads * s.head_dim;
  ASSERT_EQ(src.size(), dst.size());
  for (int l = 0; l < s.num_layers; ++l) {
    for (size_t i = 0; i < src.size(); ++i) {
      std::memcpy(to.kv_storage().k(l) + dst[i] * floats, from.kv_storage().k(l) + src[i] * floats,
                  floats * sizeof(float));
      std::memcpy(to.kv_storage().v(l) + dst[i] * floats, from.kv_storage().v(l) + src[i] * floats,
                  floats * sizeof(float));
    }
  }
}

class KvHandoffTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { dir_ = cleave::testing::TinyCheckpoint(); }
  std::unique_ptr<EngineCore> Engine(int num_blocks = 0) {
    EngineConfig c;
    c.num_kv_blocks = num_blocks;
    c.scheduler.max_prefill_chunk = 16;  // prompts over 16 tokens prefill in chunks
    return cleave::testing::MakeEngine(dir_, c);
  }
  // Prefill on one engine, decode on another; returns every output token (first included).
  std::vector<int> Disaggregated(const GenerateRequest& request, int* exported_blocks) {
    auto prefill = Engine();
    auto decode = Engine(/*num_blocks=*/256);
    // The decode engine's pool already holds other data, so the handoff lands in blocks
    // other than the prefill engine's.
    GenerateRequest filler = Request({5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21},
                                     1, 0.0f);
    filler.request_id = "filler";
    EXPECT_TRUE(decode->AddRequest(filler).ok());
    Drain(*decode);

    GenerateRequest p = request;
    p.export_kv = true;
    EXPECT_TRUE(prefill->AddRequest(p).ok());
    std::vector<RequestOutput> pouts = Drain(*prefill);
    EXPECT_EQ(pouts.size(), 1u);
    const RequestOutput& first = pouts.back();
    EXPECT_TRUE(first.finished);
    EXPECT_EQ(first.token_ids.size(), 1u);
    *exported_blocks = static_cast<int>(first.exported_blocks.size());
    // The blocks stay held until released.
    EXPECT_EQ(prefill->num_exported(), 1);
    EXPECT_LT(prefill->kv_manager().num_free_blocks(), prefill->kv_manager().num_total_blocks());

    auto slot = decode->ReserveImport(request);
    EXPECT_TRUE(slot.ok()) << slot.status();
    EXPECT_EQ(slot->blocks.size(), first.exported_blocks.size());
    CopyBlocks(*prefill, first.exported_blocks, *decode, slot->blocks);
    prefill->ReleaseExportedKv(first.seq_id);
    EXPECT_EQ(prefill->kv_manager().num_free_blocks(), prefill->kv_manager().num_total_blocks());

    TokenLogprob lp{.token = first.token_ids[0], .logprob = first.logprobs[0].logprob,
                    .top = first.logprobs[0].top};
    auto out = decode->CompleteImport(slot->seq_id, lp, first.cached_prompt_tokens);
    EXPECT_TRUE(out.ok()) << out.status();
    std::vector<RequestOutput> douts{*out};
    for (RequestOutput& o : Drain(*decode)) douts.push_back(std::move(o));
    EXPECT_TRUE(douts.back().finished);
    EXPECT_EQ(decode->kv_manager().num_free_blocks(), decode->kv_manager().num_total_blocks());
    return Tokens(douts);
  }

  std::string dir_;
};

TEST_P(KvHandoffTest, GreedyTokensEqualOneEngineDoingItAll) {
  std::mt19937 rng(GetParam());
  std::vector<int> prompt(GetParam());
  for (int& t : prompt) t = 3 + rng() % 200;
  const GenerateRequest request = Request(prompt, 12, 0.0f);
  auto alone = Engine();
  ASSERT_TRUE(alone->AddRequest(request).ok());
  const std::vector<int> expected = Tokens(Drain(*alone));
  ASSERT_EQ(expected.size(), 12u);
  int exported = 0;
  EXPECT_EQ(Disaggregated(request, &exported), expected);
  EXPECT_EQ(exported, (GetParam() + 15) / 16);
}

// The prefill engine draws the first sample; the decode engine continues the same RNG stream.
TEST_P(KvHandoffTest, SeededSamplingContinuesTheSameRandomStream) {
  std::vector<int> prompt(GetParam(), 42);
  const GenerateRequest request = Request(prompt, 10, 0.9f, /*seed=*/1234);
  auto alone = Engine();
  ASSERT_TRUE(alone->AddRequest(request).ok());
  const std::vector<int> expected = Tokens(Drain(*alone));
  int exported = 0;
  EXPECT_EQ(Disaggregated(request, &exported), expected);
}

INSTANTIATE_TEST_SUITE_P(PromptLengths, KvHandoffTest, ::testing::Values(1, 16, 17, 70));

TEST(KvHandoffEdgeTest, ReservationFailsWithoutChangeWhenBlocksAreShortAndCancelFreesThem) {
  EngineConfig c;
  c.num_kv_blocks = 4;
  auto engine = cleave::testing::MakeEngine(cleave::testing::TinyCheckpoint(), c);
  auto big = engine->ReserveImport(Request(std::vector<int>(50, 7), 4, 0.0f));  // 4 blocks
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(engine->kv_manager().num_free_blocks(), 0);
  auto more = engine->ReserveImport(Request(std::vector<int>(5, 7), 4, 0.0f));
  EXPECT_TRUE(absl::IsResourceExhausted(more.status())) << more.status();
  engine->CancelImport(big->seq_id);
  EXPECT_EQ(engine->kv_manager().num_free_blocks(), 4);
  EXPECT_EQ(engine->num_pending_imports(), 0);
}

TEST(KvHandoffEdgeTest, BadFirstTokenIsRejectedAndFreesTheBlocks) {
  auto engine = cleave::testing::MakeEngine(cleave::testing::TinyCheckpoint(), {});
  auto slot = engine->ReserveImport(Request({5, 6, 7}, 4, 0.0f));
  ASSERT_TRUE(slot.ok());
  auto out = engine->CompleteImport(slot->seq_id, TokenLogprob{.token = -3, .logprob = 0, .top = {}}, 0);
  EXPECT_TRUE(absl::IsInvalidArgument(out.status()));
  EXPECT_THAT(out.status().message(), HasSubstr("first_token"));
  EXPECT_EQ(engine->kv_manager().num_free_blocks(), engine->kv_manager().num_total_blocks());
  EXPECT_FALSE(engine->HasWork());
}

TEST(KvHandoffEdgeTest, AbortedExportFreesItsBlocks) {
  auto engine = cleave::testing::MakeEngine(cleave::testing::TinyCheckpoint(), {});
  GenerateRequest r = Request(std::vector<int>(40, 9), 4, 0.0f);
  r.export_kv = true;
  auto id = engine->AddRequest(r);
  ASSERT_TRUE(id.ok());
  engine->Abort(*id);
  std::vector<RequestOutput> outs = Drain(*engine);
  ASSERT_EQ(outs.size(), 1u);
  EXPECT_EQ(outs[0].finish_reason, FinishReason::kAbort);
  EXPECT_TRUE(outs[0].exported_blocks.empty());
  EXPECT_EQ(engine->num_exported(), 0);
  EXPECT_EQ(engine->kv_manager().num_free_blocks(), engine->kv_manager().num_total_blocks());
}

// Load as the engine thread last published it, once `pred` holds (bounded).
template <typename Pred>
Engine::Load AwaitLoad(const Engine& engine, Pred pred, absl::Duration bound = absl::Seconds(5)) {
  const absl::Time deadline = absl::Now() + bound;
  Engine::Load load = engine.load();
  while (!pred(load) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
    load = engine.load();
  }
  return load;
}

// A cancelled handoff's blocks stay held for the quarantine (a late UCX write may still land
// in them), then return to the pool.
TEST(KvHandoffEngineTest, CancelledReservationIsQuarantinedThenFreed) {
  auto core = cleave::testing::MakeEngine(cleave::testing::TinyCheckpoint(), {});
  const int total = core->kv_manager().num_total_blocks();
  Engine engine(std::move(core), absl::Milliseconds(600));
  absl::Notification reserved, ended;
  FinishReason reason = FinishReason::kNone;
  engine.SubmitImport(
      Request(std::vector<int>(40, 9), 4, 0.0f),
      [&](const absl::Status& st, const EngineCore::ImportSlot& slot) {
        EXPECT_TRUE(st.ok()) << st;
        EXPECT_EQ(slot.blocks.size(), 3u);
        reserved.Notify();
      },
      [&](const absl::Status& st, const RequestOutput& out) {
        reason = out.finish_reason;
        if (out.finished) ended.Notify();
      },
      absl::Seconds(30));
  ASSERT_TRUE(reserved.WaitForNotificationWithTimeout(absl::Seconds(5)));
  const absl::Time aborted = absl::Now();
  engine.Abort("r");
  ASSERT_TRUE(ended.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_EQ(reason, FinishReason::kAbort);
  Engine::Load held = AwaitLoad(engine, [](const Engine::Load& l) { return l.quarantined == 1; });
  EXPECT_EQ(held.quarantined, 1);
  EXPECT_EQ(held.free_kv_blocks, total - 3);
  Engine::Load freed =
      AwaitLoad(engine, [&](const Engine::Load& l) { return l.free_kv_blocks == total; });
  EXPECT_EQ(freed.free_kv_blocks, total);
  EXPECT_EQ(freed.quarantined, 0);
  EXPECT_GE(absl::Now() - aborted, absl::Milliseconds(600));
}

// An import whose KV never arrives expires (the router or prefill worker died) and ends with
// abort, so the stream does not hang.
TEST(KvHandoffEngineTest, ReservationThatNeverCompletesExpires) {
  auto core = cleave::testing::MakeEngine(cleave::testing::TinyCheckpoint(), {});
  const int total = core->kv_manager().num_total_blocks();
  Engine engine(std::move(core));
  absl::Notification ended;
  absl::Status status;
  engine.SubmitImport(
      Request({5, 6, 7}, 4, 0.0f), [](const absl::Status&, const EngineCore::ImportSlot&) {},
      [&](const absl::Status& st, const RequestOutput& out) {
        status = st;
        if (out.finished) ended.Notify();
      },
      absl::Milliseconds(200));
  ASSERT_TRUE(ended.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_TRUE(absl::IsDeadlineExceeded(status)) << status;
  EXPECT_EQ(AwaitLoad(engine, [&](const Engine::Load& l) {
              return l.free_kv_blocks == total;
            }).free_kv_blocks,
            total);
}

}  // namespace
}  // namespace cleave
