// Turns "these KV blocks of mine go to those blocks of yours" into the byte segments a UcxAgent
// writes. A KvStorage holds, per layer, one K and one V array of
// [num_blocks, block_size, num_kv_heads, head_dim] fp32, each its own allocation, so block b of
// layer l's K is block_bytes contiguous bytes at k_base[l] + b * block_bytes. Runs of blocks that
// are consecutive on both sides coalesce into one segment per array.
#ifndef CLEAVE_ENGINE_TRANSFER_KV_BLOCK_LAYOUT_H_
#define CLEAVE_ENGINE_TRANSFER_KV_BLOCK_LAYOUT_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/runtime/kv_storage.h"
#include "engine/transfer/ucx_agent.h"

namespace cleave {

// Where one KV pool's arrays live, in some process's address space.
struct KvPoolView {
  KvStorageShape shape;
  std::vector<uint64_t> k_base, v_base;  // per layer
};

// Bytes of one block in one layer's K (or V) array.
size_t KvBlockBytes(const KvStorageShape& shape);
// Bytes of one layer's K (or V) array.
size_t KvLayerBytes(const KvStorageShape& shape);

// The pool's arrays as regions to register, layer-major: K0, V0, K1, V1, ...
std::vector<MemoryRegion> KvStorageRegions(const KvStorage& storage);
// This process's view of `storage`.
KvPoolView LocalKvPoolView(const KvStorage& storage);
// The view of a peer's pool from its RegisterMemory(KvStorageRegions(...)) descriptor. Fails
// when the descriptor does not hold 2 * num_layers regions of the shape's layer size.
absl::StatusOr<KvPoolView> RemoteKvPoolView(const KvStorageShape& remote_shape,
                                            std::string_view remote_descriptor);

// Segments that copy block src_blocks[i] of `src` to block dst_blocks[i] of `dst`, for every
// layer's K and V. Both pools must agree on everything but num_blocks. Destination blocks must
// be distinct (a source block may go to several). Order: by layer, K before V, then by i.
absl::StatusOr<std::vector<TransferSegment>> KvBlockSegments(const KvPoolView& src,
                                                             const KvPoolView& dst,
                                                             std::span<const int> src_blocks,
                                                             std::span<const int> dst_blocks);

}  // namespace cleave

#endif  // CLEAVE_ENGINE_TRANSFER_KV_BLOCK_LAYOUT_H_
