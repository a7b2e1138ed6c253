#include "engine/plan/emit.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace cleave::plan {
namespace {

// The engine's headroom: the planner's activation estimate is an estimate.
constexpr double kKvShareOfFree = 0.9;

int64_t MaxBatchedTokens(const PoolCandidate& c, const Workload& wl, bool prefill) {
  return prefill ? wl.prompt_tokens_max : std::max<int64_t>(c.batch, 256);
}

void Pool(std::string& out, const char* kind, const PoolCandidate& c, const Workload& wl,
          int64_t block_size, bool prefill) {
  absl::StrAppend(&out, "# ", kind, " layout per replica: ", c.layout.ToString(), " (",
                  c.layout.GpusPerInstance(), " GPUs); ", c.reason, "\n");
  absl::StrAppend(&out, kind, ":\n  replicas: ", c.layout.dp, "\n  kv_cache_mib: ", KvCacheMib(c),
                  "\n  max_num_seqs: ", std::max<int64_t>(c.batch, prefill ? 16 : 1),
                  "\n  max_num_batched_tokens: ", MaxBatchedTokens(c, wl, prefill));
  if (prefill) absl::StrAppend(&out, "\n  max_prefill_chunk: ", wl.prompt_tokens_max);
  absl::StrAppend(&out, "\n  block_size: ", block_size, "\n");
}

void ValuesPool(std::string& out, const char* kind, const PoolCandidate& c, const Workload& wl,
                int64_t block_size, bool prefill) {
  const ParallelLayout& l = c.layout;
  absl::StrAppend(&out, kind, ":\n  replicas: ", l.dp, "\n  gpusPerReplica: ", l.GpusPerInstance(),
                  "\n  layout:\n    tp: ", l.tp, "\n    pp: ", l.pp, "\n    ep: ", l.ep,
                  "\n    expertPlacement: ", PlacementName(l.placement),
                  "\n  engine:\n    kvCacheMiB: ", KvCacheMib(c), "\n    maxNumSeqs: ",
                  std::max<int64_t>(c.batch, prefill ? 16 : 1), "\n    maxNumBatchedTokens: ",
                  MaxBatchedTokens(c, wl, prefill), "\n    blockSize: ", block_size,
                  absl::StrFormat("\n  expected:\n    latencyMs: %.2f\n    requestsPerSecond: %.3f\n",
                                  c.latency_s * 1e3, c.rate_rps * l.dp));
}

}  // namespace

int64_t KvCacheMib(const PoolCandidate& c) {
  const MemoryBreakdown& b = c.memory;
  const double free = b.capacity - b.dense_weights - b.expert_weights - b.activations - b.comm_buffers;
  return std::max<int64_t>(1, static_cast<int64_t>(free * kKvShareOfFree / (1 << 20)));
}

std::string ClusterSpecYaml(const Deployment& d, const PlanModel& m, const Workload& wl,
                            const EmitOptions& opt) {
  std::string out = absl::StrFormat(
      "# Written by `cleave plan search` for %s on %s: %d GPUs, goodput %.3f req/s (%.5f per GPU), %s.\n"
      "# The per-pool tp/pp/ep are comments until the spec carries layouts (expert-groups issue).\n",
      m.name, opt.hardware, d.gpus, d.goodput_rps, d.goodput_per_gpu, d.bottleneck);
  absl::StrAppend(&out, "model: ", opt.model_path, "\nrouter:\n  policy: least_load\n");
  Pool(out, "prefill", d.prefill, wl, opt.block_size, true);
  Pool(out, "decode", d.decode, wl, opt.block_size, false);
  return out;
}

std::string HelmValuesYaml(const Deployment& d, const PlanModel& m, const Workload& wl,
                           const EmitOptions& opt) {
  std::string out = "# Helm values written by `cleave plan search`; structure: docs/planner.md.\n";
  absl::StrAppend(&out, "model:\n  path: ", opt.model_path, "\n  name: \"", m.name, "\"\n",
                  "router:\n  replicas: 1\n  policy: least_load\n");
  ValuesPool(out, "prefill", d.prefill, wl, opt.block_size, true);
  ValuesPool(out, "decode", d.decode, wl, opt.block_size, false);
  absl::StrAppend(&out, absl::StrFormat(
      "planner:\n  hardware: %s\n  gpus: %d\n  goodputRequestsPerSecond: %.3f\n"
      "  goodputPerGpu: %.5f\n  ttftSloMs: %.0f\n  tpotSloMs: %.0f\n",
      opt.hardware, d.gpus, d.goodput_rps, d.goodput_per_gpu, wl.ttft_slo_s * 1e3, wl.tpot_slo_s * 1e3));
  return out;
}

}  // namespace cleave::plan
