// Per-sequence block tables over a BlockPool: which KV blocks hold which sequence's tokens, and
// prefix sharing of full blocks between sequences. Bookkeeping only; one engine thread owns it.
//
// A sequence's table covers positions [0, table.size() * block_size); position p lives in block
// table[p / block_size] at slot p % block_size. The first blocks may be shared with other
// sequences (prefix-cache hits); the model never writes into those, because the scheduler only
// computes tokens from num_computed_tokens on, which starts past the shared prefix.
//
// Admission order matters: AcquireCachedPrefix before Reserve, so that allocating fresh blocks
// can never evict the very cached blocks the sequence is about to share.
#ifndef CLEAVE_ENGINE_KV_KV_CACHE_MANAGER_H_
#define CLEAVE_ENGINE_KV_KV_CACHE_MANAGER_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/kv/block_pool.h"

namespace cleave {

using SeqId = uint64_t;  // the same alias as engine/sched/request.h; kv does not depend on sched

// What AcquireCachedPrefix would share for some tokens, found without taking anything.
struct PrefixHit {
  int num_tokens = 0;  // num_blocks * block_size
  int num_blocks = 0;
  int num_evictable = 0;  // of num_blocks, those now free: sharing them uses up free blocks
};

class KvCacheManager {
 public:
  using HashFn = uint64_t (*)(uint64_t parent_hash, std::span<const int> tokens);

  // `hash` is replaceable so tests can force collisions.
  KvCacheManager(int num_blocks, int block_size, bool enable_prefix_caching,
                 HashFn hash = &HashBlockTokens);
  KvCacheManager(const KvCacheManager&) = delete;
  KvCacheManager& operator=(const KvCacheManager&) = delete;

  // The longest run of cached full blocks matching the start of `tokens`, leaving at least one
  // token uncovered (the model must still produce logits for the last one). Zero when prefix
  // caching is off.
  PrefixHit FindCachedPrefix(std::span<const int> tokens) const;
  // Makes that run the first blocks of `seq`, which must have no blocks yet, taking a reference
  // on each. Returns the tokens covered (a multiple of block_size) and counts the query.
  int AcquireCachedPrefix(SeqId seq, std::span<const int> tokens);
  // Free blocks that admitting a new sequence would use: sharing `hit`, then Reserve(num_tokens).
  int NumBlocksToAdmit(const PrefixHit& hit, int num_tokens) const;

  // Whether Reserve(seq, num_tokens) would succeed. Unknown sequences have no blocks.
  bool CanReserve(SeqId seq, int num_tokens) const;
  // Grows seq's table to cover `num_tokens` tokens in total (never shrinks it). On shortage
  // changes nothing and returns false.
  bool Reserve(SeqId seq, int num_tokens);
  // Tokens [0, num_computed) of `tokens` (the whole sequence so far) now have their KV written.
  // Every block that became full is published for sharing; if identical content is already
  // cached, that entry is kept and seq keeps its own copy. No-op without prefix caching.
  void Commit(SeqId seq, std::span<const int> tokens, int num_computed);
  // Drops seq's references, tail first, so its last blocks are evicted before its first ones.
  // Unknown sequences are ignored.
  void Free(SeqId seq);

  // seq's blocks; empty for an unknown sequence. Valid until the next call that changes seq.
  const std::vector<int>& BlockTable(SeqId seq) const;
  bool Contains(SeqId seq) const { return seqs_.contains(seq); }
  int num_sequences() const { return static_cast<int>(seqs_.size()); }

  int block_size() const { return block_size_; }
  int num_total_blocks() const { return pool_.num_blocks(); }
  // Free plus evictable (cached but unreferenced) blocks.
  int num_free_blocks() const { return pool_.num_free(); }
  int num_cached_blocks() const { return pool_.num_cached(); }
  // Fraction of blocks referenced by some sequence, in [0, 1].
  double usage() const { return 1.0 - double(num_free_blocks()) / num_total_blocks(); }
  int NumBlocksFor(int num_tokens) const { return (num_tokens + block_size_ - 1) / block_size_; }
  bool prefix_caching_enabled() const { return pool_.caching_enabled(); }
  const BlockPool& pool() const { return pool_; }

  // Prefix-cache counters, over AcquireCachedPrefix calls: hit rate = hit / query tokens.
  int64_t num_prefix_queries() const { return num_prefix_queries_; }
  int64_t prefix_query_tokens() const { return prefix_query_tokens_; }
  int64_t prefix_hit_tokens() const { return prefix_hit_tokens_; }

 private:
  struct Seq {
    std::vector<int> blocks;
    // Identity of the leading full blocks whose KV is written: chained hash and content id.
    std::vector<uint64_t> hashes;
    std::vector<uint64_t> content_ids;
  };
  // Calls visit(block, hash) for each block of the cached prefix of `tokens`; returns how many.
  template <typename Visit>
  int WalkCachedPrefix(std::span<const int> tokens, Visit visit) const;

  const int block_size_;
  const HashFn hash_;
  BlockPool pool_;
  absl::flat_hash_map<SeqId, Seq> seqs_;
  int64_t num_prefix_queries_ = 0;
  int64_t prefix_query_tokens_ = 0;
  int64_t prefix_hit_tokens_ = 0;
};

}  // namespace cleave

#endif  // CLEAVE_ENGINE_KV_KV_CACHE_MANAGER_H_
