// SentencePiece models trained inside the test (libsentencepiece_train), checked against
// the library's own decoder.
#include "engine/tokenizer/sentencepiece_tokenizer.h"

#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/tokenizer/byte_tokenizer.h"
#include "engine/tokenizer/sp_processor.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/utf8.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/tokenizer/sp_trainer.h"
#include "tests/unit/tokenizer/temp_dir.h"

namespace cleave {
namespace {

using ::testing::HasSubstr;

constexpr int kVocab = 400;
// Llama's tokenizer.model settings, scaled down.
constexpr char kLlamaArgs[] =
    "--vocab_size=400 --model_type=bpe --byte_fallback=true --character_coverage=0.9995 "
    "--unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --normalization_rule_name=identity "
    "--remove_extra_whitespaces=false --add_dummy_prefix=true --split_digits=true "
    "--allow_whitespace_only_pieces=true --num_threads=1 --minloglevel=2";

// A few thousand lines over a small word list; the CJK words are frequent enough to get
// their own pieces, while emoji never appear and must go through byte fallback.
std::vector<std::string> Corpus() {
  const std::vector<std::string> words = {"the",
                                          "quick",
                                          "brown",
                                          "fox",
                                          "jumps",
                                          "over",
                                          "lazy",
                                          "dog",
                                          "and",
                                          "then",
                                          "runs",
                                          "away",
                                          "from",
                                          "caf\xC3\xA9",
                                          "na\xC3\xAFve",
                                          "\xC3\xBC"
                                          "ber",
                                          "model",
                                          "token",
                                          "expert",
                                          "router",
                                          "layer",
                                          "attention",
                                          "cache",
                                          "decode",
                                          "\xE4\xB8\xAD\xE6\x96\x87",
                                          "\xE6\x97\xA5\xE6\x9C\xAC",
                                          "hello",
                                          "world",
                                          "12",
                                          "345"};
  std::mt19937 rng(1);
  std::vector<std::string> lines;
  for (int i = 0; i < 3000; ++i) {
    std::string line;
    const int n = std::uniform_int_distribution<int>(3, 12)(rng);
    for (int w = 0; w < n; ++w) {
      if (w > 0) line += (rng() % 10 == 0) ? "  " : " ";
      line += words[rng() % words.size()];
    }
    lines.push_back(line + (rng() % 3 == 0 ? "." : ""));
  }
  return lines;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class SentencePieceTest : public ::testing::Test {
 protected:
  // Three models, trained once: Llama-like, the trainer's defaults for whitespace
  // (nmt_nfkc, remove_extra_whitespaces), and no dummy prefix.
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    const std::vector<std::string> corpus = Corpus();
    const std::string common =
        "--vocab_size=400 --model_type=bpe --byte_fallback=true --unk_id=0 --bos_id=1 "
        "--eos_id=2 --pad_id=-1 --num_threads=1 --minloglevel=2 ";
    for (const auto& [name, args] : std::vector<std::pair<std::string, std::string>>{
             {"llama", kLlamaArgs},
             {"nfkc", common + "--normalization_rule_name=nmt_nfkc"},
             {"noprefix", common + "--normalization_rule_name=identity "
                                   "--remove_extra_whitespaces=false --add_dummy_prefix=false"}}) {
      const std::string error = testing::TrainSentencePiece(dir_->path(), name, corpus, args);
      ASSERT_EQ(error, "") << name;
    }
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::unique_ptr<SentencePieceTokenizer> Load(const std::string& name) {
    auto tok = SentencePieceTokenizer::Load(dir_->path() + "/" + name + ".model");
    EXPECT_TRUE(tok.ok()) << tok.status();
    return tok.ok() ? std::move(*tok) : nullptr;
  }

  static testing::TempDir* dir_;
};

testing::TempDir* SentencePieceTest::dir_ = nullptr;

const std::vector<std::string>& SampleTexts() {
  static const std::vector<std::string> texts = {
      "hello world",
      "the quick brown fox jumps over the lazy dog.",
      "caf\xC3\xA9 na\xC3\xAFve \xC3\xBC"
      "ber",
      "\xE4\xB8\xAD\xE6\x96\x87 and \xE6\x97\xA5\xE6\x9C\xAC",
      "emoji \xF0\x9F\x98\x80\xF0\x9F\x9A\x80 in text",  // 😀🚀: not in the corpus
      "\xF0\x9F\x98\x80 first",
      "  two leading spaces and  a double one",
      "digits 9876543210 split",
      "unseen CJK \xE9\xBE\x8D and Greek \xCE\xB1\xCE\xB2",  // 龍, αβ
      "line one\nline two\ttab",
      "",
  };
  return texts;
}

TEST_F(SentencePieceTest, BasicsAndSpecialIds) {
  auto tok = Load("llama");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->kind(), "sentencepiece");
  EXPECT_EQ(tok->vocab_size(), kVocab);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  const std::vector<int> ids = tok->Encode("hello world", true);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 1);
  EXPECT_EQ(tok->Encode("hello world", false), std::vector<int>(ids.begin() + 1, ids.end()));
  EXPECT_EQ(tok->Decode({1, 2}), "");
  EXPECT_EQ(tok->Decode({1, 2, kVocab, -1, kVocab + 1000}), "");  // past the vocabulary
  EXPECT_EQ(tok->Decode({0}), " \xE2\x81\x87 ");                  // <unk>'s surface
}

TEST_F(SentencePieceTest, ByteFallbackIdsMatchTheByteTokenizer) {
  auto tok = Load("llama");
  ASSERT_NE(tok, nullptr);
  auto bytes = ByteTokenizer::Create(ByteTokenizerOptions{});
  ASSERT_TRUE(bytes.ok());
  // 😀 is not a piece: it becomes <0xF0><0x9F><0x98><0x80>, ids 3 + byte, as in Llama.
  const std::string emoji = "\xF0\x9F\x98\x80";
  const std::vector<int> ids = tok->Encode("a" + emoji, false);
  const std::vector<int> byte_ids = (*bytes)->Encode(emoji, false);
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(std::vector<int>(ids.end() - 4, ids.end()), byte_ids);
  for (int b = 0; b < 256; ++b) {
    EXPECT_EQ(tok->Decode({b + 3}), std::string(1, static_cast<char>(b)));
  }
}

TEST_F(SentencePieceTest, EncodeDecodeRoundTrip) {
  auto tok = Load("llama");
  ASSERT_NE(tok, nullptr);
  for (const std::string& text : SampleTexts()) {
    const std::vector<int> ids = tok->Encode(text, true);
    EXPECT_EQ(tok->Decode(ids), text);
    EXPECT_EQ(tok->LibraryDecode(ids), text);
  }
}

TEST_F(SentencePieceTest, LeadingSpaceDroppedOnlyAtTheStart) {
  auto tok = Load("llama");
  ASSERT_NE(tok, nullptr);
  const std::vector<int> the = tok->Encode("the", false);
  ASSERT_EQ(the.size(), 1u) << "\"▁the\" should be one piece";
  const int id = the[0];
  EXPECT_EQ(tok->Decode({id}), "the");
  EXPECT_EQ(tok->Decode({1, id}), "the");  // BOS produces no text: still the start
  EXPECT_EQ(tok->Decode({id, id}), "the the");
  EXPECT_EQ(tok->Decode({3 + 'x', id}), "x the");  // a byte piece is text too
  IncrementalDecoder dec(tok.get());
  EXPECT_EQ(dec.Add(1), "");
  EXPECT_EQ(dec.Add(id), "the");
  for (int i = 0; i < 20; ++i) EXPECT_EQ(dec.Add(id), " the");
}

// Piece-wise decoding agrees with the library on random id sequences, for each of the
// whitespace rules; sequences often start with silent, whitespace or byte pieces, which
// is where the rules differ.
TEST_F(SentencePieceTest, DecodeMatchesLibraryOnRandomIds) {
  for (const std::string name : {"llama", "nfkc", "noprefix"}) {
    auto tok = Load(name);
    ASSERT_NE(tok, nullptr);
    std::vector<int> interesting = {0, 1, 2, 3 + ' ', 3 + 0xE4, 3 + 0xB8, 3 + 0x80};
    for (const char* s : {" ", "  ", " the", "the", " \xE4\xB8\xAD\xE6\x96\x87"}) {
      for (int id : tok->Encode(s, false)) interesting.push_back(id);
    }
    std::mt19937 rng(42);
    for (int trial = 0; trial < 3000; ++trial) {
      std::vector<int> ids;
      const int n = std::uniform_int_distribution<int>(0, 10)(rng);
      for (int i = 0; i < n; ++i) {
        ids.push_back(rng() % 2 ? interesting[rng() % interesting.size()] : rng() % kVocab);
      }
      ASSERT_EQ(SanitizeUtf8(tok->Decode(ids)), tok->LibraryDecode(ids))
          << name << " ids: " << ::testing::PrintToString(ids);
    }
  }
}

TEST_F(SentencePieceTest, IncrementalDecodingOfByteFallbackText) {
  auto tok = Load("llama");
  ASSERT_NE(tok, nullptr);
  for (const std::string& text : SampleTexts()) {
    const std::vector<int> ids = tok->Encode(text, true);
    IncrementalDecoder dec(tok.get());
    std::string joined;
    for (int id : ids) {
      const std::string delta = dec.Add(id);
      EXPECT_EQ(SanitizeUtf8(delta), delta) << "partial UTF-8 in a delta of: " << text;
      joined += delta;
    }
    joined += dec.Finish();
    EXPECT_EQ(joined, text);
  }
  // A silent piece inside a split character ends the byte run, as in the library: the
  // bytes on either side are invalid, however they would have joined.
  IncrementalDecoder dec(tok.get());
  EXPECT_EQ(dec.Add(3 + 0xE6), "");
  EXPECT_EQ(dec.Add(1), kReplacementChar);
  EXPECT_EQ(dec.Add(3 + 0x80), kReplacementChar);
  EXPECT_EQ(dec.Add(3 + 0xB6), kReplacementChar);
  EXPECT_EQ(dec.Finish(), "");
  EXPECT_EQ(tok->LibraryDecode({3 + 0xE6, 1, 3 + 0x80, 3 + 0xB6}), dec.text());
  // Random ids, as a sampler might produce: broken byte sequences included.
  std::mt19937 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<int> ids;
    IncrementalDecoder dec(tok.get());
    std::string joined;
    const int n = std::uniform_int_distribution<int>(1, 60)(rng);
    for (int i = 0; i < n; ++i) {
      // Half byte pieces so that characters are split and broken often.
      ids.push_back(rng() % 2 ? 3 + static_cast<int>(rng() % 256) : rng() % kVocab);
      const std::string delta = dec.Add(ids.back());
      ASSERT_EQ(SanitizeUtf8(delta), delta);
      joined += delta;
    }
    joined += dec.Finish();
    ASSERT_EQ(joined, tok->LibraryDecode(ids)) << ::testing::PrintToString(ids);
  }
}

