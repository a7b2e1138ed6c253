// Per-sequence token sampling over one fp32 logits row. Each request owns a SequenceSampler with
// its own RNG, so a sequence's samples depend only on its own logits, params and seed, never on
// which requests share its batch.
#ifndef CLEAVE_ENGINE_SAMPLE_SAMPLER_H_
#define CLEAVE_ENGINE_SAMPLE_SAMPLER_H_

#include <cstdint>
#include <random>
#include <span>
#include <utility>
#include <vector>

#include "engine/sample/logits_processors.h"
#include "engine/sample/sampling_params.h"

namespace cleave {

// Temperatures below this sample greedily: the tempered distribution is a point mass already,
// and dividing by ever smaller values heads for fp32 overflow (vLLM uses the same 1e-5).
inline constexpr float kGreedyTemperature = 1e-5f;

struct SampleResult {
  int token = 0;
  // Logprobs come from log_softmax of the logits AFTER penalties and BEFORE temperature and
  // truncation (top-k/top-p/min-p): they describe the model's (penalised) belief, stay comparable
  // across sampling settings, and a truncated-away token still gets a finite value. Filled only
  // when params.logprobs >= 0; otherwise logprob is 0 and top_logprobs empty.
  float logprob = 0.0f;
  // params.logprobs > 0: the that-many most likely tokens, most likely first (lower id on ties).
  std::vector<std::pair<int, float>> top_logprobs;
};

// Not thread-safe; distinct samplers share nothing, so the engine may sample a batch's sequences
// on several threads. Cost per step over a 32000 row on the 2 GHz build VM: greedy ~0.1 ms,
// full-vocab sampling ~0.35 ms, with top-p ~0.6-1 ms (dominated by one exp per token).
class SequenceSampler {
 public:
  // params must have passed Validate. prompt_ids feed the repetition penalty (copied only when
  // that penalty is on). fallback_seed seeds the RNG when params.seed is unset; the engine should
  // pass something unique per request.
  SequenceSampler(const SamplingParams& params, std::span<const int> prompt_ids,
                  uint64_t fallback_seed);

  // logits: this sequence's row of vocab entries, used as scratch (left masked/scaled).
  // output_ids: the tokens generated so far, excluding the one being sampled.
  // Pipeline: NaN -> -inf, penalties, [logprobs], greedy argmax if temperature <
  // kGreedyTemperature, else temperature, top-k, top-p, min-p, inverse-CDF sample. Every call
  // consumes exactly one RNG draw, greedy or not and whatever the truncation kept, so step i always
  // uses draw i.
  SampleResult Sample(std::span<float> logits, std::span<const int> output_ids);
  // Consumes the draw of a step sampled elsewhere: a decode worker continuing a request whose
  // first token the prefill worker sampled stays on the same RNG stream as colocated serving.
  void SkipDraw() { NextUniform(); }

 private:
  double NextUniform();  // [0, 1), 53 random bits

  float temperature_;
  int top_k_;
  float top_p_;
  float min_p_;
  float repetition_penalty_;
  float presence_penalty_;
  float frequency_penalty_;
  int logprobs_;
  std::vector<int> prompt_set_;  // sorted unique prompt ids; empty unless repetition is on
  // mt19937_64's output sequence is fixed by the standard, so seeds reproduce across builds;
  // the uniform is made by hand for the same reason (std::uniform_real_distribution is not).
  std::mt19937_64 rng_;
  SamplingScratch scratch_;
  std::vector<float> raw_;  // pre-temperature copy, kept only when logprobs need it
};

}  // namespace cleave

#endif  // CLEAVE_ENGINE_SAMPLE_SAMPLER_H_
