// Pieces of `cleave generate` shared by its single-request mode (generate.cc) and its
// load generator (loadgen.cc).
#ifndef CLEAVE_TOOLS_CLEAVE_GENERATE_H_
#define CLEAVE_TOOLS_CLEAVE_GENERATE_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "cleave/v1/generation.pb.h"

namespace cleave::cli {

// "stop", "length", "stop_sequence", "abort" (as `cleave run` prints them).
const char* FinishReasonText(cleave::v1::FinishReason reason);

struct LoadOptions {
  std::string router;
  int concurrency = 1;
  int requests = 1;
  // Request i sends prompts[i % prompts.size()].
  std::vector<std::string> prompts;
  // Sampling, timeout and request id prefix; the prompt is replaced per request.
  cleave::v1::GenerateRequest base;
  absl::Duration rpc_deadline;
  bool json = false;
};

// Sends the requests, prints the figures (text or JSON) to stdout; 0 when every
// request succeeded, 1 otherwise.
int RunLoad(const LoadOptions& options);

// `count` varied prompts from a built-in text, each of a length drawn from
// [min_chars, max_chars] (characters: tokens, for the byte tokenizer) when max_chars > 0,
// else the built-in sentences as they are. Deterministic.
std::vector<std::string> BuiltinPrompts(int count, int min_chars, int max_chars);

}  // namespace cleave::cli

#endif  // CLEAVE_TOOLS_CLEAVE_GENERATE_H_
