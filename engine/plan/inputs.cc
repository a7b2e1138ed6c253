#include "engine/plan/inputs.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/plan/yaml_util.h"
#include "engine/util/status.h"

namespace cleave::plan {
namespace {

constexpr double kGB = 1e9, kTB = 1e12, kUs = 1e-6;

absl::Status Positive(const char* field, double v) {
  if (!(v > 0)) return absl::InvalidArgumentError(absl::StrCat(field, ": must be positive, got ", v));
  return absl::OkStatus();
}

absl::Status Fraction(const char* field, double v) {
  if (!(v > 0 && v <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": must be in (0, 1], got ", v));
  }
  return absl::OkStatus();
}

// The field table shared by presets, overrides and calibration; units in the key names.
struct Field {
  const char* key;
  double Hardware::*member;
  double scale;
};
constexpr Field kFields[] = {
    {"memory_gb", &Hardware::memory_bytes, kGB},
    {"peak_tflops", &Hardware::peak_flops, kTB},
    {"mfu", &Hardware::mfu, 1},
    {"hbm_tb_per_s", &Hardware::hbm_bytes_per_s, kTB},
    {"hbm_efficiency", &Hardware::hbm_efficiency, 1},
    {"intra_node_gb_per_s", &Hardware::intra_node_bytes_per_s, kGB},
    {"intra_node_latency_us", &Hardware::intra_node_latency_s, kUs},
    {"inter_node_gb_per_s", &Hardware::inter_node_bytes_per_s, kGB},
    {"inter_node_latency_us", &Hardware::inter_node_latency_s, kUs},
};

}  // namespace

absl::Status Hardware::Validate() const {
  RETURN_IF_ERROR(Positive("hardware.memory_gb", memory_bytes));
  RETURN_IF_ERROR(Positive("hardware.peak_tflops", peak_flops));
  RETURN_IF_ERROR(Fraction("hardware.mfu", mfu));
  RETURN_IF_ERROR(Positive("hardware.hbm_tb_per_s", hbm_bytes_per_s));
  RETURN_IF_ERROR(Fraction("hardware.hbm_efficiency", hbm_efficiency));
  RETURN_IF_ERROR(Positive("hardware.gpus_per_node", static_cast<double>(gpus_per_node)));
  RETURN_IF_ERROR(Positive("hardware.intra_node_gb_per_s", intra_node_bytes_per_s));
  RETURN_IF_ERROR(Positive("hardware.inter_node_gb_per_s", inter_node_bytes_per_s));
  if (intra_node_latency_s < 0 || inter_node_latency_s < 0) {
    return absl::InvalidArgumentError("hardware.*_latency_us: must not be negative");
  }
  return absl::OkStatus();
}

std::vector<std::string> HardwarePresetNames() { return {"h100-sxm", "h200", "seed-gpu"}; }

absl::StatusOr<Hardware> HardwarePreset(const std::string& name) {
  Hardware h;
  h.name = name;
  // Link figures: NVLink 4 at 450 GB/s per direction, one 400 Gb/s NIC (50 GB/s) per GPU.
  h.gpus_per_node = 8;
  h.intra_node_bytes_per_s = 450 * kGB;
  h.intra_node_latency_s = 3 * kUs;
  h.inter_node_bytes_per_s = 50 * kGB;
  h.inter_node_latency_s = 10 * kUs;
  if (name == "h100-sxm") {
    h.memory_bytes = 80 * kGB;
    h.peak_flops = 989 * kTB;  // dense BF16
    h.mfu = 0.5;
    h.hbm_bytes_per_s = 3.35 * kTB;
    h.hbm_efficiency = 0.8;
  } else if (name == "h200") {
    h.memory_bytes = 141 * kGB;
    h.peak_flops = 989 * kTB;
    h.mfu = 0.5;
    h.hbm_bytes_per_s = 4.8 * kTB;
    h.hbm_efficiency = 0.8;
  } else if (name == "seed-gpu") {
    // The seed documents state only compute, HBM and capacity; the links are assumed
    // to be the H100-class ones above.
    h.memory_bytes = 64 * kGB;
    h.peak_flops = 400 * kTB;
    h.mfu = 0.6;
    h.hbm_bytes_per_s = 1.8 * kTB;
    h.hbm_efficiency = 0.8;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("hardware.preset: unknown preset '", name,
                                                   "' (want ", absl::StrJoin(HardwarePresetNames(), ", "),
                                                   ")"));
  }
  return h;
}

