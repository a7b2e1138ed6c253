// BlockPool: allocation and refcounts, LRU eviction of cached blocks, and exact (never
// hash-only) prefix-cache hits.
#include "engine/kv/block_pool.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cleave {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

constexpr int kBs = 4;

std::vector<int> Tokens(int first) { return {first, first + 1, first + 2, first + 3}; }

// Allocates one block and publishes it as a first block with tokens Tokens(first).
int CachedBlock(BlockPool& pool, int first, uint64_t* content_id = nullptr) {
  std::vector<int> got;
  EXPECT_TRUE(pool.Allocate(1, &got));
  const std::vector<int> t = Tokens(first);
  const uint64_t id = pool.Publish(got[0], HashBlockTokens(kRootBlockHash, t), kRootContentId, t);
  if (content_id) *content_id = id;
  return got[0];
}

TEST(BlockPoolTest, AllocateHandsOutDistinctBlocksAndFailsWithoutChange) {
  BlockPool pool(5, kBs, /*enable_caching=*/true);
  EXPECT_EQ(pool.num_free(), 5);
  std::vector<int> got;
  ASSERT_TRUE(pool.Allocate(3, &got));
  EXPECT_THAT(got, UnorderedElementsAre(0, 1, 2));
  EXPECT_EQ(pool.num_free(), 2);
  for (int b : got) EXPECT_EQ(pool.ref_count(b), 1);

  std::vector<int> more = {99};
  EXPECT_FALSE(pool.Allocate(3, &more));
  EXPECT_THAT(more, ElementsAre(99));  // untouched
  EXPECT_EQ(pool.num_free(), 2);
  EXPECT_THAT(pool.FreeQueue(), ElementsAre(3, 4));
}

TEST(BlockPoolTest, ABlockIsFreeOnlyWhenItsLastReferenceGoes) {
  BlockPool pool(2, kBs, true);
  const int b = CachedBlock(pool, 10);
  pool.Ref(b);
  EXPECT_EQ(pool.ref_count(b), 2);
  pool.Unref(b);
  EXPECT_EQ(pool.num_free(), 1);
  pool.Unref(b);
  EXPECT_EQ(pool.ref_count(b), 0);
  EXPECT_EQ(pool.num_free(), 2);
  EXPECT_TRUE(pool.is_cached(b));  // evictable, not forgotten
}

TEST(BlockPoolTest, CachedBlocksAreEvictedLeastRecentlyFreedFirst) {
  BlockPool pool(4, kBs, true);
  const int a = CachedBlock(pool, 10);
  const int b = CachedBlock(pool, 20);
  const int c = CachedBlock(pool, 30);
  // Free order b, c, a: b is the oldest free, so the first to lose its content.
  pool.Unref(b);
  pool.Unref(c);
  pool.Unref(a);
  EXPECT_EQ(pool.num_cached(), 3);
  std::vector<int> got;
  ASSERT_TRUE(pool.Allocate(1, &got));  // the never-used block 3 goes first
  EXPECT_THAT(got, ElementsAre(3));
  EXPECT_EQ(pool.num_cached(), 3);
  ASSERT_TRUE(pool.Allocate(2, &got));
  EXPECT_THAT(got, ElementsAre(3, b, c));
  EXPECT_FALSE(pool.is_cached(b));
  EXPECT_FALSE(pool.is_cached(c));
  EXPECT_TRUE(pool.is_cached(a));
  const std::vector<int> tb = Tokens(20);
  EXPECT_EQ(pool.Find(HashBlockTokens(kRootBlockHash, tb), kRootContentId, tb), -1);
  const std::vector<int> ta = Tokens(10);
  EXPECT_EQ(pool.Find(HashBlockTokens(kRootBlockHash, ta), kRootContentId, ta), a);
}

TEST(BlockPoolTest, UncachedFreedBlocksAreReusedBeforeCachedOnes) {
  BlockPool pool(3, kBs, true);
  const int cached = CachedBlock(pool, 10);
  std::vector<int> plain;
  ASSERT_TRUE(pool.Allocate(2, &plain));
  pool.Unref(cached);
  pool.Unref(plain[0]);
  pool.Unref(plain[1]);
  // Freed later, but holding nothing worth keeping: they go to the head.
  EXPECT_THAT(pool.FreeQueue(), ElementsAre(plain[1], plain[0], cached));
}

