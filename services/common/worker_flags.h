// Flags every worker binary takes besides the service flags (defined once in worker_flags.cc).
#ifndef CLEAVE_SERVICES_COMMON_WORKER_FLAGS_H_
#define CLEAVE_SERVICES_COMMON_WORKER_FLAGS_H_

#include <cstdint>
#include <string>

#include "absl/flags/declare.h"
#include "services/common/service_flags.h"

ABSL_DECLARE_FLAG(std::string, router);
ABSL_DECLARE_FLAG(std::string, instance);
ABSL_DECLARE_FLAG(int64_t, kv_cache_mib);
ABSL_DECLARE_FLAG(int, block_size);
ABSL_DECLARE_FLAG(int, max_num_seqs);
ABSL_DECLARE_FLAG(int, max_num_batched_tokens);
ABSL_DECLARE_FLAG(int, max_prefill_chunk);
ABSL_DECLARE_FLAG(bool, enable_prefix_caching);
ABSL_DECLARE_FLAG(std::string, ucx_tls);
ABSL_DECLARE_FLAG(int, kv_transfer_timeout_ms);
ABSL_DECLARE_FLAG(int, handoff_quarantine_ms);

namespace cleave {
// Checks the service and worker flags; a message naming the flag on error.
std::string CheckWorkerFlags();
}  // namespace cleave

#endif  // CLEAVE_SERVICES_COMMON_WORKER_FLAGS_H_
