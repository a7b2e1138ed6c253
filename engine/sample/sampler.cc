#include "engine/sample/sampler.h"

#include <cmath>
#include <limits>

#include "engine/util/check.h"

namespace cleave {

SequenceSampler::SequenceSampler(const SamplingParams& params, std::span<const int> prompt_ids,
                                 uint64_t fallback_seed)
    : temperature_(params.temperature),
      top_k_(params.top_k),
      top_p_(params.top_p),
      min_p_(params.min_p),
      repetition_penalty_(params.repetition_penalty),
      presence_penalty_(params.presence_penalty),
      frequency_penalty_(params.frequency_penalty),
      logprobs_(params.logprobs),
      rng_(params.seed.value_or(fallback_seed)) {
  if (repetition_penalty_ != 1.0f) prompt_set_ = SortedUniqueIds(prompt_ids);
}

double SequenceSampler::NextUniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

SampleResult SequenceSampler::Sample(std::span<float> logits, std::span<const int> output_ids) {
  CHECK(!logits.empty());
  // Drawn first and unconditionally: the draw count per step never depends on the settings or
  // the logits, so a seeded sequence replays exactly.
  const double u = NextUniform();
  // A NaN from a broken forward pass would poison every softmax below; treat it as masked.
  for (float& l : logits) {
    if (std::isnan(l)) l = -std::numeric_limits<float>::infinity();
  }
  ApplyPenalties(logits, prompt_set_, output_ids, repetition_penalty_, presence_penalty_,
                 frequency_penalty_, &scratch_);

  SampleResult result;
  const bool greedy = temperature_ < kGreedyTemperature;
  const bool want_logprobs = logprobs_ >= 0;
  // Masks never touch the sampled token, so its logit changes only by temperature scaling: the
  // pre-temperature row is copied only when that scaling happens.
  const bool keep_raw = want_logprobs && !greedy && temperature_ != 1.0f;
  double log_normalizer = 0.0;
  if (want_logprobs) {
    log_normalizer = LogSumExp(logits);
    if (logprobs_ > 0) {
      result.top_logprobs = TopLogprobs(logits, logprobs_, log_normalizer, &scratch_);
    }
    if (keep_raw) raw_.assign(logits.begin(), logits.end());
  }

  if (greedy) {
    result.token = Argmax(logits);
  } else {
    if (temperature_ != 1.0f) ApplyTemperature(logits, temperature_);
    ApplyTopK(logits, top_k_, &scratch_);
    ApplyTopP(logits, top_p_, &scratch_);
    ApplyMinP(logits, min_p_);
    result.token = SampleFromLogits(logits, u, &scratch_);
  }

  if (want_logprobs) {
    const float raw = keep_raw ? raw_[result.token] : logits[result.token];
    result.logprob = static_cast<float>(raw - log_normalizer);
  }
  return result;
}

}  // namespace cleave
