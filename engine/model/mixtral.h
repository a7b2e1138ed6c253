// The Mixtral forward pass over the backend seam: embedding, then per layer
// RMSNorm → GQA attention with RoPE over the paged KV cache → RMSNorm → top-k MoE
// of SwiGLU experts, then final norm and LM head.
#ifndef CLEAVE_ENGINE_MODEL_MIXTRAL_H_
#define CLEAVE_ENGINE_MODEL_MIXTRAL_H_

#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/checkpoint.h"
#include "engine/model/config.h"
#include "engine/runtime/backend.h"
#include "engine/runtime/device_buffer.h"
#include "engine/runtime/kv_storage.h"

namespace cleave {

// One sequence's share of a step: its next `tokens`, which sit at positions
// [start_pos, start_pos + tokens.size()). Its KV for positions < start_pos is already
// in the blocks of `block_table`, which must also cover the new tokens.
struct ForwardSeq {
  std::span<const int> tokens;
  int start_pos = 0;
  std::span<const int> block_table;
  bool want_logits = true;  // the last new token's logits
  bool all_logits = false;  // every new token's logits (reference checks)
};

struct ForwardBatch {
  std::vector<ForwardSeq> seqs;
};

class MixtralModel {
 public:
  // Loads and validates every weight from `checkpoint` onto `backend` (fp32).
  static absl::StatusOr<std::unique_ptr<MixtralModel>> Load(const Checkpoint& checkpoint,
                                                            Backend* backend);
  ~MixtralModel();

  const ModelConfig& config() const { return config_; }
  Backend* backend() const { return backend_; }
  // The KV storage shape this model needs for `num_blocks` blocks of `block_size`.
  KvStorageShape KvShape(int num_blocks, int block_size) const;

  // Runs one step. `logits` receives, in sequence order, one row of vocab_size floats
  // per requested position. Bad token ids or a short block table give INVALID_ARGUMENT.
  absl::Status Forward(const ForwardBatch& batch, KvStorage& kv, std::vector<float>* logits);

 private:
  // A linear layer's [out, in] weight: kept in bf16 when the checkpoint stores bf16 and
  // the backend multiplies from bf16 (the CPU one), which halves the bytes a decode step
  // streams; the values are exactly the fp32 ones. Otherwise fp32.
  struct Weight {
    DeviceBuffer buf;
    bool bf16 = false;
  };
  struct Layer;
  struct Scratch;
  MixtralModel(const ModelConfig& config, Backend* backend);
  absl::Status LoadWeights(const Checkpoint& checkpoint);
  // Loads the tensors `names` (each `numel` elements) stacked row-wise into one weight.
  absl::StatusOr<Weight> LoadLinear(const Checkpoint& checkpoint,
                                    std::initializer_list<std::string> names, size_t numel);
  // y[m, out] = x[m, in] W^T (+ beta * y).
  void Linear(const Weight& w, int m, int out_dim, int in_dim, const float* x, float* y,
              float beta = 0.0f);
  absl::Status RunLayer(int index, int num_tokens, int num_seqs, int max_blocks, KvStorage& kv);
  absl::Status RunMoe(const Layer& layer, int num_tokens);

  ModelConfig config_;
  Backend* backend_;
  DeviceBuffer embed_, final_norm_;
  Weight lm_head_;  // empty when tied
  std::vector<Layer> layers_;
  std::unique_ptr<Scratch> scratch_;
};

}  // namespace cleave

#endif  // CLEAVE_ENGINE_MODEL_MIXTRAL_H_
