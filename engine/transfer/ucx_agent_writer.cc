// UcxAgent, writer side: Write posts one rendezvous active message per segment, then fences
// until the target confirms every segment landed (or posts puts and a flush for kRma), and on
// failure or deadline force-closes the endpoint so the next Write reconnects.
#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/transfer/ucx_agent_impl.h"
#include "engine/util/log.h"
#include "engine/util/status.h"

namespace cleave {
namespace {

using ucx_internal::FromUcs;
using ucx_internal::Hex;
using ucx_wire::AmHeader;
using ucx_wire::AmKind;
using ucx_wire::FenceState;

// UCX 1.13 does not purge a rendezvous send that waits for a dead peer's acknowledgement when
// its endpoint is force-closed, so such a request never comes back; the wait for it is short.
constexpr absl::Duration kAbortGrace = absl::Milliseconds(200);
// A fence that finds segments still in flight (stream transports deliver rendezvous data after
// the writer's send completes) is re-sent after this backoff, doubling up to the cap.
constexpr absl::Duration kFenceBackoff = absl::Microseconds(20);
constexpr absl::Duration kFenceBackoffCap = absl::Milliseconds(1);

}  // namespace

absl::Status UcxAgent::Impl::Write(const std::string& peer_address,
                                   const std::string& remote_descriptor,
                                   std::span<const TransferSegment> segments,
                                   absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  ASSIGN_OR_RETURN(ucx_wire::AgentAddress peer, ucx_wire::DecodeAgentAddress(peer_address));
  ASSIGN_OR_RETURN(ucx_wire::RemoteDescriptor desc,
                   ucx_wire::DecodeRemoteDescriptor(remote_descriptor));
  if (desc.agent_id != peer.agent_id) {
    return absl::InvalidArgumentError(absl::StrCat("remote descriptor belongs to agent ",
                                                   Hex(desc.agent_id), ", the address to agent ",
                                                   Hex(peer.agent_id), " (pid ", peer.pid, ")"));
  }
  ASSIGN_OR_RETURN(std::vector<int> region_of, MapSegments(desc, segments));
  uint64_t count = 0, bytes = 0;
  for (const TransferSegment& seg : segments) {
    count += seg.length > 0;
    bytes += seg.length;
  }
  if (count == 0) return absl::OkStatus();

  absl::MutexLock lock(&mu);
  if (stop) return absl::FailedPreconditionError("transfer agent is shutting down");
  ASSIGN_OR_RETURN(Peer * p, GetPeer(peer));
  auto owned = std::make_unique<Op>();
  Op* o = owned.get();
  o->impl = this;
  o->id = next_op_id++;
  o->peer_key = peer.worker_address;
  o->ep = p->ep;
  o->segments = count;
  o->bytes = bytes;
  o->peer_pid = peer.pid;
  o->timeout = timeout;
  ops.emplace(o->id, std::move(owned));
  ++writes_in_flight;
  if (options.protocol == WriteProtocol::kRma) {
    PostRma(o, p, desc, segments, region_of);
  } else {
    PostSegments(o, desc, segments, timeout);
  }
  Wake();
  return FinishOp(o, AwaitOp(o, deadline), deadline);
}

absl::StatusOr<std::vector<int>> UcxAgent::Impl::MapSegments(
    const ucx_wire::RemoteDescriptor& desc, std::span<const TransferSegment> segments) {
  std::vector<int> order(desc.regions.size());
  for (size_t r = 0; r < order.size(); ++r) order[r] = static_cast<int>(r);
  std::sort(order.begin(), order.end(),
            [&](int a, int b) { return desc.regions[a].base < desc.regions[b].base; });
  std::vector<int> region_of(segments.size(), -1);
  for (size_t i = 0; i < segments.size(); ++i) {
    const TransferSegment& seg = segments[i];
    if (seg.length == 0) continue;
    if (seg.local == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("segment ", i, " has no local buffer"));
    }
    // Regions may overlap; scan those starting at or below the address, nearest first.
    auto it = std::upper_bound(order.begin(), order.end(), seg.remote_addr,
                               [&](uint64_t a, int r) { return a < desc.regions[r].base; });
    while (it != order.begin()) {
      --it;
      const ucx_wire::RemoteRegion& region = desc.regions[*it];
      const uint64_t offset = seg.remote_addr - region.base;
      if (offset <= region.length && seg.length <= region.length - offset) {
        region_of[i] = *it;
        break;
      }
    }
    if (region_of[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("segment ", i, " [", Hex(seg.remote_addr), ", +", seg.length,
                       ") lies in no region of the remote descriptor"));
    }
  }
  return region_of;
}

