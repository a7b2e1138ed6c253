#include "engine/tokenizer/sentencepiece_tokenizer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/tokenizer/sp_processor.h"
#include "engine/tokenizer/utf8.h"
#include "engine/util/log.h"
#include "engine/util/status.h"

namespace cleave {
namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // U+2581 "▁"

// Protocol-buffer wire format, just enough to walk a message's fields.
class WireReader {
 public:
  explicit WireReader(std::string_view data) : data_(data) {}
  bool done() const { return pos_ >= data_.size(); }

  // Reads one field: its number, its wire type and its value (`varint` for types 0, 1
  // and 5, `bytes` for type 2).
  absl::Status Next(uint32_t* field, int* wire_type, uint64_t* varint, std::string_view* bytes) {
    uint64_t key;
    if (!ReadVarint(&key)) return Corrupt("truncated field key");
    *field = static_cast<uint32_t>(key >> 3);
    *wire_type = static_cast<int>(key & 7);
    switch (*wire_type) {
      case 0:
        if (!ReadVarint(varint)) return Corrupt("truncated varint");
        return absl::OkStatus();
      case 1:
      case 5: {
        const size_t n = *wire_type == 1 ? 8 : 4;
        if (data_.size() - pos_ < n) return Corrupt("truncated fixed-width field");
        *varint = 0;
        for (size_t i = 0; i < n; ++i) {
          *varint |= uint64_t{static_cast<uint8_t>(data_[pos_ + i])} << (8 * i);
        }
        pos_ += n;
        return absl::OkStatus();
      }
      case 2: {
        uint64_t len;
        if (!ReadVarint(&len) || len > data_.size() - pos_) {
          return Corrupt("length-delimited field runs past the end");
        }
        *bytes = data_.substr(pos_, len);
        pos_ += len;
        return absl::OkStatus();
      }
      default:
        return Corrupt(absl::StrCat("unsupported wire type ", *wire_type));
    }
  }

 private:
  static absl::Status Corrupt(std::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a SentencePiece model: ", std::string(what)));
  }

  bool ReadVarint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64 && pos_ < data_.size(); shift += 7) {
      const uint8_t b = static_cast<uint8_t>(data_[pos_++]);
      *v |= uint64_t{b & 0x7Fu} << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }

  std::string_view data_;
  size_t pos_ = 0;
};

