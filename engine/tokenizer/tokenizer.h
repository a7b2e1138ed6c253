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
// (with invalid bytes replaced by U+FFFD once the sequence is known to be invalid; see
// engine/tokenizer/utf8.h for the exact replacement rule).
//
// Each Add decodes only a short window of recent ids, so a call costs O(window), not
// O(sequence). The window's text is cut where AppendUtf8 stops (the "settled" text);
// everything settled is emitted, and the unsettled rest is at most an unfinished
// character. The window's front is dropped only while the window is fully settled and
// the remaining ids still decode to some text. That is enough for the byte and
// SentencePiece tokenizers, whose ids depend on earlier ids only through whether any
// text precedes them (the leading-space rule) and through an unfinished character. A
// decoder whose settled text is not prefix-stable is caught and handled by decoding the
// whole sequence; text already emitted is never taken back.
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer* tokenizer) : tokenizer_(tokenizer) {}
  // Appends `id`; returns the text that became final with it (possibly empty).
  std::string Add(int id);
  // Ends the sequence: returns what was held back, a trailing unfinished character
  // becoming U+FFFD. Call it once, after the last Add.
  std::string Finish();
  const std::string& text() const { return text_; }  // everything emitted so far

 private:
  const Tokenizer* tokenizer_;
  std::vector<int> ids_;     // the whole sequence, for the rare full-decode fallback
  size_t window_start_ = 0;  // ids_[window_start_..] is the decode window
  std::string window_text_;  // the window's settled text, all of it emitted
  std::string text_;
};

}  // namespace cleave

#endif  // CLEAVE_ENGINE_TOKENIZER_TOKENIZER_H_