TEST_F(SentencePieceTest, DecodeSpecFromTheModelProto) {
  struct Want {
    std::string name;
    bool add_dummy_prefix, remove_extra_whitespaces;
  };
  for (const Want& w : std::vector<Want>{
           {"llama", true, false}, {"nfkc", true, true}, {"noprefix", false, false}}) {
    auto spec = ParseSentencePieceDecodeSpec(ReadAll(dir_->path() + "/" + w.name + ".model"));
    ASSERT_TRUE(spec.ok()) << spec.status();
    EXPECT_EQ(spec->add_dummy_prefix, w.add_dummy_prefix) << w.name;
    EXPECT_EQ(spec->remove_extra_whitespaces, w.remove_extra_whitespaces) << w.name;
    EXPECT_FALSE(spec->has_denormalizer);
    EXPECT_EQ(spec->unk_surface, " \xE2\x81\x87 ");
  }
  // A field whose length runs past the end.
  EXPECT_FALSE(ParseSentencePieceDecodeSpec("\x1a\x10\x18\x01").ok());
  // Hand-built: normalizer_spec {add_dummy_prefix: 0}, trainer_spec {unk_surface: "?"},
  // denormalizer_spec {precompiled_charsmap: "x"}.
  const std::string proto =
      std::string("\x1a\x02\x18\x00", 4) + "\x12\x04\xe2\x02\x01?" + "\x2a\x03\x12\x01x";
  auto spec = ParseSentencePieceDecodeSpec(proto);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_FALSE(spec->add_dummy_prefix);
  EXPECT_TRUE(spec->remove_extra_whitespaces);  // proto2 default when absent
  EXPECT_EQ(spec->unk_surface, "?");
  EXPECT_TRUE(spec->has_denormalizer);
}

TEST_F(SentencePieceTest, LoadTokenizerPrefersTokenizerModel) {
  testing::TempDir dir;
  dir.Write("tokenizer.model", ReadAll(dir_->path() + "/llama.model"));
  dir.Write("cleave_tokenizer.json",
            R"({"type": "byte", "offset": 3, "pad_id": 0, "bos_id": 1, "eos_id": 2})");
  auto tok = LoadTokenizer(dir.path());
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->kind(), "sentencepiece");
  EXPECT_EQ((*tok)->vocab_size(), kVocab);
  EXPECT_EQ((*tok)->Decode((*tok)->Encode("hello world", true)), "hello world");
  // This binary links libsentencepiece for training, but the tokenizer has no
  // SentencePiece code of its own: it went through the module.
  const absl::StatusOr<std::string> module = spm::ModulePath();
  ASSERT_TRUE(module.ok()) << module.status();
  EXPECT_THAT(*module, ::testing::EndsWith(spm::kModuleFileName));

  dir.Write("tokenizer.model", "not a model");
  auto bad = LoadTokenizer(dir.path());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("tokenizer.model"));
}

}  // namespace
}  // namespace cleave
