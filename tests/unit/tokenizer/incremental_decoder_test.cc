// IncrementalDecoder over the byte tokenizer (where every id is one byte, so characters
// split across ids all the time) and over fakes that probe its window logic.
#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "engine/tokenizer/byte_tokenizer.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/utf8.h"
#include "gtest/gtest.h"

namespace cleave {
namespace {

const std::string kFffd(kReplacementChar);

std::unique_ptr<ByteTokenizer> Bytes() {
  auto tok = ByteTokenizer::Create(ByteTokenizerOptions{});
  EXPECT_TRUE(tok.ok());
  return std::move(*tok);
}

// True when `s` is valid UTF-8 and does not end inside a character.
bool IsCompleteUtf8(const std::string& s) { return SanitizeUtf8(s) == s; }

// Feeds `ids` one by one; checks every delta and returns the deltas.
std::vector<std::string> Stream(const Tokenizer& tok, const std::vector<int>& ids) {
  IncrementalDecoder dec(&tok);
  std::vector<std::string> deltas;
  std::string joined;
  for (int id : ids) {
    deltas.push_back(dec.Add(id));
    EXPECT_TRUE(IsCompleteUtf8(deltas.back())) << "partial UTF-8 in a delta";
    joined += deltas.back();
  }
  deltas.push_back(dec.Finish());
  EXPECT_TRUE(IsCompleteUtf8(deltas.back()));
  joined += deltas.back();
  EXPECT_EQ(joined, dec.text());
  EXPECT_EQ(joined, SanitizeUtf8(tok.Decode(ids)));
  return deltas;
}

TEST(IncrementalDecoderTest, HoldsSplitCharactersUntilComplete) {
  auto tok = Bytes();
  const std::string text =
      "a\xF0\x9F\x98\x80"
      "b\xE4\xB8\xAD";  // a😀b中
  std::vector<int> ids = tok->Encode(text, true);
  const std::vector<std::string> deltas = Stream(*tok, ids);
  // BOS, "a", 3 held bytes of 😀, then all of it, "b", 2 held bytes of 中, then it.
  const std::vector<std::string> want = {
      "", "a", "", "", "", "\xF0\x9F\x98\x80", "b", "", "", "\xE4\xB8\xAD", ""};
  EXPECT_EQ(deltas, want);
}

TEST(IncrementalDecoderTest, InvalidBytesBecomeReplacementAsSoonAsKnown) {
  auto tok = Bytes();
  // E4 B8 starts 中 but "(" breaks it: both bytes are replaced when "(" arrives.
  const std::vector<std::string> deltas = Stream(*tok, tok->Encode("\xE4\xB8(\xFF", false));
  const std::vector<std::string> want = {"", "", kFffd + kFffd + "(", kFffd, ""};
  EXPECT_EQ(deltas, want);
  // An unfinished character at the end is flushed by Finish.
  const std::vector<std::string> tail = Stream(*tok, tok->Encode("x\xF0\x9F", false));
  EXPECT_EQ(tail.back(), kFffd + kFffd);
}

TEST(IncrementalDecoderTest, SpecialIdsEmitNothing) {
  auto tok = Bytes();
  std::vector<int> ids = {1, 'h' + 3, 0, 'i' + 3, 2};
  const std::vector<std::string> deltas = Stream(*tok, ids);
  EXPECT_EQ(deltas, (std::vector<std::string>{"", "h", "", "i", "", ""}));
}

TEST(IncrementalDecoderTest, RandomStreamsMatchFullDecode) {
  auto tok = Bytes();
  std::mt19937 rng(7);
  // Mostly valid multi-byte text with specials and stray bytes mixed in.
  const std::vector<std::string> atoms = {
      "a",        " ",    "\xC3\xA9", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80",
      "\xF0\x9F", "\x80", "\xFF",     "\xED\xA0\x80", "\xE0\x80"};
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<int> ids;
    const int n = std::uniform_int_distribution<int>(0, 40)(rng);
    for (int i = 0; i < n; ++i) {
      const int pick = std::uniform_int_distribution<int>(0, atoms.size() + 1)(rng);
      if (pick >= static_cast<int>(atoms.size())) {
        ids.push_back(pick - static_cast<int>(atoms.size()) + 1);  // BOS or EOS
      } else {
        for (int id : tok->Encode(atoms[pick], false)) ids.push_back(id);
      }
    }
    Stream(*tok, ids);  // asserts inside
  }
}

// Records the length of every Decode call.
class CountingTokenizer : public Tokenizer {
 public:
  explicit CountingTokenizer(const Tokenizer* inner) : inner_(inner) {}
  std::string_view kind() const override { return inner_->kind(); }
  std::vector<int> Encode(std::string_view text, bool add_bos) const override {
    return inner_->Encode(text, add_bos);
  }
  std::string Decode(const std::vector<int>& ids) const override {
    longest_ = std::max(longest_, ids.size());
    return inner_->Decode(ids);
  }
  int vocab_size() const override { return inner_->vocab_size(); }
  int bos_id() const override { return inner_->bos_id(); }
  int eos_id() const override { return inner_->eos_id(); }
  size_t longest() const { return longest_; }

