// Internals of UcxAgent shared by its three source files: ucx_agent.cc (lifecycle, progress
// thread, registration), ucx_agent_writer.cc (Write: the side that pushes KV) and
// ucx_agent_target.cc (the side whose registered memory receives it). Not for other modules.
//
// Threading: one absl::Mutex (mu) serializes every call into the UCP worker (created
// UCS_THREAD_MODE_SERIALIZED). UCX runs our callbacks only inside ucp_worker_progress,
// ucp_ep_close_nbx and friends, all called with mu held, so callbacks own the agent's state
// without locking again (they AssertHeld). The progress thread spins while a Write or an
// inbound receive is in flight and otherwise sleeps in epoll on the worker's event fd, so an
// idle target costs no CPU yet still serves its peers' rendezvous requests.
#ifndef CLEAVE_ENGINE_TRANSFER_UCX_AGENT_IMPL_H_
#define CLEAVE_ENGINE_TRANSFER_UCX_AGENT_IMPL_H_

#include <ucp/api/ucp.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/transfer/ucx_agent.h"
#include "engine/transfer/ucx_wire.h"

namespace cleave {
namespace ucx_internal {

inline constexpr unsigned kDataAmId = 21;   // kSegment and kFence messages; the target's
inline constexpr unsigned kReplyAmId = 22;  // FenceReply; the writer's

// UCX status -> absl::Status: INVALID_ARGUMENT for bad parameters, UNAVAILABLE for the rest
// (transport and peer failures).
absl::Status FromUcs(ucs_status_t s, absl::string_view what);
std::string Hex(uint64_t v);

}  // namespace ucx_internal

struct UcxAgent::Impl {
  // A connection to one peer agent.
  struct Peer {
    ucp_ep_h ep = nullptr;
    bool failed = false;  // UCX reported a peer failure (peer_error_handling only)
    // Unpacked on `ep`, by the peer's registration id, in descriptor region order.
    absl::flat_hash_map<uint32_t, std::vector<ucp_rkey_h>> rkeys;
  };
  struct LocalRegion {
    uint64_t base = 0, length = 0;
    ucp_mem_h memh = nullptr;
  };
  struct Registration {
    uint32_t id = 0;
    std::vector<LocalRegion> regions;
  };
  // One Write in flight. Owned by `ops` until no UCX request refers to it.
  struct Op {
    Impl* impl = nullptr;
    uint64_t id = 0;
    std::string peer_key;
    ucp_ep_h ep = nullptr;
    int pending = 0;  // posted requests whose callback has not run
    absl::flat_hash_set<void*> requests;
    absl::Status status;  // first failure
    bool needs_fence = false, fence_in_flight = false, confirmed = false, abandoned = false;
    int fences = 0;
    uint64_t segments = 0, bytes = 0;
    uint32_t peer_pid = 0;
    absl::Duration timeout;
    std::vector<ucx_wire::AmHeaderBytes> headers;  // must outlive the sends
    ucx_wire::AmHeaderBytes fence_header{};
  };
  // A transfer some peer is writing into this agent, keyed by (sender agent, transfer id).
  struct Inbound {
    Impl* impl = nullptr;
    uint64_t landed = 0;
    absl::Status status;
    absl::flat_hash_set<void*> requests;  // ucp_am_recv_data_nbx in flight
    absl::Time expires;
  };
  // A fence reply in flight: its header must outlive the send.
  struct Reply {
    ucx_wire::FenceReplyBytes header{};
    std::string message;
  };
  using InboundKey = std::pair<uint64_t, uint64_t>;

  UcxAgentOptions options;
  uint64_t agent_id = 0;  // random, set by Init
  ucp_context_h context = nullptr;
  ucp_worker_h worker = nullptr;
  std::string address;
  int epoll_fd = -1, wake_fd = -1;
  std::thread progress_thread;

  absl::Mutex mu;
  bool stop ABSL_GUARDED_BY(mu) = false;
  absl::flat_hash_map<std::string, std::unique_ptr<Peer>> peers ABSL_GUARDED_BY(mu);
  std::vector<Registration> registrations ABSL_GUARDED_BY(mu);
  uint32_t next_registration_id ABSL_GUARDED_BY(mu) = 1;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Op>> ops ABSL_GUARDED_BY(mu);
  uint64_t next_op_id ABSL_GUARDED_BY(mu) = 1;
  int writes_in_flight ABSL_GUARDED_BY(mu) = 0;  // ops not yet abandoned
  absl::flat_hash_map<InboundKey, std::unique_ptr<Inbound>> inbound ABSL_GUARDED_BY(mu);
  int inbound_in_flight ABSL_GUARDED_BY(mu) = 0;
  absl::Time inbound_busy_until ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  std::vector<void*> closing ABSL_GUARDED_BY(mu);  // ucp_ep_close_nbx requests
  absl::Time next_sweep ABSL_GUARDED_BY(mu) = absl::InfinitePast();

