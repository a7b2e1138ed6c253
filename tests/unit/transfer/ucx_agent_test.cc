// UcxAgent against a real second process (transfer_test_peer, spawned): KV blocks land
// byte-exact at their new block ids and nothing else changes; concurrent writers do not
// interfere; malformed or out-of-range requests fail cleanly on either side.
#include "engine/transfer/ucx_agent.h"

#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/runtime/backend.h"
#include "engine/runtime/kv_storage.h"
#include "engine/transfer/kv_block_layout.h"
#include "engine/transfer/ucx_wire.h"
#include "gtest/gtest.h"
#include "tests/unit/transfer/transfer_test_util.h"

namespace cleave {
namespace {

using transfer_test::FillKvStorage;
using transfer_test::FillPattern;
using transfer_test::RegionSeed;
using transfer_test::StartTarget;
using transfer_test::Target;

constexpr uint64_t kSourceSeed = 11, kTargetSeed = 22;
constexpr absl::Duration kWriteTimeout = absl::Seconds(20);

KvStorageShape SmallShape(int num_blocks) {
  KvStorageShape s;
  s.num_layers = 3;
  s.num_blocks = num_blocks;
  s.block_size = 4;
  s.num_kv_heads = 2;
  s.head_dim = 16;  // 512-byte blocks: below every eager threshold
  return s;
}

KvStorageShape LargeShape(int num_blocks) {
  KvStorageShape s;
  s.num_layers = 2;
  s.num_blocks = num_blocks;
  s.block_size = 16;
  s.num_kv_heads = 8;
  s.head_dim = 64;  // 32 KB blocks; runs of several blocks make MB-scale segments
  return s;
}

// What the target's region r must hold after `src_blocks[i] -> dst_blocks[i]` of `source`:
// its own pattern, with the transferred blocks replaced.
std::string ExpectedRegion(const KvStorage& source, const KvStorageShape& dst_shape, int region,
                           const std::vector<int>& src_blocks, const std::vector<int>& dst_blocks) {
  const size_t block = KvBlockBytes(dst_shape);
  std::string want(block * dst_shape.num_blocks, '\0');
  FillPattern(want.data(), want.size(), RegionSeed(kTargetSeed, region));
  const int layer = region / 2;
  const char* src =
      reinterpret_cast<const char*>(region % 2 == 0 ? source.k(layer) : source.v(layer));
  for (size_t i = 0; i < src_blocks.size(); ++i) {
    std::memcpy(want.data() + dst_blocks[i] * block, src + src_blocks[i] * block, block);
  }
  return want;
}

// Compares the target's memory block by block against ExpectedRegion.
void ExpectTargetHolds(Target& target, const KvStorage& source, const std::vector<int>& src_blocks,
                       const std::vector<int>& dst_blocks) {
  auto dump = target.Dump();
  ASSERT_TRUE(dump.ok()) << dump.status();
  const KvStorageShape& shape = target.shape;
  const size_t block = KvBlockBytes(shape);
  ASSERT_EQ(dump->size(), 2u * shape.num_layers);
  int transferred = 0;
  for (int r = 0; r < 2 * shape.num_layers; ++r) {
    const std::string want = ExpectedRegion(source, shape, r, src_blocks, dst_blocks);
    ASSERT_EQ((*dump)[r].size(), want.size());
    for (int b = 0; b < shape.num_blocks; ++b) {
      const bool moved = std::find(dst_blocks.begin(), dst_blocks.end(), b) != dst_blocks.end();
      transferred += moved;
      EXPECT_EQ(0, std::memcmp((*dump)[r].data() + b * block, want.data() + b * block, block))
          << "layer " << r / 2 << (r % 2 ? " V" : " K") << " block " << b
          << (moved ? " (transferred)" : " (must be untouched)");
    }
  }
  EXPECT_EQ(transferred, 2 * shape.num_layers * static_cast<int>(dst_blocks.size()));
}

struct RoundTripCase {
  std::string name;
  std::string transports;  // "-" = UCX default
  WriteProtocol protocol;
  bool large;
};

class KvRoundTripTest : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(KvRoundTripTest, PermutedBlocksLandExactlyAndNothingElseChanges) {
  const RoundTripCase& c = GetParam();
  const KvStorageShape dst_shape = c.large ? LargeShape(40) : SmallShape(24);
  KvStorageShape src_shape = dst_shape;
  src_shape.num_blocks = c.large ? 36 : 20;  // pools of different sizes, same block geometry
  std::unique_ptr<Backend> backend = MakeCpuBackend();
  absl::StatusOr<KvStorage> source = KvStorage::Create(backend.get(), src_shape);
  ASSERT_TRUE(source.ok()) << source.status();
  FillKvStorage(*source, kSourceSeed);

