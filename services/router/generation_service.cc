#include "services/router/generation_service.h"

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "services/common/proto_convert.h"
#include "services/common/stream_reactor.h"

namespace cleave {
namespace {

using Clock = std::chrono::steady_clock;

// Connects a client call's cancellation to its relay, whichever comes first.
class CancelLink {
 public:
  void Cancel() {
    std::shared_ptr<RequestRelay> relay;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      relay = relay_.lock();
    }
    if (relay) relay->Cancel();
  }
  void Attach(const std::shared_ptr<RequestRelay>& relay) {
    bool cancelled;
    {
      absl::MutexLock lock(&mu_);
      relay_ = relay;
      cancelled = cancelled_;
    }
    if (cancelled) relay->Cancel();
  }

 private:
  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::weak_ptr<RequestRelay> relay_ ABSL_GUARDED_BY(mu_);
};

using StreamOut = StreamReactor<v1::GenerateResponse>;

class StreamSink final : public RelaySink {
 public:
  explicit StreamSink(StreamOut* out) : out_(out) {}
  void OnChunk(v1::GenerateResponse chunk) override { out_->Push(std::move(chunk)); }
  void OnDone(const grpc::Status& status) override { out_->Close(status); }

 private:
  StreamOut* const out_;
};

// Complete: the same relay, its chunks gathered into one response.
class CompleteCall final : public grpc::ServerUnaryReactor {
 public:
  explicit CompleteCall(v1::CompleteResponse* response) : response_(response) {}
  void OnCancel() override { link_.Cancel(); }
  void OnDone() override { delete this; }
  CancelLink& link() { return link_; }
  v1::CompleteResponse* response() { return response_; }

 private:
  v1::CompleteResponse* const response_;
  CancelLink link_;
};

class CompleteSink final : public RelaySink {
 public:
  explicit CompleteSink(CompleteCall* call) : call_(call) {}
  void OnChunk(v1::GenerateResponse chunk) override {
    v1::CompleteResponse* r = call_->response();
    r->set_request_id(chunk.request_id());
    r->mutable_token_ids()->MergeFrom(chunk.token_ids());
    r->mutable_text()->append(chunk.text());
    r->mutable_logprobs()->MergeFrom(chunk.logprobs());
    if (chunk.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
      r->set_finish_reason(chunk.finish_reason());
      *r->mutable_usage() = chunk.usage();
      *r->mutable_timing() = chunk.timing();
    }
  }
  void OnDone(const grpc::Status& status) override { call_->Finish(status); }

 private:
  CompleteCall* const call_;
};

}  // namespace

