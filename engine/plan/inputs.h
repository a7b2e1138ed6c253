// Hardware and workload inputs of the planner, with the shipped GPU presets.
#ifndef CLEAVE_ENGINE_PLAN_INPUTS_H_
#define CLEAVE_ENGINE_PLAN_INPUTS_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace YAML {
class Node;
}

namespace cleave::plan {

struct Hardware {
  std::string name;
  double memory_bytes = 0;
  double peak_flops = 0;      // dense 16-bit FLOP/s
  double mfu = 0;             // achievable fraction of peak_flops
  double hbm_bytes_per_s = 0;
  double hbm_efficiency = 0;  // achievable fraction of hbm_bytes_per_s
  int64_t gpus_per_node = 0;
  double intra_node_bytes_per_s = 0;  // per GPU, one direction (NVLink)
  double intra_node_latency_s = 0;
  double inter_node_bytes_per_s = 0;  // per GPU, one direction (the NIC)
  double inter_node_latency_s = 0;
  // Fields a measurement replaced (calibration:); the report marks every other one assumed.
  std::set<std::string> measured;

  double EffectiveFlops() const { return peak_flops * mfu; }
  double EffectiveBandwidth() const { return hbm_bytes_per_s * hbm_efficiency; }
  absl::Status Validate() const;
};

// h100-sxm, h200, seed-gpu (the seed documents' 400 TFLOP/s, 60% MFU, 1.8 TB/s at 80%, 64 GB).
absl::StatusOr<Hardware> HardwarePreset(const std::string& name);
std::vector<std::string> HardwarePresetNames();

struct Workload {
  int64_t batch = 0;              // concurrent sequences at the peak
  int64_t prompt_tokens_min = 0;
  int64_t prompt_tokens_mean = 0;
  int64_t prompt_tokens_max = 0;
  int64_t output_tokens = 0;      // per request, mean
  double ttft_slo_s = 0;
  double tpot_slo_s = 0;
  // The most tokens one sequence holds in the KV cache: the longest prompt plus its output,
  // unless a document bounds the whole sequence (max_sequence_tokens).
  int64_t max_sequence_tokens = 0;
  absl::Status Validate() const;
};

// `hardware:` — `preset: NAME` and/or any field (overrides), plus `calibration:` with
// measured replacements. `workload:` — batch, prompt_tokens {min, mean, max} or a number,
// output_tokens, max_sequence_tokens, ttft_slo_ms, tpot_slo_ms.
absl::StatusOr<Hardware> ParseHardware(const YAML::Node& node);
absl::StatusOr<Workload> ParseWorkload(const YAML::Node& node);

}  // namespace cleave::plan

#endif  // CLEAVE_ENGINE_PLAN_INPUTS_H_
