#include "engine/sample/logits_processors.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>

namespace cleave {
namespace {

constexpr float kMasked = -std::numeric_limits<float>::infinity();

// Largest non-NaN entry; -inf for an empty or all-masked row. Eight running maxima break the
// loop-carried dependency (and let the compiler use packed max).
float MaxLogit(std::span<const float> logits) {
  float lane[8];
  std::fill(std::begin(lane), std::end(lane), kMasked);
  size_t i = 0;
  for (; i + 8 <= logits.size(); i += 8) {
    for (int j = 0; j < 8; ++j) lane[j] = logits[i + j] > lane[j] ? logits[i + j] : lane[j];
  }
  for (; i < logits.size(); ++i) lane[0] = logits[i] > lane[0] ? logits[i] : lane[0];
  float mx = kMasked;
  for (float l : lane) mx = l > mx ? l : mx;  // NaN compares false: skipped
  return mx;
}

// exp(x) for x <= 0 (x = logit - max), inline so the per-token loops make no libm call (a call
// also pushes every accumulator through memory: 3x slower over a 32000 row). Cephes' expf
// polynomial: relative error < 1e-7 for every float in [-87, 0] (checked exhaustively against
// double exp); 0 below -87, where the true value is denormal or 0.
inline float ExpNonPositive(float x) {
  const float c = x < -87.0f ? -87.0f : x;
  const float n = (c * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(c / ln 2)
  const float r = c - n * 0.693359375f + n * 2.12194440e-4f;               // Cody-Waite ln 2
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const float two_n = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  return x < -87.0f ? 0.0f : y * two_n;
}

// Sum over the row of exp(l - mx), masked (and NaN) entries weighing 0; with kStore, also writes
// each weight to `weights`.
template <bool kStore>
double SumExp(std::span<const float> logits, float mx, float* weights) {
  auto weight = [mx](float l) { return l > kMasked ? ExpNonPositive(l - mx) : 0.0f; };
  // Four named accumulators: an indexed array stays in memory at -O2.
  double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
  size_t i = 0;
  for (; i + 4 <= logits.size(); i += 4) {
    const float w0 = weight(logits[i]), w1 = weight(logits[i + 1]);
    const float w2 = weight(logits[i + 2]), w3 = weight(logits[i + 3]);
    if constexpr (kStore) {
      weights[i] = w0;
      weights[i + 1] = w1;
      weights[i + 2] = w2;
      weights[i + 3] = w3;
    }
    s0 += w0;
    s1 += w1;
    s2 += w2;
    s3 += w3;
  }
  for (; i < logits.size(); ++i) {
    const float w = weight(logits[i]);
    if constexpr (kStore) weights[i] = w;
    s0 += w;
  }
  return (s0 + s1) + (s2 + s3);
}

// Top-k up to this size keeps a heap of the k best; larger k uses nth_element.
constexpr int kTopKHeapLimit = 1024;

// Sort order for "most likely first": larger logit, then lower index, so results never depend on
// how a sort happens to break ties.
struct MoreLikely {
  std::span<const float> logits;
  bool operator()(int a, int b) const {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  }
};

template <typename T>
std::vector<T>& Buffer(std::vector<T>* scratch, std::vector<T>& local) {
  return scratch != nullptr ? *scratch : local;
}

}  // namespace

std::vector<int> SortedUniqueIds(std::span<const int> ids) {
  std::vector<int> out(ids.begin(), ids.end());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

void ApplyPenalties(std::span<float> logits, std::span<const int> prompt_set,
                    std::span<const int> output_ids, float repetition_penalty,
                    float presence_penalty, float frequency_penalty, SamplingScratch* scratch) {
  const bool repetition = repetition_penalty != 1.0f;
  const bool additive = presence_penalty != 0.0f || frequency_penalty != 0.0f;
  if (!repetition && !additive) return;
  const int vocab = static_cast<int>(logits.size());
  auto in_range = [vocab](int t) { return t >= 0 && t < vocab; };
  auto penalize = [&](int t) {
    float& l = logits[t];
    l = l > 0.0f ? l / repetition_penalty : l * repetition_penalty;
  };

  // Sorting the output groups equal ids into runs: distinct tokens and their counts without a
  // vocab-sized count array per sequence.
  std::vector<int> local;
  std::vector<int>& sorted = Buffer(scratch ? &scratch->ids : nullptr, local);
  sorted.assign(output_ids.begin(), output_ids.end());
  std::sort(sorted.begin(), sorted.end());

  if (repetition) {
    for (int t : prompt_set) {
      if (in_range(t)) penalize(t);
    }
  }
  for (size_t i = 0; i < sorted.size();) {
    const int t = sorted[i];
    size_t j = i;
    while (j < sorted.size() && sorted[j] == t) ++j;
    const int count = static_cast<int>(j - i);
    i = j;
    if (!in_range(t)) continue;
    if (repetition && !std::binary_search(prompt_set.begin(), prompt_set.end(), t)) penalize(t);
    if (additive) {
      logits[t] -= presence_penalty + static_cast<float>(count) * frequency_penalty;
    }
  }
}

void ApplyTemperature(std::span<float> logits, float temperature) {
  for (float& l : logits) l /= temperature;
}

void ApplyTopK(std::span<float> logits, int k, SamplingScratch* scratch) {
  if (k <= 0 || static_cast<size_t>(k) >= logits.size()) return;
  std::vector<float> local;
  std::vector<float>& values = Buffer(scratch ? &scratch->values : nullptr, local);
  float threshold;
  if (k <= kTopKHeapLimit) {
    // One pass with a k-entry min-heap: almost every logit is rejected by one comparison with
    // the heap's minimum, several times cheaper than nth_element over a copy of the row.
    values.assign(logits.begin(), logits.begin() + k);
    std::make_heap(values.begin(), values.end(), std::greater<float>());
    for (size_t i = k; i < logits.size(); ++i) {
      if (!(logits[i] > values.front())) continue;
      std::pop_heap(values.begin(), values.end(), std::greater<float>());
      values.back() = logits[i];
      std::push_heap(values.begin(), values.end(), std::greater<float>());
    }
    threshold = values.front();
  } else {
    values.assign(logits.begin(), logits.end());
    std::nth_element(values.begin(), values.begin() + (k - 1), values.end(), std::greater<float>());
    threshold = values[k - 1];
  }
  for (float& l : logits) {
    if (l < threshold) l = kMasked;
  }
}

void ApplyTopP(std::span<float> logits, float p, SamplingScratch* scratch) {
  if (p >= 1.0f) return;
  const float mx = MaxLogit(logits);
  if (mx == kMasked) return;
  std::vector<WeightedLogit> local;
  std::vector<WeightedLogit>& items = Buffer(scratch ? &scratch->weighted : nullptr, local);
  items.clear();
  double z = 0.0;
  for (float l : logits) {
    if (!(l > kMasked)) continue;  // earlier masks (top-k) shrink the candidate list
    items.push_back({l, ExpNonPositive(l - mx)});
    z += items.back().weight;
  }
  if (items.size() <= 1) return;
  // Tokens lighter than (1 - p) * z / n weigh at most (1 - p) * z all together, so the heavier
  // ones already reach p * z: the boundary is among them. On a peaked row this drops most of the
  // vocabulary before the selection below.
  const float floor_weight =
      static_cast<float>((1.0 - static_cast<double>(p)) * z / static_cast<double>(items.size()));
  std::erase_if(items, [floor_weight](const WeightedLogit& w) { return w.weight < floor_weight; });

  // The kept set is {l >= t}, where t is the logit at which the most-likely-first running sum
  // first reaches p * z. Find t by quickselect on mass rather than by sorting: each round splits
  // the candidates around a pivot into > / == / < and descends into the part holding the
  // boundary, so the expected cost is O(vocab) however flat the distribution is.
  double target = static_cast<double>(p) * z;
  auto lo = items.begin(), hi = items.end();  // never empty: the argmax (weight 1) survives
  float threshold;
  while (true) {
    const float a = lo->logit, b = (lo + (hi - lo) / 2)->logit, c = (hi - 1)->logit;
    const float pivot = std::max(std::min(a, b), std::min(std::max(a, b), c));  // median of 3
    auto gt_end =
        std::partition(lo, hi, [pivot](const WeightedLogit& w) { return w.logit > pivot; });
    auto eq_end =
        std::partition(gt_end, hi, [pivot](const WeightedLogit& w) { return w.logit == pivot; });
    double mass_gt = 0.0, mass_eq = 0.0;
    for (auto it = lo; it != gt_end; ++it) mass_gt += it->weight;
    for (auto it = gt_end; it != eq_end; ++it) mass_eq += it->weight;
    if (gt_end != lo && mass_gt >= target) {
      hi = gt_end;
    } else if (mass_gt + mass_eq >= target || eq_end == hi) {
      // The boundary is the pivot, or rounding left the running sum a hair below p * z after
      // the lightest candidate: keep every candidate then.
      threshold = pivot;
      break;
    } else {
      target -= mass_gt + mass_eq;
      lo = eq_end;
    }
  }
  for (float& l : logits) {
    if (l < threshold) l = kMasked;
  }
}

void ApplyMinP(std::span<float> logits, float min_p) {
  if (min_p <= 0.0f) return;
  const float mx = MaxLogit(logits);
  if (mx == kMasked) return;
  // p_i < min_p * p_max  <=>  exp(l_i - max) < min_p: no softmax needed.
  const double threshold = static_cast<double>(mx) + std::log(std::min(1.0, double{min_p}));
  for (float& l : logits) {
    if (static_cast<double>(l) < threshold) l = kMasked;
  }
}

int Argmax(std::span<const float> logits) {
  int best = -1;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (std::isnan(logits[i])) continue;
    if (best < 0 || logits[i] > logits[best]) best = static_cast<int>(i);
  }
  return best < 0 ? 0 : best;
}

double LogSumExp(std::span<const float> logits) {
  const float mx = MaxLogit(logits);
  if (mx == kMasked || std::isinf(mx)) return mx;
  return mx + std::log(SumExp<false>(logits, mx, nullptr));
}

void LogSoftmax(std::span<float> logits) {
  const double lse = LogSumExp(logits);
  for (float& l : logits) l = static_cast<float>(l - lse);
}

std::vector<std::pair<int, float>> TopLogprobs(std::span<const float> logits, int n,
                                               double log_normalizer, SamplingScratch* scratch) {
  n = std::min<int>(n, static_cast<int>(logits.size()));
  if (n <= 0) return {};
  std::vector<int> local;
  std::vector<int>& ids = Buffer(scratch ? &scratch->ids : nullptr, local);
  ids.resize(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), MoreLikely{logits});
  std::vector<std::pair<int, float>> out;
  out.reserve(n);
  for (int i = 0; i < n; ++i) {
    out.emplace_back(ids[i], static_cast<float>(logits[ids[i]] - log_normalizer));
  }
  return out;
}

int SampleFromLogits(std::span<const float> logits, double u, SamplingScratch* scratch) {
  const float mx = MaxLogit(logits);
  if (!std::isfinite(mx)) return Argmax(logits);
  // One float exp per token (the walk reuses the weights); sums in double so 32000 small terms
  // do not lose the tail.
  std::vector<float> local;
  std::vector<float>& weights = Buffer(scratch ? &scratch->values : nullptr, local);
  weights.resize(logits.size());
  const double total = SumExp<true>(logits, mx, weights.data());
  const double target = u * total;
  double cum = 0.0;
  int last = -1;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (weights[i] == 0.0f) continue;
    cum += weights[i];
    last = static_cast<int>(i);
    if (cum > target) return last;
  }
  return last;  // u * total rounded up to the full sum: the last token with weight
}

}  // namespace cleave
