// UcxAgent lifecycle: UCP context and worker, the progress thread, memory registration, and
// the public methods. The protocol and its measurements are in ucx_agent.h; threading rules in
// ucx_agent_impl.h.
#include "engine/transfer/ucx_agent.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/transfer/ucx_agent_impl.h"
#include "engine/util/log.h"
#include "engine/util/status.h"

namespace cleave {
namespace ucx_internal {

absl::Status FromUcs(ucs_status_t s, absl::string_view what) {
  const std::string msg = absl::StrCat(what, ": ", ucs_status_string(s));
  switch (s) {
    case UCS_ERR_INVALID_PARAM:
    case UCS_ERR_INVALID_ADDR:
      return absl::InvalidArgumentError(msg);
    case UCS_ERR_NO_MEMORY:
      return absl::ResourceExhaustedError(msg);
    default:
      return absl::UnavailableError(msg);
  }
}

std::string Hex(uint64_t v) { return absl::StrCat("0x", absl::Hex(v)); }

}  // namespace ucx_internal

namespace {

using ucx_internal::FromUcs;

constexpr absl::Duration kSweepInterval = absl::Milliseconds(100);
constexpr absl::Duration kCloseOnShutdown = absl::Seconds(1);
constexpr int kEpollTimeoutMs = 100;  // safety net against a missed wakeup
constexpr int kProgressBatch = 16;

uint64_t RandomAgentId() {
  std::random_device rd;
  uint64_t id = 0;
  while (id == 0) id = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return id;
}

}  // namespace

absl::Status UcxAgent::Impl::Init() {
  agent_id = RandomAgentId();
  ucp_config_t* config = nullptr;
  ucs_status_t s = ucp_config_read(nullptr, nullptr, &config);
  if (s != UCS_OK) return FromUcs(s, "ucp_config_read");
  if (!options.transports.empty()) {
    s = ucp_config_modify(config, "TLS", options.transports.c_str());
    if (s != UCS_OK) {
      ucp_config_release(config);
      return absl::InvalidArgumentError(absl::StrCat("bad UCX transport list '", options.transports,
                                                     "': ", ucs_status_string(s)));
    }
  }
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_NAME;
  params.features = UCP_FEATURE_AM | UCP_FEATURE_RMA | UCP_FEATURE_WAKEUP;
  params.name = options.name.c_str();
  s = ucp_init(&params, config, &context);
  ucp_config_release(config);
  if (s != UCS_OK) {
    context = nullptr;
    return FromUcs(s, absl::StrCat("ucp_init (transports '", options.transports, "')"));
  }
  ucp_worker_params_t worker_params{};
  worker_params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  worker_params.thread_mode = UCS_THREAD_MODE_SERIALIZED;
  s = ucp_worker_create(context, &worker_params, &worker);
  if (s != UCS_OK) {
    worker = nullptr;
    return FromUcs(s, "ucp_worker_create");
  }
  ucp_worker_attr_t attr{};
  attr.field_mask = UCP_WORKER_ATTR_FIELD_ADDRESS | UCP_WORKER_ATTR_FIELD_MAX_AM_HEADER;
  s = ucp_worker_query(worker, &attr);
  if (s != UCS_OK) return FromUcs(s, "ucp_worker_query");
  ucx_wire::AgentAddress a;
  a.agent_id = agent_id;
  a.pid = static_cast<uint32_t>(getpid());
  a.worker_address.assign(reinterpret_cast<const char*>(attr.address), attr.address_length);
  ucp_worker_release_address(worker, attr.address);
  address = ucx_wire::EncodeAgentAddress(a);
  if (attr.max_am_header < ucx_wire::kAmHeaderBytes) {
    return absl::UnimplementedError(absl::StrCat("UCX allows AM headers of ", attr.max_am_header,
                                                 " bytes, need ", ucx_wire::kAmHeaderBytes));
  }
  RETURN_IF_ERROR(SetHandler(ucx_internal::kDataAmId, &OnDataAm));
  RETURN_IF_ERROR(SetHandler(ucx_internal::kReplyAmId, &OnReplyAm));

  int worker_fd = -1;
  s = ucp_worker_get_efd(worker, &worker_fd);
  if (s != UCS_OK) return FromUcs(s, "ucp_worker_get_efd");
  epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd < 0 || wake_fd < 0) return absl::InternalError("epoll_create1/eventfd failed");
  for (int fd : {worker_fd, wake_fd}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      return absl::InternalError("epoll_ctl failed");
    }
  }
  progress_thread = std::thread([this] { ProgressLoop(); });
  return absl::OkStatus();
}

