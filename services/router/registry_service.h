// cleave.v1.Registry: workers register, heartbeat with their load, and deregister.
#ifndef CLEAVE_SERVICES_ROUTER_REGISTRY_SERVICE_H_
#define CLEAVE_SERVICES_ROUTER_REGISTRY_SERVICE_H_

#include "cleave/v1/registry.grpc.pb.h"
#include "services/router/worker_registry.h"

namespace cleave {

class RegistryService final : public v1::Registry::CallbackService {
 public:
  explicit RegistryService(WorkerRegistry* registry) : registry_(registry) {}
  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* ctx,
                                     const v1::RegisterRequest* request,
                                     v1::RegisterResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const v1::HeartbeatRequest* request,
                                      v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* Deregister(grpc::CallbackServerContext* ctx,
                                       const v1::DeregisterRequest* request,
                                       v1::DeregisterResponse* response) override;

 private:
  WorkerRegistry* const registry_;
};

}  // namespace cleave

#endif  // CLEAVE_SERVICES_ROUTER_REGISTRY_SERVICE_H_
