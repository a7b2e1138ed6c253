// The pool of KV block ids: reference counts, one LRU free queue, and the prefix cache of full
// blocks. No tensor memory lives here; block id b indexes the lead's K/V storage arrays.
//
// Identity of a cached block. Its key is a chained 64-bit hash, H(parent's hash, its tokens), so
// equal keys mean "same tokens after the same prefix" with overwhelming probability; the hash is
// deterministic across processes so a router can compute it too. A 64-bit hash can still collide,
// and a collision must never hand out wrong KV, so a hit is verified exactly: the pool keeps each
// cached block's tokens and its parent's *content id*, a number it hands out once per distinct
// published content and never reuses. A content id therefore names one exact token prefix, and
// comparing (parent content id, tokens) compares the whole prefix, not just the last block.
//
// The free queue holds every block with refcount 0, oldest first; allocation pops the head and
// evicts whatever cached content the block had. A cached block that is freed joins the tail
// (least recently freed is evicted first); a block with nothing cached joins the head, since
// reusing it loses nothing. A prefix hit on a free cached block takes it out of the queue. Every
// operation is O(1) per block (plus O(block_size) to compare or copy tokens).
#ifndef CLEAVE_ENGINE_KV_BLOCK_POOL_H_
#define CLEAVE_ENGINE_KV_BLOCK_POOL_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace cleave {

// The chained hash of a full block: mixes `parent_hash` (kRootBlockHash for a sequence's first
// block) with the block's token ids. Stable across processes and builds.
inline constexpr uint64_t kRootBlockHash = 0x6a09e667f3bcc908ull;
uint64_t HashBlockTokens(uint64_t parent_hash, std::span<const int> tokens);

// Content id of "no parent": a sequence's first block has this as its parent content id.
inline constexpr uint64_t kRootContentId = 0;

class BlockPool {
 public:
  // All blocks start free. enable_caching = false keeps no token copies and publishes nothing.
  BlockPool(int num_blocks, int block_size, bool enable_caching);
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  // Appends `n` blocks (refcount 1 each) to `out`, evicting the cached content of the oldest free
  // blocks. Returns false and changes nothing when fewer than `n` are free.
  bool Allocate(int n, std::vector<int>* out);
  // Takes a reference on a block that is allocated or cached (a prefix hit); a free cached block
  // leaves the free queue.
  void Ref(int block);
  // Drops a reference; at zero the block joins the free queue (its cached content stays until the
  // block is reused).
  void Unref(int block);

  // The cached block whose content is exactly (parent_content_id, tokens) and whose key is
  // `hash`, or -1. The block may be free (evictable); Ref it to keep it.
  int Find(uint64_t hash, uint64_t parent_content_id, std::span<const int> tokens) const;
  // Publishes a full, referenced, uncached block under `hash` and returns the content id of its
  // content. If that exact content is already cached, the existing entry is kept, `block` stays
  // unpublished, and the existing content id is returned. If `hash` is taken by different
  // content (a true 64-bit collision), `block` stays unpublished and gets a fresh content id that
  // no cached block carries, so nothing ever matches through it.
  uint64_t Publish(int block, uint64_t hash, uint64_t parent_content_id,
                   std::span<const int> tokens);

  int num_blocks() const { return static_cast<int>(ref_.size()); }
  int block_size() const { return block_size_; }
  bool caching_enabled() const { return caching_; }
  // Blocks an allocation may take: refcount 0, cached or not.
  int num_free() const { return num_free_; }
  int num_cached() const { return static_cast<int>(cached_.size()); }
  int ref_count(int block) const { return ref_[block]; }
  bool is_cached(int block) const { return content_id_[block] != 0; }
  uint64_t content_id(int block) const { return content_id_[block]; }  // 0 if not cached
  uint64_t hash(int block) const { return hash_[block]; }              // valid if cached
  // Free blocks in eviction order (head first). O(num_free); for tests and debugging.
  std::vector<int> FreeQueue() const;

 private:
  // Intrusive doubly linked free queue over block ids; index num_blocks() is the sentinel.
  void PushFront(int block);
  void PushBack(int block);
  void Remove(int block);
  void Evict(int block);
  std::span<const int> tokens_of(int block) const {
    return {tokens_.data() + static_cast<size_t>(block) * block_size_,
            static_cast<size_t>(block_size_)};
  }

  const int block_size_;
  const bool caching_;
  std::vector<int> ref_;
  std::vector<int> prev_, next_;  // size num_blocks + 1 (the sentinel)
  int num_free_ = 0;
  // Per block, meaningful while content_id_[b] != 0.
  std::vector<uint64_t> content_id_;
  std::vector<uint64_t> parent_content_id_;
  std::vector<uint64_t> hash_;
  std::vector<int> tokens_;                    // num_blocks * block_size when caching
  absl::flat_hash_map<uint64_t, int> cached_;  // hash -> block
  uint64_t next_content_id_ = 1;
};

}  // namespace cleave

#endif  // CLEAVE_ENGINE_KV_BLOCK_POOL_H_
