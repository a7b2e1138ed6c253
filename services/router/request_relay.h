// One request's way through the cluster, as the router drives it:
//   1. open a Decode stream on the decode worker (handoff): it reserves KV blocks and answers
//      with a KvTarget (its UCX address, registered pool, block ids);
//   2. send the PrefillJob with that target to the prefill worker: it prefills, writes the KV
//      straight into those blocks over UCX, and answers with the first token;
//   3. CompleteHandoff on the decode worker with the first token; tokens then stream back on
//      the Decode stream and are relayed to the client.
// A colocated worker skips 1-3: its Decode stream (no handoff) prefills and decodes.
// Cancellation and deadlines reach both workers through their call contexts; a worker that
// fails at the transport is taken out of the registry.
#ifndef CLEAVE_SERVICES_ROUTER_REQUEST_RELAY_H_
#define CLEAVE_SERVICES_ROUTER_REQUEST_RELAY_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "cleave/v1/generation.pb.h"
#include "cleave/v1/handoff.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "services/common/metrics.h"
#include "services/router/worker_registry.h"

namespace cleave {

// Where the relay's output goes (a client stream, or a unary response being assembled).
class RelaySink {
 public:
  virtual ~RelaySink() = default;
  virtual void OnChunk(v1::GenerateResponse chunk) = 0;
  // Exactly once, last.
  virtual void OnDone(const grpc::Status& status) = 0;
};

struct RelayPlan {
  std::string request_id;
  std::vector<int> prompt_ids;
  v1::SamplingParams sampling;
  std::chrono::system_clock::time_point deadline;
  std::chrono::steady_clock::time_point accepted;  // when the router took the request
  std::shared_ptr<WorkerHandle> prefill;  // null: decode is colocated and prefills itself
  std::shared_ptr<WorkerHandle> decode;
};

class RequestRelay : public std::enable_shared_from_this<RequestRelay> {
 public:
  static std::shared_ptr<RequestRelay> Start(RelayPlan plan, std::unique_ptr<RelaySink> sink,
                                             WorkerRegistry* registry, ServiceMetrics* metrics);
  // The client went away: cancel both workers' calls.
  void Cancel();

 private:
  class DecodeReader;
  RequestRelay(RelayPlan plan, std::unique_ptr<RelaySink> sink, WorkerRegistry* registry,
               ServiceMetrics* metrics);
  void Begin();
  void OnKvTarget(const v1::KvTarget& target);
  void OnPrefillDone(const grpc::Status& status);
  void OnHandoffDone(const grpc::Status& status);
  void OnChunk(const v1::DecodeResponse& response);
  void OnDecodeDone(const grpc::Status& status);
  void CancelCalls() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  double MsSinceAccepted() const;

  const RelayPlan plan_;
  const std::unique_ptr<RelaySink> sink_;
  WorkerRegistry* const registry_;
  ServiceMetrics* const metrics_;

  absl::Mutex mu_;
  DecodeReader* decode_reader_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool prefill_started_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status error_ ABSL_GUARDED_BY(mu_);  // the first failure of a side call
  grpc::ClientContext prefill_ctx_, handoff_ctx_;
  v1::PrefillJob job_;
  v1::PrefillResult prefill_result_;
  v1::CompleteHandoffRequest handoff_req_;
  v1::CompleteHandoffResponse handoff_resp_;

  // Stream progress (the decode reader's thread only, one read at a time).
  double dispatch_ms_ = 0;  // when the prefill job left (router queue time)
  double worker_queue_ms_ = 0, prefill_ms_ = 0, transfer_ms_ = 0, ttft_ms_ = 0;
  int64_t transfer_bytes_ = 0;
  bool first_chunk_ = true;
  bool finished_ = false;
  std::chrono::steady_clock::time_point last_chunk_;
};

}  // namespace cleave

#endif  // CLEAVE_SERVICES_ROUTER_REQUEST_RELAY_H_
