#include "services/common/service_flags.h"

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "address to listen on");
ABSL_FLAG(int, port, 0, "gRPC port (required)");
ABSL_FLAG(int, metrics_port, 0, "Prometheus /metrics port; 0: no metrics endpoint");
ABSL_FLAG(std::string, model, "", "checkpoint directory (config.json, safetensors, tokenizer)");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warn, error or off");

namespace cleave {

std::string CheckServiceFlags() {
  if (absl::GetFlag(FLAGS_port) <= 0 || absl::GetFlag(FLAGS_port) > 65535) {
    return absl::StrCat("--port: ", absl::GetFlag(FLAGS_port), " is not a port (1-65535)");
  }
  if (absl::GetFlag(FLAGS_metrics_port) < 0 || absl::GetFlag(FLAGS_metrics_port) > 65535) {
    return "--metrics_port: not a port (0-65535)";
  }
  if (absl::GetFlag(FLAGS_model).empty()) return "--model: required (a checkpoint directory)";
  return "";
}

}  // namespace cleave
