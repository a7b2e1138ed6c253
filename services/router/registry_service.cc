#include "services/router/registry_service.h"

#include "absl/time/time.h"
#include "services/common/proto_convert.h"

namespace cleave {

grpc::ServerUnaryReactor* RegistryService::Register(grpc::CallbackServerContext* ctx,
                                                    const v1::RegisterRequest* request,
                                                    v1::RegisterResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto id = registry_->Register(*request);
  if (id.ok()) {
    response->set_worker_id(*id);
    response->set_heartbeat_interval_ms(
        static_cast<uint32_t>(absl::ToInt64Milliseconds(registry_->heartbeat_interval())));
  }
  reactor->Finish(ToGrpcStatus(id.status()));
  return reactor;
}

grpc::ServerUnaryReactor* RegistryService::Heartbeat(grpc::CallbackServerContext* ctx,
                                                     const v1::HeartbeatRequest* request,
                                                     v1::HeartbeatResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(registry_->Heartbeat(request->worker_id(), request->load())));
  return reactor;
}

grpc::ServerUnaryReactor* RegistryService::Deregister(grpc::CallbackServerContext* ctx,
                                                      const v1::DeregisterRequest* request,
                                                      v1::DeregisterResponse* response) {
  registry_->Remove(request->worker_id());
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace cleave
