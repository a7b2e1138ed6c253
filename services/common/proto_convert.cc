#include "services/common/proto_convert.h"

#include <random>

#include "absl/strings/str_format.h"

namespace cleave {

SamplingParams SamplingFromProto(const v1::SamplingParams& p) {
  SamplingParams s;
  if (p.has_temperature()) s.temperature = p.temperature();
  s.top_k = p.top_k();
  if (p.has_top_p()) s.top_p = p.top_p();
  s.min_p = p.min_p();
  if (p.has_repetition_penalty()) s.repetition_penalty = p.repetition_penalty();
  s.presence_penalty = p.presence_penalty();
  s.frequency_penalty = p.frequency_penalty();
  if (p.has_seed()) s.seed = p.seed();
  if (p.has_max_tokens()) s.max_tokens = p.max_tokens();
  s.stop.assign(p.stop().begin(), p.stop().end());
  s.stop_token_ids.assign(p.stop_token_ids().begin(), p.stop_token_ids().end());
  s.ignore_eos = p.ignore_eos();
  if (p.has_logprobs()) s.logprobs = p.logprobs();
  return s;
}

v1::FinishReason FinishReasonToProto(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return v1::FINISH_REASON_UNSPECIFIED;
    case FinishReason::kStop: return v1::FINISH_REASON_STOP;
    case FinishReason::kLength: return v1::FINISH_REASON_LENGTH;
    case FinishReason::kStopSequence: return v1::FINISH_REASON_STOP_SEQUENCE;
    case FinishReason::kAbort: return v1::FINISH_REASON_ABORT;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

FinishReason FinishReasonFromProto(v1::FinishReason r) {
  switch (r) {
    case v1::FINISH_REASON_STOP: return FinishReason::kStop;
    case v1::FINISH_REASON_LENGTH: return FinishReason::kLength;
    case v1::FINISH_REASON_STOP_SEQUENCE: return FinishReason::kStopSequence;
    case v1::FINISH_REASON_ABORT: return FinishReason::kAbort;
    default: return FinishReason::kNone;
  }
}

void TokenLogprobToProto(const TokenLogprob& lp, v1::TokenLogprob* out) {
  out->set_token_id(lp.token);
  out->set_logprob(lp.logprob);
  for (const auto& [tok, val] : lp.top) {
    v1::TopLogprob* t = out->add_top();
    t->set_token_id(tok);
    t->set_logprob(val);
  }
}

TokenLogprob TokenLogprobFromProto(const v1::TokenLogprob& p) {
  TokenLogprob lp{.token = p.token_id(), .logprob = p.logprob(), .top = {}};
  for (const v1::TopLogprob& t : p.top()) lp.top.emplace_back(t.token_id(), t.logprob());
  return lp;
}

void OutputToProto(const RequestOutput& out, v1::GenerateResponse* chunk) {
  chunk->set_request_id(out.request_id);
  for (int t : out.token_ids) chunk->add_token_ids(t);
  chunk->set_text(out.text);
  for (const TokenLogprob& lp : out.logprobs) TokenLogprobToProto(lp, chunk->add_logprobs());
  if (out.finished) {
    chunk->set_finish_reason(FinishReasonToProto(out.finish_reason));
    v1::Usage* u = chunk->mutable_usage();
    u->set_prompt_tokens(out.prompt_tokens);
    u->set_completion_tokens(out.completion_tokens);
    u->set_cached_prompt_tokens(out.cached_prompt_tokens);
  }
}

// absl and gRPC share the canonical code numbering.
grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

std::string NewRequestId() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return absl::StrFormat("%016x%016x", rng(), rng());
}

}  // namespace cleave
