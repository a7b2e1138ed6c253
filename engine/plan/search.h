// `cleave plan search`: enumerate valid layouts for the prefill pool and the decode pool
// separately, then split a GPU budget between them (as DistServe does) to maximise the
// requests per second per GPU that meet both SLOs.
#ifndef CLEAVE_ENGINE_PLAN_SEARCH_H_
#define CLEAVE_ENGINE_PLAN_SEARCH_H_

#include <string>
#include <vector>

#include "engine/plan/cost.h"

namespace cleave::plan {

struct PoolCandidate {
  ParallelLayout layout;       // dp = 1: one instance
  int64_t batch = 0;           // sequences per engine step
  StepTime step;
  MemoryBreakdown memory;
  double latency_s = 0;        // prefill: TTFT of a mean prompt, idle; decode: TPOT
  double rate_rps = 0;         // requests/s one instance serves within the SLOs
  double rps_per_gpu = 0;
  bool feasible = false;
  std::string reason;          // why it is feasible and what bounds it, or why not
};

struct Deployment {
  PoolCandidate prefill, decode;
  int64_t prefill_instances = 0, decode_instances = 0;
  int64_t gpus = 0;            // GPUs used, cleave's semantics
  double goodput_rps = 0;      // min of the pools' SLO-meeting rates
  double goodput_per_gpu = 0;
  std::string bottleneck;      // which pool limits, and what idles
};

struct SearchOptions {
  int64_t max_gpus_per_instance = 64;
  int64_t max_pp = 4;
  bool allow_remote = true;
};

// Every valid layout of one pool, feasible ones first, by requests/s per GPU.
std::vector<PoolCandidate> PrefillCandidates(const PlanModel& m, const Hardware& hw,
                                             const Workload& wl, int64_t gpus,
                                             const SearchOptions& opt = {});
std::vector<PoolCandidate> DecodeCandidates(const PlanModel& m, const Hardware& hw,
                                            const Workload& wl, int64_t gpus,
                                            const SearchOptions& opt = {});
// The best deployments within `gpus`, best first; empty when no pair is feasible.
std::vector<Deployment> Search(const PlanModel& m, const Hardware& hw, const Workload& wl,
                               int64_t gpus, size_t top_n, const SearchOptions& opt = {});

}  // namespace cleave::plan

#endif  // CLEAVE_ENGINE_PLAN_SEARCH_H_