absl::StatusOr<UcxAgent::Impl::Peer*> UcxAgent::Impl::GetPeer(const ucx_wire::AgentAddress& a) {
  if (auto it = peers.find(a.worker_address); it != peers.end()) {
    if (!it->second->failed) return it->second.get();
    DropPeer(a.worker_address, it->second->ep);
  }
  ucp_ep_params_t params{};
  params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE;
  params.address = reinterpret_cast<const ucp_address_t*>(a.worker_address.data());
  params.err_mode =
      options.peer_error_handling ? UCP_ERR_HANDLING_MODE_PEER : UCP_ERR_HANDLING_MODE_NONE;
  if (options.peer_error_handling) {
    params.field_mask |= UCP_EP_PARAM_FIELD_ERR_HANDLER;
    params.err_handler.cb = &OnEpError;
    params.err_handler.arg = this;
  }
  ucp_ep_h ep = nullptr;
  const ucs_status_t s = ucp_ep_create(worker, &params, &ep);
  if (s != UCS_OK) {
    return absl::UnavailableError(
        absl::StrCat("connect to transfer agent pid ", a.pid, ": ", ucs_status_string(s)));
  }
  auto peer = std::make_unique<Peer>();
  peer->ep = ep;
  Peer* raw = peer.get();
  peers[a.worker_address] = std::move(peer);
  return raw;
}

// UCX completes most of the endpoint's outstanding requests with UCS_ERR_CANCELED here; see
// kAbortGrace for the exception.
void UcxAgent::Impl::DropPeer(const std::string& key, ucp_ep_h ep) {
  auto it = peers.find(key);
  if (it == peers.end() || it->second->ep != ep) return;
  std::unique_ptr<Peer> peer = std::move(it->second);
  peers.erase(it);
  ucp_request_param_t params{};
  params.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  params.flags = UCP_EP_CLOSE_FLAG_FORCE;
  void* r = ucp_ep_close_nbx(peer->ep, &params);
  if (r != nullptr && UCS_PTR_IS_PTR(r)) closing.push_back(r);
  for (auto& [id, keys] : peer->rkeys) {
    for (ucp_rkey_h k : keys) ucp_rkey_destroy(k);
  }
}

void UcxAgent::Impl::OnEpError(void* arg, ucp_ep_h ep, ucs_status_t status) {
  Impl* self = static_cast<Impl*>(arg);
  self->mu.AssertHeld();
  for (auto& [key, peer] : self->peers) {
    if (peer->ep == ep) peer->failed = true;
  }
  LOG_WARN("transfer: peer failure reported by UCX: {}", ucs_status_string(status));
}

bool UcxAgent::Impl::PeerStillConnected(const Op* o) {
  auto it = peers.find(o->peer_key);
  return it != peers.end() && it->second->ep == o->ep && !it->second->failed;
}

ucp_request_param_t UcxAgent::Impl::SendParams(Op* o, uint32_t flags) {
  ucp_request_param_t p{};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  p.cb.send = &OnSendDone;
  p.user_data = o;
  if (flags != 0) {
    p.op_attr_mask |= UCP_OP_ATTR_FIELD_FLAGS;
    p.flags = flags;
  }
  return p;
}

bool UcxAgent::Impl::Track(Op* o, ucs_status_ptr_t r, absl::string_view what) {
  if (r == nullptr) return true;
  if (UCS_PTR_IS_ERR(r)) {
    if (o->status.ok()) o->status = FromUcs(UCS_PTR_STATUS(r), what);
    return false;
  }
  o->requests.insert(r);
  ++o->pending;
  return true;
}

