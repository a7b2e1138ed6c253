#include "services/router/request_relay.h"

#include "absl/strings/str_cat.h"
#include "engine/util/log.h"
#include "grpcpp/support/client_callback.h"
#include "services/common/proto_convert.h"

namespace cleave {

using Clock = std::chrono::steady_clock;

// Reads the decode worker's stream; keeps the relay alive until the stream is over.
class RequestRelay::DecodeReader final : public grpc::ClientReadReactor<v1::DecodeResponse> {
 public:
  explicit DecodeReader(std::shared_ptr<RequestRelay> relay) : relay_(std::move(relay)) {
    ctx_.set_deadline(relay_->plan_.deadline);
    request_.set_request_id(relay_->plan_.request_id);
    for (int t : relay_->plan_.prompt_ids) request_.add_prompt_ids(t);
    *request_.mutable_sampling() = relay_->plan_.sampling;
    request_.set_handoff(relay_->plan_.prefill != nullptr);
  }
  void Go() {
    relay_->plan_.decode->decode->async()->Decode(&ctx_, &request_, this);
    StartRead(&response_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows with the status
    relay_->OnChunk(response_);
    StartRead(&response_);
  }
  void OnDone(const grpc::Status& status) override {
    relay_->OnDecodeDone(status);
    delete this;
  }
  void Cancel() { ctx_.TryCancel(); }

 private:
  std::shared_ptr<RequestRelay> relay_;
  grpc::ClientContext ctx_;
  v1::DecodeRequest request_;
  v1::DecodeResponse response_;
};

RequestRelay::RequestRelay(RelayPlan plan, std::unique_ptr<RelaySink> sink,
                           WorkerRegistry* registry, ServiceMetrics* metrics)
    : plan_(std::move(plan)), sink_(std::move(sink)), registry_(registry), metrics_(metrics) {}

std::shared_ptr<RequestRelay> RequestRelay::Start(RelayPlan plan, std::unique_ptr<RelaySink> sink,
                                                  WorkerRegistry* registry,
                                                  ServiceMetrics* metrics) {
  std::shared_ptr<RequestRelay> relay(
      new RequestRelay(std::move(plan), std::move(sink), registry, metrics));
  relay->Begin();
  return relay;
}

double RequestRelay::MsSinceAccepted() const {
  return std::chrono::duration<double, std::milli>(Clock::now() - plan_.accepted).count();
}

void RequestRelay::Begin() {
  const int64_t n = static_cast<int64_t>(plan_.prompt_ids.size());
  if (plan_.prefill) registry_->Acquire(plan_.prefill->id, n);
  registry_->Acquire(plan_.decode->id, plan_.prefill ? 0 : n);
  auto* reader = new DecodeReader(shared_from_this());
  {
    absl::MutexLock lock(&mu_);
    decode_reader_ = reader;
  }
  reader->Go();
}

void RequestRelay::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  CancelCalls();
}

void RequestRelay::CancelCalls() {
  if (decode_reader_) decode_reader_->Cancel();
  if (prefill_started_) {
    prefill_ctx_.TryCancel();
    handoff_ctx_.TryCancel();
  }
}

void RequestRelay::OnKvTarget(const v1::KvTarget& target) {
  dispatch_ms_ = MsSinceAccepted();
  job_.set_request_id(plan_.request_id);
  for (int t : plan_.prompt_ids) job_.add_prompt_ids(t);
  *job_.mutable_sampling() = plan_.sampling;
  *job_.mutable_target() = target;
  prefill_ctx_.set_deadline(plan_.deadline);
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_ || done_) return;
    prefill_started_ = true;
  }
  auto self = shared_from_this();
  plan_.prefill->prefill->async()->Prefill(&prefill_ctx_, &job_, &prefill_result_,
                                           [self](grpc::Status s) { self->OnPrefillDone(s); });
}

void RequestRelay::OnPrefillDone(const grpc::Status& status) {
  registry_->Release(plan_.prefill->id, static_cast<int64_t>(plan_.prompt_ids.size()));
  if (!status.ok()) {
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE) registry_->MarkDown(plan_.prefill->id);
    absl::MutexLock lock(&mu_);
    if (error_.ok()) {
      error_ = grpc::Status(status.error_code(),
                            absl::StrCat("prefill worker ", plan_.prefill->instance, ": ",
                                         status.error_message()));
    }
    CancelCalls();
    return;
  }
  worker_queue_ms_ = prefill_result_.queue_ms();
  prefill_ms_ = prefill_result_.prefill_ms();
  transfer_ms_ = prefill_result_.kv_transfer_ms();
  transfer_bytes_ = prefill_result_.kv_transfer_bytes();
  handoff_req_.set_request_id(plan_.request_id);
  handoff_req_.set_first_token(prefill_result_.first_token());
  *handoff_req_.mutable_first_logprob() = prefill_result_.first_logprob();
  handoff_req_.set_cached_prompt_tokens(prefill_result_.cached_prompt_tokens());
  handoff_ctx_.set_deadline(plan_.deadline);
  auto self = shared_from_this();
  plan_.decode->decode->async()->CompleteHandoff(&handoff_ctx_, &handoff_req_, &handoff_resp_,
                                                 [self](grpc::Status s) { self->OnHandoffDone(s); });
}

