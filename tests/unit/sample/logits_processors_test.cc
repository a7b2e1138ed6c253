#include "engine/sample/logits_processors.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace cleave {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<bool> Kept(const std::vector<float>& logits) {
  std::vector<bool> kept;
  for (float l : logits) kept.push_back(l != -kInf);
  return kept;
}

std::vector<float> LogOf(const std::vector<double>& weights) {
  std::vector<float> out;
  for (double w : weights) out.push_back(static_cast<float>(std::log(w)));
  return out;
}

// softmax over the unmasked entries, in double, straight from the definition.
std::vector<double> Softmax(const std::vector<float>& logits) {
  double z = 0.0;
  for (float l : logits) z += std::exp(static_cast<double>(l));
  std::vector<double> p;
  for (float l : logits) p.push_back(std::exp(static_cast<double>(l)) / z);
  return p;
}

std::vector<float> RandomLogits(std::mt19937_64& rng, int n, float stddev) {
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<float> out(n);
  for (float& l : out) l = normal(rng);
  return out;
}

// ---------------------------------------------------------------- top-k

TEST(TopKTest, KeepsTokensWithFewerThanKStrictlyLarger) {
  std::mt19937_64 rng(1);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<float> base = RandomLogits(rng, 40, 1.0f);
    for (float& l : base) l = std::round(l * 2.0f) / 2.0f;  // coarse grid: plenty of ties
    for (int k = 1; k <= 41; ++k) {
      std::vector<float> logits = base;
      ApplyTopK(logits, k);
      for (size_t i = 0; i < base.size(); ++i) {
        int larger = 0;
        for (float other : base) larger += other > base[i];
        const bool expect_kept = larger < k;
        EXPECT_EQ(logits[i] != -kInf, expect_kept) << "trial " << trial << " k " << k << " i " << i;
        if (expect_kept) {
          EXPECT_EQ(logits[i], base[i]);  // survivors untouched
        }
      }
    }
  }
}

TEST(TopKTest, LargeKMatchesSortedThreshold) {
  // k above the heap path's limit (1024) takes the nth_element path; both must agree with a sort.
  std::mt19937_64 rng(6);
  std::vector<float> base = RandomLogits(rng, 5000, 2.0f);
  for (float& l : base) l = std::round(l * 8.0f) / 8.0f;
  std::vector<float> sorted = base;
  std::sort(sorted.begin(), sorted.end(), std::greater<float>());
  for (int k : {1000, 1024, 1025, 3000, 4999}) {
    std::vector<float> logits = base;
    ApplyTopK(logits, k);
    for (size_t i = 0; i < base.size(); ++i) {
      ASSERT_EQ(logits[i] != -kInf, base[i] >= sorted[k - 1]) << "k " << k << " i " << i;
    }
  }
}

TEST(TopKTest, TiesWithTheKthAreAllKept) {
  std::vector<float> logits = {1.0f, 3.0f, 3.0f, 2.0f};
  ApplyTopK(logits, 1);
  EXPECT_EQ(Kept(logits), (std::vector<bool>{false, true, true, false}));
}

TEST(TopKTest, OffForZeroAndForKAtLeastVocab) {
  const std::vector<float> base = {0.5f, -1.0f, 2.0f};
  for (int k : {0, 3, 100}) {
    std::vector<float> logits = base;
    ApplyTopK(logits, k);
    EXPECT_EQ(logits, base) << k;
  }
}

// ---------------------------------------------------------------- top-p

// The smallest subset of the unmasked tokens whose probability reaches p, by enumerating every
// subset; among subsets of that size, the most probable one (unique for distinct probabilities).
// Returns false when some subset's mass is so close to p that float rounding could decide.
bool SmallestNucleusBruteForce(const std::vector<float>& logits, double p,
                               std::vector<bool>* kept) {
  std::vector<int> live;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (logits[i] != -kInf) live.push_back(static_cast<int>(i));
  }
  double z = 0.0;
  for (int i : live) z += std::exp(static_cast<double>(logits[i]));
  int best_size = 1 << 30;
  double best_mass = -1.0;
  unsigned best_mask = 0;
  for (unsigned mask = 1; mask < (1u << live.size()); ++mask) {
    double mass = 0.0;
    for (size_t b = 0; b < live.size(); ++b) {
      if (mask & (1u << b)) mass += std::exp(static_cast<double>(logits[live[b]])) / z;
    }
    if (std::abs(mass - p) < 1e-5) return false;
    const int size = std::popcount(mask);
    if (mass >= p && (size < best_size || (size == best_size && mass > best_mass))) {
      best_size = size;
      best_mass = mass;
      best_mask = mask;
    }
  }
  kept->assign(logits.size(), false);
  for (size_t b = 0; b < live.size(); ++b) (*kept)[live[b]] = (best_mask >> b) & 1u;
  return true;
}

