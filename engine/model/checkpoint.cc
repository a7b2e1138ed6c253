#include "engine/model/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "engine/util/status.h"
#include "nlohmann/json.hpp"

namespace cleave {

namespace mixtral_names {
namespace {
std::string Layer(int layer, std::string_view rest) {
  return absl::StrCat("model.layers.", layer, ".", std::string(rest));
}
std::string Expert(int layer, int expert, std::string_view w) {
  return absl::StrCat("model.layers.", layer, ".block_sparse_moe.experts.", expert, ".",
                      std::string(w), ".weight");
}
}  // namespace

std::string EmbedTokens() { return "model.embed_tokens.weight"; }
std::string FinalNorm() { return "model.norm.weight"; }
std::string LmHead() { return "lm_head.weight"; }
std::string InputLayernorm(int layer) { return Layer(layer, "input_layernorm.weight"); }
std::string PostAttentionLayernorm(int layer) {
  return Layer(layer, "post_attention_layernorm.weight");
}
std::string QProj(int layer) { return Layer(layer, "self_attn.q_proj.weight"); }
std::string KProj(int layer) { return Layer(layer, "self_attn.k_proj.weight"); }
std::string VProj(int layer) { return Layer(layer, "self_attn.v_proj.weight"); }
std::string OProj(int layer) { return Layer(layer, "self_attn.o_proj.weight"); }
std::string RouterGate(int layer) { return Layer(layer, "block_sparse_moe.gate.weight"); }
std::string ExpertW1(int layer, int expert) { return Expert(layer, expert, "w1"); }
std::string ExpertW2(int layer, int expert) { return Expert(layer, expert, "w2"); }
std::string ExpertW3(int layer, int expert) { return Expert(layer, expert, "w3"); }
}  // namespace mixtral_names

std::vector<RequiredTensor> MixtralTensors(const ModelConfig& c) {
  namespace n = mixtral_names;
  const int64_t hidden = c.hidden_size, ffn = c.intermediate_size, vocab = c.vocab_size;
  const int64_t q_dim = int64_t{c.num_attention_heads} * c.head_dim;
  const int64_t kv_dim = int64_t{c.num_key_value_heads} * c.head_dim;
  std::vector<RequiredTensor> t;
  t.push_back({n::EmbedTokens(), {vocab, hidden}, TensorRole::kEmbedding});
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    t.push_back({n::InputLayernorm(l), {hidden}, TensorRole::kNorm});
    t.push_back({n::QProj(l), {q_dim, hidden}, TensorRole::kLinear});
    t.push_back({n::KProj(l), {kv_dim, hidden}, TensorRole::kLinear});
    t.push_back({n::VProj(l), {kv_dim, hidden}, TensorRole::kLinear});
    t.push_back({n::OProj(l), {hidden, q_dim}, TensorRole::kLinear});
    t.push_back({n::PostAttentionLayernorm(l), {hidden}, TensorRole::kNorm});
    t.push_back({n::RouterGate(l), {c.num_local_experts, hidden}, TensorRole::kLinear});
    for (int e = 0; e < c.num_local_experts; ++e) {
      t.push_back({n::ExpertW1(l, e), {ffn, hidden}, TensorRole::kLinear});
      t.push_back({n::ExpertW2(l, e), {hidden, ffn}, TensorRole::kLinear});
      t.push_back({n::ExpertW3(l, e), {ffn, hidden}, TensorRole::kLinear});
    }
  }
  t.push_back({n::FinalNorm(), {hidden}, TensorRole::kNorm});
  if (!c.tie_word_embeddings) t.push_back({n::LmHead(), {vocab, hidden}, TensorRole::kLinear});
  return t;
}

namespace {

std::string Join(const std::string& dir, std::string_view name) {
  return (std::filesystem::path(dir) / name).string();
}

// Shard names come from a file we do not control; keep them inside the directory.
absl::Status CheckShardName(const std::string& index_path, const std::string& tensor,
                            const std::string& shard) {
  if (shard.empty() || shard.find('/') != std::string::npos ||
      shard.find('\\') != std::string::npos || shard.find("..") != std::string::npos ||
      shard.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(index_path, ": tensor '", tensor, "' maps to shard file '", shard,
                     "', which is not a plain file name in the checkpoint directory"));
  }
  return absl::OkStatus();
}

bool IsFloat(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

}  // namespace

Checkpoint::~Checkpoint() = default;

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& dir) {
  std::unique_ptr<Checkpoint> ckpt(new Checkpoint());
  ckpt->dir_ = dir;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat(dir, ": not a checkpoint directory"));
  }
  ASSIGN_OR_RETURN(ckpt->config_, LoadModelConfig(Join(dir, kConfigFile)));
  RETURN_IF_ERROR(ckpt->OpenWeights());
  RETURN_IF_ERROR(ckpt->Validate());
  return ckpt;
}

