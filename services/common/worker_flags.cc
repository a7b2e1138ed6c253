#include "services/common/worker_flags.h"

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(std::string, router, "", "router address host:port to register with");
ABSL_FLAG(std::string, instance, "", "instance name in logs and stats (default role-port)");
ABSL_FLAG(int64_t, kv_cache_mib, 256, "KV cache size in MiB");
ABSL_FLAG(int, block_size, 16, "tokens per KV block");
ABSL_FLAG(int, max_num_seqs, 64, "requests in the running batch at most");
ABSL_FLAG(int, max_num_batched_tokens, 512, "tokens per engine step, all requests together");
ABSL_FLAG(int, max_prefill_chunk, 0, "tokens of one prompt per step; 0: the step budget");
ABSL_FLAG(bool, enable_prefix_caching, true, "share KV blocks of common prompt prefixes");
ABSL_FLAG(std::string, ucx_tls, "", "UCX transports for KV transfer (UCX_TLS syntax); empty: UCX's choice");
ABSL_FLAG(int, kv_transfer_timeout_ms, 10000, "a KV transfer to an unresponsive peer fails after this");
ABSL_FLAG(int, handoff_quarantine_ms, 12000,
          "decode: blocks of a handoff that ended without its KV stay unused this long, so a "
          "late UCX write cannot land in another request's blocks; keep it above the prefill "
          "workers' --kv_transfer_timeout_ms");

namespace cleave {

std::string CheckWorkerFlags() {
  if (std::string err = CheckServiceFlags(); !err.empty()) return err;
  if (absl::GetFlag(FLAGS_router).empty()) return "--router: required (host:port)";
  if (absl::GetFlag(FLAGS_kv_cache_mib) <= 0) return "--kv_cache_mib: must be positive";
  if (absl::GetFlag(FLAGS_block_size) <= 0) return "--block_size: must be positive";
  if (absl::GetFlag(FLAGS_handoff_quarantine_ms) < 0) return "--handoff_quarantine_ms: must be >= 0";
  if (absl::GetFlag(FLAGS_kv_transfer_timeout_ms) <= 0) {
    return "--kv_transfer_timeout_ms: must be positive";
  }
  return "";
}

}  // namespace cleave
