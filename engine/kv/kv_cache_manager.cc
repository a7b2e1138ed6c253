#include "engine/kv/kv_cache_manager.h"

#include "engine/util/check.h"

namespace cleave {

KvCacheManager::KvCacheManager(int num_blocks, int block_size, bool enable_prefix_caching,
                               HashFn hash)
    : block_size_(block_size), hash_(hash), pool_(num_blocks, block_size, enable_prefix_caching) {}

template <typename Visit>
int KvCacheManager::WalkCachedPrefix(std::span<const int> tokens, Visit visit) const {
  if (!pool_.caching_enabled() || tokens.empty()) return 0;
  const int max_blocks = static_cast<int>((tokens.size() - 1) / block_size_);
  uint64_t hash = kRootBlockHash;
  uint64_t parent = kRootContentId;
  int n = 0;
  for (; n < max_blocks; ++n) {
    const std::span<const int> block_tokens =
        tokens.subspan(static_cast<size_t>(n) * block_size_, block_size_);
    hash = hash_(hash, block_tokens);
    const int block = pool_.Find(hash, parent, block_tokens);
    if (block < 0) break;
    visit(block, hash);
    parent = pool_.content_id(block);
  }
  return n;
}

PrefixHit KvCacheManager::FindCachedPrefix(std::span<const int> tokens) const {
  PrefixHit hit;
  hit.num_blocks = WalkCachedPrefix(tokens, [&](int block, uint64_t) {
    if (pool_.ref_count(block) == 0) ++hit.num_evictable;
  });
  hit.num_tokens = hit.num_blocks * block_size_;
  return hit;
}

int KvCacheManager::AcquireCachedPrefix(SeqId seq, std::span<const int> tokens) {
  if (!pool_.caching_enabled()) return 0;
  auto it = seqs_.find(seq);
  CHECK(it == seqs_.end() || it->second.blocks.empty());
  Seq hits;
  WalkCachedPrefix(tokens, [&](int block, uint64_t hash) {
    hits.blocks.push_back(block);
    hits.hashes.push_back(hash);
    hits.content_ids.push_back(pool_.content_id(block));
  });
  for (int block : hits.blocks) pool_.Ref(block);
  const int covered = static_cast<int>(hits.blocks.size()) * block_size_;
  ++num_prefix_queries_;
  prefix_query_tokens_ += static_cast<int64_t>(tokens.size());
  prefix_hit_tokens_ += covered;
  if (!hits.blocks.empty()) seqs_[seq] = std::move(hits);
  return covered;
}

int KvCacheManager::NumBlocksToAdmit(const PrefixHit& hit, int num_tokens) const {
  const int fresh = NumBlocksFor(num_tokens) - hit.num_blocks;
  return (fresh > 0 ? fresh : 0) + hit.num_evictable;
}

bool KvCacheManager::CanReserve(SeqId seq, int num_tokens) const {
  auto it = seqs_.find(seq);
  const int have = it == seqs_.end() ? 0 : static_cast<int>(it->second.blocks.size());
  return NumBlocksFor(num_tokens) - have <= pool_.num_free();
}

bool KvCacheManager::Reserve(SeqId seq, int num_tokens) {
  auto it = seqs_.find(seq);
  const int have = it == seqs_.end() ? 0 : static_cast<int>(it->second.blocks.size());
  const int need = NumBlocksFor(num_tokens) - have;
  if (need <= 0) return true;
  if (need > pool_.num_free()) return false;
  if (it == seqs_.end()) it = seqs_.try_emplace(seq).first;
  CHECK(pool_.Allocate(need, &it->second.blocks));
  return true;
}

void KvCacheManager::Commit(SeqId seq, std::span<const int> tokens, int num_computed) {
  if (!pool_.caching_enabled()) return;
  auto it = seqs_.find(seq);
  CHECK(it != seqs_.end());
  Seq& s = it->second;
  CHECK(num_computed >= 0 && num_computed <= static_cast<int>(tokens.size()) &&
        num_computed <= static_cast<int>(s.blocks.size()) * block_size_);
  const int full = num_computed / block_size_;
  for (int j = static_cast<int>(s.hashes.size()); j < full; ++j) {
    const std::span<const int> block_tokens =
        tokens.subspan(static_cast<size_t>(j) * block_size_, block_size_);
    const uint64_t parent_hash = j == 0 ? kRootBlockHash : s.hashes[j - 1];
    const uint64_t parent_id = j == 0 ? kRootContentId : s.content_ids[j - 1];
    const uint64_t hash = hash_(parent_hash, block_tokens);
    s.hashes.push_back(hash);
    s.content_ids.push_back(pool_.Publish(s.blocks[j], hash, parent_id, block_tokens));
  }
}

void KvCacheManager::Free(SeqId seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  const std::vector<int>& blocks = it->second.blocks;
  for (auto b = blocks.rbegin(); b != blocks.rend(); ++b) pool_.Unref(*b);
  seqs_.erase(it);
}

const std::vector<int>& KvCacheManager::BlockTable(SeqId seq) const {
  static const std::vector<int> kEmpty;
  auto it = seqs_.find(seq);
  return it == seqs_.end() ? kEmpty : it->second.blocks;
}

}  // namespace cleave
