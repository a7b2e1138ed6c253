#include "engine/tokenizer/utf8.h"

#include <cstdint>

namespace cleave {

int Utf8CharLength(std::string_view bytes) {
  if (bytes.empty()) return 0;
  const uint8_t b0 = static_cast<uint8_t>(bytes[0]);
  if (b0 < 0x80) return 1;
  // The second byte's range narrows for E0/ED/F0/F4: that is what rules out overlong
  // forms, surrogates and code points above U+10FFFF.
  uint8_t lo = 0x80, hi = 0xBF;
  int n;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return -1;  // a continuation byte, C0/C1 (always overlong) or F5..FF
  }
  for (int i = 1; i < n; ++i) {
    if (static_cast<size_t>(i) >= bytes.size()) return 0;
    const uint8_t b = static_cast<uint8_t>(bytes[i]);
    if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return -1;
  }
  return n;
}

size_t AppendUtf8(std::string_view bytes, bool at_end, std::string* out) {
  size_t i = 0;
  while (i < bytes.size()) {
    const int len = Utf8CharLength(bytes.substr(i));
    if (len > 0) {
      out->append(bytes.data() + i, len);
      i += len;
    } else if (len < 0 || at_end) {
      out->append(kReplacementChar);
      ++i;
    } else {
      break;  // incomplete: wait for the bytes that may complete it
    }
  }
  return i;
}

std::string SanitizeUtf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  AppendUtf8(bytes, /*at_end=*/true, &out);
  return out;
}

}  // namespace cleave
