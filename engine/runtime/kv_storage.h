// The paged KV cache's memory: per layer, K and V arrays of
// [num_blocks, block_size, num_kv_heads, head_dim] fp32 on the backend's device.
// Which block belongs to whom is engine/kv's business; this only holds the bytes.
#ifndef CLEAVE_ENGINE_RUNTIME_KV_STORAGE_H_
#define CLEAVE_ENGINE_RUNTIME_KV_STORAGE_H_

#include <vector>

#include "absl/status/statusor.h"
#include "engine/runtime/device_buffer.h"

namespace cleave {

struct KvStorageShape {
  int num_layers = 0, num_blocks = 0, block_size = 0, num_kv_heads = 0, head_dim = 0;
  size_t BytesPerBlock() const;  // K and V, all layers
};

class KvStorage {
 public:
  static absl::StatusOr<KvStorage> Create(Backend* backend, const KvStorageShape& shape);
  const KvStorageShape& shape() const { return shape_; }
  float* k(int layer) const { return k_[layer].f32(); }
  float* v(int layer) const { return v_[layer].f32(); }

 private:
  KvStorageShape shape_;
  std::vector<DeviceBuffer> k_, v_;
};

}  // namespace cleave

#endif  // CLEAVE_ENGINE_RUNTIME_KV_STORAGE_H_
