// The disaggregated cluster as users run it: router, prefill and decode processes on
// 127.0.0.1, KV over UCX, clients over gRPC. Correctness against `cleave run`, concurrency,
// cancellation (checked through the workers' own stats), and workers killed with SIGKILL.
#include <signal.h>

#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "cleave/v1/generation.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/cluster.h"

namespace cleave {
namespace {

using ::cleave::testing::ClusterOptions;
using ::cleave::testing::FetchWorkerStats;
using ::cleave::testing::TestCluster;
using ::testing::HasSubstr;

// Greedy token ids from `cleave run` on the same checkpoint (its --logprobs 0 lines).
std::vector<int> CleaveRunTokens(const std::string& model, const std::string& prompt,
                                 int max_tokens) {
  const std::string out = cleave::testing::MakeScratchDir("run") + "/stderr.txt";
  const std::string cmd = absl::StrCat(
      "timeout 60 ", cleave::testing::BinaryDir(), "/tools/cleave/cleave run --model ", model,
      " --prompt '", prompt, "' --max-tokens ", max_tokens,
      " --temperature 0 --ignore-eos --logprobs 0 >/dev/null 2>", out);
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::vector<int> ids;
  FILE* f = std::fopen(out.c_str(), "r");
  if (f == nullptr) return ids;
  char line[512];
  while (std::fgets(line, sizeof line, f)) {
    int id;
    if (std::sscanf(line, "[logprob] token=%d", &id) == 1) ids.push_back(id);
  }
  std::fclose(f);
  return ids;
}

v1::GenerateRequest Greedy(const std::string& prompt, int max_tokens) {
  v1::GenerateRequest r;
  r.set_text(prompt);
  r.mutable_sampling()->set_temperature(0);
  r.mutable_sampling()->set_max_tokens(max_tokens);
  r.mutable_sampling()->set_ignore_eos(true);
  return r;
}

struct StreamResult {
  grpc::Status status;
  std::vector<int> tokens;
  std::string text;
  v1::GenerateResponse last;
  std::string prefill_worker, decode_worker;
  int chunks = 0;
};

StreamResult Stream(v1::Generation::Stub* stub, const v1::GenerateRequest& req,
                    absl::Duration timeout = absl::Seconds(60)) {
  StreamResult r;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  auto reader = stub->Generate(&ctx, req);
  v1::GenerateResponse chunk;
  while (reader->Read(&chunk)) {
    ++r.chunks;
    r.tokens.insert(r.tokens.end(), chunk.token_ids().begin(), chunk.token_ids().end());
    r.text += chunk.text();
    if (chunk.has_timing() && !chunk.timing().decode_worker().empty()) {
      r.prefill_worker = chunk.timing().prefill_worker();
      r.decode_worker = chunk.timing().decode_worker();
    }
    r.last = chunk;
  }
  r.status = reader->Finish();
  return r;
}

// Polls until every worker holds no KV blocks and no requests; the last stats otherwise.
std::string WaitWorkersIdle(const std::vector<launch::ClusterProcess*>& workers,
                            absl::Duration bound = absl::Seconds(15)) {
  const absl::Time deadline = absl::Now() + bound;
  std::string last;
  while (absl::Now() < deadline) {
    bool idle = true;
    last.clear();
    for (launch::ClusterProcess* w : workers) {
      auto stats = FetchWorkerStats(w->address());
      if (!stats.ok()) {
        idle = false;
        last += absl::StrCat(w->name, ": ", stats.status().ToString(), "\n");
        continue;
      }
      last += absl::StrCat(w->name, ": ", stats->ShortDebugString(), "\n");
      idle = idle && stats->held_kv_blocks() == 0 && stats->live_requests() == 0;
    }
    if (idle) return "";
    absl::SleepFor(absl::Milliseconds(50));
  }
  return last;
}


// The services a server lists through grpc.reflection.v1alpha (what grpcurl asks), as the raw
// response bytes: a ServerReflectionRequest{list_services: ""} is the two bytes 0x3a 0x00.
std::string ReflectionServiceList(const std::string& address) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  auto call = stub.PrepareCall(
      &ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  auto step = [&](auto start) {
    start();
    void* tag;
    bool ok = false;
    return cq.AsyncNext(&tag, &ok, absl::ToChronoTime(absl::Now() + absl::Seconds(5))) ==
               grpc::CompletionQueue::GOT_EVENT && ok;
  };
  std::string out;
  grpc::Slice slice(std::string("\x3a\x00", 2));
  grpc::ByteBuffer request(&slice, 1), response;
  if (step([&] { call->StartCall(reinterpret_cast<void*>(1)); }) &&
      step([&] { call->Write(request, reinterpret_cast<void*>(2)); }) &&
      step([&] { call->Read(&response, reinterpret_cast<void*>(3)); })) {
    std::vector<grpc::Slice> slices;
    if (response.Dump(&slices).ok()) {
      for (const grpc::Slice& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  ctx.TryCancel();
  grpc::Status status;
  step([&] { call->Finish(&status, reinterpret_cast<void*>(4)); });
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
  return out;
}

const char* kPrompts[] = {
    "Hi",
    "The experts said that the router would",  // > one 16-token block
    "Mixture-of-experts layers route every token to two of their experts, and the prefill "
    "workers of a disaggregated deployment compute whole prompts at once.",  // > one 32 chunk
};

class OnePlusOneTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ClusterOptions o;
    o.max_prefill_chunk = 32;
    o.block_size = 16;
    auto c = TestCluster::Start(o);
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = c->release();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(cluster_, nullptr); }
  static TestCluster* cluster_;
};
TestCluster* OnePlusOneTest::cluster_ = nullptr;

TEST_F(OnePlusOneTest, GreedyTokensEqualCleaveRunForSeveralPromptLengths) {
  auto model = cleave::testing::TinyModelDir();
  ASSERT_TRUE(model.ok());
  auto stub = cluster_->GenerationStub();
  for (const char* prompt : kPrompts) {
    SCOPED_TRACE(prompt);
    const std::vector<int> expected = CleaveRunTokens(*model, prompt, 24);
    ASSERT_EQ(expected.size(), 24u);
    StreamResult r = Stream(stub.get(), Greedy(prompt, 24));
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.tokens, expected);
    EXPECT_EQ(r.last.finish_reason(), v1::FINISH_REASON_LENGTH);
    EXPECT_EQ(r.last.usage().completion_tokens(), 24);
    EXPECT_EQ(r.last.usage().prompt_tokens(), static_cast<int>(std::string(prompt).size()) + 1);
    EXPECT_GT(r.last.timing().kv_transfer_bytes(), 0);  // the KV really moved
    EXPECT_EQ(r.prefill_worker, "prefill-0");
    EXPECT_EQ(r.decode_worker, "decode-0");

    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    v1::CompleteResponse complete;
    ASSERT_TRUE(stub->Complete(&ctx, Greedy(prompt, 24), &complete).ok());
    EXPECT_EQ(std::vector<int>(complete.token_ids().begin(), complete.token_ids().end()), expected);
    EXPECT_EQ(complete.text(), r.text);
  }
  EXPECT_EQ(WaitWorkersIdle({cluster_->prefill_workers()[0], cluster_->decode_workers()[0]}), "");
}

TEST_F(OnePlusOneTest, CancellingMidStreamFreesKvBlocksOnPrefillAndDecode) {
  auto stub = cluster_->GenerationStub();
  launch::ClusterProcess* decode = cluster_->decode_workers()[0];
  launch::ClusterProcess* prefill = cluster_->prefill_workers()[0];
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  // Left alone it would run to the model's length (4096 positions, seconds): the short bound
  // below only holds if the cancel reached both workers.
  auto reader = stub->Generate(&ctx, Greedy(kPrompts[2], 100000));
  v1::GenerateResponse chunk;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(reader->Read(&chunk));
  // Mid-stream the decode worker holds the request's blocks: the check below can fail.
  auto busy = FetchWorkerStats(decode->address());
  ASSERT_TRUE(busy.ok());
  EXPECT_GT(busy->held_kv_blocks(), 0);
  EXPECT_EQ(busy->live_requests(), 1);
  ctx.TryCancel();
  while (reader->Read(&chunk)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(WaitWorkersIdle({prefill, decode}, absl::Milliseconds(1500)), "");
}

TEST_F(OnePlusOneTest, RequestDeadlineEndsTheStreamAndFreesTheBlocks) {
  auto stub = cluster_->GenerationStub();
  v1::GenerateRequest req = Greedy(kPrompts[1], 1000000);
  req.set_timeout_ms(400);
  const absl::Time start = absl::Now();
  StreamResult r = Stream(stub.get(), req);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << r.status.error_message();
  EXPECT_GT(r.tokens.size(), 0u);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(WaitWorkersIdle({cluster_->prefill_workers()[0], cluster_->decode_workers()[0]},
                            absl::Milliseconds(1500)),
            "");
}

TEST_F(OnePlusOneTest, TokenizeAndListModelsAnswerFromTheRouter) {
  auto stub = cluster_->GenerationStub();
  grpc::ClientContext ctx;
  v1::TokenizeRequest req;
  req.set_text("ab");
  req.set_add_bos(true);
  v1::TokenizeResponse tok;
  ASSERT_TRUE(stub->Tokenize(&ctx, req, &tok).ok());
  ASSERT_EQ(tok.token_ids_size(), 3);  // BOS + one id per byte (the tiny preset)
  EXPECT_EQ(tok.pieces(1), "a");
  EXPECT_EQ(tok.pieces(2), "b");
  grpc::ClientContext ctx2;
  v1::ListModelsResponse models;
  ASSERT_TRUE(stub->ListModels(&ctx2, v1::ListModelsRequest(), &models).ok());
  ASSERT_EQ(models.models_size(), 1);
  EXPECT_EQ(models.models(0).prefill_workers(), 1);
  EXPECT_EQ(models.models(0).decode_workers(), 1);
  EXPECT_GT(models.models(0).vocab_size(), 256);
}

TEST_F(OnePlusOneTest, EveryServiceAnswersHealthAndReflection) {
  struct Expect {
    launch::ClusterProcess* process;
    std::string service;
  };
  for (const Expect& e : {Expect{&cluster_->router(), "cleave.v1.Generation"},
                          Expect{cluster_->prefill_workers()[0], "cleave.v1.Prefill"},
                          Expect{cluster_->decode_workers()[0], "cleave.v1.Decode"}}) {
    SCOPED_TRACE(e.process->name);
    EXPECT_TRUE(launch::CheckServing(launch::MakeProbeChannel(e.process->address()),
                                     absl::Seconds(5)).ok());
    const std::string services = ReflectionServiceList(e.process->address());
    EXPECT_THAT(services, HasSubstr(e.service));
    EXPECT_THAT(services, HasSubstr("grpc.health.v1.Health"));
  }
}

TEST_F(OnePlusOneTest, BadInputIsInvalidArgumentNamingTheField) {
  auto stub = cluster_->GenerationStub();
  struct Case {
    v1::GenerateRequest req;
    std::string field;
  };
  std::vector<Case> cases;
  cases.push_back({v1::GenerateRequest(), "prompt"});
  v1::GenerateRequest r = Greedy("x", 4);
  r.mutable_sampling()->set_top_p(1.5f);
  cases.push_back({r, "top_p"});
  r = Greedy("x", 4);
  r.mutable_token_ids()->add_ids(5);
  r.mutable_token_ids()->add_ids(1 << 30);
  cases.push_back({r, "token_ids[1]"});
  r = Greedy("x", 4);
  r.mutable_sampling()->set_max_tokens(0);
  cases.push_back({r, "max_tokens"});
  r = Greedy("x", 4);
  r.set_model("not-this-model");
  cases.push_back({r, "model"});
  for (const Case& c : cases) {
    StreamResult res = Stream(stub.get(), c.req, absl::Seconds(10));
    EXPECT_EQ(res.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_THAT(res.status.error_message(), HasSubstr(c.field));
  }
  // The services are unharmed.
  EXPECT_TRUE(Stream(stub.get(), Greedy("ok", 4)).status.ok());
}

TEST_F(OnePlusOneTest, EveryServiceExportsItsMetrics) {
  auto stub = cluster_->GenerationStub();
  ASSERT_TRUE(Stream(stub.get(), Greedy("metrics please", 8)).status.ok());
  auto router = cleave::testing::ScrapeMetrics(cluster_->router().metrics_port);
  ASSERT_TRUE(router.ok()) << router.status();
  EXPECT_GE(cleave::testing::MetricValue(*router, "cleave_time_to_first_token_seconds_count")
                .value_or(0), 1);
  EXPECT_GE(cleave::testing::MetricValue(*router, "cleave_e2e_request_latency_seconds_count")
                .value_or(0), 1);
  EXPECT_GE(cleave::testing::MetricValue(*router, "cleave_generation_tokens_total").value_or(0), 8);
  EXPECT_GE(cleave::testing::MetricValue(
                *router, "cleave_request_success_total{finished_reason=\"length\"}")
                .value_or(0), 1);
  auto prefill = cleave::testing::ScrapeMetrics(cluster_->prefill_workers()[0]->metrics_port);
  ASSERT_TRUE(prefill.ok());
  EXPECT_GT(cleave::testing::MetricValue(*prefill, "cleave_kv_transfer_bytes_total").value_or(0), 0);
  EXPECT_EQ(cleave::testing::MetricValue(*prefill, "cleave_kv_transfer_failures_total"), 0);
  auto decode = cleave::testing::ScrapeMetrics(cluster_->decode_workers()[0]->metrics_port);
  ASSERT_TRUE(decode.ok());
  EXPECT_TRUE(cleave::testing::MetricValue(*decode, "cleave_kv_cache_usage_perc").has_value());
  EXPECT_TRUE(cleave::testing::MetricValue(*decode, "cleave_num_requests_running").has_value());
}

TEST(ClusterTest, ColocatedWorkerGivesTheSameTokens) {
  ClusterOptions o;
  o.prefill = 0;
  o.decode = 0;
  o.colocated = 1;
  auto cluster = TestCluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto model = cleave::testing::TinyModelDir();
  ASSERT_TRUE(model.ok());
  auto stub = (*cluster)->GenerationStub();
  StreamResult r = Stream(stub.get(), Greedy(kPrompts[1], 16));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.tokens, CleaveRunTokens(*model, kPrompts[1], 16));
  EXPECT_EQ(r.last.timing().kv_transfer_bytes(), 0);
  EXPECT_EQ(r.decode_worker, "colocated-0");
}

TEST(ClusterTest, NoHealthyWorkerIsUnavailableAtOnce) {
  ClusterOptions o;
  o.heartbeat_timeout_ms = 1000;
  auto cluster = TestCluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  ASSERT_TRUE((*cluster)->process("prefill-0")->process->Signal(SIGKILL).ok());
  // The router notices the silence within its heartbeat timeout.
  auto channel = launch::MakeProbeChannel((*cluster)->router_address());
  const absl::Time limit = absl::Now() + absl::Seconds(10);
  int prefill = -1;
  while (absl::Now() < limit && prefill != 0) {
    auto counts = launch::QueryWorkerCounts(channel, absl::Seconds(2));
    if (counts.ok()) prefill = counts->prefill;
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_EQ(prefill, 0);
  auto stub = (*cluster)->GenerationStub();
  const absl::Time start = absl::Now();
  StreamResult r = Stream(stub.get(), Greedy("anyone?", 4), absl::Seconds(30));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(r.status.error_message(), HasSubstr("no healthy prefill worker"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
}

TEST(ClusterTest, SixtyFourConcurrentStreamsOnTwoPlusTwoAllCompleteAndUseBothPairs) {
  ClusterOptions o;
  o.prefill = 2;
  o.decode = 2;
  o.policy = "round_robin";
  auto cluster = TestCluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto model = cleave::testing::TinyModelDir();
  ASSERT_TRUE(model.ok());
  std::vector<std::vector<int>> expected;
  for (const char* p : kPrompts) expected.push_back(CleaveRunTokens(*model, p, 20));
  auto stub = (*cluster)->GenerationStub();
  std::vector<StreamResult> results(64);
  std::vector<std::thread> clients;
  for (int i = 0; i < 64; ++i) {
    clients.emplace_back([&, i] { results[i] = Stream(stub.get(), Greedy(kPrompts[i % 3], 20)); });
  }
  for (std::thread& t : clients) t.join();
  std::set<std::string> prefills, decodes;
  for (int i = 0; i < 64; ++i) {
    SCOPED_TRACE(i);
    ASSERT_TRUE(results[i].status.ok()) << results[i].status.error_message();
    EXPECT_EQ(results[i].tokens, expected[i % 3]);
    prefills.insert(results[i].prefill_worker);
    decodes.insert(results[i].decode_worker);
  }
  EXPECT_EQ(prefills, (std::set<std::string>{"prefill-0", "prefill-1"}));
  EXPECT_EQ(decodes, (std::set<std::string>{"decode-0", "decode-1"}));
  std::vector<launch::ClusterProcess*> workers = (*cluster)->prefill_workers();
  for (auto* d : (*cluster)->decode_workers()) workers.push_back(d);
  EXPECT_EQ(WaitWorkersIdle(workers), "");
}

TEST(ClusterFaultTest, KilledDecodeWorkerFailsItsStreamsFastAndTheSurvivorServes) {
  ClusterOptions o;
  o.prefill = 1;
  o.decode = 2;
  o.policy = "round_robin";
  o.prefill_flags = {"--kv_transfer_timeout_ms=2000"};
  auto cluster = TestCluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto stub = (*cluster)->GenerationStub();
  constexpr int kStreams = 4;
  std::vector<std::unique_ptr<grpc::ClientContext>> ctxs;
  std::vector<std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>>> readers;
  std::vector<std::string> decode_of(kStreams);
  for (int i = 0; i < kStreams; ++i) {
    ctxs.push_back(std::make_unique<grpc::ClientContext>());
    ctxs.back()->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    readers.push_back(stub->Generate(ctxs.back().get(), Greedy(kPrompts[1], 100000)));
    v1::GenerateResponse first;
    ASSERT_TRUE(readers.back()->Read(&first));
    decode_of[i] = first.timing().decode_worker();
  }
  ASSERT_EQ(std::count(decode_of.begin(), decode_of.end(), "decode-0"), kStreams / 2);
  ASSERT_TRUE((*cluster)->process("decode-0")->process->Signal(SIGKILL).ok());
  const absl::Time killed = absl::Now();
  for (int i = 0; i < kStreams; ++i) {
    if (decode_of[i] != "decode-0") continue;
    v1::GenerateResponse chunk;
    while (readers[i]->Read(&chunk)) {
    }
    grpc::Status st = readers[i]->Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
    EXPECT_LT(absl::Now() - killed, absl::Seconds(10));
  }
  // New requests all go to the survivor and succeed.
  for (int i = 0; i < 4; ++i) {
    StreamResult r = Stream(stub.get(), Greedy(kPrompts[i % 3], 8), absl::Seconds(30));
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.decode_worker, "decode-1");
  }
  // The survivor's streams were never disturbed; end them and check nothing leaks.
  for (int i = 0; i < kStreams; ++i) {
    if (decode_of[i] == "decode-0") continue;
    v1::GenerateResponse chunk;
    EXPECT_TRUE(readers[i]->Read(&chunk));
    ctxs[i]->TryCancel();
    while (readers[i]->Read(&chunk)) {
    }
    readers[i]->Finish();
  }
  EXPECT_EQ(WaitWorkersIdle({(*cluster)->process("prefill-0"), (*cluster)->process("decode-1")}),
            "");
}

TEST(ClusterFaultTest, KilledPrefillWorkerFailsItsRequestsAndTheSurvivorServes) {
  ClusterOptions o;
  o.prefill = 2;
  o.decode = 1;
  o.policy = "round_robin";
  // Slow prefill on purpose: 8 tokens a step, so prompts queue on the prefill workers.
  o.max_num_batched_tokens = 8;
  o.max_prefill_chunk = 8;
  // Reservations orphaned by the dead prefill worker are held this long against late writes.
  o.decode_flags = {"--handoff_quarantine_ms=1000"};
  auto cluster = TestCluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto stub = (*cluster)->GenerationStub();
  const std::string long_prompt(1500, 'x');
  constexpr int kRequests = 8;
  std::vector<StreamResult> results(kRequests);
  std::vector<std::thread> clients;
  for (int i = 0; i < kRequests; ++i) {
    clients.emplace_back([&, i] {
      results[i] = Stream(stub.get(), Greedy(long_prompt + std::to_string(i), 4), absl::Seconds(60));
    });
  }
  absl::SleepFor(absl::Milliseconds(300));
  ASSERT_TRUE((*cluster)->process("prefill-0")->process->Signal(SIGKILL).ok());
  const absl::Time killed = absl::Now();
  for (std::thread& t : clients) t.join();
  EXPECT_LT(absl::Now() - killed, absl::Seconds(30));
  int unavailable = 0;
  for (const StreamResult& r : results) {
    if (r.status.ok()) continue;
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE) << r.status.error_message();
    EXPECT_THAT(r.status.error_message(), HasSubstr("prefill-0"));
    ++unavailable;
  }
  EXPECT_GT(unavailable, 0) << "the kill came after every prefill finished; nothing was tested";
  for (int i = 0; i < 3; ++i) {
    StreamResult r = Stream(stub.get(), Greedy(kPrompts[i], 4), absl::Seconds(30));
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.prefill_worker, "prefill-1");
  }
  EXPECT_EQ(WaitWorkersIdle({(*cluster)->process("prefill-1"), (*cluster)->process("decode-0")}),
            "");
}

}  // namespace
}  // namespace cleave