// Calls `fn(field, wire_type, varint, bytes)` for every field of `message`.
template <typename Fn>
absl::Status ForEachField(std::string_view message, Fn fn) {
  WireReader r(message);
  while (!r.done()) {
    uint32_t field;
    int wire_type;
    uint64_t varint = 0;
    std::string_view bytes;
    RETURN_IF_ERROR(r.Next(&field, &wire_type, &varint, &bytes));
    fn(field, wire_type, varint, bytes);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SentencePieceDecodeSpec> ParseSentencePieceDecodeSpec(std::string_view model_proto) {
  SentencePieceDecodeSpec spec;
  absl::Status inner = absl::OkStatus();
  // ModelProto: trainer_spec = 2, normalizer_spec = 3, denormalizer_spec = 5. Proto2
  // merges repeated occurrences of a message field, which walking them in order does too.
  RETURN_IF_ERROR(ForEachField(
      model_proto, [&](uint32_t field, int wire_type, uint64_t, std::string_view bytes) {
        if (wire_type != 2 || !inner.ok()) return;
        if (field == 2) {
          inner = ForEachField(bytes, [&](uint32_t f, int wt, uint64_t, std::string_view b) {
            if (f == 44 && wt == 2) spec.unk_surface = std::string(b);
          });
        } else if (field == 3) {
          inner = ForEachField(bytes, [&](uint32_t f, int wt, uint64_t v, std::string_view) {
            if (f == 3 && wt == 0) spec.add_dummy_prefix = v != 0;
            if (f == 4 && wt == 0) spec.remove_extra_whitespaces = v != 0;
          });
        } else if (field == 5) {
          inner = ForEachField(bytes, [&](uint32_t f, int wt, uint64_t, std::string_view b) {
            if (f == 2 && wt == 2 && !b.empty()) spec.has_denormalizer = true;
          });
        }
      }));
  RETURN_IF_ERROR(inner);
  return spec;
}

SentencePieceTokenizer::SentencePieceTokenizer(std::unique_ptr<spm::Processor> processor,
                                               const SentencePieceDecodeSpec& spec)
    : processor_(std::move(processor)),
      // The library strips the leading "▁" under either normalizer option, and with
      // remove_extra_whitespaces it keeps stripping until some text has appeared.
      strip_leading_space_(spec.add_dummy_prefix || spec.remove_extra_whitespaces),
      keep_stripping_(spec.remove_extra_whitespaces),
      bos_id_(processor_->bos_id()),
      eos_id_(processor_->eos_id()),
      pad_id_(processor_->pad_id()) {
  const int n = processor_->piece_size();
  pieces_.reserve(n);
  for (int id = 0; id < n; ++id) {
    Piece p{PieceKind::kText, false, ""};
    const std::string piece = processor_->IdToPiece(id);
    if (processor_->IsControl(id)) {
      p.kind = PieceKind::kSilent;
    } else if (processor_->IsUnknown(id)) {
      p.kind = PieceKind::kUnknown;
      p.text = spec.unk_surface;
    } else if (processor_->IsByte(id)) {
      p.kind = PieceKind::kByte;
      // "<0xNN>": the library only marks well-formed byte pieces as bytes.
      p.text.push_back(static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16)));
    } else {
      p.leading_space = piece.starts_with(kSpaceSymbol);
      for (size_t i = 0; i < piece.size();) {
        if (piece.compare(i, kSpaceSymbol.size(), kSpaceSymbol) == 0) {
          p.text.push_back(' ');
          i += kSpaceSymbol.size();
        } else {
          p.text.push_back(piece[i++]);
        }
      }
    }
    pieces_.push_back(std::move(p));
  }
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::Create(
    std::unique_ptr<spm::Processor> processor) {
  ASSIGN_OR_RETURN(const SentencePieceDecodeSpec spec,
                   ParseSentencePieceDecodeSpec(processor->SerializedModelProto()));
  if (spec.has_denormalizer) {
    // The library rewrites decoded text through the denormalizer's charsmap; piece-wise
    // decoding cannot follow it, and silently different text is worse than a refusal.
    return absl::UnimplementedError(
        "the SentencePiece model has a denormalizer, which cleave does not support");
  }
  if (processor->piece_size() <= 0) {
    return absl::InvalidArgumentError("the SentencePiece model has no pieces");
  }
  return std::unique_ptr<SentencePieceTokenizer>(
      new SentencePieceTokenizer(std::move(processor), spec));
}

absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::Load(
    const std::string& path) {
  absl::StatusOr<std::unique_ptr<spm::Processor>> processor = spm::Processor::Load(path);
  absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> tokenizer =
      processor.ok() ? Create(std::move(*processor)) : processor.status();
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(),
                        absl::StrCat(path, ": ", tokenizer.status().message()));
  }
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<SentencePieceTokenizer>> SentencePieceTokenizer::FromSerializedProto(
    std::string_view model_proto) {
  ASSIGN_OR_RETURN(std::unique_ptr<spm::Processor> processor,
                   spm::Processor::LoadSerialized(model_proto));
  return Create(std::move(processor));
}

std::vector<int> SentencePieceTokenizer::Encode(std::string_view text, bool add_bos) const {
  std::vector<int> ids;
  if (const absl::Status status = processor_->Encode(text, &ids); !status.ok()) {
    // Only a model that failed to load makes the library refuse, and Create rules that
    // out; say so loudly rather than crash a serving process.
    LOG_ERROR("{}", status.ToString());
    ids.clear();
  }
  if (add_bos && bos_id_ >= 0) ids.insert(ids.begin(), bos_id_);
  return ids;
}

std::string SentencePieceTokenizer::Decode(const std::vector<int>& ids) const {
  std::string out;
  // The library's rule: a leading "▁" is dropped while no text has been produced and,
  // unless remove_extra_whitespaces, no "▁" has been dropped yet. Byte pieces do not
  // take part in the check but do produce text.
  bool at_start = true;
  bool dropped_space = false;
  // The library decodes each run of byte pieces on its own: any other piece, even a
  // silent one, ends the run, and a character the run left unfinished is invalid. Only
  // the last run stays raw, since later ids may still complete it.
  size_t run_start = std::string::npos;
  for (int id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) continue;
    const Piece& p = pieces_[id];
    if (p.kind == PieceKind::kByte) {
      if (run_start == std::string::npos) run_start = out.size();
      out += p.text;
      continue;
    }
    if (run_start != std::string::npos) {
      const std::string run = SanitizeUtf8(std::string_view(out).substr(run_start));
      out.replace(run_start, std::string::npos, run);
      run_start = std::string::npos;
    }
    if (dropped_space || !out.empty()) at_start = false;
    dropped_space = false;
    if (at_start && strip_leading_space_ && p.leading_space) {
      out.append(p.text, 1);
      dropped_space = !keep_stripping_;
    } else {
      out += p.text;
    }
  }
  return out;
}

std::string SentencePieceTokenizer::LibraryDecode(const std::vector<int>& ids) const {
  return processor_->DecodeIds(ids);
}

}  // namespace cleave
