// The router's worker registry: registration, heartbeats, dropping silent or failed workers.
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "services/router/worker_registry.h"

namespace cleave {
namespace {

v1::RegisterRequest Worker(v1::WorkerRole role, const std::string& address) {
  v1::RegisterRequest r;
  r.set_role(role);
  r.set_address(address);
  r.set_instance(address);
  return r;
}

TEST(WorkerRegistryTest, RolesCountColocatedWorkersAsBoth) {
  WorkerRegistry reg(absl::Milliseconds(100), absl::Seconds(10));
  ASSERT_TRUE(reg.Register(Worker(v1::WORKER_ROLE_PREFILL, "127.0.0.1:1")).ok());
  ASSERT_TRUE(reg.Register(Worker(v1::WORKER_ROLE_DECODE, "127.0.0.1:2")).ok());
  ASSERT_TRUE(reg.Register(Worker(v1::WORKER_ROLE_COLOCATED, "127.0.0.1:3")).ok());
  EXPECT_EQ(reg.Count(v1::WORKER_ROLE_PREFILL), 2);
  EXPECT_EQ(reg.Count(v1::WORKER_ROLE_DECODE), 2);
  EXPECT_EQ(reg.Workers(v1::WORKER_ROLE_DECODE).size(), 2u);
}

TEST(WorkerRegistryTest, BadRegistrationsNameTheField) {
  WorkerRegistry reg(absl::Milliseconds(100), absl::Seconds(10));
  auto no_role = reg.Register(Worker(v1::WORKER_ROLE_UNSPECIFIED, "127.0.0.1:1"));
  EXPECT_TRUE(absl::IsInvalidArgument(no_role.status()));
  EXPECT_NE(no_role.status().message().find("role"), absl::string_view::npos);
  auto no_address = reg.Register(Worker(v1::WORKER_ROLE_DECODE, ""));
  EXPECT_NE(no_address.status().message().find("address"), absl::string_view::npos);
}

TEST(WorkerRegistryTest, SilentWorkerIsDroppedAndItsHeartbeatIsThenNotFound) {
  WorkerRegistry reg(absl::Milliseconds(50), absl::Milliseconds(300));
  auto alive = reg.Register(Worker(v1::WORKER_ROLE_DECODE, "127.0.0.1:1"));
  auto silent = reg.Register(Worker(v1::WORKER_ROLE_DECODE, "127.0.0.1:2"));
  ASSERT_TRUE(alive.ok() && silent.ok());
  const absl::Time until = absl::Now() + absl::Milliseconds(900);
  while (absl::Now() < until) {
    ASSERT_TRUE(reg.Heartbeat(*alive, v1::WorkerLoad()).ok());
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_EQ(reg.Count(v1::WORKER_ROLE_DECODE), 1);
  EXPECT_EQ(reg.Workers(v1::WORKER_ROLE_DECODE)[0].handle->id, *alive);
  EXPECT_TRUE(absl::IsNotFound(reg.Heartbeat(*silent, v1::WorkerLoad())));
}

TEST(WorkerRegistryTest, MarkDownStopsRoutingAtOnceAndReRegisteringReplaces) {
  WorkerRegistry reg(absl::Milliseconds(100), absl::Seconds(10));
  auto id = reg.Register(Worker(v1::WORKER_ROLE_PREFILL, "127.0.0.1:1"));
  ASSERT_TRUE(id.ok());
  reg.MarkDown(*id);
  EXPECT_EQ(reg.Count(v1::WORKER_ROLE_PREFILL), 0);
  auto again = reg.Register(Worker(v1::WORKER_ROLE_PREFILL, "127.0.0.1:1"));
  auto twice = reg.Register(Worker(v1::WORKER_ROLE_PREFILL, "127.0.0.1:1"));
  ASSERT_TRUE(again.ok() && twice.ok());
  EXPECT_NE(*again, *twice);
  EXPECT_EQ(reg.Count(v1::WORKER_ROLE_PREFILL), 1);  // one address, one worker
}

TEST(WorkerRegistryTest, InFlightAccountingFeedsTheViews) {
  WorkerRegistry reg(absl::Milliseconds(100), absl::Seconds(10));
  auto id = reg.Register(Worker(v1::WORKER_ROLE_PREFILL, "127.0.0.1:1"));
  ASSERT_TRUE(id.ok());
  reg.Acquire(*id, 100);
  reg.Acquire(*id, 20);
  reg.Release(*id, 100);
  const WorkerView v = reg.Workers(v1::WORKER_ROLE_PREFILL)[0];
  EXPECT_EQ(v.in_flight, 1);
  EXPECT_EQ(v.in_flight_prompt_tokens, 20);
}

}  // namespace
}  // namespace cleave