absl::Status UcxAgent::Impl::SetHandler(unsigned id, ucp_am_recv_callback_t cb) {
  ucp_am_handler_param_t hp{};
  hp.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB |
                  UCP_AM_HANDLER_PARAM_FIELD_ARG | UCP_AM_HANDLER_PARAM_FIELD_FLAGS;
  hp.id = id;
  hp.cb = cb;
  hp.arg = this;
  hp.flags = UCP_AM_FLAG_WHOLE_MSG;
  const ucs_status_t s = ucp_worker_set_am_recv_handler(worker, &hp);
  return s == UCS_OK ? absl::OkStatus() : FromUcs(s, "ucp_worker_set_am_recv_handler");
}

void UcxAgent::Impl::Wake() {
  const uint64_t one = 1;
  // EAGAIN means a wakeup is already pending, which is all we want.
  [[maybe_unused]] ssize_t n = write(wake_fd, &one, sizeof(one));
}

void UcxAgent::Impl::ProgressLoop() {
  epoll_event events[4];
  while (true) {
    bool sleep = false;
    {
      absl::MutexLock lock(&mu);
      if (stop) return;
      for (int i = 0; i < kProgressBatch && ucp_worker_progress(worker) != 0; ++i) {
      }
      const absl::Time now = absl::Now();
      ReapClosing();
      if (now >= next_sweep) {
        Sweep(now);
        next_sweep = now + kSweepInterval;
      }
      const bool busy = writes_in_flight > 0 || (inbound_in_flight > 0 && now < inbound_busy_until);
      // UCS_ERR_BUSY: events arrived since the last progress; go around again.
      if (!busy) sleep = ucp_worker_arm(worker) == UCS_OK;
    }
    if (sleep) {
      epoll_wait(epoll_fd, events, 4, kEpollTimeoutMs);
      uint64_t drained = 0;
      while (read(wake_fd, &drained, sizeof(drained)) > 0) {
      }
    } else {
      // Lets Write threads take the mutex between progress rounds.
      std::this_thread::yield();
    }
  }
}

void UcxAgent::Impl::ReapClosing() {
  std::erase_if(closing, [](void* r) {
    if (ucp_request_check_status(r) == UCS_INPROGRESS) return false;
    ucp_request_free(r);
    return true;
  });
}

void UcxAgent::Impl::Sweep(absl::Time now) {
  absl::erase_if(inbound, [now](const auto& kv) {
    return kv.second->requests.empty() && now > kv.second->expires;
  });
}

void UcxAgent::Impl::Shutdown() {
  {
    absl::MutexLock lock(&mu);
    stop = true;
  }
  if (progress_thread.joinable()) {
    Wake();
    progress_thread.join();
  }
  absl::MutexLock lock(&mu);
  if (worker != nullptr) {
    // Flush-close live endpoints so peers see an orderly goodbye, but never wait long.
    for (auto& [key, peer] : peers) {
      for (auto& [id, keys] : peer->rkeys) {
        for (ucp_rkey_h k : keys) ucp_rkey_destroy(k);
      }
      ucp_request_param_t params{};
      void* r = ucp_ep_close_nbx(peer->ep, &params);
      if (r != nullptr && UCS_PTR_IS_PTR(r)) closing.push_back(r);
    }
    peers.clear();
    const absl::Time give_up = absl::Now() + kCloseOnShutdown;
    while (!closing.empty() && absl::Now() < give_up) {
      ucp_worker_progress(worker);
      ReapClosing();
    }
    for (void* r : closing) ucp_request_free(r);
    closing.clear();
    if (!ops.empty()) LOG_WARN("transfer agent destroyed with {} abandoned writes", ops.size());
  }
  for (Registration& reg : registrations) {
    for (LocalRegion& region : reg.regions) ucp_mem_unmap(context, region.memh);
  }
  registrations.clear();
  if (worker != nullptr) ucp_worker_destroy(worker);
  worker = nullptr;
  // Callbacks can no longer run; the bookkeeping they referred to can go.
  ops.clear();
  inbound.clear();
  if (context != nullptr) ucp_cleanup(context);
  context = nullptr;
  if (epoll_fd >= 0) close(epoll_fd);
  if (wake_fd >= 0) close(wake_fd);
  epoll_fd = wake_fd = -1;
}

