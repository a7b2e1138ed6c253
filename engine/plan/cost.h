// The cost model: per-GPU memory by part, and per-step time by part for prefill and
// decode, from roofline compute/memory times plus simple collective models. Every figure is
// per GPU unless its name says otherwise; times in seconds, sizes in bytes.
#ifndef CLEAVE_ENGINE_PLAN_COST_H_
#define CLEAVE_ENGINE_PLAN_COST_H_

#include <cstdint>

#include "engine/plan/inputs.h"
#include "engine/plan/layout.h"
#include "engine/plan/model.h"

namespace cleave::plan {

// Fixed per-GPU reserve for the CUDA context, cuBLAS workspace and allocator slack.
inline constexpr double kRuntimeReserveBytes = 1e9;

struct MemoryBreakdown {
  double dense_weights = 0;   // attention, router, norms, embeddings/LM head of the stage
  double expert_weights = 0;
  double kv_cache = 0;
  double activations = 0;     // one step's live activations + kRuntimeReserveBytes
  double comm_buffers = 0;    // all-to-all send/recv and all-reduce staging
  double capacity = 0;
  // With remote experts the two kinds of GPU hold different parts; the fuller one counts.
  bool split_kinds = false;
  double Total() const;
  bool Fits() const { return Total() <= capacity; }
};

// `seqs` sequences per instance holding `tokens_per_seq` KV tokens each; `step_tokens` new
// tokens per engine step per instance (sets activations and buffers).
MemoryBreakdown PerGpuMemory(const PlanModel& m, const Hardware& hw, const ParallelLayout& l,
                             double seqs, double tokens_per_seq, double step_tokens);

// Collectives on `n` GPUs of one group; bandwidth and latency from the link the group spans.
double AllReduceSeconds(const Hardware& hw, int64_t n, double bytes);
double AllToAllSeconds(const Hardware& hw, int64_t n, double bytes_per_gpu);
// Bytes that cross GPUs in one MoE layer's dispatch + combine, over the whole stage, for
// `tokens` tokens spread evenly over `n` expert ranks (a token's expert is remote with
// probability (n-1)/n; with remote experts every token leaves).
double AllToAllBytesPerLayer(const PlanModel& m, double tokens, int64_t n, bool all_remote);
// Idle fraction of a pipeline of `pp` stages fed `m` micro-batches: (pp-1)/(m+pp-1).
double PipelineBubble(int64_t pp, int64_t m);
// Expected distinct experts that `routings` uniform picks touch among `local` of `total`.
double ExpertsTouched(double local, double total, double routings);

struct StepTime {
  double compute_s = 0;   // FLOPs / effective FLOP/s, summed over the stage's layers
  double memory_s = 0;    // weight + KV bytes / effective HBM bandwidth
  double roofline_s = 0;  // per part max(compute, memory), summed
  double tp_allreduce_s = 0;
  double ep_alltoall_s = 0;
  double pp_transfer_s = 0;
  double stage_s = 0;     // one micro-batch through one stage
  double bubble = 0;      // idle fraction of the pipeline
  double total_s = 0;     // the whole step: all micro-batches through all stages
};

// Prefill `seqs` prompts of `prompt` tokens on one instance.
StepTime PrefillStep(const PlanModel& m, const Hardware& hw, const ParallelLayout& l, double seqs,
                     double prompt);
// One decode step of `seqs` sequences whose KV holds `context` tokens on average.
StepTime DecodeStep(const PlanModel& m, const Hardware& hw, const ParallelLayout& l, double seqs,
                    double context);

// Requests per second one server of service time `service_s` can take while an M/D/1
// queue keeps the mean time to first token within `slo_s` (0 when even an idle server
// misses it): utilisation rho with service * (1 + rho / (2 (1 - rho))) <= slo.
double SloBoundUtilisation(double service_s, double slo_s);

}  // namespace cleave::plan

#endif  // CLEAVE_ENGINE_PLAN_COST_H_