void UcxAgent::Impl::PostSegments(Op* o, const ucx_wire::RemoteDescriptor& desc,
                                  std::span<const TransferSegment> segments,
                                  absl::Duration timeout) {
  o->needs_fence = true;
  AmHeader h;
  h.sender_agent_id = agent_id;
  h.transfer_id = o->id;
  h.target_agent_id = desc.agent_id;
  h.registration_id = desc.registration_id;
  h.timeout_ms = static_cast<uint32_t>(
      std::clamp<int64_t>(absl::ToInt64Milliseconds(timeout), 1, int64_t{1} << 31));
  o->headers.reserve(o->segments);  // the sends keep pointers into it
  for (const TransferSegment& seg : segments) {
    if (seg.length == 0) continue;
    h.kind = AmKind::kSegment;
    h.remote_addr = seg.remote_addr;
    h.length = seg.length;
    o->headers.push_back(ucx_wire::EncodeAmHeader(h));
    // Rendezvous even for small segments: its completion is the target's acknowledgement.
    const ucp_request_param_t p = SendParams(o, UCP_AM_SEND_FLAG_RNDV);
    if (!Track(o,
               ucp_am_send_nbx(o->ep, ucx_internal::kDataAmId, o->headers.back().data(),
                               ucx_wire::kAmHeaderBytes, seg.local, seg.length, &p),
               "send segment")) {
      return;
    }
  }
  h.kind = AmKind::kFence;
  h.remote_addr = 0;
  h.length = o->segments;
  o->fence_header = ucx_wire::EncodeAmHeader(h);
}

void UcxAgent::Impl::PostFence(Op* o) {
  ++o->fences;
  o->fence_in_flight = true;
  const ucp_request_param_t p = SendParams(o, UCP_AM_SEND_FLAG_REPLY);
  if (!Track(o,
             ucp_am_send_nbx(o->ep, ucx_internal::kDataAmId, o->fence_header.data(),
                             ucx_wire::kAmHeaderBytes, nullptr, 0, &p),
             "send fence")) {
    o->fence_in_flight = false;
  }
}

void UcxAgent::Impl::PostRma(Op* o, Peer* peer, const ucx_wire::RemoteDescriptor& desc,
                             std::span<const TransferSegment> segments,
                             const std::vector<int>& region_of) {
  auto [it, inserted] = peer->rkeys.try_emplace(desc.registration_id);
  std::vector<ucp_rkey_h>& rkeys = it->second;
  if (inserted) {
    for (size_t r = 0; r < desc.regions.size(); ++r) {
      ucp_rkey_h k = nullptr;
      const ucs_status_t s = ucp_ep_rkey_unpack(peer->ep, desc.regions[r].rkey.data(), &k);
      if (s != UCS_OK) {
        for (ucp_rkey_h done : rkeys) ucp_rkey_destroy(done);
        peer->rkeys.erase(it);
        o->status = FromUcs(s, absl::StrCat("unpack rkey of remote region ", r));
        return;
      }
      rkeys.push_back(k);
    }
  } else if (rkeys.size() != desc.regions.size()) {
    o->status = absl::InvalidArgumentError("remote descriptor changed under one registration id");
    return;
  }
  for (size_t i = 0; i < segments.size(); ++i) {
    const TransferSegment& seg = segments[i];
    if (seg.length == 0) continue;
    const ucp_request_param_t p = SendParams(o, 0);
    if (!Track(o,
               ucp_put_nbx(o->ep, seg.local, seg.length, seg.remote_addr, rkeys[region_of[i]], &p),
               "put")) {
      return;
    }
  }
  // Put completion is local; the flush makes it remote.
  const ucp_request_param_t p = SendParams(o, 0);
  Track(o, ucp_ep_flush_nbx(o->ep, &p), "flush");
}

void UcxAgent::Impl::OnSendDone(void* request, ucs_status_t status, void* user_data) {
  Op* o = static_cast<Op*>(user_data);
  Impl* self = o->impl;
  self->mu.AssertHeld();
  ucp_request_free(request);
  o->requests.erase(request);
  --o->pending;
  if (status != UCS_OK && o->status.ok()) {
    o->status = status == UCS_ERR_INVALID_PARAM
                    ? absl::InvalidArgumentError(
                          "target rejected a segment (outside its registered memory, or a "
                          "stale descriptor)")
                    : FromUcs(status, "transfer request");
  }
  if (o->abandoned && o->pending == 0) self->ops.erase(o->id);
}

