// The transfer wire formats round-trip, and anything that is not an intact encoding (corrupt,
// truncated, random) is INVALID_ARGUMENT rather than something UCX would be handed.
#include "engine/transfer/ucx_wire.h"

#include <random>
#include <string>

#include "gtest/gtest.h"

namespace cleave::ucx_wire {
namespace {

AgentAddress SampleAddress() {
  AgentAddress a;
  a.agent_id = 0x1234567890abcdefull;
  a.pid = 4242;
  a.worker_address = std::string("\x00\x01ucx-worker\xff", 13);
  return a;
}

RemoteDescriptor SampleDescriptor() {
  RemoteDescriptor d;
  d.agent_id = 77;
  d.registration_id = 3;
  d.regions = {{0x7f0000001000ull, 4096, "rk0"},
               {0x7f0000100000ull, 1 << 20, std::string(40, 'k')}};
  return d;
}

TEST(UcxWireTest, AddressRoundTrips) {
  const AgentAddress a = SampleAddress();
  auto back = DecodeAgentAddress(EncodeAgentAddress(a));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->agent_id, a.agent_id);
  EXPECT_EQ(back->pid, a.pid);
  EXPECT_EQ(back->worker_address, a.worker_address);
}

TEST(UcxWireTest, DescriptorRoundTrips) {
  const RemoteDescriptor d = SampleDescriptor();
  auto back = DecodeRemoteDescriptor(EncodeRemoteDescriptor(d));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->agent_id, d.agent_id);
  EXPECT_EQ(back->registration_id, d.registration_id);
  ASSERT_EQ(back->regions.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(back->regions[i].base, d.regions[i].base);
    EXPECT_EQ(back->regions[i].length, d.regions[i].length);
    EXPECT_EQ(back->regions[i].rkey, d.regions[i].rkey);
  }
}

TEST(UcxWireTest, AmHeaderAndReplyRoundTrip) {
  AmHeader h;
  h.kind = AmKind::kFence;
  h.sender_agent_id = 1;
  h.transfer_id = 2;
  h.target_agent_id = 3;
  h.registration_id = 4;
  h.timeout_ms = 5;
  h.remote_addr = 6;
  h.length = 7;
  const AmHeaderBytes bytes = EncodeAmHeader(h);
  auto back = DecodeAmHeader(std::string_view(bytes.data(), bytes.size()));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->kind, AmKind::kFence);
  EXPECT_EQ(back->sender_agent_id, 1u);
  EXPECT_EQ(back->transfer_id, 2u);
  EXPECT_EQ(back->target_agent_id, 3u);
  EXPECT_EQ(back->registration_id, 4u);
  EXPECT_EQ(back->timeout_ms, 5u);
  EXPECT_EQ(back->remote_addr, 6u);
  EXPECT_EQ(back->length, 7u);
  EXPECT_FALSE(DecodeAmHeader(std::string_view(bytes.data(), bytes.size() - 1)).ok());

  FenceReply f;
  f.transfer_id = 99;
  f.state = FenceState::kFailed;
  f.code = 3;
  f.landed = 12;
  const FenceReplyBytes fb = EncodeFenceReply(f);
  auto fback = DecodeFenceReply(std::string_view(fb.data(), fb.size()));
  ASSERT_TRUE(fback.ok()) << fback.status();
  EXPECT_EQ(fback->transfer_id, 99u);
  EXPECT_EQ(fback->state, FenceState::kFailed);
  EXPECT_EQ(fback->code, 3u);
  EXPECT_EQ(fback->landed, 12u);
}

TEST(UcxWireTest, EveryCorruptionIsRejected) {
  const std::string addr = EncodeAgentAddress(SampleAddress());
  const std::string desc = EncodeRemoteDescriptor(SampleDescriptor());
  for (const std::string* bytes : {&addr, &desc}) {
    for (size_t i = 0; i < bytes->size(); ++i) {
      std::string bad = *bytes;
      bad[i] ^= 0x10;
      EXPECT_TRUE(absl::IsInvalidArgument(DecodeAgentAddress(bad).status())) << i;
      EXPECT_TRUE(absl::IsInvalidArgument(DecodeRemoteDescriptor(bad).status())) << i;
    }
    for (size_t n = 0; n < bytes->size(); ++n) {
      EXPECT_FALSE(DecodeAgentAddress(bytes->substr(0, n)).ok()) << n;
      EXPECT_FALSE(DecodeRemoteDescriptor(bytes->substr(0, n)).ok()) << n;
    }
  }
  // An address is not a descriptor and vice versa.
  EXPECT_FALSE(DecodeRemoteDescriptor(addr).ok());
  EXPECT_FALSE(DecodeAgentAddress(desc).ok());
}

TEST(UcxWireTest, RandomBytesNeverDecode) {
  std::mt19937_64 rng(1);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string noise(rng() % 300, '\0');
    for (char& c : noise) c = static_cast<char>(rng());
    EXPECT_FALSE(DecodeAgentAddress(noise).ok());
    EXPECT_FALSE(DecodeRemoteDescriptor(noise).ok());
    EXPECT_FALSE(DecodeFenceReply(noise).ok() && noise.size() != kFenceReplyBytes);
  }
}

}  // namespace
}  // namespace cleave::ucx_wire