void RequestRelay::OnHandoffDone(const grpc::Status& status) {
  if (status.ok()) return;
  absl::MutexLock lock(&mu_);
  if (error_.ok()) {
    error_ = grpc::Status(status.error_code(),
                          absl::StrCat("decode worker ", plan_.decode->instance,
                                       ": handoff: ", status.error_message()));
  }
  CancelCalls();
}

void RequestRelay::OnChunk(const v1::DecodeResponse& response) {
  if (response.has_kv_target()) {
    OnKvTarget(response.kv_target());
    return;
  }
  if (!response.has_chunk()) return;
  v1::GenerateResponse chunk = response.chunk();
  chunk.set_request_id(plan_.request_id);
  const Clock::time_point now = Clock::now();
  const int n = chunk.token_ids_size();
  if (first_chunk_) {
    first_chunk_ = false;
    if (!plan_.prefill) {  // colocated: the worker timed its own prefill
      dispatch_ms_ = 0;
      worker_queue_ms_ = response.queue_ms();
      prefill_ms_ = response.prefill_ms();
    }
    ttft_ms_ = MsSinceAccepted();
    const double ttft_ms = ttft_ms_;
    if (metrics_) {
      metrics_->ObserveTtft(ttft_ms / 1000);
      metrics_->ObserveQueueTime((dispatch_ms_ + worker_queue_ms_) / 1000);
      metrics_->AddPromptTokens(static_cast<int>(plan_.prompt_ids.size()));
    }
    chunk.mutable_timing()->set_ttft_ms(ttft_ms);
    // Who serves the request, early: clients and tests can tell before the stream ends.
    chunk.mutable_timing()->set_prefill_worker(plan_.prefill ? plan_.prefill->instance
                                                             : plan_.decode->instance);
    chunk.mutable_timing()->set_decode_worker(plan_.decode->instance);
  } else if (metrics_ && n > 0) {
    const double gap = std::chrono::duration<double>(now - last_chunk_).count();
    for (int i = 0; i < n; ++i) metrics_->ObserveInterToken(gap / n);
  }
  if (n > 0) last_chunk_ = now;
  if (metrics_) metrics_->AddGenerationTokens(n);
  if (chunk.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
    finished_ = true;
    v1::Timing* t = chunk.mutable_timing();
    t->set_ttft_ms(ttft_ms_);
    t->set_queue_ms(dispatch_ms_ + worker_queue_ms_);
    t->set_prefill_ms(prefill_ms_);
    t->set_kv_transfer_ms(transfer_ms_);
    t->set_kv_transfer_bytes(transfer_bytes_);
    t->set_e2e_ms(MsSinceAccepted());
    t->set_prefill_worker(plan_.prefill ? plan_.prefill->instance : plan_.decode->instance);
    t->set_decode_worker(plan_.decode->instance);
    if (metrics_) {
      metrics_->CountFinished(FinishReasonFromProto(chunk.finish_reason()));
      metrics_->ObserveE2e(t->e2e_ms() / 1000);
      metrics_->ObservePrefillTime(prefill_ms_ / 1000);
      if (plan_.prefill) metrics_->ObserveKvTransfer(transfer_ms_ / 1000, transfer_bytes_);
    }
  }
  sink_->OnChunk(std::move(chunk));
}

void RequestRelay::OnDecodeDone(const grpc::Status& status) {
  registry_->Release(plan_.decode->id,
                     plan_.prefill ? 0 : static_cast<int64_t>(plan_.prompt_ids.size()));
  grpc::Status final = status;
  {
    absl::MutexLock lock(&mu_);
    decode_reader_ = nullptr;
    done_ = true;
    if (finished_) {
      final = grpc::Status::OK;
    } else if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
      final = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                           absl::StrCat("decode worker ", plan_.decode->instance, ": ",
                                        status.error_message()));
    } else if (!error_.ok()) {
      final = error_;
    } else if (status.ok()) {
      final = grpc::Status(grpc::StatusCode::INTERNAL, "decode stream ended without a finish");
    }
    CancelCalls();
  }
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) registry_->MarkDown(plan_.decode->id);
  if (metrics_ && !final.ok()) metrics_->CountFailed(absl::StatusCodeToString(
                                   static_cast<absl::StatusCode>(final.error_code())));
  sink_->OnDone(final);
}

}  // namespace cleave
