// cleave run --model DIR --prompt TEXT [sampling flags]: offline generation that
// streams text to stdout and ends with a one-line summary on stderr.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/core/engine_core.h"
#include "engine/model/checkpoint.h"
#include "engine/runtime/backend.h"
#include "engine/util/log.h"
#include "engine/util/status.h"
#include "tools/cleave/args.h"
#include "tools/cleave/commands.h"

namespace cleave::cli {
namespace {

const std::vector<FlagSpec>& Specs() {
  static const std::vector<FlagSpec> specs = JoinFlagSpecs({
      {
          {"model", false, false, "checkpoint directory (config.json + safetensors + tokenizer)"},
          {"prompt", false, false, "prompt text"},
      },
      SamplingFlagSpecs(),
      {
          {"no-bos", true, false, "do not prepend the BOS token"},
          {"backend", false, false, "cpu (default)"},
          {"kv-cache-mib", false, false, "KV cache size in MiB (default 256)"},
          {"block-size", false, false, "KV block size in tokens (default 16)"},
          {"log-level", false, false, "debug, info, warn (default), error"},
          {"help", true, false, "show this help"},
      },
  });
  return specs;
}

// Loads everything and generates. Errors that come from the user's input are
// INVALID_ARGUMENT (exit 2); the rest exit 1.
absl::Status Generate(const Args& args) {
  ASSIGN_OR_RETURN(std::string model_dir, args.Required("model"));
  ASSIGN_OR_RETURN(std::string prompt, args.Required("prompt"));
  ASSIGN_OR_RETURN(SamplingParams params, ParseSamplingFlags(args));
  EngineConfig config;
  ASSIGN_OR_RETURN(config.kv_cache_mib, args.Int("kv-cache-mib", 256));
  ASSIGN_OR_RETURN(int64_t block_size, args.Int("block-size", 16));
  if (config.kv_cache_mib <= 0) return absl::InvalidArgumentError("--kv-cache-mib must be positive");
  if (block_size <= 0 || block_size > 1024) {
    return absl::InvalidArgumentError("--block-size must be in [1, 1024]");
  }
  config.block_size = static_cast<int>(block_size);

  ASSIGN_OR_RETURN(auto backend, MakeBackend(args.String("backend", "cpu")));
  auto checkpoint = Checkpoint::Open(model_dir);
  if (!checkpoint.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--model: ", checkpoint.status().message()));
  }
  auto tokenizer = LoadTokenizer(model_dir);
  if (!tokenizer.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--model: ", tokenizer.status().message()));
  }
  ASSIGN_OR_RETURN(auto model, MixtralModel::Load(**checkpoint, backend.get()));
  ASSIGN_OR_RETURN(auto engine,
                   EngineCore::Create(std::move(model), std::move(*tokenizer), config));

  GenerateRequest request;
  request.request_id = "cli";
  request.prompt = prompt;
  request.add_bos = !args.Has("no-bos");
  request.params = params;
  const auto start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(SeqId id, engine->AddRequest(std::move(request)));
  (void)id;

  double ttft_ms = 0;
  RequestOutput last;
  int generated = 0;
  // Bounded: every step makes progress and the request ends by max_tokens at the latest.
  while (engine->HasWork()) {
    for (RequestOutput& out : engine->Step()) {
      if (generated == 0 && !out.token_ids.empty()) {
        ttft_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                      .count();
      }
      generated += static_cast<int>(out.token_ids.size());
      std::fwrite(out.text.data(), 1, out.text.size(), stdout);
      std::fflush(stdout);
      for (const TokenLogprob& lp : out.logprobs) {
        std::string line = absl::StrCat("[logprob] token=", lp.token, " logprob=", lp.logprob);
        for (const auto& [tok, val] : lp.top) absl::StrAppend(&line, " ", tok, ":", val);
        std::fprintf(stderr, "%s\n", line.c_str());
      }
      if (out.finished) last = std::move(out);
    }
  }
  const double total_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double decode_s = total_s - ttft_ms / 1000.0;
  std::fputc('\n', stdout);
  std::fflush(stdout);
  std::fprintf(stderr,
               "[cleave run] prompt_tokens=%d generated_tokens=%d ttft_ms=%.1f "
               "tokens_per_s=%.1f finish_reason=%s\n",
               last.prompt_tokens, last.completion_tokens, ttft_ms,
               generated > 1 && decode_s > 0 ? (generated - 1) / decode_s : 0.0,
               std::string(FinishReasonName(last.finish_reason)).c_str());
  return absl::OkStatus();
}

}  // namespace

int RunCommand(int argc, char** argv) {
  auto args = Args::Parse(Specs(), argc, argv);
  if (!args.ok()) {
    std::fprintf(stderr, "cleave run: %s\n%s", std::string(args.status().message()).c_str(),
                 Usage("run", Specs()).c_str());
    return kExitUsage;
  }
  if (args->Has("help")) {
    std::fputs(Usage("run", Specs()).c_str(), stdout);
    return 0;
  }
  SetLogLevel(args->String("log-level", "warn").c_str());
  absl::Status st = Generate(*args);
  if (!st.ok()) {
    std::fprintf(stderr, "cleave run: %s\n", std::string(st.message()).c_str());
    return st.code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
  }
  return 0;
}

}  // namespace cleave::cli
