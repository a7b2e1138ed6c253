// A thin facade over sentencepiece::SentencePieceProcessor that keeps the library's
// header out of every other file. Debian's sentencepiece_processor.h declares
// `absl::string_view` as std::string_view while Debian's abseil (built with
// ABSL_OPTION_USE_STD_STRING_VIEW=0) has its own absl::string_view class, so no file may
// include both; this header and sp_processor.cc use no abseil at all.
#ifndef CLEAVE_ENGINE_TOKENIZER_SP_PROCESSOR_H_
#define CLEAVE_ENGINE_TOKENIZER_SP_PROCESSOR_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}  // namespace sentencepiece

namespace cleave::spm {

class Processor {
 public:
  ~Processor();
  // nullptr, with the library's message in *error, when the file is missing or not a model.
  static std::unique_ptr<Processor> Load(const std::string& path, std::string* error);
  static std::unique_ptr<Processor> LoadSerialized(std::string_view model_proto,
                                                   std::string* error);

  bool Encode(std::string_view text, std::vector<int>* ids, std::string* error) const;
  // The library's own decode (invalid byte pieces become U+FFFD, out-of-range ids fail
  // with an empty result); cleave decodes piece by piece and checks itself against this.
  std::string DecodeIds(const std::vector<int>& ids) const;

  int piece_size() const;
  int bos_id() const;  // -1 when the model has none
  int eos_id() const;
  int pad_id() const;
  int unk_id() const;
  std::string IdToPiece(int id) const;
  bool IsControl(int id) const;
  bool IsUnknown(int id) const;
  bool IsByte(int id) const;
  std::string SerializedModelProto() const;

 private:
  explicit Processor(std::unique_ptr<sentencepiece::SentencePieceProcessor> p);
  std::unique_ptr<sentencepiece::SentencePieceProcessor> p_;
};

}  // namespace cleave::spm

#endif  // CLEAVE_ENGINE_TOKENIZER_SP_PROCESSOR_H_
