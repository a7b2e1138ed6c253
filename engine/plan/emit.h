// A chosen deployment as the files that run it: the cluster spec `cleave up` reads
// (deploy/local/README.md) and a values file for the Helm chart (docs/planner.md).
#ifndef CLEAVE_ENGINE_PLAN_EMIT_H_
#define CLEAVE_ENGINE_PLAN_EMIT_H_

#include <string>

#include "engine/plan/search.h"

namespace cleave::plan {

struct EmitOptions {
  std::string model_path = "models/seed";
  int64_t block_size = 16;
  std::string hardware;  // preset name, for the record
};

// Engine options per pool: KV budget per worker (MiB) from the memory left after weights,
// activations and buffers; max_num_seqs from the candidate's batch.
std::string ClusterSpecYaml(const Deployment& d, const PlanModel& m, const Workload& wl,
                            const EmitOptions& opt);
std::string HelmValuesYaml(const Deployment& d, const PlanModel& m, const Workload& wl,
                           const EmitOptions& opt);
int64_t KvCacheMib(const PoolCandidate& c);

}  // namespace cleave::plan

#endif  // CLEAVE_ENGINE_PLAN_EMIT_H_
