// The seed documents' reviews: each named inconsistency found, with the corrected figure.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "engine/plan/review.h"

namespace cleave::plan {
namespace {

std::string Source() {
  const char* dir = std::getenv("CLEAVE_SOURCE_DIR");
  return dir ? dir : ".";
}

std::vector<Finding> ReviewSeed(const std::string& name) {
  auto p = LoadPlanFile(Source() + "/deploy/plans/" + name + ".yaml");
  EXPECT_TRUE(p.ok()) << p.status();
  return Review(*p);
}

const Finding& Get(const std::vector<Finding>& f, const std::string& id) {
  static const Finding kMissing{"missing", false, "", {}, {}};
  const Finding* found = FindFinding(f, id);
  EXPECT_NE(found, nullptr) << id;
  return found ? *found : kMissing;
}

TEST(ReviewTest, Seed000) {
  const auto f = ReviewSeed("seed-000");
  const Finding& gpus = Get(f, "gpu-count");
  EXPECT_TRUE(gpus.inconsistent);
  EXPECT_EQ(*gpus.corrected, 8192);  // 64 x 8 x 4 x 4, not 128
  EXPECT_NE(gpus.message.find("1024 GPUs"), std::string::npos);  // cleave's semantics
  EXPECT_NE(gpus.message.find("tp=8 pp=4 ep=8 dp=4"), std::string::npos);

  const Finding& experts = Get(f, "experts-per-gpu");
  EXPECT_TRUE(experts.inconsistent);
  EXPECT_EQ(*experts.corrected, 8);  // 8 GPUs per stage per replica hold 64 experts

  const Finding& total = Get(f, "total-params");
  EXPECT_TRUE(total.inconsistent);
  EXPECT_EQ(*total.corrected, 6'576'178'176);

  const Finding& mem = Get(f, "param-bytes-per-gpu");
  EXPECT_TRUE(mem.inconsistent);
  // tp=8 pp=4 ep=8: (4 x 4,261,888 / 8 + 32000 x 1024 / 8) x 2 + 4 x 402,653,184 x 2 / 8.
  EXPECT_DOUBLE_EQ(*mem.corrected, 12'453'888.0 + 402'653'184.0);
  EXPECT_NE(mem.message.find("468.8 MB"), std::string::npos);  // 234M params are 469 MB
  EXPECT_NE(mem.message.find("1.88 GB"), std::string::npos);   // 30B / 32 GPUs per replica

  const Finding& kv = Get(f, "kv-cache");
  EXPECT_TRUE(kv.inconsistent);
  EXPECT_DOUBLE_EQ(*kv.corrected, 128.0 * 10240 * 65536);  // 80 GiB
  EXPECT_NE(kv.message.find("671.1 MB per GPU"), std::string::npos);

  EXPECT_EQ(*Get(f, "optimizer-state").corrected, 0);
  EXPECT_EQ(*Get(f, "compute-utilization").corrected, 0.6);
  EXPECT_DOUBLE_EQ(*Get(f, "pipeline-bubble").corrected, 0.75);
  EXPECT_NEAR(*Get(f, "comm-overhead").corrected, 0.25 / 2.35, 1e-12);
  EXPECT_NEAR(*Get(f, "latency").corrected, 16 * 2.35e-3 / 0.95, 1e-12);  // its own figures: 39.6 ms
  EXPECT_TRUE(Get(f, "throughput").inconsistent);
  EXPECT_NE(Get(f, "throughput").message.find("1.6 K tokens/s as decode"), std::string::npos);
  EXPECT_TRUE(Get(f, "memory-utilization").inconsistent);
  EXPECT_TRUE(Get(f, "compute-per-layer").inconsistent);
}

TEST(ReviewTest, Seed001) {
  const auto f = ReviewSeed("seed-001");
  const Finding& gpus = Get(f, "gpu-count");
  EXPECT_FALSE(gpus.inconsistent);  // the product is 1024 as stated...
  EXPECT_NE(gpus.message.find("occupies 256 GPUs"), std::string::npos);  // ...cleave's is 256
  EXPECT_FALSE(Get(f, "experts-per-gpu").inconsistent);  // 64 GPUs per stage: 1 expert each
  EXPECT_EQ(*Get(f, "experts-per-gpu").corrected, 1);

  EXPECT_EQ(*Get(f, "total-params").corrected, 6'576'178'176);
  EXPECT_EQ(*Get(f, "dense-params").corrected, 133'727'232);
  EXPECT_EQ(*Get(f, "expert-params").corrected, 6'442'450'944);
  EXPECT_EQ(*Get(f, "params-per-expert").corrected, 16.0 * 6'291'456);
  // tp=4 pp=4 ep=64: 4 layers x 402,653,184 / 64 experts' worth = 25.2 M expert params.
  EXPECT_DOUBLE_EQ(*Get(f, "expert-params-per-gpu").corrected, 4.0 * 402'653'184 / 64);
  EXPECT_DOUBLE_EQ(*Get(f, "params-per-gpu").corrected,
                   4.0 * 4'261'888 / 4 + 32'000.0 * 1024 / 4 + 4.0 * 402'653'184 / 64);
  EXPECT_TRUE(Get(f, "param-bytes-per-gpu").inconsistent);
  EXPECT_EQ(*Get(f, "param-capacity").corrected, 64e9);
  EXPECT_TRUE(Get(f, "kv-cache").inconsistent);
  EXPECT_NEAR(*Get(f, "alltoall-volume").corrected, (15.0 / 16) / (63.0 / 64), 1e-12);
  EXPECT_TRUE(Get(f, "per-phase").inconsistent);
}

TEST(PlanFileTest, BadInputsNameTheField) {
  const std::string base =
      "model: {preset: seed}\nhardware: {preset: seed-gpu}\ngpus: 8\n"
      "workload: {batch: 4, prompt_tokens: 100, output_tokens: 10, ttft_slo_ms: 1000, tpot_slo_ms: 50}\n";
  EXPECT_TRUE(ParsePlanFile(base, ".").ok());
  auto message = [&](const std::string& extra, const std::string& replace_from = "",
                     const std::string& replace_to = "") {
    std::string text = base + extra;
    if (!replace_from.empty()) text.replace(text.find(replace_from), replace_from.size(), replace_to);
    auto p = ParsePlanFile(text, ".");
    EXPECT_FALSE(p.ok()) << text;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(p.status().message());
  };
  EXPECT_NE(message("layout: {tp: 3}\n").find("tp=3 does not divide 16 attention heads"),
            std::string::npos);
  EXPECT_NE(message("layout: {tp: 0}\n").find("layout.tp: must be positive"), std::string::npos);
  EXPECT_NE(message("layout: {ep: -2}\n").find("layout.ep: must be positive"), std::string::npos);
  EXPECT_NE(message("", "batch: 4", "batch: 0").find("workload.batch"), std::string::npos);
  EXPECT_NE(message("", "gpus: 8", "gpus: -1").find("gpus"), std::string::npos);
  EXPECT_NE(message("", "preset: seed-gpu", "preset: a100").find("hardware.preset: unknown preset"),
            std::string::npos);
  EXPECT_NE(message("", "preset: seed}", "preset: huge}").find("model.preset"), std::string::npos);
  EXPECT_NE(message("", "{preset: seed}", "{layers: 16, hidden: 0}").find("model.hidden"),
            std::string::npos);
  EXPECT_NE(message("typo: 1\n").find("typo: unknown key"), std::string::npos);
}

}  // namespace
}  // namespace cleave::plan
