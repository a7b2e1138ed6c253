// Search results are layouts the runtime's validation accepts, and the emitted cluster
// spec is one `cleave up` loads. The CLI's exit codes for bad inputs.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "engine/plan/emit.h"
#include "engine/plan/plan_file.h"
#include "engine/plan/search.h"
#include "tools/cleave/cluster_spec.h"

namespace cleave::plan {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : ".";
}

PlanFile Seed000() {
  auto p = LoadPlanFile(Env("CLEAVE_SOURCE_DIR") + "/deploy/plans/seed-000.yaml");
  EXPECT_TRUE(p.ok()) << p.status();
  return *p;
}

TEST(SearchTest, ResultsAreValidLayoutsWithinBudget) {
  const PlanFile p = Seed000();
  const LayoutShape shape{p.model.heads, p.model.kv_heads, p.model.layers, p.model.experts};
  const auto deployments = Search(p.model, p.hardware, p.workload, p.gpus, 5);
  ASSERT_FALSE(deployments.empty());
  for (size_t i = 0; i < deployments.size(); ++i) {
    const Deployment& d = deployments[i];
    EXPECT_TRUE(d.prefill.layout.Validate(shape).ok()) << d.prefill.layout.ToString();
    EXPECT_TRUE(d.decode.layout.Validate(shape).ok()) << d.decode.layout.ToString();
    EXPECT_EQ(d.gpus, d.prefill.layout.GpuCount() + d.decode.layout.GpuCount());
    EXPECT_LE(d.gpus, p.gpus);
    EXPECT_TRUE(d.prefill.memory.Fits() && d.decode.memory.Fits());
    EXPECT_LE(d.prefill.latency_s, p.workload.ttft_slo_s);
    EXPECT_LE(d.decode.latency_s, p.workload.tpot_slo_s);
    if (i > 0) {
      EXPECT_LE(d.goodput_per_gpu, deployments[i - 1].goodput_per_gpu);
    }
  }
}

TEST(SearchTest, TightSloRejectsWithReasons) {
  PlanFile p = Seed000();
  p.workload.tpot_slo_s = 1e-6;
  const auto dec = DecodeCandidates(p.model, p.hardware, p.workload, p.gpus);
  ASSERT_FALSE(dec.empty());
  EXPECT_FALSE(dec.front().feasible);
  EXPECT_NE(dec.front().reason.find("SLO"), std::string::npos);
  EXPECT_TRUE(Search(p.model, p.hardware, p.workload, p.gpus, 5).empty());
}

TEST(EmitTest, ClusterSpecLoadsInCleaveUp) {
  const PlanFile p = Seed000();
  const auto deployments = Search(p.model, p.hardware, p.workload, p.gpus, 1);
  ASSERT_FALSE(deployments.empty());
  const auto dir = std::filesystem::temp_directory_path() / "cleave_plan_emit_test";
  std::filesystem::create_directories(dir / "model");
  std::ofstream(dir / "model" / "config.json") << "{}";  // LoadClusterSpec checks it exists
  EmitOptions opt;
  opt.model_path = "model";
  opt.hardware = "seed-gpu";
  {
    std::ofstream(dir / "cluster.yaml") << ClusterSpecYaml(deployments[0], p.model, p.workload, opt);
  }
  auto spec = launch::LoadClusterSpec((dir / "cluster.yaml").string(), dir.string());
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->prefill.replicas, deployments[0].prefill_instances);
  EXPECT_EQ(spec->decode.replicas, deployments[0].decode_instances);
  EXPECT_EQ(*spec->decode.max_num_seqs, deployments[0].decode.batch);
  const std::string values = HelmValuesYaml(deployments[0], p.model, p.workload, opt);
  EXPECT_NE(values.find("gpusPerReplica"), std::string::npos);
  std::filesystem::remove_all(dir);
}

int Cli(const std::string& args) {
  const std::string cmd = Env("CLEAVE_BINARY_DIR") + "/tools/cleave/cleave plan " + args + " >/dev/null 2>&1";
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST(CliTest, ExitCodes) {
  const std::string plans = Env("CLEAVE_SOURCE_DIR") + "/deploy/plans/";
  if (!std::filesystem::exists(Env("CLEAVE_BINARY_DIR") + "/tools/cleave/cleave")) GTEST_SKIP();
  EXPECT_EQ(Cli("check " + plans + "seed-000.yaml"), 1);  // inconsistencies found
  EXPECT_EQ(Cli("estimate " + plans + "seed-000.yaml --ep 8"), 0);
  EXPECT_EQ(Cli("estimate " + plans + "seed-000.yaml --ep 48"), 2);  // 64 experts / 48
  EXPECT_EQ(Cli("estimate " + plans + "seed-000.yaml --pp 0"), 2);
  EXPECT_EQ(Cli("search " + plans + "seed-000.yaml --gpus -4"), 2);
  EXPECT_EQ(Cli("check /nonexistent.yaml"), 2);
  EXPECT_EQ(Cli("frobnicate x.yaml"), 2);
}

}  // namespace
}  // namespace cleave::plan
