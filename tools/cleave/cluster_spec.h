// The shape of a local cluster: what `cleave up` reads from deploy/local/*.yaml and what
// the integration-test harness builds in code. deploy/local/README.md documents the keys.
#ifndef CLEAVE_TOOLS_CLEAVE_CLUSTER_SPEC_H_
#define CLEAVE_TOOLS_CLEAVE_CLUSTER_SPEC_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace cleave::launch {

// Engine options of one worker kind; unset ones are left to the binary's defaults.
struct WorkerSpec {
  int replicas = 0;
  std::optional<int64_t> kv_cache_mib;
  std::optional<int64_t> max_num_seqs;
  std::optional<int64_t> max_num_batched_tokens;
  std::optional<int64_t> max_prefill_chunk;
  std::optional<int64_t> block_size;
  std::optional<std::string> ucx_tls;
  std::vector<std::string> extra_flags;  // appended verbatim, e.g. "--log_level=debug"
};

struct ClusterSpec {
  std::string model;               // checkpoint directory
  std::string host = "127.0.0.1";  // every process binds it and clients dial it
  int router_port = 0;             // 0: a free port
  int router_metrics_port = 0;     // 0: a free port
  bool metrics = true;             // false: every process runs without a metrics endpoint
  std::optional<std::string> policy;
  std::optional<int64_t> heartbeat_timeout_ms;
  std::vector<std::string> router_extra_flags;
  WorkerSpec prefill;
  WorkerSpec decode;
  WorkerSpec colocated;  // cleave-decode --colocated: prefills its own requests

  // Healthy workers the router's ListModels must report once the cluster is up
  // (a colocated worker counts as both).
  int expected_prefill_workers() const { return prefill.replicas + colocated.replicas; }
  int expected_decode_workers() const { return decode.replicas + colocated.replicas; }

  // INVALID_ARGUMENT naming the key, e.g. "prefill.replicas: must be in [0, 64], got 100".
  // A cluster without prefill or decode workers is valid here (tests use one).
  absl::Status Validate() const;
};

// Reads a YAML spec. Unknown keys are errors (a typo must not silently fall back to a
// default). A relative `model` is resolved against `base_dir` and must exist. Unlike
// Validate(), it also requires a worker that can prefill and one that can decode.
absl::StatusOr<ClusterSpec> LoadClusterSpec(const std::string& path, const std::string& base_dir);

}  // namespace cleave::launch

#endif  // CLEAVE_TOOLS_CLEAVE_CLUSTER_SPEC_H_
