// No abseil header may be included here (see sp_processor.h).
#include "engine/tokenizer/sp_processor.h"

#include <sentencepiece_processor.h>

namespace cleave::spm {

Processor::Processor(std::unique_ptr<sentencepiece::SentencePieceProcessor> p) : p_(std::move(p)) {}

Processor::~Processor() = default;

std::unique_ptr<Processor> Processor::Load(const std::string& path, std::string* error) {
  auto p = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = p->Load(path);
  if (!status.ok()) {
    *error = status.ToString();
    return nullptr;
  }
  return std::unique_ptr<Processor>(new Processor(std::move(p)));
}

std::unique_ptr<Processor> Processor::LoadSerialized(std::string_view model_proto,
                                                     std::string* error) {
  auto p = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = p->LoadFromSerializedProto(model_proto);
  if (!status.ok()) {
    *error = status.ToString();
    return nullptr;
  }
  return std::unique_ptr<Processor>(new Processor(std::move(p)));
}

bool Processor::Encode(std::string_view text, std::vector<int>* ids, std::string* error) const {
  const auto status = p_->Encode(text, ids);
  if (!status.ok()) {
    *error = status.ToString();
    return false;
  }
  return true;
}

std::string Processor::DecodeIds(const std::vector<int>& ids) const {
  std::string text;
  if (!p_->Decode(ids, &text).ok()) return "";
  return text;
}

int Processor::piece_size() const { return p_->GetPieceSize(); }
int Processor::bos_id() const { return p_->bos_id(); }
int Processor::eos_id() const { return p_->eos_id(); }
int Processor::pad_id() const { return p_->pad_id(); }
int Processor::unk_id() const { return p_->unk_id(); }
std::string Processor::IdToPiece(int id) const { return p_->IdToPiece(id); }
bool Processor::IsControl(int id) const { return p_->IsControl(id); }
bool Processor::IsUnknown(int id) const { return p_->IsUnknown(id); }
bool Processor::IsByte(int id) const { return p_->IsByte(id); }
std::string Processor::SerializedModelProto() const { return p_->serialized_model_proto(); }

}  // namespace cleave::spm
