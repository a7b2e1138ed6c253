// cleave plan check|estimate|search PLAN.yaml [flags]: the layout planner (engine/plan).
// check: review a document's layout and claims; estimate: the cost model's figures for one
// layout; search: per-pool layouts and the prefill/decode split for a GPU budget.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "engine/plan/emit.h"
#include "engine/plan/plan_file.h"
#include "engine/plan/review.h"
#include "engine/plan/search.h"
#include "engine/util/status.h"
#include "tools/cleave/args.h"
#include "tools/cleave/commands.h"

namespace cleave::cli {
namespace {

using plan::Bytes;
using plan::Count;
using plan::Millis;

const std::vector<FlagSpec>& Specs() {
  static const std::vector<FlagSpec> specs = {
      {"tp", false, false, "estimate: override the file's layout"},
      {"pp", false, false, "estimate: override the file's layout"},
      {"ep", false, false, "estimate: override the file's layout"},
      {"dp", false, false, "estimate: override the file's layout"},
      {"placement", false, false, "estimate: colocated or remote"},
      {"micro-batches", false, false, "estimate: micro-batches per step"},
      {"gpus", false, false, "search: GPU budget (default: the file's gpus)"},
      {"top", false, false, "search: deployments to print (default 5)"},
      {"out-dir", false, false, "search: write cluster.yaml and values.yaml here"},
      {"model-path", false, false, "search: checkpoint path for the cluster spec (default models/seed)"},
      {"help", true, false, "show this help"},
  };
  return specs;
}

constexpr char kUsage[] =
    "usage: cleave plan check|estimate|search PLAN.yaml [flags]\n"
    "  check     list every inconsistency of the plan's layout and claims, with corrected figures\n"
    "            (exit 1 when there is one)\n"
    "  estimate  per-GPU memory by part and per-step times for the plan's layout\n"
    "  search    per-pool layouts and the prefill/decode GPU split maximising goodput per GPU\n";

void PrintInputs(const plan::PlanFile& p) {
  const plan::PlanModel& m = p.model;
  const plan::Hardware& hw = p.hardware;
  std::printf("plan: %s\n", p.name.c_str());
  std::printf("model: %s: %ld layers, hidden %ld, %ld heads x %ld (%ld KV), %ld experts top-%ld of FFN %ld, "
              "vocab %ld, %ld B/param: %s parameters (%s active/token)\n",
              m.name.c_str(), m.layers, m.hidden, m.heads, m.head_dim, m.kv_heads, m.experts,
              m.experts_per_token, m.expert_ffn, m.vocab, m.dtype_bytes,
              Count(static_cast<double>(m.TotalParams())).c_str(),
              Count(static_cast<double>(m.ActiveParamsPerToken())).c_str());
  std::printf("hardware: %s, %d GPUs: %s, %.0f TFLOP/s x %.0f%%, %.2f TB/s x %.0f%%, %ld/node, "
              "links %.0f/%.0f GB/s; %s\n",
              hw.name.c_str(), static_cast<int>(p.gpus), Bytes(hw.memory_bytes).c_str(),
              hw.peak_flops / 1e12, hw.mfu * 100, hw.hbm_bytes_per_s / 1e12, hw.hbm_efficiency * 100,
              hw.gpus_per_node, hw.intra_node_bytes_per_s / 1e9, hw.inter_node_bytes_per_s / 1e9,
              hw.measured.empty() ? "all figures assumed (no calibration)"
                                  : absl::StrCat("measured: ", absl::StrJoin(hw.measured, ", "),
                                                 "; the rest assumed").c_str());
  const plan::Workload& wl = p.workload;
  std::printf("workload: batch %ld, prompts %ld-%ld (mean %ld), output %ld, up to %ld tokens/sequence; "
              "SLO TTFT %s, TPOT %s\n",
              wl.batch, wl.prompt_tokens_min, wl.prompt_tokens_max, wl.prompt_tokens_mean,
              wl.output_tokens, wl.max_sequence_tokens, Millis(wl.ttft_slo_s).c_str(),
              Millis(wl.tpot_slo_s).c_str());
}

int Check(const plan::PlanFile& p) {
  PrintInputs(p);
  const std::vector<plan::Finding> findings = plan::Review(p);
  int bad = 0;
  for (const plan::Finding& f : findings) bad += f.inconsistent;
  std::printf("\n%d inconsistencies, %zu notes:\n", bad, findings.size() - bad);
  for (const plan::Finding& f : findings) {
    std::printf("%s [%s] %s\n", f.inconsistent ? "  x" : "  -", f.id.c_str(), f.message.c_str());
  }
  return bad > 0 ? kExitFailure : 0;
}

void PrintStep(const char* what, const plan::StepTime& s) {
  std::printf("  %-8s total %s: per stage %s = roofline %s (compute %s, memory %s) + TP all-reduce %s"
              " + EP all-to-all %s + PP transfer %s; bubble %.1f%%\n",
              what, Millis(s.total_s).c_str(), Millis(s.stage_s).c_str(), Millis(s.roofline_s).c_str(),
              Millis(s.compute_s).c_str(), Millis(s.memory_s).c_str(), Millis(s.tp_allreduce_s).c_str(),
              Millis(s.ep_alltoall_s).c_str(), Millis(s.pp_transfer_s).c_str(), s.bubble * 100);
}

absl::Status Estimate(plan::PlanFile p, const Args& args) {
  plan::ParallelLayout l = p.layout.value_or(plan::ParallelLayout{});
  const std::pair<const char*, int64_t*> flags[] = {
      {"tp", &l.tp}, {"pp", &l.pp}, {"ep", &l.ep}, {"dp", &l.dp}, {"micro-batches", &l.micro_batches}};
  for (const auto& [name, dst] : flags) {
    ASSIGN_OR_RETURN(*dst, args.Int(name, *dst));
  }
  const std::string placement = args.String("placement", plan::PlacementName(l.placement));
  if (placement != "colocated" && placement != "remote") {
    return absl::InvalidArgumentError(absl::StrCat("--placement: '", placement, "' (want colocated or remote)"));
  }
  l.placement = placement == "remote" ? plan::ExpertPlacement::kRemote : plan::ExpertPlacement::kColocated;
  const plan::PlanModel& m = p.model;
  absl::Status valid = l.Validate({m.heads, m.kv_heads, m.layers, m.experts});
  if (!valid.ok()) return absl::InvalidArgumentError(absl::StrCat("layout: ", valid.message()));
  if (l.micro_batches <= 0) return absl::InvalidArgumentError("layout.micro_batches: must be positive");
  PrintInputs(p);
  const plan::Workload& wl = p.workload;
  std::printf("\nlayout %s: %ld GPUs under cleave's semantics (%ld per stage x %ld stages x %ld instances); "
              "plain product tp*pp*ep*dp = %ld\n",
              l.ToString().c_str(), l.GpuCount(), l.GpusPerStage(), l.pp, l.dp, l.ProductCount());
  const double seqs = static_cast<double>(wl.batch) / static_cast<double>(l.dp);
  const plan::MemoryBreakdown mem = plan::PerGpuMemory(
      m, p.hardware, l, seqs, static_cast<double>(wl.max_sequence_tokens),
      seqs / static_cast<double>(l.micro_batches) * static_cast<double>(wl.prompt_tokens_max));
  std::printf("memory per GPU at the peak (%.0f sequences x %ld tokens per instance): dense %s, experts %s, "
              "KV %s, activations+workspace %s, comm buffers %s = %s of %s: %s\n",
              seqs, wl.max_sequence_tokens, Bytes(mem.dense_weights).c_str(), Bytes(mem.expert_weights).c_str(),
              Bytes(mem.kv_cache).c_str(), Bytes(mem.activations).c_str(), Bytes(mem.comm_buffers).c_str(),
              Bytes(mem.Total()).c_str(), Bytes(mem.capacity).c_str(), mem.Fits() ? "fits" : "DOES NOT FIT");
  std::printf("KV cache: %ld B/token, %s for the whole workload\n", m.KvBytesPerToken(),
              Bytes(static_cast<double>(wl.batch * wl.max_sequence_tokens * m.KvBytesPerToken())).c_str());
  const plan::StepTime pre = plan::PrefillStep(m, p.hardware, l, seqs, static_cast<double>(wl.prompt_tokens_max));
  plan::ParallelLayout one = l;
  one.micro_batches = 1;
  const plan::StepTime ttft = plan::PrefillStep(m, p.hardware, one, 1, static_cast<double>(wl.prompt_tokens_mean));
  const plan::StepTime dec = plan::DecodeStep(m, p.hardware, l, seqs,
                                              static_cast<double>(wl.prompt_tokens_mean) + wl.output_tokens / 2.0);
  std::printf("per instance:\n");
  PrintStep("prefill", pre);
  std::printf("           (%.0f prompts x %ld tokens)\n", seqs, wl.prompt_tokens_max);
  PrintStep("decode", dec);
  std::printf("           (%.0f sequences at mean context)\n", seqs);
  const double tput = seqs * static_cast<double>(l.dp) / dec.total_s;
  std::printf("TTFT %s (one mean prompt, idle) vs SLO %s: %s; TPOT %s vs SLO %s: %s; decode %s tokens/s "
              "over %ld instances\n",
              Millis(ttft.total_s).c_str(), Millis(wl.ttft_slo_s).c_str(), ttft.total_s <= wl.ttft_slo_s ? "meets" : "MISSES",
              Millis(dec.total_s).c_str(), Millis(wl.tpot_slo_s).c_str(), dec.total_s <= wl.tpot_slo_s ? "meets" : "MISSES",
              Count(tput).c_str(), l.dp);
  return absl::OkStatus();
}

void PrintPool(const char* kind, const std::vector<plan::PoolCandidate>& c, size_t n) {
  std::printf("\n%s pool, best layouts per GPU (of %zu valid):\n", kind, c.size());
  for (size_t i = 0; i < std::min(n, c.size()); ++i) {
    std::printf("  %-30s %2ld GPUs  %.4f req/s/GPU  %s\n", c[i].layout.ToString().c_str(),
                c[i].layout.GpusPerInstance(), c[i].rps_per_gpu, c[i].reason.c_str());
  }
}

absl::Status Search(const plan::PlanFile& p, const Args& args) {
  ASSIGN_OR_RETURN(int64_t gpus, args.Int("gpus", p.gpus));
  ASSIGN_OR_RETURN(int64_t top, args.Int("top", 5));
  if (gpus <= 0) return absl::InvalidArgumentError(absl::StrCat("--gpus: must be positive, got ", gpus));
  if (top <= 0) return absl::InvalidArgumentError(absl::StrCat("--top: must be positive, got ", top));
  PrintInputs(p);
  const auto pre = plan::PrefillCandidates(p.model, p.hardware, p.workload, gpus);
  const auto dec = plan::DecodeCandidates(p.model, p.hardware, p.workload, gpus);
  PrintPool("prefill", pre, static_cast<size_t>(top));
  PrintPool("decode", dec, static_cast<size_t>(top));
  const auto deployments = plan::Search(p.model, p.hardware, p.workload, gpus, static_cast<size_t>(top));
  if (deployments.empty()) {
    return absl::FailedPreconditionError("no feasible prefill/decode pair within the budget and SLOs");
  }
  std::printf("\ndeployments on %ld GPUs, best goodput per GPU first:\n", gpus);
  const plan::Deployment& best = deployments.front();
  for (size_t i = 0; i < deployments.size(); ++i) {
    const plan::Deployment& d = deployments[i];
    std::string why = i == 0 ? "wins" : absl::StrFormat("loses: %.1f%% less goodput per GPU", 100 * (1 - d.goodput_per_gpu / best.goodput_per_gpu));
    std::printf("  #%zu %s; %s\n     prefill %ld x [%s] + decode %ld x [%s] = %ld GPUs: %.3f req/s, %.5f req/s/GPU, %s\n",
                i + 1, why.c_str(), d.bottleneck.c_str(), d.prefill_instances,
                d.prefill.layout.ToString().c_str(), d.decode_instances, d.decode.layout.ToString().c_str(),
                d.gpus, d.goodput_rps, d.goodput_per_gpu,
                absl::StrFormat("TTFT %s, TPOT %s at batch %d", Millis(d.prefill.latency_s),
                                Millis(d.decode.latency_s), d.decode.batch).c_str());
  }
  if (args.Has("out-dir")) {
    const std::string dir = args.String("out-dir", "");
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return absl::InvalidArgumentError(absl::StrCat("--out-dir: ", ec.message()));
    plan::EmitOptions opt;
    opt.model_path = args.String("model-path", opt.model_path);
    opt.hardware = p.hardware.name;
    const std::pair<std::string, std::string> files[] = {
        {dir + "/cluster.yaml", plan::ClusterSpecYaml(best, p.model, p.workload, opt)},
        {dir + "/values.yaml", plan::HelmValuesYaml(best, p.model, p.workload, opt)}};
    for (const auto& [path, text] : files) {
      std::ofstream out(path);
      out << text;
      if (!out) return absl::InternalError(absl::StrCat(path, ": cannot write"));
      std::printf("wrote %s\n", path.c_str());
    }
  }
  return absl::OkStatus();
}

}  // namespace

int PlanCommand(int argc, char** argv) {
  if (argc < 1 || std::string(argv[0]) == "--help") {
    std::fputs(kUsage, argc < 1 ? stderr : stdout);
    if (argc >= 1) std::fputs(Usage("plan <action> PLAN.yaml", Specs()).c_str(), stdout);
    return argc < 1 ? kExitUsage : 0;
  }
  const std::string action = argv[0];
  if (action != "check" && action != "estimate" && action != "search") {
    std::fprintf(stderr, "cleave plan: unknown action '%s'\n%s", action.c_str(), kUsage);
    return kExitUsage;
  }
  if (argc < 2 || std::string(argv[1]).rfind("--", 0) == 0) {
    std::fprintf(stderr, "cleave plan %s: needs a plan file\n%s", action.c_str(), kUsage);
    return kExitUsage;
  }
  auto args = Args::Parse(Specs(), argc - 2, argv + 2);
  if (!args.ok()) {
    std::fprintf(stderr, "cleave plan: %s\n", std::string(args.status().message()).c_str());
    return kExitUsage;
  }
  auto p = plan::LoadPlanFile(argv[1]);
  if (!p.ok()) {
    std::fprintf(stderr, "cleave plan: %s\n", std::string(p.status().message()).c_str());
    return p.status().code() == absl::StatusCode::kInvalidArgument ||
                   p.status().code() == absl::StatusCode::kNotFound
               ? kExitUsage
               : kExitFailure;
  }
  if (action == "check") return Check(*p);
  absl::Status st = action == "estimate" ? Estimate(*p, *args) : Search(*p, *args);
  if (!st.ok()) {
    std::fprintf(stderr, "cleave plan %s: %s\n", action.c_str(), std::string(st.message()).c_str());
    return st.code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
  }
  return 0;
}

}  // namespace cleave::cli
