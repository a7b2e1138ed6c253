// UTF-8 validation with the replacement rule SentencePiece's decoder uses: each byte that
// does not start a well-formed character (Unicode Table 3-7: no overlongs, no surrogates,
// nothing above U+10FFFF) becomes one U+FFFD, and decoding resumes at the next byte.
#ifndef CLEAVE_ENGINE_TOKENIZER_UTF8_H_
#define CLEAVE_ENGINE_TOKENIZER_UTF8_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace cleave {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// Length in bytes of the well-formed character at the front of `bytes`; 0 when `bytes`
// is a proper prefix of a well-formed character (more bytes could complete it); -1 when
// the first byte can start no well-formed character given the bytes that follow.
int Utf8CharLength(std::string_view bytes);

// Appends the valid UTF-8 for the front of `bytes` to `out` and returns how many bytes it
// consumed. Without `at_end` it stops before a trailing incomplete character (at most 3
// bytes), which a later call completes; with `at_end` everything is consumed.
size_t AppendUtf8(std::string_view bytes, bool at_end, std::string* out);

// The whole of `bytes` as valid UTF-8.
std::string SanitizeUtf8(std::string_view bytes);

}  // namespace cleave

#endif  // CLEAVE_ENGINE_TOKENIZER_UTF8_H_
