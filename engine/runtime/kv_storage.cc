#include "engine/runtime/kv_storage.h"

#include "engine/util/status.h"

namespace cleave {

size_t KvStorageShape::BytesPerBlock() const {
  return 2ull * num_layers * block_size * num_kv_heads * head_dim * sizeof(float);
}

absl::StatusOr<KvStorage> KvStorage::Create(Backend* backend, const KvStorageShape& shape) {
  KvStorage s;
  s.shape_ = shape;
  const size_t layer_bytes = static_cast<size_t>(shape.num_blocks) * shape.block_size *
                             shape.num_kv_heads * shape.head_dim * sizeof(float);
  for (int l = 0; l < shape.num_layers; ++l) {
    ASSIGN_OR_RETURN(DeviceBuffer k, DeviceBuffer::Create(backend, layer_bytes));
    ASSIGN_OR_RETURN(DeviceBuffer v, DeviceBuffer::Create(backend, layer_bytes));
    // Zeroed so a bug that reads an unwritten slot shows up as a deterministic error.
    backend->Memset(k.data(), 0, layer_bytes);
    backend->Memset(v.data(), 0, layer_bytes);
    s.k_.push_back(std::move(k));
    s.v_.push_back(std::move(v));
  }
  return s;
}

}  // namespace cleave
