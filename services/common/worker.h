// What prefill and decode workers share: the engine built from flags, the link to the
// router (register, heartbeat with load, deregister), and the WorkerStats service.
#ifndef CLEAVE_SERVICES_COMMON_WORKER_H_
#define CLEAVE_SERVICES_COMMON_WORKER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "cleave/v1/handoff.grpc.pb.h"
#include "cleave/v1/registry.grpc.pb.h"
#include "engine/core/engine.h"
#include "services/common/metrics.h"

namespace cleave {

// Engine settings from the worker flags (--kv_cache_mib, --block_size, ...).
EngineConfig EngineConfigFromFlags();
// Loads the checkpoint in model_dir on the CPU backend and starts its engine thread.
absl::StatusOr<std::unique_ptr<Engine>> LoadEngine(const std::string& model_dir,
                                                   const EngineConfig& config,
                                                   absl::Duration handoff_quarantine,
                                                   std::unique_ptr<Backend>* backend);

v1::WorkerLoad LoadToProto(const Engine::Load& load);

// Keeps the worker registered with the router: registers (retrying until the router answers),
// heartbeats with the current load, re-registers when the router has forgotten it, and
// deregisters on Stop. Also refreshes the engine gauges of `metrics` at each beat.
class RouterLink {
 public:
  RouterLink(std::string router_address, v1::RegisterRequest registration, const Engine* engine,
             ServiceMetrics* metrics);
  ~RouterLink();  // Stop()
  void Start();
  void Stop();

 private:
  void Run();

  const std::string router_address_;
  v1::RegisterRequest registration_;
  const Engine* const engine_;
  ServiceMetrics* const metrics_;
  absl::Notification stop_;
  std::thread thread_;
};

// cleave.v1.WorkerStats: the engine's state, for operators and tests.
class WorkerStatsService final : public v1::WorkerStats::CallbackService {
 public:
  WorkerStatsService(std::string instance, v1::WorkerRole role, const Engine* engine)
      : instance_(std::move(instance)), role_(role), engine_(engine) {}
  grpc::ServerUnaryReactor* Stats(grpc::CallbackServerContext* ctx,
                                  const v1::WorkerStatsRequest* request,
                                  v1::WorkerStatsResponse* response) override;

 private:
  const std::string instance_;
  const v1::WorkerRole role_;
  const Engine* const engine_;
};

}  // namespace cleave

#endif  // CLEAVE_SERVICES_COMMON_WORKER_H_
