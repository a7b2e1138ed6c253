#include "engine/sample/stop_checker.h"

#include <algorithm>

#include "engine/util/check.h"

namespace cleave {
namespace {

std::vector<int> PrefixFunction(std::string_view s) {
  std::vector<int> f(s.size(), 0);
  for (size_t i = 1; i < s.size(); ++i) {
    int k = f[i - 1];
    while (k > 0 && s[i] != s[k]) k = f[k - 1];
    if (s[i] == s[k]) ++k;
    f[i] = k;
  }
  return f;
}

}  // namespace

StopChecker::StopChecker(const SamplingParams& params, int eos_token_id)
    : stop_token_ids_(params.stop_token_ids),
      eos_token_id_(eos_token_id),
      ignore_eos_(params.ignore_eos),
      max_tokens_(params.max_tokens) {
  for (const std::string& s : params.stop) {
    if (s.empty()) continue;  // Validate rejects these; an empty one would match everywhere
    stops_.push_back({s, PrefixFunction(s)});
  }
  std::sort(stop_token_ids_.begin(), stop_token_ids_.end());
}

FinishReason StopChecker::CheckToken(int token, int num_output_tokens) const {
  if (std::binary_search(stop_token_ids_.begin(), stop_token_ids_.end(), token)) {
    return FinishReason::kStop;
  }
  if (!ignore_eos_ && eos_token_id_ >= 0 && token == eos_token_id_) return FinishReason::kStop;
  if (num_output_tokens >= max_tokens_) return FinishReason::kLength;
  return FinishReason::kNone;
}

StopDecision StopChecker::CheckText(std::string_view text, size_t num_emitted) const {
  CHECK(num_emitted <= text.size());
  const std::string_view pending = text.substr(num_emitted);
  size_t match_start = pending.size() + 1;  // none yet
  size_t hold = 0;
  for (const StopString& stop : stops_) {
    const std::string_view s = stop.text;
    // Run KMP over the pending text. State k = length of the longest prefix of s that is a
    // suffix of what was scanned, so the final k is exactly the fragment to hold back.
    size_t k = 0;
    bool matched = false;
    for (size_t i = 0; i < pending.size(); ++i) {
      while (k > 0 && pending[i] != s[k]) k = stop.failure[k - 1];
      if (pending[i] == s[k]) ++k;
      if (k == s.size()) {
        match_start = std::min(match_start, i + 1 - s.size());
        matched = true;
        break;  // the first occurrence of s also starts first
      }
    }
    if (!matched) hold = std::max(hold, k);
  }
  if (match_start <= pending.size()) return {FinishReason::kStopSequence, match_start};
  return {FinishReason::kNone, pending.size() - hold};
}

StopDecision StopChecker::Check(int token, int num_output_tokens, std::string_view text,
                                size_t num_emitted) const {
  StopDecision decision = CheckText(text, num_emitted);
  if (decision.reason != FinishReason::kNone) return decision;
  decision.reason = CheckToken(token, num_output_tokens);
  // Finishing for a token-level reason: nothing more will arrive to complete a held-back fragment.
  if (decision.reason != FinishReason::kNone) decision.emit_chars = text.size() - num_emitted;
  return decision;
}

}  // namespace cleave
