// A dead or vanished peer costs a Write a bounded error, never a hang or a crash, on every
// transport set, and the agent keeps working with live peers afterwards.
#include <sys/resource.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "engine/runtime/backend.h"
#include "engine/transfer/kv_block_layout.h"
#include "engine/transfer/ucx_agent.h"
#include "gtest/gtest.h"
#include "tests/unit/transfer/transfer_test_util.h"

namespace cleave {
namespace {

using transfer_test::StartTarget;
using transfer_test::Target;

constexpr absl::Duration kDeadTimeout = absl::Seconds(2);
// The deadline plus the force-close grace plus scheduling slack on a loaded 2-core machine.
constexpr absl::Duration kMustReturnWithin = absl::Seconds(5);

KvStorageShape Shape() {
  KvStorageShape s;
  s.num_layers = 1;
  s.num_blocks = 4;
  s.block_size = 16;
  s.num_kv_heads = 4;
  s.head_dim = 32;  // 8 KB blocks
  return s;
}

double ProcessCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

struct FailureCase {
  std::string name;
  std::string transports;  // "-" = UCX default
  bool peer_error_handling;
};

class DeadPeerTest : public ::testing::TestWithParam<FailureCase> {
 protected:
  void SetUp() override {
    UcxAgentOptions options;
    options.transports = GetParam().transports == "-" ? "" : GetParam().transports;
    options.peer_error_handling = GetParam().peer_error_handling;
    auto agent = UcxAgent::Create(options);
    ASSERT_TRUE(agent.ok()) << agent.status();
    agent_ = *std::move(agent);
    local_.assign(KvBlockBytes(Shape()), 'q');
  }

  // One block into K0 block 1 of `t`.
  std::vector<TransferSegment> Segments(const Target& t) {
    auto view = RemoteKvPoolView(Shape(), t.descriptor);
    EXPECT_TRUE(view.ok()) << view.status();
    return {{local_.data(), view.ok() ? view->k_base[0] + local_.size() : 0, local_.size()}};
  }

  // Writes to `t`, expecting a timely DEADLINE_EXCEEDED or UNAVAILABLE.
  void ExpectBoundedFailure(const Target& t, const char* what) {
    const absl::Time start = absl::Now();
    const absl::Status s = agent_->Write(t.address, t.descriptor, Segments(t), kDeadTimeout);
    const absl::Duration took = absl::Now() - start;
    EXPECT_FALSE(s.ok()) << what;
    EXPECT_TRUE(absl::IsDeadlineExceeded(s) || absl::IsUnavailable(s)) << what << ": " << s;
    EXPECT_LT(took, kMustReturnWithin) << what << ": " << s;
    std::printf("[%s] %s: %s after %s\n", GetParam().name.c_str(), what, s.ToString().c_str(),
                absl::FormatDuration(took).c_str());
  }

  // The agent is not wedged: a fresh peer gets its bytes.
  void ExpectStillWorks() {
    auto fresh = StartTarget(GetParam().transports, Shape(), 2);
    ASSERT_TRUE(fresh.ok()) << fresh.status();
    const absl::Status s =
        agent_->Write(fresh->address, fresh->descriptor, Segments(*fresh), absl::Seconds(20));
    ASSERT_TRUE(s.ok()) << s;
    auto dump = fresh->Dump();
    ASSERT_TRUE(dump.ok()) << dump.status();
    EXPECT_EQ((*dump)[0].substr(local_.size(), local_.size()),
              std::string(local_.begin(), local_.end()));
  }

  std::unique_ptr<UcxAgent> agent_;
  std::vector<char> local_;
};

TEST_P(DeadPeerTest, KilledAfterConnectingFailsWithinDeadline) {
  auto target = StartTarget(GetParam().transports, Shape(), 1);
  ASSERT_TRUE(target.ok()) << target.status();
  const absl::Status first =
      agent_->Write(target->address, target->descriptor, Segments(*target), absl::Seconds(20));
  ASSERT_TRUE(first.ok()) << first;
  target->process.Kill();  // SIGKILL and reaped: no goodbye on any transport
  ExpectBoundedFailure(*target, "write to a killed peer");
  ExpectBoundedFailure(*target, "reconnect to a killed peer");
  // An abandoned request must not keep the progress thread spinning.
  const double cpu_before = ProcessCpuSeconds();
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_LT(ProcessCpuSeconds() - cpu_before, 0.15) << "agent burns CPU while idle";
  ExpectStillWorks();
}

TEST_P(DeadPeerTest, PeerThatExitedBeforeFirstContactFailsWithinDeadline) {
  auto target = StartTarget(GetParam().transports, Shape(), 1);
  ASSERT_TRUE(target.ok()) << target.status();
  ASSERT_TRUE(target->process.Send("quit"));
  ASSERT_EQ(target->process.WaitExit(absl::Seconds(20)), 0);
  ExpectBoundedFailure(*target, "write to an exited peer");
  ExpectStillWorks();
}

// The other direction: a writer killed in the middle of large writes must neither crash nor
// wedge the target, and the next writer's bytes land in full.
TEST_P(DeadPeerTest, TargetSurvivesAWriterKilledMidTransfer) {
  KvStorageShape shape = Shape();
  shape.num_blocks = 512;  // 4 MB arrays: each write takes milliseconds
  std::unique_ptr<Backend> backend = MakeCpuBackend();
  absl::StatusOr<KvStorage> kv = KvStorage::Create(backend.get(), shape);
  ASSERT_TRUE(kv.ok()) << kv.status();
  absl::StatusOr<std::string> descriptor = agent_->RegisterMemory(KvStorageRegions(*kv));
  ASSERT_TRUE(descriptor.ok()) << descriptor.status();
  constexpr uint64_t kWriterSeed = 3;
  for (int round = 0; round < 3; ++round) {
    auto writer = StartTarget(GetParam().transports, shape, kWriterSeed);
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE(writer->process.Send("write") && writer->process.Send(agent_->address()) &&
                writer->process.Send(*descriptor));
    auto written = writer->process.Receive(absl::Seconds(20));
    ASSERT_TRUE(written.ok()) << written.status();
    ASSERT_EQ(*written, "written");
    if (round < 2) {
      absl::SleepFor(absl::Milliseconds(1 + 2 * round));  // somewhere inside a later write
      writer->process.Kill();
      continue;
    }
    ASSERT_TRUE(writer->process.Send("quit"));
    ASSERT_EQ(writer->process.WaitExit(absl::Seconds(20)), 0);
  }
  std::string want(KvLayerBytes(shape), '\0');
  transfer_test::FillPattern(want.data(), want.size(), transfer_test::RegionSeed(kWriterSeed, 0));
  EXPECT_EQ(0, std::memcmp(kv->k(0), want.data(), want.size()));
  const std::string zeros(KvLayerBytes(shape), '\0');
  EXPECT_EQ(0, std::memcmp(kv->v(0), zeros.data(), zeros.size())) << "V0 was never a target";
}

INSTANTIATE_TEST_SUITE_P(Transports, DeadPeerTest,
                         ::testing::Values(FailureCase{"default", "-", false},
                                           FailureCase{"posix_cma", "posix,cma,self", false},
                                           FailureCase{"tcp", "tcp", false},
                                           FailureCase{"tcp_peer_errors", "tcp", true}),
                         [](const ::testing::TestParamInfo<FailureCase>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace cleave
