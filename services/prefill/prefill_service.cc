#include "services/prefill/prefill_service.h"

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "services/common/proto_convert.h"

namespace cleave {
namespace {

// The call, owned by gRPC (until OnDone) and by the job (until Complete): deleted when both
// have let go, so a transfer that outlives a cancelled call still finds it.
class PrefillCall final : public grpc::ServerUnaryReactor {
 public:
  PrefillCall(Engine* engine, std::string request_id)
      : engine_(engine), request_id_(std::move(request_id)) {}
  void OnCancel() override { engine_->Abort(request_id_); }
  void OnDone() override { Unref(); }
  void Complete(const grpc::Status& status) {
    Finish(status);
    Unref();
  }

 private:
  void Unref() {
    bool last;
    {
      absl::MutexLock lock(&mu_);
      last = --refs_ == 0;
    }
    if (last) delete this;
  }
  Engine* const engine_;
  const std::string request_id_;
  absl::Mutex mu_;
  int refs_ ABSL_GUARDED_BY(mu_) = 2;
};

}  // namespace

grpc::ServerUnaryReactor* PrefillService::Prefill(grpc::CallbackServerContext* ctx,
                                                  const v1::PrefillJob* job,
                                                  v1::PrefillResult* result) {
  auto* call = new PrefillCall(engine_, job->request_id());
  if (job->request_id().empty() || job->prompt_ids().empty() || !job->has_target()) {
    call->Complete(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                job->request_id().empty()  ? "request_id: required"
                                : job->prompt_ids().empty() ? "prompt_ids: required"
                                                            : "target: required"));
    return call;
  }
  if (job->target().block_ids_size() * job->target().block_size() < job->prompt_ids_size()) {
    call->Complete(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                "target.block_ids: too few blocks for the prompt"));
    return call;
  }
  GenerateRequest req;
  req.request_id = job->request_id();
  req.prompt_ids.assign(job->prompt_ids().begin(), job->prompt_ids().end());
  req.params = SamplingFromProto(job->sampling());
  req.export_kv = true;

  Engine* engine = engine_;
  KvSender* sender = sender_;
  ServiceMetrics* metrics = metrics_;
  const std::string instance = instance_;
  auto target = std::make_shared<v1::KvTarget>(job->target());
  engine_->Submit(std::move(req), [=](const absl::Status& st, const RequestOutput& out) {
    if (!st.ok()) {
      if (metrics) metrics->CountFailed(absl::StatusCodeToString(st.code()));
      call->Complete(ToGrpcStatus(st));
      return;
    }
    if (!out.finished) return;
    if (out.exported_blocks.empty() || out.token_ids.empty()) {
      call->Complete(grpc::Status(grpc::StatusCode::CANCELLED,
                                  "prefill aborted before its first token"));
      return;
    }
    result->set_first_token(out.token_ids[0]);
    if (!out.logprobs.empty()) TokenLogprobToProto(out.logprobs[0], result->mutable_first_logprob());
    result->set_cached_prompt_tokens(out.cached_prompt_tokens);
    result->set_queue_ms(out.queue_ms);
    result->set_prefill_ms(out.prefill_ms);
    result->set_instance(instance);
    if (metrics) {
      metrics->AddPromptTokens(out.prompt_tokens);
      metrics->ObservePrefillTime(out.prefill_ms / 1000);
      metrics->ObserveQueueTime(out.queue_ms / 1000);
    }
    const SeqId seq = out.seq_id;
    const std::string decode = target->decode_instance();
    sender->Send(out.exported_blocks, *target,
                 [=](const absl::StatusOr<KvSendResult>& sent) {
                   engine->ReleaseExportedKv(seq);
                   if (!sent.ok()) {
                     if (metrics) metrics->CountKvTransferFailure();
                     // ABORTED, not UNAVAILABLE: this worker is fine; the decode side is not.
                     call->Complete(grpc::Status(
                         grpc::StatusCode::ABORTED,
                         absl::StrCat("KV transfer to ", decode, ": ", sent.status().ToString())));
                     return;
                   }
                   result->set_kv_transfer_ms(sent->seconds * 1000);
                   result->set_kv_transfer_bytes(sent->bytes);
                   if (metrics) metrics->ObserveKvTransfer(sent->seconds, sent->bytes);
                   call->Complete(grpc::Status::OK);
                 });
  });
  return call;
}

}  // namespace cleave
