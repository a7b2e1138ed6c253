#include "engine/plan/layout.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "engine/plan/yaml_util.h"
#include "engine/util/status.h"

namespace cleave::plan {

const char* PlacementName(ExpertPlacement p) {
  return p == ExpertPlacement::kColocated ? "colocated" : "remote";
}

absl::Status ParallelLayout::Validate(const LayoutShape& s) const {
  const std::pair<const char*, int64_t> degrees[] = {{"tp", tp}, {"pp", pp}, {"ep", ep}, {"dp", dp}};
  for (const auto& [name, v] : degrees) {
    if (v <= 0) return absl::InvalidArgumentError(absl::StrCat(name, ": must be positive, got ", v));
  }
  if (tp > s.heads) {
    return absl::InvalidArgumentError(absl::StrCat("tp=", tp, " exceeds ", s.heads, " attention heads"));
  }
  if (s.heads % tp != 0) {
    return absl::InvalidArgumentError(absl::StrCat("tp=", tp, " does not divide ", s.heads,
                                                   " attention heads"));
  }
  // Fewer KV heads than ranks: each KV head is replicated on tp/kv_heads ranks.
  if (s.kv_heads % tp != 0 && tp % s.kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("tp=", tp, " and ", s.kv_heads,
                                                   " KV heads do not divide one another"));
  }
  if (pp > s.layers) {
    return absl::InvalidArgumentError(absl::StrCat("pp=", pp, " exceeds ", s.layers, " layers"));
  }
  if (s.layers % pp != 0) {
    return absl::InvalidArgumentError(absl::StrCat("pp=", pp, " does not divide ", s.layers, " layers"));
  }
  if (ep > s.experts) {
    return absl::InvalidArgumentError(absl::StrCat("ep=", ep, " exceeds ", s.experts, " experts"));
  }
  if (s.experts % ep != 0) {
    return absl::InvalidArgumentError(absl::StrCat(s.experts, " experts do not divide by ep=", ep));
  }
  if (placement == ExpertPlacement::kColocated && ep % tp != 0 && tp % ep != 0) {
    return absl::InvalidArgumentError(absl::StrCat("colocated experts need ep and tp to divide one "
                                                   "another, got ep=", ep, " tp=", tp));
  }
  return absl::OkStatus();
}

int64_t ParallelLayout::AttentionGpusPerStage() const {
  return placement == ExpertPlacement::kColocated ? std::max(tp, ep) : tp;
}

int64_t ParallelLayout::ExpertGpusPerStage() const {
  return placement == ExpertPlacement::kColocated ? std::max(tp, ep) : ep;
}

int64_t ParallelLayout::GpusPerStage() const {
  return placement == ExpertPlacement::kColocated ? std::max(tp, ep) : tp + ep;
}

std::string ParallelLayout::ToString() const {
  return absl::StrCat("tp=", tp, " pp=", pp, " ep=", ep, " dp=", dp, " ", PlacementName(placement));
}

absl::StatusOr<ParallelLayout> ParseLayout(const YAML::Node& node, const std::string& where) {
  RETURN_IF_ERROR(yaml::CheckKeys(node, where, {"tp", "pp", "ep", "dp", "placement", "micro_batches"}));
  ParallelLayout l;
  const std::pair<const char*, int64_t*> ints[] = {{"tp", &l.tp}, {"pp", &l.pp}, {"ep", &l.ep}, {"dp", &l.dp},
                                                   {"micro_batches", &l.micro_batches}};
  for (const auto& [key, dst] : ints) {
    ASSIGN_OR_RETURN(auto v, yaml::OptInt(node, where, key));
    if (v) *dst = *v;
    if (*dst <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(yaml::Path(where, key), ": must be positive, got ", *dst));
    }
  }
  ASSIGN_OR_RETURN(auto placement, yaml::OptString(node, where, "placement"));
  if (placement && *placement == "remote") {
    l.placement = ExpertPlacement::kRemote;
  } else if (placement && *placement != "colocated") {
    return absl::InvalidArgumentError(absl::StrCat(yaml::Path(where, "placement"), ": '", *placement,
                                                   "' (want colocated or remote)"));
  }
  return l;
}

}  // namespace cleave::plan