TEST(BlockPoolTest, AHitOnAnEvictableBlockTakesItOutOfTheFreeQueue) {
  BlockPool pool(3, kBs, true);
  const int a = CachedBlock(pool, 10);
  pool.Unref(a);
  EXPECT_EQ(pool.num_free(), 3);
  const std::vector<int> t = Tokens(10);
  ASSERT_EQ(pool.Find(HashBlockTokens(kRootBlockHash, t), kRootContentId, t), a);
  pool.Ref(a);
  EXPECT_EQ(pool.num_free(), 2);
  EXPECT_THAT(pool.FreeQueue(), testing::Not(testing::Contains(a)));
  std::vector<int> got;
  ASSERT_TRUE(pool.Allocate(2, &got));
  EXPECT_THAT(got, testing::Not(testing::Contains(a)));
  EXPECT_TRUE(pool.is_cached(a));
  EXPECT_FALSE(pool.Allocate(1, &got));
}

TEST(BlockPoolTest, AHitIsVerifiedAgainstTokensAndParentNotJustTheHash) {
  BlockPool pool(4, kBs, true);
  uint64_t id = 0;
  const int a = CachedBlock(pool, 10, &id);
  const uint64_t h = pool.hash(a);
  // Same key, other tokens: a collision must miss.
  EXPECT_EQ(pool.Find(h, kRootContentId, Tokens(11)), -1);
  // Same key and tokens after another prefix: also a miss.
  EXPECT_EQ(pool.Find(h, id + 100, Tokens(10)), -1);
  EXPECT_EQ(pool.Find(h, kRootContentId, Tokens(10)), a);
  // Wrong length never matches.
  const std::vector<int> short_tokens = {10, 11};
  EXPECT_EQ(pool.Find(h, kRootContentId, short_tokens), -1);
}

TEST(BlockPoolTest, PublishingACollidingHashKeepsTheOldEntryAndMatchesNothing) {
  BlockPool pool(4, kBs, true);
  uint64_t id_a = 0;
  const int a = CachedBlock(pool, 10, &id_a);
  std::vector<int> got;
  ASSERT_TRUE(pool.Allocate(1, &got));
  const int b = got[0];
  const std::vector<int> other = Tokens(50);
  const uint64_t id_b = pool.Publish(b, pool.hash(a), kRootContentId, other);
  EXPECT_NE(id_b, id_a);
  EXPECT_NE(id_b, kRootContentId);
  EXPECT_FALSE(pool.is_cached(b));
  EXPECT_EQ(pool.Find(pool.hash(a), kRootContentId, other), -1);
  EXPECT_EQ(pool.Find(pool.hash(a), kRootContentId, Tokens(10)), a);
}

TEST(BlockPoolTest, PublishingIdenticalContentKeepsTheExistingEntry) {
  BlockPool pool(4, kBs, true);
  uint64_t id_a = 0;
  const int a = CachedBlock(pool, 10, &id_a);
  uint64_t id_twin = 0;
  const int twin = CachedBlock(pool, 10, &id_twin);
  EXPECT_EQ(id_twin, id_a);  // same content, same identity
  EXPECT_TRUE(pool.is_cached(a));
  EXPECT_FALSE(pool.is_cached(twin));
  EXPECT_EQ(pool.num_cached(), 1);
  pool.Unref(twin);  // uncached: straight to the head of the queue
  EXPECT_EQ(pool.FreeQueue().front(), twin);
}

TEST(BlockPoolTest, WithoutCachingNothingIsPublishedOrFound) {
  BlockPool pool(2, kBs, false);
  std::vector<int> got;
  ASSERT_TRUE(pool.Allocate(2, &got));
  const std::vector<int> t = Tokens(1);
  EXPECT_EQ(pool.Find(HashBlockTokens(kRootBlockHash, t), kRootContentId, t), -1);
  EXPECT_EQ(pool.num_cached(), 0);
}

TEST(BlockPoolTest, HashIsChainedAndOrderSensitive) {
  const std::vector<int> x = {1, 2, 3, 4}, y = {4, 3, 2, 1};
  EXPECT_NE(HashBlockTokens(kRootBlockHash, x), HashBlockTokens(kRootBlockHash, y));
  const uint64_t hx = HashBlockTokens(kRootBlockHash, x);
  const uint64_t hy = HashBlockTokens(kRootBlockHash, y);
  EXPECT_NE(HashBlockTokens(hx, x), HashBlockTokens(hy, x));
  EXPECT_EQ(HashBlockTokens(hx, y), HashBlockTokens(hx, y));
  // A golden value: the hash must not change across processes or builds (a router may
  // compute it too), so changing the function is a deliberate, visible act.
  EXPECT_EQ(HashBlockTokens(kRootBlockHash, x), 0x1b50c1697a8c0a0eull);
}

}  // namespace
}  // namespace cleave
