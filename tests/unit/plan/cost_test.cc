// Hand-computed cases for the planner's formulas, on the seed documents' model.
#include <gtest/gtest.h>

#include "engine/model/presets.h"
#include "engine/plan/cost.h"
#include "engine/plan/model.h"

namespace cleave::plan {
namespace {

PlanModel Seed() {  // 16 layers, hidden 1024, 16 x 64 heads, 64 experts of 2048, top-2, vocab 32000
  return FromModelConfig(*PresetConfig("seed"), "seed");
}

TEST(PlanModelTest, ParameterCountsByHand) {
  const PlanModel m = Seed();
  EXPECT_EQ(m.AttentionParamsPerLayer(), 4 * 1024 * 1024);              // 4,194,304
  EXPECT_EQ(m.ParamsPerExpertPerLayer(), 3 * 1024 * 2048);              // 6,291,456
  EXPECT_EQ(m.ExpertParamsPerLayer(), 402'653'184);                     // x 64
  EXPECT_EQ(m.DenseParamsPerLayer(), 4'194'304 + 65'536 + 2'048);       // + router + 2 norms
  EXPECT_EQ(m.DenseParams(), 16 * 4'261'888 + 2 * 32'000 * 1024 + 1024);  // 133,727,232
  EXPECT_EQ(m.ExpertParams(), 6'442'450'944);
  EXPECT_EQ(m.TotalParams(), 6'576'178'176);
  // The model runtime counts the same checkpoint the same way.
  EXPECT_EQ(m.TotalParams(), PresetConfig("seed")->ParameterCount());
}

TEST(PlanModelTest, KvBytesPerToken) {
  PlanModel m = Seed();
  m.dtype_bytes = 2;
  EXPECT_EQ(m.KvBytesPerTokenPerLayer(), 2 * 16 * 64 * 2);  // K and V, 16 heads x 64, 2 B
  EXPECT_EQ(m.KvBytesPerToken(), 65'536);                   // x 16 layers = 64 KiB
  // The seed workload's peak: 128 sequences x 10240 tokens = 80 GiB.
  EXPECT_EQ(128LL * 10240 * m.KvBytesPerToken(), 80LL << 30);
  m.kv_heads = 4;  // GQA divides it by heads / kv_heads
  EXPECT_EQ(m.KvBytesPerToken(), 16'384);
}

TEST(PlanModelTest, Flops) {
  const PlanModel m = Seed();
  EXPECT_DOUBLE_EQ(m.AttentionFlops(1, 0), 2.0 * 4'194'304);
  // QK^T and PV over 100 positions: 2 matmuls x 2 FLOPs x 100 x 1024.
  EXPECT_DOUBLE_EQ(m.AttentionFlops(1, 100) - m.AttentionFlops(1, 0), 4.0 * 100 * 1024);
  EXPECT_DOUBLE_EQ(m.ExpertFlops(1), 2.0 * (2 * 6'291'456 + 65'536));
}

TEST(CostTest, AllToAllVolumePerLayer) {
  const PlanModel m = Seed();
  // 128 tokens x top-2 x 1024 x 2 B, dispatch + combine, 15/16 of them remote on 16 ranks.
  EXPECT_DOUBLE_EQ(AllToAllBytesPerLayer(m, 128, 16, false), 2.0 * 128 * 2 * 1024 * 2 * 15 / 16);
  EXPECT_DOUBLE_EQ(AllToAllBytesPerLayer(m, 128, 16, false), 983'040);
  EXPECT_DOUBLE_EQ(AllToAllBytesPerLayer(m, 128, 16, true), 1'048'576);
  EXPECT_DOUBLE_EQ(AllToAllBytesPerLayer(m, 128, 1, false), 0);
}

TEST(CostTest, PipelineBubble) {
  EXPECT_DOUBLE_EQ(PipelineBubble(1, 1), 0);
  EXPECT_DOUBLE_EQ(PipelineBubble(4, 1), 0.75);
  EXPECT_DOUBLE_EQ(PipelineBubble(4, 4), 3.0 / 7);
  EXPECT_DOUBLE_EQ(PipelineBubble(4, 57), 3.0 / 60);  // the 5% seed 000 claims
}

TEST(CostTest, AllReduceRingPlusLatency) {
  const Hardware hw = *HardwarePreset("seed-gpu");  // 450 GB/s, 3 us inside a node of 8
  EXPECT_NEAR(AllReduceSeconds(hw, 8, 1e6), 2.0 * 7 / 8 * 1e6 / 450e9 + 2 * 3 * 3e-6, 1e-12);
  EXPECT_NEAR(AllReduceSeconds(hw, 16, 1e6), 2.0 * 15 / 16 * 1e6 / 50e9 + 2 * 4 * 10e-6, 1e-12);
  EXPECT_EQ(AllReduceSeconds(hw, 1, 1e6), 0);
}

TEST(CostTest, DecodeRooflineByHand) {
  const PlanModel m = Seed();
  const Hardware hw = *HardwarePreset("seed-gpu");  // 240 TFLOP/s and 1.44 TB/s effective
  const StepTime s = DecodeStep(m, hw, ParallelLayout{}, 1, 0);
  // Per layer: attention reads its 4,261,888 dense params (2 B) + one token's KV (4096 B);
  // the experts: 64 (1 - (63/64)^2) = 1.984375 distinct experts touched by 2 picks.
  const double attention = (4'261'888.0 * 2 + 4096) / 1.44e12;
  const double experts = 1.984375 * 6'291'456 * 2 / 1.44e12;
  EXPECT_NEAR(s.roofline_s, 16 * (attention + experts), 1e-12);
  EXPECT_NEAR(s.compute_s, 16 * (2.0 * 4'194'304 + 2.0 * (2 * 6'291'456 + 65'536)) / 240e12, 1e-15);
  EXPECT_EQ(s.tp_allreduce_s, 0);
  EXPECT_EQ(s.ep_alltoall_s, 0);
  EXPECT_DOUBLE_EQ(s.total_s, s.stage_s);
}

TEST(CostTest, PrefillIsComputeBound) {
  const PlanModel m = Seed();
  const Hardware hw = *HardwarePreset("seed-gpu");
  const StepTime s = PrefillStep(m, hw, ParallelLayout{}, 1, 4096);
  EXPECT_GT(s.compute_s, s.memory_s);
  // 4096 tokens: projections + causal attention over 2048 positions on average + experts.
  const double flops = 16 * (2.0 * 4096 * 4'194'304 + 4.0 * 4096 * 2048 * 1024 +
                             2.0 * 4096 * (2 * 6'291'456 + 65'536));
  EXPECT_NEAR(s.compute_s, flops / 240e12, 1e-9);
}

TEST(CostTest, PerGpuMemoryByPart) {
  const PlanModel m = Seed();
  const Hardware hw = *HardwarePreset("seed-gpu");
  ParallelLayout l{8, 4, 8, 4, ExpertPlacement::kColocated, 1};
  const MemoryBreakdown b = PerGpuMemory(m, hw, l, 32, 10240, 0);
  // 4 layers' dense part / tp 8 + the embedding (vocab-parallel / 8), 2 B each.
  EXPECT_DOUBLE_EQ(b.dense_weights, (4.0 * 4'261'888 / 8 + 32'000.0 * 1024 / 8) * 2);
  EXPECT_DOUBLE_EQ(b.expert_weights, 4.0 * 402'653'184 * 2 / 8);
  // 32 sequences x 10240 tokens x 4 layers x 4096 B / 8 KV-head shards.
  EXPECT_DOUBLE_EQ(b.kv_cache, 32.0 * 10240 * 4 * 4096 / 8);
  EXPECT_DOUBLE_EQ(b.activations, kRuntimeReserveBytes);  // no step tokens
  EXPECT_TRUE(b.Fits());
  // Remote experts: the attention GPUs and the expert GPUs hold different parts.
  l.placement = ExpertPlacement::kRemote;
  EXPECT_EQ(l.GpusPerStage(), 16);
  EXPECT_TRUE(PerGpuMemory(m, hw, l, 32, 10240, 0).split_kinds);
}

TEST(CostTest, SloBoundUtilisation) {
  EXPECT_EQ(SloBoundUtilisation(2.0, 1.0), 0);  // an idle server already misses it
  // service 1, SLO 1.5: rho / (2 (1 - rho)) <= 0.5 gives rho = 0.5.
  EXPECT_NEAR(SloBoundUtilisation(1.0, 1.5), 0.5, 1e-12);
}

TEST(LayoutTest, ValidateNamesTheProblem) {
  const LayoutShape s{16, 16, 16, 64};
  EXPECT_TRUE((ParallelLayout{8, 4, 8, 4}).Validate(s).ok());
  EXPECT_EQ((ParallelLayout{1, 1, 48, 1}).Validate(s).message(), "64 experts do not divide by ep=48");
  EXPECT_EQ((ParallelLayout{32, 1, 1, 1}).Validate(s).message(), "tp=32 exceeds 16 attention heads");
  EXPECT_EQ((ParallelLayout{1, 5, 1, 1}).Validate(s).message(), "pp=5 does not divide 16 layers");
  EXPECT_EQ((ParallelLayout{0, 1, 1, 1}).Validate(s).message(), "tp: must be positive, got 0");
  EXPECT_FALSE((ParallelLayout{4, 1, 6, 1}).Validate({16, 16, 16, 48}).ok());  // ep, tp colocated
}

TEST(LayoutTest, GpuCountsBothSemantics) {
  const ParallelLayout seed000{8, 4, 64, 4};
  EXPECT_EQ(seed000.ProductCount(), 8192);
  EXPECT_EQ(seed000.GpuCount(), 1024);  // a stage is max(tp, ep) = 64 GPUs
  ParallelLayout remote{2, 1, 4, 3, ExpertPlacement::kRemote};
  EXPECT_EQ(remote.GpuCount(), 18);  // (2 attention + 4 expert ranks) x 3 instances
}

}  // namespace
}  // namespace cleave::plan
