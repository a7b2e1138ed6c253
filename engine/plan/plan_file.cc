#include "engine/plan/plan_file.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "engine/plan/yaml_util.h"
#include "engine/util/status.h"

namespace cleave::plan {

const std::map<std::string, std::string>& ClaimKeys() {
  static const auto* keys = new std::map<std::string, std::string>{
      {"gpus", "GPU count the layout is said to use"},
      {"total_params", "parameters"},
      {"dense_params", "parameters outside the experts"},
      {"expert_params", "parameters in all experts"},
      {"params_per_expert", "parameters of one expert, all layers"},
      {"experts_per_gpu", "experts held per GPU"},
      {"params_per_gpu", "parameters held per GPU"},
      {"param_bytes_per_gpu", "bytes of parameters per GPU"},
      {"expert_params_per_gpu", "expert parameters per GPU"},
      {"param_capacity_per_gpu", "bytes of parameters a GPU 'can hold'"},
      {"activation_bytes_per_gpu", "bytes"},
      {"optimizer_bytes_per_gpu", "bytes"},
      {"total_bytes_per_gpu", "bytes"},
      {"memory_utilization", "fraction of GPU memory used"},
      {"compute_utilization", "fraction of peak FLOP/s achieved"},
      {"compute_s_per_layer", "seconds"},
      {"comm_s_per_layer", "seconds"},
      {"comm_overhead", "fraction of time in communication"},
      {"pipeline_bubble", "fraction"},
      {"latency_s", "seconds per batch"},
      {"throughput_tokens_per_s", "tokens/s"},
      {"alltoall_baseline_ep", "EP degree the document says its EP communicates less than"},
  };
  return *keys;
}

std::optional<double> Claims::Get(const std::string& key) const {
  auto it = values.find(key);
  if (it == values.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<PlanFile> ParsePlanFile(const std::string& yaml_text, const std::string& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("malformed YAML: ", e.what()));
  }
  RETURN_IF_ERROR(yaml::CheckKeys(root, "", {"name", "source", "model", "hardware", "gpus",
                                             "workload", "layout", "claims"}));
  PlanFile p;
  ASSIGN_OR_RETURN(auto name, yaml::OptString(root, "", "name"));
  p.name = name.value_or("plan");
  ASSIGN_OR_RETURN(auto source, yaml::OptString(root, "", "source"));
  p.source = source.value_or("");
  for (const char* section : {"model", "hardware", "workload"}) {
    if (!root[section]) return absl::InvalidArgumentError(absl::StrCat(section, ": required"));
  }
  ASSIGN_OR_RETURN(p.model, ParseModel(root["model"], base_dir));
  ASSIGN_OR_RETURN(p.hardware, ParseHardware(root["hardware"]));
  ASSIGN_OR_RETURN(p.workload, ParseWorkload(root["workload"]));
  ASSIGN_OR_RETURN(auto gpus, yaml::OptInt(root, "", "gpus"));
  if (!gpus || *gpus <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("gpus: must be a positive integer, got ",
                                                   gpus ? absl::StrCat(*gpus) : "nothing"));
  }
  p.gpus = *gpus;
  if (root["layout"]) {
    ASSIGN_OR_RETURN(ParallelLayout l, ParseLayout(root["layout"], "layout"));
    const absl::Status valid =
        l.Validate({p.model.heads, p.model.kv_heads, p.model.layers, p.model.experts});
    if (!valid.ok()) return absl::InvalidArgumentError(absl::StrCat("layout: ", valid.message()));
    p.layout = l;
  }
  if (const YAML::Node claims = root["claims"]) {
    std::set<std::string> allowed = {"per_phase_strategy"};
    for (const auto& [key, unit] : ClaimKeys()) allowed.insert(key);
    RETURN_IF_ERROR(yaml::CheckKeys(claims, "claims", allowed));
    for (const auto& [key, unit] : ClaimKeys()) {
      ASSIGN_OR_RETURN(auto v, yaml::OptDouble(claims, "claims", key));
      if (v) p.claims.values[key] = *v;
    }
    ASSIGN_OR_RETURN(auto per_phase, yaml::OptBool(claims, "claims", "per_phase_strategy"));
    p.claims.per_phase_strategy = per_phase.value_or(false);
  }
  return p;
}

absl::StatusOr<PlanFile> LoadPlanFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open plan file"));
  std::ostringstream text;
  text << in.rdbuf();
  auto p = ParsePlanFile(text.str(), std::filesystem::path(path).parent_path().string());
  if (!p.ok()) return absl::Status(p.status().code(), absl::StrCat(path, ": ", p.status().message()));
  return p;
}

}  // namespace cleave::plan
