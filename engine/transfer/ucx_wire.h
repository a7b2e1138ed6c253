// The byte formats engine/transfer puts on the wire: the agent address and the remote memory
// descriptor (opaque bytes the control plane carries between processes), and the headers of
// the agent's active messages. Encoding is explicit little-endian; the address and
// descriptor end in a checksum, so garbage bytes are rejected here, before UCX parses any of
// them (UCX trusts its address and rkey buffers and can crash on malformed ones).
#ifndef CLEAVE_ENGINE_TRANSFER_UCX_WIRE_H_
#define CLEAVE_ENGINE_TRANSFER_UCX_WIRE_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace cleave::ucx_wire {

// FNV-1a, 64 bit: a corruption check, not a security boundary.
uint64_t Fnv1a64(std::string_view bytes, uint64_t seed = 0xcbf29ce484222325ull);

// What UcxAgent::address() returns.
struct AgentAddress {
  uint64_t agent_id = 0;       // random per agent: names one process incarnation
  uint32_t pid = 0;            // for error messages only
  std::string worker_address;  // ucp_worker_get_address bytes
};
std::string EncodeAgentAddress(const AgentAddress& address);
// INVALID_ARGUMENT when `bytes` is not an intact encoded address.
absl::StatusOr<AgentAddress> DecodeAgentAddress(std::string_view bytes);

// One registered region as a peer sees it.
struct RemoteRegion {
  uint64_t base = 0;
  uint64_t length = 0;
  std::string rkey;  // ucp_rkey_pack bytes
};
// What UcxAgent::RegisterMemory returns: regions in the order they were registered.
struct RemoteDescriptor {
  uint64_t agent_id = 0;  // the agent that owns the memory
  uint32_t registration_id = 0;
  std::vector<RemoteRegion> regions;
};
std::string EncodeRemoteDescriptor(const RemoteDescriptor& descriptor);
// INVALID_ARGUMENT when `bytes` is not an intact encoded descriptor.
absl::StatusOr<RemoteDescriptor> DecodeRemoteDescriptor(std::string_view bytes);

// The user header of the agent's active messages. A kSegment message carries one segment's
// bytes as its (rendezvous) payload; a kFence asks the target whether every segment of the
// transfer has landed, and the target answers with a FenceReply.
enum class AmKind : uint32_t { kSegment = 1, kFence = 2 };
struct AmHeader {
  AmKind kind = AmKind::kSegment;
  uint64_t sender_agent_id = 0;
  uint64_t transfer_id = 0;      // unique per sender agent
  uint64_t target_agent_id = 0;  // checked by the target: a stale descriptor fails loudly
  uint32_t registration_id = 0;  // kSegment
  uint32_t timeout_ms = 0;       // how long the target keeps the transfer's bookkeeping
  uint64_t remote_addr = 0;      // kSegment
  uint64_t length = 0;           // kSegment: bytes; kFence: number of segments in the transfer
};
inline constexpr size_t kAmHeaderBytes = 4 + 4 + 8 + 8 + 8 + 4 + 4 + 8 + 8;
using AmHeaderBytes = std::array<char, kAmHeaderBytes>;
AmHeaderBytes EncodeAmHeader(const AmHeader& header);
absl::StatusOr<AmHeader> DecodeAmHeader(std::string_view bytes);

// The target's answer to a kFence (its AM header; an error message travels as the payload).
enum class FenceState : uint32_t { kPending = 0, kComplete = 1, kFailed = 2 };
struct FenceReply {
  uint64_t transfer_id = 0;
  FenceState state = FenceState::kPending;
  uint32_t code = 0;    // absl::StatusCode when kFailed
  uint64_t landed = 0;  // segments in place so far (diagnostics)
};
inline constexpr size_t kFenceReplyBytes = 4 + 4 + 4 + 4 + 8 + 8;
using FenceReplyBytes = std::array<char, kFenceReplyBytes>;
FenceReplyBytes EncodeFenceReply(const FenceReply& reply);
absl::StatusOr<FenceReply> DecodeFenceReply(std::string_view bytes);

}  // namespace cleave::ucx_wire

#endif  // CLEAVE_ENGINE_TRANSFER_UCX_WIRE_H_
