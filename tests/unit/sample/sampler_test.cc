#include "engine/sample/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace cleave {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

std::vector<float> RandomLogits(uint64_t seed, int n, float stddev) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<float> out(n);
  for (float& l : out) l = normal(rng);
  return out;
}

// Runs `steps` steps on copies of the same logits row, feeding the outputs back as output_ids.
std::vector<int> Generate(const SamplingParams& params, uint64_t fallback_seed,
                          const std::vector<float>& row, int steps) {
  SequenceSampler sampler(params, {}, fallback_seed);
  std::vector<int> out;
  for (int i = 0; i < steps; ++i) {
    std::vector<float> logits = row;
    out.push_back(sampler.Sample(logits, out).token);
  }
  return out;
}

// Pearson's chi-square of observed counts against probabilities (zero-probability entries must
// have zero counts; they are asserted by the callers).
double ChiSquare(const std::vector<int>& counts, const std::vector<double>& probs, int n) {
  double chi2 = 0.0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (probs[i] == 0.0) continue;
    const double expected = probs[i] * n;
    chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
  }
  return chi2;
}

// Upper 1e-4 quantile of chi-square with `df` degrees of freedom (Wilson-Hilferty).
double ChiSquareCritical(int df) {
  const double z = 3.719;
  const double a = 2.0 / (9.0 * df);
  return df * std::pow(1.0 - a + z * std::sqrt(a), 3.0);
}

std::vector<double> SoftmaxAt(const std::vector<float>& logits, double temperature) {
  std::vector<double> p;
  double z = 0.0;
  for (float l : logits) z += std::exp(l / temperature);
  for (float l : logits) p.push_back(std::exp(l / temperature) / z);
  return p;
}

TEST(SamplerTest, GreedyTakesLowestIndexOnTies) {
  for (float t : {0.0f, 1e-6f}) {
    SamplingParams params;
    params.temperature = t;
    SequenceSampler sampler(params, {}, 7);
    for (int step = 0; step < 5; ++step) {
      std::vector<float> logits = {0.0f, 5.0f, -1.0f, 5.0f, 1.0f};
      EXPECT_EQ(sampler.Sample(logits, {}).token, 1) << "temperature " << t;
    }
  }
}

TEST(SamplerTest, SeedReproducesASequenceAndDifferentSeedsDiffer) {
  const std::vector<float> row = RandomLogits(11, 1000, 1.0f);
  SamplingParams params;
  params.seed = 42;
  const std::vector<int> a = Generate(params, /*fallback_seed=*/1, row, 64);
  const std::vector<int> b = Generate(params, /*fallback_seed=*/2, row, 64);  // seed wins
  EXPECT_EQ(a, b);
  params.seed = 43;
  EXPECT_NE(Generate(params, 1, row, 64), a);
}

TEST(SamplerTest, UnseededRequestsUseTheFallbackSeed) {
  const std::vector<float> row = RandomLogits(12, 1000, 1.0f);
  SamplingParams params;  // no seed
  EXPECT_EQ(Generate(params, 5, row, 64), Generate(params, 5, row, 64));
  EXPECT_NE(Generate(params, 5, row, 64), Generate(params, 6, row, 64));
}

TEST(SamplerTest, EveryStepConsumesExactlyOneDraw) {
  // Two samplers with one seed. Step 0 differs: a one-token row (nothing to draw for, yet a draw
  // must be spent) versus a full row. From step 1 on they see identical rows and must agree.
  const std::vector<float> row = RandomLogits(13, 500, 1.0f);
  SamplingParams params;
  params.seed = 99;
  params.top_p = 0.9f;
  SequenceSampler a(params, {}, 0), b(params, {}, 0);
  std::vector<float> one_hot(row.size(), -kInf);
  one_hot[3] = 0.0f;
  std::vector<float> full = row;
  EXPECT_EQ(a.Sample(one_hot, {}).token, 3);
  b.Sample(full, {});
  for (int step = 1; step < 40; ++step) {
    std::vector<float> la = row, lb = row;
    EXPECT_EQ(a.Sample(la, {}).token, b.Sample(lb, {}).token) << "step " << step;
  }
}