TEST(TopPTest, KeepsTheSmallestSetReachingPBruteForce) {
  std::mt19937_64 rng(2);
  int checked = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const std::vector<float> base = RandomLogits(rng, 10, 1.5f);
    for (double p : {0.05, 0.3, 0.5, 0.75, 0.9, 0.97}) {
      std::vector<bool> expected;
      if (!SmallestNucleusBruteForce(base, p, &expected)) continue;
      std::vector<float> logits = base;
      ApplyTopP(logits, static_cast<float>(p));
      EXPECT_EQ(Kept(logits), expected) << "trial " << trial << " p " << p;
      ++checked;
    }
  }
  EXPECT_GT(checked, 300);  // the ambiguity filter must not have skipped most cases
}

TEST(TopPTest, RenormalisesOverTokensAlreadyMasked) {
  // Unmasked weights 5:2:1.5:1:0.5 (sum 10, not 1) -> 0.5, 0.2, 0.15, 0.1, 0.05: p = 0.82 needs
  // {0.5, 0.2, 0.15}. Summing unnormalised weights would stop after the first token.
  std::vector<float> logits = LogOf({2.0, 5.0, 0.5, 1.5, 1.0});
  logits.insert(logits.begin() + 1, -kInf);
  logits.push_back(-kInf);
  std::vector<bool> expected;
  ASSERT_TRUE(SmallestNucleusBruteForce(logits, 0.82, &expected));
  ApplyTopP(logits, 0.82f);
  EXPECT_EQ(Kept(logits), expected);
  EXPECT_EQ(Kept(logits), (std::vector<bool>{true, false, true, false, true, false, false}));
}

TEST(TopPTest, AfterTopKUsesTheSurvivorsDistribution) {
  // 0.3, 0.25, 0.2, 0.15, 0.1; top-k 3 leaves 0.4, 0.333, 0.267. p = 0.7 is reached by two of
  // the survivors; measured with the pre-top-k probabilities it would take three.
  std::vector<float> logits = LogOf({0.15, 0.3, 0.1, 0.2, 0.25});
  ApplyTopK(logits, 3);
  ApplyTopP(logits, 0.7f);
  EXPECT_EQ(Kept(logits), (std::vector<bool>{false, true, false, false, true}));
}

TEST(TopPTest, AlwaysKeepsAtLeastTheArgmax) {
  std::vector<float> logits = LogOf({0.1, 0.6, 0.3});
  ApplyTopP(logits, 1e-6f);
  EXPECT_EQ(Kept(logits), (std::vector<bool>{false, true, false}));
  logits = LogOf({0.1, 0.6, 0.3});
  ApplyTopP(logits, 0.0f);  // out of Validate's range, but must still leave the argmax
  EXPECT_EQ(Kept(logits), (std::vector<bool>{false, true, false}));
}

TEST(TopPTest, TiesWithTheBoundaryTokenAreAllKept) {
  std::vector<float> logits = LogOf({0.2, 0.4, 0.2, 0.2});
  ApplyTopP(logits, 0.5f);  // 0.4 + one 0.2 reaches it; the other two 0.2s tie with that one
  EXPECT_EQ(Kept(logits), (std::vector<bool>{true, true, true, true}));
  logits = LogOf({0.2, 0.4, 0.2, 0.2});
  ApplyTopP(logits, 0.3f);
  EXPECT_EQ(Kept(logits), (std::vector<bool>{false, true, false, false}));
}

TEST(TopPTest, OneIsOff) {
  const std::vector<float> base = LogOf({0.1, 0.6, 0.3});
  std::vector<float> logits = base;
  ApplyTopP(logits, 1.0f);
  EXPECT_EQ(logits, base);
}

