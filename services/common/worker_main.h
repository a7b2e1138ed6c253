// The life of a worker process, shared by cleave-prefill and cleave-decode: parse flags, load
// the engine, serve, register with the router, and shut down cleanly on SIGINT/SIGTERM.
#ifndef CLEAVE_SERVICES_COMMON_WORKER_MAIN_H_
#define CLEAVE_SERVICES_COMMON_WORKER_MAIN_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cleave/v1/registry.pb.h"
#include "engine/core/engine.h"
#include "grpcpp/impl/codegen/service_type.h"
#include "services/common/metrics.h"

namespace cleave {

struct WorkerContext {
  std::string instance;
  v1::WorkerRole role;
  Engine* engine = nullptr;
  ServiceMetrics* metrics = nullptr;
};

// What a role adds: its services, and whatever they need torn down before the engine.
struct WorkerServices {
  std::vector<grpc::Service*> services;
  std::function<void()> teardown;
};

// Runs the worker until a shutdown signal; returns the process exit code (2: bad flags).
// `make_services` runs once the engine is up.
int RunWorker(int argc, char** argv, const char* binary, v1::WorkerRole role,
              const std::function<absl::StatusOr<WorkerServices>(const WorkerContext&)>&
                  make_services);

}  // namespace cleave

#endif  // CLEAVE_SERVICES_COMMON_WORKER_MAIN_H_
