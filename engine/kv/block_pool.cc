#include "engine/kv/block_pool.h"

#include <algorithm>

#include "engine/util/check.h"

namespace cleave {
namespace {

// The splitmix64 finalizer: a bijection with full avalanche.
uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

}  // namespace

uint64_t HashBlockTokens(uint64_t parent_hash, std::span<const int> tokens) {
  // Mixing after every token makes the hash order-sensitive; the length goes in first so blocks
  // of different sizes never share a key.
  uint64_t h = Mix64(parent_hash ^ (0x9e3779b97f4a7c15ull * (tokens.size() + 1)));
  for (int t : tokens) {
    h = Mix64(h + 0x9e3779b97f4a7c15ull * (static_cast<uint64_t>(static_cast<uint32_t>(t)) + 1));
  }
  return h;
}

BlockPool::BlockPool(int num_blocks, int block_size, bool enable_caching)
    : block_size_(block_size),
      caching_(enable_caching),
      ref_(num_blocks, 0),
      prev_(num_blocks + 1),
      next_(num_blocks + 1),
      content_id_(num_blocks, 0),
      parent_content_id_(num_blocks, 0),
      hash_(num_blocks, 0) {
  CHECK(num_blocks > 0 && block_size > 0);
  if (caching_) tokens_.resize(static_cast<size_t>(num_blocks) * block_size);
  const int sentinel = num_blocks;
  prev_[sentinel] = next_[sentinel] = sentinel;
  for (int b = 0; b < num_blocks; ++b) PushBack(b);
}

void BlockPool::PushFront(int block) {
  const int sentinel = num_blocks();
  const int first = next_[sentinel];
  prev_[block] = sentinel;
  next_[block] = first;
  prev_[first] = block;
  next_[sentinel] = block;
  ++num_free_;
}

void BlockPool::PushBack(int block) {
  const int sentinel = num_blocks();
  const int last = prev_[sentinel];
  prev_[block] = last;
  next_[block] = sentinel;
  next_[last] = block;
  prev_[sentinel] = block;
  ++num_free_;
}

void BlockPool::Remove(int block) {
  next_[prev_[block]] = next_[block];
  prev_[next_[block]] = prev_[block];
  prev_[block] = next_[block] = -1;
  --num_free_;
}

void BlockPool::Evict(int block) {
  if (content_id_[block] == 0) return;
  auto it = cached_.find(hash_[block]);
  CHECK(it != cached_.end() && it->second == block);
  cached_.erase(it);
  content_id_[block] = 0;
}

bool BlockPool::Allocate(int n, std::vector<int>* out) {
  if (n > num_free_) return false;
  const int sentinel = num_blocks();
  for (int i = 0; i < n; ++i) {
    const int block = next_[sentinel];
    Remove(block);
    Evict(block);
    ref_[block] = 1;
    out->push_back(block);
  }
  return true;
}

void BlockPool::Ref(int block) {
  CHECK(block >= 0 && block < num_blocks());
  // Only a cached block may be revived from the free queue; a free uncached block holds nothing.
  CHECK(ref_[block] > 0 || content_id_[block] != 0);
  if (ref_[block]++ == 0) Remove(block);
}

void BlockPool::Unref(int block) {
  CHECK(block >= 0 && block < num_blocks() && ref_[block] > 0);
  if (--ref_[block] > 0) return;
  if (content_id_[block] != 0) {
    PushBack(block);
  } else {
    PushFront(block);
  }
}

int BlockPool::Find(uint64_t hash, uint64_t parent_content_id, std::span<const int> tokens) const {
  if (!caching_ || static_cast<int>(tokens.size()) != block_size_) return -1;
  auto it = cached_.find(hash);
  if (it == cached_.end()) return -1;
  const int block = it->second;
  if (parent_content_id_[block] != parent_content_id) return -1;
  const std::span<const int> mine = tokens_of(block);
  if (!std::equal(mine.begin(), mine.end(), tokens.begin())) return -1;
  return block;
}

uint64_t BlockPool::Publish(int block, uint64_t hash, uint64_t parent_content_id,
                            std::span<const int> tokens) {
  CHECK(caching_ && static_cast<int>(tokens.size()) == block_size_);
  CHECK(ref_[block] > 0 && content_id_[block] == 0);
  if (auto it = cached_.find(hash); it != cached_.end()) {
    const int existing = it->second;
    if (Find(hash, parent_content_id, tokens) == existing) return content_id_[existing];
    return next_content_id_++;  // collision: unpublished, matches nothing
  }
  const uint64_t id = next_content_id_++;
  content_id_[block] = id;
  parent_content_id_[block] = parent_content_id;
  hash_[block] = hash;
  std::copy(tokens.begin(), tokens.end(),
            tokens_.begin() + static_cast<ptrdiff_t>(block) * block_size_);
  cached_.emplace(hash, block);
  return id;
}

std::vector<int> BlockPool::FreeQueue() const {
  std::vector<int> order;
  order.reserve(num_free_);
  const int sentinel = num_blocks();
  for (int b = next_[sentinel]; b != sentinel; b = next_[b]) order.push_back(b);
  return order;
}

}  // namespace cleave
