#include "services/router/worker_registry.h"

#include "absl/strings/str_cat.h"
#include "engine/util/log.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace cleave {
namespace {

bool ServesRole(v1::WorkerRole worker, v1::WorkerRole wanted) {
  return worker == wanted || worker == v1::WORKER_ROLE_COLOCATED;
}

}  // namespace

WorkerRegistry::WorkerRegistry(absl::Duration heartbeat_interval, absl::Duration heartbeat_timeout)
    : heartbeat_interval_(heartbeat_interval), heartbeat_timeout_(heartbeat_timeout) {
  reaper_ = std::thread([this] { Reap(); });
}

WorkerRegistry::~WorkerRegistry() {
  stop_.Notify();
  reaper_.join();
}

absl::StatusOr<uint64_t> WorkerRegistry::Register(const v1::RegisterRequest& request) {
  if (request.role() != v1::WORKER_ROLE_PREFILL && request.role() != v1::WORKER_ROLE_DECODE &&
      request.role() != v1::WORKER_ROLE_COLOCATED) {
    return absl::InvalidArgumentError("role: must be prefill, decode or colocated");
  }
  if (request.address().empty()) return absl::InvalidArgumentError("address: required");
  auto handle = std::make_shared<WorkerHandle>();
  handle->role = request.role();
  handle->address = request.address();
  handle->instance = request.instance().empty() ? request.address() : request.instance();
  grpc::ChannelArguments args;
  // Fail fast on a dead worker instead of waiting out reconnect backoff.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  auto channel =
      grpc::CreateCustomChannel(request.address(), grpc::InsecureChannelCredentials(), args);
  handle->prefill = v1::Prefill::NewStub(channel);
  handle->decode = v1::Decode::NewStub(channel);
  absl::MutexLock lock(&mu_);
  // A worker that re-registers (say after a router restart) replaces its old entry.
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (it->second.handle->address == request.address()) {
      workers_.erase(it++);
    } else {
      ++it;
    }
  }
  handle->id = next_id_++;
  workers_[handle->id] = Entry{handle, request.load(), absl::Now(), 0, 0};
  LOG_INFO("worker {} registered: {} at {} ({})", handle->id, handle->instance, handle->address,
           v1::WorkerRole_Name(handle->role));
  return handle->id;
}

absl::Status WorkerRegistry::Heartbeat(uint64_t worker_id, const v1::WorkerLoad& load) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) {
    return absl::NotFoundError(absl::StrCat("worker_id: ", worker_id, " is not registered"));
  }
  it->second.load = load;
  it->second.last_seen = absl::Now();
  return absl::OkStatus();
}

void WorkerRegistry::Remove(uint64_t worker_id) {
  absl::MutexLock lock(&mu_);
  workers_.erase(worker_id);
}

void WorkerRegistry::MarkDown(uint64_t worker_id) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return;
  LOG_WARN("worker {} ({}) failed a call; no longer routing to it", worker_id,
           it->second.handle->instance);
  workers_.erase(it);
}

std::vector<WorkerView> WorkerRegistry::Workers(v1::WorkerRole role) const {
  std::vector<WorkerView> out;
  absl::MutexLock lock(&mu_);
  for (const auto& [id, e] : workers_) {
    if (!ServesRole(e.handle->role, role)) continue;
    out.push_back({e.handle, e.load, e.in_flight, e.in_flight_prompt_tokens});
  }
  // Stable order (by id) so round robin is fair across calls.
  std::sort(out.begin(), out.end(),
            [](const WorkerView& a, const WorkerView& b) { return a.handle->id < b.handle->id; });
  return out;
}

int WorkerRegistry::Count(v1::WorkerRole role) const {
  int n = 0;
  absl::MutexLock lock(&mu_);
  for (const auto& [id, e] : workers_) n += ServesRole(e.handle->role, role) ? 1 : 0;
  return n;
}

void WorkerRegistry::Acquire(uint64_t worker_id, int64_t prompt_tokens) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return;
  ++it->second.in_flight;
  it->second.in_flight_prompt_tokens += prompt_tokens;
}

void WorkerRegistry::Release(uint64_t worker_id, int64_t prompt_tokens) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return;
  --it->second.in_flight;
  it->second.in_flight_prompt_tokens -= prompt_tokens;
}

void WorkerRegistry::Reap() {
  const absl::Duration period = std::min(heartbeat_interval_, heartbeat_timeout_ / 4);
  while (!stop_.WaitForNotificationWithTimeout(period)) {
    const absl::Time cutoff = absl::Now() - heartbeat_timeout_;
    absl::MutexLock lock(&mu_);
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (it->second.last_seen < cutoff) {
        LOG_WARN("worker {} ({}) missed heartbeats; dropped", it->first,
                 it->second.handle->instance);
        workers_.erase(it++);
      } else {
        ++it;
      }
    }
  }
}

}  // namespace cleave
