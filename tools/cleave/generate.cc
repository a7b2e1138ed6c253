// cleave generate --router HOST:PORT --prompt TEXT [sampling flags]: one streaming request
// to a router, text to stdout and a summary line to stderr. With --requests/--concurrency
// it is a load generator instead (loadgen.cc).
#include "tools/cleave/generate.h"

#include <grpcpp/create_channel.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cleave/v1/generation.grpc.pb.h"
#include "engine/util/log.h"
#include "engine/util/status.h"
#include "tools/cleave/args.h"
#include "tools/cleave/commands.h"

namespace cleave::cli {
namespace {

namespace pb = ::cleave::v1;

// Without --timeout-ms a request still may not hang forever.
constexpr absl::Duration kDefaultRpcDeadline = absl::Minutes(10);
// The router enforces timeout_ms itself; the call's own deadline comes a little later so
// that the router's answer, not a client-side cut, is what the user sees.
constexpr absl::Duration kDeadlineSlack = absl::Seconds(5);

const std::vector<FlagSpec>& Specs() {
  static const std::vector<FlagSpec> specs = JoinFlagSpecs({
      {
          {"router", false, false, "router address HOST:PORT (default $CLEAVE_ROUTER)"},
          {"prompt", false, false, "prompt text (the router tokenizes it, with BOS)"},
      },
      SamplingFlagSpecs(),
      {
          {"timeout-ms", false, false, "the request fails with DEADLINE_EXCEEDED after this long"},
          {"request-id", false, false, "request id (load mode: a prefix, '-N' appended)"},
          {"requests", false, false, "load mode: send this many requests (>= 1)"},
          {"concurrency", false, false, "load mode: keep this many in flight (default 1)"},
          {"prompt-len-range", false, false,
           "load mode without --prompt: built-in prompts of MIN:MAX characters"},
          {"json", true, false, "load mode: print the figures as one JSON object"},
          {"log-level", false, false, "debug, info, warn (default), error"},
          {"help", true, false, "show this help"},
      },
  });
  return specs;
}

absl::Status ToProto(const SamplingParams& p, pb::SamplingParams* out) {
  // The server validates too; checking here turns a typo into a usage error (exit 2)
  // before any connection. The vocabulary is unknown on this side, hence INT_MAX.
  RETURN_IF_ERROR(p.Validate(INT_MAX));
  out->set_temperature(p.temperature);
  out->set_top_k(p.top_k);
  out->set_top_p(p.top_p);
  out->set_min_p(p.min_p);
  out->set_repetition_penalty(p.repetition_penalty);
  out->set_presence_penalty(p.presence_penalty);
  out->set_frequency_penalty(p.frequency_penalty);
  if (p.seed.has_value()) out->set_seed(*p.seed);
  out->set_max_tokens(p.max_tokens);
  for (const std::string& s : p.stop) out->add_stop(s);
  for (int id : p.stop_token_ids) out->add_stop_token_ids(id);
  out->set_ignore_eos(p.ignore_eos);
  if (p.logprobs >= 0) out->set_logprobs(p.logprobs);
  return absl::OkStatus();
}

std::string GrpcError(const grpc::Status& status) {
  return absl::StrCat(absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())),
                      ": ", status.error_message());
}

void PrintLogprobs(const pb::GenerateResponse& chunk) {
  for (const pb::TokenLogprob& lp : chunk.logprobs()) {
    std::string line =
        absl::StrCat("[logprob] token_id=", lp.token_id(), " logprob=", lp.logprob());
    for (const pb::TopLogprob& top : lp.top()) {
      absl::StrAppend(&line, " ", top.token_id(), ":", top.logprob());
    }
    std::fprintf(stderr, "%s\n", line.c_str());
  }
}

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

// One streaming request: text as it arrives, then the summary.
int GenerateOne(const std::string& router, const pb::GenerateRequest& request,
                absl::Duration deadline) {
  auto stub =
      pb::Generation::NewStub(grpc::CreateChannel(router, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  auto reader = stub->Generate(&context, request);
  pb::GenerateResponse chunk, last;
  bool finished = false;
  while (reader->Read(&chunk)) {
    std::fwrite(chunk.text().data(), 1, chunk.text().size(), stdout);
    std::fflush(stdout);
    PrintLogprobs(chunk);
    if (chunk.finish_reason() != pb::FINISH_REASON_UNSPECIFIED) {
      last = chunk;
      finished = true;
    }
  }
  const grpc::Status status = reader->Finish();
  std::fputc('\n', stdout);
  std::fflush(stdout);
  if (!status.ok()) {
    std::fprintf(stderr, "cleave generate: %s\n", GrpcError(status).c_str());
    return kExitFailure;
  }
  if (!finished) {
    std::fprintf(stderr, "cleave generate: the stream ended without a final chunk\n");
    return kExitFailure;
  }
  const pb::Timing& t = last.timing();
  std::fprintf(stderr,
               "[cleave generate] prompt_tokens=%d completion_tokens=%d cached_tokens=%d "
               "queue_ms=%.1f prefill_ms=%.1f kv_transfer_ms=%.1f ttft_ms=%.1f e2e_ms=%.1f "
               "finish_reason=%s prefill=%s decode=%s\n",
               last.usage().prompt_tokens(), last.usage().completion_tokens(),
               last.usage().cached_prompt_tokens(), t.queue_ms(), t.prefill_ms(),
               t.kv_transfer_ms(), t.ttft_ms(), t.e2e_ms(), FinishReasonText(last.finish_reason()),
               OrDash(t.prefill_worker()).c_str(), OrDash(t.decode_worker()).c_str());
  return 0;
}

absl::Status ParseRange(const std::string& text, int* lo, int* hi) {
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], lo) || !absl::SimpleAtoi(parts[1], hi) ||
      *lo < 1 || *hi < *lo || *hi > (1 << 20)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--prompt-len-range: expected MIN:MAX with 1 <= MIN <= MAX, got '", text, "'"));
  }
  return absl::OkStatus();
}