  ~Impl() { Shutdown(); }

  // ---- ucx_agent.cc: lifecycle, progress, registration ----
  absl::Status Init();
  absl::Status SetHandler(unsigned id, ucp_am_recv_callback_t cb);
  void Shutdown();
  // Interrupts the progress thread's epoll sleep.
  void Wake();
  void ProgressLoop();
  void ReapClosing() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Forgets finished or abandoned inbound transfers. One with a receive still in flight stays:
  // its callback refers to it, and UCX cannot cancel an AM receive.
  void Sweep(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  absl::StatusOr<std::string> RegisterMemory(std::span<const MemoryRegion> regions);

  // ---- ucx_agent_writer.cc: the side that writes ----
  absl::Status Write(const std::string& peer_address, const std::string& remote_descriptor,
                     std::span<const TransferSegment> segments, absl::Duration timeout);
  // For each segment, the index of the descriptor region that holds it (-1 for empty ones).
  static absl::StatusOr<std::vector<int>> MapSegments(const ucx_wire::RemoteDescriptor& desc,
                                                      std::span<const TransferSegment> segments);
  absl::StatusOr<Peer*> GetPeer(const ucx_wire::AgentAddress& a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Force-closes the connection so the next Write reconnects; a no-op when `ep` was already
  // replaced.
  void DropPeer(const std::string& key, ucp_ep_h ep) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  bool PeerStillConnected(const Op* o) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  ucp_request_param_t SendParams(Op* o, uint32_t flags);
  // Records a request just posted for `o`; false when posting failed.
  static bool Track(Op* o, ucs_status_ptr_t r, absl::string_view what);
  void PostSegments(Op* o, const ucx_wire::RemoteDescriptor& desc,
                    std::span<const TransferSegment> segments, absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void PostFence(Op* o) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void PostRma(Op* o, Peer* peer, const ucx_wire::RemoteDescriptor& desc,
               std::span<const TransferSegment> segments, const std::vector<int>& region_of)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  static absl::Status TimedOut(const Op* o, absl::string_view detail);
  // Waits for the op's requests, fencing as needed; returns its outcome at `deadline`.
  absl::Status AwaitOp(Op* o, absl::Time deadline) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Cleans up after AwaitOp. On failure the op's requests may still point at the caller's
  // buffers; the op is released only when UCX has handed every one of them back.
  absl::Status FinishOp(Op* o, absl::Status result, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  static void OnEpError(void* arg, ucp_ep_h ep, ucs_status_t status);
  static void OnSendDone(void* request, ucs_status_t status, void* user_data);
  static ucs_status_t OnReplyAm(void* arg, const void* header, size_t header_length, void* data,
                                size_t length, const ucp_am_recv_param_t* param);

  // ---- ucx_agent_target.cc: the side whose memory is written ----
  static ucs_status_t OnDataAm(void* arg, const void* header, size_t header_length, void* data,
                               size_t length, const ucp_am_recv_param_t* param);
  Inbound* GetInbound(const ucx_wire::AmHeader& h, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Where a segment's bytes go, after checking the range lies in one of our registrations.
  absl::StatusOr<void*> Destination(const ucx_wire::AmHeader& h, size_t length)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  ucs_status_t HandleSegment(const ucx_wire::AmHeader& h, void* data, size_t length,
                             const ucp_am_recv_param_t* param) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  // Answers at once on the reply endpoint, which is only guaranteed valid inside this callback.
  ucs_status_t HandleFence(const ucx_wire::AmHeader& h, const ucp_am_recv_param_t* param)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  static void OnReceiveDone(void* request, ucs_status_t status, size_t length, void* user_data);
  static void OnReplySent(void* request, ucs_status_t status, void* user_data);
};

}  // namespace cleave

#endif  // CLEAVE_ENGINE_TRANSFER_UCX_AGENT_IMPL_H_
