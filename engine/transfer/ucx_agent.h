// Where the KV cache crosses the wire: one UCX context + worker per process that writes into
// registered memory of another process. The prefill side calls Write; the decode side only
// registers its KV pool and publishes address() + the descriptor through the control plane.
// Bulk bytes never pass through protobuf; only those two opaque strings do.
//
// How a Write moves bytes. Measured with cleave_kv_transfer_bench (UCX 1.13.1, two processes
// on one 2-core VM, ratio = Write throughput / memcpy of the same bytes in the same run):
//  - kRendezvous (default): one active message per segment, forced onto UCX's rendezvous
//    protocol; its header names the destination. The target's handler checks the range
//    against its registrations and pulls the bytes straight into place with
//    ucp_am_recv_data_nbx (cma process_vm_readv on one host, RDMA get across hosts), with no
//    bounce buffer. Once every send has completed, a fence message asks the target whether
//    all segments have landed; it answers from its own count. So OK means the bytes are in
//    the target's memory even on stream transports, where a rendezvous send completes before
//    the data arrives. Shared memory + cma (UCX default): 0.5-0.65x memcpy at 16-64 MB
//    (3.3-5.5 GB/s), 0.4x at 256 MB, which is cma's ceiling here (a bare process_vm_readv of
//    256 MB measures 0.40-0.47x). tcp: 0.3-0.45x; tcp with peer_error_handling: 0.2-0.55x.
//    Tag send/recv rendezvous, tried first, is no faster (same cma get).
//  - kRma: ucp_put_nbx into the descriptor's rkeys, then ucp_ep_flush_nbx. For host memory,
//    UCX 1.13 serves put and get by "software emulation" over the shared-memory AM lane
//    (UCX_PROTO_INFO says so; cma offers no put/get lane): the writer copies into the FIFO and
//    the target's progress thread copies out. With two idle cores that pipeline reaches
//    0.6-1.0x memcpy; as soon as another process competes for the CPU it collapses to
//    0.02-0.2x (0.07-0.6 GB/s), where kRendezvous keeps 0.3-0.65x. Hence not the default;
//    kept for fabrics where put is truly one-sided (rc/dc verbs, cuda_ipc).
//  - Not done here: if the target's pool were allocated by UCX (ucp_mem_map with
//    UCP_MEM_MAP_ALLOCATE), ucp_rkey_ptr maps it into the writer and a plain memcpy into the
//    peer reaches 1.0x (measured); that needs KvStorage to take its memory from the agent.
// Dead or unreachable peers: every Write has a deadline. When it passes, the agent
// force-closes the endpoint, so the next Write reconnects. A peer SIGKILLed after connecting
// costs DEADLINE_EXCEEDED at the deadline on shared memory, UNAVAILABLE at once on tcp; a
// vanished peer fails to connect at once (UNAVAILABLE). UCP_ERR_HANDLING_MODE_PEER
// (UcxAgentOptions::peer_error_handling) restricts 1.13 to tcp lanes (its shm transports have
// no peer-failure handler), so it is off by default and the deadline is what catches a dead
// peer on shared memory.
//
// Caveat of every one-sided design (NIXL's too): after a Write fails, bytes of it may still
// land in the destination until the target's worker has drained what it already accepted.
// The control plane must not trust the destination blocks of a failed transfer, nor reuse
// them for a new transfer into the same target, until the failed transfer's timeout has
// passed once more.
#ifndef CLEAVE_ENGINE_TRANSFER_UCX_AGENT_H_
#define CLEAVE_ENGINE_TRANSFER_UCX_AGENT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace cleave {

struct MemoryRegion {
  void* base = nullptr;
  size_t length = 0;
};

// `length` bytes at local address `local` go to `remote_addr` in the target process, which must
// lie inside one region of the target's descriptor.
struct TransferSegment {
  const void* local = nullptr;
  uint64_t remote_addr = 0;
  size_t length = 0;
};

enum class WriteProtocol { kRendezvous, kRma };

struct UcxAgentOptions {
  // UCX_TLS syntax ("posix,cma,self", "tcp", ...); empty keeps UCX's default (or UCX_TLS).
  std::string transports;
  WriteProtocol protocol = WriteProtocol::kRendezvous;
  // Deadline of a Write that does not name one.
  absl::Duration default_timeout = absl::Seconds(30);
  // UCP_ERR_HANDLING_MODE_PEER on endpoints: UCX itself reports a dead peer, but 1.13 then
  // uses tcp lanes only (shm transports have no peer-failure handler).
  bool peer_error_handling = false;
  // Shows up in UCX's own logs.
  std::string name = "cleave";
};

class UcxAgent {
 public:
  // Creates the UCP context and worker and starts the progress thread.
  static absl::StatusOr<std::unique_ptr<UcxAgent>> Create(const UcxAgentOptions& options);
  ~UcxAgent();
  UcxAgent(const UcxAgent&) = delete;
  UcxAgent& operator=(const UcxAgent&) = delete;

  // Opaque bytes for peers: what Write's `peer_address` expects.
  const std::string& address() const;

  // Registers `regions` (they must outlive the agent) for peers to write into, and returns the
  // opaque remote memory descriptor: per region its base, length and packed rkey, in order.
  // Registrations last until the agent is destroyed.
  absl::StatusOr<std::string> RegisterMemory(std::span<const MemoryRegion> regions);

  // Writes every segment into the peer's memory described by `remote_descriptor` (from the
  // peer's RegisterMemory) and returns OK only once all bytes are in the peer's memory.
  // Overlapping segments in one Write land in no particular order.
  // INVALID_ARGUMENT: undecodable address/descriptor, a descriptor of another agent, or a
  // segment outside every region. DEADLINE_EXCEEDED / UNAVAILABLE: the peer did not complete
  // within `timeout` or the transport failed. Thread-safe; local buffers must stay valid and
  // unchanged until Write returns. Every Write must have returned before the agent is
  // destroyed.
  absl::Status Write(const std::string& peer_address, const std::string& remote_descriptor,
                     std::span<const TransferSegment> segments, absl::Duration timeout);
  absl::Status Write(const std::string& peer_address, const std::string& remote_descriptor,
                     std::span<const TransferSegment> segments);

  const UcxAgentOptions& options() const;

 private:
  struct Impl;
  explicit UcxAgent(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cleave

#endif  // CLEAVE_ENGINE_TRANSFER_UCX_AGENT_H_
