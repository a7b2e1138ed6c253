// One interface for the tokenizers a checkpoint may carry.
#ifndef CLEAVE_ENGINE_TOKENIZER_TOKENIZER_H_
#define CLEAVE_ENGINE_TOKENIZER_TOKENIZER_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace cleave {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::string_view kind() const = 0;  // "byte", "sentencepiece"
  // Text to ids; with `add_bos` the BOS id comes first.
  virtual std::vector<int> Encode(std::string_view text, bool add_bos) const = 0;
  // Ids to bytes. Special ids (BOS/EOS/PAD) produce nothing. The result may end in
  // an incomplete UTF-8 sequence when ids split a character; IncrementalDecoder handles that.
  virtual std::string Decode(const std::vector<int>& ids) const = 0;
  virtual int vocab_size() const = 0;
  virtual int bos_id() const = 0;
  virtual int eos_id() const = 0;
};

// Picks the tokenizer a checkpoint directory carries: tokenizer.model (SentencePiece)
// first, then cleave_tokenizer.json ({"type": "byte", ...}). Clear error if neither.
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& model_dir);

// Turns a growing list of ids into UTF-8-safe text deltas: a delta never ends in the
// middle of a multi-byte character, and the concatenated deltas equal Decode(all ids)
// (with invalid bytes replaced by U+FFFD once the sequence is known to be invalid).
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer* tokenizer) : tokenizer_(tokenizer) {}
  // Appends `id`; returns the text that became final with it (possibly empty).
  std::string Add(int id);
  // Flushes whatever is held back (at the end of a sequence).
  std::string Finish();
  const std::string& text() const { return text_; }  // everything emitted so far

 private:
  const Tokenizer* tokenizer_;
  std::vector<int> ids_;
  size_t emitted_bytes_ = 0;  // bytes of Decode(ids_) already emitted
  std::string text_;
};

}  // namespace cleave

#endif  // CLEAVE_ENGINE_TOKENIZER_TOKENIZER_H_