absl::StatusOr<RelayPlan> GenerationService::Plan(grpc::CallbackServerContext* ctx,
                                                  const v1::GenerateRequest& request) {
  RelayPlan plan;
  plan.accepted = Clock::now();
  if (!request.model().empty() && request.model() != model_name_) {
    return absl::InvalidArgumentError(
        absl::StrCat("model: '", request.model(), "' is not served here (serving '",
                     model_name_, "')"));
  }
  switch (request.prompt_case()) {
    case v1::GenerateRequest::kText:
      plan.prompt_ids = tokenizer_->Encode(request.text(), /*add_bos=*/true);
      break;
    case v1::GenerateRequest::kTokenIds:
      plan.prompt_ids.assign(request.token_ids().ids().begin(), request.token_ids().ids().end());
      break;
    case v1::GenerateRequest::PROMPT_NOT_SET:
      return absl::InvalidArgumentError("prompt: set text or token_ids");
  }
  if (plan.prompt_ids.empty()) return absl::InvalidArgumentError("prompt: empty");
  for (size_t i = 0; i < plan.prompt_ids.size(); ++i) {
    if (plan.prompt_ids[i] < 0 || plan.prompt_ids[i] >= config_.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("token_ids[", i, "]: ", plan.prompt_ids[i],
                       " is outside the vocabulary [0, ", config_.vocab_size, ")"));
    }
  }
  if (static_cast<int>(plan.prompt_ids.size()) >= config_.max_position_embeddings) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt: ", plan.prompt_ids.size(), " tokens; the model holds at most ",
                     config_.max_position_embeddings - 1));
  }
  const SamplingParams params = SamplingFromProto(request.sampling());
  if (absl::Status st = params.Validate(config_.vocab_size); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("sampling.", st.message()));
  }
  plan.sampling = request.sampling();
  plan.request_id = request.request_id().empty() ? NewRequestId() : request.request_id();
  plan.deadline = ctx->deadline();
  if (request.timeout_ms() > 0) {
    plan.deadline = std::min(plan.deadline, std::chrono::system_clock::now() +
                                                std::chrono::milliseconds(request.timeout_ms()));
  }

  const RouteRequest route{.prompt_tokens = static_cast<int>(plan.prompt_ids.size())};
  std::vector<WorkerView> prefill = registry_->Workers(v1::WORKER_ROLE_PREFILL);
  std::vector<WorkerView> decode = registry_->Workers(v1::WORKER_ROLE_DECODE);
  // Dedicated pools first: a pair of a prefill-only and a decode-only worker.
  std::vector<WorkerView> dedicated_p, dedicated_d, colocated;
  for (WorkerView& w : prefill) {
    (w.handle->role == v1::WORKER_ROLE_PREFILL ? dedicated_p : colocated).push_back(w);
  }
  for (WorkerView& w : decode) {
    if (w.handle->role == v1::WORKER_ROLE_DECODE) dedicated_d.push_back(w);
  }
  if (!dedicated_p.empty() && !dedicated_d.empty()) {
    plan.prefill = dedicated_p[policy_->PickPrefill(dedicated_p, route)].handle;
    plan.decode = dedicated_d[policy_->PickDecode(dedicated_d, route)].handle;
  } else if (!colocated.empty()) {
    plan.decode = colocated[policy_->PickDecode(colocated, route)].handle;
  } else if (prefill.empty() && dedicated_p.empty()) {
    return absl::UnavailableError("no healthy prefill worker");
  } else {
    return absl::UnavailableError(dedicated_p.empty() ? "no healthy prefill worker"
                                                      : "no healthy decode worker");
  }
  return plan;
}

grpc::ServerWriteReactor<v1::GenerateResponse>* GenerationService::Generate(
    grpc::CallbackServerContext* ctx, const v1::GenerateRequest* request) {
  auto link = std::make_shared<CancelLink>();
  auto* out = new StreamOut([link] { link->Cancel(); });
  auto plan = Plan(ctx, *request);
  if (!plan.ok()) {
    if (metrics_) metrics_->CountFailed(absl::StatusCodeToString(plan.status().code()));
    out->Close(ToGrpcStatus(plan.status()));
    return out;
  }
  link->Attach(RequestRelay::Start(std::move(*plan), std::make_unique<StreamSink>(out), registry_,
                                   metrics_));
  return out;
}

grpc::ServerUnaryReactor* GenerationService::Complete(grpc::CallbackServerContext* ctx,
                                                      const v1::GenerateRequest* request,
                                                      v1::CompleteResponse* response) {
  auto* call = new CompleteCall(response);
  auto plan = Plan(ctx, *request);
  if (!plan.ok()) {
    if (metrics_) metrics_->CountFailed(absl::StatusCodeToString(plan.status().code()));
    call->Finish(ToGrpcStatus(plan.status()));
    return call;
  }
  call->link().Attach(RequestRelay::Start(std::move(*plan), std::make_unique<CompleteSink>(call),
                                          registry_, metrics_));
  return call;
}

grpc::ServerUnaryReactor* GenerationService::Tokenize(grpc::CallbackServerContext* ctx,
                                                      const v1::TokenizeRequest* request,
                                                      v1::TokenizeResponse* response) {
  for (int id : tokenizer_->Encode(request->text(), request->add_bos())) {
    response->add_token_ids(id);
    response->add_pieces(tokenizer_->Decode(std::vector<int>{id}));
  }
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* GenerationService::ListModels(grpc::CallbackServerContext* ctx,
                                                        const v1::ListModelsRequest* request,
                                                        v1::ListModelsResponse* response) {
  v1::ModelInfo* m = response->add_models();
  m->set_name(model_name_);
  m->set_vocab_size(config_.vocab_size);
  m->set_max_model_len(config_.max_position_embeddings);
  m->set_prefill_workers(registry_->Count(v1::WORKER_ROLE_PREFILL));
  m->set_decode_workers(registry_->Count(v1::WORKER_ROLE_DECODE));
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace cleave
