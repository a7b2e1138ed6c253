// cleave.v1.Generation, the public API: validates and tokenizes requests, picks a
// (prefill, decode) pair with the routing policy, and relays the decode stream.
#ifndef CLEAVE_SERVICES_ROUTER_GENERATION_SERVICE_H_
#define CLEAVE_SERVICES_ROUTER_GENERATION_SERVICE_H_

#include <memory>
#include <string>

#include "cleave/v1/generation.grpc.pb.h"
#include "engine/model/config.h"
#include "engine/tokenizer/tokenizer.h"
#include "services/common/metrics.h"
#include "services/router/request_relay.h"
#include "services/router/routing_policy.h"
#include "services/router/worker_registry.h"

namespace cleave {

class GenerationService final : public v1::Generation::CallbackService {
 public:
  GenerationService(std::string model_name, ModelConfig config,
                    std::unique_ptr<Tokenizer> tokenizer, WorkerRegistry* registry,
                    RoutingPolicy* policy, ServiceMetrics* metrics)
      : model_name_(std::move(model_name)),
        config_(std::move(config)),
        tokenizer_(std::move(tokenizer)),
        registry_(registry),
        policy_(policy),
        metrics_(metrics) {}

  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* ctx, const v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Complete(grpc::CallbackServerContext* ctx,
                                     const v1::GenerateRequest* request,
                                     v1::CompleteResponse* response) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* ctx,
                                     const v1::TokenizeRequest* request,
                                     v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* ctx,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;

 private:
  // Validates the request and chooses workers; INVALID_ARGUMENT naming the field, or
  // UNAVAILABLE when no worker of a role is healthy.
  absl::StatusOr<RelayPlan> Plan(grpc::CallbackServerContext* ctx,
                                 const v1::GenerateRequest& request);

  const std::string model_name_;
  const ModelConfig config_;
  const std::unique_ptr<Tokenizer> tokenizer_;
  WorkerRegistry* const registry_;
  RoutingPolicy* const policy_;
  ServiceMetrics* const metrics_;
};

}  // namespace cleave

#endif  // CLEAVE_SERVICES_ROUTER_GENERATION_SERVICE_H_