TEST(SamplerTest, FrequenciesMatchTheTemperedSoftmax) {
  const std::vector<float> row = {0.5f, -1.0f, 2.0f, 0.0f, 1.0f, -0.5f, 1.5f, -2.0f};
  SamplingParams params;
  params.temperature = 0.7f;
  params.seed = 2024;
  SequenceSampler sampler(params, {}, 0);
  constexpr int kDraws = 50000;
  std::vector<int> counts(row.size(), 0);
  for (int i = 0; i < kDraws; ++i) {
    std::vector<float> logits = row;
    ++counts[sampler.Sample(logits, {}).token];
  }
  const int df = static_cast<int>(row.size()) - 1;
  EXPECT_LT(ChiSquare(counts, SoftmaxAt(row, 0.7), kDraws), ChiSquareCritical(df));
  // The statistic has power: the same draws are rejected against the untempered softmax.
  EXPECT_GT(ChiSquare(counts, SoftmaxAt(row, 1.0), kDraws), ChiSquareCritical(df));
}

// top-k, then top-p on the renormalised survivors, then min-p, written the slow obvious way:
// sort everything, walk.
std::vector<double> TruncatedReference(const std::vector<float>& row, double t, int k, double p,
                                       double min_p) {
  const std::vector<double> probs = SoftmaxAt(row, t);
  std::vector<int> order(row.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return probs[a] > probs[b]; });
  order.resize(k);
  double mass = 0.0;
  for (int i : order) mass += probs[i];
  double cum = 0.0;
  size_t n = 0;
  while (n < order.size() && cum < p) cum += probs[order[n++]] / mass;
  order.resize(n);
  const double pmax = probs[order[0]];
  std::erase_if(order, [&](int i) { return probs[i] < min_p * pmax; });
  std::vector<double> out(row.size(), 0.0);
  double kept = 0.0;
  for (int i : order) kept += probs[i];
  for (int i : order) out[i] = probs[i] / kept;
  return out;
}

TEST(SamplerTest, FrequenciesMatchTheTruncatedDistribution) {
  const std::vector<float> row = RandomLogits(14, 40, 1.0f);
  SamplingParams params;
  params.temperature = 0.8f;
  params.top_k = 12;
  params.top_p = 0.85f;
  params.min_p = 0.1f;
  params.seed = 7;
  const std::vector<double> expected = TruncatedReference(row, 0.8, 12, 0.85, 0.1);
  const int support = static_cast<int>(
      std::count_if(expected.begin(), expected.end(), [](double q) { return q > 0.0; }));
  ASSERT_GE(support, 3);   // each stage must leave a real distribution to compare against
  ASSERT_LT(support, 12);  // and top-p / min-p must have cut something beyond top-k

  SequenceSampler sampler(params, {}, 0);
  constexpr int kDraws = 40000;
  std::vector<int> counts(row.size(), 0);
  for (int i = 0; i < kDraws; ++i) {
    std::vector<float> logits = row;
    ++counts[sampler.Sample(logits, {}).token];
  }
  for (size_t i = 0; i < row.size(); ++i) {
    if (expected[i] == 0.0) {
      EXPECT_EQ(counts[i], 0) << "masked token " << i << " was sampled";
    }
  }
  EXPECT_LT(ChiSquare(counts, expected, kDraws), ChiSquareCritical(support - 1));
}

