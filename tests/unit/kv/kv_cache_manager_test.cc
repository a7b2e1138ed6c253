// KvCacheManager: block tables, reservation, prefix sharing, exact hits under forced hash
// collisions, and refcount accounting over a random workload.
#include "engine/kv/kv_cache_manager.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cleave {
namespace {

using ::testing::ElementsAreArray;

constexpr int kBs = 8;

std::vector<int> Seq(int len, int base) {
  std::vector<int> t(len);
  std::iota(t.begin(), t.end(), base);
  return t;
}

// Reserves and commits all of `tokens` as if the model had written them.
void Prefill(KvCacheManager& kv, SeqId id, const std::vector<int>& tokens) {
  const int cached = kv.AcquireCachedPrefix(id, tokens);
  ASSERT_TRUE(kv.Reserve(id, static_cast<int>(tokens.size())));
  ASSERT_LE(cached, static_cast<int>(tokens.size()));
  kv.Commit(id, tokens, static_cast<int>(tokens.size()));
}

TEST(KvCacheManagerTest, ReserveGrowsTheTableAndFailsWithoutChange) {
  KvCacheManager kv(4, kBs, false);
  EXPECT_TRUE(kv.Reserve(1, 9));  // 2 blocks
  EXPECT_EQ(kv.BlockTable(1).size(), 2u);
  EXPECT_TRUE(kv.Reserve(1, 16));  // still 2
  EXPECT_EQ(kv.BlockTable(1).size(), 2u);
  EXPECT_TRUE(kv.Reserve(1, 3));  // never shrinks
  EXPECT_EQ(kv.BlockTable(1).size(), 2u);
  EXPECT_TRUE(kv.CanReserve(2, 16));
  EXPECT_FALSE(kv.CanReserve(2, 17));
  EXPECT_FALSE(kv.Reserve(2, 17));
  EXPECT_FALSE(kv.Contains(2));
  EXPECT_EQ(kv.num_free_blocks(), 2);
  EXPECT_DOUBLE_EQ(kv.usage(), 0.5);
  kv.Free(1);
  kv.Free(7);  // unknown: ignored
  EXPECT_EQ(kv.num_free_blocks(), 4);
  EXPECT_TRUE(kv.BlockTable(1).empty());
}

TEST(KvCacheManagerTest, CommonPrefixSharesFullBlocksButNotThePartialOne) {
  KvCacheManager kv(16, kBs, true);
  std::vector<int> a = Seq(30, 100);  // blocks 0..2 full, block 3 has 6 tokens
  Prefill(kv, 1, a);
  const std::vector<int> table_a = kv.BlockTable(1);
  ASSERT_EQ(table_a.size(), 4u);
  EXPECT_EQ(kv.num_cached_blocks(), 3);

  // b: the first 20 tokens equal a's, then different. Blocks 0 and 1 match; block 2 does not.
  std::vector<int> b = Seq(20, 100);
  for (int i = 0; i < 15; ++i) b.push_back(5000 + i);
  const int free_before = kv.num_free_blocks();
  const PrefixHit hit = kv.FindCachedPrefix(b);
  EXPECT_EQ(hit.num_tokens, 16);
  EXPECT_EQ(hit.num_evictable, 0);
  EXPECT_EQ(kv.AcquireCachedPrefix(2, b), 16);
  ASSERT_TRUE(kv.Reserve(2, static_cast<int>(b.size())));
  const std::vector<int>& table_b = kv.BlockTable(2);
  ASSERT_EQ(table_b.size(), 5u);
  EXPECT_EQ(table_b[0], table_a[0]);
  EXPECT_EQ(table_b[1], table_a[1]);
  EXPECT_NE(table_b[2], table_a[2]);
  EXPECT_EQ(free_before - kv.num_free_blocks(), 3);  // 5 blocks, 2 shared
  EXPECT_EQ(kv.pool().ref_count(table_a[0]), 2);
  EXPECT_EQ(kv.pool().ref_count(table_a[2]), 1);

  // A copy of a: its 3 full blocks are shared, its partial last block is its own.
  EXPECT_EQ(kv.AcquireCachedPrefix(3, a), 24);
  ASSERT_TRUE(kv.Reserve(3, 30));
  const std::vector<int>& table_c = kv.BlockTable(3);
  EXPECT_THAT(std::vector<int>(table_c.begin(), table_c.begin() + 3),
              ElementsAreArray(table_a.begin(), table_a.begin() + 3));
  EXPECT_NE(table_c[3], table_a[3]);
  EXPECT_EQ(kv.prefix_hit_tokens(), 16 + 24);
  EXPECT_EQ(kv.num_prefix_queries(), 3);
}

TEST(KvCacheManagerTest, AHitAlwaysLeavesTheLastTokenToCompute) {
  KvCacheManager kv(16, kBs, true);
  const std::vector<int> a = Seq(32, 7);  // exactly 4 full blocks
  Prefill(kv, 1, a);
  EXPECT_EQ(kv.FindCachedPrefix(a).num_tokens, 24);
  EXPECT_EQ(kv.AcquireCachedPrefix(2, a), 24);
  std::vector<int> longer = a;
  longer.push_back(1);
  EXPECT_EQ(kv.FindCachedPrefix(longer).num_tokens, 32);
  EXPECT_EQ(kv.FindCachedPrefix(std::vector<int>{}).num_tokens, 0);
}

TEST(KvCacheManagerTest, BlocksBecomeShareableAsTheyFillDuringDecode) {
  KvCacheManager kv(16, kBs, true);
  std::vector<int> a = Seq(5, 1);
  Prefill(kv, 1, a);
  EXPECT_EQ(kv.num_cached_blocks(), 0);
  for (int t = 0; t < 4; ++t) {
    a.push_back(50 + t);
    ASSERT_TRUE(kv.Reserve(1, static_cast<int>(a.size())));
    kv.Commit(1, a, static_cast<int>(a.size()));
  }
  EXPECT_EQ(kv.num_cached_blocks(), 1);  // 9 tokens: one full block
  std::vector<int> b(a.begin(), a.begin() + 8);
  b.push_back(999);
  EXPECT_EQ(kv.AcquireCachedPrefix(2, b), 8);
  EXPECT_EQ(kv.BlockTable(2)[0], kv.BlockTable(1)[0]);
}

TEST(KvCacheManagerTest, FreedPrefixStaysCachedAndAHitCountsAgainstFreeBlocks) {
  KvCacheManager kv(6, kBs, true);
  const std::vector<int> a = Seq(25, 3);  // 3 full blocks + 1 token
  Prefill(kv, 1, a);
  const std::vector<int> table_a = kv.BlockTable(1);
  kv.Free(1);
  EXPECT_EQ(kv.num_free_blocks(), 6);
  EXPECT_EQ(kv.num_cached_blocks(), 3);
  // Freed tail first: the partial block is reusable at once, then block 2, 1, 0 in that order.
  const std::vector<int> queue = kv.pool().FreeQueue();
  EXPECT_EQ(std::vector<int>(queue.end() - 3, queue.end()),
            (std::vector<int>{table_a[2], table_a[1], table_a[0]}));

  const PrefixHit hit = kv.FindCachedPrefix(a);
  EXPECT_EQ(hit.num_blocks, 3);
  EXPECT_EQ(hit.num_evictable, 3);
  // 25 tokens = 4 blocks: 1 fresh + 3 revived, all out of the 6 free.
  EXPECT_EQ(kv.NumBlocksToAdmit(hit, 25), 4);
  EXPECT_EQ(kv.AcquireCachedPrefix(2, a), 24);
  EXPECT_EQ(kv.num_free_blocks(), 3);
  ASSERT_TRUE(kv.Reserve(2, 25));
  EXPECT_EQ(kv.num_free_blocks(), 2);
  EXPECT_THAT(std::vector<int>(kv.BlockTable(2).begin(), kv.BlockTable(2).begin() + 3),
              ElementsAreArray(table_a.begin(), table_a.begin() + 3));
}

TEST(KvCacheManagerTest, EvictedPrefixIsRecomputedNotReused) {
  KvCacheManager kv(3, kBs, true);
  const std::vector<int> a = Seq(17, 3);  // 2 full blocks + 1 token
  Prefill(kv, 1, a);
  kv.Free(1);
  ASSERT_TRUE(kv.Reserve(2, 24));  // takes all 3 blocks: everything cached is evicted
  EXPECT_EQ(kv.num_cached_blocks(), 0);
  kv.Free(2);
  EXPECT_EQ(kv.FindCachedPrefix(a).num_tokens, 0);
}

TEST(KvCacheManagerTest, PrefixCachingOffSharesNothing) {
  KvCacheManager kv(16, kBs, false);
  const std::vector<int> a = Seq(30, 1);
  Prefill(kv, 1, a);
  EXPECT_EQ(kv.AcquireCachedPrefix(2, a), 0);
  EXPECT_EQ(kv.num_cached_blocks(), 0);
  EXPECT_EQ(kv.num_prefix_queries(), 0);
}

uint64_t ConstantHash(uint64_t, std::span<const int>) { return 42; }

// Every block of every sequence has the same 64-bit key. Sharing mostly stops, but no lookup may
// ever return a block whose whole prefix differs.
TEST(KvCacheManagerTest, ForcedHashCollisionsNeverShareWrongBlocks) {
  KvCacheManager kv(32, kBs, true, &ConstantHash);
  // a = [X][X][Y]+1: block 1 has block 0's tokens and key but another prefix.
  std::vector<int> x = Seq(kBs, 10), y = Seq(kBs, 500);
  std::vector<int> a = x;
  a.insert(a.end(), x.begin(), x.end());
  a.insert(a.end(), y.begin(), y.end());
  a.push_back(1);
  Prefill(kv, 1, a);
  EXPECT_EQ(kv.num_cached_blocks(), 1);  // only the first could take key 42

  // Same tokens: block 0 matches exactly; block 1 (same tokens, same key as block 0) must not
  // be answered with block 0, whose KV sits at other positions.
  EXPECT_EQ(kv.AcquireCachedPrefix(2, a), kBs);
  EXPECT_EQ(kv.BlockTable(2)[0], kv.BlockTable(1)[0]);

  // Other first-block tokens under the same key: no hit.
  std::vector<int> b = y;
  b.insert(b.end(), x.begin(), x.end());
  b.push_back(1);
  EXPECT_EQ(kv.AcquireCachedPrefix(3, b), 0);
}

// Random admissions, growth, commits and frees over a small pool with heavy prefix overlap.
// Invariants each round: a block's refcount equals the number of tables holding it; the free
// count equals the blocks with refcount 0. At the end everything is free and unreferenced.
TEST(KvCacheManagerTest, RandomWorkloadKeepsRefcountsExactAndEndsWithEveryBlockFree) {
  constexpr int kBlocks = 24;
  KvCacheManager kv(kBlocks, kBs, true);
  std::mt19937 rng(1234);
  std::map<SeqId, std::vector<int>> live;  // tokens written so far
  SeqId next = 1;
  int shared_tokens = 0;
  for (int round = 0; round < 4000; ++round) {
    const int op = std::uniform_int_distribution<int>(0, 9)(rng);
    if (op < 3) {
      // A prompt from a small family of prefixes, so hits are common.
      std::vector<int> p = Seq(kBs * std::uniform_int_distribution<int>(0, 3)(rng),
                               1000 * std::uniform_int_distribution<int>(0, 2)(rng));
      const int extra = std::uniform_int_distribution<int>(1, 12)(rng);
      for (int i = 0; i < extra; ++i) p.push_back(std::uniform_int_distribution<int>(0, 3)(rng));
      const PrefixHit hit = kv.FindCachedPrefix(p);
      if (kv.NumBlocksToAdmit(hit, static_cast<int>(p.size())) > kv.num_free_blocks()) continue;
      const SeqId id = next++;
      ASSERT_EQ(kv.AcquireCachedPrefix(id, p), hit.num_tokens);
      ASSERT_TRUE(kv.Reserve(id, static_cast<int>(p.size())));
      shared_tokens += hit.num_tokens;
      kv.Commit(id, p, static_cast<int>(p.size()));
      live[id] = p;
    } else if (op < 7 && !live.empty()) {
      auto it =
          std::next(live.begin(), std::uniform_int_distribution<size_t>(0, live.size() - 1)(rng));
      it->second.push_back(std::uniform_int_distribution<int>(0, 3)(rng));
      const int n = static_cast<int>(it->second.size());
      if (!kv.Reserve(it->first, n)) {
        EXPECT_FALSE(kv.CanReserve(it->first, n));
        kv.Free(it->first);
        live.erase(it);
        continue;
      }
      kv.Commit(it->first, it->second, n);
    } else if (!live.empty()) {
      auto it =
          std::next(live.begin(), std::uniform_int_distribution<size_t>(0, live.size() - 1)(rng));
      kv.Free(it->first);
      live.erase(it);
    }
    std::vector<int> refs(kBlocks, 0);
    for (const auto& [id, tokens] : live) {
      const std::vector<int>& table = kv.BlockTable(id);
      ASSERT_EQ(static_cast<int>(table.size()), kv.NumBlocksFor(static_cast<int>(tokens.size())));
      for (int b : table) ++refs[b];
    }
    int zero = 0;
    for (int b = 0; b < kBlocks; ++b) {
      ASSERT_EQ(kv.pool().ref_count(b), refs[b]) << "block " << b << " round " << round;
      zero += refs[b] == 0;
    }
    ASSERT_EQ(kv.num_free_blocks(), zero);
  }
  EXPECT_GT(shared_tokens, 0);
  for (const auto& [id, tokens] : live) kv.Free(id);
  EXPECT_EQ(kv.num_free_blocks(), kBlocks);
  EXPECT_EQ(kv.num_sequences(), 0);
  for (int b = 0; b < kBlocks; ++b) EXPECT_EQ(kv.pool().ref_count(b), 0);
}

}  // namespace
}  // namespace cleave