 private:
  const Tokenizer* inner_;
  mutable size_t longest_ = 0;
};

TEST(IncrementalDecoderTest, DecodesAShortWindowNotTheWholeSequence) {
  auto bytes = Bytes();
  CountingTokenizer tok(bytes.get());
  IncrementalDecoder dec(&tok);
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "\xE4\xB8\xAD";
  for (int id : tok.Encode(text, true)) dec.Add(id);
  EXPECT_EQ(dec.text(), text);
  EXPECT_LE(tok.longest(), 8u);
  // Ids that decode to nothing keep the window open (it must reach back to some text).
  CountingTokenizer tok2(bytes.get());
  IncrementalDecoder dec2(&tok2);
  for (int i = 0; i < 50; ++i) dec2.Add(0);
  EXPECT_EQ(dec2.Add('x' + 3), "x");
  for (int i = 0; i < 50; ++i) dec2.Add('y' + 3);
  EXPECT_EQ(dec2.text(), "x" + std::string(50, 'y'));
}

// SentencePiece-like: id 10 is "▁w" (a space plus "w"), whose space is dropped when no
// text precedes it; id 0 is a control id that decodes to nothing.
class LeadingSpaceTokenizer : public Tokenizer {
 public:
  std::string_view kind() const override { return "fake"; }
  std::vector<int> Encode(std::string_view, bool) const override { return {}; }
  std::string Decode(const std::vector<int>& ids) const override {
    std::string out;
    for (int id : ids) {
      if (id == 10) out += out.empty() ? "w" : " w";
      if (id == 11) out += "x";
    }
    return out;
  }
  int vocab_size() const override { return 12; }
  int bos_id() const override { return 0; }
  int eos_id() const override { return 1; }
};

TEST(IncrementalDecoderTest, LeadingSpaceRuleAppliesOnlyAtTheStart) {
  LeadingSpaceTokenizer tok;
  // Long runs of silent ids between words: a window that dropped the words before them
  // would lose the spaces.
  std::vector<int> ids = {0, 10};
  for (int word = 0; word < 5; ++word) {
    for (int i = 0; i < 10; ++i) ids.push_back(0);
    ids.push_back(10);
    ids.push_back(11);
  }
  Stream(tok, ids);
  EXPECT_EQ(SanitizeUtf8(tok.Decode(ids)), "w wx wx wx wx wx");
}

// Not prefix-stable: ids 5 and 6 read "a" and "b" but merge into "X" when adjacent.
class LigatureTokenizer : public Tokenizer {
 public:
  std::string_view kind() const override { return "fake"; }
  std::vector<int> Encode(std::string_view, bool) const override { return {}; }
  std::string Decode(const std::vector<int>& ids) const override {
    std::string out;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] == 5 && i + 1 < ids.size() && ids[i + 1] == 6) {
        out += "X";
        ++i;
      } else {
        out += ids[i] == 5 ? "a" : ids[i] == 6 ? "b" : "c";
      }
    }
    return out;
  }
  int vocab_size() const override { return 8; }
  int bos_id() const override { return 0; }
  int eos_id() const override { return 1; }
};

TEST(IncrementalDecoderTest, NonPrefixStableDecodeContinuesFromTheWholeSequence) {
  LigatureTokenizer tok;
  IncrementalDecoder dec(&tok);
  EXPECT_EQ(dec.Add(5), "a");
  // "ab" became "X": emitted text cannot be taken back, and nothing is emitted twice.
  EXPECT_EQ(dec.Add(6), "");
  std::string rest;
  for (int i = 0; i < 10; ++i) rest += dec.Add(7);
  rest += dec.Finish();
  EXPECT_EQ(rest, std::string(10, 'c'));
  EXPECT_EQ(dec.text(), "a" + std::string(10, 'c'));
}

}  // namespace
}  // namespace cleave
