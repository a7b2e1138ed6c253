// A plan file (deploy/plans/*.yaml): model, hardware, GPU budget, workload, optionally a
// document's layout and the figures it claims, so `cleave plan check` can review it.
#ifndef CLEAVE_ENGINE_PLAN_PLAN_FILE_H_
#define CLEAVE_ENGINE_PLAN_PLAN_FILE_H_

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "engine/plan/inputs.h"
#include "engine/plan/layout.h"
#include "engine/plan/model.h"

namespace cleave::plan {

// What a document states, as numbers (SI units: bytes, seconds, fractions). Only the
// stated ones are present; each is checked against the planner's figure.
struct Claims {
  std::map<std::string, double> values;
  bool per_phase_strategy = false;  // promises different prefill/decode layouts
  std::optional<double> Get(const std::string& key) const;
};
// The claim keys `claims:` accepts, with their units.
const std::map<std::string, std::string>& ClaimKeys();

struct PlanFile {
  std::string name;
  std::string source;  // the document reviewed, for the report
  PlanModel model;
  Hardware hardware;
  int64_t gpus = 0;  // the GPU budget
  Workload workload;
  std::optional<ParallelLayout> layout;  // the document's (one layout for both phases)
  Claims claims;
};

// INVALID_ARGUMENT naming the field for anything malformed, unknown or out of range.
absl::StatusOr<PlanFile> LoadPlanFile(const std::string& path);
absl::StatusOr<PlanFile> ParsePlanFile(const std::string& yaml_text, const std::string& base_dir);

}  // namespace cleave::plan

#endif  // CLEAVE_ENGINE_PLAN_PLAN_FILE_H_
