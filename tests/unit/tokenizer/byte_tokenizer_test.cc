#include "engine/tokenizer/byte_tokenizer.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/tokenizer/temp_dir.h"

namespace cleave {
namespace {

using ::testing::HasSubstr;

constexpr std::string_view kMixtralJson =
    R"({"type": "byte", "offset": 3, "pad_id": 0, "bos_id": 1, "eos_id": 2})";

std::unique_ptr<ByteTokenizer> MakeTokenizer(int vocab_size = 0) {
  auto options = ParseByteTokenizerJson(kMixtralJson, vocab_size);
  EXPECT_TRUE(options.ok()) << options.status();
  auto tokenizer = ByteTokenizer::Create(*options);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return std::move(*tokenizer);
}

TEST(ByteTokenizerTest, MixtralLayout) {
  auto options = ParseByteTokenizerJson(kMixtralJson);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->offset, 3);
  EXPECT_EQ(options->pad_id, 0);
  EXPECT_EQ(options->vocab_size, 259);  // no config: up to the last byte id
  auto tok = MakeTokenizer(32000);
  EXPECT_EQ(tok->kind(), "byte");
  EXPECT_EQ(tok->vocab_size(), 32000);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  // Byte b is id b + 3, Llama's <0xNN> byte-fallback ids.
  EXPECT_EQ(tok->Encode("A", false), (std::vector<int>{0x41 + 3}));
  EXPECT_EQ(tok->Encode("A", true), (std::vector<int>{1, 0x41 + 3}));
  EXPECT_EQ(tok->Encode(std::string("\x00\xFF", 2), false), (std::vector<int>{3, 258}));
}

TEST(ByteTokenizerTest, RoundTripsMultiByteUtf8) {
  auto tok = MakeTokenizer();
  const std::string text =
      "h\xC3\xA9llo \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80!";  // héllo 中文 😀!
  const std::vector<int> ids = tok->Encode(text, true);
  ASSERT_EQ(ids.size(), text.size() + 1);  // one id per byte: characters split across ids
  EXPECT_EQ(tok->Decode(ids), text);
  // Every byte value survives, not just valid UTF-8.
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  EXPECT_EQ(tok->Decode(tok->Encode(all, false)), all);
}

TEST(ByteTokenizerTest, SpecialAndOutOfRangeIdsDecodeToNothing) {
  auto tok = MakeTokenizer(300);
  EXPECT_EQ(tok->Decode({0, 1, 2}), "");
  // 259..299 are model-vocabulary padding; negatives and huge ids are garbage.
  EXPECT_EQ(tok->Decode({1, 'h' + 3, 259, 299, -5, 1 << 30, 'i' + 3, 2}), "hi");
}

TEST(ByteTokenizerTest, RejectsBadJson) {
  struct Case {
    std::string json;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"{", "not valid JSON"},
      {"[]", "want a JSON object"},
      {R"({"offset": 3, "pad_id": 0, "bos_id": 1, "eos_id": 2})", "'type': missing"},
      {R"({"type": "bpe", "offset": 3, "pad_id": 0, "bos_id": 1, "eos_id": 2})", "'type'"},
      {R"({"type": "byte", "pad_id": 0, "bos_id": 1, "eos_id": 2})", "'offset': missing"},
      {R"({"type": "byte", "offset": 3.0, "pad_id": 0, "bos_id": 1, "eos_id": 2})",
       "'offset': want an integer"},
      {R"({"type": "byte", "offset": "3", "pad_id": 0, "bos_id": 1, "eos_id": 2})",
       "'offset': want an integer"},
      {R"({"type": "byte", "offset": -1, "pad_id": 0, "bos_id": 1, "eos_id": 2})", "'offset'"},
      {R"({"type": "byte", "offset": 3, "pad_id": 0, "bos_id": 1})", "'eos_id': missing"},
      {R"({"type": "byte", "offset": 3, "pad_id": 0, "bos_id": 1, "eos_id": 65})",
       "collides with the byte ids"},
      {R"({"type": "byte", "offset": 3, "pad_id": 0, "bos_id": 2, "eos_id": 2})", "'eos_id'"},
      {R"({"type": "byte", "offset": 3, "pad_id": 0, "bos_id": 1, "eos_id": 2, "eos": 2})",
       "'eos': unknown key"},
      {R"({"type": "byte", "offset": 3, "pad_id": 0, "bos_id": 1, "eos_id": 2,
           "vocab_size": 100})",
       "do not fit a vocabulary of 100"},
  };
  for (const Case& c : cases) {
    auto options = ParseByteTokenizerJson(c.json);
    ASSERT_FALSE(options.ok()) << c.json;
    EXPECT_THAT(std::string(options.status().message()), HasSubstr(c.error)) << c.json;
  }
  // A model vocabulary too small for the byte ids, or for a special id.
  EXPECT_FALSE(ParseByteTokenizerJson(kMixtralJson, 200).ok());
  EXPECT_FALSE(ParseByteTokenizerJson(R"({"type": "byte", "offset": 0, "pad_id": 300, "bos_id": 301,
                                 "eos_id": 302})",
                                      302)
                   .ok());
  // Create validates too: options built in code get the same checks.
  ByteTokenizerOptions bad;
  bad.eos_id = 10;
  EXPECT_FALSE(ByteTokenizer::Create(bad).ok());
}

TEST(LoadTokenizerTest, ByteTokenizerTakesVocabFromConfig) {
  testing::TempDir dir;
  dir.Write("cleave_tokenizer.json", std::string(kMixtralJson));
  dir.Write("config.json", R"({"vocab_size": 512, "hidden_size": 8})");
  auto tok = LoadTokenizer(dir.path());
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->kind(), "byte");
  EXPECT_EQ((*tok)->vocab_size(), 512);
  EXPECT_EQ((*tok)->Decode((*tok)->Encode("ok", true)), "ok");
}

TEST(LoadTokenizerTest, ErrorsNameTheFile) {
  testing::TempDir dir;
  auto missing = LoadTokenizer(dir.path());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("tokenizer.model"));
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("cleave_tokenizer.json"));

  EXPECT_FALSE(LoadTokenizer(dir.path() + "/nonexistent").ok());

  dir.Write("cleave_tokenizer.json", R"({"type": "byte"})");
  auto bad = LoadTokenizer(dir.path());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("cleave_tokenizer.json"));
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("'offset'"));

  // A config.json whose vocabulary cannot hold the byte ids.
  dir.Write("cleave_tokenizer.json", std::string(kMixtralJson));
  dir.Write("config.json", R"({"vocab_size": 100})");
  auto small = LoadTokenizer(dir.path());
  ASSERT_FALSE(small.ok());
  EXPECT_THAT(std::string(small.status().message()), HasSubstr("config.json"));
}

}  // namespace
}  // namespace cleave
