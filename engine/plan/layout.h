// A parallel layout of one pool (prefill or decode) and the rules it must obey. Validate()
// depends only on the four model sizes it checks, so the runtime can run the same checks
// at start-up that the planner runs on its candidates.
#ifndef CLEAVE_ENGINE_PLAN_LAYOUT_H_
#define CLEAVE_ENGINE_PLAN_LAYOUT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace YAML {
class Node;
}

namespace cleave::plan {

// Where the experts of an instance live.
//  kColocated: inside the attention ranks. A pipeline stage has max(tp, ep) GPUs; when ep > tp
//    the stage runs ep/tp attention groups of tp ranks, each on its own share of the batch,
//    and every GPU holds experts/ep experts (ep and tp must divide one another).
//  kRemote: separate expert ranks (services/expert): a stage has tp attention GPUs and ep
//    expert GPUs.
enum class ExpertPlacement { kColocated, kRemote };
const char* PlacementName(ExpertPlacement p);

struct LayoutShape {  // the model sizes a layout is checked against
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t layers = 0;
  int64_t experts = 0;
};

struct ParallelLayout {
  int64_t tp = 1;
  int64_t pp = 1;
  int64_t ep = 1;
  int64_t dp = 1;  // instances behind the router
  ExpertPlacement placement = ExpertPlacement::kColocated;
  // Micro-batches a step is cut into so pipeline stages overlap (1: no pipelining).
  int64_t micro_batches = 1;

  // Errors name the problem, e.g. "tp=32 exceeds 16 attention heads",
  // "pp=5 does not divide 16 layers", "64 experts do not divide by ep=48".
  absl::Status Validate(const LayoutShape& shape) const;

  int64_t AttentionGpusPerStage() const;  // GPUs that run attention in one stage
  int64_t ExpertGpusPerStage() const;     // GPUs over which a stage's experts are split
  int64_t GpusPerStage() const;
  int64_t GpusPerInstance() const { return pp * GpusPerStage(); }
  // cleave's semantics: what the processes of `dp` instances occupy.
  int64_t GpuCount() const { return dp * GpusPerInstance(); }
  // The seed documents' semantics: every degree an independent axis.
  int64_t ProductCount() const { return tp * pp * ep * dp; }
  // Attention groups in a stage, each serving its own share of the instance's batch.
  int64_t AttentionGroups() const { return AttentionGpusPerStage() / tp; }

  std::string ToString() const;  // "tp=2 pp=1 ep=8 dp=3 colocated"
};

// A `layout:` mapping: tp, pp, ep, dp (default 1 each), placement colocated|remote.
absl::StatusOr<ParallelLayout> ParseLayout(const YAML::Node& node, const std::string& where);

}  // namespace cleave::plan

#endif  // CLEAVE_ENGINE_PLAN_LAYOUT_H_
