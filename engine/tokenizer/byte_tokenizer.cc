#include "engine/tokenizer/byte_tokenizer.h"

#include <algorithm>
#include <climits>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "engine/util/status.h"
#include "nlohmann/json.hpp"

namespace cleave {
namespace {

using Json = nlohmann::json;

// Debian's abseil has its own string_view, so std::string_view goes through std::string.
absl::Status KeyError(std::string_view key, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("key '", std::string(key), "': ", std::string(what)));
}

// A non-negative int; floats such as 3.0 are refused (a hand-edited file gone wrong).
absl::StatusOr<int> NonNegativeInt(const Json& j, std::string_view key) {
  auto it = j.find(std::string(key));
  if (it == j.end()) return KeyError(key, "missing");
  if (!it->is_number_integer()) {
    return KeyError(key, absl::StrCat("want an integer, got ", it->type_name()));
  }
  if (it->is_number_unsigned() ? it->get<uint64_t>() > INT_MAX
                               : (it->get<int64_t>() < 0 || it->get<int64_t>() > INT_MAX)) {
    return KeyError(key, absl::StrCat("want an integer in [0, ", INT_MAX, "], got ", it->dump()));
  }
  return it->get<int>();
}

absl::Status Validate(const ByteTokenizerOptions& o) {
  if (o.offset < 0 || o.offset > INT_MAX - 256) {
    return KeyError("offset", absl::StrCat("out of range: ", o.offset));
  }
  const std::pair<std::string_view, int> specials[] = {
      {"pad_id", o.pad_id}, {"bos_id", o.bos_id}, {"eos_id", o.eos_id}};
  for (const auto& [key, id] : specials) {
    if (id < 0) return KeyError(key, absl::StrCat("negative id ", id));
    if (id >= o.offset && id < o.offset + 256) {
      return KeyError(key, absl::StrCat("id ", id, " collides with the byte ids [", o.offset, ", ",
                                        o.offset + 256, ")"));
    }
    if (id >= o.vocab_size) {
      return KeyError(key, absl::StrCat("id ", id, " outside the vocabulary of ", o.vocab_size));
    }
  }
  if (o.pad_id == o.eos_id || o.bos_id == o.eos_id) {
    return KeyError("eos_id", absl::StrCat("id ", o.eos_id,
                                           " is also another special id; generation would stop "
                                           "on it or never see it"));
  }
  if (o.offset + 256 > o.vocab_size) {
    return KeyError("vocab_size", absl::StrCat("the byte ids [", o.offset, ", ", o.offset + 256,
                                               ") do not fit a vocabulary of ", o.vocab_size));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ByteTokenizerOptions> ParseByteTokenizerJson(std::string_view json_text,
                                                            int model_vocab_size) {
  const Json j = Json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("not valid JSON");
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("want a JSON object, got ", j.type_name()));
  }
  for (const auto& [key, value] : j.items()) {
    if (key != "type" && key != "offset" && key != "pad_id" && key != "bos_id" && key != "eos_id" &&
        key != "vocab_size") {
      return KeyError(key, "unknown key (known: type, offset, pad_id, bos_id, eos_id, vocab_size)");
    }
  }
  auto type = j.find("type");
  if (type == j.end()) return KeyError("type", "missing");
  if (!type->is_string() || type->get<std::string>() != "byte") {
    return KeyError("type", absl::StrCat("want \"byte\", got ", type->dump()));
  }
  ByteTokenizerOptions o;
  ASSIGN_OR_RETURN(o.offset, NonNegativeInt(j, "offset"));
  ASSIGN_OR_RETURN(o.pad_id, NonNegativeInt(j, "pad_id"));
  ASSIGN_OR_RETURN(o.bos_id, NonNegativeInt(j, "bos_id"));
  ASSIGN_OR_RETURN(o.eos_id, NonNegativeInt(j, "eos_id"));
  if (o.offset > INT_MAX - 256) return KeyError("offset", "too large");
  if (model_vocab_size > 0) {
    o.vocab_size = model_vocab_size;
  } else if (j.contains("vocab_size")) {
    ASSIGN_OR_RETURN(o.vocab_size, NonNegativeInt(j, "vocab_size"));
  } else {
    o.vocab_size = std::max({o.offset + 256, o.pad_id + 1, o.bos_id + 1, o.eos_id + 1});
  }
  RETURN_IF_ERROR(Validate(o));
  return o;
}

absl::StatusOr<std::unique_ptr<ByteTokenizer>> ByteTokenizer::Create(
    const ByteTokenizerOptions& options) {
  RETURN_IF_ERROR(Validate(options));
  return std::unique_ptr<ByteTokenizer>(new ByteTokenizer(options));
}

std::vector<int> ByteTokenizer::Encode(std::string_view text, bool add_bos) const {
  std::vector<int> ids;
  ids.reserve(text.size() + 1);
  if (add_bos) ids.push_back(options_.bos_id);
  for (char c : text) ids.push_back(static_cast<uint8_t>(c) + options_.offset);
  return ids;
}

std::string ByteTokenizer::Decode(const std::vector<int>& ids) const {
  std::string out;
  out.reserve(ids.size());
  for (int id : ids) {
    // Specials, ids between the specials and the bytes, and ids past the bytes (a model
    // vocabulary padded beyond 259) all decode to nothing.
    const int64_t b = int64_t{id} - options_.offset;
    if (b >= 0 && b < 256) out.push_back(static_cast<char>(b));
  }
  return out;
}

}  // namespace cleave
