// The router's view of its workers: who registered, with which role and load, and whether
// they are alive. A worker that misses heartbeats for heartbeat_timeout is dropped; one whose
// RPCs fail at the transport is marked down at once (it registers again if it is alive).
#ifndef CLEAVE_SERVICES_ROUTER_WORKER_REGISTRY_H_
#define CLEAVE_SERVICES_ROUTER_WORKER_REGISTRY_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "cleave/v1/handoff.grpc.pb.h"
#include "cleave/v1/registry.pb.h"

namespace cleave {

// A live worker, shared with the requests that use it (it may be dropped meanwhile).
struct WorkerHandle {
  uint64_t id = 0;
  v1::WorkerRole role = v1::WORKER_ROLE_UNSPECIFIED;
  std::string address;
  std::string instance;
  std::unique_ptr<v1::Prefill::Stub> prefill;
  std::unique_ptr<v1::Decode::Stub> decode;
};

// What a routing policy sees of one worker.
struct WorkerView {
  std::shared_ptr<WorkerHandle> handle;
  v1::WorkerLoad load;  // as of the last heartbeat
  int in_flight = 0;    // requests the router has sent it and not seen end
  int64_t in_flight_prompt_tokens = 0;
};

class WorkerRegistry {
 public:
  WorkerRegistry(absl::Duration heartbeat_interval, absl::Duration heartbeat_timeout);
  ~WorkerRegistry();

  absl::StatusOr<uint64_t> Register(const v1::RegisterRequest& request);
  // NOT_FOUND when the id is unknown (dropped or never registered).
  absl::Status Heartbeat(uint64_t worker_id, const v1::WorkerLoad& load);
  void Remove(uint64_t worker_id);
  // The worker failed a call at the transport level: stop routing to it now.
  void MarkDown(uint64_t worker_id);

  // Healthy workers able to take the prefill / decode part of a request (colocated count in
  // both).
  std::vector<WorkerView> Workers(v1::WorkerRole role) const;
  int Count(v1::WorkerRole role) const;

  // In-flight accounting, for least_load.
  void Acquire(uint64_t worker_id, int64_t prompt_tokens);
  void Release(uint64_t worker_id, int64_t prompt_tokens);

  absl::Duration heartbeat_interval() const { return heartbeat_interval_; }

 private:
  struct Entry {
    std::shared_ptr<WorkerHandle> handle;
    v1::WorkerLoad load;
    absl::Time last_seen;
    int in_flight = 0;
    int64_t in_flight_prompt_tokens = 0;
  };
  void Reap();

  const absl::Duration heartbeat_interval_;
  const absl::Duration heartbeat_timeout_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, Entry> workers_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::Notification stop_;
  std::thread reaper_;
};

}  // namespace cleave

#endif  // CLEAVE_SERVICES_ROUTER_WORKER_REGISTRY_H_
