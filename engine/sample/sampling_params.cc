#include "engine/sample/sampling_params.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace cleave {
namespace {

absl::Status Bad(auto&&... parts) { return absl::InvalidArgumentError(absl::StrCat(parts...)); }

}  // namespace

absl::Status SamplingParams::Validate(int vocab_size) const {
  if (vocab_size <= 0) return Bad("vocab_size must be positive, got ", vocab_size);
  // Comparisons are written so that NaN fails them.
  if (!(std::isfinite(temperature) && temperature >= 0.0f)) {
    return Bad("temperature must be finite and >= 0, got ", temperature);
  }
  if (top_k < 0) return Bad("top_k must be >= 0 (0 = off), got ", top_k);
  if (!(top_p > 0.0f && top_p <= 1.0f)) return Bad("top_p must be in (0, 1], got ", top_p);
  if (!(min_p >= 0.0f && min_p <= 1.0f)) return Bad("min_p must be in [0, 1], got ", min_p);
  if (!(std::isfinite(repetition_penalty) && repetition_penalty > 0.0f)) {
    return Bad("repetition_penalty must be finite and > 0, got ", repetition_penalty);
  }
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f)) {
    return Bad("presence_penalty must be in [-2, 2], got ", presence_penalty);
  }
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f)) {
    return Bad("frequency_penalty must be in [-2, 2], got ", frequency_penalty);
  }
  if (max_tokens < 1) return Bad("max_tokens must be >= 1, got ", max_tokens);
  if (logprobs < -1 || logprobs > kMaxTopLogprobs) {
    return Bad("logprobs must be in [-1, ", kMaxTopLogprobs, "], got ", logprobs);
  }
  for (size_t i = 0; i < stop_token_ids.size(); ++i) {
    const int id = stop_token_ids[i];
    if (id < 0 || id >= vocab_size) {
      return Bad("stop_token_ids[", i, "] must be in [0, ", vocab_size, "), got ", id);
    }
  }
  if (stop.size() > static_cast<size_t>(kMaxStopStrings)) {
    return Bad("stop must have at most ", kMaxStopStrings, " strings, got ", stop.size());
  }
  for (size_t i = 0; i < stop.size(); ++i) {
    if (stop[i].empty()) return Bad("stop[", i, "] must not be empty");
  }
  return absl::OkStatus();
}

}  // namespace cleave
