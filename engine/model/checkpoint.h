// A Hugging Face Mixtral checkpoint directory: config.json plus model.safetensors, or
// shards listed by model.safetensors.index.json. Open validates that every tensor the
// forward pass reads is present with the shape config.json implies.
#ifndef CLEAVE_ENGINE_MODEL_CHECKPOINT_H_
#define CLEAVE_ENGINE_MODEL_CHECKPOINT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/model/config.h"
#include "engine/model/safetensors.h"

namespace cleave {

inline constexpr char kConfigFile[] = "config.json";
inline constexpr char kSingleWeightsFile[] = "model.safetensors";
inline constexpr char kWeightsIndexFile[] = "model.safetensors.index.json";
inline constexpr char kByteTokenizerFile[] = "cleave_tokenizer.json";

// The Hugging Face tensor names of MixtralForCausalLM, spelled once for the loader,
// the validator and the random-checkpoint writer.
namespace mixtral_names {
std::string EmbedTokens();                      // [vocab, hidden]
std::string FinalNorm();                        // [hidden]
std::string LmHead();                           // [vocab, hidden], absent when tie_word_embeddings
std::string InputLayernorm(int layer);          // [hidden]
std::string PostAttentionLayernorm(int layer);  // [hidden]
std::string QProj(int layer);                   // [heads*head_dim, hidden]
std::string KProj(int layer);                   // [kv_heads*head_dim, hidden]
std::string VProj(int layer);                   // [kv_heads*head_dim, hidden]
std::string OProj(int layer);                   // [hidden, heads*head_dim]
std::string RouterGate(int layer);              // [experts, hidden]
std::string ExpertW1(int layer, int expert);    // gate proj [ffn, hidden]
std::string ExpertW2(int layer, int expert);    // down proj [hidden, ffn]
std::string ExpertW3(int layer, int expert);    // up proj [ffn, hidden]
}  // namespace mixtral_names

// How a tensor is used, which decides how the random writer initialises it.
enum class TensorRole { kEmbedding, kNorm, kLinear };

struct RequiredTensor {
  std::string name;
  std::vector<int64_t> shape;
  TensorRole role;
};

// Every tensor the Mixtral forward pass reads for `config`, in checkpoint order
// (embeddings, layer by layer, final norm, LM head).
std::vector<RequiredTensor> MixtralTensors(const ModelConfig& config);

class Checkpoint {
 public:
  // Reads dir/config.json and maps the weights. Errors name the file and, for weight
  // problems, the first missing or mismatched tensor.
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const std::string& dir);
  ~Checkpoint();

  const ModelConfig& config() const { return config_; }
  const std::string& dir() const { return dir_; }
  // The safetensors files backing this checkpoint (one unless sharded).
  int num_files() const { return static_cast<int>(files_.size()); }

  // NOT_FOUND naming the tensor when absent. The view points into a mapping this
  // checkpoint owns.
  absl::StatusOr<TensorView> Get(std::string_view name) const;
  // Every tensor name the checkpoint holds, sorted.
  std::vector<std::string> TensorNames() const;
  // Copies tensor `name` into `dst` as fp32, converting from BF16/F16/F32 (or integer)
  // storage. `dst.size()` must equal the tensor's element count.
  absl::Status ReadF32(std::string_view name, std::span<float> dst) const;

 private:
  Checkpoint() = default;
  absl::Status OpenWeights();
  absl::Status Validate() const;

  std::string dir_;
  ModelConfig config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  // Tensor name to the file holding it.
  std::map<std::string, const SafetensorsFile*, std::less<>> index_;
};

}  // namespace cleave

#endif  // CLEAVE_ENGINE_MODEL_CHECKPOINT_H_
