#include "engine/sample/stop_checker.h"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace cleave {
namespace {

constexpr int kEos = 2;
constexpr int kPlainToken = 100;

SamplingParams WithStops(std::vector<std::string> stop, int max_tokens = 1000) {
  SamplingParams p;
  p.stop = std::move(stop);
  p.max_tokens = max_tokens;
  return p;
}

// Plays the engine's side of the streaming contract.
class Stream {
 public:
  explicit Stream(const StopChecker& checker) : checker_(checker) {}

  StopDecision Step(std::string_view delta, int token = kPlainToken) {
    text_ += delta;
    ++num_tokens_;
    const StopDecision d = checker_.Check(token, num_tokens_, text_, emitted_);
    EXPECT_LE(emitted_ + d.emit_chars, text_.size());
    sent_ += text_.substr(emitted_, d.emit_chars);
    emitted_ += d.emit_chars;
    if (d.reason == FinishReason::kStopSequence) text_.resize(emitted_);
    return d;
  }

  const std::string& sent() const { return sent_; }
  const std::string& text() const { return text_; }

 private:
  const StopChecker& checker_;
  std::string text_;
  std::string sent_;
  size_t emitted_ = 0;
  int num_tokens_ = 0;
};

TEST(StopCheckerTest, StopStringSpanningTokensIsCaughtAndNeverSent) {
  StopChecker checker(WithStops({"###"}), kEos);
  Stream s(checker);
  EXPECT_EQ(s.Step("Hello #").reason, FinishReason::kNone);
  EXPECT_EQ(s.sent(), "Hello ");  // "#" held back
  EXPECT_EQ(s.Step("#").reason, FinishReason::kNone);
  EXPECT_EQ(s.sent(), "Hello ");  // "##" held back
  EXPECT_EQ(s.Step("# world").reason, FinishReason::kStopSequence);
  EXPECT_EQ(s.sent(), "Hello ");
  EXPECT_EQ(s.text(), "Hello ");  // stop string and everything after it cut
}

TEST(StopCheckerTest, HeldBackPrefixIsReleasedWhenTheMatchFails) {
  StopChecker checker(WithStops({"</end>"}), kEos);
  Stream s(checker);
  s.Step("a<");
  EXPECT_EQ(s.sent(), "a");
  s.Step("/e");
  EXPECT_EQ(s.sent(), "a");
  EXPECT_EQ(s.Step("x b").reason, FinishReason::kNone);
  EXPECT_EQ(s.sent(), "a</ex b");
}

TEST(StopCheckerTest, StopStringIsExcludedFromTheText) {
  StopChecker checker(WithStops({"STOP"}), kEos);
  Stream s(checker);
  s.Step("abc S");
  EXPECT_EQ(s.sent(), "abc ");
  const StopDecision d = s.Step("TOP def");
  EXPECT_EQ(d.reason, FinishReason::kStopSequence);
  EXPECT_EQ(d.emit_chars, 0u);
  EXPECT_EQ(s.text(), "abc ");
  EXPECT_EQ(s.text().find("STOP"), std::string::npos);
}

TEST(StopCheckerTest, SelfOverlappingStopString) {
  // "aab" after "aaa": the held fragment must shrink to "aa", not reset (a naive matcher misses
  // the match starting at the second 'a').
  StopChecker checker(WithStops({"aab"}), kEos);
  Stream s(checker);
  s.Step("a");
  s.Step("a");
  s.Step("a");
  EXPECT_EQ(s.sent(), "a");
  EXPECT_EQ(s.Step("b").reason, FinishReason::kStopSequence);
  EXPECT_EQ(s.text(), "a");
}

TEST(StopCheckerTest, EarliestStartingStopWins) {
  StopChecker checker(WithStops({"world", "lo w"}), kEos);
  Stream s(checker);
  EXPECT_EQ(s.Step("hello world!").reason, FinishReason::kStopSequence);
  EXPECT_EQ(s.text(), "hel");
}

TEST(StopCheckerTest, WithoutStopStringsEverythingIsSentAtOnce) {
  StopChecker checker(SamplingParams{}, kEos);
  Stream s(checker);
  s.Step("abc");
  s.Step("###");
  EXPECT_EQ(s.sent(), "abc###");
}

TEST(StopCheckerTest, TokenReasons) {
  SamplingParams p;
  p.max_tokens = 5;
  p.stop_token_ids = {7, 9};
  StopChecker checker(p, kEos);
  EXPECT_EQ(checker.CheckToken(kPlainToken, 1), FinishReason::kNone);
  EXPECT_EQ(checker.CheckToken(9, 1), FinishReason::kStop);
  EXPECT_EQ(checker.CheckToken(kEos, 1), FinishReason::kStop);
  EXPECT_EQ(checker.CheckToken(kPlainToken, 4), FinishReason::kNone);
  EXPECT_EQ(checker.CheckToken(kPlainToken, 5), FinishReason::kLength);
  EXPECT_EQ(checker.CheckToken(kEos, 5), FinishReason::kStop);  // eos outranks length

  p.ignore_eos = true;
  StopChecker ignoring(p, kEos);
  EXPECT_EQ(ignoring.CheckToken(kEos, 1), FinishReason::kNone);
  EXPECT_EQ(ignoring.CheckToken(kEos, 5), FinishReason::kLength);
  EXPECT_EQ(ignoring.CheckToken(7, 1), FinishReason::kStop);  // ignore_eos leaves stop ids alone

  StopChecker no_eos(SamplingParams{}, -1);
  EXPECT_EQ(no_eos.CheckToken(kEos, 1), FinishReason::kNone);
}

TEST(StopCheckerTest, TokenFinishFlushesTheHeldFragment) {
  StopChecker checker(WithStops({"###"}, /*max_tokens=*/2), kEos);
  Stream s(checker);
  s.Step("ab#");
  EXPECT_EQ(s.sent(), "ab");
  const StopDecision d = s.Step("#");  // second token: max_tokens
  EXPECT_EQ(d.reason, FinishReason::kLength);
  EXPECT_EQ(s.sent(), "ab##");

  Stream e(checker);
  e.Step("x#");
  EXPECT_EQ(e.Step("", kEos).reason, FinishReason::kStop);
  EXPECT_EQ(e.sent(), "x#");
}

TEST(StopCheckerTest, StopStringOutranksTokenReasons) {
  StopChecker checker(WithStops({"END"}, /*max_tokens=*/1), kEos);
  Stream s(checker);
  EXPECT_EQ(s.Step("xEND", kEos).reason, FinishReason::kStopSequence);
  EXPECT_EQ(s.text(), "x");
}

// The whole protocol against a brute-force reference on random texts, stop sets and chunkings:
// after each step, sent == prefix minus the longest suffix that is a proper prefix of a stop
// string; at the first step whose prefix contains a stop string, the text ends at the earliest
// start among the matches.
TEST(StopCheckerTest, MatchesBruteForceOnRandomStreams) {
  std::mt19937_64 rng(8);
  auto rand_int = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto rand_string = [&](int len, const char* alphabet, int size) {
    std::string s;
    for (int i = 0; i < len; ++i) s += alphabet[rand_int(0, size - 1)];
    return s;
  };
  int stopped = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<std::string> stops;
    for (int i = rand_int(1, 3); i > 0; --i) stops.push_back(rand_string(rand_int(1, 4), "ab", 2));
    const std::string full = rand_string(rand_int(0, 30), "abc", 3);
    StopChecker checker(WithStops(stops), kEos);
    Stream s(checker);
    size_t pos = 0;
    while (pos < full.size()) {
      const size_t len = std::min<size_t>(rand_int(0, 4), full.size() - pos);
      const StopDecision d = s.Step(std::string_view(full).substr(pos, len));
      pos += len;
      const std::string prefix = full.substr(0, pos);
      size_t first = std::string::npos;
      for (const std::string& stop : stops) first = std::min(first, prefix.find(stop));
      if (first != std::string::npos) {
        ASSERT_EQ(d.reason, FinishReason::kStopSequence) << trial;
        ASSERT_EQ(s.sent(), prefix.substr(0, first)) << trial;
        ASSERT_EQ(s.text(), s.sent());
        ++stopped;
        break;
      }
      ASSERT_EQ(d.reason, FinishReason::kNone);
      size_t hold = 0;
      for (const std::string& stop : stops) {
        for (size_t l = 1; l < stop.size() && l <= prefix.size(); ++l) {
          if (prefix.compare(prefix.size() - l, l, stop, 0, l) == 0) hold = std::max(hold, l);
        }
      }
      ASSERT_EQ(s.sent(), prefix.substr(0, prefix.size() - hold)) << trial << " at " << pos;
    }
  }
  EXPECT_GT(stopped, 500);  // both branches exercised
}

}  // namespace
}  // namespace cleave
