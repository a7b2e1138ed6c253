#include "engine/sample/sampling_params.h"

#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cleave {
namespace {

using ::testing::HasSubstr;

constexpr int kVocab = 32000;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(SamplingParamsTest, DefaultsAreValid) { EXPECT_TRUE(SamplingParams{}.Validate(kVocab).ok()); }

TEST(SamplingParamsTest, BoundaryValuesAreAccepted) {
  std::vector<std::function<void(SamplingParams&)>> edits = {
      [](SamplingParams& p) { p.temperature = 0.0f; },
      [](SamplingParams& p) { p.temperature = 100.0f; },
      [](SamplingParams& p) { p.top_k = 1; },
      [](SamplingParams& p) { p.top_k = kVocab + 1000; },  // documented: larger than vocab = off
      [](SamplingParams& p) { p.top_p = 1.0f; },
      [](SamplingParams& p) { p.top_p = 1e-6f; },
      [](SamplingParams& p) { p.min_p = 1.0f; },
      [](SamplingParams& p) { p.repetition_penalty = 1e-3f; },
      [](SamplingParams& p) { p.presence_penalty = -2.0f; },
      [](SamplingParams& p) { p.frequency_penalty = 2.0f; },
      [](SamplingParams& p) { p.max_tokens = 1; },
      [](SamplingParams& p) { p.logprobs = 20; },
      [](SamplingParams& p) { p.logprobs = 0; },
      [](SamplingParams& p) {
        p.stop_token_ids = {0, kVocab - 1};
      },
      [](SamplingParams& p) { p.stop = std::vector<std::string>(16, "x"); },
  };
  for (size_t i = 0; i < edits.size(); ++i) {
    SamplingParams p;
    edits[i](p);
    EXPECT_TRUE(p.Validate(kVocab).ok()) << "edit " << i << ": " << p.Validate(kVocab);
  }
}

struct BadCase {
  std::function<void(SamplingParams&)> edit;
  std::string message;  // expected substring: names the field and the bad value
};

TEST(SamplingParamsTest, ErrorsNameTheField) {
  const std::vector<BadCase> cases = {
      {[](SamplingParams& p) { p.temperature = -0.5f; },
       "temperature must be finite and >= 0, got -0.5"},
      {[](SamplingParams& p) { p.temperature = kInf; },
       "temperature must be finite and >= 0, got inf"},
      {[](SamplingParams& p) { p.temperature = kNaN; }, "temperature"},
      {[](SamplingParams& p) { p.top_k = -1; }, "top_k must be >= 0 (0 = off), got -1"},
      {[](SamplingParams& p) { p.top_p = 1.5f; }, "top_p must be in (0, 1], got 1.5"},
      {[](SamplingParams& p) { p.top_p = 0.0f; }, "top_p must be in (0, 1], got 0"},
      {[](SamplingParams& p) { p.top_p = kNaN; }, "top_p must be in (0, 1]"},
      {[](SamplingParams& p) { p.min_p = -0.1f; }, "min_p must be in [0, 1], got -0.1"},
      {[](SamplingParams& p) { p.min_p = 1.01f; }, "min_p must be in [0, 1], got 1.01"},
      {[](SamplingParams& p) { p.repetition_penalty = 0.0f; },
       "repetition_penalty must be finite and > 0, got 0"},
      {[](SamplingParams& p) { p.repetition_penalty = kInf; }, "repetition_penalty"},
      {[](SamplingParams& p) { p.presence_penalty = 2.5f; },
       "presence_penalty must be in [-2, 2], got 2.5"},
      {[](SamplingParams& p) { p.presence_penalty = kNaN; }, "presence_penalty"},
      {[](SamplingParams& p) { p.frequency_penalty = -3.0f; },
       "frequency_penalty must be in [-2, 2], got -3"},
      {[](SamplingParams& p) { p.max_tokens = 0; }, "max_tokens must be >= 1, got 0"},
      {[](SamplingParams& p) { p.logprobs = 21; }, "logprobs must be in [-1, 20], got 21"},
      {[](SamplingParams& p) { p.logprobs = -2; }, "logprobs must be in [-1, 20], got -2"},
      {[](SamplingParams& p) {
         p.stop_token_ids = {5, kVocab};
       },
       "stop_token_ids[1] must be in [0, 32000), got 32000"},
      {[](SamplingParams& p) { p.stop_token_ids = {-1}; },
       "stop_token_ids[0] must be in [0, 32000), got -1"},
      {[](SamplingParams& p) { p.stop = std::vector<std::string>(17, "x"); },
       "stop must have at most 16 strings, got 17"},
      {[](SamplingParams& p) {
         p.stop = {"ok", ""};
       },
       "stop[1] must not be empty"},
  };
  for (const BadCase& c : cases) {
    SamplingParams p;
    c.edit(p);
    const absl::Status status = p.Validate(kVocab);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.message));
  }
}

TEST(SamplingParamsTest, RejectsNonPositiveVocab) {
  EXPECT_THAT(std::string(SamplingParams{}.Validate(0).message()), HasSubstr("vocab_size"));
}

}  // namespace
}  // namespace cleave
