// The byte tokenizer of cleave's random test checkpoints: byte b is id b + offset, which
// is where Llama/Mixtral SentencePiece models keep their byte-fallback pieces
// <0x00>..<0xFF> (ids 3..258), so byte-level text round-trips through either.
#ifndef CLEAVE_ENGINE_TOKENIZER_BYTE_TOKENIZER_H_
#define CLEAVE_ENGINE_TOKENIZER_BYTE_TOKENIZER_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/tokenizer/tokenizer.h"

namespace cleave {

inline constexpr std::string_view kByteTokenizerJsonFile = "cleave_tokenizer.json";

struct ByteTokenizerOptions {
  int offset = 3;
  int pad_id = 0;
  int bos_id = 1;
  int eos_id = 2;
  int vocab_size = 3 + 256;  // the model's vocabulary; ids past the bytes decode to nothing
};

// Parses cleave_tokenizer.json:
//   {"type": "byte", "offset": 3, "pad_id": 0, "bos_id": 1, "eos_id": 2}
// plus an optional "vocab_size". `model_vocab_size` (> 0: the model's config.json
// vocab_size) wins over the file's; with neither, the vocabulary ends after the last byte
// or special id. Every key is checked: integers, special ids distinct and outside the
// byte range, every id inside the vocabulary, no unknown keys (a typo would otherwise be
// silently ignored). Errors name the key.
absl::StatusOr<ByteTokenizerOptions> ParseByteTokenizerJson(std::string_view json_text,
                                                            int model_vocab_size = 0);

class ByteTokenizer : public Tokenizer {
 public:
  // Validates `options` the way ParseByteTokenizerJson does.
  static absl::StatusOr<std::unique_ptr<ByteTokenizer>> Create(const ByteTokenizerOptions& options);

  std::string_view kind() const override { return "byte"; }
  std::vector<int> Encode(std::string_view text, bool add_bos) const override;
  std::string Decode(const std::vector<int>& ids) const override;
  int vocab_size() const override { return options_.vocab_size; }
  int bos_id() const override { return options_.bos_id; }
  int eos_id() const override { return options_.eos_id; }
  int pad_id() const { return options_.pad_id; }
  int offset() const { return options_.offset; }

 private:
  explicit ByteTokenizer(const ByteTokenizerOptions& options) : options_(options) {}
  ByteTokenizerOptions options_;
};

}  // namespace cleave

#endif  // CLEAVE_ENGINE_TOKENIZER_BYTE_TOKENIZER_H_
