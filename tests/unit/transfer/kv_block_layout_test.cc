// KvBlockSegments: every requested block moves exactly once per layer and K/V array, runs
// coalesce only when both sides are consecutive, and bad mappings are rejected.
#include "engine/transfer/kv_block_layout.h"

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "engine/runtime/backend.h"
#include "engine/transfer/ucx_wire.h"
#include "gtest/gtest.h"

namespace cleave {
namespace {

KvStorageShape Shape(int num_layers, int num_blocks) {
  KvStorageShape s;
  s.num_layers = num_layers;
  s.num_blocks = num_blocks;
  s.block_size = 4;
  s.num_kv_heads = 2;
  s.head_dim = 8;  // 256-byte blocks
  return s;
}

constexpr uint64_t kBlock = 4 * 2 * 8 * sizeof(float);

// A pool view at made-up addresses: layer l's K at 1e9 + l * 1e7, V 5e6 further.
KvPoolView FakeView(int num_layers, int num_blocks, uint64_t origin) {
  KvPoolView v;
  v.shape = Shape(num_layers, num_blocks);
  for (int l = 0; l < num_layers; ++l) {
    v.k_base.push_back(origin + l * 10'000'000ull);
    v.v_base.push_back(origin + l * 10'000'000ull + 5'000'000ull);
  }
  return v;
}

TEST(KvBlockLayoutTest, ContiguousMappingIsOneSegmentPerArray) {
  const KvPoolView src = FakeView(3, 16, 1'000'000'000), dst = FakeView(3, 32, 2'000'000'000);
  auto segs =
      KvBlockSegments(src, dst, std::vector<int>{3, 4, 5, 6}, std::vector<int>{10, 11, 12, 13});
  ASSERT_TRUE(segs.ok()) << segs.status();
  ASSERT_EQ(segs->size(), 6u);  // 3 layers x {K, V} x 1 run
  for (int l = 0; l < 3; ++l) {
    for (int kv = 0; kv < 2; ++kv) {
      const TransferSegment& s = (*segs)[2 * l + kv];
      const uint64_t src_base = kv == 0 ? src.k_base[l] : src.v_base[l];
      const uint64_t dst_base = kv == 0 ? dst.k_base[l] : dst.v_base[l];
      EXPECT_EQ(reinterpret_cast<uint64_t>(s.local), src_base + 3 * kBlock);
      EXPECT_EQ(s.remote_addr, dst_base + 10 * kBlock);
      EXPECT_EQ(s.length, 4 * kBlock);
    }
  }
}

TEST(KvBlockLayoutTest, RunsBreakWhenEitherSideJumps) {
  const KvPoolView src = FakeView(2, 16, 1'000'000'000), dst = FakeView(2, 16, 2'000'000'000);
  struct Case {
    std::vector<int> src, dst;
    size_t runs;  // counted by hand
  };
  const std::vector<Case> cases = {
      {{0, 2, 4}, {1, 3, 5}, 3},   // source stride 2
      {{0, 1, 2}, {5, 4, 3}, 3},   // destination descending
      {{0, 1, 2}, {7, 8, 10}, 2},  // destination jumps once
      {{5, 6, 7, 1, 2, 9}, {0, 1, 2, 8, 9, 3}, 3},
      {{2, 3}, {4, 5}, 1},
      {{9}, {0}, 1},
      {{}, {}, 0},
  };
  for (const Case& c : cases) {
    auto segs = KvBlockSegments(src, dst, c.src, c.dst);
    ASSERT_TRUE(segs.ok()) << segs.status();
    EXPECT_EQ(segs->size(), 2 * 2 * c.runs) << "mapping of " << c.src.size() << " blocks";
  }
}

// Expands segments back into (array, src block) -> dst block and compares with the request,
// for random mappings: every block moves once per array, to the right place.
TEST(KvBlockLayoutTest, RandomMappingsExpandBackToTheRequest) {
  std::mt19937 rng(7);
  const int layers = 3, src_blocks = 40, dst_blocks = 64;
  const KvPoolView src = FakeView(layers, src_blocks, 1'000'000'000);
  const KvPoolView dst = FakeView(layers, dst_blocks, 3'000'000'000);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<int> dst_perm(dst_blocks);
    for (int i = 0; i < dst_blocks; ++i) dst_perm[i] = i;
    std::shuffle(dst_perm.begin(), dst_perm.end(), rng);
    const int n = 1 + static_cast<int>(rng() % 30);
    std::vector<int> s(n), d(n);
    for (int i = 0; i < n; ++i) {
      // Mostly sequential sources and destinations so runs actually form.
      s[i] = (i > 0 && rng() % 3 != 0) ? (s[i - 1] + 1) % src_blocks
                                       : static_cast<int>(rng() % src_blocks);
      d[i] = i;
    }
    const int shift = static_cast<int>(rng() % (dst_blocks - n));
    for (int i = 0; i < n; ++i) d[i] = rng() % 4 == 0 ? dst_perm[i] : i + shift;
    // Destinations must be distinct: fall back to the permutation on collision.
    std::vector<bool> used(dst_blocks, false);
    for (int i = 0; i < n; ++i) {
      int k = 0;
      while (used[d[i]]) d[i] = dst_perm[k++];
      used[d[i]] = true;
    }
    auto segs = KvBlockSegments(src, dst, s, d);
    ASSERT_TRUE(segs.ok()) << segs.status();

    std::map<std::pair<int, int>, int> moved;  // (array, src block) -> dst block
    std::map<std::pair<int, int>, int> count;
    for (const TransferSegment& seg : *segs) {
      const uint64_t local = reinterpret_cast<uint64_t>(seg.local);
      ASSERT_EQ(seg.length % kBlock, 0u);
      int array = -1;
      for (int l = 0; l < layers; ++l) {
        if (local >= src.k_base[l] && local < src.k_base[l] + src_blocks * kBlock) array = 2 * l;
        if (local >= src.v_base[l] && local < src.v_base[l] + src_blocks * kBlock)
          array = 2 * l + 1;
      }
      ASSERT_GE(array, 0);
      const uint64_t src_base = array % 2 ? src.v_base[array / 2] : src.k_base[array / 2];
      const uint64_t dst_base = array % 2 ? dst.v_base[array / 2] : dst.k_base[array / 2];
      for (uint64_t off = 0; off < seg.length; off += kBlock) {
        const int sb = static_cast<int>((local + off - src_base) / kBlock);
        const int db = static_cast<int>((seg.remote_addr + off - dst_base) / kBlock);
        ASSERT_LT(db, dst_blocks);
        ++count[{array, db}];
        moved[{array, db}] = sb;
      }
    }
    ASSERT_EQ(moved.size(), static_cast<size_t>(2 * layers * n));
    for (int a = 0; a < 2 * layers; ++a) {
      for (int i = 0; i < n; ++i) {
        EXPECT_EQ((moved[{a, d[i]}]), s[i]);
        EXPECT_EQ((count[{a, d[i]}]), 1);
      }
    }
    // Breaks counted a second way: positions whose predecessor does not continue both sides.
    size_t runs = 0;
    for (int i = 0; i < n; ++i) {
      const bool continues = i > 0 && s[i] - s[i - 1] == 1 && d[i] - d[i - 1] == 1;
      runs += !continues;
    }
    EXPECT_EQ(segs->size(), 2 * layers * runs);
  }
}

TEST(KvBlockLayoutTest, RejectsBadMappings) {
  const KvPoolView src = FakeView(2, 8, 1'000'000'000), dst = FakeView(2, 8, 2'000'000'000);
  auto invalid = [&](std::vector<int> s, std::vector<int> d) {
    return absl::IsInvalidArgument(KvBlockSegments(src, dst, s, d).status());
  };
  EXPECT_TRUE(invalid({1, 2}, {3}));  // length mismatch
  EXPECT_TRUE(invalid({8}, {0}));     // source out of range
  EXPECT_TRUE(invalid({-1}, {0}));
  EXPECT_TRUE(invalid({0}, {8}));         // destination out of range
  EXPECT_TRUE(invalid({0, 1}, {4, 4}));   // one destination twice
  EXPECT_FALSE(invalid({2, 2}, {4, 5}));  // one source to two places is fine

  KvPoolView other = dst;
  other.shape.head_dim = 16;  // different block geometry
  EXPECT_TRUE(absl::IsInvalidArgument(KvBlockSegments(src, other, {{0}}, {{0}}).status()));
  other = dst;
  other.k_base.pop_back();  // a layer's base missing
  EXPECT_TRUE(absl::IsInvalidArgument(KvBlockSegments(src, other, {{0}}, {{0}}).status()));
}

TEST(KvBlockLayoutTest, RegionsAndViewsFollowTheStorage) {
  std::unique_ptr<Backend> backend = MakeCpuBackend();
  const KvStorageShape shape = Shape(3, 5);
  absl::StatusOr<KvStorage> kv = KvStorage::Create(backend.get(), shape);
  ASSERT_TRUE(kv.ok()) << kv.status();
  const std::vector<MemoryRegion> regions = KvStorageRegions(*kv);
  ASSERT_EQ(regions.size(), 6u);
  for (int l = 0; l < 3; ++l) {
    EXPECT_EQ(regions[2 * l].base, kv->k(l));
    EXPECT_EQ(regions[2 * l + 1].base, kv->v(l));
    EXPECT_EQ(regions[2 * l].length, 5 * kBlock);
    EXPECT_EQ(regions[2 * l + 1].length, 5 * kBlock);
  }
  const KvPoolView local = LocalKvPoolView(*kv);
  EXPECT_EQ(local.k_base[2], reinterpret_cast<uint64_t>(kv->k(2)));
  EXPECT_EQ(local.v_base[0], reinterpret_cast<uint64_t>(kv->v(0)));

  // What a peer reads back out of the descriptor of those regions.
  ucx_wire::RemoteDescriptor desc;
  desc.agent_id = 9;
  for (const MemoryRegion& r : regions) {
    desc.regions.push_back({reinterpret_cast<uint64_t>(r.base), r.length, "rkey"});
  }
  auto remote = RemoteKvPoolView(shape, ucx_wire::EncodeRemoteDescriptor(desc));
  ASSERT_TRUE(remote.ok()) << remote.status();
  EXPECT_EQ(remote->k_base, local.k_base);
  EXPECT_EQ(remote->v_base, local.v_base);

  EXPECT_FALSE(RemoteKvPoolView(Shape(2, 5), ucx_wire::EncodeRemoteDescriptor(desc)).ok());
  EXPECT_FALSE(RemoteKvPoolView(Shape(3, 6), ucx_wire::EncodeRemoteDescriptor(desc)).ok());
  EXPECT_FALSE(RemoteKvPoolView(shape, "not a descriptor").ok());
}

}  // namespace
}  // namespace cleave