absl::StatusOr<Hardware> ParseHardware(const YAML::Node& node) {
  const std::string w = "hardware";
  std::set<std::string> keys = {"preset", "gpus_per_node", "calibration"};
  for (const Field& f : kFields) keys.insert(f.key);
  RETURN_IF_ERROR(yaml::CheckKeys(node, w, keys));
  Hardware h;
  ASSIGN_OR_RETURN(auto preset, yaml::OptString(node, w, "preset"));
  if (preset) {
    ASSIGN_OR_RETURN(h, HardwarePreset(*preset));
  } else {
    h.name = "custom";
  }
  for (const Field& f : kFields) {
    ASSIGN_OR_RETURN(auto v, yaml::OptDouble(node, w, f.key));
    if (v) h.*f.member = *v * f.scale;
  }
  ASSIGN_OR_RETURN(auto per_node, yaml::OptInt(node, w, "gpus_per_node"));
  if (per_node) h.gpus_per_node = *per_node;
  if (const YAML::Node cal = node["calibration"]) {
    const std::string cw = "hardware.calibration";
    std::set<std::string> cal_keys;
    for (const Field& f : kFields) cal_keys.insert(f.key);
    RETURN_IF_ERROR(yaml::CheckKeys(cal, cw, cal_keys));
    for (const Field& f : kFields) {
      ASSIGN_OR_RETURN(auto v, yaml::OptDouble(cal, cw, f.key));
      if (!v) continue;
      h.*f.member = *v * f.scale;
      h.measured.insert(f.key);
    }
  }
  RETURN_IF_ERROR(h.Validate());
  return h;
}

absl::Status Workload::Validate() const {
  RETURN_IF_ERROR(Positive("workload.batch", static_cast<double>(batch)));
  RETURN_IF_ERROR(Positive("workload.prompt_tokens.min", static_cast<double>(prompt_tokens_min)));
  RETURN_IF_ERROR(Positive("workload.prompt_tokens.max", static_cast<double>(prompt_tokens_max)));
  RETURN_IF_ERROR(Positive("workload.output_tokens", static_cast<double>(output_tokens)));
  RETURN_IF_ERROR(Positive("workload.ttft_slo_ms", ttft_slo_s));
  RETURN_IF_ERROR(Positive("workload.tpot_slo_ms", tpot_slo_s));
  if (prompt_tokens_min > prompt_tokens_max || prompt_tokens_mean < prompt_tokens_min ||
      prompt_tokens_mean > prompt_tokens_max) {
    return absl::InvalidArgumentError("workload.prompt_tokens: want min <= mean <= max");
  }
  if (max_sequence_tokens < prompt_tokens_max) {
    return absl::InvalidArgumentError("workload.max_sequence_tokens: below prompt_tokens.max");
  }
  return absl::OkStatus();
}

absl::StatusOr<Workload> ParseWorkload(const YAML::Node& node) {
  const std::string w = "workload";
  RETURN_IF_ERROR(yaml::CheckKeys(node, w,
                                  {"batch", "prompt_tokens", "output_tokens", "max_sequence_tokens",
                                   "ttft_slo_ms", "tpot_slo_ms"}));
  Workload wl;
  ASSIGN_OR_RETURN(auto batch, yaml::OptInt(node, w, "batch"));
  wl.batch = batch.value_or(0);
  const YAML::Node prompt = node["prompt_tokens"];
  if (prompt && prompt.IsMap()) {
    const std::string pw = "workload.prompt_tokens";
    RETURN_IF_ERROR(yaml::CheckKeys(prompt, pw, {"min", "mean", "max"}));
    ASSIGN_OR_RETURN(auto lo, yaml::OptInt(prompt, pw, "min"));
    ASSIGN_OR_RETURN(auto mean, yaml::OptInt(prompt, pw, "mean"));
    ASSIGN_OR_RETURN(auto hi, yaml::OptInt(prompt, pw, "max"));
    wl.prompt_tokens_min = lo.value_or(0);
    wl.prompt_tokens_max = hi.value_or(0);
    // Unstated mean: the midpoint of a uniform spread.
    wl.prompt_tokens_mean = mean.value_or((wl.prompt_tokens_min + wl.prompt_tokens_max) / 2);
  } else {
    ASSIGN_OR_RETURN(auto p, yaml::OptInt(node, w, "prompt_tokens"));
    wl.prompt_tokens_min = wl.prompt_tokens_mean = wl.prompt_tokens_max = p.value_or(0);
  }
  ASSIGN_OR_RETURN(auto out, yaml::OptInt(node, w, "output_tokens"));
  wl.output_tokens = out.value_or(0);
  ASSIGN_OR_RETURN(auto seq, yaml::OptInt(node, w, "max_sequence_tokens"));
  wl.max_sequence_tokens = seq.value_or(wl.prompt_tokens_max + wl.output_tokens);
  ASSIGN_OR_RETURN(auto ttft, yaml::OptDouble(node, w, "ttft_slo_ms"));
  ASSIGN_OR_RETURN(auto tpot, yaml::OptDouble(node, w, "tpot_slo_ms"));
  wl.ttft_slo_s = ttft.value_or(0) / 1e3;
  wl.tpot_slo_s = tpot.value_or(0) / 1e3;
  RETURN_IF_ERROR(wl.Validate());
  return wl;
}

}  // namespace cleave::plan
