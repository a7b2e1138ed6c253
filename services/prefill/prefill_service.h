// cleave.v1.Prefill: chunked prefill of the router's jobs. The prompt runs through this
// worker's engine (export_kv: it ends at the first token and keeps its KV blocks), the KvSender
// writes those blocks into the decode worker's reserved blocks over UCX, and only then does the
// call answer with the first token, so the router can hand off knowing the KV is in place.
#ifndef CLEAVE_SERVICES_PREFILL_PREFILL_SERVICE_H_
#define CLEAVE_SERVICES_PREFILL_PREFILL_SERVICE_H_

#include <string>

#include "cleave/v1/handoff.grpc.pb.h"
#include "engine/core/engine.h"
#include "services/common/metrics.h"
#include "services/prefill/kv_sender.h"

namespace cleave {

class PrefillService final : public v1::Prefill::CallbackService {
 public:
  PrefillService(std::string instance, Engine* engine, KvSender* sender, ServiceMetrics* metrics)
      : instance_(std::move(instance)), engine_(engine), sender_(sender), metrics_(metrics) {}

  grpc::ServerUnaryReactor* Prefill(grpc::CallbackServerContext* ctx, const v1::PrefillJob* job,
                                    v1::PrefillResult* result) override;

 private:
  const std::string instance_;
  Engine* const engine_;
  KvSender* const sender_;
  ServiceMetrics* const metrics_;
};

}  // namespace cleave

#endif  // CLEAVE_SERVICES_PREFILL_PREFILL_SERVICE_H_