TEST(SamplerTest, PenaltiesSteerTheChoice) {
  SamplingParams params;
  params.temperature = 0.0f;
  params.repetition_penalty = 2.0f;  // token 0 is in the prompt: 2.0 -> 1.0 < 1.5
  const std::vector<int> prompt = {0};
  SequenceSampler rep(params, prompt, 0);
  std::vector<float> logits = {2.0f, 1.5f, 0.0f};
  EXPECT_EQ(rep.Sample(logits, {}).token, 1);

  params.repetition_penalty = 1.0f;
  params.presence_penalty = 0.3f;  // token 1 already generated: 1.5 - 0.3 < 1.4
  SequenceSampler presence(params, {}, 0);
  logits = {0.0f, 1.5f, 1.4f};
  const std::vector<int> output = {1};
  EXPECT_EQ(presence.Sample(logits, output).token, 2);
}

TEST(SamplerTest, LogprobsAreLogSoftmaxAfterPenaltiesBeforeTemperature) {
  const std::vector<float> row = RandomLogits(15, 30, 2.0f);
  const std::vector<int> prompt = {1, 2, 3};
  for (float temperature : {0.0f, 1.0f, 0.5f}) {
    SamplingParams params;
    params.temperature = temperature;
    params.top_k = 3;
    params.repetition_penalty = 1.2f;
    params.frequency_penalty = 0.3f;
    params.logprobs = 5;
    params.seed = 3;
    SequenceSampler sampler(params, prompt, 0);
    std::vector<int> output;
    for (int step = 0; step < 20; ++step) {
      // Expected: the formula, then log-softmax in double.
      std::vector<double> pen(row.begin(), row.end());
      for (int t = 0; t < 30; ++t) {
        const int count = static_cast<int>(std::count(output.begin(), output.end(), t));
        const bool seen = count > 0 || std::count(prompt.begin(), prompt.end(), t) > 0;
        if (seen) pen[t] = pen[t] > 0 ? pen[t] / 1.2 : pen[t] * 1.2;
        pen[t] -= 0.3 * count;
      }
      double z = 0.0;
      for (double l : pen) z += std::exp(l);
      std::vector<double> logprob(30);
      for (int t = 0; t < 30; ++t) logprob[t] = pen[t] - std::log(z);
      std::vector<int> order(30);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int a, int b) { return logprob[a] > logprob[b]; });

      std::vector<float> logits = row;
      const SampleResult r = sampler.Sample(logits, output);
      EXPECT_NEAR(r.logprob, logprob[r.token], 1e-4) << "T " << temperature << " step " << step;
      EXPECT_TRUE(r.token == order[0] || r.token == order[1] || r.token == order[2]);  // top_k
      if (temperature == 0.0f) {
        EXPECT_EQ(r.token, order[0]);
      }
      ASSERT_EQ(r.top_logprobs.size(), 5u);
      for (int i = 0; i < 5; ++i) {
        EXPECT_EQ(r.top_logprobs[i].first, order[i]);
        EXPECT_NEAR(r.top_logprobs[i].second, logprob[order[i]], 1e-4);
      }
      output.push_back(r.token);
    }
  }
}

TEST(SamplerTest, LogprobsOffAndSampledOnly) {
  SamplingParams params;
  params.seed = 1;
  SequenceSampler off(params, {}, 0);
  std::vector<float> logits = {0.0f, 1.0f};
  SampleResult r = off.Sample(logits, {});
  EXPECT_EQ(r.logprob, 0.0f);
  EXPECT_TRUE(r.top_logprobs.empty());

  params.logprobs = 0;
  SequenceSampler sampled_only(params, {}, 0);
  logits = {0.0f, 0.0f};
  r = sampled_only.Sample(logits, {});
  EXPECT_NEAR(r.logprob, std::log(0.5), 1e-6);
  EXPECT_TRUE(r.top_logprobs.empty());
}

TEST(SamplerTest, NaNLogitsAreNeverSampled) {
  SamplingParams params;
  params.seed = 5;
  SequenceSampler sampler(params, {}, 0);
  for (int i = 0; i < 500; ++i) {
    std::vector<float> logits = {std::nanf(""), 0.0f, 0.0f, std::nanf("")};
    const int token = sampler.Sample(logits, {}).token;
    EXPECT_TRUE(token == 1 || token == 2) << token;
  }
}

}  // namespace
}  // namespace cleave