TEST(TopPTest, LargeVocabMatchesFullSort) {
  // 32000 entries: flat enough that the growing partial sort needs several rounds for high p.
  std::mt19937_64 rng(3);
  const std::vector<float> base = RandomLogits(rng, 32000, 2.0f);
  std::vector<double> probs = Softmax(base);
  std::vector<double> sorted = probs;
  std::sort(sorted.begin(), sorted.end(), std::greater<double>());
  int checked = 0;
  for (double p : {0.01, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99}) {
    double cum = 0.0;
    size_t cut = 0;
    while (cum + sorted[cut] < p) cum += sorted[cut++];
    // fp32 exps summed over 32000 terms: skip a p that lands within rounding of a step.
    if (std::min(cum + sorted[cut] - p, p - cum) < 1e-7) continue;
    ++checked;
    const double threshold = sorted[cut];
    std::vector<float> logits = base;
    ApplyTopP(logits, static_cast<float>(p));
    int kept = 0;
    for (size_t i = 0; i < base.size(); ++i) {
      ASSERT_EQ(logits[i] != -kInf, probs[i] >= threshold) << "p " << p << " i " << i;
      kept += logits[i] != -kInf;
    }
    EXPECT_EQ(kept, static_cast<int>(cut) + 1);
    if (p >= 0.9) {
      EXPECT_GT(kept, 64 * 4);  // the partial sort had to grow at least twice
    }
  }
  EXPECT_GE(checked, 6);
}

// ---------------------------------------------------------------- min-p

TEST(MinPTest, DropsTokensBelowMinPTimesMaxProbability) {
  // max 0.5, min_p 0.15 -> threshold 0.075: keeps 0.5, 0.3, 0.1; drops 0.06 and 0.04.
  std::vector<float> logits = LogOf({0.06, 0.5, 0.04, 0.3, 0.1});
  ApplyMinP(logits, 0.15f);
  EXPECT_EQ(Kept(logits), (std::vector<bool>{false, true, false, true, true}));
}

TEST(MinPTest, MatchesDefinitionOnRandomRows) {
  std::mt19937_64 rng(4);
  for (int trial = 0; trial < 50; ++trial) {
    const std::vector<float> base = RandomLogits(rng, 200, 2.0f);
    const std::vector<double> probs = Softmax(base);
    const double pmax = *std::max_element(probs.begin(), probs.end());
    for (double min_p : {0.01, 0.1, 0.5, 0.9}) {
      std::vector<float> logits = base;
      ApplyMinP(logits, static_cast<float>(min_p));
      for (size_t i = 0; i < base.size(); ++i) {
        const double ratio = probs[i] / pmax;
        if (std::abs(ratio - min_p) < 1e-5 * min_p) continue;  // rounding could go either way
        EXPECT_EQ(logits[i] != -kInf, ratio >= min_p) << trial << " " << min_p << " " << i;
      }
    }
  }
}

TEST(MinPTest, OneKeepsOnlyTheMaximumAndZeroIsOff) {
  std::vector<float> logits = {1.0f, 4.0f, 3.9f, 4.0f};
  ApplyMinP(logits, 1.0f);
  EXPECT_EQ(Kept(logits), (std::vector<bool>{false, true, false, true}));
  const std::vector<float> base = {1.0f, 4.0f, -30.0f};
  logits = base;
  ApplyMinP(logits, 0.0f);
  EXPECT_EQ(logits, base);
}

// ---------------------------------------------------------------- penalties

TEST(PenaltiesTest, MatchTheFormula) {
  std::mt19937_64 rng(5);
  const std::vector<float> base = RandomLogits(rng, 50, 3.0f);  // both signs
  const std::vector<int> prompt = {3, 7, 7, 11, 20, 3, 99 /* out of range: ignored */};
  const std::vector<int> output = {7, 8, 8, 8, 20, 30, 30, -4 /* ignored */};
  const float rep = 1.3f, presence = 0.4f, frequency = 0.25f;

  std::vector<float> logits = base;
  ApplyPenalties(logits, SortedUniqueIds(prompt), output, rep, presence, frequency);

  for (int t = 0; t < 50; ++t) {
    const bool in_prompt = std::count(prompt.begin(), prompt.end(), t) > 0;
    const int count = static_cast<int>(std::count(output.begin(), output.end(), t));
    float expected = base[t];
    if (in_prompt || count > 0) expected = expected > 0 ? expected / rep : expected * rep;
    if (count > 0) expected -= presence + count * frequency;
    EXPECT_FLOAT_EQ(logits[t], expected) << "token " << t;
  }
}

