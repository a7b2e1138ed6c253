// Conversions at the RPC edge: proto messages <-> engine types, absl::Status -> grpc::Status.
#ifndef CLEAVE_SERVICES_COMMON_PROTO_CONVERT_H_
#define CLEAVE_SERVICES_COMMON_PROTO_CONVERT_H_

#include <string>

#include "absl/status/status.h"
#include "cleave/v1/generation.pb.h"
#include "engine/core/engine_core.h"
#include "grpcpp/support/status.h"

namespace cleave {

// Unset proto fields take the engine's defaults. Range checks are SamplingParams::Validate's.
SamplingParams SamplingFromProto(const v1::SamplingParams& p);
v1::FinishReason FinishReasonToProto(FinishReason r);
FinishReason FinishReasonFromProto(v1::FinishReason r);
void TokenLogprobToProto(const TokenLogprob& lp, v1::TokenLogprob* out);
TokenLogprob TokenLogprobFromProto(const v1::TokenLogprob& p);
// Tokens, text, logprobs, and (when finished) the finish reason and usage.
void OutputToProto(const RequestOutput& out, v1::GenerateResponse* chunk);

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// A fresh request id: 128 random bits in hex.
std::string NewRequestId();

}  // namespace cleave

#endif  // CLEAVE_SERVICES_COMMON_PROTO_CONVERT_H_
