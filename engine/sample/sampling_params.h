// Per-request sampling and stopping parameters (the vocabulary of the public API).
#ifndef CLEAVE_ENGINE_SAMPLE_SAMPLING_PARAMS_H_
#define CLEAVE_ENGINE_SAMPLE_SAMPLING_PARAMS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace cleave {

inline constexpr int kMaxStopStrings = 16;
inline constexpr int kMaxTopLogprobs = 20;

struct SamplingParams {
  float temperature = 1.0f;         // 0 = greedy (so is anything below 1e-5, see sampler.h)
  int top_k = 0;                    // 0 = off; values >= vocab keep every token (also off)
  float top_p = 1.0f;               // 1 = off
  float min_p = 0.0f;               // 0 = off
  float repetition_penalty = 1.0f;  // 1 = off; multiplicative, over prompt + output tokens
  float presence_penalty = 0.0f;    // additive, over output tokens
  float frequency_penalty = 0.0f;   // additive per occurrence, over output tokens
  std::optional<uint64_t> seed;     // set: the request's samples are reproducible
  int max_tokens = 16;
  std::vector<std::string> stop;    // stop strings; not included in the output text
  std::vector<int> stop_token_ids;  // finish with reason stop; the token is kept in the output ids
  bool ignore_eos = false;
  int logprobs = -1;                // -1: none; 0: the sampled token's; n>0: plus top-n

  // Names the first bad field, e.g. "top_p must be in (0, 1], got 1.5". top_k larger than the
  // vocabulary is accepted (clients send "large" to mean "all"); it keeps every token.
  absl::Status Validate(int vocab_size) const;
};

}  // namespace cleave

#endif  // CLEAVE_ENGINE_SAMPLE_SAMPLING_PARAMS_H_
