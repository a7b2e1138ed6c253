// Decides after each generated token whether a sequence is finished, and how much of its text may
// be streamed to the client now.
//
// Streaming contract. The engine keeps the sequence's output text and how many leading chars
// (bytes) of it it has already sent. After appending a token and its decoded delta to the text, it
// calls Check and then sends text.substr(num_emitted, emit_chars):
//  - A stop string is found even when it spans several tokens' deltas.
//  - A trailing fragment that could still grow into a stop string is held back (not counted in
//    emit_chars), so no part of a stop string ever reaches the client. It is released by a later
//    call once the text diverges from every stop string, or when the sequence finishes for a
//    token-level reason (the whole pending text is emitted then).
//  - On kStopSequence the output text ends where the stop string starts (the stop string is
//    excluded): the engine truncates the text to num_emitted + emit_chars.
// A match can only start in the unsent tail (anything that could still become one was held
// back), so only that tail is scanned: O(tail + stop lengths) per call, with KMP, and the tail is
// shorter than the longest stop string plus one delta. Chars are bytes; stop strings are matched
// bytewise, which on valid UTF-8 never cuts a character in half.
#ifndef CLEAVE_ENGINE_SAMPLE_STOP_CHECKER_H_
#define CLEAVE_ENGINE_SAMPLE_STOP_CHECKER_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "engine/sample/sampling_params.h"
#include "engine/sched/request.h"  // FinishReason only (a header-only enum; no link dependency)

namespace cleave {

struct StopDecision {
  FinishReason reason = FinishReason::kNone;  // kNone, kStop, kLength or kStopSequence
  size_t emit_chars = 0;  // chars of the pending text (after num_emitted) to send now
};

class StopChecker {
 public:
  // params must have passed Validate. eos_token_id < 0: the model has none.
  StopChecker(const SamplingParams& params, int eos_token_id);

  // Call once per generated token, after appending it. token: the new token; num_output_tokens:
  // output length including it; text: the whole output text including its delta; num_emitted:
  // chars of text already sent (<= text.size()). Precedence when several apply to one token:
  // stop string (kStopSequence; the text must be cut) > stop_token_ids or eos (kStop) >
  // max_tokens (kLength). The finishing token stays in the output ids in every case.
  StopDecision Check(int token, int num_output_tokens, std::string_view text,
                     size_t num_emitted) const;

  // The token-level half: kStop for a stop_token_id, or eos unless ignore_eos; kLength once
  // num_output_tokens reaches max_tokens; else kNone.
  FinishReason CheckToken(int token, int num_output_tokens) const;

  // The text half: kStopSequence with emit_chars = chars before the earliest-starting stop match
  // in the pending text; else kNone with emit_chars = pending minus the longest suffix that is a
  // proper prefix of some stop string.
  StopDecision CheckText(std::string_view text, size_t num_emitted) const;

 private:
  struct StopString {
    std::string text;
    std::vector<int> failure;  // KMP prefix function: failure[i] = border length of text[0..i]
  };

  std::vector<StopString> stops_;
  std::vector<int> stop_token_ids_;  // sorted
  int eos_token_id_;
  bool ignore_eos_;
  int max_tokens_;
};

}  // namespace cleave

#endif  // CLEAVE_ENGINE_SAMPLE_STOP_CHECKER_H_