absl::Status Checkpoint::OpenWeights() {
  const std::string single = Join(dir_, kSingleWeightsFile);
  const std::string index_path = Join(dir_, kWeightsIndexFile);
  std::error_code ec;
  if (std::filesystem::exists(single, ec)) {
    ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(single));
    for (const std::string& name : file->names()) index_[name] = file.get();
    files_.push_back(std::move(file));
    return absl::OkStatus();
  }
  if (!std::filesystem::exists(index_path, ec)) {
    return absl::NotFoundError(absl::StrCat(dir_, ": neither ", kSingleWeightsFile, " nor ",
                                            kWeightsIndexFile, " exists"));
  }
  std::ifstream in(index_path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(index_path, ": cannot open"));
  std::ostringstream text;
  text << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": malformed JSON: ", e.what()));
  }
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": want a JSON object"));
  }
  if (auto m = j.find("metadata"); m != j.end() && !m->is_object() && !m->is_null()) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": 'metadata' is not an object"));
  }
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(index_path, ": 'weight_map' is missing or not an object"));
  }
  std::map<std::string, SafetensorsFile*> shards;
  for (const auto& [tensor, shard_json] : wm->items()) {
    if (!shard_json.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path, ": weight_map['", tensor, "'] is not a string"));
    }
    const std::string shard = shard_json.get<std::string>();
    RETURN_IF_ERROR(CheckShardName(index_path, tensor, shard));
    auto it = shards.find(shard);
    if (it == shards.end()) {
      ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(Join(dir_, shard)));
      it = shards.emplace(shard, file.get()).first;
      files_.push_back(std::move(file));
    }
    if (!it->second->Contains(tensor)) {
      return absl::InvalidArgumentError(absl::StrCat(index_path, ": tensor '", tensor,
                                                     "' is mapped to ", shard,
                                                     ", which does not contain it"));
    }
    index_[tensor] = it->second;
  }
  return absl::OkStatus();
}

absl::Status Checkpoint::Validate() const {
  for (const RequiredTensor& req : MixtralTensors(config_)) {
    auto it = index_.find(req.name);
    if (it == index_.end()) {
      return absl::InvalidArgumentError(absl::StrCat(dir_, ": missing tensor '", req.name, "'"));
    }
    const TensorView* v = it->second->Find(req.name);
    if (!IsFloat(v->dtype)) {
      return absl::InvalidArgumentError(
          absl::StrCat(it->second->path(), ": tensor '", req.name, "' has dtype ",
                       std::string(DTypeName(v->dtype)), ", want F32, F16 or BF16"));
    }
    if (v->shape != req.shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          it->second->path(), ": tensor '", req.name, "' has shape ", ShapeString(v->shape),
          ", but config.json implies ", ShapeString(req.shape)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<TensorView> Checkpoint::Get(std::string_view name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    return absl::NotFoundError(absl::StrCat(dir_, ": no tensor '", std::string(name), "'"));
  }
  return *it->second->Find(name);
}

std::vector<std::string> Checkpoint::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(index_.size());
  for (const auto& [name, file] : index_) names.push_back(name);
  return names;
}

absl::Status Checkpoint::ReadF32(std::string_view name, std::span<float> dst) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    return absl::NotFoundError(absl::StrCat(dir_, ": no tensor '", std::string(name), "'"));
  }
  const TensorView& v = *it->second->Find(name);
  const size_t numel = static_cast<size_t>(v.numel());
  if (dst.size() != numel) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", std::string(name), "' ",
                                                   ShapeString(v.shape), " has ", numel,
                                                   " elements, destination has ", dst.size()));
  }
  const size_t esize = DTypeSize(v.dtype);
  if (reinterpret_cast<uintptr_t>(v.data) % esize == 0) {
    ConvertToF32(v.dtype, v.data, numel, dst.data());
    return absl::OkStatus();
  }
  // The file's offsets left this tensor misaligned for its element type: convert through
  // an aligned bounce buffer rather than dereference unaligned pointers.
  constexpr size_t kChunk = 1 << 14;
  std::vector<uint64_t> bounce(kChunk * esize / sizeof(uint64_t) + 1);
  const auto* src = static_cast<const unsigned char*>(v.data);
  for (size_t done = 0; done < numel; done += kChunk) {
    const size_t n = std::min(kChunk, numel - done);
    std::memcpy(bounce.data(), src + done * esize, n * esize);
    ConvertToF32(v.dtype, bounce.data(), n, dst.data() + done);
  }
  return absl::OkStatus();
}

}  // namespace cleave
