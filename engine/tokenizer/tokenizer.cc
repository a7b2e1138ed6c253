#include "engine/tokenizer/tokenizer.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "engine/tokenizer/byte_tokenizer.h"
#include "engine/tokenizer/sentencepiece_tokenizer.h"
#include "engine/tokenizer/utf8.h"
#include "engine/util/status.h"
#include "nlohmann/json.hpp"

namespace cleave {
namespace {

namespace fs = std::filesystem;

// Ids in the decode window after an Add, the newest included; more while the window ends
// in an unfinished character or its older ids decode to no text (see IncrementalDecoder).
constexpr size_t kWindowContext = 4;

absl::StatusOr<std::string> ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path.string(), ": cannot open"));
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path.string(), ": read error"));
  return s.str();
}

// The model's vocabulary from config.json, or 0 when the directory has none (a tokenizer
// directory need not be a full checkpoint).
absl::StatusOr<int> ModelVocabSize(const fs::path& dir) {
  const fs::path path = dir / "config.json";
  if (!fs::exists(path)) return 0;
  ASSIGN_OR_RETURN(const std::string text, ReadFile(path));
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": not a JSON object"));
  }
  auto it = j.find("vocab_size");
  if (it == j.end()) return 0;
  if (!it->is_number_integer() || it->get<int64_t>() <= 0 || it->get<int64_t>() > INT32_MAX) {
    return absl::InvalidArgumentError(absl::StrCat(
        path.string(), ": key 'vocab_size': want a positive integer, got ", it->dump()));
  }
  return it->get<int>();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& model_dir) {
  const fs::path dir(model_dir);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat(model_dir, ": not a directory"));
  }
  const fs::path sp_path = dir / kSentencePieceModelFile;
  if (fs::exists(sp_path, ec)) {
    ASSIGN_OR_RETURN(auto tokenizer, SentencePieceTokenizer::Load(sp_path.string()));
    return std::unique_ptr<Tokenizer>(std::move(tokenizer));
  }
  const fs::path byte_path = dir / kByteTokenizerJsonFile;
  if (fs::exists(byte_path, ec)) {
    ASSIGN_OR_RETURN(const std::string text, ReadFile(byte_path));
    ASSIGN_OR_RETURN(const int vocab_size, ModelVocabSize(dir));
    auto options = ParseByteTokenizerJson(text, vocab_size);
    if (!options.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          byte_path.string(), ": ", options.status().message(),
          vocab_size > 0 ? absl::StrCat(" (vocab_size ", vocab_size, " from config.json)") : ""));
    }
    ASSIGN_OR_RETURN(auto tokenizer, ByteTokenizer::Create(*options));
    return std::unique_ptr<Tokenizer>(std::move(tokenizer));
  }
  return absl::NotFoundError(absl::StrCat(
      model_dir, ": no tokenizer: expected ", std::string(kSentencePieceModelFile),
      " (SentencePiece) or ", std::string(kByteTokenizerJsonFile), " (byte tokenizer)"));
}

std::string IncrementalDecoder::Add(int id) {
  ids_.push_back(id);
  std::string raw = tokenizer_->Decode(std::vector<int>(ids_.begin() + window_start_, ids_.end()));
  std::string settled;
  size_t consumed = AppendUtf8(raw, /*at_end=*/false, &settled);
  std::string delta;
  if (settled.starts_with(window_text_)) {
    delta = settled.substr(window_text_.size());
    window_text_ = std::move(settled);
  } else {
    // Not prefix-stable over the window: continue from the whole sequence's text.
    raw = tokenizer_->Decode(ids_);
    settled.clear();
    consumed = AppendUtf8(raw, /*at_end=*/false, &settled);
    if (settled.size() > text_.size() && settled.starts_with(text_)) {
      delta = settled.substr(text_.size());
    }
    window_start_ = 0;
    window_text_ = std::move(settled);
  }
  text_ += delta;
  // Shrink the window. A fully settled window carries no unfinished character into the
  // next id, and text left in it keeps the next id from looking like the first.
  while (consumed == raw.size() && ids_.size() - window_start_ > kWindowContext) {
    std::string shorter =
        tokenizer_->Decode(std::vector<int>(ids_.begin() + window_start_ + 1, ids_.end()));
    if (shorter.empty()) break;
    std::string shorter_settled;
    if (AppendUtf8(shorter, /*at_end=*/false, &shorter_settled) != shorter.size()) break;
    ++window_start_;
    window_text_ = std::move(shorter_settled);
    raw = std::move(shorter);
    consumed = raw.size();
  }
  return delta;
}

std::string IncrementalDecoder::Finish() {
  const std::string final_text =
      SanitizeUtf8(tokenizer_->Decode(std::vector<int>(ids_.begin() + window_start_, ids_.end())));
  std::string delta;
  if (final_text.starts_with(window_text_)) delta = final_text.substr(window_text_.size());
  window_text_ = final_text;
  text_ += delta;
  return delta;
}

}  // namespace cleave
