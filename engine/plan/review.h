// `cleave plan check`: every figure a plan file claims, recomputed, and every layout rule
// it breaks, each as a finding with the corrected figure.
#ifndef CLEAVE_ENGINE_PLAN_REVIEW_H_
#define CLEAVE_ENGINE_PLAN_REVIEW_H_

#include <optional>
#include <string>
#include <vector>

#include "engine/plan/plan_file.h"

namespace cleave::plan {

struct Finding {
  std::string id;         // stable key, e.g. "gpu-count", asserted by tests
  bool inconsistent = true;  // false: a note (the claim holds, or context for one that doesn't)
  std::string message;    // what is claimed and what holds
  std::optional<double> claimed;
  std::optional<double> corrected;  // the planner's figure, in the claim's unit
};

std::vector<Finding> Review(const PlanFile& plan);
const Finding* FindFinding(const std::vector<Finding>& findings, const std::string& id);

// "6.58 B", "468.8 MB", "80.0 GiB"-style figures for the report.
std::string Count(double n);
std::string Bytes(double b);
std::string Millis(double s);

}  // namespace cleave::plan

#endif  // CLEAVE_ENGINE_PLAN_REVIEW_H_