// INVALID_ARGUMENT for anything the user got wrong (exit 2).
absl::StatusOr<int> Generate(const Args& args) {
  std::string router = args.String("router", "");
  if (router.empty()) {
    const char* env = std::getenv("CLEAVE_ROUTER");
    if (env != nullptr) router = env;
  }
  if (router.empty()) {
    return absl::InvalidArgumentError("--router is required (or set CLEAVE_ROUTER)");
  }
  pb::GenerateRequest request;
  ASSIGN_OR_RETURN(SamplingParams params, ParseSamplingFlags(args));
  RETURN_IF_ERROR(ToProto(params, request.mutable_sampling()));
  ASSIGN_OR_RETURN(int64_t timeout_ms, args.Int("timeout-ms", 0));
  if (timeout_ms < 0 || timeout_ms > UINT32_MAX) {
    return absl::InvalidArgumentError("--timeout-ms must be in [0, 2^32)");
  }
  request.set_timeout_ms(static_cast<uint32_t>(timeout_ms));
  const absl::Duration deadline =
      timeout_ms > 0 ? absl::Milliseconds(timeout_ms) + kDeadlineSlack : kDefaultRpcDeadline;

  const bool load = args.Has("requests") || args.Has("concurrency");
  if (!load) {
    for (const char* flag : {"prompt-len-range", "json"}) {
      if (args.Has(flag)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", flag, " needs load mode (--requests/--concurrency)"));
      }
    }
    ASSIGN_OR_RETURN(std::string prompt, args.Required("prompt"));
    request.set_text(prompt);
    request.set_request_id(args.String("request-id", ""));
    return GenerateOne(router, request, deadline);
  }

  LoadOptions load_options;
  load_options.router = router;
  ASSIGN_OR_RETURN(int64_t requests, args.Int("requests", 1));
  ASSIGN_OR_RETURN(int64_t concurrency, args.Int("concurrency", 1));
  if (requests < 1 || requests > 10'000'000) {
    return absl::InvalidArgumentError("--requests must be in [1, 10000000]");
  }
  if (concurrency < 1 || concurrency > 4096) {
    return absl::InvalidArgumentError("--concurrency must be in [1, 4096]");
  }
  load_options.requests = static_cast<int>(requests);
  load_options.concurrency = static_cast<int>(concurrency);
  if (args.Has("prompt")) {
    if (args.Has("prompt-len-range")) {
      return absl::InvalidArgumentError("give either --prompt or --prompt-len-range, not both");
    }
    load_options.prompts = {args.String("prompt", "")};
  } else {
    int lo = 0, hi = 0;
    if (args.Has("prompt-len-range")) {
      RETURN_IF_ERROR(ParseRange(args.String("prompt-len-range", ""), &lo, &hi));
    }
    load_options.prompts = BuiltinPrompts(std::min(load_options.requests, 64), lo, hi);
  }
  request.set_request_id(args.String("request-id", ""));
  load_options.base = request;
  load_options.rpc_deadline = deadline;
  load_options.json = args.Has("json");
  return RunLoad(load_options);
}

}  // namespace

const char* FinishReasonText(pb::FinishReason reason) {
  switch (reason) {
    case pb::FINISH_REASON_STOP:
      return "stop";
    case pb::FINISH_REASON_LENGTH:
      return "length";
    case pb::FINISH_REASON_STOP_SEQUENCE:
      return "stop_sequence";
    case pb::FINISH_REASON_ABORT:
      return "abort";
    default:
      return "unspecified";
  }
}

int GenerateCommand(int argc, char** argv) {
  auto args = Args::Parse(Specs(), argc, argv);
  if (!args.ok()) {
    std::fprintf(stderr, "cleave generate: %s\n%s", std::string(args.status().message()).c_str(),
                 Usage("generate", Specs()).c_str());
    return kExitUsage;
  }
  if (args->Has("help")) {
    std::fputs(Usage("generate", Specs()).c_str(), stdout);
    return 0;
  }
  SetLogLevel(args->String("log-level", "warn").c_str());
  auto code = Generate(*args);
  if (!code.ok()) {
    std::fprintf(stderr, "cleave generate: %s\n", std::string(code.status().message()).c_str());
    return code.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
  }
  return *code;
}

}  // namespace cleave::cli
