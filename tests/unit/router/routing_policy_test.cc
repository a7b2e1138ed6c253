// The routing policies on hand-made worker views: who gets the next request.
#include <map>
#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "services/router/routing_policy.h"

namespace cleave {
namespace {

WorkerView View(uint64_t id, int64_t queued_prefill, int in_flight, int free_blocks,
                int64_t in_flight_prompt = 0) {
  WorkerView v;
  v.handle = std::make_shared<WorkerHandle>();
  v.handle->id = id;
  v.load.set_queued_prefill_tokens(queued_prefill);
  v.load.set_free_kv_blocks(free_blocks);
  v.in_flight = in_flight;
  v.in_flight_prompt_tokens = in_flight_prompt;
  return v;
}

TEST(RoutingPolicyTest, UnknownPolicyIsRejectedByName) {
  auto p = MakeRoutingPolicy("random");
  EXPECT_TRUE(absl::IsInvalidArgument(p.status()));
  EXPECT_NE(p.status().message().find("policy"), absl::string_view::npos);
}

TEST(RoutingPolicyTest, RoundRobinVisitsEveryWorkerInTurn) {
  auto p = *MakeRoutingPolicy("round_robin");
  std::vector<WorkerView> w = {View(1, 0, 0, 0), View(2, 0, 0, 0), View(3, 0, 0, 0)};
  std::map<size_t, int> prefill, decode;
  for (int i = 0; i < 30; ++i) {
    ++prefill[p->PickPrefill(w, {})];
    ++decode[p->PickDecode(w, {})];
  }
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(prefill[i], 10);
    EXPECT_EQ(decode[i], 10);
  }
}

TEST(RoutingPolicyTest, LeastLoadSendsPrefillToTheShortestPromptQueue) {
  auto p = *MakeRoutingPolicy("least_load");
  // Worker 1 reports the fewest queued tokens, but the router has just sent it a long prompt.
  std::vector<WorkerView> w = {View(0, 500, 0, 0), View(1, 10, 1, 0, 900), View(2, 300, 0, 0)};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(p->PickPrefill(w, {}), 2u);
}

TEST(RoutingPolicyTest, LeastLoadSendsDecodeToFewestStreamsThenMostFreeBlocks) {
  auto p = *MakeRoutingPolicy("least_load");
  std::vector<WorkerView> w = {View(0, 0, 3, 900), View(1, 0, 2, 10), View(2, 0, 2, 500)};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(p->PickDecode(w, {}), 2u);
}

TEST(RoutingPolicyTest, LeastLoadSpreadsTiesAcrossEqualWorkers) {
  auto p = *MakeRoutingPolicy("least_load");
  std::vector<WorkerView> w = {View(0, 0, 0, 100), View(1, 0, 0, 100)};
  std::map<size_t, int> picks;
  for (int i = 0; i < 10; ++i) ++picks[p->PickDecode(w, {})];
  EXPECT_EQ(picks[0], 5);
  EXPECT_EQ(picks[1], 5);
}

}  // namespace
}  // namespace cleave