absl::Status UcxAgent::Impl::TimedOut(const Op* o, absl::string_view detail) {
  return absl::DeadlineExceededError(absl::StrCat(
      "transfer of ", o->segments, " segments (", o->bytes, " bytes) to agent pid ", o->peer_pid,
      " did not complete within ", absl::FormatDuration(o->timeout), ": ", detail));
}

absl::Status UcxAgent::Impl::AwaitOp(Op* o, absl::Time deadline) {
  absl::Duration backoff = kFenceBackoff;
  auto settled = [o] { return !o->status.ok() || (o->pending == 0 && !o->fence_in_flight); };
  auto failed = [o] { return !o->status.ok(); };
  while (true) {
    if (!mu.AwaitWithDeadline(absl::Condition(&settled), deadline)) {
      return TimedOut(
          o, absl::StrCat(o->pending, " requests outstanding, ", o->fences, " fences sent"));
    }
    if (!o->status.ok()) return o->status;
    if (!o->needs_fence || o->confirmed) return absl::OkStatus();
    if (o->fences > 0) {
      mu.AwaitWithDeadline(absl::Condition(&failed), std::min(deadline, absl::Now() + backoff));
      backoff = std::min(backoff * 2, kFenceBackoffCap);
      if (!o->status.ok()) return o->status;
      if (absl::Now() >= deadline) {
        return TimedOut(o,
                        absl::StrCat("target still missing segments after ", o->fences, " fences"));
      }
    }
    if (!PeerStillConnected(o)) {
      return absl::UnavailableError("connection dropped after a failure on another write");
    }
    PostFence(o);
    Wake();
  }
}

absl::Status UcxAgent::Impl::FinishOp(Op* o, absl::Status result, absl::Time deadline) {
  if (!result.ok()) {
    auto drained = [o] { return o->pending == 0; };
    // A rejected segment leaves the connection healthy: let the rest finish normally.
    if (!absl::IsInvalidArgument(result) ||
        !mu.AwaitWithDeadline(absl::Condition(&drained), deadline)) {
      DropPeer(o->peer_key, o->ep);
      mu.AwaitWithDeadline(absl::Condition(&drained), absl::Now() + kAbortGrace);
    }
  }
  --writes_in_flight;
  if (o->pending == 0) {
    ops.erase(o->id);
  } else {
    o->abandoned = true;
    // On a dead peer they never will be (nothing reads the buffers then); on a live but late
    // one, see the caveat in ucx_agent.h.
    LOG_WARN("transfer: abandoning {} requests of a failed write to pid {}", o->pending,
             o->peer_pid);
  }
  return result;
}

ucs_status_t UcxAgent::Impl::OnReplyAm(void* arg, const void* header, size_t header_length,
                                       void* data, size_t length,
                                       const ucp_am_recv_param_t* param) {
  Impl* self = static_cast<Impl*>(arg);
  self->mu.AssertHeld();
  auto reply =
      ucx_wire::DecodeFenceReply(std::string_view(static_cast<const char*>(header), header_length));
  if (!reply.ok()) {
    LOG_WARN("transfer: dropping reply: {}", reply.status().ToString());
    return UCS_OK;
  }
  auto it = self->ops.find(reply->transfer_id);
  if (it == self->ops.end()) return UCS_OK;  // a write that already gave up
  Op* o = it->second.get();
  o->fence_in_flight = false;
  if (reply->state == FenceState::kComplete) {
    o->confirmed = true;
  } else if (reply->state == FenceState::kFailed && o->status.ok()) {
    const bool has_text = !(param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) && data != nullptr;
    const absl::string_view message(has_text ? static_cast<const char*>(data) : "",
                                    has_text ? length : 0);
    o->status =
        absl::Status(static_cast<absl::StatusCode>(reply->code), absl::StrCat("target: ", message));
    if (o->status.ok()) o->status = absl::InternalError("target: failed without a code");
  }
  return UCS_OK;
}

}  // namespace cleave
