#include "services/decode/decode_service.h"

#include <chrono>
#include <memory>

#include "absl/strings/str_cat.h"
#include "services/common/proto_convert.h"
#include "services/common/stream_reactor.h"

namespace cleave {
namespace {

using Clock = std::chrono::steady_clock;
using Reactor = StreamReactor<v1::DecodeResponse>;

// Per-stream state the engine callback carries: when the stream began and the last token.
struct StreamClock {
  Clock::time_point start = Clock::now();
  bool first = true;
};

}  // namespace

grpc::ServerWriteReactor<v1::DecodeResponse>* DecodeService::Decode(
    grpc::CallbackServerContext* ctx, const v1::DecodeRequest* request) {
  const std::string id = request->request_id();
  Engine* engine = engine_;
  auto* reactor = new Reactor([engine, id] { engine->Abort(id); });
  if (id.empty() || request->prompt_ids().empty()) {
    reactor->Close(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                id.empty() ? "request_id: required" : "prompt_ids: required"));
    return reactor;
  }
  if (request->handoff() && receiver_ == nullptr) {
    reactor->Close(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                "handoff: this worker has no KV receiver"));
    return reactor;
  }
  GenerateRequest req;
  req.request_id = id;
  req.prompt_ids.assign(request->prompt_ids().begin(), request->prompt_ids().end());
  req.params = SamplingFromProto(request->sampling());

  ServiceMetrics* metrics = metrics_;
  auto clock = std::make_shared<StreamClock>();
  const bool colocated = !request->handoff();
  Engine::Callback on_output = [reactor, metrics, clock, colocated](const absl::Status& st,
                                                                    const RequestOutput& out) {
    if (!st.ok()) {
      if (metrics) metrics->CountFailed(absl::StatusCodeToString(st.code()));
      reactor->Close(ToGrpcStatus(st));
      return;
    }
    v1::DecodeResponse resp;
    OutputToProto(out, resp.mutable_chunk());
    if (clock->first && colocated) {
      resp.set_prefill_ms(
          std::chrono::duration<double, std::milli>(Clock::now() - clock->start).count());
      if (metrics) metrics->AddPromptTokens(out.prompt_tokens);
    }
    clock->first = false;
    if (metrics) {
      metrics->AddGenerationTokens(static_cast<int>(out.token_ids.size()));
      if (out.finished) metrics->CountFinished(out.finish_reason);
    }
    reactor->Push(std::move(resp));
    if (out.finished) reactor->Close(grpc::Status::OK);
  };
  if (colocated) {
    engine_->Submit(std::move(req), std::move(on_output));
    return reactor;
  }
  const KvReceiver* receiver = receiver_;
  engine_->SubmitImport(
      std::move(req),
      [reactor, receiver](const absl::Status& st, const EngineCore::ImportSlot& slot) {
        if (!st.ok()) {
          reactor->Close(ToGrpcStatus(st));
          return;
        }
        v1::DecodeResponse resp;
        *resp.mutable_kv_target() = receiver->Target(slot.blocks);
        reactor->Push(std::move(resp));
      },
      std::move(on_output), handoff_timeout_);
  return reactor;
}

grpc::ServerUnaryReactor* DecodeService::CompleteHandoff(grpc::CallbackServerContext* ctx,
                                                         const v1::CompleteHandoffRequest* request,
                                                         v1::CompleteHandoffResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (request->request_id().empty()) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "request_id: required"));
    return reactor;
  }
  TokenLogprob first = TokenLogprobFromProto(request->first_logprob());
  first.token = request->first_token();
  engine_->CompleteImport(request->request_id(), std::move(first), request->cached_prompt_tokens(),
                          [reactor](const absl::Status& st) { reactor->Finish(ToGrpcStatus(st)); });
  return reactor;
}

}  // namespace cleave
