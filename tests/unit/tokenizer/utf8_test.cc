#include "engine/tokenizer/utf8.h"

#include <string>

#include "gtest/gtest.h"

namespace cleave {
namespace {

const std::string kFffd(kReplacementChar);

TEST(Utf8CharLengthTest, WellFormedCharacters) {
  EXPECT_EQ(Utf8CharLength("a"), 1);
  EXPECT_EQ(Utf8CharLength("\xC3\xA9"), 2);          // é
  EXPECT_EQ(Utf8CharLength("\xE4\xB8\xAD"), 3);      // 中
  EXPECT_EQ(Utf8CharLength("\xF0\x9F\x98\x80"), 4);  // 😀
  EXPECT_EQ(Utf8CharLength("\xEF\xBF\xBD"), 3);      // U+FFFD itself is a character
  EXPECT_EQ(Utf8CharLength("\xF4\x8F\xBF\xBF"), 4);  // U+10FFFF
}

TEST(Utf8CharLengthTest, IncompletePrefixesWait) {
  EXPECT_EQ(Utf8CharLength(""), 0);
  EXPECT_EQ(Utf8CharLength("\xC3"), 0);
  EXPECT_EQ(Utf8CharLength("\xE4\xB8"), 0);
  EXPECT_EQ(Utf8CharLength("\xF0\x9F\x98"), 0);
}

TEST(Utf8CharLengthTest, IllFormedIsKnownAsSoonAsPossible) {
  EXPECT_EQ(Utf8CharLength("\x80"), -1);      // lone continuation
  EXPECT_EQ(Utf8CharLength("\xC0\x80"), -1);  // overlong NUL
  EXPECT_EQ(Utf8CharLength("\xC1"), -1);      // can only be overlong
  EXPECT_EQ(Utf8CharLength("\xE0\x80"), -1);  // overlong 3-byte, known at the second byte
  EXPECT_EQ(Utf8CharLength("\xED\xA0"), -1);  // surrogate
  EXPECT_EQ(Utf8CharLength("\xF0\x80"), -1);  // overlong 4-byte
  EXPECT_EQ(Utf8CharLength("\xF4\x90"), -1);  // above U+10FFFF
  EXPECT_EQ(Utf8CharLength("\xF5"), -1);
  EXPECT_EQ(Utf8CharLength("\xFF"), -1);
  EXPECT_EQ(Utf8CharLength("\xE4(a"), -1);  // a non-continuation byte ends it
}

TEST(AppendUtf8Test, HoldsBackOnlyAnIncompleteTail) {
  std::string out;
  const std::string bytes = "ab\xE4\xB8";
  EXPECT_EQ(AppendUtf8(bytes, /*at_end=*/false, &out), 2u);
  EXPECT_EQ(out, "ab");
  out.clear();
  EXPECT_EQ(AppendUtf8(bytes, /*at_end=*/true, &out), 4u);
  // Each byte of the unfinished character is replaced on its own, as SentencePiece does.
  EXPECT_EQ(out, "ab" + kFffd + kFffd);
}

TEST(AppendUtf8Test, InvalidBytesAreReplacedOneEach) {
  EXPECT_EQ(SanitizeUtf8("x\xFFy"), "x" + kFffd + "y");
  EXPECT_EQ(SanitizeUtf8("\xE4\xB8("), kFffd + kFffd + "(");
  EXPECT_EQ(SanitizeUtf8("\xED\xA0\x80"), kFffd + kFffd + kFffd);
  EXPECT_EQ(SanitizeUtf8("\xC3\xA9\xE4\xB8\xAD"), "\xC3\xA9\xE4\xB8\xAD");
  std::string out;
  // An invalid byte does not wait for more input.
  EXPECT_EQ(AppendUtf8("a\x80", /*at_end=*/false, &out), 2u);
  EXPECT_EQ(out, "a" + kFffd);
}

}  // namespace
}  // namespace cleave
