// SentencePiece tokenizers (tokenizer.model, as Llama and Mixtral ship them).
//
// Encoding is the library's. Decoding is cleave's own, piece by piece, so that a trailing
// run of byte-fallback pieces <0xNN> comes back as raw bytes even when it ends inside a
// character split across ids (the library would already have turned the unfinished part
// into U+FFFD, which an incremental decoder could not take back). Everything else follows
// the library's decoder: control pieces are silent, the unknown piece reads as the model's
// unk_surface, "▁" is a space, the first piece's leading "▁" is dropped only at the start
// of the text (the add_dummy_prefix rule), and any non-byte piece ends a byte run, so a
// character left unfinished before it is invalid. SanitizeUtf8(Decode(ids)) equals the
// library's DecodeIds(ids); the unit tests check that on trained models.
#ifndef CLEAVE_ENGINE_TOKENIZER_SENTENCEPIECE_TOKENIZER_H_
#define CLEAVE_ENGINE_TOKENIZER_SENTENCEPIECE_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/tokenizer/tokenizer.h"

namespace cleave {

namespace spm {
class Processor;
}  // namespace spm

inline constexpr std::string_view kSentencePieceModelFile = "tokenizer.model";

// The few ModelProto fields that change how pieces decode (sentencepiece_model.proto).
struct SentencePieceDecodeSpec {
  bool add_dummy_prefix = true;                // NormalizerSpec.add_dummy_prefix (field 3)
  bool remove_extra_whitespaces = true;        // NormalizerSpec.remove_extra_whitespaces (field 4)
  bool has_denormalizer = false;               // denormalizer_spec with a precompiled charsmap
  std::string unk_surface = " \xE2\x81\x87 ";  // TrainerSpec.unk_surface (field 44)
};

// Reads those fields from a serialized ModelProto (wire format walked by hand: Debian
// ships no sentencepiece_model.pb.h).
absl::StatusOr<SentencePieceDecodeSpec> ParseSentencePieceDecodeSpec(std::string_view model_proto);

class SentencePieceTokenizer : public Tokenizer {
 public:
  ~SentencePieceTokenizer() override;
  static absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> Load(const std::string& path);
  static absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> FromSerializedProto(
      std::string_view model_proto);

  std::string_view kind() const override { return "sentencepiece"; }
  std::vector<int> Encode(std::string_view text, bool add_bos) const override;
  // Ids outside [0, vocab_size) decode to nothing (the model's vocabulary may be padded
  // past the tokenizer's).
  std::string Decode(const std::vector<int>& ids) const override;
  int vocab_size() const override { return static_cast<int>(pieces_.size()); }
  int bos_id() const override { return bos_id_; }  // -1 when the model has none
  int eos_id() const override { return eos_id_; }
  int pad_id() const { return pad_id_; }

  // The library's own decode, for tests and diagnostics.
  std::string LibraryDecode(const std::vector<int>& ids) const;

 private:
  enum class PieceKind : uint8_t { kText, kSilent, kUnknown, kByte };
  struct Piece {
    PieceKind kind;
    bool leading_space;  // kText whose piece begins with "▁" (text begins with ' ')
    std::string text;    // "▁" already turned into spaces; the byte for kByte
  };

  SentencePieceTokenizer(std::unique_ptr<spm::Processor> processor,
                         const SentencePieceDecodeSpec& spec);
  static absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> Create(
      std::unique_ptr<spm::Processor> processor);

  std::unique_ptr<spm::Processor> processor_;
  std::vector<Piece> pieces_;  // by id
  bool strip_leading_space_;   // the library strips at the start of the text at all
  bool keep_stripping_;        // remove_extra_whitespaces: strip until text appears
  int bos_id_, eos_id_, pad_id_;
};

}  // namespace cleave

#endif  // CLEAVE_ENGINE_TOKENIZER_SENTENCEPIECE_TOKENIZER_H_
