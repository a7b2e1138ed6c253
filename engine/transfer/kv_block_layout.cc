#include "engine/transfer/kv_block_layout.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "engine/transfer/ucx_wire.h"

namespace cleave {
namespace {

bool SameBlockGeometry(const KvStorageShape& a, const KvStorageShape& b) {
  return a.num_layers == b.num_layers && a.block_size == b.block_size &&
         a.num_kv_heads == b.num_kv_heads && a.head_dim == b.head_dim;
}

absl::Status CheckView(const KvPoolView& v, absl::string_view which) {
  const KvStorageShape& s = v.shape;
  if (s.num_layers <= 0 || s.num_blocks <= 0 || s.block_size <= 0 || s.num_kv_heads <= 0 ||
      s.head_dim <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(which, " KV shape has a non-positive size"));
  }
  if (v.k_base.size() != static_cast<size_t>(s.num_layers) ||
      v.v_base.size() != static_cast<size_t>(s.num_layers)) {
    return absl::InvalidArgumentError(absl::StrCat(which, " KV view needs ", s.num_layers,
                                                   " K and V bases, has ", v.k_base.size(), " and ",
                                                   v.v_base.size()));
  }
  return absl::OkStatus();
}

}  // namespace

size_t KvBlockBytes(const KvStorageShape& shape) {
  return static_cast<size_t>(shape.block_size) * shape.num_kv_heads * shape.head_dim *
         sizeof(float);
}

size_t KvLayerBytes(const KvStorageShape& shape) {
  return static_cast<size_t>(shape.num_blocks) * KvBlockBytes(shape);
}

std::vector<MemoryRegion> KvStorageRegions(const KvStorage& storage) {
  const size_t bytes = KvLayerBytes(storage.shape());
  std::vector<MemoryRegion> regions;
  regions.reserve(2 * storage.shape().num_layers);
  for (int l = 0; l < storage.shape().num_layers; ++l) {
    regions.push_back({storage.k(l), bytes});
    regions.push_back({storage.v(l), bytes});
  }
  return regions;
}

KvPoolView LocalKvPoolView(const KvStorage& storage) {
  KvPoolView v;
  v.shape = storage.shape();
  for (int l = 0; l < v.shape.num_layers; ++l) {
    v.k_base.push_back(reinterpret_cast<uint64_t>(storage.k(l)));
    v.v_base.push_back(reinterpret_cast<uint64_t>(storage.v(l)));
  }
  return v;
}

absl::StatusOr<KvPoolView> RemoteKvPoolView(const KvStorageShape& remote_shape,
                                            std::string_view remote_descriptor) {
  auto desc = ucx_wire::DecodeRemoteDescriptor(remote_descriptor);
  if (!desc.ok()) return desc.status();
  const size_t want = 2 * static_cast<size_t>(remote_shape.num_layers);
  if (desc->regions.size() != want) {
    return absl::InvalidArgumentError(absl::StrCat("KV descriptor has ", desc->regions.size(),
                                                   " regions, a ", remote_shape.num_layers,
                                                   "-layer pool has ", want));
  }
  const size_t layer_bytes = KvLayerBytes(remote_shape);
  KvPoolView v;
  v.shape = remote_shape;
  for (size_t r = 0; r < want; ++r) {
    if (desc->regions[r].length != layer_bytes) {
      return absl::InvalidArgumentError(absl::StrCat("KV descriptor region ", r, " is ",
                                                     desc->regions[r].length, " bytes, a layer of ",
                                                     "this shape is ", layer_bytes));
    }
    (r % 2 == 0 ? v.k_base : v.v_base).push_back(desc->regions[r].base);
  }
  return v;
}

absl::StatusOr<std::vector<TransferSegment>> KvBlockSegments(const KvPoolView& src,
                                                             const KvPoolView& dst,
                                                             std::span<const int> src_blocks,
                                                             std::span<const int> dst_blocks) {
  if (absl::Status s = CheckView(src, "source"); !s.ok()) return s;
  if (absl::Status s = CheckView(dst, "destination"); !s.ok()) return s;
  if (!SameBlockGeometry(src.shape, dst.shape)) {
    return absl::InvalidArgumentError("source and destination KV pools differ in block geometry");
  }
  if (src_blocks.size() != dst_blocks.size()) {
    return absl::InvalidArgumentError(absl::StrCat(src_blocks.size(), " source blocks but ",
                                                   dst_blocks.size(), " destination blocks"));
  }
  absl::flat_hash_set<int> seen;
  for (size_t i = 0; i < src_blocks.size(); ++i) {
    if (src_blocks[i] < 0 || src_blocks[i] >= src.shape.num_blocks) {
      return absl::InvalidArgumentError(absl::StrCat(
          "source block ", src_blocks[i], " out of range [0, ", src.shape.num_blocks, ")"));
    }
    if (dst_blocks[i] < 0 || dst_blocks[i] >= dst.shape.num_blocks) {
      return absl::InvalidArgumentError(absl::StrCat(
          "destination block ", dst_blocks[i], " out of range [0, ", dst.shape.num_blocks, ")"));
    }
    if (!seen.insert(dst_blocks[i]).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("destination block ", dst_blocks[i], " appears twice"));
    }
  }
  // Runs [begin, end) of the mapping where both sides advance by one block.
  std::vector<std::pair<size_t, size_t>> runs;
  for (size_t i = 0; i < src_blocks.size();) {
    size_t j = i + 1;
    while (j < src_blocks.size() && src_blocks[j] == src_blocks[j - 1] + 1 &&
           dst_blocks[j] == dst_blocks[j - 1] + 1) {
      ++j;
    }
    runs.emplace_back(i, j);
    i = j;
  }
  const size_t block_bytes = KvBlockBytes(src.shape);
  std::vector<TransferSegment> segments;
  segments.reserve(2 * runs.size() * src.shape.num_layers);
  for (int l = 0; l < src.shape.num_layers; ++l) {
    for (int kv = 0; kv < 2; ++kv) {
      const uint64_t src_base = kv == 0 ? src.k_base[l] : src.v_base[l];
      const uint64_t dst_base = kv == 0 ? dst.k_base[l] : dst.v_base[l];
      for (const auto& [begin, end] : runs) {
        TransferSegment seg;
        seg.local = reinterpret_cast<const void*>(src_base + src_blocks[begin] * block_bytes);
        seg.remote_addr = dst_base + dst_blocks[begin] * block_bytes;
        seg.length = (end - begin) * block_bytes;
        segments.push_back(seg);
      }
    }
  }
  return segments;
}

}  // namespace cleave