absl::StatusOr<std::string> UcxAgent::Impl::RegisterMemory(std::span<const MemoryRegion> regions) {
  if (regions.empty()) return absl::InvalidArgumentError("RegisterMemory: no regions");
  absl::MutexLock lock(&mu);
  Registration reg;
  reg.id = next_registration_id++;
  ucx_wire::RemoteDescriptor desc;
  desc.agent_id = agent_id;
  desc.registration_id = reg.id;
  auto unmap_all = [&] {
    for (LocalRegion& r : reg.regions) ucp_mem_unmap(context, r.memh);
  };
  for (size_t i = 0; i < regions.size(); ++i) {
    const MemoryRegion& m = regions[i];
    if (m.base == nullptr || m.length == 0) {
      unmap_all();
      return absl::InvalidArgumentError(absl::StrCat("RegisterMemory: region ", i, " is empty"));
    }
    ucp_mem_map_params_t mp{};
    mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
    mp.address = m.base;
    mp.length = m.length;
    ucp_mem_h memh = nullptr;
    ucs_status_t s = ucp_mem_map(context, &mp, &memh);
    if (s != UCS_OK) {
      unmap_all();
      return FromUcs(s, absl::StrCat("ucp_mem_map of region ", i));
    }
    void* packed = nullptr;
    size_t packed_size = 0;
    s = ucp_rkey_pack(context, memh, &packed, &packed_size);
    if (s != UCS_OK) {
      ucp_mem_unmap(context, memh);
      unmap_all();
      return FromUcs(s, absl::StrCat("ucp_rkey_pack of region ", i));
    }
    const uint64_t base = reinterpret_cast<uint64_t>(m.base);
    desc.regions.push_back({base, m.length, std::string(static_cast<char*>(packed), packed_size)});
    ucp_rkey_buffer_release(packed);
    reg.regions.push_back({base, m.length, memh});
  }
  registrations.push_back(std::move(reg));
  return ucx_wire::EncodeRemoteDescriptor(desc);
}

absl::StatusOr<std::unique_ptr<UcxAgent>> UcxAgent::Create(const UcxAgentOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<UcxAgent>(new UcxAgent(std::move(impl)));
}

UcxAgent::UcxAgent(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
UcxAgent::~UcxAgent() = default;

const std::string& UcxAgent::address() const { return impl_->address; }
const UcxAgentOptions& UcxAgent::options() const { return impl_->options; }

absl::StatusOr<std::string> UcxAgent::RegisterMemory(std::span<const MemoryRegion> regions) {
  return impl_->RegisterMemory(regions);
}

absl::Status UcxAgent::Write(const std::string& peer_address, const std::string& remote_descriptor,
                             std::span<const TransferSegment> segments, absl::Duration timeout) {
  return impl_->Write(peer_address, remote_descriptor, segments, timeout);
}

absl::Status UcxAgent::Write(const std::string& peer_address, const std::string& remote_descriptor,
                             std::span<const TransferSegment> segments) {
  return impl_->Write(peer_address, remote_descriptor, segments, impl_->options.default_timeout);
}

}  // namespace cleave
