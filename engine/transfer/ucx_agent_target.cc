// UcxAgent, target side: checks each incoming segment against this agent's registrations and
// pulls its bytes straight into place, counts what landed per transfer, and answers fences.
#include <algorithm>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/transfer/ucx_agent_impl.h"
#include "engine/util/log.h"

namespace cleave {
namespace {

using ucx_internal::FromUcs;
using ucx_internal::Hex;
using ucx_wire::AmHeader;
using ucx_wire::AmKind;
using ucx_wire::FenceReply;
using ucx_wire::FenceState;

// The target keeps a transfer's bookkeeping this much longer than the writer's own deadline.
constexpr absl::Duration kInboundSlack = absl::Seconds(5);

}  // namespace

ucs_status_t UcxAgent::Impl::OnDataAm(void* arg, const void* header, size_t header_length,
                                      void* data, size_t length, const ucp_am_recv_param_t* param) {
  Impl* self = static_cast<Impl*>(arg);
  self->mu.AssertHeld();
  auto h =
      ucx_wire::DecodeAmHeader(std::string_view(static_cast<const char*>(header), header_length));
  if (!h.ok()) {
    LOG_WARN("transfer: dropping message: {}", h.status().ToString());
    return UCS_ERR_INVALID_PARAM;  // becomes the writer's error when this is a rendezvous
  }
  if (h->target_agent_id != self->agent_id) {
    LOG_WARN("transfer: message for agent {} reached agent {}", Hex(h->target_agent_id),
             Hex(self->agent_id));
    return UCS_ERR_INVALID_PARAM;
  }
  if (h->kind == AmKind::kFence) return self->HandleFence(*h, param);
  return self->HandleSegment(*h, data, length, param);
}

UcxAgent::Impl::Inbound* UcxAgent::Impl::GetInbound(const AmHeader& h, absl::Time now) {
  std::unique_ptr<Inbound>& in = inbound[InboundKey(h.sender_agent_id, h.transfer_id)];
  if (in == nullptr) {
    in = std::make_unique<Inbound>();
    in->impl = this;
  }
  in->expires = std::max(in->expires, now + absl::Milliseconds(h.timeout_ms) + kInboundSlack);
  return in.get();
}

absl::StatusOr<void*> UcxAgent::Impl::Destination(const AmHeader& h, size_t length) {
  if (h.length != length) {
    return absl::InvalidArgumentError(
        absl::StrCat("segment header says ", h.length, " bytes, message carries ", length));
  }
  for (const Registration& reg : registrations) {
    if (reg.id != h.registration_id) continue;
    for (const LocalRegion& r : reg.regions) {
      const uint64_t offset = h.remote_addr - r.base;
      if (h.remote_addr >= r.base && offset <= r.length && h.length <= r.length - offset) {
        return reinterpret_cast<void*>(h.remote_addr);
      }
    }
    return absl::InvalidArgumentError(absl::StrCat("segment [", Hex(h.remote_addr), ", +", h.length,
                                                   ") outside registration ", reg.id));
  }
  return absl::InvalidArgumentError(absl::StrCat("no registration ", h.registration_id));
}

ucs_status_t UcxAgent::Impl::HandleSegment(const AmHeader& h, void* data, size_t length,
                                           const ucp_am_recv_param_t* param) {
  const absl::Time now = absl::Now();
  Inbound* in = GetInbound(h, now);
  absl::StatusOr<void*> dst = Destination(h, length);
  if (!dst.ok()) {
    LOG_WARN("transfer: rejecting segment from agent {}: {}", Hex(h.sender_agent_id),
             dst.status().ToString());
    if (in->status.ok()) in->status = dst.status();
    return UCS_ERR_INVALID_PARAM;
  }
  if (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) {
    ucp_request_param_t p{};
    p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
    p.cb.recv_am = &OnReceiveDone;
    p.user_data = in;
    // Pulls the bytes straight into the KV pool (cma / RDMA get); no bounce buffer.
    ucs_status_ptr_t r = ucp_am_recv_data_nbx(worker, data, *dst, length, &p);
    if (r == nullptr) {
      ++in->landed;
    } else if (UCS_PTR_IS_ERR(r)) {
      if (in->status.ok()) in->status = FromUcs(UCS_PTR_STATUS(r), "receive segment");
    } else {
      in->requests.insert(r);
      ++inbound_in_flight;
      inbound_busy_until = std::max(inbound_busy_until, in->expires);
    }
    return UCS_OK;
  }
  // UCX delivered it eagerly after all: the bytes are already here.
  std::memcpy(*dst, data, length);
  ++in->landed;
  return UCS_OK;
}

void UcxAgent::Impl::OnReceiveDone(void* request, ucs_status_t status, size_t length,
                                   void* user_data) {
  Inbound* in = static_cast<Inbound*>(user_data);
  Impl* self = in->impl;
  self->mu.AssertHeld();
  ucp_request_free(request);
  in->requests.erase(request);
  --self->inbound_in_flight;
  if (status == UCS_OK) {
    ++in->landed;
  } else if (in->status.ok()) {
    in->status = FromUcs(status, "receive segment");
  }
}

ucs_status_t UcxAgent::Impl::HandleFence(const AmHeader& h, const ucp_am_recv_param_t* param) {
  if (!(param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) || param->reply_ep == nullptr) {
    LOG_WARN("transfer: fence without a reply endpoint");
    return UCS_OK;
  }
  auto reply = std::make_unique<Reply>();
  FenceReply f;
  f.transfer_id = h.transfer_id;
  auto it = inbound.find(InboundKey(h.sender_agent_id, h.transfer_id));
  if (it != inbound.end()) {
    Inbound* in = it->second.get();
    f.landed = in->landed;
    if (!in->status.ok()) {
      f.state = FenceState::kFailed;
      f.code = static_cast<uint32_t>(in->status.code());
      reply->message = std::string(in->status.message());
    } else if (in->landed > h.length) {
      f.state = FenceState::kFailed;
      f.code = static_cast<uint32_t>(absl::StatusCode::kInternal);
      reply->message = absl::StrCat(in->landed, " segments landed, writer sent ", h.length);
    } else if (in->landed == h.length && in->requests.empty()) {
      f.state = FenceState::kComplete;
    }
    if (f.state != FenceState::kPending && in->requests.empty()) inbound.erase(it);
  }
  reply->header = ucx_wire::EncodeFenceReply(f);
  ucp_request_param_t p{};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  p.cb.send = &OnReplySent;
  p.user_data = reply.get();
  ucs_status_ptr_t r =
      ucp_am_send_nbx(param->reply_ep, ucx_internal::kReplyAmId, reply->header.data(),
                      reply->header.size(), reply->message.data(), reply->message.size(), &p);
  if (r != nullptr && UCS_PTR_IS_PTR(r)) {
    reply.release();  // OnReplySent frees it
  } else if (UCS_PTR_IS_ERR(r)) {
    LOG_WARN("transfer: fence reply failed: {}", ucs_status_string(UCS_PTR_STATUS(r)));
  }
  return UCS_OK;
}

void UcxAgent::Impl::OnReplySent(void* request, ucs_status_t status, void* user_data) {
  delete static_cast<Reply*>(user_data);
  ucp_request_free(request);
}

}  // namespace cleave
