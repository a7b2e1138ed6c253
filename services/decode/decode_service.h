// cleave.v1.Decode: continuous batching over every sequence handed to this worker. A handoff
// stream first reserves blocks for the prompt and tells the router where they are; the
// prefill worker writes the KV there over UCX; CompleteHandoff then starts decoding from the
// first token. A colocated worker also takes plain requests and prefills them itself.
#ifndef CLEAVE_SERVICES_DECODE_DECODE_SERVICE_H_
#define CLEAVE_SERVICES_DECODE_DECODE_SERVICE_H_

#include "absl/time/time.h"
#include "cleave/v1/handoff.grpc.pb.h"
#include "engine/core/engine.h"
#include "services/common/metrics.h"
#include "services/decode/kv_receiver.h"

namespace cleave {

class DecodeService final : public v1::Decode::CallbackService {
 public:
  // receiver may be null for a worker that only serves colocated requests.
  DecodeService(Engine* engine, const KvReceiver* receiver, ServiceMetrics* metrics,
                absl::Duration handoff_timeout)
      : engine_(engine), receiver_(receiver), metrics_(metrics), handoff_timeout_(handoff_timeout) {}

  grpc::ServerWriteReactor<v1::DecodeResponse>* Decode(grpc::CallbackServerContext* ctx,
                                                       const v1::DecodeRequest* request) override;
  grpc::ServerUnaryReactor* CompleteHandoff(grpc::CallbackServerContext* ctx,
                                            const v1::CompleteHandoffRequest* request,
                                            v1::CompleteHandoffResponse* response) override;

 private:
  Engine* const engine_;
  const KvReceiver* const receiver_;
  ServiceMetrics* const metrics_;
  const absl::Duration handoff_timeout_;
};

}  // namespace cleave

#endif  // CLEAVE_SERVICES_DECODE_DECODE_SERVICE_H_
