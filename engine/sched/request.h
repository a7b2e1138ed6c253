// A generation request and the state the engine keeps for it while it runs.
#ifndef CLEAVE_ENGINE_SCHED_REQUEST_H_
#define CLEAVE_ENGINE_SCHED_REQUEST_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/sample/sampling_params.h"

namespace cleave {

using SeqId = uint64_t;

enum class FinishReason { kNone, kStop, kLength, kStopSequence, kAbort };
std::string_view FinishReasonName(FinishReason r);  // "stop", "length", "stop_sequence", "abort"

enum class RequestStatus { kWaiting, kRunning, kFinished };

struct Request {
  // Identity and input.
  SeqId seq_id = 0;        // engine-assigned, unique for the engine's lifetime
  std::string request_id;  // the client's id
  std::vector<int> prompt_ids;
  SamplingParams params;
  bool export_kv = false;  // see GenerateRequest::export_kv

  // Progress. The sequence is prompt_ids ++ output_ids; KV for its first
  // num_computed_tokens tokens is in the cache.
  std::vector<int> output_ids;
  int num_computed_tokens = 0;
  int num_cached_prompt_tokens = 0;  // prefix-cache hit on first admission
  int num_preemptions = 0;
  RequestStatus status = RequestStatus::kWaiting;
  FinishReason finish_reason = FinishReason::kNone;

  int num_prompt_tokens() const { return static_cast<int>(prompt_ids.size()); }
  int num_tokens() const { return num_prompt_tokens() + static_cast<int>(output_ids.size()); }
  int token_at(int i) const {
    return i < num_prompt_tokens() ? prompt_ids[i] : output_ids[i - num_prompt_tokens()];
  }
  // Every token of the sequence, prompt then output.
  std::vector<int> AllTokens() const {
    std::vector<int> all(prompt_ids);
    all.insert(all.end(), output_ids.begin(), output_ids.end());
    return all;
  }
};

}  // namespace cleave

#endif  // CLEAVE_ENGINE_SCHED_REQUEST_H_
