// The steps that turn one row of logits into a sampling distribution, one function per step so
// each can be tested exactly. They work on a single sequence's fp32 row of `vocab` entries and
// mask a token by setting its logit to -infinity. SequenceSampler (sampler.h) chains them.
// Rows must not hold NaN or +inf (SequenceSampler turns NaN into -inf before any step).
#ifndef CLEAVE_ENGINE_SAMPLE_LOGITS_PROCESSORS_H_
#define CLEAVE_ENGINE_SAMPLE_LOGITS_PROCESSORS_H_

#include <span>
#include <utility>
#include <vector>

namespace cleave {

struct WeightedLogit {
  float logit;
  float weight;  // exp(logit - max)
};

// Reusable buffers so the per-step path does not allocate (a 32000-entry row is past glibc's
// mmap threshold). Contents are meaningless between calls. Every `scratch` argument may be null.
struct SamplingScratch {
  std::vector<float> values;
  std::vector<int> ids;
  std::vector<WeightedLogit> weighted;
};

// Sorted, deduplicated copy of `ids`: the form ApplyPenalties takes the prompt in, so a long
// prompt is sorted once per request rather than once per step.
std::vector<int> SortedUniqueIds(std::span<const int> ids);

// Penalties on the raw logits, in place, in this order (as vLLM does):
//   repetition, once per distinct token in prompt_set ∪ output_ids:
//       l = l > 0 ? l / repetition_penalty : l * repetition_penalty
//   presence and frequency, per distinct token t of output_ids seen count(t) times:
//       l -= presence_penalty + count(t) * frequency_penalty
// prompt_set must be sorted and unique (SortedUniqueIds). Ids outside [0, logits.size()) are
// skipped: prompt ids come from clients, and a bad id must not crash the engine thread.
void ApplyPenalties(std::span<float> logits, std::span<const int> prompt_set,
                    std::span<const int> output_ids, float repetition_penalty,
                    float presence_penalty, float frequency_penalty,
                    SamplingScratch* scratch = nullptr);

// l /= temperature. temperature must be > 0 (greedy is decided before this step).
void ApplyTemperature(std::span<float> logits, float temperature);

// Keeps every token whose logit is >= the k-th largest logit; ties with the k-th are all kept, so
// the result never depends on sort order (HF and vLLM behave the same). k <= 0 or k >= size: no-op.
void ApplyTopK(std::span<float> logits, int k, SamplingScratch* scratch = nullptr);

// Nucleus: with probabilities softmax(logits) over the unmasked tokens, walks them from most to
// least likely and stops at the first token where the running sum reaches p; keeps that token,
// everything before it, and every token tied with it (same reason as ApplyTopK). At least one
// token always survives. p >= 1: no-op. Expected O(vocab) (a quickselect on probability mass; no
// sort), however flat the distribution.
void ApplyTopP(std::span<float> logits, float p, SamplingScratch* scratch = nullptr);

// Masks tokens with probability < min_p * (largest probability), i.e. logit < max + log(min_p).
// The argmax always survives. min_p <= 0: no-op.
void ApplyMinP(std::span<float> logits, float min_p);

// Index of the largest logit; the lowest index wins ties. NaNs are never chosen unless every
// entry is NaN (then 0).
int Argmax(std::span<const float> logits);

// log(sum(exp(l))) over the row, computed stably in double. -inf when every entry is -inf.
double LogSumExp(std::span<const float> logits);

// In place: l -= LogSumExp(l).
void LogSoftmax(std::span<float> logits);

// The n largest entries as (token, logit - log_normalizer), largest first, lower index first on
// ties. n is clamped to the row size.
std::vector<std::pair<int, float>> TopLogprobs(std::span<const float> logits, int n,
                                               double log_normalizer,
                                               SamplingScratch* scratch = nullptr);

// Inverse-CDF sample from softmax(logits) using one uniform u in [0, 1): walks tokens in index
// order and returns the first whose cumulative weight exceeds u * total. Masked (-inf) tokens are
// never returned. Falls back to Argmax if the row has no finite entry.
int SampleFromLogits(std::span<const float> logits, double u, SamplingScratch* scratch = nullptr);

}  // namespace cleave

#endif  // CLEAVE_ENGINE_SAMPLE_LOGITS_PROCESSORS_H_