TEST(PenaltiesTest, RepetitionAppliesOncePerDistinctToken) {
  // Token 0 appears twice in the prompt and three times in the output: divided by 2 once.
  std::vector<float> logits = {2.0f, -2.0f, 1.0f};
  ApplyPenalties(logits, SortedUniqueIds(std::vector<int>{0, 0, 1}), std::vector<int>{0, 0, 0},
                 2.0f, 0.0f, 0.0f);
  EXPECT_EQ(logits, (std::vector<float>{1.0f, -4.0f, 1.0f}));
}

TEST(PenaltiesTest, PresenceAndFrequencyIgnoreThePrompt) {
  std::vector<float> logits = {1.0f, 1.0f, 1.0f};
  ApplyPenalties(logits, std::vector<int>{0}, std::vector<int>{1, 2, 2}, 1.0f, 0.5f, 0.125f);
  EXPECT_EQ(logits, (std::vector<float>{1.0f, 1.0f - 0.625f, 1.0f - 0.75f}));
}

TEST(PenaltiesTest, OffIsIdentity) {
  const std::vector<float> base = {1.0f, -1.0f};
  std::vector<float> logits = base;
  ApplyPenalties(logits, std::vector<int>{0, 1}, std::vector<int>{0, 1}, 1.0f, 0.0f, 0.0f);
  EXPECT_EQ(logits, base);
}

// ---------------------------------------------------------------- the rest

TEST(ArgmaxTest, LowestIndexWinsTiesAndNaNIsSkipped) {
  EXPECT_EQ(Argmax(std::vector<float>{1.0f, 3.0f, 3.0f, 2.0f}), 1);
  EXPECT_EQ(Argmax(std::vector<float>{std::nanf(""), 0.0f, 5.0f, 5.0f}), 2);
  EXPECT_EQ(Argmax(std::vector<float>{-kInf, -kInf}), 0);
}

TEST(LogSoftmaxTest, MatchesDefinition) {
  const std::vector<float> base = {0.3f, -1.2f, 2.5f, -kInf, 0.0f};
  double z = 0.0;
  for (float l : base) z += std::exp(static_cast<double>(l));
  std::vector<float> logits = base;
  LogSoftmax(logits);
  for (size_t i = 0; i < base.size(); ++i) {
    if (base[i] == -kInf) {
      EXPECT_EQ(logits[i], -kInf);
    } else {
      EXPECT_NEAR(logits[i], std::log(std::exp(static_cast<double>(base[i])) / z), 1e-6);
    }
  }
  EXPECT_NEAR(LogSumExp(base), std::log(z), 1e-6);
  // Stable for magnitudes where a naive exp overflows.
  EXPECT_NEAR(LogSumExp(std::vector<float>{1000.0f, 1000.0f}), 1000.0 + std::log(2.0), 1e-6);
}

TEST(TopLogprobsTest, LargestFirstLowerIdOnTies) {
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f, -kInf};
  const auto top = TopLogprobs(logits, 3, 0.5);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0], (std::pair<int, float>{1, 2.5f}));
  EXPECT_EQ(top[1], (std::pair<int, float>{3, 2.5f}));
  EXPECT_EQ(top[2], (std::pair<int, float>{2, 1.5f}));
  EXPECT_EQ(TopLogprobs(logits, 50, 0.0).size(), logits.size());
}

TEST(SampleFromLogitsTest, InverseCdfBoundaries) {
  // Weights 1 : 0 (masked) : 1 : 2 -> CDF 0.25, 0.25, 0.5, 1.
  std::vector<float> row = LogOf({1.0, 1.0, 1.0, 2.0});
  row[1] = -kInf;
  EXPECT_EQ(SampleFromLogits(row, 0.0), 0);
  EXPECT_EQ(SampleFromLogits(row, 0.24), 0);
  EXPECT_EQ(SampleFromLogits(row, 0.26), 2);
  EXPECT_EQ(SampleFromLogits(row, 0.49), 2);
  EXPECT_EQ(SampleFromLogits(row, 0.51), 3);
  EXPECT_EQ(SampleFromLogits(row, std::nextafter(1.0, 0.0)), 3);
  for (double u = 0.0; u < 1.0; u += 0.001) EXPECT_NE(SampleFromLogits(row, u), 1);

  // Intervals are half-open, [cdf_{i-1}, cdf_i): u exactly on a step belongs to the next token.
  const std::vector<float> flat = {0.0f, 0.0f, 0.0f, 0.0f};  // weights exactly 1
  EXPECT_EQ(SampleFromLogits(flat, 0.25), 1);
  EXPECT_EQ(SampleFromLogits(flat, 0.75), 3);
}

}  // namespace
}  // namespace cleave