  auto target = StartTarget(c.transports, dst_shape, kTargetSeed);
  ASSERT_TRUE(target.ok()) << target.status();
  UcxAgentOptions options;
  options.transports = c.transports == "-" ? "" : c.transports;
  options.protocol = c.protocol;
  auto agent = UcxAgent::Create(options);
  ASSERT_TRUE(agent.ok()) << agent.status();
  auto remote = RemoteKvPoolView(dst_shape, target->descriptor);
  ASSERT_TRUE(remote.ok()) << remote.status();
  const KvPoolView local = LocalKvPoolView(*source);

  // Two writes over one cached connection; runs of 3, 1, 1, 2, 1 and then 10 + 1 + 1 blocks.
  const std::vector<int> src1 = {3, 4, 5, 17, 0, 9, 10, 12};
  const std::vector<int> dst1 = {20, 21, 22, 2, 7, 13, 14, 1};
  const std::vector<int> src2 = c.large
                                    ? std::vector<int>{20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 1, 1}
                                    : std::vector<int>{8, 6};
  const std::vector<int> dst2 =
      c.large ? std::vector<int>{24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 39, 0}
              : std::vector<int>{23, 0};
  for (const auto& [src, dst] : {std::pair(src1, dst1), std::pair(src2, dst2)}) {
    auto segments = KvBlockSegments(local, *remote, src, dst);
    ASSERT_TRUE(segments.ok()) << segments.status();
    absl::Status s = (*agent)->Write(target->address, target->descriptor, *segments, kWriteTimeout);
    ASSERT_TRUE(s.ok()) << s;
  }
  std::vector<int> all_src = src1, all_dst = dst1;
  all_src.insert(all_src.end(), src2.begin(), src2.end());
  all_dst.insert(all_dst.end(), dst2.begin(), dst2.end());
  ExpectTargetHolds(*target, *source, all_src, all_dst);
}

INSTANTIATE_TEST_SUITE_P(
    Transports, KvRoundTripTest,
    ::testing::Values(RoundTripCase{"default", "-", WriteProtocol::kRendezvous, false},
                      RoundTripCase{"default_large", "-", WriteProtocol::kRendezvous, true},
                      RoundTripCase{"posix_cma", "posix,cma,self", WriteProtocol::kRendezvous,
                                    false},
                      RoundTripCase{"tcp_large", "tcp", WriteProtocol::kRendezvous, true},
                      RoundTripCase{"rma_posix_cma", "posix,cma,self", WriteProtocol::kRma, false}),
    [](const ::testing::TestParamInfo<RoundTripCase>& info) { return info.param.name; });

TEST(UcxAgentTest, ConcurrentWritersToOneTarget) {
  const KvStorageShape shape = SmallShape(32);
  std::unique_ptr<Backend> backend = MakeCpuBackend();
  absl::StatusOr<KvStorage> source = KvStorage::Create(backend.get(), shape);
  ASSERT_TRUE(source.ok()) << source.status();
  FillKvStorage(*source, kSourceSeed);
  auto target = StartTarget("-", shape, kTargetSeed);
  ASSERT_TRUE(target.ok()) << target.status();
  auto agent = UcxAgent::Create({});
  ASSERT_TRUE(agent.ok()) << agent.status();
  auto remote = RemoteKvPoolView(shape, target->descriptor);
  ASSERT_TRUE(remote.ok()) << remote.status();

  // Thread t moves blocks t, t+4, ... (scattered) to 31-t, 27-t, ...; 5 rounds each.
  constexpr int kThreads = 4;
  std::vector<int> all_src, all_dst;
  std::vector<std::vector<TransferSegment>> work(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    std::vector<int> src, dst;
    for (int b = t; b < shape.num_blocks; b += kThreads) {
      src.push_back(b);
      dst.push_back(shape.num_blocks - 1 - b);
    }
    auto segments = KvBlockSegments(LocalKvPoolView(*source), *remote, src, dst);
    ASSERT_TRUE(segments.ok()) << segments.status();
    work[t] = *segments;
    all_src.insert(all_src.end(), src.begin(), src.end());
    all_dst.insert(all_dst.end(), dst.begin(), dst.end());
  }
  std::vector<absl::Status> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 5 && results[t].ok(); ++round) {
        results[t] = (*agent)->Write(target->address, target->descriptor, work[t], kWriteTimeout);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_TRUE(results[t].ok()) << "thread " << t << results[t];
  ExpectTargetHolds(*target, *source, all_src, all_dst);
}

TEST(UcxAgentTest, MalformedAddressesAndDescriptorsFailCleanly) {
  const KvStorageShape shape = SmallShape(8);
  auto target = StartTarget("-", shape, kTargetSeed);
  ASSERT_TRUE(target.ok()) << target.status();
  auto agent = UcxAgent::Create({});
  ASSERT_TRUE(agent.ok()) << agent.status();
  auto remote = RemoteKvPoolView(shape, target->descriptor);
  ASSERT_TRUE(remote.ok()) << remote.status();
  std::vector<char> local(KvBlockBytes(shape), 'x');
  const std::vector<TransferSegment> one = {{local.data(), remote->k_base[0], local.size()}};
  const std::string& addr = target->address;
  const std::string& desc = target->descriptor;

  auto expect_invalid = [&](const std::string& a, const std::string& d,
                            const std::vector<TransferSegment>& segs, const char* what) {
    const absl::Status s = (*agent)->Write(a, d, segs, absl::Seconds(5));
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << what << ": " << s;
  };
  std::string flipped_addr = addr, flipped_desc = desc;
  flipped_addr[flipped_addr.size() / 2] ^= 0x40;
  flipped_desc[flipped_desc.size() / 3] ^= 0x01;
  std::string noise(200, '\0');
  FillPattern(noise.data(), noise.size(), 5);
  expect_invalid("", desc, one, "empty address");
  expect_invalid("hello", desc, one, "short garbage address");
  expect_invalid(noise, desc, one, "random address bytes");
  expect_invalid(flipped_addr, desc, one, "address with a flipped bit");
  expect_invalid(addr.substr(0, addr.size() - 1), desc, one, "truncated address");
  expect_invalid(addr, "", one, "empty descriptor");
  expect_invalid(addr, noise, one, "random descriptor bytes");
  expect_invalid(addr, flipped_desc, one, "descriptor with a flipped bit");
  expect_invalid(addr, desc.substr(0, desc.size() - 9), one, "truncated descriptor");
  expect_invalid(addr, desc + "x", one, "descriptor with a trailing byte");

  // A descriptor of another agent (ours) does not go with the target's address.
  auto own = (*agent)->RegisterMemory(std::vector<MemoryRegion>{{local.data(), local.size()}});
  ASSERT_TRUE(own.ok()) << own.status();
  expect_invalid(addr, *own, one, "descriptor of another agent");

  // Segments that leave every region: past the end, straddling the end, below the start,
  // and at an address in no region at all; plus a segment with no local buffer.
  const uint64_t layer = KvLayerBytes(shape);
  const uint64_t k0 = remote->k_base[0];
  expect_invalid(addr, desc, {{local.data(), k0 + layer, 8}}, "one past the end");
  expect_invalid(addr, desc, {{local.data(), k0 + layer - 10, 100}}, "straddles the end");
  expect_invalid(addr, desc, {{local.data(), k0 - 8, 16}}, "starts before the region");
  expect_invalid(addr, desc, {{local.data(), 4096, 16}}, "address in no region");
  expect_invalid(addr, desc, {{local.data(), k0, 16}, {local.data(), k0 + layer - 4, 8}},
                 "second of two segments outside");
  expect_invalid(addr, desc, {{nullptr, k0, 16}}, "no local buffer");

  // None of that broke anything: a proper write still works, and empty writes are no-ops.
  EXPECT_TRUE((*agent)->Write(addr, desc, one, kWriteTimeout).ok());
  EXPECT_TRUE((*agent)->Write(addr, desc, std::vector<TransferSegment>{}, kWriteTimeout).ok());
  const std::vector<TransferSegment> empty = {{local.data(), k0, 0}};
  EXPECT_TRUE((*agent)->Write(addr, desc, empty, kWriteTimeout).ok());
}

// A writer that trusts a forged descriptor (right agent, memory the target never registered)
// is stopped by the target itself, the connection survives, and the target is unharmed.
TEST(UcxAgentTest, TargetRejectsSegmentsOutsideItsRegistrations) {
  const KvStorageShape shape = SmallShape(8);
  auto target = StartTarget("-", shape, kTargetSeed);
  ASSERT_TRUE(target.ok()) << target.status();
  auto agent = UcxAgent::Create({});
  ASSERT_TRUE(agent.ok()) << agent.status();
  auto real = ucx_wire::DecodeRemoteDescriptor(target->descriptor);
  ASSERT_TRUE(real.ok()) << real.status();
  ucx_wire::RemoteDescriptor forged = *real;
  forged.regions[0].base += KvLayerBytes(shape);  // just past the real K0 array
  const std::string forged_bytes = ucx_wire::EncodeRemoteDescriptor(forged);
  std::vector<char> local(64, 'z');
  const std::vector<TransferSegment> past_k0 = {
      {local.data(), forged.regions[0].base, local.size()}};
  const absl::Status s = (*agent)->Write(target->address, forged_bytes, past_k0, kWriteTimeout);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;

  forged = *real;
  forged.registration_id += 7;  // a registration the target does not have
  const std::vector<TransferSegment> in_v0 = {{local.data(), real->regions[1].base, local.size()}};
  const absl::Status s2 = (*agent)->Write(target->address, ucx_wire::EncodeRemoteDescriptor(forged),
                                          in_v0, kWriteTimeout);
  EXPECT_TRUE(absl::IsInvalidArgument(s2)) << s2;

  // Still connected and correct: a real write lands, nothing else moved.
  std::unique_ptr<Backend> backend = MakeCpuBackend();
  absl::StatusOr<KvStorage> source = KvStorage::Create(backend.get(), shape);
  ASSERT_TRUE(source.ok()) << source.status();
  FillKvStorage(*source, kSourceSeed);
  auto remote = RemoteKvPoolView(shape, target->descriptor);
  ASSERT_TRUE(remote.ok()) << remote.status();
  const std::vector<int> src = {1, 2}, dst = {6, 3};
  auto segments = KvBlockSegments(LocalKvPoolView(*source), *remote, src, dst);
  ASSERT_TRUE(segments.ok()) << segments.status();
  ASSERT_TRUE((*agent)->Write(target->address, target->descriptor, *segments, kWriteTimeout).ok());
  ExpectTargetHolds(*target, *source, src, dst);
}

TEST(UcxAgentTest, BadOptionsAndRegistrationsAreErrors) {
  UcxAgentOptions bad;
  bad.transports = "no_such_transport";
  EXPECT_FALSE(UcxAgent::Create(bad).ok());
  auto agent = UcxAgent::Create({});
  ASSERT_TRUE(agent.ok()) << agent.status();
  EXPECT_TRUE(absl::IsInvalidArgument((*agent)->RegisterMemory({}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      (*agent)->RegisterMemory(std::vector<MemoryRegion>{{nullptr, 16}}).status()));
  EXPECT_FALSE((*agent)->address().empty());
}

}  // namespace
}  // namespace cleave
